//! The engine's io_uring boundary: every `unsafe` submission lives here, each with its SAFETY
//! note; the rest of the engine sees safe functions.

use std::io;

use io_uring::{IoUring, opcode};

const CHECK_TAG: u64 = 0x5eed;

/// Creates a ring and proves it works by completing one NOP.
pub fn new_checked(entries: u32) -> io::Result<IoUring> {
    let mut ring = IoUring::new(entries)?;
    let nop = opcode::Nop::new().build().user_data(CHECK_TAG);
    // SAFETY: a NOP references no buffer or file, so nothing has to outlive the submission.
    unsafe { ring.submission().push(&nop) }
        .map_err(|_| io::Error::other("io_uring submission queue full at start"))?;
    ring.submit_and_wait(1)?;
    let completion = ring
        .completion()
        .next()
        .map(|c| (c.user_data(), c.result()));
    match completion {
        Some((CHECK_TAG, 0)) => Ok(ring),
        Some((_, result)) => Err(io::Error::other(format!(
            "io_uring NOP completed with {result}"
        ))),
        None => Err(io::Error::other("io_uring NOP did not complete")),
    }
}
