//! Classic CAN 2.0 frames: identifiers, frames and their length on the wire.
//!
//! Only classic frames (at most 8 data bytes) — no CAN FD, no error frames.
//! Constructors check every field, so a [`CanFrame`] in hand is always one a
//! controller could put on the bus. [`bit_length`] builds the frame's bits
//! (with its CRC-15) and counts the stuff bits actually inserted, next to the
//! worst case, for bus-load estimates.

use thiserror::Error;

/// Highest standard (11-bit) identifier.
pub const STANDARD_ID_MAX: u16 = 0x7FF;
/// Highest extended (29-bit) identifier.
pub const EXTENDED_ID_MAX: u32 = 0x1FFF_FFFF;
/// Most data bytes a classic CAN frame carries.
pub const MAX_DATA_LEN: usize = 8;

/// Why a frame or identifier could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("standard CAN id {0:#X} is above 0x7FF")]
    StandardIdOutOfRange(u32),
    #[error("extended CAN id {0:#X} is above 0x1FFFFFFF")]
    ExtendedIdOutOfRange(u32),
    #[error("{0} data bytes; a classic CAN frame carries at most 8")]
    DataTooLong(usize),
    #[error("DLC {0}; a classic CAN frame's DLC is 0..=8")]
    DlcOutOfRange(u8),
}

/// A CAN identifier: standard (11-bit) or extended (29-bit).
///
/// The two are different identifiers even with the same number: `0x123`
/// standard and `0x123` extended are distinct on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CanId {
    Standard(u16),
    Extended(u32),
}

impl CanId {
    /// A standard identifier, `0..=0x7FF`.
    pub fn standard(raw: u16) -> Result<Self, FrameError> {
        if raw > STANDARD_ID_MAX {
            return Err(FrameError::StandardIdOutOfRange(u32::from(raw)));
        }
        Ok(CanId::Standard(raw))
    }

    /// An extended identifier, `0..=0x1FFF_FFFF`.
    pub fn extended(raw: u32) -> Result<Self, FrameError> {
        if raw > EXTENDED_ID_MAX {
            return Err(FrameError::ExtendedIdOutOfRange(raw));
        }
        Ok(CanId::Extended(raw))
    }

    /// The identifier's number.
    pub fn raw(self) -> u32 {
        match self {
            CanId::Standard(id) => u32::from(id),
            CanId::Extended(id) => id,
        }
    }

    pub fn is_extended(self) -> bool {
        matches!(self, CanId::Extended(_))
    }
}

/// A classic CAN frame: data frame (0..=8 bytes) or remote frame (RTR, a DLC
/// and no data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CanFrame {
    id: CanId,
    data: [u8; MAX_DATA_LEN],
    /// The DLC: number of data bytes, or the requested length of a remote
    /// frame.
    dlc: u8,
    rtr: bool,
    /// Stuff bits the frame needs on the wire, worked out once when it is
    /// made: every frame is measured several times (both ends of a link,
    /// the bus-load meter), and the content never changes.
    stuff_bits: u8,
}

impl CanFrame {
    /// A data frame carrying `data` (at most 8 bytes).
    pub fn new(id: CanId, data: &[u8]) -> Result<Self, FrameError> {
        if data.len() > MAX_DATA_LEN {
            return Err(FrameError::DataTooLong(data.len()));
        }
        let mut bytes = [0u8; MAX_DATA_LEN];
        bytes[..data.len()].copy_from_slice(data);
        Ok(CanFrame {
            id,
            data: bytes,
            dlc: data.len() as u8,
            rtr: false,
            stuff_bits: 0,
        }
        .with_stuff_bits())
    }

    /// A remote (RTR) frame asking for `dlc` bytes (0..=8).
    pub fn remote(id: CanId, dlc: u8) -> Result<Self, FrameError> {
        if usize::from(dlc) > MAX_DATA_LEN {
            return Err(FrameError::DlcOutOfRange(dlc));
        }
        Ok(CanFrame {
            id,
            data: [0; MAX_DATA_LEN],
            dlc,
            rtr: true,
            stuff_bits: 0,
        }
        .with_stuff_bits())
    }

