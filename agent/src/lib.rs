//! daos_agent: the daemon of a client node (DAOS_DISTRIBUTED §6). It serves client processes
//! over dRPC on `<runtime_dir>/daos_agent.sock`:
//!
//! - SEC_AGENT 101 RequestCredentials: an AUTH_SYS credential for the caller's uid/gid, which
//!   the kernel gives for the socket (SO_PEERCRED), never the request; signed with the agent's
//!   key (insecure: its digest).
//! - MGMT 206 GetAttachInfo: the engines' fabric URIs, fetched from the management service
//!   with the agent's certificate and cached (`cache_expiration`, `disable_caching`).
//! - MGMT 235/236 NotifyPoolConnect/Disconnect and 233 NotifyExit: the pool handles each
//!   process holds, so those left behind by a process that exits are known.
//! - MGMT 297 (daos-rs's own): a client process's management-API call (pool query, pool
//!   connect, containers), made with the agent's certificate: client processes need none.
//!   Each carries the credential the agent signs for the caller's uid/gid (SO_PEERCRED), by
//!   which the daos_server authorizes it, and goes only to a daos_server of the system the
//!   agent is configured for: its access points, and the hosts they name as a service's
//!   leader or replicas (a caller naming another host:port is refused before any connection).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use daos_auth::cred::{self, Names, Signer};
use daos_config::agent::Agent;
use daos_control::Target;
use daos_drpc::ids::SecAgentMethod;
use daos_drpc::server::{CallContext, HandlerError, Registry};
use daos_drpc::{MgmtMethod, Module};
use daos_proto::auth::GetCredResp;
use daos_proto::mgmt::{GetAttachInfoReq, GetAttachInfoResp, PoolMonitorReq};
use prost::Message;
use tracing::{debug, info, warn};

/// DAOS's error numbers the agent answers with.
pub const DER_MISC: i32 = -1025;
pub const DER_AGENT_COMM: i32 = -2034;

/// Why the agent could not start or a subcommand failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Config(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Auth(#[from] daos_auth::AuthError),
    #[error("{0}")]
    Service(String),
    #[error("cannot serve dRPC: {0}")]
    Drpc(#[from] daos_drpc::server::ServerError),
}

/// An encoded credential response and when it was signed.
type Signed = (Instant, Vec<u8>);

/// What the agent holds while it runs.
pub struct AgentState {
    pub cfg: Agent,
    signer: Signer,
    target: Target,
    rt: tokio::runtime::Runtime,
    machine: String,
    /// The last attach info from the management service (all ranks) and when it came.
    attach: Mutex<Option<(Instant, GetAttachInfoResp)>>,
    /// Signed credentials per (uid, gid), reused for `credential_config.cache_expiration`.
    creds: Mutex<HashMap<(u32, u32), Signed>>,
    /// Pool handles per client pid.
    handles: Mutex<HashMap<i32, Vec<PoolMonitorReq>>>,
    /// The daos_servers forwarded calls may go to: the access points, then the hosts they
    /// (or hosts found so) named as a service's leader or replicas (at most
    /// [`MAX_SYSTEM_HOSTS`]).
    system_hosts: Mutex<BTreeSet<String>>,
}

