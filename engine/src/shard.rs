//! Shard threads: one per system shard, target and helper, each pinned to its core.
//!
//! A shard owns everything it touches: its io_uring ring (created and checked with a NOP at
//! start, so a kernel without io_uring fails the engine at start with a clear message) and its
//! bounded command queue. Nothing is shared between shards; the engine talks to a shard only
//! through that queue, and a full queue is reported to the caller (back-pressure), never grown.
//!
//! Until the data plane lands, a shard has no I/O to poll, so it blocks on its queue instead of
//! spinning (busy-polling comes with the target store, as the design sketches).

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

use crate::coremap::Placement;

/// Commands a shard accepts.
#[derive(Debug)]
pub enum Command {
    /// Answer with the CPUs this shard may run on.
    Ping(SyncSender<Vec<u32>>),
    Stop,
}

/// Depth of a shard's command queue.
pub const QUEUE_DEPTH: usize = 64;
/// io_uring entries per shard.
pub const RING_ENTRIES: u32 = 64;

/// A shard failed to start.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("shard {index}: cannot pin to core {core}: {source}")]
    Pin {
        index: usize,
        core: u32,
        source: nix::Error,
    },
    #[error(
        "shard {index}: cannot set up io_uring: {source} (needs Linux 5.6+; check seccomp and kernel.io_uring_disabled)"
    )]
    Ring {
        index: usize,
        source: std::io::Error,
    },
    #[error("shard {index}: cannot start a thread: {source}")]
    Spawn {
        index: usize,
        source: std::io::Error,
    },
    #[error("shard {index} stopped before it was ready")]
    Died { index: usize },
    #[error("shard {index}: command queue full")]
    Busy { index: usize },
}

/// A running shard.
pub struct Shard {
    pub index: usize,
    pub placement: Placement,
    tx: SyncSender<Command>,
    thread: Option<JoinHandle<()>>,
}

/// Starts a shard and waits until it is pinned and its ring works.
pub fn spawn(index: usize, placement: Placement) -> Result<Shard, ShardError> {
    let (tx, rx) = mpsc::sync_channel(QUEUE_DEPTH);
    let (ready_tx, ready_rx) = mpsc::sync_channel(1);
    let thread = thread::Builder::new()
        .name(format!("shard-{index}"))
        .spawn(move || match setup(index, placement.core) {
            Ok(ring) => {
                let _ = ready_tx.send(Ok(()));
                run(ring, rx);
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
        })
        .map_err(|source| ShardError::Spawn { index, source })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(Shard {
            index,
            placement,
            tx,
            thread: Some(thread),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(ShardError::Died { index })
        }
    }
}

fn setup(index: usize, core: u32) -> Result<io_uring::IoUring, ShardError> {
    let mut set = CpuSet::new();
    set.set(core as usize).map_err(|source| ShardError::Pin {
        index,
        core,
        source,
    })?;
    sched_setaffinity(Pid::from_raw(0), &set).map_err(|source| ShardError::Pin {
        index,
        core,
        source,
    })?;
    let ring = crate::uring::new_checked(RING_ENTRIES)
        .map_err(|source| ShardError::Ring { index, source })?;
    Ok(ring)
}

fn run(_ring: io_uring::IoUring, rx: Receiver<Command>) {
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(Command::Ping(reply)) => {
                let _ = reply.try_send(allowed_cpus());
            }
            Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// CPUs the calling thread may run on.
pub fn allowed_cpus() -> Vec<u32> {
    let Ok(set) = sched_getaffinity(Pid::from_raw(0)) else {
        return Vec::new();
    };
    (0..CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .map(|c| c as u32)
        .collect()
}

impl Shard {
    /// Sends a command without blocking; a full queue is [`ShardError::Busy`].
    pub fn send(&self, cmd: Command) -> Result<(), ShardError> {
        self.tx.try_send(cmd).map_err(|e| match e {
            TrySendError::Full(_) => ShardError::Busy { index: self.index },
            TrySendError::Disconnected(_) => ShardError::Died { index: self.index },
        })
    }

    /// Asks the shard for its CPUs; `None` if it does not answer within `timeout`.
    pub fn ping(&self, timeout: Duration) -> Option<Vec<u32>> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Command::Ping(tx)).ok()?;
        rx.recv_timeout(timeout).ok()
    }

    /// Stops the shard and waits for its thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        let _ = self.tx.try_send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coremap::Role;

    #[test]
    fn shards_are_pinned_and_answer() {
        let cores = allowed_cpus();
        let core = *cores.last().expect("at least one cpu");
        let s = spawn(
            0,
            Placement {
                role: Role::Target(0),
                core,
            },
        )
        .expect("spawn");
        assert_eq!(s.ping(Duration::from_secs(5)), Some(vec![core]));
        s.stop();
    }

    #[test]
    fn pinning_to_an_absent_core_fails_clearly() {
        let err = spawn(
            3,
            Placement {
                role: Role::Target(2),
                core: 4000,
            },
        )
        .err()
        .expect("no core 4000");
        assert!(
            err.to_string()
                .starts_with("shard 3: cannot pin to core 4000"),
            "{err}"
        );
    }
}
