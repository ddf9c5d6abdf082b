//! The io_uring O_DIRECT block path on a real file: data round-trips, slots cannot be reused
//! while in flight, and misaligned requests are refused before they reach the kernel.

use daos_engine::bdev::{ALIGN, Op, SubmitError, UringBdev};

#[test]
fn write_then_read_round_trips_and_guards_slots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bdev");
    let mut dev = UringBdev::open(&path, 2 * ALIGN, 2, 1 << 20, true).expect("open");
    assert_eq!(std::fs::metadata(&path).expect("meta").len(), 1 << 20);
    dev.buf_mut(0).expect("idle").fill(0xa5);
    dev.push(0, Op::Write, 3 * ALIGN as u64).expect("push");
    assert!(
        dev.buf_mut(0).is_none(),
        "an in-flight buffer must not be handed out"
    );
    assert!(matches!(
        dev.push(0, Op::Write, 0),
        Err(SubmitError::SlotBusy(0))
    ));
    assert!(matches!(
        dev.push(1, Op::Read, 100),
        Err(SubmitError::Unaligned(100))
    ));
    assert!(matches!(
        dev.push(7, Op::Read, 0),
        Err(SubmitError::SlotBusy(7))
    ));
    dev.submit(true).expect("submit");
    let mut done = Vec::new();
    while done.is_empty() {
        dev.reap(|c| done.push((c.slot, c.result.expect("write ok"))));
        if done.is_empty() {
            dev.submit(true).expect("wait");
        }
    }
    assert_eq!(done, vec![(0, 2 * ALIGN)]);
    dev.push(1, Op::Read, 3 * ALIGN as u64).expect("push read");
    let mut got = 0;
    while got == 0 {
        dev.submit(true).expect("submit");
        dev.reap(|c| {
            assert_eq!(c.result.expect("read ok"), 2 * ALIGN);
            got += 1;
        });
    }
    assert!(dev.buf(1).expect("idle").iter().all(|&b| b == 0xa5));
    assert_eq!(dev.in_flight(), 0);
    assert!(
        UringBdev::open(&path, 1000, 1, 0, false).is_err(),
        "unaligned block size"
    );
}