/// How many daos_server addresses the agent learns from redirects (more are not learned).
pub const MAX_SYSTEM_HOSTS: usize = 4096;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AgentState {
    /// Loads the signing key and prepares the management-service client.
    pub fn new(cfg: Agent, insecure: bool) -> Result<AgentState, AgentError> {
        let insecure = insecure || cfg.transport_config.allow_insecure;
        let signer = if insecure {
            Signer::Digest
        } else {
            Signer::from_key_file(&cfg.transport_config.key)?
        };
        let target = Target::for_agent(cfg.access_point_addrs(), &cfg.transport_config, insecure)
            .map_err(|e| AgentError::Config(e.to_string()))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|source| AgentError::Io {
                what: "cannot start the agent's runtime".into(),
                source,
            })?;
        let system_hosts = Mutex::new(cfg.access_point_addrs().into_iter().collect());
        Ok(AgentState {
            cfg,
            signer,
            target,
            rt,
            machine: cred::machine_name(),
            attach: Mutex::new(None),
            creds: Mutex::new(HashMap::new()),
            handles: Mutex::new(HashMap::new()),
            system_hosts,
        })
    }

    /// The names a uid/gid pair goes by: `client_user_map` first, then the local databases,
    /// then the map's `default` entry.
    fn names(&self, uid: u32, gid: u32) -> Result<Names, daos_auth::AuthError> {
        let map = &self.cfg.credential_config.client_user_map;
        let mapped = |m: &daos_config::agent::MappedUser| Names {
            user: m.user.clone(),
            group: if m.group.is_empty() {
                m.user.clone()
            } else {
                m.group.clone()
            },
            groups: m.groups.clone(),
        };
        if let Some(m) = map.get(&uid.to_string()) {
            return Ok(mapped(m));
        }
        match cred::identity(uid, gid) {
            Ok(n) => Ok(n),
            Err(e) => map.get("default").map(mapped).ok_or(e),
        }
    }

    /// An encoded `GetCredResp` for the caller.
    pub fn credential(&self, uid: u32, gid: u32) -> Vec<u8> {
        let ttl = self.cfg.credential_config.cache_expiration;
        if ttl > Duration::ZERO
            && let Some((at, body)) = lock(&self.creds).get(&(uid, gid))
            && at.elapsed() < ttl
        {
            return body.clone();
        }
        let resp = match self
            .names(uid, gid)
            .and_then(|n| cred::credential(&n, &self.machine, &self.signer))
        {
            Ok(c) => GetCredResp {
                status: 0,
                cred: Some(c),
            },
            Err(e) => {
                warn!("credential for uid {uid} gid {gid}: {e}");
                GetCredResp {
                    status: e.der(),
                    cred: None,
                }
            }
        };
        let body = resp.encode_to_vec();
        if ttl > Duration::ZERO && resp.status == 0 {
            lock(&self.creds).insert((uid, gid), (Instant::now(), body.clone()));
        }
        body
    }

    /// The attach info of every rank, from the cache or the management service.
    pub fn attach_info(&self) -> Result<GetAttachInfoResp, String> {
        let cache = !self.cfg.disable_caching;
        if cache && let Some((at, resp)) = lock(&self.attach).as_ref() {
            let exp = self.cfg.cache_expiration;
            if exp == Duration::ZERO || at.elapsed() < exp {
                return Ok(resp.clone());
            }
        }
        let target = self.target.clone();
        let resp = self.rt.block_on(async move {
            let mut c = daos_control::ms_client(&target).await?;
            c.get_attach_info(GetAttachInfoReq {
                all_ranks: true,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
            .map_err(daos_control::status_text)
        })?;
        debug!(
            "attach info: {} ranks, map version {}",
            resp.rank_uris.len(),
            resp.data_version
        );
        if cache {
            *lock(&self.attach) = Some((Instant::now(), resp.clone()));
        }
        Ok(resp)
    }

    /// Forgets the cached attach info (SIGUSR2).
    pub fn refresh(&self) {
        *lock(&self.attach) = None;
        lock(&self.creds).clear();
    }

    /// The fabric interface for a client on `numa` from `fabric_ifaces`, if configured.
    fn iface_for(&self, numa: Option<u32>, pid: i32) -> Option<(String, String)> {
        let allowed = |i: &str| {
            (self.cfg.include_fabric_ifaces.is_empty()
                || self.cfg.include_fabric_ifaces.iter().any(|x| x == i))
                && !self.cfg.exclude_fabric_ifaces.iter().any(|x| x == i)
        };
        let mut all: Vec<&daos_config::agent::NumaFabric> = self.cfg.fabric_ifaces.iter().collect();
        // The client's NUMA node first, then the others.
        all.sort_by_key(|n| Some(n.numa_node) != numa);
        let devices: Vec<_> = all
            .first()
            .map(|n| n.devices.iter().filter(|d| allowed(&d.iface)).collect())
            .unwrap_or_default();
        if devices.is_empty() {
            return None;
        }
        let d = devices[pid.unsigned_abs() as usize % devices.len()];
        Some((d.iface.clone(), d.domain.clone()))
    }

    /// An encoded `GetAttachInfoResp` for a request from `pid`.
    pub fn attach_info_for(&self, req: &GetAttachInfoReq, pid: Option<i32>) -> Vec<u8> {
        let mut resp = match self.attach_info() {
            Ok(r) => r,
            Err(e) => {
                warn!("GetAttachInfo: {e}");
                return GetAttachInfoResp {
                    status: DER_AGENT_COMM,
                    ..Default::default()
                }
                .encode_to_vec();
            }
        };
        if !req.all_ranks {
            let ms = resp.ms_ranks.clone();
            resp.rank_uris.retain(|u| ms.contains(&u.rank));
        }
        if resp.sys.is_empty() {
            resp.sys = self.cfg.name.clone();
        }
        let numa = pid.and_then(numa_of_pid);
        if let (Some((iface, domain)), Some(hint)) = (
            self.iface_for(numa, pid.unwrap_or(0)),
            resp.client_net_hint.as_mut(),
        ) {
            hint.interface = iface;
            hint.domain = domain;
        }
        if !req.interface.is_empty()
            && let Some(h) = resp.client_net_hint.as_mut()
        {
            h.interface = req.interface.clone();
            h.domain = if req.domain.is_empty() {
                req.interface.clone()
            } else {
                req.domain.clone()
            };
        }
        resp.encode_to_vec()
    }

    /// Makes a client process's management-API call with the agent's certificate, carrying
    /// the credential of `peer` (the calling process, from the socket): the daos_server
    /// authorizes the call as that user, never as the agent or an admin tool. Only hosts of
    /// the system are called ([`Self::system_host`]).
    pub fn forward(
        &self,
        req: daos_proto::mgmt::ForwardReq,
        peer: Option<daos_drpc::socket::Peer>,
    ) -> daos_proto::mgmt::ForwardResp {
        use daos_proto::mgmt::ForwardResp;
        let refused = |s: tonic::Status| ForwardResp {
            code: s.code() as i32,
            message: s.message().to_string(),
            ..Default::default()
        };
        let Some(peer) = peer else {
            return refused(tonic::Status::permission_denied(
                "DER_NO_PERM(-1001): daos_agent forwards no call whose caller the kernel does not name (no SO_PEERCRED on the socket)",
            ));
        };
        // No host named: the access points, first that answers.
        let hosts = if req.host.is_empty() || req.host == daos_control::forward::AGENT_CHOOSES {
            self.cfg.access_point_addrs()
        } else if self.system_host(&req.host) {
            vec![req.host.clone()]
        } else {
            warn!(
                "refused to forward {} of uid {} (pid {}) to {:?}: not a host of system {}",
                req.path, peer.uid, peer.pid, req.host, self.cfg.name
            );
            return refused(tonic::Status::permission_denied(format!(
                "DER_NO_PERM(-1001): ForwardReq.host {:?} is not a daos_server of system {} (daos_agent calls only its access_points {} and the servers they name); give one of those with -l/--host-list, or no host list to use the agent's access points",
                req.host,
                self.cfg.name,
                self.cfg.access_point_addrs().join(",")
            )));
        };
        let caller = match GetCredResp::decode(self.credential(peer.uid, peer.gid).as_slice()) {
            Ok(GetCredResp {
                status: 0,
                cred: Some(c),
            }) => c.encode_to_vec(),
            Ok(r) => {
                return refused(tonic::Status::permission_denied(format!(
                    "DER_NO_PERM(-1001): daos_agent has no credential for uid {} gid {} (status {}; see its log and credential_config.client_user_map)",
                    peer.uid, peer.gid, r.status
                )));
            }
            Err(e) => return refused(tonic::Status::internal(format!("credential: {e}"))),
        };
        let target = self.target.clone();
        let path = req.path.clone();
        let r = self.rt.block_on(async move {
            let mut last = tonic::Status::unavailable("no access point configured");
            for h in &hosts {
                match target.channel(h).await {
                    Ok(ch) => {
                        return daos_control::forward::call_raw(ch, &req.path, req.body, &caller)
                            .await;
                    }
                    Err(e) => last = tonic::Status::unavailable(e),
                }
            }
            Err(last)
        });
        // The system's hosts a daos_server of it names: the caller may follow them.
        let named = match &r {
            Ok(body) if path == "/mgmt.MgmtSvc/LeaderQuery" => {
                daos_proto::mgmt::LeaderQueryResp::decode(body.as_slice())
                    .map(|l| {
                        std::iter::once(l.current_leader)
                            .chain(l.replicas)
                            .collect()
                    })
                    .unwrap_or_default()
            }
            Ok(_) => Vec::new(),
            Err(s) => daos_control::redirect::Redirect::from_status(s)
                .map(|r| r.hosts())
                .unwrap_or_default(),
        };
        self.learn_hosts(named);
        match r {
            Ok(body) => ForwardResp {
                code: 0,
                body,
                ..Default::default()
            },
            Err(s) => ForwardResp {
                code: s.code() as i32,
                message: s.message().to_string(),
                details: s.details().to_vec(),
                body: Vec::new(),
            },
        }
    }

    /// Whether `host` is a daos_server of the system: an access point, or named by one (or by
    /// a server found so) as a service's leader or replica.
    pub fn system_host(&self, host: &str) -> bool {
        lock(&self.system_hosts).contains(host)
    }

    fn learn_hosts(&self, hosts: Vec<String>) {
        let mut known = lock(&self.system_hosts);
        for h in hosts {
            if h.is_empty() || known.contains(&h) {
                continue;
            }
            if known.len() >= MAX_SYSTEM_HOSTS {
                warn!("not following {h}: {MAX_SYSTEM_HOSTS} daos_servers known already");
                continue;
            }
            debug!(
                "daos_server {h} of system {} named by a server",
                self.cfg.name
            );
            known.insert(h);
        }
    }

    fn pool_connect(&self, pid: i32, req: PoolMonitorReq) {
        debug!(
            "process {pid} connected to pool {} (handle {})",
            req.pool_uuid, req.pool_handle_uuid
        );
        lock(&self.handles).entry(pid).or_default().push(req);
    }

    fn pool_disconnect(&self, pid: i32, req: &PoolMonitorReq) {
        let mut h = lock(&self.handles);
        if let Some(list) = h.get_mut(&pid) {
            list.retain(|x| x.pool_handle_uuid != req.pool_handle_uuid);
            if list.is_empty() {
                h.remove(&pid);
            }
        }
    }

    /// A process exits: the pool handles it still holds (its leak) are evicted, unless
    /// `disable_auto_evict`; returns them.
    pub fn process_exit(&self, pid: i32) -> Vec<PoolMonitorReq> {
        let left = lock(&self.handles).remove(&pid).unwrap_or_default();
        if left.is_empty() {
            return left;
        }
        info!(
            "process {pid} exited holding {} pool handle(s){}",
            left.len(),
            if self.cfg.disable_auto_evict {
                " (disable_auto_evict: left connected)"
            } else {
                "; evicting them"
            }
        );
        if !self.cfg.disable_auto_evict {
            for h in &left {
                if let Err(e) = self.evict(&h.pool_uuid, &h.pool_handle_uuid) {
                    warn!(
                        "evicting handle {} of pool {}: {e}",
                        h.pool_handle_uuid, h.pool_uuid
                    );
                }
            }
        }
        left
    }

    /// Evicts one pool handle (DAOS's PoolEvict with the handle) at the management service.
    fn evict(&self, pool: &str, handle: &str) -> Result<(), String> {
        let target = self.target.clone();
        let (pool, handle) = (pool.to_string(), handle.to_string());
        self.rt.block_on(async move {
            let mut c = daos_control::ms_client(&target).await?;
            c.pool_evict(daos_proto::mgmt::PoolEvictReq {
                id: pool,
                handles: vec![handle],
                ..Default::default()
            })
            .await
            .map(|_| ())
            .map_err(daos_control::status_text)
        })
    }

    /// Processes holding handles that are gone without telling (killed): their handles are
    /// evicted as at [`Self::process_exit`].
    pub fn reap(&self) -> usize {
        let pids: Vec<i32> = lock(&self.handles).keys().copied().collect();
        let mut n = 0;
        for pid in pids {
            let gone = matches!(
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
                Err(nix::errno::Errno::ESRCH)
            );
            if gone {
                n += self.process_exit(pid).len();
            }
        }
        n
    }

    /// Pool handles held now, per pid.
    pub fn handles(&self) -> HashMap<i32, usize> {
        lock(&self.handles)
            .iter()
            .map(|(p, l)| (*p, l.len()))
            .collect()
    }
}

/// The NUMA node a process runs on (its last CPU's node), from `/proc` and `/sys`.
fn numa_of_pid(pid: i32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    // `processor` is field 39 of stat; `rest` starts at field 3.
    let cpu: u32 = rest.split_whitespace().nth(39 - 3)?.parse().ok()?;
    let dir = std::fs::read_dir(format!("/sys/devices/system/cpu/cpu{cpu}")).ok()?;
    dir.filter_map(Result::ok)
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("node")?
                .parse::<u32>()
                .ok()
        })
        .next()
}