    fn with_stuff_bits(mut self) -> Self {
        let mut bits = FrameBits::up_to_data(&self);
        let crc = bits.crc15();
        bits.push_bits(u32::from(crc), 15);
        // At most (118 − 1) / 4 = 29.
        self.stuff_bits = bits.count_stuff_bits() as u8;
        self
    }

    pub fn id(&self) -> CanId {
        self.id
    }

    /// The data bytes; empty for a remote frame.
    pub fn data(&self) -> &[u8] {
        if self.rtr {
            &[]
        } else {
            &self.data[..usize::from(self.dlc)]
        }
    }

    /// The data length code (0..=8): data length, or the length a remote
    /// frame asks for.
    pub fn dlc(&self) -> u8 {
        self.dlc
    }

    pub fn is_remote(&self) -> bool {
        self.rtr
    }

    /// A data frame with an 11-bit identifier (what the maslow contract
    /// uses end to end).
    pub fn standard(id: u16, data: &[u8]) -> Result<Self, FrameError> {
        CanFrame::new(CanId::standard(id)?, data)
    }

    /// The 11-bit identifier of a standard data frame; `None` for extended
    /// or remote frames, which the maslow contract never carries.
    pub fn standard_data_id(&self) -> Option<u16> {
        match self.id {
            CanId::Standard(id) if !self.rtr => Some(id),
            _ => None,
        }
    }

    /// The frame's CRC-15 (polynomial 0x4599, initial value 0) over SOF
    /// through the end of the data field, unstuffed.
    pub fn crc15(&self) -> u16 {
        FrameBits::up_to_data(self).crc15()
    }
}

/// A frame's length on the wire in bits, from SOF through the 3-bit
/// interframe space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitLength {
    /// Bits without stuffing: SOF, arbitration, control, data, CRC-15, CRC
    /// delimiter, ACK slot and delimiter, 7 EOF and 3 IFS.
    pub unstuffed: u32,
    /// Stuff bits this frame's content actually needs.
    pub stuff_bits: u32,
    /// Most stuff bits any frame of this format and DLC can need:
    /// `floor((g + 8n - 1) / 4)` with `g` = 34 (standard) or 54 (extended)
    /// stuffable control bits and `n` data bytes (Davis et al., 2007).
    pub worst_case_stuff_bits: u32,
}

impl BitLength {
    /// This frame's bits on the wire, stuff bits included.
    pub fn actual(&self) -> u32 {
        self.unstuffed + self.stuff_bits
    }

    /// The longest any frame of this format and DLC can be.
    pub fn worst_case(&self) -> u32 {
        self.unstuffed + self.worst_case_stuff_bits
    }

    /// Time on the bus for the actual length at `bitrate_bps`, in seconds.
    pub fn duration_s(&self, bitrate_bps: u32) -> f64 {
        f64::from(self.actual()) / f64::from(bitrate_bps)
    }
}

/// Bits after the CRC sequence, never stuffed: CRC delimiter, ACK slot, ACK
/// delimiter, 7 EOF, 3 IFS.
const TRAILER_BITS: u32 = 1 + 1 + 1 + 7 + 3;

/// The frame's length on the wire, with the stuff bits its content needs
/// and the worst case for its format and DLC.
pub fn bit_length(frame: &CanFrame) -> BitLength {
    // SOF, arbitration, control: 19 bits standard, 39 extended; then the
    // data and the 15-bit CRC.
    let header = if frame.id.is_extended() { 39 } else { 19 };
    let stuffable = header + 8 * frame.data().len() as u32 + 15;
    BitLength {
        unstuffed: stuffable + TRAILER_BITS,
        stuff_bits: u32::from(frame.stuff_bits),
        worst_case_stuff_bits: (stuffable - 1) / 4,
    }
}

