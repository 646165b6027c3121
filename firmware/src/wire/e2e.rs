//! End-to-end protection of safety-relevant CAN frames, in the style of
//! AUTOSAR E2E profile 1 (layout "CRC in byte 0, counter in the low nibble
//! of byte 1", data id mode "both bytes").
//!
//! - **CRC**: CRC-8 with the SAE J1850 polynomial `0x1D`, start value
//!   `0x00`, no final XOR (CRC catalogue name CRC-8/GSM-A; this is what
//!   profile 1 obtains by seeding the SAE J1850 routine with `0x00 ^ 0xFF`
//!   and XOR-ing its result back), computed over the data id's low byte,
//!   its high byte, then payload bytes 1..len (everything but the CRC
//!   byte). The data id never travels on the bus: a frame copied onto the
//!   wrong identifier fails the check ("masquerade").
//! - **Alive counter**: 4 bits, 0..=14 (15 is never sent), incremented by
//!   one per transmitted frame and wrapping 14 → 0.
//!
//! Receivers run an [`E2eChecker`] per message (per multiplexed index
//! where a message carries several): a wrong CRC, a repeated counter or a
//! jump larger than the allowed delta is reported and the frame is never
//! acted on. Deadlines are the receiver's business (see `node`).

/// Highest alive-counter value; 15 is invalid in profile 1.
pub const COUNTER_MAX: u8 = 14;

/// Table-free CRC-8, polynomial 0x1D, MSB first.
fn crc8_update(mut crc: u8, bytes: &[u8]) -> u8 {
    for &b in bytes {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x1D
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The CRC-8/GSM-A of raw bytes (exposed for reference tests).
pub fn crc8_raw(bytes: &[u8]) -> u8 {
    crc8_update(0x00, bytes)
}

/// The profile-1 CRC of a frame: over the data id (low, high byte) and
/// bytes 1.. of `frame` (byte 0 holds the CRC itself). An empty frame
/// covers only the data id.
pub fn crc(data_id: u16, frame: &[u8]) -> u8 {
    let [lo, hi] = data_id.to_le_bytes();
    let crc = crc8_update(0x00, &[lo, hi]);
    crc8_update(crc, frame.get(1..).unwrap_or(&[]))
}

/// Writes `counter` (taken mod 15) into the low nibble of byte 1 and the
/// CRC into byte 0. Frames shorter than 2 bytes cannot carry E2E and are
/// left untouched (returns `false`).
pub fn protect(data_id: u16, counter: u8, frame: &mut [u8]) -> bool {
    if frame.len() < 2 {
        return false;
    }
    frame[1] = (frame[1] & 0xF0) | (counter % (COUNTER_MAX + 1));
    frame[0] = crc(data_id, frame);
    true
}

/// The alive counter a frame carries (low nibble of byte 1).
pub fn counter_of(frame: &[u8]) -> Option<u8> {
    frame.get(1).map(|b| b & 0x0F)
}

/// A sender's alive counter for one message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct E2eSender {
    next: u8,
}

impl E2eSender {
    pub const fn new() -> Self {
        Self { next: 0 }
    }

    /// Protects `frame` with the next counter value and advances.
    pub fn protect(&mut self, data_id: u16, frame: &mut [u8]) -> bool {
        let ok = protect(data_id, self.next, frame);
        if ok {
            self.next = if self.next >= COUNTER_MAX {
                0
            } else {
                self.next + 1
            };
        }
        ok
    }
}

/// What a receiver concluded about one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum E2eStatus {
    /// The first valid frame (no counter history): accepted.
    Initial,
    /// Counter advanced by exactly one.
    Ok,
    /// Counter advanced by 2..=max_delta: accepted, `lost` frames missed.
    OkSomeLost { lost: u8 },
    /// Same counter as the last accepted frame: not acted on.
    Repeated,
    /// Counter jumped beyond the allowed delta (or is 15): not acted on;
    /// the next frame in sequence is accepted again.
    WrongSequence,
    /// CRC mismatch (or a frame too short to carry E2E): not acted on.
    WrongCrc,
}

impl E2eStatus {
    /// Whether the frame's data may be used.
    pub fn is_valid(self) -> bool {
        matches!(
            self,
            E2eStatus::Initial | E2eStatus::Ok | E2eStatus::OkSomeLost { .. }
        )
    }
}

/// A receiver's check state for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E2eChecker {
    last: Option<u8>,
    max_delta: u8,
}

impl E2eChecker {
    /// `max_delta`: the largest counter step still accepted (1 = no frame
    /// may be lost; profile 1's `MaxDeltaCounter`). Clamped to 1..=14.
    pub const fn new(max_delta: u8) -> Self {
        let max_delta = if max_delta == 0 {
            1
        } else if max_delta > COUNTER_MAX {
            COUNTER_MAX
        } else {
            max_delta
        };
        Self {
            last: None,
            max_delta,
        }
    }

