//! SLCAN codec throughput: frames per second encoded and decoded.
//!
//! `Throughput::Elements` is the number of frames per iteration, so
//! criterion's "thrpt" line reads directly in frames/s. A mix of 1000
//! frames (standard and extended ids, DLC 0..=8, every 7th a remote frame)
//! is encoded into one buffer, then pushed into a `Decoder` and decoded.
//! For scale: a 500 kbit/s bus carries at most ~4 000 8-byte standard
//! frames/s (135 bits worst case each).
//!
//! Measured 2026-11-26 on the shared 2-core dev VM, `-- --warm-up-time 1
//! --measurement-time 3`, load average ~1.6, one run: encode ≈ 114 M
//! frames/s, decode (one 1000-frame push, fresh decoder) ≈ 31 M frames/s,
//! encode + push + decode frame by frame ≈ 21 M frames/s.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use links::slcan::{encode, Command, Decoder, MAX_ENCODED_LEN};
use links::{CanFrame, CanId};

fn frames(n: usize) -> Vec<CanFrame> {
    (0..n)
        .map(|i| {
            let id = if i % 3 == 0 {
                CanId::Extended((i as u32).wrapping_mul(2_654_435_761) & 0x1FFF_FFFF)
            } else {
                CanId::Standard((i as u16).wrapping_mul(40_503) & 0x7FF)
            };
            let dlc = (i % 9) as u8;
            if i % 7 == 0 {
                CanFrame::remote(id, dlc).unwrap()
            } else {
                let data: Vec<u8> = (0..dlc).map(|k| (i as u8).wrapping_add(k)).collect();
                CanFrame::new(id, &data).unwrap()
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    const N: usize = 1000;
    let frames = frames(N);
    let mut g = c.benchmark_group("slcan");
    g.throughput(Throughput::Elements(N as u64));

    let mut wire = vec![0u8; N * MAX_ENCODED_LEN];
    g.bench_function("encode", |b| {
        b.iter(|| {
            let mut at = 0;
            for f in &frames {
                at += encode(&Command::Transmit(*f), &mut wire[at..]).unwrap();
            }
            black_box(at)
        })
    });

    let mut at = 0;
    for f in &frames {
        at += encode(&Command::Transmit(*f), &mut wire[at..]).unwrap();
    }
    let encoded = &wire[..at];
    g.bench_function("decode", |b| {
        b.iter(|| {
            let mut d = Decoder::new();
            d.push(black_box(encoded));
            let mut n = 0;
            for r in d.by_ref() {
                n += usize::from(r.is_ok());
            }
            assert_eq!(n, N);
        })
    });

    g.bench_function("encode_decode", |b| {
        let mut buf = [0u8; MAX_ENCODED_LEN];
        let mut d = Decoder::new();
        b.iter(|| {
            let mut n = 0;
            for f in &frames {
                let len = encode(&Command::Transmit(*f), &mut buf).unwrap();
                d.push(&buf[..len]);
                if let Some(Ok(_)) = d.next() {
                    n += 1;
                }
            }
            assert_eq!(n, N);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