fn peer_of(ctx: &CallContext) -> Result<daos_drpc::socket::Peer, HandlerError> {
    ctx.peer.ok_or_else(|| {
        HandlerError::Failure("the caller's credentials are unknown (no SO_PEERCRED)".into())
    })
}

/// The agent's dRPC modules.
pub fn registry(state: Arc<AgentState>) -> Registry {
    let mut r = Registry::new();
    r.module(Module::SecAgent).module(Module::Mgmt);
    let s = state.clone();
    r.method(SecAgentMethod::RequestCreds, move |ctx, _body| {
        let p = peer_of(ctx)?;
        Ok(s.credential(p.uid, p.gid))
    });
    let s = state.clone();
    r.method(MgmtMethod::GetAttachInfo, move |ctx, body| {
        let req = GetAttachInfoReq::decode(body)?;
        Ok(s.attach_info_for(&req, ctx.peer.map(|p| p.pid)))
    });
    let s = state.clone();
    r.method(MgmtMethod::AgentForward, move |ctx, body| {
        let req = daos_proto::mgmt::ForwardReq::decode(body)?;
        Ok(s.forward(req, ctx.peer).encode_to_vec())
    });
    let s = state.clone();
    r.method(MgmtMethod::NotifyPoolConnect, move |ctx, body| {
        let req = PoolMonitorReq::decode(body)?;
        s.pool_connect(peer_of(ctx)?.pid, req);
        Ok(Vec::new())
    });
    let s = state.clone();
    r.method(MgmtMethod::NotifyPoolDisconnect, move |ctx, body| {
        let req = PoolMonitorReq::decode(body)?;
        s.pool_disconnect(peer_of(ctx)?.pid, &req);
        Ok(Vec::new())
    });
    let s = state;
    r.method(MgmtMethod::NotifyExit, move |ctx, _body| {
        s.process_exit(peer_of(ctx)?.pid);
        Ok(Vec::new())
    });
    r
}

