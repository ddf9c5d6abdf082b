//! Shard threads: one per system shard, target and helper, each pinned to its core.
//!
//! A shard owns everything it touches: its io_uring [`Reactor`] (created and checked with a NOP
//! at start, so a kernel without io_uring fails the engine at start with a clear message) and
//! its bounded command queue. Nothing is shared between shards; the engine talks to a shard
//! only through that queue plus a wake-up of its ring, and a full queue is reported to the
//! caller (back-pressure), never grown.
//!
//! The loop: sleep in the ring until woken (or a second passes), drain the command queue,
//! repeat. Storage and fabric completions join the same ring with the data plane; busy-polling
//! is then an option for dedicated cores.

use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

use crate::coremap::Placement;
use crate::uring::{Reactor, Waker};

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
    waker: Waker,
    thread: Option<JoinHandle<()>>,
}

/// How long an idle shard sleeps in its ring before it looks around again.
pub const IDLE_WAIT: Duration = Duration::from_secs(1);

/// Starts a shard and waits until it is pinned and its ring works.
pub fn spawn(index: usize, placement: Placement) -> Result<Shard, ShardError> {
    spawn_with_idle(index, placement, IDLE_WAIT)
}

/// [`spawn`] with another idle wait.
pub fn spawn_with_idle(
    index: usize,
    placement: Placement,
    idle: Duration,
) -> Result<Shard, ShardError> {
    let (tx, rx) = mpsc::sync_channel(QUEUE_DEPTH);
    let (ready_tx, ready_rx) = mpsc::sync_channel(1);
    let thread = thread::Builder::new()
        .name(format!("shard-{index}"))
        .spawn(move || match setup(index, placement.core) {
            Ok((reactor, waker)) => {
                let _ = ready_tx.send(Ok(waker));
                run(reactor, rx, idle);
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
        })
        .map_err(|source| ShardError::Spawn { index, source })?;
    match ready_rx.recv() {
        Ok(Ok(waker)) => Ok(Shard {
            index,
            placement,
            tx,
            waker,
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

fn setup(index: usize, core: u32) -> Result<(Reactor, Waker), ShardError> {
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
    Reactor::new(RING_ENTRIES).map_err(|source| ShardError::Ring { index, source })
}

fn run(mut reactor: Reactor, rx: Receiver<Command>, idle: Duration) {
    loop {
        if let Err(e) = reactor.wait(idle) {
            eprintln!("ERROR: shard reactor: {e}; the shard stops");
            return;
        }
        loop {
            match rx.try_recv() {
                Ok(Command::Ping(reply)) => {
                    let _ = reply.try_send(allowed_cpus());
                }
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => break,
            }
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
        })?;
        self.waker
            .wake()
            .map_err(|_| ShardError::Died { index: self.index })
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
        let _ = self.waker.wake();
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
    fn a_sleeping_shard_is_woken_through_its_ring() {
        let core = *allowed_cpus().first().expect("a cpu");
        // Idle wait of ten minutes: only the eventfd wake-up can make it answer in time.
        let s = spawn_with_idle(
            1,
            Placement {
                role: Role::Target(1),
                core,
            },
            Duration::from_secs(600),
        )
        .expect("spawn");
        std::thread::sleep(Duration::from_millis(50));
        for _ in 0..100 {
            assert_eq!(s.ping(Duration::from_secs(5)), Some(vec![core]));
        }
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
