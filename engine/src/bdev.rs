//! The io_uring block path: `O_DIRECT` reads and writes of aligned buffers on a file (bdev
//! class `file`) or a block device (`kdev`), with a fixed queue depth.
//!
//! Every buffer is allocated when the device is opened, one per queue slot, so an I/O costs no
//! allocation and no syscall beyond `io_uring_enter`. All `unsafe` lives in this module, each
//! block with its SAFETY note.

use std::alloc::Layout;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::ptr::NonNull;

use io_uring::{IoUring, opcode, types};

/// Alignment of buffers and offsets for `O_DIRECT`.
pub const ALIGN: usize = 4096;

/// A zeroed, [`ALIGN`]-aligned heap buffer.
struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize) -> io::Result<AlignedBuf> {
        let layout = Layout::from_size_align(len.max(ALIGN), ALIGN)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: the layout has a non-zero size (at least ALIGN).
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).ok_or_else(|| io::Error::other("out of memory"))?;
        Ok(AlignedBuf { ptr, len })
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` points at `len` initialised (zeroed) bytes owned by this buffer, and
        // `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: as above, shared.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        let layout = Layout::from_size_align(self.len.max(ALIGN), ALIGN)
            .expect("layout was valid at allocation");
        // SAFETY: allocated in `new` with this very layout, freed once.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout) }
    }
}

/// Read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
}

/// A finished I/O: its slot and the kernel's result (bytes moved, or an error).
#[derive(Debug)]
pub struct Completion {
    pub slot: usize,
    pub result: io::Result<usize>,
}

/// Why an I/O could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("queue slot {0} is out of range or still in flight")]
    SlotBusy(usize),
    #[error("offset {0} is not a multiple of {ALIGN} bytes (O_DIRECT)")]
    Unaligned(u64),
    #[error("submission queue full")]
    QueueFull,
}

/// A file or block device opened for `O_DIRECT` I/O through one io_uring.
pub struct UringBdev {
    // Field order is drop order, but `Drop` below first waits for every in-flight request, so
    // no request can outlive the buffers or the file.
    ring: IoUring,
    bufs: Vec<AlignedBuf>,
    busy: Vec<bool>,
    in_flight: usize,
    file: File,
    block: usize,
}

impl UringBdev {
    /// Opens `path` (created if missing and `create`) with `depth` slots of `block` bytes each.
    /// A file is extended to `size` bytes; a device must already be that large.
    pub fn open(
        path: &Path,
        block: usize,
        depth: usize,
        size: u64,
        create: bool,
    ) -> io::Result<UringBdev> {
        if block == 0 || !block.is_multiple_of(ALIGN) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("block size {block} is not a multiple of {ALIGN} bytes (O_DIRECT)"),
            ));
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .custom_flags(nix::fcntl::OFlag::O_DIRECT.bits())
            .open(path)?;
        let meta = file.metadata()?;
        if meta.is_file() && meta.len() < size {
            file.set_len(size)?;
        }
        let ring = IoUring::new(depth.next_power_of_two().max(2) as u32)?;
        let bufs = (0..depth)
            .map(|_| AlignedBuf::new(block))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(UringBdev {
            ring,
            bufs,
            busy: vec![false; depth],
            in_flight: 0,
            file,
            block,
        })
    }

    /// Bytes per slot.
    pub fn block(&self) -> usize {
        self.block
    }

    /// Number of slots.
    pub fn depth(&self) -> usize {
        self.bufs.len()
    }

    /// I/Os submitted and not yet reaped.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The buffer of an idle slot, to fill before a write or read after a read.
    pub fn buf_mut(&mut self, slot: usize) -> Option<&mut [u8]> {
        if self.busy.get(slot).copied() == Some(false) {
            Some(self.bufs[slot].as_mut_slice())
        } else {
            None
        }
    }

    /// The buffer of an idle slot.
    pub fn buf(&self, slot: usize) -> Option<&[u8]> {
        if self.busy.get(slot).copied() == Some(false) {
            Some(self.bufs[slot].as_slice())
        } else {
            None
        }
    }

    /// Queues one I/O of the slot's whole buffer at `offset`; [`UringBdev::submit`] sends it.
    pub fn push(&mut self, slot: usize, op: Op, offset: u64) -> Result<(), SubmitError> {
        if self.busy.get(slot).copied() != Some(false) {
            return Err(SubmitError::SlotBusy(slot));
        }
        if !offset.is_multiple_of(ALIGN as u64) {
            return Err(SubmitError::Unaligned(offset));
        }
        let fd = types::Fd(self.file.as_raw_fd());
        let ptr = self.bufs[slot].ptr.as_ptr();
        let len = self.block as u32;
        let entry = match op {
            Op::Read => opcode::Read::new(fd, ptr, len).offset(offset).build(),
            Op::Write => opcode::Write::new(fd, ptr, len).offset(offset).build(),
        }
        .user_data(slot as u64);
        // SAFETY: the buffer belongs to this slot, which is marked busy until its completion is
        // reaped, so nothing else touches or frees it meanwhile; the file stays open as long as
        // `self`, and `Drop` reaps every in-flight request before either goes.
        unsafe { self.ring.submission().push(&entry) }.map_err(|_| SubmitError::QueueFull)?;
        self.busy[slot] = true;
        self.in_flight += 1;
        Ok(())
    }

    /// Sends queued I/Os to the kernel and, if `wait`, blocks until at least one completes.
    pub fn submit(&mut self, wait: bool) -> io::Result<()> {
        let want = usize::from(wait && self.in_flight > 0);
        self.ring.submit_and_wait(want)?;
        Ok(())
    }

    /// Hands every available completion to `f`, freeing its slot first.
    pub fn reap(&mut self, mut f: impl FnMut(Completion)) {
        let mut cq = self.ring.completion();
        cq.sync();
        for cqe in &mut cq {
            let slot = cqe.user_data() as usize;
            if let Some(b) = self.busy.get_mut(slot) {
                *b = false;
                self.in_flight -= 1;
            }
            let r = cqe.result();
            let result = if r < 0 {
                Err(io::Error::from_raw_os_error(-r))
            } else {
                Ok(r as usize)
            };
            f(Completion { slot, result });
        }
    }
}

impl Drop for UringBdev {
    fn drop(&mut self) {
        while self.in_flight > 0 {
            if self.ring.submit_and_wait(1).is_err() {
                // The kernel may still write into the buffers: leak them rather than free
                // memory it could touch.
                std::mem::forget(std::mem::take(&mut self.bufs));
                break;
            }
            self.reap(|_| {});
        }
    }
}
