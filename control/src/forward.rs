//! Management-API calls of client processes through daos_agent. A client node's processes
//! hold no certificate (DAOS: they talk to the agent, which talks to the management service);
//! here a gRPC call of the client library is carried over the agent's dRPC socket
//! ([`AGENT_FORWARD`]: the method path and the encoded request) and the agent makes it with
//! its own certificate, answering the reply or the status (with its details: redirects still
//! work). [`Transport`] is the connection either way, so every client of the API is the same.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tonic::transport::Channel;

/// The host a client names to have the agent pick one of its access points.
pub const AGENT_CHOOSES: &str = "@access_points";

/// The metadata in which the agent carries, on every forwarded call, the credential it signed
/// for the calling process (its uid and gid from the socket, never from the request): the
/// daos_server authorizes the call as that user, whatever handle the request names.
pub const CALLER_HEADER: &str = "x-daos-caller-bin";

/// The method paths a client process may have the agent call.
pub const FORWARDED: &[&str] = &[
    "/mgmt.MgmtSvc/LeaderQuery",
    "/mgmt.MgmtSvc/GetAttachInfo",
    "/mgmt.MgmtSvc/PoolQuery",
    "/mgmt.MgmtSvc/PoolQueryTarget",
    "/mgmt.MgmtSvc/ListPools",
    "/cont.ContSvc/Create",
    "/cont.ContSvc/Destroy",
    "/cont.ContSvc/Query",
    "/cont.ContSvc/SetProps",
    "/cont.ContSvc/List",
    "/cont.ContSvc/PoolConnect",
    "/cont.ContSvc/Open",
    "/cont.ContSvc/Disconnect",
    "/cont.ContSvc/Acl",
];

/// A connection to a daos_server's management API: direct, or through daos_agent.
#[derive(Clone, Debug)]
pub enum Transport {
    Direct(Channel),
    Agent(AgentTransport),
}

/// Calls carried by the agent at `socket` to `host`.
#[derive(Clone, Debug)]
pub struct AgentTransport {
    pub socket: PathBuf,
    pub host: String,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower::Service<http::Request<tonic::body::Body>> for Transport {
    type Response = http::Response<tonic::body::Body>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            Transport::Direct(c) => {
                tower::Service::<http::Request<tonic::body::Body>>::poll_ready(c, cx)
                    .map_err(Into::into)
            }
            Transport::Agent(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        match self {
            Transport::Direct(c) => {
                let f = tower::Service::call(c, req);
                Box::pin(async move { f.await.map_err(Into::into) })
            }
            Transport::Agent(a) => Box::pin(a.clone().forward(req)),
        }
    }
}

impl AgentTransport {
    async fn forward(
        self,
        req: http::Request<tonic::body::Body>,
    ) -> Result<http::Response<tonic::body::Body>, BoxError> {
        use http_body_util::BodyExt;
        let path = req.uri().path().to_string();
        let framed = req.into_body().collect().await?.to_bytes();
        // One gRPC message: a compression flag byte, a 4-byte length, the message.
        let msg = framed.get(5..).map(<[u8]>::to_vec).unwrap_or_default();
        let call = daos_proto::mgmt::ForwardReq {
            host: self.host.clone(),
            path,
            body: msg,
        };
        let socket = self.socket.clone();
        let resp = tokio::task::spawn_blocking(move || {
            let mut c = daos_drpc::Client::connect(&socket)?;
            c.call_msg::<_, _, daos_proto::mgmt::ForwardResp>(
                daos_drpc::MgmtMethod::AgentForward,
                &call,
            )
        })
        .await?
        .map_err(|e| {
            format!(
                "DER_AGENT_COMM(-2034): cannot reach daos_agent at {}: {e} (is it running? set DAOS_AGENT_DRPC_DIR to its runtime_dir)",
                self.socket.display()
            )
        })?;
        if resp.code != 0 {
            let status = tonic::Status::with_details(
                tonic::Code::from_i32(resp.code),
                resp.message,
                Bytes::from(resp.details),
            );
            return Ok(status.into_http());
        }
        let mut framed = Vec::with_capacity(resp.body.len() + 5);
        framed.push(0);
        framed.extend_from_slice(&(resp.body.len() as u32).to_be_bytes());
        framed.extend_from_slice(&resp.body);
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let frames: Vec<Result<http_body::Frame<Bytes>, BoxError>> = vec![
            Ok(http_body::Frame::data(Bytes::from(framed))),
            Ok(http_body::Frame::trailers(trailers)),
        ];
        let body = http_body_util::StreamBody::new(tokio_stream::iter(frames));
        Ok(http::Response::builder()
            .status(200)
            .header("content-type", "application/grpc")
            .body(tonic::body::Body::new(body))?)
    }
}

/// A codec that passes encoded messages through (the agent forwards what it does not read).
#[derive(Clone, Copy, Debug, Default)]
pub struct RawCodec;

/// Encodes and decodes raw message bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Raw;

impl tonic::codec::Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n).to_vec()))
    }
}

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

/// The agent's side: makes the forwarded call on `channel` (its certificate) with the
/// client's request bytes and `caller`, the encoded credential the agent signed for the
/// calling process ([`CALLER_HEADER`]); the reply bytes or the status.
pub async fn call_raw(
    channel: Channel,
    path: &str,
    body: Vec<u8>,
    caller: &[u8],
) -> Result<Vec<u8>, tonic::Status> {
    if !FORWARDED.contains(&path) {
        return Err(tonic::Status::permission_denied(format!(
            "daos_agent does not forward {path} for client processes (an admin tool with daos_control.yml makes such calls)"
        )));
    }
    let path = http::uri::PathAndQuery::try_from(path)
        .map_err(|e| tonic::Status::invalid_argument(format!("method path: {e}")))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("connection: {e}")))?;
    let mut req = tonic::Request::new(body);
    let md = req.metadata_mut();
    md.insert(
        crate::interop::COMPONENT_HEADER,
        tonic::metadata::MetadataValue::from_static("agent"),
    );
    md.insert(
        crate::interop::VERSION_HEADER,
        tonic::metadata::MetadataValue::from_static(crate::interop::DAOS_VERSION),
    );
    md.insert_bin(
        CALLER_HEADER,
        tonic::metadata::MetadataValue::from_bytes(caller),
    );
    grpc.unary(req, path, RawCodec)
        .await
        .map(tonic::Response::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_forwards_only_client_methods() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            // Nothing listens there: a refused path is refused before any connection.
            let ch = Channel::from_static("http://127.0.0.1:9").connect_lazy();
            for path in [
                "/mgmt.MgmtSvc/PoolCreate",
                "/ctl.CtlSvc/StorageFormat",
                "/cont.ContSvc/Evict",
            ] {
                let e = call_raw(ch.clone(), path, Vec::new(), b"")
                    .await
                    .expect_err("refused");
                assert_eq!(e.code(), tonic::Code::PermissionDenied, "{path}");
                assert!(e.message().contains("does not forward"), "{}", e.message());
            }
            let e = call_raw(ch, "/cont.ContSvc/PoolConnect", Vec::new(), b"")
                .await
                .expect_err("nothing listens");
            assert_ne!(e.code(), tonic::Code::PermissionDenied);
        });
    }
}