/// DAOS's CaRT attach-info text (`dump-attachinfo`): system name, rank count, then
/// `rank uri` lines.
pub fn attach_info_text(resp: &GetAttachInfoResp, sys: &str) -> String {
    let mut s = format!(
        "name {}\nsize {}\nall\n",
        if resp.sys.is_empty() { sys } else { &resp.sys },
        resp.rank_uris.len()
    );
    let mut uris = resp.rank_uris.clone();
    uris.sort_by_key(|u| u.rank);
    for u in uris {
        s.push_str(&format!("{} {}\n", u.rank, u.uri));
    }
    s
}

/// The socket path, creating the runtime directory if missing (DAOS's agent does; systemd's
/// RuntimeDirectory=daos_agent does too).
pub fn prepare_runtime_dir(cfg: &Agent) -> Result<PathBuf, AgentError> {
    let dir = &cfg.runtime_dir;
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|source| AgentError::Io {
            what: format!(
                "cannot create runtime_dir {} (set runtime_dir or -s to a writable directory)",
                dir.display()
            ),
            source,
        })?;
    }
    Ok(cfg.socket())
}

#[cfg(test)]
mod tests {
    use super::*;
    use daos_proto::mgmt::ForwardReq;
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    fn state(access_point: &str) -> AgentState {
        let cfg = daos_config::agent::load_str(
            &format!(
                "name: daos_server\naccess_points: ['{access_point}']\n\
                 transport_config:\n  allow_insecure: true\n"
            ),
            "daos_agent.yml",
        )
        .expect("config");
        AgentState::new(cfg, true).expect("agent state")
    }

