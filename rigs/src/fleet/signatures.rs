//! Signature checks shared by the assemblies of one branch.
//!
//! The server's heartbeat reaches every assembly on a branch as the same
//! signed bytes, and on a real branch each board checks it on its own. In
//! one process that is the same Ed25519 `verify_strict` of the same bytes a
//! hundred times a minute per branch — a third of a 10,000-household run.
//! [`SharedSignatures`] remembers the last few (key, signature, bytes)
//! triples it found genuine on the branch and answers a repeat of exactly
//! those bytes from memory. It answers as [`StrictCheck`] would:
//! `verify_strict` is a pure function of the triple, a remembered triple is
//! compared byte for byte (never by hash), and failures are never
//! remembered, so every forged, altered or wrongly keyed message is checked
//! in full by every assembly. Everything else an assembly decides about a
//! message (branch and site, duplicate, sequence, time, envelope) it still
//! decides on its own. `maslow fleet run --verify-every-message` turns the
//! sharing off; runs are identical either way (tested).

use std::collections::VecDeque;

use ed25519_dalek::{Signature, VerifyingKey};
use firmware::cluster::{SignatureCheck, StrictCheck};

/// Genuine messages remembered per branch: a minute brings one heartbeat
/// (or a few configuration broadcasts) between per-assembly dispatches,
/// and a repeat moves its entry to the back.
const REMEMBERED: usize = 8;

/// A signed message found genuine.
#[derive(Debug, Clone)]
struct Genuine {
    key: [u8; 32],
    signature: [u8; 64],
    signed_bytes: Vec<u8>,
}

/// One branch's memory of genuine messages, and its counts.
#[derive(Debug, Clone)]
pub struct SharedSignatures {
    share: bool,
    recent: VecDeque<Genuine>,
    /// Full `verify_strict` checks run.
    pub verified: u64,
    /// Checks answered from memory (exact repeats of a genuine message).
    pub recalled: u64,
}

impl SharedSignatures {
    /// With `share` false every check is a full `verify_strict`.
    pub fn new(share: bool) -> Self {
        SharedSignatures {
            share,
            recent: VecDeque::with_capacity(REMEMBERED),
            verified: 0,
            recalled: 0,
        }
    }
}

impl SignatureCheck for SharedSignatures {
    fn verify(&mut self, key: &VerifyingKey, signed_bytes: &[u8], signature: &Signature) -> bool {
        let sig = signature.to_bytes();
        if self.share {
            let hit = self.recent.iter().position(|g| {
                g.signature == sig && &g.key == key.as_bytes() && g.signed_bytes == signed_bytes
            });
            if let Some(i) = hit {
                if let Some(g) = self.recent.remove(i) {
                    self.recent.push_back(g);
                }
                self.recalled += 1;
                return true;
            }
        }
        self.verified += 1;
        let genuine = StrictCheck.verify(key, signed_bytes, signature);
        if genuine && self.share {
            if self.recent.len() == REMEMBERED {
                self.recent.pop_front();
            }
            self.recent.push_back(Genuine {
                key: *key.as_bytes(),
                signature: sig,
                signed_bytes: signed_bytes.to_vec(),
            });
        }
        genuine
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn a_repeat_of_genuine_bytes_is_recalled_and_everything_else_checked() {
        let server = key(7);
        let msg = b"heartbeat branch 3 seq 41".to_vec();
        let sig = server.sign(&msg);
        let vk = server.verifying_key();
        let mut s = SharedSignatures::new(true);
        assert!(s.verify(&vk, &msg, &sig));
        assert!(s.verify(&vk, &msg, &sig));
        assert_eq!((s.verified, s.recalled), (1, 1));

        // One byte changed: checked in full, and false.
        let mut altered = msg.clone();
        altered[0] ^= 1;
        assert!(!s.verify(&vk, &altered, &sig));
        // The right bytes under a forger's signature: false.
        let forged = key(9).sign(&msg);
        assert!(!s.verify(&vk, &msg, &forged));
        // The genuine bytes and signature offered under another key: false.
        assert!(!s.verify(&key(9).verifying_key(), &msg, &sig));
        assert_eq!((s.verified, s.recalled), (4, 1));
        // Failures are never remembered.
        assert!(!s.verify(&vk, &altered, &sig));
        assert_eq!((s.verified, s.recalled), (5, 1));
    }

    #[test]
    fn without_sharing_every_check_is_full() {
        let server = key(7);
        let msg = b"m".to_vec();
        let sig = server.sign(&msg);
        let mut s = SharedSignatures::new(false);
        for _ in 0..3 {
            assert!(s.verify(&server.verifying_key(), &msg, &sig));
        }
        assert_eq!((s.verified, s.recalled), (3, 0));
    }

    #[test]
    fn the_memory_stays_bounded_and_keeps_what_repeats() {
        let server = key(7);
        let vk = server.verifying_key();
        let heartbeat = b"heartbeat".to_vec();
        let hb_sig = server.sign(&heartbeat);
        let mut s = SharedSignatures::new(true);
        for i in 0..100u32 {
            // A heartbeat between unique per-assembly dispatches.
            assert!(s.verify(&vk, &heartbeat, &hb_sig));
            let d = format!("dispatch {i}").into_bytes();
            assert!(s.verify(&vk, &d, &server.sign(&d)));
            assert!(s.recent.len() <= REMEMBERED);
        }
        assert_eq!(s.recalled, 99);
        assert_eq!(s.verified, 101);
    }
}
