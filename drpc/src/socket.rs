//! Unix `SOCK_SEQPACKET` sockets for dRPC, on std's `UnixListener`/`UnixStream`.
//!
//! std has no seqpacket type, but its listener and stream work on any `AF_UNIX` fd: `accept`,
//! `read` (one datagram per call; a buffer one byte larger than [`MAX_DATAGRAM`] exposes an
//! oversized one) and `write` (one datagram, all or nothing) behave as dRPC needs. nix creates
//! the socket; no `unsafe` is needed.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::socket::{self, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};

#[cfg(doc)]
use crate::frame::MAX_DATAGRAM;

/// Mode of every dRPC socket file (DAOS 2.2+).
pub const SOCKET_MODE: u32 = 0o600;

/// A socket directory that cannot be used; messages as daos_server prints them.
#[derive(Debug, thiserror::Error)]
pub enum SocketDirError {
    #[error("missing socket directory {}: {source}", .dir.display())]
    Missing { dir: PathBuf, source: io::Error },
    #[error("permissions failure accessing socket directory {}: {source}", .dir.display())]
    Permission { dir: PathBuf, source: io::Error },
    #[error("unexpected error locating socket directory {}: {source}", .dir.display())]
    Unexpected { dir: PathBuf, source: io::Error },
    #[error("path {} not a directory", .dir.display())]
    NotDirectory { dir: PathBuf },
}

impl SocketDirError {
    /// What the admin should do about it.
    pub fn fix(&self) -> &'static str {
        match self {
            SocketDirError::Missing { .. } => {
                "create it (daos_server never creates socket_dir; systemd's RuntimeDirectory=daos_server does) or set socket_dir / -d to an existing directory"
            }
            SocketDirError::Permission { .. } => {
                "give the daos_server user write and search permission on it, or choose another socket_dir"
            }
            SocketDirError::NotDirectory { .. } => "point socket_dir / -d at a directory",
            SocketDirError::Unexpected { .. } => "check the path and its parent directories",
        }
    }
}

/// Checks that `dir` exists, is a directory and is writable and searchable by this process.
pub fn check_socket_dir(dir: &Path) -> Result<(), SocketDirError> {
    let meta = fs::metadata(dir).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => SocketDirError::Missing {
            dir: dir.into(),
            source,
        },
        io::ErrorKind::PermissionDenied => SocketDirError::Permission {
            dir: dir.into(),
            source,
        },
        _ => SocketDirError::Unexpected {
            dir: dir.into(),
            source,
        },
    })?;
    if !meta.is_dir() {
        return Err(SocketDirError::NotDirectory { dir: dir.into() });
    }
    use nix::unistd::{AccessFlags, access};
    access(dir, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|errno| SocketDirError::Permission {
        dir: dir.into(),
        source: io::Error::from(errno),
    })
}

fn seqpacket() -> io::Result<std::os::fd::OwnedFd> {
    socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io::Error::from)
}

/// Removes `path` if it is a socket left by an earlier run. A socket that a live process still
/// accepts connections on is not stale (another daos_server is running): that, and a path that
/// is not a socket, are errors.
pub fn remove_stale(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "{} is in use by a running process; stop it first",
                        path.display()
                    ),
                ));
            }
            fs::remove_file(path).map(|()| true)
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket; move it away",
                path.display()
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes stale sockets in `dir` whose file names start with one of `prefixes` and end in
/// `.sock`; returns the paths removed.
pub fn remove_stale_sockets(dir: &Path, prefixes: &[&str]) -> io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".sock")
            && prefixes.iter().any(|p| name.starts_with(p))
            && remove_stale(&entry.path())?
        {
            removed.push(entry.path());
        }
    }
    Ok(removed)
}

/// Binds and listens on a seqpacket socket at `path` (stale socket removed first), mode 0600.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    remove_stale(path)?;
    let fd = seqpacket()?;
    let addr = UnixAddr::new(path).map_err(io::Error::from)?;
    use std::os::fd::AsRawFd;
    socket::bind(fd.as_raw_fd(), &addr).map_err(io::Error::from)?;
    fs::set_permissions(path, fs::Permissions::from_mode(SOCKET_MODE))?;
    socket::listen(&fd, Backlog::new(64).map_err(io::Error::from)?).map_err(io::Error::from)?;
    Ok(UnixListener::from(fd))
}

/// Connects a seqpacket socket to `path`.
pub fn connect(path: &Path) -> io::Result<UnixStream> {
    connect_fd(seqpacket()?, path)
}

/// Connects a seqpacket socket to `path`, waiting at most `within` when the listener's
/// backlog is full (a stopped or hung server accepts nothing: a plain connect would wait for
/// as long as it stays so). Sends are bounded by `within` too.
pub fn connect_within(path: &Path, within: std::time::Duration) -> io::Result<UnixStream> {
    let fd = seqpacket()?;
    let tv = nix::sys::time::TimeVal::new(
        i64::try_from(within.as_secs()).unwrap_or(i64::MAX),
        // Below 1,000,000: fits any suseconds_t.
        within.subsec_micros() as _,
    );
    socket::setsockopt(&fd, socket::sockopt::SendTimeout, &tv).map_err(io::Error::from)?;
    connect_fd(fd, path)
}

fn connect_fd(fd: std::os::fd::OwnedFd, path: &Path) -> io::Result<UnixStream> {
    let addr = UnixAddr::new(path).map_err(io::Error::from)?;
    use std::os::fd::AsRawFd;
    socket::connect(fd.as_raw_fd(), &addr).map_err(io::Error::from)?;
    Ok(UnixStream::from(fd))
}

/// The peer process of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// The credentials of the process at the other end (SO_PEERCRED).
pub fn peer(stream: &UnixStream) -> io::Result<Peer> {
    let c =
        socket::getsockopt(stream, socket::sockopt::PeerCredentials).map_err(io::Error::from)?;
    Ok(Peer {
        pid: c.pid(),
        uid: c.uid(),
        gid: c.gid(),
    })
}
