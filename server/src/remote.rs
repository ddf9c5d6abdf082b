//! Acting on a rank of another host through that host's daos_server (`rank.RankSvc` on the
//! control port, server certificates only): the pool operations the management service
//! leader sends to each rank's engine (create, destroy, query) and what a rank offers pools.
//! The receiving daos_server passes the call to its engine over dRPC, so both hosts apply the
//! same checks and deadlines as for a local rank.

use std::sync::Arc;
use std::time::Duration;

use daos_drpc::{Method, MgmtMethod, Module};
use daos_proto::rank::rank_svc_client::RankSvcClient;
use daos_proto::rank::rank_svc_server::{RankSvc, RankSvcServer};
use daos_proto::rank::{
    EngineCallReq, EngineCallResp, GroupMap, GroupMapResp, RankInfoReq, RankInfoResp,
};
use tonic::transport::{Channel, ClientTlsConfig};
use tonic::{Request, Response, Status};

use crate::harness::{EngineCallError, Harness, POOL_CALL_TIMEOUT};
use crate::membership::raft::net::Peers;
use crate::security;

/// A container call to a pool service.
#[derive(Clone, Debug)]
pub enum ContCall {
    Create(daos_proto::cont::ContReq),
    Destroy(daos_proto::cont::ContReq),
    Query(daos_proto::cont::ContReq),
    List(daos_proto::cont::ContReq),
    Open(daos_proto::cont::HandleReq),
    Close(daos_proto::cont::HandleReq),
    AllocOids(daos_proto::cont::OidAllocReq),
    Attrs(daos_proto::cont::ContAttrReq),
    SetProps(daos_proto::cont::ContReq),
    Acl(daos_proto::cont::ContAclReq),
}

/// A pool service's answer to a [`ContCall`].
#[derive(Clone, Debug)]
pub enum ContAnswer {
    Container(daos_proto::cont::Container),
    List(Vec<daos_proto::cont::Container>),
    /// The opened container's UUID and its open handles (this one included).
    Opened {
        uuid: String,
        nhandles: u32,
    },
    Closed,
    /// The first object id of the block allocated.
    Oids(u64),
    /// Attribute names (list) or values (get); empty for a set or delete.
    Attrs(Vec<daos_proto::cont::ContAttr>),
}

/// A pool service call that failed.
#[derive(Debug, thiserror::Error)]
pub enum SvcCallError {
    /// The service answered with a refusal of this kind.
    #[error("{text}")]
    Refused { code: tonic::Code, text: String },
    /// No replica answered (or only "unavailable") within the call's patience.
    #[error("{0}")]
    Unreachable(String),
}

impl SvcCallError {
    /// The DAOS code DAOS's clients get for it.
    pub fn der(&self) -> i32 {
        use daos_wire::der;
        match self {
            SvcCallError::Refused { code, .. } => match code {
                tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => der::NO_PERM,
                tonic::Code::NotFound => der::NONEXIST,
                tonic::Code::InvalidArgument => der::INVAL,
                tonic::Code::AlreadyExists => der::EXIST,
                tonic::Code::FailedPrecondition | tonic::Code::ResourceExhausted => der::BUSY,
                tonic::Code::DeadlineExceeded => der::TIMEDOUT,
                _ => der::MISC,
            },
            SvcCallError::Unreachable(_) => der::TIMEDOUT,
        }
    }
}

/// What a rank offers pools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RankInfo {
    pub targets: u64,
    pub scm_capacity: u64,
    pub nvme_capacity: u64,
    /// Bytes really free on its SCM mount (less a reserve).
    pub scm_avail: u64,
}

/// The pool methods a remote caller may pass to an engine (the pool service pushes the pool
/// handles of every rank of the pool, on whichever host).
pub const FORWARDED: &[MgmtMethod] = &[
    MgmtMethod::PoolCreate,
    MgmtMethod::PoolDestroy,
    MgmtMethod::PoolQuery,
    MgmtMethod::PoolHandles,
];

