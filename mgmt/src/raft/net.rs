//! Server-to-server calls of the management service over the control port (gRPC, the same
//! TLS, the `server` certificate): openraft's messages on `raft.RaftSvc` and the DAOS Join.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use daos_proto::raft::RaftMsg;
use daos_proto::raft::raft_svc_client::RaftSvcClient;
use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use super::TypeConfig;

/// Largest message either side of the Raft transport accepts.
pub const MAX_MESSAGE: usize = 64 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(2);

/// The gRPC header in which a server announces its management service replica set
/// ([`super::replica_set_key`]) on its server-to-server calls; the receiver refuses a call
/// from a server whose set differs.
pub const REPLICA_SET_HEADER: &str = "x-daos-rs-mgmt-replicas";

/// Connections to other servers' control ports, made lazily and kept.
pub struct Peers {
    tls: Option<ClientTlsConfig>,
    channels: Mutex<HashMap<String, Channel>>,
    /// The runtime channels' workers run on (else the caller's).
    runtime: Option<tokio::runtime::Handle>,
    /// This server's replica set, announced in [`REPLICA_SET_HEADER`].
    replica_set: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl Peers {
    pub fn new(tls: Option<ClientTlsConfig>) -> Peers {
        Peers {
            tls,
            channels: Mutex::new(HashMap::new()),
            runtime: None,
            replica_set: None,
        }
    }

    /// Peers that announce `set` (the management service replica set) on their calls.
    pub fn announcing(mut self, set: &str) -> Peers {
        self.replica_set = set.parse().ok();
        self
    }

    /// Peers whose channels run on `runtime`, whichever thread asks for them.
    pub fn on_runtime(tls: Option<ClientTlsConfig>, runtime: tokio::runtime::Handle) -> Peers {
        Peers {
            runtime: Some(runtime),
            ..Peers::new(tls)
        }
    }

    /// A channel to `addr` (`host:port`); it connects on first use and reconnects as needed.
    pub fn channel(&self, addr: &str) -> Result<Channel, String> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(addr) {
            return Ok(c.clone());
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut ep = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|e| format!("bad address {addr:?}: {e}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            // A connection whose peer went silent (a cut link) is dropped within seconds and
            // the next call connects afresh; without this, TCP's retransmission back-off kept
            // a healed replica unreachable for tens of seconds.
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        if let Some(tls) = &self.tls {
            ep = ep
                .tls_config(tls.clone())
                .map_err(|e| format!("TLS setup for {addr}: {e}"))?;
        }
        let _in_runtime = self.runtime.as_ref().map(|h| h.enter());
        let ch = ep.connect_lazy();
        map.insert(addr.to_string(), ch.clone());
        Ok(ch)
    }

    /// Stamps a request as coming from a server, in DAOS's version headers.
    pub fn stamp<T>(msg: T) -> tonic::Request<T> {
        use daos_control::interop;
        let mut req = tonic::Request::new(msg);
        let md = req.metadata_mut();
        md.insert(
            interop::COMPONENT_HEADER,
            tonic::metadata::MetadataValue::from_static("server"),
        );
        md.insert(
            interop::VERSION_HEADER,
            tonic::metadata::MetadataValue::from_static(interop::DAOS_VERSION),
        );
        req
    }

    /// [`Peers::stamp`], with this server's replica set when it announces one.
    pub fn stamp_set<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = Self::stamp(msg);
        if let Some(set) = &self.replica_set {
            req.metadata_mut().insert(REPLICA_SET_HEADER, set.clone());
        }
        req
    }

    /// Calls a `raft.RaftSvc` method of the management service with a JSON payload and
    /// decodes the JSON answer.
    pub async fn call<Q: Serialize, A: DeserializeOwned>(
        &self,
        addr: &str,
        method: Method,
        msg: &Q,
        timeout: Duration,
    ) -> Result<A, CallError> {
        self.call_group(addr, "", method, msg, timeout).await
    }

    /// [`Peers::call`] for Raft group `group` (a pool's UUID; empty: the management service).
    pub async fn call_group<Q: Serialize, A: DeserializeOwned>(
        &self,
        addr: &str,
        group: &str,
        method: Method,
        msg: &Q,
        timeout: Duration,
    ) -> Result<A, CallError> {
        let ch = self.channel(addr).map_err(CallError::Unreachable)?;
        let data = serde_json::to_vec(msg).map_err(|e| CallError::Decode(e.to_string()))?;
        let mut c = RaftSvcClient::new(ch)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let req = self.stamp_set(RaftMsg {
            data,
            group: group.to_string(),
        });
        let fut = async {
            match method {
                Method::AppendEntries => c.append_entries(req).await,
                Method::Vote => c.vote(req).await,
                Method::InstallSnapshot => c.install_snapshot(req).await,
                Method::Propose => c.propose(req).await,
                Method::Read => c.read(req).await,
                Method::Start => c.start(req).await,
                Method::Stop => c.stop(req).await,
            }
        };
        let resp = tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| CallError::Unreachable(format!("{addr}: no answer within {timeout:?}")))?
            .map_err(|s| match s.code() {
                tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
                    CallError::Unreachable(format!("{addr}: {}", s.message()))
                }
                _ => CallError::Refused(s),
            })?;
        serde_json::from_slice(&resp.into_inner().data)
            .map_err(|e| CallError::Decode(format!("answer from {addr}: {e}")))
    }
}

/// The `raft.RaftSvc` methods.
#[derive(Clone, Copy, Debug)]
pub enum Method {
    AppendEntries,
    Vote,
    InstallSnapshot,
    Propose,
    Read,
    /// Start a pool service replica.
    Start,
    /// Stop a pool service replica and remove its log.
    Stop,
}

/// Why a call to another server failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("refused: {}", .0.message())]
    Refused(tonic::Status),
    #[error("bad message: {0}")]
    Decode(String),
}

/// openraft's view of the transport: one [`Conn`] per peer.
pub struct Network {
    pub peers: std::sync::Arc<Peers>,
    /// The Raft group (empty: the management service; else a pool's UUID).
    pub group: String,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Conn;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Conn {
        Conn {
            peers: self.peers.clone(),
            group: self.group.clone(),
            target,
            addr: node.addr.clone(),
        }
    }
}

/// The transport to one peer.
pub struct Conn {
    peers: std::sync::Arc<Peers>,
    group: String,
    target: u64,
    addr: String,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<u64, BasicNode, RaftError<u64, E>>>;

impl Conn {
    async fn rpc<Q: Serialize, A: DeserializeOwned, E>(
        &self,
        method: Method,
        msg: &Q,
        option: &RPCOption,
    ) -> RpcResult<A, E>
    where
        E: std::error::Error + DeserializeOwned,
    {
        let r: Result<Result<A, RaftError<u64, E>>, CallError> = self
            .peers
            .call_group(&self.addr, &self.group, method, msg, option.hard_ttl())
            .await;
        match r {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Err(CallError::Unreachable(e)) => Err(RPCError::Unreachable(Unreachable::new(
                &std::io::Error::other(e),
            ))),
            Err(e) => Err(RPCError::Network(NetworkError::new(
                &std::io::Error::other(e.to_string()),
            ))),
        }
    }
}

impl RaftNetwork<TypeConfig> for Conn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>> {
        self.rpc(Method::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        self.rpc(Method::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>> {
        self.rpc(Method::Vote, &rpc, &option).await
    }
}
