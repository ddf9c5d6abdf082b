//! The engine's io_uring boundary: every `unsafe` submission lives here, each with its SAFETY
//! note; the rest of the engine sees safe types.
//!
//! [`Reactor`] is a shard's event loop core: the shard sleeps in `io_uring_enter` (with a
//! timeout), and wakes for completions. Other threads wake it through an eventfd whose read is
//! always armed on the ring ([`Waker`]), so commands and, later, storage and fabric completions
//! all arrive through the same ring, with no busy spin while idle.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::time::Duration;

use io_uring::{IoUring, opcode, types};
use nix::sys::eventfd::{EfdFlags, EventFd};

const CHECK_TAG: u64 = 0x5eed;
const WAKE_TAG: u64 = 0xeefd;

/// Wakes a [`Reactor`] from any thread.
#[derive(Clone)]
pub struct Waker(Arc<EventFd>);

impl Waker {
    pub fn wake(&self) -> io::Result<()> {
        self.0.write(1).map(|_| ()).map_err(io::Error::from)
    }
}

/// What woke the reactor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// A [`Waker`] fired.
    Woken,
    /// The timeout passed with nothing to do.
    Timeout,
}

/// A shard's ring with an always-armed wake-up read.
pub struct Reactor {
    // Field order is drop order: the ring (and any request it holds) goes before the buffer
    // and the eventfd that an armed read refers to.
    ring: IoUring,
    wake_buf: Box<[u8; 8]>,
    eventfd: Arc<EventFd>,
    armed: bool,
}

impl Reactor {
    /// Creates a ring of `entries`, proves it works with a NOP, and returns it with its waker.
    pub fn new(entries: u32) -> io::Result<(Reactor, Waker)> {
        let mut ring = IoUring::new(entries)?;
        let nop = opcode::Nop::new().build().user_data(CHECK_TAG);
        // SAFETY: a NOP references no buffer or file, so nothing has to outlive it.
        unsafe { ring.submission().push(&nop) }
            .map_err(|_| io::Error::other("io_uring submission queue full at start"))?;
        ring.submit_and_wait(1)?;
        let completion = ring
            .completion()
            .next()
            .map(|c| (c.user_data(), c.result()));
        match completion {
            Some((CHECK_TAG, 0)) => {}
            Some((_, r)) => {
                return Err(io::Error::other(format!("io_uring NOP completed with {r}")));
            }
            None => return Err(io::Error::other("io_uring NOP did not complete")),
        }
        let eventfd =
            Arc::new(EventFd::from_flags(EfdFlags::EFD_CLOEXEC).map_err(io::Error::from)?);
        let waker = Waker(eventfd.clone());
        Ok((
            Reactor {
                ring,
                wake_buf: Box::new([0; 8]),
                eventfd,
                armed: false,
            },
            waker,
        ))
    }

    fn arm(&mut self) -> io::Result<()> {
        if self.armed {
            return Ok(());
        }
        let fd = types::Fd(self.eventfd.as_fd().as_raw_fd());
        let read = opcode::Read::new(fd, self.wake_buf.as_mut_ptr(), 8)
            .build()
            .user_data(WAKE_TAG);
        // SAFETY: the buffer is heap-allocated, owned by this reactor and dropped only after the
        // ring (field order), and the eventfd is kept alive by the same struct; the read is the
        // only request that uses them and at most one is outstanding (`armed`).
        unsafe { self.ring.submission().push(&read) }
            .map_err(|_| io::Error::other("io_uring submission queue full"))?;
        self.armed = true;
        Ok(())
    }

    /// Sleeps in the ring until woken or `timeout` passes.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<Wake> {
        self.arm()?;
        let ts = types::Timespec::from(timeout);
        let args = types::SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e)
                if e.raw_os_error() == Some(nix::errno::Errno::ETIME as i32)
                    || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let mut woken = false;
        for c in self.ring.completion() {
            if c.user_data() == WAKE_TAG {
                self.armed = false;
                woken = true;
            }
        }
        Ok(if woken { Wake::Woken } else { Wake::Timeout })
    }
}