/// Calls to other hosts' daos_servers, from plain or blocking threads.
pub struct Remote {
    rt: tokio::runtime::Runtime,
    peers: Peers,
}

impl Remote {
    pub fn new(tls: Option<ClientTlsConfig>) -> std::io::Result<Remote> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("remote")
            .enable_all()
            .build()?;
        let peers = Peers::on_runtime(tls, rt.handle().clone());
        Ok(Remote { rt, peers })
    }

    /// A channel to the daos_server at `addr` (connected on first use, kept).
    pub fn channel(&self, addr: &str) -> Result<Channel, String> {
        self.peers.channel(addr)
    }

    fn run<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        self.rt.spawn(async move {
            let _ = tx.send(f.await);
        });
        match rx.recv() {
            Ok(v) => v,
            Err(_) => unreachable!("the remote-call runtime dropped a task"),
        }
    }

    /// A dRPC call to the engine of `rank`, hosted by the daos_server at `addr`, that engine
    /// given `within` to answer (the other host a little more).
    pub fn engine_call<M: Method>(
        &self,
        addr: &str,
        rank: u32,
        method: M,
        body: &[u8],
        within: Duration,
    ) -> Result<Vec<u8>, EngineCallError> {
        let remote = |message: String| EngineCallError::Remote {
            rank,
            addr: addr.to_string(),
            message,
        };
        let ch = self.channel(addr).map_err(remote)?;
        let req = EngineCallReq {
            rank,
            module: M::MODULE as i32,
            method: method.id(),
            body: body.to_vec(),
            timeout_ms: u32::try_from(within.as_millis()).unwrap_or(u32::MAX),
        };
        let deadline =
            within + Duration::from_secs(if within < POOL_CALL_TIMEOUT { 2 } else { 10 });
        let answer = self.run(async move {
            let mut c = RankSvcClient::new(ch);
            tokio::time::timeout(deadline, c.engine_call(stamp(req))).await
        });
        match answer {
            Err(_) => Err(remote(format!("no answer within {deadline:?}"))),
            Ok(Ok(r)) => Ok(r.into_inner().body),
            Ok(Err(s)) => Err(remote(s.message().to_string())),
        }
    }

    /// What `rank`, hosted by the daos_server at `addr`, offers pools.
    pub fn rank_info(&self, addr: &str, rank: u32) -> Result<RankInfo, String> {
        let ch = self.channel(addr)?;
        let answer = self.run(async move {
            let mut c = RankSvcClient::new(ch);
            tokio::time::timeout(
                Duration::from_secs(10),
                c.rank_info(stamp(RankInfoReq { rank })),
            )
            .await
        });
        match answer {
            Err(_) => Err(format!("{addr}: no answer within 10s")),
            Ok(Err(s)) => Err(format!("{addr}: {}", s.message())),
            Ok(Ok(r)) => {
                let r = r.into_inner();
                Ok(RankInfo {
                    targets: u64::from(r.targets),
                    scm_capacity: r.scm_capacity,
                    nvme_capacity: r.nvme_capacity,
                    scm_avail: r.scm_avail,
                })
            }
        }
    }
}

impl Remote {
    /// Hands the group map to the engines of the daos_server at `addr`; the ranks that took it.
    pub fn group_update(&self, addr: &str, map: &GroupMap) -> Result<Vec<u32>, String> {
        let ch = self.channel(addr)?;
        let map = map.clone();
        let answer = self.run(async move {
            let mut c = RankSvcClient::new(ch);
            tokio::time::timeout(Duration::from_secs(2), c.group_update(stamp(map))).await
        });
        match answer {
            Err(_) => Err(format!("{addr}: no answer within 2s")),
            Ok(Err(s)) => Err(format!("{addr}: {}", s.message())),
            Ok(Ok(r)) => Ok(r.into_inner().ranks),
        }
    }
}