/// The frame's bits, unstuffed, in one word: the first bit (SOF) is the
/// most significant of the `len` low bits (0 dominant, 1 recessive). The
/// longest stuffable sequence, an extended frame with 8 bytes and its CRC,
/// is 54 + 64 = 118 bits. Every frame on the bus is measured several times
/// (links, bus-load meter), so this is a word, not an array of bits.
struct FrameBits {
    word: u128,
    len: u32,
}

impl FrameBits {
    /// SOF through the end of the data field.
    fn up_to_data(frame: &CanFrame) -> Self {
        let mut b = FrameBits { word: 0, len: 0 };
        let rtr = u32::from(frame.rtr);
        b.push_bits(0, 1); // SOF
        match frame.id {
            CanId::Standard(id) => {
                b.push_bits(u32::from(id), 11);
                b.push_bits(rtr, 1);
                b.push_bits(0, 1); // IDE
                b.push_bits(0, 1); // r0
            }
            CanId::Extended(id) => {
                b.push_bits(id >> 18, 11); // base id
                b.push_bits(1, 1); // SRR
                b.push_bits(1, 1); // IDE
                b.push_bits(id & 0x3_FFFF, 18); // id extension
                b.push_bits(rtr, 1);
                b.push_bits(0, 1); // r1
                b.push_bits(0, 1); // r0
            }
        }
        b.push_bits(u32::from(frame.dlc), 4);
        for &byte in frame.data() {
            b.push_bits(u32::from(byte), 8);
        }
        b
    }

    /// Append the `n` low bits of `value`, most significant first.
    fn push_bits(&mut self, value: u32, n: u32) {
        let mask = if n >= 32 { u32::MAX } else { (1u32 << n) - 1 };
        self.word = (self.word << n) | u128::from(value & mask);
        self.len += n;
    }

    /// Bit `k` counted from the first (SOF = 0).
    #[cfg(test)]
    fn bit(&self, k: u32) -> u8 {
        ((self.word >> (self.len - 1 - k)) & 1) as u8
    }

    /// CAN CRC-15: polynomial x^15 + x^14 + x^10 + x^8 + x^7 + x^4 + x^3 + 1
    /// (0x4599), initial value 0, over the bits so far: the leading
    /// `len % 8` bits one by one, then whole bytes through a table.
    fn crc15(&self) -> u16 {
        let mut crc: u16 = 0;
        let head = self.len % 8;
        for k in 0..head {
            let bit = ((self.word >> (self.len - 1 - k)) & 1) as u16;
            let next = bit ^ ((crc >> 14) & 1);
            crc = (crc << 1) & 0x7FFF;
            if next != 0 {
                crc ^= CRC15_POLY;
            }
        }
        let mut left = self.len - head;
        while left > 0 {
            left -= 8;
            let byte = ((self.word >> left) & 0xFF) as u16;
            let idx = usize::from(((crc >> 7) ^ byte) & 0xFF);
            crc = ((crc << 8) ^ CRC15_TABLE[idx]) & 0x7FFF;
        }
        crc
    }

    /// Stuff bits a transmitter inserts: after five equal bits, one of the
    /// opposite level, which itself starts the next run. The first bit
    /// starts a run; the rest go through [`STUFF_TABLE`], the leading
    /// `(len − 1) % 8` bits one by one and then whole bytes (a frame has up
    /// to ~50 runs; a byte at a time is ten times faster than run by run,
    /// and every frame of a run is counted).
    fn count_stuff_bits(&self) -> u32 {
        if self.len == 0 {
            return 0;
        }
        let bit = |k: u32| ((self.word >> (self.len - 1 - k)) & 1) as u8;
        let mut state = StuffState::start(bit(0));
        let mut stuffed = 0;
        let head = (self.len - 1) % 8;
        for k in 1..=head {
            let (next, n) = state.after_bit(bit(k));
            state = next;
            stuffed += u32::from(n);
        }
        let mut left = self.len - 1 - head;
        while left > 0 {
            left -= 8;
            let byte = ((self.word >> left) & 0xFF) as usize;
            let (next, n) = STUFF_TABLE[state.0 as usize][byte];
            state = next;
            stuffed += u32::from(n);
        }
        stuffed
    }
}

