//! Blocking dRPC server: a registry of modules with one handler per method, an accept thread,
//! and a thread per connection (at most [`MAX_CONNECTIONS`]).
//!
//! Each connection loops: read datagrams until a message is complete, decode the `Call`,
//! dispatch, send the `Response` (chunked when large). Malformed input never panics or hangs:
//! an undecodable `Call` gets `FAILED_UNMARSHAL_CALL` with sequence -1 (as DAOS answers); bad
//! framing, an oversized datagram or a message left unfinished for [`CHUNK_TIMEOUT`] closes that
//! connection with a warning. A panicking handler answers `FAILURE`.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use prost::Message;
use tracing::{debug, error, warn};

use crate::frame::{Assembler, FrameError, Framing, MAX_DATAGRAM, for_each_datagram};
use crate::ids::{Method, Module};
use crate::proto::{Call, Response, Status};
use crate::socket::{self, Peer};

/// Most connections served at once; more are closed on arrival.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a partly received message may wait for its next chunk.
pub const CHUNK_TIMEOUT: Duration = Duration::from_secs(5);
/// How often idle connections look at the stop flag.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// What a handler knows about its caller.
#[derive(Clone, Copy, Debug)]
pub struct CallContext {
    pub peer: Option<Peer>,
}

/// Why a handler could not answer; becomes the response `Status`.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The body did not decode: `FAILED_UNMARSHAL_PAYLOAD`.
    #[error("bad request body: {0}")]
    BadPayload(String),
    /// The answer did not encode: `FAILED_MARSHAL`.
    #[error("cannot encode response: {0}")]
    Marshal(String),
    /// Anything else: `FAILURE`.
    #[error("{0}")]
    Failure(String),
}

impl From<prost::DecodeError> for HandlerError {
    fn from(e: prost::DecodeError) -> Self {
        HandlerError::BadPayload(e.to_string())
    }
}

type Handler = Box<dyn Fn(&CallContext, &[u8]) -> Result<Vec<u8>, HandlerError> + Send + Sync>;

/// Modules and their method handlers.
#[derive(Default)]
pub struct Registry {
    modules: HashMap<i32, HashMap<i32, Handler>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a module with no methods yet (calls to it answer `UNKNOWN_METHOD`).
    pub fn module(&mut self, module: Module) -> &mut Self {
        self.modules.entry(module as i32).or_default();
        self
    }

    /// Registers the handler of one method (replacing any earlier one).
    pub fn method<M: Method>(
        &mut self,
        method: M,
        handler: impl Fn(&CallContext, &[u8]) -> Result<Vec<u8>, HandlerError> + Send + Sync + 'static,
    ) -> &mut Self {
        self.modules
            .entry(M::MODULE as i32)
            .or_default()
            .insert(method.id(), Box::new(handler));
        self
    }

    /// Answers one encoded `Call`.
    pub fn dispatch(&self, ctx: &CallContext, message: &[u8]) -> Response {
        let call = match Call::decode(message) {
            Ok(c) => c,
            Err(e) => {
                warn!("dRPC: cannot decode call: {e}");
                return Response {
                    sequence: -1,
                    status: Status::FailedUnmarshalCall as i32,
                    body: Vec::new(),
                };
            }
        };
        let reply = |status: Status, body: Vec<u8>| Response {
            sequence: call.sequence,
            status: status as i32,
            body,
        };
        let Some(module) = self.modules.get(&call.module) else {
            return reply(Status::UnknownModule, Vec::new());
        };
        let Some(handler) = module.get(&call.method) else {
            return reply(Status::UnknownMethod, Vec::new());
        };
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(ctx, &call.body)));
        match result {
            Ok(Ok(body)) => reply(Status::Success, body),
            Ok(Err(e)) => {
                debug!("dRPC {}/{}: {e}", call.module, call.method);
                let status = match e {
                    HandlerError::BadPayload(_) => Status::FailedUnmarshalPayload,
                    HandlerError::Marshal(_) => Status::FailedMarshal,
                    HandlerError::Failure(_) => Status::Failure,
                };
                reply(status, Vec::new())
            }
            Err(_) => {
                error!("dRPC {}/{}: handler panicked", call.module, call.method);
                reply(Status::Failure, Vec::new())
            }
        }
    }
}

/// Failure to start serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("dRPC server setup: {0}")]
    SocketDir(#[from] socket::SocketDirError),
    #[error("dRPC server setup: cannot listen on {}: {source}", .path.display())]
    Listen { path: PathBuf, source: io::Error },
}

/// A running server; stops (and removes its socket) on [`ServerHandle::stop`] or drop.
pub struct ServerHandle {
    path: PathBuf,
    /// The socket file's (device, inode) as bound: only that file is removed at the end (a
    /// newer server may have bound the path since).
    file: Option<(u64, u64)>,
    listener: Arc<UnixListener>,
    stop: Arc<AtomicBool>,
    active: Arc<AtomicUsize>,
    accept: Option<JoinHandle<()>>,
}

