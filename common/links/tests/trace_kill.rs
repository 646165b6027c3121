//! A killed run keeps its trace: a child process (this test binary, run
//! again with `LINKS_TRACE_KILL_PATH` set) traces frames through a
//! `TracedBus`, then aborts without unwinding or dropping anything. Every
//! frame traced before the abort must be in the file, as a whole candump
//! `-L` line.

use links::candump::parse_line;
use links::{CanBus, CanFrame, CanId, CandumpWriter, InProcessBus, TracedBus};
use std::process::Command;

const FRAMES: u32 = 500;
const ENV: &str = "LINKS_TRACE_KILL_PATH";

fn frame(i: u32) -> CanFrame {
    CanFrame::new(CanId::Standard((i % 0x800) as u16), &i.to_be_bytes()).unwrap()
}

/// The child's part: does nothing unless run by the parent test.
#[test]
fn child_traces_then_aborts() {
    let Ok(path) = std::env::var(ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let (a, mut b) = InProcessBus::pair();
        let mut traced = TracedBus::new(a, CandumpWriter::create(&path).unwrap(), "can0");
        for i in 0..FRAMES {
            traced.send(&frame(i)).await.unwrap();
            let _ = b.try_recv();
        }
        // No flush, no drop: gone at once.
        std::process::abort();
    });
}

#[test]
fn a_killed_run_keeps_every_traced_frame() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.log");
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_traces_then_aborts",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV, &path)
        .status()
        .unwrap();
    assert!(!status.success(), "the child should have aborted");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), FRAMES as usize);
    assert!(text.ends_with('\n'));
    for (i, line) in lines.iter().enumerate() {
        let parsed = parse_line(line).unwrap();
        assert_eq!(parsed.frame, frame(i as u32));
        assert_eq!(parsed.iface, "can0");
    }
}