/// Where bit stuffing stands: the level of the current run (a stuff bit
/// included) and its length, 1..=4, as `level * 4 + length − 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StuffState(u8);

impl StuffState {
    /// After a run's first bit.
    const fn start(level: u8) -> Self {
        StuffState(level * 4)
    }

    /// The state after one more bit, and the stuff bits it takes (0 or 1):
    /// the fifth equal bit is followed by a stuff bit of the other level,
    /// which is the first of the next run.
    const fn after_bit(self, bit: u8) -> (Self, u8) {
        let (level, length) = (self.0 / 4, self.0 % 4 + 1);
        if bit != level {
            (StuffState::start(bit), 0)
        } else if length == 4 {
            (StuffState::start(1 - bit), 1)
        } else {
            (StuffState(self.0 + 1), 0)
        }
    }
}

/// For each [`StuffState`] and byte (most significant bit first): the state
/// after it and the stuff bits it takes.
const STUFF_TABLE: [[(StuffState, u8); 256]; 8] = {
    let mut table = [[(StuffState(0), 0u8); 256]; 8];
    let mut s = 0;
    while s < 8 {
        let mut byte = 0;
        while byte < 256 {
            let (mut state, mut stuffed) = (StuffState(s as u8), 0u8);
            let mut k = 0;
            while k < 8 {
                let (next, n) = state.after_bit(((byte >> (7 - k)) & 1) as u8);
                state = next;
                stuffed += n;
                k += 1;
            }
            table[s][byte] = (state, stuffed);
            byte += 1;
        }
        s += 1;
    }
    table
};

/// The CAN CRC-15 polynomial without its x^15 term.
const CRC15_POLY: u16 = 0x4599;