    fn me() -> Option<daos_drpc::socket::Peer> {
        Some(daos_drpc::socket::Peer {
            pid: std::process::id() as i32,
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        })
    }

    fn list_at(host: &str) -> ForwardReq {
        ForwardReq {
            host: host.into(),
            path: "/cont.ContSvc/List".into(),
            body: Vec::new(),
        }
    }

    /// A port nothing listens on.
    fn closed_port() -> String {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").to_string()
    }

    #[test]
    fn forwarded_calls_go_only_to_the_systems_daos_servers() {
        // Something listens there, but it is no daos_server of the agent's system: a caller
        // naming it must not make the agent connect (no port probing from the agent's host).
        let stranger = TcpListener::bind("127.0.0.1:0").expect("bind");
        stranger.set_nonblocking(true).expect("nonblocking");
        let addr = stranger.local_addr().expect("addr").to_string();
        let (stop, accepted) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let watcher = {
            let (stop, accepted) = (stop.clone(), accepted.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match stranger.accept() {
                        // Dropped at once: a connecting agent sees its call fail quickly.
                        Ok(_) => {
                            accepted.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        let access_point = closed_port();
        let s = state(&access_point);
        let r = s.forward(list_at(&addr), me());
        // Give a connection the agent might have made time to show.
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::SeqCst);
        watcher.join().expect("watcher");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            0,
            "the agent connected to {addr}: {r:?}"
        );
        assert_eq!(r.code, tonic::Code::PermissionDenied as i32, "{r:?}");
        assert!(
            r.message.contains(&format!(
                "ForwardReq.host {addr:?} is not a daos_server of system daos_server"
            )) && r.message.contains(&access_point)
                && r.message.contains("-l/--host-list"),
            "the refusal names the field, the value and the fix: {}",
            r.message
        );

        // The access point, named or chosen by the agent, is called (nothing listens there).
        for host in [
            access_point.as_str(),
            daos_control::forward::AGENT_CHOOSES,
            "",
        ] {
            let r = s.forward(list_at(host), me());
            assert_eq!(r.code, tonic::Code::Unavailable as i32, "{host}: {r:?}");
            assert!(r.message.contains("unable to connect"), "{r:?}");
        }

        // A server of the system named by a server (a redirect to a service's leader) may be
        // called from then on.
        let other = closed_port();
        assert!(!s.system_host(&other));
        s.learn_hosts(vec![other.clone()]);
        assert!(s.system_host(&other));
        let r = s.forward(list_at(&other), me());
        assert_eq!(r.code, tonic::Code::Unavailable as i32, "{r:?}");
    }

    #[test]
    fn a_call_whose_caller_is_unknown_is_not_forwarded() {
        let s = state(&closed_port());
        let r = s.forward(list_at(""), None);
        assert_eq!(r.code, tonic::Code::PermissionDenied as i32, "{r:?}");
        assert!(r.message.contains("SO_PEERCRED"), "{r:?}");
    }

    #[test]
    fn hosts_named_in_redirects_are_learned_up_to_a_limit() {
        let s = state("127.0.0.1:1");
        s.learn_hosts(
            (0..MAX_SYSTEM_HOSTS + 10)
                .map(|i| format!("h{i}:1"))
                .collect(),
        );
        assert_eq!(lock(&s.system_hosts).len(), MAX_SYSTEM_HOSTS);
        assert!(s.system_host("127.0.0.1:1"), "the access point stays");
    }
}
