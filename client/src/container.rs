//! A pool's containers through its pool service (`cont.ContSvc` on the control port of the
//! daos_servers running the pool's service replicas): create, list, query (label or UUID),
//! set properties, destroy. Any daos_server points the caller at the service's leader
//! (DAOS's not-leader error with a hint and the replicas); a leader that dies is replaced by
//! an election and the call goes on at the new one, within [`DEADLINE`].

use std::time::{Duration, Instant};

use daos_control::Target;
use daos_control::redirect::{HostQueue, Redirect};
use daos_proto::cont::cont_svc_client::ContSvcClient;
use daos_proto::cont::{ContReq, Container};

/// How long a container call looks for the pool service's leader (an election takes about
/// two seconds).
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Why a container call failed.
#[derive(Debug, thiserror::Error)]
pub enum ContError {
    /// No such container or pool (DER_NONEXIST).
    #[error("{0}")]
    NotFound(String),
    /// The label or UUID is taken (DER_EXIST).
    #[error("{0}")]
    Exists(String),
    /// A bad label, UUID or request (DER_INVAL).
    #[error("{0}")]
    Invalid(String),
    /// The pool service did not answer within the deadline (its words).
    #[error("pool {pool}'s service did not answer: {last}")]
    Unavailable { pool: String, last: String },
    /// The credential or the ACL refused (DER_NO_PERM, DER_NO_HDL).
    #[error("{0}")]
    NoPerm(String),
    #[error("cannot start the client runtime: {0}")]
    Runtime(std::io::Error),
}

/// DAOS's pool connect / container open flags.
pub const FLAG_RO: u32 = 1;
pub const FLAG_RW: u32 = 2;

/// A container ACL operation.
pub enum AclOp {
    Get,
    Overwrite(Vec<String>),
    Update(Vec<String>),
    Delete(String),
    SetOwner { user: String, group: String },
}

/// A pool or container handle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handle {
    /// What every request under it carries.
    pub cookie: u64,
    /// 1 read, 2 write.
    pub rights: u32,
    /// The pool's or container's UUID.
    pub uuid: String,
}

/// A container as its pool service keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContInfo {
    pub uuid: [u8; 16],
    pub label: String,
    /// `name:value;...`
    pub props: String,
    /// Owner user and group (`name@`; empty for containers made before ACLs) and ACL entries.
    pub owner: String,
    pub group: String,
    pub acl: Vec<String>,
}

impl ContInfo {
    fn from_wire(c: Container) -> Result<ContInfo, ContError> {
        let uuid = crate::parse_uuid(&c.uuid).ok_or_else(|| {
            ContError::Invalid(format!(
                "the pool service gave container {:?} a bad UUID {:?}",
                c.label, c.uuid
            ))
        })?;
        Ok(ContInfo {
            uuid,
            label: c.label,
            props: c.props,
            owner: c.owner,
            group: c.group,
            acl: c.acl,
        })
    }
}

/// The containers of one pool.
pub struct Containers<'a> {
    target: &'a Target,
    pool: String,
    rt: tokio::runtime::Runtime,
    /// The caller's pool handle: its identity for the pool's and containers' ACLs.
    handle: u64,
}

#[derive(Clone, Copy)]
enum Op {
    Create,
    Destroy,
    Query,
    SetProps,
    List,
}

