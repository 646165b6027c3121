//! seeds — the one way maslow derives a random stream's seed from a run's
//! seed.
//!
//! Every random process (cell spread, clouds, household demand, mains
//! wander, link and transport faults, probe noise, a fleet's households and
//! keys) draws from its own stream: `derive_seed(run_seed, stream)` seeds
//! its generator. Streams are named by small constants built with
//! [`stream`] from up to eight ASCII bytes (`stream("probe")`), or by
//! numbers that identify a thing (a site id, a branch id); derivations nest
//! (`derive_seed(derive_seed(seed, stream("site")), site_id)`).
//!
//! The function is SplitMix64's finaliser applied twice:
//! `derive_seed(seed, stream) = splitmix64(splitmix64(seed) ^ stream)`.
//! It is a bijection in `stream` for a fixed seed (different streams of a
//! run never share a seed) and decorrelates nearby seeds and streams. The
//! firmware's randomised start delay uses the same formula with the site id
//! as the seed and the message's sequence as the stream, which is how a
//! server predicts it (`firmware/docs/dispatch.md`).
//!
//! `no_std`, no dependencies: the firmware core, the twin and the rig all
//! use it.
#![no_std]

/// SplitMix64's finaliser (Steele, Lea, Flood 2014; Java's
/// `SplittableRandom`): `z = x + 0x9E3779B97F4A7C15`, then
/// `z = (z ^ z>>30) * 0xBF58476D1CE4E5B9`, `z = (z ^ z>>27) *
/// 0x94D049BB133111EB`, `z ^ z>>31`, all wrapping on 64 bits.
pub const fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of stream `stream` of a run (or process) seeded with `seed`.
pub const fn derive_seed(seed: u64, stream: u64) -> u64 {
    splitmix64(splitmix64(seed) ^ stream)
}

/// A stream id from a short name: its bytes big-endian in a `u64`
/// (`stream("main") == 0x6d61_696e`). Names longer than eight bytes keep
/// their first eight.
pub const fn stream(name: &str) -> u64 {
    let b = name.as_bytes();
    let mut id = 0u64;
    let mut i = 0;
    while i < b.len() && i < 8 {
        id = (id << 8) | b[i] as u64;
        i += 1;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splitmix64_matches_its_published_sequence() {
        // The first outputs of SplitMix64 seeded with 0 (state advanced by
        // the golden gamma before each finalisation).
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(splitmix64(0x9E37_79B9_7F4A_7C15), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn names_pack_big_endian_and_truncate_at_eight_bytes() {
        assert_eq!(stream("main"), 0x6d61_696e);
        assert_eq!(stream(""), 0);
        assert_eq!(stream("linkfaults"), stream("linkfaul"));
    }

    #[test]
    fn the_formula_is_the_documented_one() {
        let (seed, s) = (20_261_126, 42);
        assert_eq!(derive_seed(seed, s), splitmix64(splitmix64(seed) ^ s));
    }

    proptest! {
        #[test]
        fn distinct_streams_of_a_seed_get_distinct_seeds(seed: u64, a: u64, b: u64) {
            prop_assume!(a != b);
            prop_assert_ne!(derive_seed(seed, a), derive_seed(seed, b));
        }

        #[test]
        fn one_bit_of_seed_moves_about_half_the_bits(seed: u64, s: u64, bit in 0u32..64) {
            let d = derive_seed(seed, s) ^ derive_seed(seed ^ (1 << bit), s);
            prop_assert!((12..=52).contains(&d.count_ones()), "{} bits changed", d.count_ones());
        }
    }
}