    /// Forgets the counter history (after a deadline miss the next valid
    /// frame starts a new sequence).
    pub fn reset(&mut self) {
        self.last = None;
    }

    /// Checks one received frame.
    pub fn check(&mut self, data_id: u16, frame: &[u8]) -> E2eStatus {
        if frame.len() < 2 || crc(data_id, frame) != frame[0] {
            return E2eStatus::WrongCrc;
        }
        let counter = frame[1] & 0x0F;
        if counter > COUNTER_MAX {
            return E2eStatus::WrongSequence;
        }
        let Some(last) = self.last else {
            self.last = Some(counter);
            return E2eStatus::Initial;
        };
        let delta = (counter + COUNTER_MAX + 1 - last) % (COUNTER_MAX + 1);
        match delta {
            0 => E2eStatus::Repeated,
            1 => {
                self.last = Some(counter);
                E2eStatus::Ok
            }
            d if d <= self.max_delta => {
                self.last = Some(counter);
                E2eStatus::OkSomeLost { lost: d - 1 }
            }
            _ => {
                // Resynchronise on this frame: the one after it in sequence
                // is accepted (profile 1 behaviour after a wrong sequence).
                self.last = Some(counter);
                E2eStatus::WrongSequence
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crc8_gsm_a_check_value() {
        // The CRC catalogue's check value for CRC-8/GSM-A.
        assert_eq!(crc8_raw(b"123456789"), 0x37);
    }

    #[test]
    fn protect_then_check_in_sequence() {
        let mut tx = E2eSender::new();
        let mut rx = E2eChecker::new(2);
        for k in 0..40u32 {
            let mut f = [0u8, 0xA0, 1, 2, 3, (k & 0xFF) as u8, 5, 6];
            assert!(tx.protect(0x1100, &mut f));
            assert_eq!(f[1] & 0xF0, 0xA0, "high nibble preserved");
            let st = rx.check(0x1100, &f);
            if k == 0 {
                assert_eq!(st, E2eStatus::Initial);
            } else {
                assert_eq!(st, E2eStatus::Ok, "frame {k}");
            }
        }
    }

    #[test]
    fn counter_wraps_at_14() {
        let mut tx = E2eSender::new();
        let mut seen = [0u8; 16];
        for _ in 0..30 {
            let mut f = [0u8; 8];
            tx.protect(1, &mut f);
            seen[usize::from(f[1] & 0x0F)] += 1;
        }
        assert_eq!(seen[15], 0);
        assert_eq!(seen[14], 2);
    }

    #[test]
    fn repeated_jumped_corrupt_and_masquerade_are_rejected() {
        let mut tx = E2eSender::new();
        let mut rx = E2eChecker::new(2);
        let mut frames = [[0u8; 8]; 6];
        for f in frames.iter_mut() {
            tx.protect(0x1200, f);
        }
        assert_eq!(rx.check(0x1200, &frames[0]), E2eStatus::Initial);
        assert_eq!(rx.check(0x1200, &frames[0]), E2eStatus::Repeated);
        assert_eq!(
            rx.check(0x1200, &frames[2]),
            E2eStatus::OkSomeLost { lost: 1 }
        );
        assert_eq!(rx.check(0x1200, &frames[5]), E2eStatus::WrongSequence);
        let mut corrupt = frames[5];
        corrupt[4] ^= 0x10;
        assert_eq!(rx.check(0x1200, &corrupt), E2eStatus::WrongCrc);
        // The right bytes under another message's data id.
        assert_eq!(rx.check(0x1201, &frames[5]), E2eStatus::WrongCrc);
        assert_eq!(rx.check(0x1200, &[]), E2eStatus::WrongCrc);
    }

    proptest! {
        /// Any single-bit error in a protected frame is detected (CRC-8
        /// detects all single-bit errors).
        #[test]
        fn single_bit_errors_are_detected(payload in proptest::array::uniform8(any::<u8>()),
                                          counter in 0u8..=14, bit in 0usize..64, id in any::<u16>()) {
            let mut f = payload;
            protect(id, counter, &mut f);
            let mut rx = E2eChecker::new(14);
            prop_assert!(rx.check(id, &f).is_valid());
            let mut g = f;
            g[bit / 8] ^= 1 << (bit % 8);
            let mut rx = E2eChecker::new(14);
            prop_assert_eq!(rx.check(id, &g), E2eStatus::WrongCrc);
        }

        /// Whatever arrives, the checker never panics and only accepts
        /// frames whose CRC matches.
        #[test]
        fn garbage_never_panics(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..9), 0..40)) {
            let mut rx = E2eChecker::new(3);
            for f in frames {
                let st = rx.check(0x42, &f);
                if st.is_valid() {
                    prop_assert_eq!(crc(0x42, &f), f[0]);
                }
            }
        }
    }
}
