//! The control port's connections, bounded: at most [`MAX_CONNECTIONS`] at once (more wait in
//! the kernel's backlog, so accepting never spins near the fd limit), and each is closed when
//! it sends nothing for [`FIRST_BYTES`] after connecting (a stalled TLS handshake) or for
//! [`IDLE`] later. A flood of silent connections therefore cannot keep an admin out for
//! longer than [`FIRST_BYTES`].

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Sleep;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tracing::warn;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 256;
/// A new connection must send its first bytes within this.
pub const FIRST_BYTES: Duration = Duration::from_secs(10);
/// A connection that sends nothing for this long is closed (longer than any call).
pub const IDLE: Duration = Duration::from_secs(330);

/// One accepted connection holding its slot.
pub struct Capped {
    inner: TcpStream,
    _slot: OwnedSemaphorePermit,
    deadline: Pin<Box<Sleep>>,
}

impl Capped {
    fn new(inner: TcpStream, slot: OwnedSemaphorePermit) -> Capped {
        Capped {
            inner,
            _slot: slot,
            deadline: Box::pin(tokio::time::sleep(FIRST_BYTES)),
        }
    }
}

impl AsyncRead for Capped {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                let next = tokio::time::Instant::from_std(Instant::now() + IDLE);
                self.deadline.as_mut().reset(next);
                Poll::Ready(r)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "control connection silent too long",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Capped {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Connected for Capped {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// Accepts connections while a slot is free and hands them over in a stream for the server.
pub fn incoming(
    listener: TcpListener,
) -> tokio_stream::wrappers::ReceiverStream<io::Result<Capped>> {
    let (tx, rx) = mpsc::channel(16);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        let mut last_warning: Option<Instant> = None;
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    if tx.send(Ok(Capped::new(stream, slot))).await.is_err() {
                        return; // the server stopped
                    }
                }
                Err(e) => {
                    // Out of descriptors or the like: wait instead of spinning.
                    if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        warn!("control port: cannot accept a connection: {e}");
                        last_warning = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
