//! Blocking dRPC client: one connection, calls in sequence, each numbered with a
//! per-connection sequence that the response must echo.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use prost::Message;

use crate::frame::{Assembler, FrameError, MAX_DATAGRAM, for_each_datagram};
use crate::ids::Method;
use crate::proto::{Call, Response, Status};
use crate::server::send_datagram;
use crate::socket;

/// Default time to wait for a response.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A failed call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DrpcError {
    #[error("cannot connect to dRPC socket {}: {source}", .path.display())]
    Connect { path: PathBuf, source: io::Error },
    #[error("dRPC socket: {0}")]
    Io(#[from] io::Error),
    #[error("dRPC framing: {0}")]
    Frame(#[from] FrameError),
    #[error("dRPC response does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("dRPC server closed the connection")]
    Disconnected,
    #[error("no dRPC response within {0:?}")]
    Timeout(Duration),
    #[error("dRPC response has sequence {got}, expected {expected}")]
    Sequence { expected: i64, got: i64 },
    #[error("dRPC call {module}/{method} failed with status {status:?}")]
    Status {
        module: i32,
        method: i32,
        status: Status,
    },
}

/// A connection to a dRPC server.
pub struct Client {
    stream: UnixStream,
    path: PathBuf,
    sequence: i64,
    timeout: Duration,
    send_buf: Vec<u8>,
    recv_buf: Vec<u8>,
    assembler: Assembler,
}

impl Client {
    pub fn connect(path: &Path) -> Result<Client, DrpcError> {
        let stream = socket::connect(path).map_err(|source| DrpcError::Connect {
            path: path.into(),
            source,
        })?;
        Client::on(stream, path)
    }

    /// Connects, waiting at most `timeout` for the server to take the connection (a stopped
    /// server whose backlog is full takes none), and sets `timeout` for answers.
    pub fn connect_within(path: &Path, timeout: Duration) -> Result<Client, DrpcError> {
        let stream =
            socket::connect_within(path, timeout).map_err(|source| DrpcError::Connect {
                path: path.into(),
                source,
            })?;
        let mut c = Client::on(stream, path)?;
        c.set_timeout(timeout)?;
        Ok(c)
    }

    fn on(stream: UnixStream, path: &Path) -> Result<Client, DrpcError> {
        let mut c = Client {
            stream,
            path: path.into(),
            sequence: 0,
            timeout: DEFAULT_TIMEOUT,
            send_buf: Vec::new(),
            recv_buf: vec![0u8; MAX_DATAGRAM + 1],
            assembler: Assembler::default(),
        };
        c.set_timeout(DEFAULT_TIMEOUT)?;
        Ok(c)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), DrpcError> {
        self.stream.set_read_timeout(Some(timeout))?;
        self.timeout = timeout;
        Ok(())
    }

    /// Calls `method` with an encoded request body; returns the response body on SUCCESS.
    pub fn call<M: Method>(&mut self, method: M, body: &[u8]) -> Result<Vec<u8>, DrpcError> {
        let (module, method) = (M::MODULE as i32, method.id());
        let r = self.call_raw(module, method, body)?;
        match Status::try_from(r.status).unwrap_or(Status::Failure) {
            Status::Success => Ok(r.body),
            status => Err(DrpcError::Status {
                module,
                method,
                status,
            }),
        }
    }

    /// Like [`Self::call`] with a prost message in and out.
    pub fn call_msg<M: Method, Req: Message, Resp: Message + Default>(
        &mut self,
        method: M,
        req: &Req,
    ) -> Result<Resp, DrpcError> {
        let body = self.call(method, &req.encode_to_vec())?;
        Ok(Resp::decode(body.as_slice())?)
    }

    /// Sends a call with any module/method numbers and returns the raw response.
    pub fn call_raw(
        &mut self,
        module: i32,
        method: i32,
        body: &[u8],
    ) -> Result<Response, DrpcError> {
        self.sequence += 1;
        let call = Call {
            module,
            method,
            sequence: self.sequence,
            body: body.to_vec(),
        };
        self.send_raw(&call.encode_to_vec())?;
        let message = self.receive()?;
        let response = Response::decode(message.as_slice())?;
        if response.sequence != self.sequence {
            return Err(DrpcError::Sequence {
                expected: self.sequence,
                got: response.sequence,
            });
        }
        Ok(response)
    }

    /// Sends an already encoded message (for tests of malformed input).
    pub fn send_raw(&mut self, message: &[u8]) -> Result<(), DrpcError> {
        let stream = &mut self.stream;
        for_each_datagram(message, &mut self.send_buf, |d| send_datagram(stream, d))?;
        Ok(())
    }

    /// Sends one raw datagram, framing and all (for tests of malformed input).
    pub fn send_datagram(&mut self, datagram: &[u8]) -> Result<(), DrpcError> {
        send_datagram(&mut self.stream, datagram)?;
        Ok(())
    }

    /// Receives one whole message.
    pub fn receive(&mut self) -> Result<Vec<u8>, DrpcError> {
        loop {
            let n = match self.stream.read(&mut self.recv_buf) {
                Ok(0) => return Err(DrpcError::Disconnected),
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(DrpcError::Timeout(self.timeout));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(DrpcError::Disconnected);
                }
                Err(e) => return Err(e.into()),
            };
            if let Some(m) = self.assembler.push(&self.recv_buf[..n])? {
                return Ok(m.to_vec());
            }
        }
    }
}
