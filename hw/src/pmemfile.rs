//! Files mapped with libpmem: the SCM part of a target's store.
//!
//! [`PmemFile`] maps a file on the SCM mount and makes ranges durable with the right call for
//! what the mapping is: `pmem_persist` (CPU cache flush) on real persistent memory, `pmem_msync`
//! on anything else (tmpfs, a plain file system), since `pmem_persist` alone only flushes
//! caches. The FFI is six functions, declared here by hand and linked through pkg-config;
//! every `unsafe` block says why it holds.

use std::ffi::{CStr, CString};
use std::io;
use std::os::raw::{c_char, c_int, c_void};
use std::path::Path;

#[allow(non_camel_case_types)]
type mode_t = u32;

const PMEM_FILE_CREATE: c_int = 1 << 0;

#[link(name = "pmem")]
unsafe extern "C" {
    fn pmem_map_file(
        path: *const c_char,
        len: usize,
        flags: c_int,
        mode: mode_t,
        mapped_lenp: *mut usize,
        is_pmemp: *mut c_int,
    ) -> *mut c_void;
    fn pmem_unmap(addr: *mut c_void, len: usize) -> c_int;
    fn pmem_persist(addr: *const c_void, len: usize);
    fn pmem_msync(addr: *const c_void, len: usize) -> c_int;
    fn pmem_errormsg() -> *const c_char;
}

fn last_error(what: &str) -> io::Error {
    // SAFETY: pmem_errormsg returns a pointer to a thread-local, NUL-terminated message that
    // stays valid until the next libpmem call on this thread; it is copied at once.
    let msg = unsafe { CStr::from_ptr(pmem_errormsg()) }
        .to_string_lossy()
        .into_owned();
    let os = io::Error::last_os_error();
    io::Error::new(os.kind(), format!("{what}: {msg}"))
}

/// A file mapped into memory with libpmem.
pub struct PmemFile {
    addr: *mut u8,
    len: usize,
    is_pmem: bool,
    /// On tmpfs (the `ram` SCM class) the page cache is the medium itself: msync has nothing
    /// to write back, so a persist is a store fence. Written data then survives a process
    /// crash, though not a power loss, which is what the ram class promises.
    in_ram: bool,
    /// The file mapped, and its identity when mapped (device, inode), to tell whether it is
    /// still there.
    path: std::path::PathBuf,
    identity: (u64, u64),
}

/// (device, inode) of a path.
fn identity(path: &Path) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}

// SAFETY: the mapping is plain memory owned by this value; moving it to another thread moves
// that ownership (a shard owns its files), and `&self` methods only read.
unsafe impl Send for PmemFile {}

impl PmemFile {
    /// Maps `path`, creating it with `len` bytes if absent; an existing file is mapped whole
    /// (`len` must then be 0, or its size).
    pub fn open(path: &Path, len: usize) -> io::Result<PmemFile> {
        let c = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        let exists = path.exists();
        let (flags, want) = if exists {
            (0, 0)
        } else {
            (PMEM_FILE_CREATE, len)
        };
        let mut mapped = 0usize;
        let mut is_pmem: c_int = 0;
        // SAFETY: `c` is a valid NUL-terminated path; the out-pointers point to live locals.
        let addr =
            unsafe { pmem_map_file(c.as_ptr(), want, flags, 0o600, &mut mapped, &mut is_pmem) };
        if addr.is_null() {
            return Err(last_error(&format!("pmem_map_file {}", path.display())));
        }
        let in_ram = nix::sys::statfs::statfs(path)
            .is_ok_and(|f| f.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
        let identity = identity(path).unwrap_or((0, 0));
        Ok(PmemFile {
            addr: addr.cast(),
            len: mapped,
            is_pmem: is_pmem != 0,
            in_ram,
            path: path.to_path_buf(),
            identity,
        })
    }

    /// Whether the mapped file is still the one at its path: false once it was removed or
    /// replaced (what is written to the mapping then no longer reaches storage anyone can
    /// open). One `stat`: call it now and then, not per write.
    pub fn still_linked(&self) -> bool {
        identity(&self.path).is_ok_and(|id| id == self.identity)
    }

    /// The file mapped.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True on real persistent memory (DAX); false on tmpfs or ordinary files.
    pub fn is_pmem(&self) -> bool {
        self.is_pmem
    }

    /// Whether the file lives on tmpfs (RAM).
    pub fn in_ram(&self) -> bool {
        self.in_ram
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `addr` maps `len` bytes for as long as `self` lives; shared access only reads.
        unsafe { std::slice::from_raw_parts(self.addr, self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` guarantees this is the only access.
        unsafe { std::slice::from_raw_parts_mut(self.addr, self.len) }
    }

    /// Makes `len` bytes at `offset` durable.
    pub fn persist(&self, offset: usize, len: usize) -> io::Result<()> {
        if offset.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "persist {offset}+{len} beyond the {}-byte mapping",
                    self.len
                ),
            ));
        }
        // SAFETY: the range was just checked to lie inside the live mapping.
        let p = unsafe { self.addr.add(offset) }.cast::<c_void>();
        if self.is_pmem {
            // SAFETY: valid range of a pmem mapping (checked above).
            unsafe { pmem_persist(p, len) };
            Ok(())
        } else {
            // SAFETY: valid range of a file mapping (checked above).
            match unsafe { pmem_msync(p, len) } {
                0 => Ok(()),
                _ => Err(last_error("pmem_msync")),
            }
        }
    }
}

impl Drop for PmemFile {
    fn drop(&mut self) {
        // SAFETY: `addr`/`len` are exactly what pmem_map_file returned, unmapped once, here.
        unsafe { pmem_unmap(self.addr.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_write_persist_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vos-0");
        {
            let mut f = PmemFile::open(&path, 1 << 20).unwrap();
            assert_eq!(f.len(), 1 << 20);
            assert!(!f.is_pmem(), "tmpfs/ext4 is not DAX pmem");
            f.as_mut_slice()[4096..4101].copy_from_slice(b"hello");
            f.persist(4096, 5).unwrap();
            assert!(f.persist(1 << 20, 1).is_err(), "out of range");
        }
        assert_eq!(
            &std::fs::read(&path).unwrap()[4096..4101],
            b"hello",
            "durable in the file"
        );
        let f = PmemFile::open(&path, 0).unwrap();
        assert_eq!(f.len(), 1 << 20);
        assert_eq!(&f.as_slice()[4096..4101], b"hello");
    }

    #[test]
    fn errors_name_the_file() {
        let err = PmemFile::open(Path::new("/nonexistent-dir/vos-0"), 4096)
            .err()
            .unwrap();
        assert!(err.to_string().contains("/nonexistent-dir/vos-0"), "{err}");
    }
}