impl Remote {
    /// Calls `f` on the leader of a pool service whose replicas are `hosts`: each host at most
    /// once a round (the leader a redirect names first), rounds until `patience` has passed
    /// while the service answers unavailable or not at all.
    fn pool_svc_call<T, F, Fut>(
        &self,
        hosts: &[String],
        patience: Duration,
        f: F,
    ) -> Result<T, String>
    where
        T: Send + 'static,
        F: Fn(tonic::transport::Channel) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>> + Send + 'static,
    {
        self.pool_svc_call_typed(hosts, patience, f)
            .map_err(|e| e.to_string())
    }

    /// [`Self::pool_svc_call`] keeping what kind of refusal the service gave.
    fn pool_svc_call_typed<T, F, Fut>(
        &self,
        hosts: &[String],
        patience: Duration,
        f: F,
    ) -> Result<T, SvcCallError>
    where
        T: Send + 'static,
        F: Fn(tonic::transport::Channel) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>> + Send + 'static,
    {
        use daos_control::redirect::{HostQueue, Redirect};
        let deadline = std::time::Instant::now() + patience;
        let mut last = String::from("the pool has no service hosts");
        loop {
            let mut q = HostQueue::new(hosts.iter().cloned());
            while let Some(h) = q.next_host() {
                let ch = match self.channel(&h) {
                    Ok(c) => c,
                    Err(e) => {
                        last = e;
                        continue;
                    }
                };
                let call = f(ch);
                let wait = patience.min(Duration::from_secs(10));
                let answer = self.run(async move { tokio::time::timeout(wait, call).await });
                match answer {
                    Err(_) => last = format!("{h}: no answer within {wait:?}"),
                    Ok(Ok(r)) => return Ok(r.into_inner()),
                    Ok(Err(s)) => {
                        if let Some(r) = Redirect::from_status(&s) {
                            q.prefer(r.hosts());
                        } else if s.code() != tonic::Code::Unavailable {
                            return Err(SvcCallError::Refused {
                                code: s.code(),
                                text: format!("{h}: {}", s.message()),
                            });
                        }
                        last = format!("{h}: {}", s.message());
                    }
                }
            }
            if std::time::Instant::now() >= deadline {
                return Err(SvcCallError::Unreachable(last));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The containers of pool `uuid` (their UUIDs), from its service's leader among `hosts`.
    pub fn containers(&self, hosts: &[String], uuid: &str) -> Result<Vec<[u8; 16]>, String> {
        use daos_proto::cont::ContReq;
        use daos_proto::cont::cont_svc_client::ContSvcClient;
        let pool = uuid.to_string();
        let list = self.pool_svc_call(hosts, Duration::from_secs(30), move |ch| {
            let req = ContReq {
                pool: pool.clone(),
                ..Default::default()
            };
            async move { ContSvcClient::new(ch).list(stamp(req)).await }
        })?;
        list.containers
            .iter()
            .map(|c| {
                daos_wire::parse_uuid(&c.uuid).ok_or_else(|| format!("container UUID {:?}", c.uuid))
            })
            .collect()
    }

    /// A read-write pool handle for this daos_server's own I/O (rebuild), from pool `uuid`'s
    /// service among `hosts` (no credential: the service takes the server's certificate).
    pub fn system_connect(&self, hosts: &[String], uuid: &str) -> Result<u64, String> {
        use daos_proto::cont::ConnectReq;
        use daos_proto::cont::cont_svc_client::ContSvcClient;
        let pool = uuid.to_string();
        let r = self.pool_svc_call(hosts, Duration::from_secs(30), move |ch| {
            let req = ConnectReq {
                pool: pool.clone(),
                cred: Vec::new(),
                flags: crate::cont::FLAG_RW,
                cookie: 0,
            };
            async move { ContSvcClient::new(ch).pool_connect(stamp(req)).await }
        })?;
        Ok(r.handle)
    }

    /// A DAOS client's pool connect, made by an engine on its behalf: the pool service among
    /// `hosts` validates `cred`, checks the ACL for `flags` (RO 1, RW 2) and records handle
    /// `cookie`. A refusal keeps its kind ([`SvcCallError::Refused`]).
    pub fn pool_connect(
        &self,
        hosts: &[String],
        uuid: &str,
        cred: Vec<u8>,
        flags: u32,
        cookie: u64,
    ) -> Result<u64, SvcCallError> {
        use daos_proto::cont::ConnectReq;
        use daos_proto::cont::cont_svc_client::ContSvcClient;
        let pool = uuid.to_string();
        let r = self.pool_svc_call_typed(hosts, Duration::from_secs(30), move |ch| {
            let req = ConnectReq {
                pool: pool.clone(),
                cred: cred.clone(),
                flags,
                cookie,
            };
            async move { ContSvcClient::new(ch).pool_connect(stamp(req)).await }
        })?;
        Ok(r.handle)
    }

    /// A container call of a DAOS client, made by an engine for it, at pool `uuid`'s service
    /// among `hosts` (refusals keep their kind).
    pub fn cont_call(&self, hosts: &[String], call: ContCall) -> Result<ContAnswer, SvcCallError> {
        use daos_proto::cont::cont_svc_client::ContSvcClient;
        let patience = Duration::from_secs(15);
        match call {
            ContCall::Create(req) => {
                let r = self.pool_svc_call_typed(hosts, patience, move |ch| {
                    let req = req.clone();
                    async move { ContSvcClient::new(ch).create(stamp(req)).await }
                })?;
                Ok(ContAnswer::Container(r.container.unwrap_or_default()))
            }
            ContCall::Destroy(req) => {
                let r = self.pool_svc_call_typed(hosts, patience, move |ch| {
                    let req = req.clone();
                    async move { ContSvcClient::new(ch).destroy(stamp(req)).await }
                })?;
                Ok(ContAnswer::Container(r.container.unwrap_or_default()))
            }
            ContCall::Query(req) => {
                let r = self.pool_svc_call_typed(hosts, patience, move |ch| {
                    let req = req.clone();
                    async move { ContSvcClient::new(ch).query(stamp(req)).await }
                })?;
                Ok(ContAnswer::Container(r.container.unwrap_or_default()))
            }
            ContCall::List(req) => {
                let r = self.pool_svc_call_typed(hosts, patience, move |ch| {
                    let req = req.clone();
                    async move { ContSvcClient::new(ch).list(stamp(req)).await }
                })?;
                Ok(ContAnswer::List(r.containers))
            }
            ContCall::Open(req) => {
                let r = self.pool_svc_call_typed(hosts, patience, move |ch| {
                    let req = req.clone();
                    async move { ContSvcClient::new(ch).open(stamp(req)).await }
                })?;
                Ok(ContAnswer::Opened {
                    uuid: r.uuid,
                    nhandles: r.nhandles,
                })
            }
            ContCall::Close(req) => {
                self.pool_svc_call_typed(hosts, patience, move |ch| {
                    let req = req.clone();
                    async move { ContSvcClient::new(ch).disconnect(stamp(req)).await }
                })?;
                Ok(ContAnswer::Closed)
            }
            ContCall::AllocOids(req) => {
                let r = self.pool_svc_call_typed(hosts, patience, move |ch| {
                    let req = req.clone();
                    async move { ContSvcClient::new(ch).alloc_oids(stamp(req)).await }
                })?;
                Ok(ContAnswer::Oids(r.first))
            }
            ContCall::SetProps(req) => {
                let r = self.pool_svc_call_typed(hosts, patience, move |ch| {
                    let req = req.clone();
                    async move { ContSvcClient::new(ch).set_props(stamp(req)).await }
                })?;
                Ok(ContAnswer::Container(r.container.unwrap_or_default()))
            }
            ContCall::Acl(req) => {
                let r = self.pool_svc_call_typed(hosts, patience, move |ch| {
                    let req = req.clone();
                    async move { ContSvcClient::new(ch).acl(stamp(req)).await }
                })?;
                Ok(ContAnswer::Container(r.container.unwrap_or_default()))
            }
            ContCall::Attrs(req) => {
                let r = self.pool_svc_call_typed(hosts, patience, move |ch| {
                    let req = req.clone();
                    async move { ContSvcClient::new(ch).attrs(stamp(req)).await }
                })?;
                Ok(ContAnswer::Attrs(r.attrs))
            }
        }
    }

    /// Evicts pool `uuid`'s `handles` (none: all) at its service among `hosts`; how many
    /// closed.
    pub fn pool_evict(
        &self,
        hosts: &[String],
        uuid: &str,
        handles: Vec<u64>,
    ) -> Result<u32, String> {
        use daos_proto::cont::HandleReq;
        use daos_proto::cont::cont_svc_client::ContSvcClient;
        let pool = uuid.to_string();
        let r = self.pool_svc_call(hosts, Duration::from_secs(30), move |ch| {
            let req = HandleReq {
                pool: pool.clone(),
                handles: handles.clone(),
                ..Default::default()
            };
            async move { ContSvcClient::new(ch).evict(stamp(req)).await }
        })?;
        Ok(r.count)
    }

    /// Pool `uuid`'s open handles, from its service among `hosts`.
    pub fn list_handles(
        &self,
        hosts: &[String],
        uuid: &str,
    ) -> Result<Vec<daos_proto::cont::HandleInfo>, String> {
        use daos_proto::cont::ContReq;
        use daos_proto::cont::cont_svc_client::ContSvcClient;
        let pool = uuid.to_string();
        let r = self.pool_svc_call(hosts, Duration::from_secs(10), move |ch| {
            let req = ContReq {
                pool: pool.clone(),
                ..Default::default()
            };
            async move { ContSvcClient::new(ch).handles(stamp(req)).await }
        })?;
        Ok(r.handles)
    }

    /// Closes a handle [`Self::system_connect`] gave.
    pub fn system_disconnect(
        &self,
        hosts: &[String],
        uuid: &str,
        handle: u64,
    ) -> Result<(), String> {
        use daos_proto::cont::HandleReq;
        use daos_proto::cont::cont_svc_client::ContSvcClient;
        let pool = uuid.to_string();
        self.pool_svc_call(hosts, Duration::from_secs(15), move |ch| {
            let req = HandleReq {
                pool: pool.clone(),
                handle,
                ..Default::default()
            };
            async move { ContSvcClient::new(ch).disconnect(stamp(req)).await }
        })
        .map(|_| ())
    }

    /// Has the leader of pool `uuid`'s service (among `hosts`) apply a pool map command;
    /// returns the pool's record as the service holds it after.
    pub fn map_change(
        &self,
        hosts: &[String],
        uuid: &str,
        cmd: &daos_mgmt::Command,
    ) -> Result<daos_mgmt::PoolRecord, String> {
        use daos_proto::cont::MapReq;
        use daos_proto::cont::cont_svc_client::ContSvcClient;
        let command = serde_json::to_vec(cmd).map_err(|e| format!("pool map command: {e}"))?;
        let pool = uuid.to_string();
        let resp = self.pool_svc_call(hosts, Duration::from_secs(15), move |ch| {
            let req = MapReq {
                pool: pool.clone(),
                command: command.clone(),
            };
            async move { ContSvcClient::new(ch).map_change(stamp(req)).await }
        })?;
        serde_json::from_slice(&resp.record)
            .map_err(|e| format!("pool {uuid}'s service sent a bad pool record: {e}"))
    }

    /// Pool `uuid`'s record as its service's leader (among `hosts`) holds it.
    pub fn map_query(&self, hosts: &[String], uuid: &str) -> Result<daos_mgmt::PoolRecord, String> {
        use daos_proto::cont::ContReq;
        use daos_proto::cont::cont_svc_client::ContSvcClient;
        let pool = uuid.to_string();
        let resp = self.pool_svc_call(hosts, Duration::from_secs(3), move |ch| {
            let req = ContReq {
                pool: pool.clone(),
                ..Default::default()
            };
            async move { ContSvcClient::new(ch).map_query(stamp(req)).await }
        })?;
        serde_json::from_slice(&resp.record)
            .map_err(|e| format!("pool {uuid}'s service sent a bad pool record: {e}"))
    }
}

fn stamp<T>(msg: T) -> Request<T> {
    Peers::stamp(msg)
}

/// `rank.RankSvc` for this host's engines.
pub struct Service {
    harness: Arc<Harness>,
    insecure: bool,
}

pub fn server(harness: Arc<Harness>, insecure: bool) -> RankSvcServer<Service> {
    RankSvcServer::new(Service { harness, insecure })
}

fn call_status(e: EngineCallError) -> Status {
    match e {
        EngineCallError::NotHere { .. } => Status::not_found(e.to_string()),
        EngineCallError::NotRunning { .. } | EngineCallError::Unresponsive { .. } => {
            Status::unavailable(e.to_string())
        }
        _ => Status::internal(e.to_string()),
    }
}

#[tonic::async_trait]
impl RankSvc for Service {
    async fn engine_call(
        &self,
        req: Request<EngineCallReq>,
    ) -> Result<Response<EngineCallResp>, Status> {
        security::authorize(&req, "RankSvc.EngineCall", self.insecure)?;
        let r = req.into_inner();
        let method = (r.module == Module::Mgmt as i32)
            .then(|| MgmtMethod::from_i32(r.method))
            .flatten()
            .filter(|m| FORWARDED.contains(m))
            .ok_or_else(|| {
                Status::permission_denied(format!(
                    "EngineCallReq: dRPC module {} method {} is not one a remote caller may use (pool create, destroy, query, handles)",
                    r.module, r.method
                ))
            })?;
        let h = self.harness.clone();
        let within = match r.timeout_ms {
            0 => POOL_CALL_TIMEOUT,
            ms => Duration::from_millis(ms.into()).min(POOL_CALL_TIMEOUT),
        };
        let body = tokio::task::spawn_blocking(move || {
            h.local_engine_call_within(r.rank, method, &r.body, within)
        })
        .await
        .map_err(|e| Status::internal(format!("engine call: {e}")))?
        .map_err(call_status)?;
        Ok(Response::new(EngineCallResp { body }))
    }

    async fn group_update(&self, req: Request<GroupMap>) -> Result<Response<GroupMapResp>, Status> {
        security::authorize(&req, "RankSvc.GroupUpdate", self.insecure)?;
        let map = req.into_inner();
        let h = self.harness.clone();
        let ranks = tokio::task::spawn_blocking(move || h.group_update_local(&map))
            .await
            .map_err(|e| Status::internal(format!("group update: {e}")))?
            .map_err(Status::failed_precondition)?;
        Ok(Response::new(GroupMapResp { ranks }))
    }

    async fn rank_info(&self, req: Request<RankInfoReq>) -> Result<Response<RankInfoResp>, Status> {
        security::authorize(&req, "RankSvc.RankInfo", self.insecure)?;
        let rank = req.into_inner().rank;
        let h = self.harness.clone();
        let info = tokio::task::spawn_blocking(move || h.local_rank_info(rank))
            .await
            .map_err(|e| Status::internal(format!("rank info: {e}")))?
            .ok_or_else(|| {
                Status::not_found(format!("rank {rank} is not an engine of this server"))
            })?;
        Ok(Response::new(RankInfoResp {
            targets: info.targets as u32,
            scm_capacity: info.scm_capacity,
            nvme_capacity: info.nvme_capacity,
            scm_avail: info.scm_avail,
        }))
    }
}