/// CRC-15 of each byte value, fed most significant bit first.
const CRC15_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 7;
        let mut k = 0;
        while k < 8 {
            crc = if crc & 0x4000 != 0 {
                ((crc << 1) ^ CRC15_POLY) & 0x7FFF
            } else {
                (crc << 1) & 0x7FFF
            };
            k += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::strategy::arb_frame;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn standard_frames_and_their_ids() {
        let f = CanFrame::standard(0x2F0, &[1, 2]).unwrap();
        assert_eq!(f.standard_data_id(), Some(0x2F0));
        assert!(CanFrame::standard(0x800, &[]).is_err());
        let ext = CanFrame::new(CanId::Extended(0x2F0), &[]).unwrap();
        assert_eq!(ext.standard_data_id(), None);
        let rtr = CanFrame::remote(CanId::Standard(0x2F0), 2).unwrap();
        assert_eq!(rtr.standard_data_id(), None);
    }

    #[test]
    fn ids_are_checked() {
        assert_eq!(CanId::standard(0x7FF), Ok(CanId::Standard(0x7FF)));
        assert_eq!(
            CanId::standard(0x800),
            Err(FrameError::StandardIdOutOfRange(0x800))
        );
        assert_eq!(
            CanId::extended(0x1FFF_FFFF),
            Ok(CanId::Extended(0x1FFF_FFFF))
        );
        assert_eq!(
            CanId::extended(0x2000_0000),
            Err(FrameError::ExtendedIdOutOfRange(0x2000_0000))
        );
        assert_ne!(CanId::Standard(0x123), CanId::Extended(0x123));
        assert_eq!(CanId::Extended(0x123).raw(), 0x123);
    }

    #[test]
    fn frames_are_checked() {
        let id = CanId::Standard(0x123);
        assert_eq!(CanFrame::new(id, &[0; 9]), Err(FrameError::DataTooLong(9)));
        assert_eq!(CanFrame::remote(id, 9), Err(FrameError::DlcOutOfRange(9)));
        let f = CanFrame::new(id, &[0xDE, 0xAD]).unwrap();
        assert_eq!(f.data(), &[0xDE, 0xAD]);
        assert_eq!(f.dlc(), 2);
        assert!(!f.is_remote());
        let r = CanFrame::remote(id, 4).unwrap();
        assert_eq!(r.data(), &[] as &[u8]);
        assert_eq!(r.dlc(), 4);
        assert!(r.is_remote());
    }

    fn from_bits(bits: &[u8]) -> FrameBits {
        let mut b = FrameBits { word: 0, len: 0 };
        for &x in bits {
            b.push_bits(u32::from(x), 1);
        }
        b
    }

    fn count_stuff_bits(bits: &[u8]) -> u32 {
        from_bits(bits).count_stuff_bits()
    }

    /// The reference: CRC and stuffing over the bits one by one, as the
    /// standard draws them.
    fn reference_crc_and_stuffing(bits: &[u8]) -> (u16, u32) {
        let mut crc: u16 = 0;
        for &bit in bits {
            let next = bit ^ ((crc >> 14) & 1) as u8;
            crc = (crc << 1) & 0x7FFF;
            if next != 0 {
                crc ^= 0x4599;
            }
        }
        let mut all = bits.to_vec();
        all.extend((0..15).rev().map(|i| ((crc >> i) & 1) as u8));
        let (mut stuffed, mut last, mut run) = (0, 2u8, 0);
        for &bit in &all {
            if bit == last {
                run += 1;
            } else {
                last = bit;
                run = 1;
            }
            if run == 5 {
                stuffed += 1;
                last ^= 1;
                run = 1;
            }
        }
        (crc, stuffed)
    }

    proptest! {
        #[test]
        fn word_wide_bits_match_the_bit_by_bit_reference(f in arb_frame()) {
            let b = FrameBits::up_to_data(&f);
            let bits: Vec<u8> = (0..b.len).map(|k| b.bit(k)).collect();
            let (crc, stuffed) = reference_crc_and_stuffing(&bits);
            prop_assert_eq!(f.crc15(), crc);
            prop_assert_eq!(bit_length(&f).stuff_bits, stuffed);
            prop_assert_eq!(bit_length(&f).unstuffed, bits.len() as u32 + 15 + TRAILER_BITS);
        }
    }

    #[test]
    fn stuff_counting() {
        // 5 zeros -> 1 stuff bit; the stuff bit (1) starts the next run, so
        // 1 + four 1s is another run of 5.
        assert_eq!(count_stuff_bits(&[0, 0, 0, 0, 0]), 1);
        assert_eq!(count_stuff_bits(&[0, 0, 0, 0, 0, 1, 1, 1, 1]), 2);
        assert_eq!(count_stuff_bits(&[0, 0, 0, 0, 1, 1, 1, 1]), 0);
        assert_eq!(count_stuff_bits(&[0; 10]), 2);
    }

    /// Standard id 0x000, no data, data frame. Unstuffed bits:
    ///
    /// ```text
    /// SOF 0 | id 00000000000 | RTR 0 IDE 0 r0 0 | DLC 0000
    /// ```
    ///
    /// 19 zero bits, so the CRC-15 of this all-zero input is 0 (the feedback
    /// never fires): 15 more zeros. The 34 stuffable bits are all zeros; a
    /// stuff bit (1) goes in after every 5th zero and the zeros after it
    /// start a new run, so stuff bits follow zeros 5, 10, 15, 20, 25 and 30:
    /// 6 stuff bits (34 = 6 * 5 + 4). Unstuffed length 34 + 13 = 47, actual
    /// 53. Worst case: (34 - 1) / 4 = 8 stuff bits, 55.
    #[test]
    fn bit_length_all_zero_standard_frame() {
        let f = CanFrame::new(CanId::Standard(0), &[]).unwrap();
        assert_eq!(f.crc15(), 0);
        let len = bit_length(&f);
        assert_eq!(len.unstuffed, 47);
        assert_eq!(len.stuff_bits, 6);
        assert_eq!(len.actual(), 53);
        assert_eq!(len.worst_case(), 55);
    }

    /// Standard id 0x123, data DE AD. Unstuffed, by field:
    ///
    /// ```text
    /// SOF 0 | id 001 0010 0011 | RTR 0 IDE 0 r0 0 | DLC 0010
    /// data 1101 1110 1010 1101 | CRC 000 1011 0110 1110 (0x0B6E)
    /// ```
    ///
    /// 35 bits up to the data + 15 CRC = 50 stuffable bits. The only run of
    /// five equal bits is RTR, IDE, r0 and the DLC's first two zeros, so one
    /// stuff bit (a 1 after them); the longest other runs are the four 1s in
    /// 0xDE and three 0s. Length 50 + 13 + 1 = 64 bits. The CRC was checked
    /// by polynomial long division of the 35 bits followed by 15 zeros by
    /// x^15 + x^14 + x^10 + x^8 + x^7 + x^4 + x^3 + 1 (a separate
    /// implementation, in Python).
    #[test]
    fn bit_length_of_a_known_frame() {
        let f = CanFrame::new(CanId::Standard(0x123), &[0xDE, 0xAD]).unwrap();
        assert_eq!(f.crc15(), 0x0B6E);
        let len = bit_length(&f);
        assert_eq!(len.unstuffed, 63);
        assert_eq!(len.stuff_bits, 1);
        assert_eq!(len.actual(), 64);
        assert_eq!(len.worst_case_stuff_bits, (50 - 1) / 4);
        assert!((len.duration_s(500_000) - 128e-6).abs() < 1e-12);
    }

    /// Worst cases from the literature: a standard frame with 8 bytes is at
    /// most 135 bits with the 3 IFS bits (111 + 24), an extended one 160
    /// (131 + 29).
    #[test]
    fn worst_case_lengths_match_the_literature() {
        let s = CanFrame::new(CanId::Standard(0x123), &[0; 8]).unwrap();
        assert_eq!(bit_length(&s).unstuffed, 111);
        assert_eq!(bit_length(&s).worst_case(), 135);
        let e = CanFrame::new(CanId::Extended(0x123), &[0; 8]).unwrap();
        assert_eq!(bit_length(&e).unstuffed, 131);
        assert_eq!(bit_length(&e).worst_case(), 160);
        let r = CanFrame::remote(CanId::Standard(0x123), 8).unwrap();
        assert_eq!(bit_length(&r).unstuffed, 47);
    }

    proptest! {
        #[test]
        fn actual_stuffing_never_exceeds_worst_case(f in arb_frame()) {
            let len = bit_length(&f);
            prop_assert!(len.stuff_bits <= len.worst_case_stuff_bits);
        }
    }
}

/// Proptest strategies shared by the crate's tests.
#[cfg(test)]
pub(crate) mod strategy {
    use super::*;
    use proptest::prelude::*;

    /// Any classic frame: standard or extended id, data or remote.
    pub(crate) fn arb_frame() -> impl Strategy<Value = CanFrame> {
        let id = prop_oneof![
            (0..=STANDARD_ID_MAX).prop_map(CanId::Standard),
            (0..=EXTENDED_ID_MAX).prop_map(CanId::Extended),
        ];
        (
            id,
            proptest::collection::vec(any::<u8>(), 0..=8),
            any::<bool>(),
        )
            .prop_map(|(id, data, rtr)| {
                if rtr {
                    CanFrame::remote(id, data.len() as u8).expect("dlc <= 8")
                } else {
                    CanFrame::new(id, &data).expect("at most 8 bytes")
                }
            })
    }
}