/// Starts serving `registry` on a socket at `path` (its directory is checked first).
pub fn serve(path: &Path, registry: Registry) -> Result<ServerHandle, ServerError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    socket::check_socket_dir(dir)?;
    let listener = socket::bind(path).map_err(|source| ServerError::Listen {
        path: path.into(),
        source,
    })?;
    let listener = Arc::new(listener);
    let stop = Arc::new(AtomicBool::new(false));
    let active = Arc::new(AtomicUsize::new(0));
    let registry = Arc::new(registry);
    let accept = {
        let (listener, stop, active) = (listener.clone(), stop.clone(), active.clone());
        thread::Builder::new()
            .name("drpc-accept".into())
            .spawn(move || accept_loop(&listener, &registry, &stop, &active))
            .map_err(|source| ServerError::Listen {
                path: path.into(),
                source,
            })?
    };
    let file = {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::symlink_metadata(path)
            .ok()
            .map(|m| (m.dev(), m.ino()))
    };
    Ok(ServerHandle {
        path: path.into(),
        file,
        listener,
        stop,
        active,
        accept: Some(accept),
    })
}

impl ServerHandle {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Connections being served now.
    pub fn connections(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Stops accepting, lets connections finish their current call, removes the socket.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        self.stop.store(true, Ordering::Release);
        // Wake the blocked accept(). shutdown() of a listening AF_UNIX socket does not
        // reliably do it, so also connect once: accept() returns and sees the stop flag.
        let _ =
            nix::sys::socket::shutdown(self.listener.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        let _ = socket::connect(&self.path);
        let deadline = Instant::now() + Duration::from_secs(2);
        while !accept.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        if accept.is_finished() {
            let _ = accept.join();
        } else {
            warn!("dRPC: accept thread did not stop; leaving it behind");
        }
        while self.active.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        // Only the socket this server bound: another server may have replaced it.
        use std::os::unix::fs::MetadataExt as _;
        let ours = std::fs::symlink_metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if ours.is_some() && ours == self.file {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(
    listener: &UnixListener,
    registry: &Arc<Registry>,
    stop: &Arc<AtomicBool>,
    active: &Arc<AtomicUsize>,
) {
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::Acquire) {
            return;
        }
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                warn!("dRPC: accept failed: {e}");
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if active.load(Ordering::Acquire) >= MAX_CONNECTIONS {
            warn!("dRPC: {MAX_CONNECTIONS} connections already open; refusing another");
            continue;
        }
        active.fetch_add(1, Ordering::AcqRel);
        let (registry, stop, active2) = (registry.clone(), stop.clone(), active.clone());
        let spawned = thread::Builder::new()
            .name("drpc-conn".into())
            .spawn(move || {
                serve_connection(stream, &registry, &stop);
                active2.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(e) = spawned {
            active.fetch_sub(1, Ordering::AcqRel);
            warn!("dRPC: cannot start a connection thread: {e}");
        }
    }
}

fn serve_connection(mut stream: UnixStream, registry: &Registry, stop: &AtomicBool) {
    let ctx = CallContext {
        peer: socket::peer(&stream).ok(),
    };
    if let Err(e) = stream.set_read_timeout(Some(POLL_INTERVAL)) {
        warn!("dRPC: cannot set a read timeout: {e}");
        return;
    }
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut out = Vec::with_capacity(MAX_DATAGRAM);
    let mut assembler = Assembler::default();
    let mut started = Instant::now();
    // Taken from the first datagram: DAOS 2.6 clients send bare messages, 2.8's chunks.
    let mut framing = None;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => return, // peer closed (or sent an empty datagram, which is not dRPC)
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if stop.load(Ordering::Acquire) {
                    return;
                }
                if assembler.in_progress() && started.elapsed() > CHUNK_TIMEOUT {
                    warn!("dRPC: message incomplete after {CHUNK_TIMEOUT:?}; closing connection");
                    return;
                }
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                debug!("dRPC: read failed: {e}");
                return;
            }
        };
        if !assembler.in_progress() {
            started = Instant::now();
        }
        let framing = *framing
            .get_or_insert_with(|| Framing::of_first(&buf[..n], |d| Call::decode(d).is_ok()));
        let message = match framing {
            Framing::Bare => &buf[..n],
            Framing::Chunked => match assembler.push(&buf[..n]) {
                Ok(None) => continue,
                Ok(Some(m)) => m,
                Err(e) => {
                    warn!(
                        "dRPC: bad datagram from {:?}: {e}; closing connection",
                        ctx.peer
                    );
                    return;
                }
            },
        };
        let response = registry.dispatch(&ctx, message).encode_to_vec();
        let sent = match framing {
            Framing::Chunked => {
                for_each_datagram(&response, &mut out, |d| send_datagram(&mut stream, d))
            }
            // One datagram, as a DAOS 2.6 client reads it.
            Framing::Bare if response.len() > MAX_DATAGRAM => Err(FrameError::TooLarge {
                len: response.len() as u64,
            }),
            Framing::Bare => send_datagram(&mut stream, &response),
        };
        if let Err(e) = sent {
            debug!("dRPC: cannot send response: {e}");
            return;
        }
    }
}

/// Sends one datagram (all of it, or an error).
pub(crate) fn send_datagram(stream: &mut UnixStream, d: &[u8]) -> Result<(), FrameError> {
    let n = stream.write(d)?;
    if n != d.len() {
        return Err(FrameError::Io(format!(
            "short send: {n} of {} bytes",
            d.len()
        )));
    }
    Ok(())
}
