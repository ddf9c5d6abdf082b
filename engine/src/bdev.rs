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
    /// Buffers registered with the ring (IORING_REGISTER_BUFFERS): I/Os then skip pinning
    /// user pages each time. False when the memlock limit refused it.
    fixed: bool,
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
        UringBdev::open_with(path, block, depth, size, create, true)
    }

    /// [`UringBdev::open`], with `direct` false for file systems without `O_DIRECT` (tmpfs
    /// on older kernels): then durability comes from `RWF_DSYNC` alone.
    pub fn open_with(
        path: &Path,
        block: usize,
        depth: usize,
        size: u64,
        create: bool,
        direct: bool,
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
            .custom_flags(if direct {
                nix::fcntl::OFlag::O_DIRECT.bits()
            } else {
                0
            })
            .open(path)?;
        let meta = file.metadata()?;
        if meta.is_file() && meta.len() < size {
            file.set_len(size)?;
        }
        let ring = IoUring::new(depth.next_power_of_two().max(2) as u32)?;
        let bufs = (0..depth)
            .map(|_| AlignedBuf::new(block))
            .collect::<io::Result<Vec<_>>>()?;
        let iovecs: Vec<libc::iovec> = bufs
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.ptr.as_ptr().cast(),
                iov_len: b.len,
            })
            .collect();
        // SAFETY: every iovec describes a live buffer owned by the returned value, which
        // unregisters nothing explicitly: the registration ends with the ring, dropped with
        // (and, by field order, before) the buffers.
        let fixed = unsafe { ring.submitter().register_buffers(&iovecs) }.is_ok();
        Ok(UringBdev {
            ring,
            bufs,
            busy: vec![false; depth],
            in_flight: 0,
            file,
            block,
            fixed,
        })
    }

    /// Whether the buffers are registered with the ring.
    pub fn registered(&self) -> bool {
        self.fixed
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
        let entry = match (op, self.fixed) {
            (Op::Read, true) => opcode::ReadFixed::new(fd, ptr, len, slot as u16)
                .offset(offset)
                .build(),
            (Op::Write, true) => opcode::WriteFixed::new(fd, ptr, len, slot as u16)
                .offset(offset)
                .build(),
            (Op::Read, false) => opcode::Read::new(fd, ptr, len).offset(offset).build(),
            (Op::Write, false) => opcode::Write::new(fd, ptr, len).offset(offset).build(),
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

    /// Writes `data` at `offset` through slot 0 and waits until it is durable (`RWF_DSYNC`).
    /// The write covers whole [`ALIGN`] units: the tail of the last one is written as zeros,
    /// so the caller must own `offset .. offset + data.len()` rounded up to [`ALIGN`].
    pub fn write_durable(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut done = 0;
        while done < data.len() {
            let n = (data.len() - done).min(self.block);
            let span = n.div_ceil(ALIGN) * ALIGN;
            let buf = self
                .buf_mut(0)
                .ok_or_else(|| io::Error::other("slot 0 busy"))?;
            buf[..n].copy_from_slice(&data[done..done + n]);
            buf[n..span].fill(0);
            self.sync_io(Op::Write, offset + done as u64, span)?;
            done += n;
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes at `offset` (a multiple of [`ALIGN`]) through slot 0, waiting.
    pub fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let n = (buf.len() - done).min(self.block);
            let span = n.div_ceil(ALIGN) * ALIGN;
            self.sync_io(Op::Read, offset + done as u64, span)?;
            let src = self.buf(0).ok_or_else(|| io::Error::other("slot 0 busy"))?;
            buf[done..done + n].copy_from_slice(&src[..n]);
            done += n;
        }
        Ok(())
    }

    /// Reads `len` bytes at `offset` (a multiple of [`ALIGN`]) through slot 0 and hands them to
    /// `f` in the I/O buffer, without copying them out. Longer than a block: through a copy.
    pub fn read_with<R>(
        &mut self,
        offset: u64,
        len: usize,
        f: impl FnOnce(&[u8]) -> R,
    ) -> io::Result<R> {
        if len > self.block {
            let mut v = vec![0u8; len];
            self.read_exact_at(offset, &mut v)?;
            return Ok(f(&v));
        }
        self.sync_io(Op::Read, offset, len.div_ceil(ALIGN) * ALIGN)?;
        let buf = self.buf(0).ok_or_else(|| io::Error::other("slot 0 busy"))?;
        Ok(f(&buf[..len]))
    }

    /// One I/O of `len` bytes of slot 0's buffer, submitted and waited for.
    fn sync_io(&mut self, op: Op, offset: u64, len: usize) -> io::Result<()> {
        if self.busy[0] || len > self.block || !offset.is_multiple_of(ALIGN as u64) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("I/O of {len} bytes at {offset}: slot busy, too long or unaligned"),
            ));
        }
        let fd = types::Fd(self.file.as_raw_fd());
        let ptr = self.bufs[0].ptr.as_ptr();
        let entry = match (op, self.fixed) {
            (Op::Read, true) => opcode::ReadFixed::new(fd, ptr, len as u32, 0)
                .offset(offset)
                .build(),
            (Op::Write, true) => opcode::WriteFixed::new(fd, ptr, len as u32, 0)
                .offset(offset)
                .rw_flags(libc::RWF_DSYNC)
                .build(),
            (Op::Read, false) => opcode::Read::new(fd, ptr, len as u32)
                .offset(offset)
                .build(),
            (Op::Write, false) => opcode::Write::new(fd, ptr, len as u32)
                .offset(offset)
                .rw_flags(libc::RWF_DSYNC)
                .build(),
        }
        .user_data(0);
        // SAFETY: as in `push`: slot 0's buffer is marked busy until its completion is reaped
        // below (or by `Drop`), and the file lives as long as `self`.
        unsafe { self.ring.submission().push(&entry) }
            .map_err(|_| io::Error::other("submission queue full"))?;
        self.busy[0] = true;
        self.in_flight += 1;
        let mut result = None;
        while result.is_none() {
            self.ring.submit_and_wait(1)?;
            self.reap(|c| {
                if c.slot == 0 {
                    result = Some(c.result);
                }
            });
        }
        match result {
            Some(Ok(n)) if n == len => Ok(()),
            Some(Ok(n)) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("short {op:?}: {n} of {len} bytes at {offset}"),
            )),
            Some(Err(e)) => Err(e),
            None => Err(io::Error::other("no completion")),
        }
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