impl<'a> Containers<'a> {
    /// The containers of pool `pool` (label or UUID), reached through `target`'s hosts.
    pub fn new(target: &'a Target, pool: &str) -> Result<Containers<'a>, ContError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ContError::Runtime)?;
        Ok(Containers {
            target,
            pool: pool.to_string(),
            rt,
            handle: 0,
        })
    }

    /// Calls from now on are made under pool handle `handle` (ACLs are checked against its
    /// holder).
    pub fn set_handle(&mut self, handle: u64) {
        self.handle = handle;
    }

    /// Calls the pool service's leader, following redirects, until answered or [`DEADLINE`].
    async fn leader_call<T, F, Fut>(&self, f: F) -> Result<T, ContError>
    where
        F: Fn(ContSvcClient<daos_control::Conn>) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let deadline = Instant::now() + DEADLINE;
        let mut backoff = Duration::from_millis(100);
        loop {
            let mut hosts = HostQueue::new(self.target.hosts.iter().cloned());
            let mut last = String::from("no host to ask");
            while let Some(h) = hosts.next_host() {
                let conn = match self.target.conn(&h).await {
                    Ok(c) => c,
                    Err(e) => {
                        last = e;
                        continue;
                    }
                };
                match f(ContSvcClient::new(conn)).await {
                    Ok(c) => return Ok(c),
                    Err(s) => match s.code() {
                        tonic::Code::NotFound => {
                            return Err(ContError::NotFound(s.message().into()));
                        }
                        tonic::Code::AlreadyExists => {
                            return Err(ContError::Exists(s.message().into()));
                        }
                        tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => {
                            return Err(ContError::Invalid(s.message().into()));
                        }
                        tonic::Code::PermissionDenied => {
                            return Err(ContError::NoPerm(s.message().into()));
                        }
                        // A change the service may still commit: asking again could make it
                        // twice (or fail as already done); the service's words say so.
                        tonic::Code::DeadlineExceeded => {
                            return Err(ContError::Unavailable {
                                pool: self.pool.clone(),
                                last: format!("{h}: {}", s.message()),
                            });
                        }
                        _ => {
                            if let Some(r) = Redirect::from_status(&s) {
                                hosts.prefer(r.hosts());
                            }
                            last = format!("{h}: {}", s.message());
                        }
                    },
                }
            }
            if Instant::now() + backoff > deadline {
                return Err(ContError::Unavailable {
                    pool: self.pool.clone(),
                    last,
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    async fn call(&self, op: Op, req: ContReq) -> Result<Vec<Container>, ContError> {
        let one = |a: tonic::Response<daos_proto::cont::ContResp>| {
            a.into_inner().container.into_iter().collect::<Vec<_>>()
        };
        self.leader_call(|mut c| {
            let r = req.clone();
            async move {
                match op {
                    Op::Create => c.create(r).await.map(one),
                    Op::Destroy => c.destroy(r).await.map(one),
                    Op::Query => c.query(r).await.map(one),
                    Op::SetProps => c.set_props(r).await.map(one),
                    Op::List => c.list(r).await.map(|a| a.into_inner().containers),
                }
            }
        })
        .await
    }

    /// Pool connect with `cred` (an encoded credential from daos_agent) for `flags`
    /// ([`FLAG_RO`] or [`FLAG_RW`]): the pool handle.
    pub fn connect(&self, cred: Vec<u8>, flags: u32) -> Result<Handle, ContError> {
        let req = daos_proto::cont::ConnectReq {
            pool: self.pool.clone(),
            cred,
            flags,
            cookie: 0,
        };
        let r = self.rt.block_on(self.leader_call(|mut c| {
            let r = req.clone();
            async move { c.pool_connect(r).await.map(|a| a.into_inner()) }
        }))?;
        Ok(Handle {
            cookie: r.handle,
            rights: r.rights,
            uuid: r.uuid,
        })
    }

    /// Opens container `cont` under pool handle `handle`: the container handle.
    pub fn open(&self, handle: u64, cont: &str, flags: u32) -> Result<Handle, ContError> {
        let req = daos_proto::cont::HandleReq {
            pool: self.pool.clone(),
            handle,
            cont: cont.into(),
            flags,
            ..Default::default()
        };
        let r = self.rt.block_on(self.leader_call(|mut c| {
            let r = req.clone();
            async move { c.open(r).await.map(|a| a.into_inner()) }
        }))?;
        Ok(Handle {
            cookie: r.handle,
            rights: r.rights,
            uuid: r.uuid,
        })
    }

    /// Closes pool handle `handle` (and its container handles).
    pub fn disconnect(&self, handle: u64) -> Result<(), ContError> {
        let req = daos_proto::cont::HandleReq {
            pool: self.pool.clone(),
            handle,
            ..Default::default()
        };
        self.rt.block_on(self.leader_call(|mut c| {
            let r = req.clone();
            async move { c.disconnect(r).await.map(|_| ()) }
        }))
    }

    /// Evicts `handles` (none: every handle of the pool); how many closed.
    pub fn evict(&self, handles: Vec<u64>) -> Result<u32, ContError> {
        let req = daos_proto::cont::HandleReq {
            pool: self.pool.clone(),
            handles,
            ..Default::default()
        };
        self.rt.block_on(self.leader_call(|mut c| {
            let r = req.clone();
            async move { c.evict(r).await.map(|a| a.into_inner().count) }
        }))
    }

    fn one(&self, op: Op, req: ContReq) -> Result<ContInfo, ContError> {
        let got = self.rt.block_on(self.call(op, req))?;
        let c = got
            .into_iter()
            .next()
            .ok_or_else(|| ContError::Unavailable {
                pool: self.pool.clone(),
                last: "an answer without its container".into(),
            })?;
        ContInfo::from_wire(c)
    }

    fn req(&self) -> ContReq {
        ContReq {
            pool: self.pool.clone(),
            handle: self.handle,
            ..Default::default()
        }
    }

    /// Creates container `label` with its owner (empty: the handle's holder) and ACL entries
    /// (empty: DAOS's default container ACL).
    pub fn create_with_acl(
        &self,
        label: &str,
        uuid: [u8; 16],
        props: &str,
        acl: Vec<String>,
        owner: &str,
        group: &str,
    ) -> Result<ContInfo, ContError> {
        self.one(
            Op::Create,
            ContReq {
                label: label.into(),
                uuid: crate::uuid_text(&uuid),
                props: props.into(),
                acl,
                owner: owner.into(),
                group: group.into(),
                ..self.req()
            },
        )
    }

    /// A container ACL operation (`daos container get-acl|overwrite-acl|update-acl|
    /// delete-acl|set-owner`); the container afterwards.
    pub fn acl(&self, id: &str, op: AclOp) -> Result<ContInfo, ContError> {
        let mut req = daos_proto::cont::ContAclReq {
            pool: self.pool.clone(),
            id: id.into(),
            handle: self.handle,
            ..Default::default()
        };
        match op {
            AclOp::Get => req.op = 0,
            AclOp::Overwrite(e) => (req.op, req.entries) = (1, e),
            AclOp::Update(e) => (req.op, req.entries) = (2, e),
            AclOp::Delete(p) => (req.op, req.principal) = (3, p),
            AclOp::SetOwner { user, group } => (req.op, req.owner, req.group) = (4, user, group),
        }
        let c = self.rt.block_on(self.leader_call(|mut c| {
            let r = req.clone();
            async move { c.acl(r).await.map(|a| a.into_inner().container) }
        }))?;
        let c = c.ok_or_else(|| ContError::Unavailable {
            pool: self.pool.clone(),
            last: "an answer without its container".into(),
        })?;
        ContInfo::from_wire(c)
    }

    /// Creates container `label` with UUID `uuid` and properties `props`.
    pub fn create(&self, label: &str, uuid: [u8; 16], props: &str) -> Result<ContInfo, ContError> {
        self.one(
            Op::Create,
            ContReq {
                label: label.into(),
                uuid: crate::uuid_text(&uuid),
                props: props.into(),
                ..self.req()
            },
        )
    }

    /// Container `id` (label or UUID).
    pub fn query(&self, id: &str) -> Result<ContInfo, ContError> {
        self.one(
            Op::Query,
            ContReq {
                id: id.into(),
                ..self.req()
            },
        )
    }

    /// Replaces container `id`'s properties.
    pub fn set_props(&self, id: &str, props: &str) -> Result<ContInfo, ContError> {
        self.one(
            Op::SetProps,
            ContReq {
                id: id.into(),
                props: props.into(),
                ..self.req()
            },
        )
    }

    /// Removes container `id` from the pool service; returns what it was. While the
    /// container is open the service refuses (DER_BUSY) unless `force`, which evicts its
    /// handles (DAOS's `daos container destroy --force`).
    pub fn destroy(&self, id: &str, force: bool) -> Result<ContInfo, ContError> {
        self.one(
            Op::Destroy,
            ContReq {
                id: id.into(),
                force,
                ..self.req()
            },
        )
    }

    /// Every container of the pool.
    pub fn list(&self) -> Result<Vec<ContInfo>, ContError> {
        let got = self.rt.block_on(self.call(Op::List, self.req()))?;
        got.into_iter().map(ContInfo::from_wire).collect()
    }
}
