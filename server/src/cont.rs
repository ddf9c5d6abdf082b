//! `cont.ContSvc`: a pool's containers (label, UUID, properties), served by the leader of the
//! pool's service (`daos_mgmt::raft::pool`). A server that runs no replica of the pool's
//! service, or one that does not lead it, answers with DAOS's not-leader error naming the
//! replicas (and the leader when it knows it), which clients follow.

use std::sync::Arc;

use daos_control::redirect::Redirect;
use daos_mgmt::raft::pool::{PoolServices, PoolSvcError};
use daos_mgmt::state::{Command, ContainerRecord, Reply};
use daos_mgmt::{ManagementService, MsError, Refusal};
use daos_proto::cont::cont_svc_server::{ContSvc, ContSvcServer};
use daos_proto::cont::{ContListResp, ContReq, ContResp, Container, MapReq, MapResp};
use tonic::{Request, Response, Status};

use crate::security;

/// The service.
#[derive(Clone)]
pub struct ContService {
    ms: Arc<dyn ManagementService>,
    insecure: bool,
    /// This server's engines and peers (handles are pushed to the pool's engines).
    harness: Option<Arc<crate::harness::Harness>>,
    /// How client credentials are checked.
    verify: daos_auth::Verify,
}

/// A tonic server of `cont.ContSvc`.
pub fn server(
    ms: Arc<dyn ManagementService>,
    insecure: bool,
    harness: Option<Arc<crate::harness::Harness>>,
    verify: daos_auth::Verify,
) -> ContSvcServer<ContService> {
    ContSvcServer::new(ContService {
        ms,
        insecure,
        harness,
        verify,
    })
}

/// The right of a daos_server's own pool handle to reach every container (the engines'
/// `handles::ANY_CONT`).
const ANY_CONT: u32 = daos_mgmt::state::RIGHTS_ANY_CONT;

/// The rights of a pool's system handle: read, write, every container.
pub(crate) const SYSTEM_RIGHTS: u32 = 1 | 2 | ANY_CONT;

/// DAOS's pool connect flags and container open flags.
pub const FLAG_RO: u32 = 1;
pub const FLAG_RW: u32 = 2;
/// With [`FLAG_RW`], a pool connect of a DAOS client's `DAOS_PC_EX`: exclusive.
pub const FLAG_EX: u32 = 4;

/// The handle rights (1 read, 2 write) access flags ask for.
fn wanted(flags: u32, what: &str) -> Result<u32, Status> {
    match flags {
        FLAG_RO => Ok(1),
        FLAG_RW => Ok(3),
        other => Err(Status::invalid_argument(format!(
            "DER_INVAL(-1003): {what} flags {other:#x}: give RO (1) or RW (2)"
        ))),
    }
}

/// A push of pool `uuid`'s open handles `list` (from [`crate::remote::Remote::list_handles`])
/// that also turns the checks on.
/// `system` is the pool's system handle (0: none).
pub(crate) fn resync_req(
    uuid: &str,
    list: Vec<daos_proto::cont::HandleInfo>,
    system: u64,
) -> daos_drpc::mgmt::PoolHandlesReq {
    use daos_drpc::mgmt::pool_handles_req::Handle;
    daos_drpc::mgmt::PoolHandlesReq {
        uuid: uuid.to_string(),
        arm: true,
        add: list
            .into_iter()
            .map(|x| Handle {
                cookie: x.cookie,
                rights: x.rights,
                parent: x.parent,
                cont: x.cont,
            })
            .chain((system != 0).then(|| Handle {
                cookie: system,
                rights: SYSTEM_RIGHTS,
                ..Default::default()
            }))
            .collect(),
        ..Default::default()
    }
}

/// Pushes a change of pool `uuid`'s handles to the engines of its ranks (those not answering
/// get the full list when the pool service resyncs them). Blocking.
pub(crate) fn push_handles(
    h: &crate::harness::Harness,
    ranks: &[u32],
    req: &daos_drpc::mgmt::PoolHandlesReq,
) -> Vec<String> {
    use prost::Message;
    let body = req.encode_to_vec();
    let one = |r: u32| -> Result<(), String> {
        let b = h
            .engine_call(r, daos_drpc::MgmtMethod::PoolHandles, &body)
            .map_err(|e| e.to_string())?;
        match daos_drpc::mgmt::DaosResp::decode(b.as_slice()) {
            Ok(d) if d.status == 0 => Ok(()),
            Ok(d) => Err(format!("status {}", d.status)),
            Err(e) => Err(e.to_string()),
        }
    };
    let mut failed = Vec::new();
    for &r in ranks {
        // An engine in the middle of a restart gets a few more chances.
        let mut last = one(r);
        for _ in 0..3 {
            if last.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
            last = one(r);
        }
        if let Err(e) = last {
            failed.push(format!("rank {r}: {e}"));
        }
    }
    if !failed.is_empty() {
        tracing::warn!(
            "pool {}: handles not pushed to {} (they get them at the next resync)",
            req.uuid,
            failed.join("; ")
        );
    }
    failed
}

/// `ContAttrReq.op`: DAOS's container attribute operations.
pub const ATTR_LIST: u32 = 0;
pub const ATTR_GET: u32 = 1;
pub const ATTR_SET: u32 = 2;
pub const ATTR_DEL: u32 = 3;
/// The longest attribute name, as DAOS's (`DAOS_ATTR_NAME_MAX`).
pub const ATTR_NAME_MAX: usize = 511;
/// The largest attribute value kept.
pub const ATTR_VALUE_MAX: usize = 1 << 20;

/// An attribute as a list or get answers it (`None`: not there, or a list's name only).
fn attr_of(name: &str, value: Option<&Vec<u8>>) -> daos_proto::cont::ContAttr {
    daos_proto::cont::ContAttr {
        name: name.as_bytes().to_vec(),
        found: value.is_some(),
        value: value.cloned().unwrap_or_default(),
    }
}

/// What a set (`ATTR_SET`: one value per name, each at most [`ATTR_VALUE_MAX`] bytes) or a
/// delete changes: (set, deleted).
#[allow(clippy::type_complexity)]
fn attr_change(
    op: u32,
    names: Vec<String>,
    values: Vec<Vec<u8>>,
) -> Result<(Vec<(String, Vec<u8>)>, Vec<String>), Status> {
    if op != ATTR_SET {
        return Ok((Vec::new(), names));
    }
    if values.len() != names.len() {
        return Err(Status::invalid_argument(format!(
            "DER_INVAL(-1003): ContAttrReq has {} names but {} values: give one value per name",
            names.len(),
            values.len()
        )));
    }
    if let Some(v) = values.iter().find(|v| v.len() > ATTR_VALUE_MAX) {
        return Err(Status::invalid_argument(format!(
            "DER_INVAL(-1003): an attribute value of {} bytes is larger than {ATTR_VALUE_MAX}",
            v.len()
        )));
    }
    Ok((names.into_iter().zip(values).collect(), Vec::new()))
}

/// Attribute names as text: non-empty, at most [`ATTR_NAME_MAX`] bytes, UTF-8.
fn attr_names(names: &[Vec<u8>]) -> Result<Vec<String>, Status> {
    names
        .iter()
        .map(|n| {
            if n.is_empty() || n.len() > ATTR_NAME_MAX {
                return Err(Status::invalid_argument(format!(
                    "DER_INVAL(-1003): an attribute name of {} bytes: names have 1 to {ATTR_NAME_MAX} bytes",
                    n.len()
                )));
            }
            String::from_utf8(n.clone()).map_err(|_| {
                Status::invalid_argument(format!(
                    "DER_INVAL(-1003): attribute name {:?} is not UTF-8 text",
                    String::from_utf8_lossy(n)
                ))
            })
        })
        .collect()
}

fn to_wire(c: ContainerRecord) -> Container {
    Container {
        uuid: c.uuid,
        label: c.label,
        props: c.props,
        owner: c.owner,
        group: c.owner_group,
        acl: c.acl,
        nhandles: 0,
    }
}

/// DAOS's container open flags (`DAOS_COO_*`).
const COO_RO: u64 = 1;
const COO_RW: u64 = 2;
const COO_EX: u64 = 4;
const COO_EVICT: u64 = 0x20;
const COO_EVICT_ALL: u64 = 0x40;
/// Every flag DAOS 2.6 knows (`DAOS_COO_MASK`).
const COO_MASK: u64 = 0xFF;

/// DAOS's rules for container open flags (`dc_cont_open_flags_valid`); 0: not a DAOS
/// client's open.
fn check_open_flags(f: u64) -> Result<(), Status> {
    if f == 0 {
        return Ok(());
    }
    let bad = |why: &str| {
        Err(Status::invalid_argument(format!(
            "DER_INVAL(-1003): container open flags {f:#x}: {why}"
        )))
    };
    if f & !COO_MASK != 0 {
        return bad("unknown flags");
    }
    let base = f & (COO_RO | COO_RW | COO_EX);
    if ![COO_RO, COO_RW, COO_EX].contains(&base) {
        return bad("give exactly one of RO (1), RW (2) and EX (4)");
    }
    if f & COO_EVICT != 0 && f & COO_EVICT_ALL != 0 {
        return bad("EVICT and EVICT_ALL together");
    }
    if f & (COO_RO | COO_RW) != 0 && f & COO_EVICT_ALL != 0 {
        return bad("EVICT_ALL goes with EX only");
    }
    if f & COO_EX != 0 && f & COO_EVICT != 0 {
        return bad("EX with EVICT (use EVICT_ALL)");
    }
    Ok(())
}

/// The identity of pool handle `handle` in the pool service's state (`None` for 0: an admin
/// tool or a daos_server, which container ACLs do not restrict).
fn holder(db: &daos_mgmt::SystemDb, handle: u64) -> Result<Option<daos_auth::Identity>, Status> {
    if handle == 0 {
        return Ok(None);
    }
    let h = db
        .handles
        .iter()
        .find(|h| h.cookie == handle && h.parent == 0)
        .ok_or_else(|| Status::permission_denied(Refusal::UnknownHandle(handle).to_string()))?;
    if h.rights & ANY_CONT != 0 {
        // A daos_server's or an admin tool's handle: no ACL restricts it.
        return Ok(None);
    }
    Ok(Some(daos_auth::Identity {
        user: h.user.clone(),
        group: h.group.clone(),
        groups: h.groups.clone(),
        machine: h.machine.clone(),
    }))
}

/// What `who` may do with container `c` (DAOS's container ACL); a container made before
/// ACLs had none: its pool's rights decide (read, write).
fn cont_perms(c: &ContainerRecord, who: &daos_auth::Identity, pool_rights: u16) -> u16 {
    use daos_auth::perm;
    if c.owner.is_empty() {
        let mut p = 0;
        if pool_rights & perm::READ != 0 {
            p |= perm::READ | perm::GET_PROP | perm::GET_ACL;
        }
        if pool_rights & perm::WRITE != 0 {
            p |= perm::WRITE | perm::SET_PROP | perm::DEL_CONT;
        }
        return p;
    }
    let p = daos_auth::Acl::stored(&c.acl, daos_auth::Object::Container)
        .map(|a| a.perms(who, &c.owner, &c.owner_group))
        .unwrap_or(0);
    // As DAOS (`CONT_OWNER_MIN_PERMS`): the owner may always read and change the ACL.
    if who.user == c.owner {
        p | perm::GET_ACL | perm::SET_ACL
    } else {
        p
    }
}

/// Whether permissions `p` let a container open in mode `want` (1 read-only, 2 read-write),
/// as DAOS decides: a read-only open needs some read permission (data, properties or the
/// ACL); a read-write open also some write permission (data, properties, the ACL or the
/// owner).
fn may_open(p: u16, want: u32) -> bool {
    use daos_auth::perm;
    let read = p & (perm::READ | perm::GET_PROP | perm::GET_ACL) != 0;
    let write = p & (perm::WRITE | perm::SET_PROP | perm::SET_ACL | perm::SET_OWNER) != 0;
    read && (want & 2 == 0 || write)
}

/// The permissions container handle `handle` of container `cont` got when it opened (DAOS
/// checks a handle's capabilities, not the ACL of the moment); `None` when `handle` is no
/// such handle (a pool handle: the caller's identity decides).
fn cont_handle_perms(db: &daos_mgmt::SystemDb, handle: u64, cont: &str) -> Option<u16> {
    db.handles
        .iter()
        .find(|h| h.cookie == handle && h.parent != 0 && h.cont == cont && h.perms != 0)
        .map(|h| h.perms)
}

/// Whether a handle with permissions `p` may read the properties `bits` ask for
/// (`DAOS_CO_QUERY_PROP_*`), as DAOS's `hdl_has_query_access`: any property needs the right
/// to read properties or the ACL, the ACL needs the latter, the owner and group either, the
/// rest the former. `Err` names what is refused.
fn query_allowed(p: u16, bits: u64) -> Result<(), &'static str> {
    use daos_auth::perm;
    const ALL: u64 = (1 << 26) - 1;
    const ACL: u64 = 1 << 11;
    const OWNERSHIP: u64 = (1 << 12) | (1 << 13);
    let (props, acl) = (p & perm::GET_PROP != 0, p & perm::GET_ACL != 0);
    if bits & ALL != 0 && !props && !acl {
        return Err("the properties");
    }
    if bits & ACL != 0 && !acl {
        return Err("the ACL");
    }
    if bits & ALL & !(ACL | OWNERSHIP) != 0 && !props {
        return Err("the properties");
    }
    Ok(())
}

/// A refusal naming who, what and where.
fn no_perm(who: &daos_auth::Identity, what: &str, on: &str) -> Status {
    Status::permission_denied(format!(
        "DER_NO_PERM(-1001): {} may not {what} {on} (see its ACL)",
        who.user
    ))
}

/// A redirect to a pool service's leader, in DAOS's annotated form with the pool's words.
fn not_leader(pool: &str, hint: String, replicas: Vec<String>) -> Status {
    let r = Redirect::NotLeader { hint, replicas };
    let s = r.to_status();
    Status::with_details(
        s.code(),
        format!(
            "not the leader of pool {pool}'s service (try {} or one of {})",
            match &r {
                Redirect::NotLeader { hint, .. } if !hint.is_empty() => hint.as_str(),
                _ => "another replica",
            },
            r.hosts().join(",")
        ),
        s.details().to_vec().into(),
    )
}

fn status(pool: &str, e: PoolSvcError, svc_hosts: &[String]) -> Status {
    match e {
        PoolSvcError::NotLeader { hint, replicas, .. } => not_leader(pool, hint, replicas),
        PoolSvcError::NoReplica(_) => not_leader(pool, String::new(), svc_hosts.to_vec()),
        PoolSvcError::Ms(MsError::Refused(r)) => match r {
            Refusal::UnknownContainer(_) | Refusal::NoAclEntry { .. } | Refusal::NoAttr { .. } => {
                Status::not_found(r.to_string())
            }
            Refusal::BadAcl(_) => Status::invalid_argument(r.to_string()),
            Refusal::OidsExhausted(_) => Status::out_of_range(r.to_string()),
            Refusal::ContLabelTaken(_) | Refusal::ContUuidTaken(_) => {
                Status::already_exists(r.to_string())
            }
            _ => Status::failed_precondition(r.to_string()),
        },
        // Nothing was written: asking again later is safe.
        e @ PoolSvcError::NoMajority { .. } => Status::unavailable(e.to_string()),
        // Written but not committed: asking again could apply it twice; the caller is told.
        e @ PoolSvcError::NotCommitted { .. } => Status::deadline_exceeded(e.to_string()),
        PoolSvcError::Ms(e) => Status::unavailable(format!("pool {pool}'s service: {e}")),
    }
}

impl ContService {
    /// Pool `id` (label or UUID): its UUID, its service hosts, and this server's replicas.
    async fn route(&self, id: &str) -> Result<(String, Vec<String>, Arc<PoolServices>), Status> {
        if id.is_empty() {
            return Err(Status::invalid_argument(
                "ContReq.pool is empty: name a pool",
            ));
        }
        let ms = self.ms.clone();
        let key = id.to_string();
        // A server that is no replica of the management service reads it from one.
        let found = tokio::task::spawn_blocking(move || ms.pool_find(&key))
            .await
            .map_err(|e| Status::internal(format!("pool lookup: {e}")))?;
        let p = found.ok_or_else(|| {
            Status::not_found(format!(
                "DER_NONEXIST(-1005): no pool {id:?} in the system (see dmg pool list)"
            ))
        })?;
        if p.svc_hosts.is_empty() {
            return Err(Status::failed_precondition(format!(
                "pool {} has no pool service (it was created by an older daos_server); recreate it",
                p.label
            )));
        }
        let svc = self
            .ms
            .pool_services()
            .ok_or_else(|| Status::unavailable("this server runs no pool services"))?;
        Ok((p.uuid, p.svc_hosts, svc))
    }

    /// The pool's record as its service's leader holds it (not found: the service holds no
    /// map of it yet).
    async fn map_record(
        &self,
        uuid: &str,
        hosts: &[String],
        svc: &PoolServices,
    ) -> Result<Response<MapResp>, Status> {
        let db = svc.read(uuid).await.map_err(|e| status(uuid, e, hosts))?;
        let rec = db
            .pools
            .into_iter()
            .find(|p| p.uuid == uuid)
            .ok_or_else(|| {
                Status::not_found(format!(
                    "DER_NONEXIST(-1005): pool {uuid}'s service holds no pool map yet"
                ))
            })?;
        let record =
            serde_json::to_vec(&rec).map_err(|e| Status::internal(format!("pool record: {e}")))?;
        Ok(Response::new(MapResp { record }))
    }

    async fn write(&self, pool: &str, cmd: Command) -> Result<ContainerRecord, Status> {
        let (uuid, hosts, svc) = self.route(pool).await?;
        match svc.write(&uuid, cmd).await {
            Ok(Reply::Container(c)) => Ok(c),
            Ok(other) => Err(Status::internal(format!(
                "pool {uuid}'s service answered {other:?}"
            ))),
            Err(e) => Err(status(&uuid, e, &hosts)),
        }
    }
}

impl ContService {
    /// Pool `pool`'s service state: from its leader; when it has none (a majority of its
    /// replicas is gone), from this replica as applied (DAOS's clients keep reading a pool
    /// whose service lost its majority through the handles they hold; ours reconnect for
    /// each command, so they read the containers from a surviving replica).
    async fn read(&self, pool: &str) -> Result<daos_mgmt::SystemDb, Status> {
        let (uuid, hosts, svc) = self.route(pool).await?;
        match svc.read(&uuid).await {
            Ok(db) => Ok(db),
            Err(PoolSvcError::NotLeader { hint, .. }) if hint.is_empty() => {
                svc.read_any(&uuid).map_err(|e| status(&uuid, e, &hosts))
            }
            Err(PoolSvcError::Ms(MsError::Unavailable(_)) | PoolSvcError::NoMajority { .. }) => {
                svc.read_any(&uuid).map_err(|e| status(&uuid, e, &hosts))
            }
            Err(e) => Err(status(&uuid, e, &hosts)),
        }
    }
}

impl ContService {
    /// Commits a handle command at the pool's service leader; the handles it closed.
    /// DAOS's POOL_ATTR_* (`ContAttrReq` without a container): under pool handle `r.handle`,
    /// reading with any connection, changing with a read-write one.
    async fn pool_attrs(
        &self,
        db: &daos_mgmt::SystemDb,
        r: daos_proto::cont::ContAttrReq,
        names: Vec<String>,
    ) -> Result<Response<daos_proto::cont::ContAttrResp>, Status> {
        use daos_proto::cont::ContAttrResp;
        let h = db
            .handles
            .iter()
            .find(|h| h.cookie == r.handle && h.parent == 0)
            .ok_or_else(|| {
                Status::permission_denied(Refusal::UnknownHandle(r.handle).to_string())
            })?;

        let attrs = match r.op {
            ATTR_LIST => db.pool_attrs.keys().map(|n| attr_of(n, None)).collect(),
            ATTR_GET => names
                .iter()
                .map(|n| attr_of(n, db.pool_attrs.get(n)))
                .collect(),
            ATTR_SET | ATTR_DEL => {
                if h.rights & 2 == 0 {
                    return Err(Status::permission_denied(format!(
                        "DER_NO_PERM(-1001): pool handle {:#x} of pool {} is read-only: connect read-write to change its attributes",
                        r.handle, r.pool
                    )));
                }
                let (set, del) = attr_change(r.op, names, r.values)?;
                self.handle_write(&r.pool, Command::PoolAttrs { set, del })
                    .await?;
                Vec::new()
            }
            op => {
                return Err(Status::invalid_argument(format!(
                    "DER_INVAL(-1003): ContAttrReq.op {op} is not an attribute operation (0 list, 1 get, 2 set, 3 delete)"
                )));
            }
        };
        Ok(Response::new(ContAttrResp { attrs }))
    }

    async fn handle_write(&self, pool: &str, cmd: Command) -> Result<(String, Vec<u64>), Status> {
        let (uuid, hosts, svc) = self.route(pool).await?;
        match svc.write(&uuid, cmd).await {
            Ok(Reply::Handles(h)) => Ok((uuid, h)),
            Ok(_) => Ok((uuid, Vec::new())),
            Err(e) => Err(status(&uuid, e, &hosts)),
        }
    }

    /// Records handle `h` in pool `pool`'s service and pushes it to the pool's engines (`arm`:
    /// turning their checks on).
    async fn record_and_push(
        &self,
        pool: &str,
        h: daos_mgmt::state::HandleRecord,
        arm: bool,
    ) -> Result<(), Status> {
        let add = daos_drpc::mgmt::pool_handles_req::Handle {
            cookie: h.cookie,
            rights: h.rights,
            parent: h.parent,
            cont: h.cont.clone(),
        };
        let (uuid, _) = self.handle_write(pool, Command::HandleOpen(h)).await?;
        self.push(daos_drpc::mgmt::PoolHandlesReq {
            uuid,
            add: vec![add],
            arm,
            ..Default::default()
        })
        .await;
        Ok(())
    }

    /// Pushes `req` to the pool's engines (off the async runtime).
    async fn push(&self, req: daos_drpc::mgmt::PoolHandlesReq) {
        let Some(h) = self.harness.clone() else {
            return;
        };
        // Ranks that run: the others are pushed the open handles as they join.
        let members = self.ms.members();
        let ranks: Vec<u32> = self
            .ms
            .pool_find(&req.uuid)
            .map(|p| p.ranks)
            .unwrap_or_default()
            .into_iter()
            .filter(|r| {
                members
                    .iter()
                    .any(|m| m.rank == *r && m.state == daos_mgmt::MemberState::Joined)
            })
            .collect();
        let _ = tokio::task::spawn_blocking(move || push_handles(&h, &ranks, &req)).await;
    }

    /// Pool `id`'s system handle (0: none, a pool made before they existed): the handle
    /// admin tools and daos_servers use, known to the pool's engines from its create on and
    /// handed out without a write to the pool service (so it serves while that service has no
    /// majority).
    async fn system_handle(&self, id: &str) -> u64 {
        let ms = self.ms.clone();
        let key = id.to_string();
        tokio::task::spawn_blocking(move || ms.pool_find(&key).map_or(0, |p| p.system_handle))
            .await
            .unwrap_or(0)
    }

    /// `handle` as the identity of a caller: 0 (an admin tool or a daos_server, which no ACL
    /// restricts) for pool `id`'s system handle.
    async fn caller(&self, id: &str, handle: u64) -> u64 {
        if handle != 0 && handle == self.system_handle(id).await {
            0
        } else {
            handle
        }
    }

    /// The caller of a call daos_agent forwards: the identity of the credential the agent
    /// signed for the calling process (its uid and gid from the socket), which the call is
    /// authorized as whatever handle it names. `None`: not through the agent (an admin tool
    /// or a daos_server, with its certificate or on an insecure system).
    fn forwarded<T>(&self, req: &Request<T>) -> Result<Option<daos_auth::Identity>, Status> {
        if !security::from_agent(req, self.insecure) {
            return Ok(None);
        }
        let cred = req
            .metadata()
            .get_bin(daos_control::forward::CALLER_HEADER)
            .and_then(|v| v.to_bytes().ok())
            .ok_or_else(|| {
                Status::permission_denied(format!(
                    "DER_NO_PERM(-1001): a call through daos_agent without its caller's credential ({}): the agent's calls carry its client's identity (upgrade daos_agent to this daos_server's version)",
                    daos_control::forward::CALLER_HEADER
                ))
            })?;
        let (_, who) = daos_auth::cred::validate_bytes(&cred, &self.verify).map_err(|e| {
            let text = format!(
                "{}({}): the credential daos_agent sent for its caller: {e}",
                daos_wire::der::name(e.der()),
                e.der()
            );
            tracing::warn!("{text}");
            Status::permission_denied(text)
        })?;
        Ok(Some(who))
    }

    /// Who a container call on pool `pool` is authorized as: the agent's caller (`agent`);
    /// else the holder of `handle`; `None` (no ACL applies) for an admin tool's or a
    /// daos_server's call naming no handle, the pool's system handle or a handle of its own.
    async fn who(
        &self,
        agent: Option<daos_auth::Identity>,
        pool: &str,
        handle: u64,
    ) -> Result<Option<daos_auth::Identity>, Status> {
        if agent.is_some() {
            return Ok(agent);
        }
        let handle = self.caller(pool, handle).await;
        if handle == 0 {
            return Ok(None);
        }
        let db = self.read(pool).await?;
        holder(&db, handle)
    }

    /// Refuses `who` unless pool `pool`'s ACL lets it connect read-only (what reading its
    /// containers' names and properties needs).
    async fn may_read_pool(&self, who: &daos_auth::Identity, pool: &str) -> Result<(), Status> {
        let (uuid, _, _) = self.route(pool).await?;
        if daos_auth::acl::pool_connect_allowed(self.pool_perms(&uuid, who), false) {
            Ok(())
        } else {
            Err(no_perm(who, "read", &format!("pool {pool}")))
        }
    }

    /// What `who` may do with pool `uuid` (its ACL in the management service's record).
    fn pool_perms(&self, uuid: &str, who: &daos_auth::Identity) -> u16 {
        let Some(rec) = self.ms.pool_find(uuid) else {
            return 0;
        };
        daos_auth::Acl::stored(&rec.acl, daos_auth::Object::Pool)
            .map(|a| a.perms(who, &rec.owner, &rec.owner_group))
            .unwrap_or(0)
    }

    /// A handle for a peer daos_server's own I/O, outside the pool's ACL.
    async fn system_connect(
        &self,
        allowed: &Result<(), Status>,
        uuid: String,
        want: u32,
    ) -> Result<Response<daos_proto::cont::ConnectResp>, Status> {
        if let Err(e) = allowed {
            return Err(Status::permission_denied(format!(
                "DER_NO_PERM(-1001): pool connect without a credential: {} (client processes get theirs from daos_agent)",
                e.message()
            )));
        }
        // Its I/O reaches every container (the rebuild copies all of them).
        let want = want | ANY_CONT;
        let sys = self.system_handle(&uuid).await;
        if sys != 0 {
            return Ok(Response::new(daos_proto::cont::ConnectResp {
                handle: sys,
                rights: SYSTEM_RIGHTS,
                uuid,
            }));
        }
        let cookie = daos_auth::random_cookie();
        // A server's own handle does not turn the checks on (clients without an agent keep
        // using pools nobody connected to).
        self.record_and_push(
            &uuid,
            daos_mgmt::state::HandleRecord {
                cookie,
                rights: want,
                user: "daos_server@".into(),
                machine: daos_auth::cred::machine_name(),
                ..Default::default()
            },
            false,
        )
        .await?;
        Ok(Response::new(daos_proto::cont::ConnectResp {
            handle: cookie,
            rights: want,
            uuid,
        }))
    }

    /// Closes handles (disconnect or evict) and takes them from the engines.
    async fn close(
        &self,
        pool: &str,
        cookies: Vec<u64>,
        all: bool,
    ) -> Result<Response<daos_proto::cont::CloseResp>, Status> {
        let (uuid, gone) = self
            .handle_write(pool, Command::HandleClose { cookies, all })
            .await?;
        let count = gone.len() as u32;
        if !gone.is_empty() {
            self.push(daos_drpc::mgmt::PoolHandlesReq {
                uuid,
                revoke: gone,
                ..Default::default()
            })
            .await;
        }
        Ok(Response::new(daos_proto::cont::CloseResp { count }))
    }
}

fn check_label(label: &str) -> Result<(), Status> {
    // DAOS's labels: 1 to 127 characters of letters, digits, '.', '_', ':' and '-', not
    // a UUID.
    let ok = !label.is_empty()
        && label.len() <= 127
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b))
        && daos_wire::parse_uuid(label).is_none();
    if ok {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "DER_INVAL(-1003): container label {label:?}: use 1 to 127 letters, digits, '.', '_', ':' or '-', and not a UUID"
        )))
    }
}

#[tonic::async_trait]
impl ContSvc for ContService {
    async fn create(&self, req: Request<ContReq>) -> Result<Response<ContResp>, Status> {
        security::authorize(&req, "ContSvc.Create", self.insecure)?;
        let agent = self.forwarded(&req)?;
        let r = req.into_inner();
        // DAOS's clients may create a container without a label (known by its UUID).
        if !r.label.is_empty() {
            check_label(&r.label)?;
        }
        let uuid = daos_wire::parse_uuid(&r.uuid).ok_or_else(|| {
            Status::invalid_argument(format!(
                "DER_INVAL(-1003): ContReq.uuid {:?} is not a UUID",
                r.uuid
            ))
        })?;
        let acl = if r.acl.is_empty() {
            Vec::new()
        } else {
            daos_auth::Acl::parse(
                r.acl.iter().map(String::as_str),
                daos_auth::Object::Container,
            )
            .map_err(|e| Status::invalid_argument(format!("DER_INVAL(-1003): {e}")))?
            .strings()
        };
        let principal = |n: &str| {
            if n.is_empty() || n.ends_with('@') {
                n.to_string()
            } else {
                format!("{n}@")
            }
        };
        let (mut owner, mut group) = (principal(&r.owner), principal(&r.group));
        // The caller's identity: the pool's ACL must let it create containers.
        if let Some(who) = self.who(agent, &r.pool, r.handle).await? {
            let (uuid, _, _) = self.route(&r.pool).await?;
            let p = self.pool_perms(&uuid, &who);
            use daos_auth::perm;
            if p & (perm::CREATE_CONT | perm::WRITE) == 0 {
                return Err(no_perm(
                    &who,
                    "create containers in",
                    &format!("pool {}", r.pool),
                ));
            }
            if owner.is_empty() {
                owner = who.user.clone();
            }
            if group.is_empty() {
                group = who.group.clone();
            }
        }
        if owner.is_empty() && !acl.is_empty() {
            return Err(Status::invalid_argument(
                "DER_INVAL(-1003): a container ACL needs an owner: create it connected (through daos_agent) or give --user",
            ));
        }
        let c = ContainerRecord {
            uuid: daos_wire::uuid_text(&uuid),
            label: r.label,
            props: r.props,
            owner,
            owner_group: group,
            acl,
            alloced_oids: 0,
            attrs: Default::default(),
        };
        let c = self.write(&r.pool, Command::ContCreate(c)).await?;
        Ok(Response::new(ContResp {
            container: Some(to_wire(c)),
        }))
    }

    async fn destroy(&self, req: Request<ContReq>) -> Result<Response<ContResp>, Status> {
        security::authorize(&req, "ContSvc.Destroy", self.insecure)?;
        let agent = self.forwarded(&req)?;
        let r = req.into_inner();
        if let Some(who) = self.who(agent, &r.pool, r.handle).await? {
            let db = self.read(&r.pool).await?;
            let c = db.container(&r.id).cloned().ok_or_else(|| {
                Status::not_found(Refusal::UnknownContainer(r.id.clone()).to_string())
            })?;
            let (uuid, _, _) = self.route(&r.pool).await?;
            let pool = self.pool_perms(&uuid, &who);
            use daos_auth::perm;
            let by_pool = pool & (perm::DEL_CONT | perm::WRITE) != 0;
            let by_cont = cont_perms(&c, &who, pool) & perm::DEL_CONT != 0;
            if !by_pool && !by_cont {
                return Err(no_perm(&who, "destroy", &format!("container {}", c.label)));
            }
        }
        // DAOS's rule: an open container is destroyed only by force, which evicts its
        // handles.
        let db = self.read(&r.pool).await?;
        let open: Vec<u64> = match db.container(&r.id) {
            Some(c) => db
                .handles
                .iter()
                .filter(|h| h.parent != 0 && h.cont == c.uuid)
                .map(|h| h.cookie)
                .collect(),
            None => Vec::new(),
        };
        if !open.is_empty() && !r.force {
            return Err(Status::failed_precondition(format!(
                "DER_BUSY(-1012): container {} has {} open handle(s); close them first or destroy with --force (which evicts them)",
                r.id,
                open.len()
            )));
        }
        let c = self
            .write(&r.pool, Command::ContDestroy { id: r.id })
            .await?;
        if !open.is_empty() {
            self.close(&r.pool, open, false).await?;
        }
        Ok(Response::new(ContResp {
            container: Some(to_wire(c)),
        }))
    }

    async fn set_props(&self, req: Request<ContReq>) -> Result<Response<ContResp>, Status> {
        security::authorize(&req, "ContSvc.SetProps", self.insecure)?;
        let agent = self.forwarded(&req)?;
        let r = req.into_inner();
        if !r.label.is_empty() {
            check_label(&r.label)?;
        }
        let db = self.read(&r.pool).await?;
        let handle_perms = db
            .container(&r.id)
            .and_then(|c| cont_handle_perms(&db, r.handle, &c.uuid));
        if let Some(p) = handle_perms {
            if p & daos_auth::perm::SET_PROP == 0 {
                return Err(Status::permission_denied(format!(
                    "DER_NO_PERM(-1001): container handle {:#x} may not set the properties of container {} (its rights when it opened)",
                    r.handle, r.id
                )));
            }
        } else if let Some(who) = self.who(agent, &r.pool, r.handle).await? {
            let c = db.container(&r.id).ok_or_else(|| {
                Status::not_found(Refusal::UnknownContainer(r.id.clone()).to_string())
            })?;
            let (uuid, _, _) = self.route(&r.pool).await?;
            let pool = self.pool_perms(&uuid, &who);
            if cont_perms(c, &who, pool) & daos_auth::perm::SET_PROP == 0 {
                return Err(no_perm(
                    &who,
                    "set the properties of",
                    &format!("container {}", c.label),
                ));
            }
        }
        let c = self
            .write(
                &r.pool,
                Command::ContSetProps {
                    id: r.id,
                    props: r.props,
                    label: (!r.label.is_empty()).then_some(r.label),
                },
            )
            .await?;
        Ok(Response::new(ContResp {
            container: Some(to_wire(c)),
        }))
    }

    async fn alloc_oids(
        &self,
        req: Request<daos_proto::cont::OidAllocReq>,
    ) -> Result<Response<daos_proto::cont::OidAllocResp>, Status> {
        security::authorize(&req, "ContSvc.AllocOids", self.insecure)?;
        let r = req.into_inner();
        if r.num == 0 {
            return Err(Status::invalid_argument(
                "DER_INVAL(-1003): OidAllocReq.num is 0: ask for at least one object id",
            ));
        }
        // Under a container handle of this container, as DAOS's engine checks it.
        let db = self.read(&r.pool).await?;
        let c = db.container(&r.cont).cloned().ok_or_else(|| {
            Status::not_found(Refusal::UnknownContainer(r.cont.clone()).to_string())
        })?;
        if !db
            .handles
            .iter()
            .any(|h| h.cookie == r.handle && h.cont == c.uuid)
        {
            return Err(Status::permission_denied(format!(
                "DER_NO_HDL(-1002): no open handle {:#x} of container {} (open it first)",
                r.handle, c.label
            )));
        }
        let c = self
            .write(
                &r.pool,
                Command::ContOidAlloc {
                    id: c.uuid,
                    num: r.num,
                },
            )
            .await?;
        Ok(Response::new(daos_proto::cont::OidAllocResp {
            first: c.alloced_oids - r.num,
        }))
    }

    async fn attrs(
        &self,
        req: Request<daos_proto::cont::ContAttrReq>,
    ) -> Result<Response<daos_proto::cont::ContAttrResp>, Status> {
        use daos_proto::cont::ContAttrResp;
        security::authorize(&req, "ContSvc.Attrs", self.insecure)?;
        let r = req.into_inner();
        let names = attr_names(&r.names)?;
        let db = self.read(&r.pool).await?;
        if r.cont.is_empty() {
            return self.pool_attrs(&db, r, names).await;
        }
        let c = db.container(&r.cont).cloned().ok_or_else(|| {
            Status::not_found(Refusal::UnknownContainer(r.cont.clone()).to_string())
        })?;
        // Under a container handle of this container, as DAOS's engine checks it.
        let h = db
            .handles
            .iter()
            .find(|h| h.cookie == r.handle && h.cont == c.uuid)
            .ok_or_else(|| {
                Status::permission_denied(format!(
                    "DER_NO_HDL(-1002): no open handle {:#x} of container {} (open it first)",
                    r.handle, c.label
                ))
            })?;

        // As DAOS: reading attributes takes the right to read data, changing them the right
        // to write data (and a read-write handle); rights as the handle got them at open.
        let (read, write) = (
            h.perms == 0 || h.perms & daos_auth::perm::READ != 0,
            h.perms == 0 || h.perms & daos_auth::perm::WRITE != 0,
        );
        if matches!(r.op, ATTR_LIST | ATTR_GET) && !read {
            return Err(Status::permission_denied(format!(
                "DER_NO_PERM(-1001): container handle {:#x} of {} may not read data (its rights when it opened), nor so its attributes",
                r.handle, c.label
            )));
        }
        let attrs = match r.op {
            ATTR_LIST => c.attrs.keys().map(|n| attr_of(n, None)).collect(),
            ATTR_GET => names.iter().map(|n| attr_of(n, c.attrs.get(n))).collect(),
            ATTR_SET | ATTR_DEL => {
                if h.rights & 2 == 0 || !write {
                    return Err(Status::permission_denied(format!(
                        "DER_NO_PERM(-1001): container handle {:#x} of {} is read-only: open the container read-write to change its attributes",
                        r.handle, c.label
                    )));
                }
                let (set, del) = attr_change(r.op, names, r.values)?;
                self.write(
                    &r.pool,
                    Command::ContAttrs {
                        id: c.uuid.clone(),
                        set,
                        del,
                    },
                )
                .await?;
                Vec::new()
            }
            op => {
                return Err(Status::invalid_argument(format!(
                    "DER_INVAL(-1003): ContAttrReq.op {op} is not an attribute operation (0 list, 1 get, 2 set, 3 delete)"
                )));
            }
        };
        Ok(Response::new(ContAttrResp { attrs }))
    }

    async fn query(&self, req: Request<ContReq>) -> Result<Response<ContResp>, Status> {
        security::authorize(&req, "ContSvc.Query", self.insecure)?;
        let agent = self.forwarded(&req)?;
        let r = req.into_inner();
        if let Some(who) = agent {
            self.may_read_pool(&who, &r.pool).await?;
        }
        let db = self.read(&r.pool).await?;
        let c = db.container(&r.id).cloned().ok_or_else(|| {
            Status::not_found(Refusal::UnknownContainer(r.id.clone()).to_string())
        })?;
        if r.query_bits != 0 {
            let p = cont_handle_perms(&db, r.handle, &c.uuid).ok_or_else(|| {
                Status::permission_denied(format!(
                    "DER_NO_HDL(-1002): no open handle {:#x} of container {} (open it first)",
                    r.handle, c.label
                ))
            })?;
            query_allowed(p, r.query_bits).map_err(|what| {
                Status::permission_denied(format!(
                    "DER_NO_PERM(-1001): container handle {:#x} may not read {what} of container {} (its rights when it opened)",
                    r.handle, c.label
                ))
            })?;
        }
        let nhandles = db.handles.iter().filter(|h| h.cont == c.uuid).count() as u32;
        Ok(Response::new(ContResp {
            container: Some(Container {
                nhandles,
                ..to_wire(c)
            }),
        }))
    }

    async fn pool_connect(
        &self,
        req: Request<daos_proto::cont::ConnectReq>,
    ) -> Result<Response<daos_proto::cont::ConnectResp>, Status> {
        use daos_mgmt::state::HandleRecord;
        security::authorize(&req, "ContSvc.PoolConnect", self.insecure)?;
        // Whether the caller may connect without a credential (a peer daos_server).
        let req_meta = security::authorize(&req, "ContSvc.SystemConnect", self.insecure);
        let agent = self.forwarded(&req)?;
        let r = req.into_inner();
        // DAOS_PC_EX: read-write, and no other client's connection while it is open.
        let exclusive = r.flags & FLAG_EX != 0;
        let want = wanted(r.flags & !FLAG_EX, "pool connect")?;
        let (uuid, _, _) = self.route(&r.pool).await?;
        let who = match agent {
            // Through the agent: its caller, whatever credential the request carries (none:
            // no system handle for a client process).
            Some(who) => who,
            None if r.cred.is_empty() => {
                // A daos_server's own I/O (rebuild): its certificate is its credential.
                return self.system_connect(&req_meta, uuid, want).await;
            }
            None => {
                daos_auth::cred::validate_bytes(&r.cred, &self.verify)
                    .map_err(|e| {
                        let text = format!(
                            "{}({}): pool connect: {e}",
                            daos_wire::der::name(e.der()),
                            e.der()
                        );
                        tracing::warn!("pool {uuid}: {text}");
                        Status::permission_denied(text)
                    })?
                    .1
            }
        };
        let rec = self
            .ms
            .pool_find(&uuid)
            .ok_or_else(|| Status::not_found(format!("DER_NONEXIST(-1005): no pool {uuid}")))?;
        let acl = daos_auth::Acl::stored(&rec.acl, daos_auth::Object::Pool).map_err(|e| {
            Status::internal(format!("pool {}: its ACL does not parse: {e}", rec.label))
        })?;
        let perms = acl.perms(&who, &rec.owner, &rec.owner_group);
        if !daos_auth::acl::pool_connect_allowed(perms, want & 2 != 0) {
            let text = format!(
                "DER_NO_PERM(-1001): {} may not connect to pool {} {} (its ACL grants {}; see dmg pool get-acl)",
                who.user,
                rec.label,
                if want & 2 != 0 {
                    "read-write"
                } else {
                    "read-only"
                },
                {
                    let e = daos_auth::Ace {
                        principal: daos_auth::Principal::Everyone,
                        perms,
                    }
                    .to_string();
                    let letters = e.rsplit(':').next().unwrap_or_default().to_string();
                    if letters.is_empty() {
                        "nothing".to_string()
                    } else {
                        letters
                    }
                }
            );
            tracing::warn!("pool {uuid}: {text}");
            return Err(Status::permission_denied(text));
        }
        let cookie = if r.cookie != 0 {
            // A DAOS client's own handle UUID names it: a connect sent again (a retry) finds
            // the handle it recorded.
            let db = self.read(&uuid).await?;
            if let Some(h) = db.handles.iter().find(|h| h.cookie == r.cookie) {
                if h.user != who.user || h.rights != want {
                    return Err(Status::already_exists(format!(
                        "DER_EXIST(-1004): pool {uuid}: handle {:#x} is held by another connect",
                        r.cookie
                    )));
                }
                return Ok(Response::new(daos_proto::cont::ConnectResp {
                    handle: r.cookie,
                    rights: want,
                    uuid,
                }));
            }
            r.cookie
        } else {
            daos_auth::random_cookie()
        };
        self.record_and_push(
            &uuid,
            HandleRecord {
                cookie,
                rights: want,
                user: who.user.clone(),
                machine: who.machine.clone(),
                cont: String::new(),
                parent: 0,
                group: who.group.clone(),
                groups: who.groups.clone(),
                exclusive,
                perms: 0,
            },
            true,
        )
        .await?;
        tracing::debug!("pool {uuid}: {} connected ({want:#x})", who.user);
        Ok(Response::new(daos_proto::cont::ConnectResp {
            handle: cookie,
            rights: want,
            uuid,
        }))
    }

    async fn open(
        &self,
        req: Request<daos_proto::cont::HandleReq>,
    ) -> Result<Response<daos_proto::cont::OpenResp>, Status> {
        use daos_mgmt::state::HandleRecord;
        security::authorize(&req, "ContSvc.Open", self.insecure)?;
        let agent = self.forwarded(&req)?;
        let r = req.into_inner();
        let want = wanted(r.flags, "container open")?;
        check_open_flags(r.daos_flags)?;
        let db = self.read(&r.pool).await?;
        let system = r.handle != 0 && r.handle == self.system_handle(&r.pool).await;
        if let Some(who) = &agent {
            // A client process opens under a pool handle of its own only.
            let own = db
                .handles
                .iter()
                .any(|h| h.cookie == r.handle && h.parent == 0 && h.user == who.user);
            if system || !own {
                return Err(Status::permission_denied(format!(
                    "DER_NO_PERM(-1001): {} holds no pool handle {:#x} of pool {} (connect first)",
                    who.user, r.handle, r.pool
                )));
            }
        }
        if system {
            // The system handle reaches every container: no container handle needed (0).
            let c = db.container(&r.cont).ok_or_else(|| {
                Status::not_found(Refusal::UnknownContainer(r.cont.clone()).to_string())
            })?;
            return Ok(Response::new(daos_proto::cont::OpenResp {
                handle: 0,
                uuid: c.uuid.clone(),
                rights: want,
                nhandles: 0,
            }));
        }
        let parent = db
            .handles
            .iter()
            .find(|h| h.cookie == r.handle && h.parent == 0)
            .cloned()
            .ok_or_else(|| {
                Status::permission_denied(Refusal::UnknownHandle(r.handle).to_string())
            })?;
        let c = db.container(&r.cont).cloned().ok_or_else(|| {
            Status::not_found(Refusal::UnknownContainer(r.cont.clone()).to_string())
        })?;
        // As DAOS's cont_open: the container's ACL decides, not the pool connection's mode
        // (dfuse connects read-only and opens its container read-write).
        let who = match agent {
            Some(who) => Some(who),
            None => holder(&db, r.handle)?,
        };
        let (ex, evict, evict_all) = (
            r.daos_flags & COO_EX != 0,
            r.daos_flags & COO_EVICT != 0,
            r.daos_flags & COO_EVICT_ALL != 0,
        );
        let mut perms = 0;
        if let Some(who) = who {
            let p = cont_perms(&c, &who, parent.rights as u16);
            perms = p;
            if !may_open(p, want) {
                return Err(no_perm(
                    &who,
                    if want & 2 != 0 {
                        "open read-write"
                    } else {
                        "open"
                    },
                    &format!("container {}", c.label),
                ));
            }
            // As DAOS: an exclusive open and evicting every handle are the owner's.
            if (ex || evict_all) && who.user != c.owner {
                return Err(no_perm(
                    &who,
                    if ex {
                        "open exclusively"
                    } else {
                        "evict every handle of"
                    },
                    &format!("container {} (the owner's right)", c.label),
                ));
            }
        }
        if r.cookie != 0
            && let Some(h) = db.handles.iter().find(|h| h.cookie == r.cookie)
        {
            // A DAOS client's open sent again: the same handle, if it is the same open.
            if h.cont != c.uuid || h.rights != want || h.parent != r.handle {
                return Err(Status::already_exists(format!(
                    "DER_EXIST(-1004): container handle {:#x} is held by another open",
                    r.cookie
                )));
            }
            let nhandles = db.handles.iter().filter(|h| h.cont == c.uuid).count() as u32;
            return Ok(Response::new(daos_proto::cont::OpenResp {
                handle: r.cookie,
                uuid: c.uuid,
                rights: want,
                nhandles,
            }));
        }
        if evict || evict_all {
            // DAOS_COO_EVICT: the handles opened under this pool handle; EVICT_ALL: all.
            let gone: Vec<u64> = db
                .handles
                .iter()
                .filter(|h| h.cont == c.uuid && (evict_all || h.parent == r.handle))
                .map(|h| h.cookie)
                .collect();
            if !gone.is_empty() {
                self.close(&r.pool, gone, false).await?;
            }
        }
        let cookie = if r.cookie != 0 {
            r.cookie
        } else {
            daos_auth::random_cookie()
        };
        self.record_and_push(
            &r.pool,
            HandleRecord {
                cookie,
                rights: want,
                user: parent.user.clone(),
                machine: parent.machine.clone(),
                cont: c.uuid.clone(),
                parent: r.handle,
                group: parent.group.clone(),
                groups: parent.groups.clone(),
                exclusive: ex,
                perms,
            },
            true,
        )
        .await?;
        let nhandles = self
            .read(&r.pool)
            .await
            .map(|db| db.handles.iter().filter(|h| h.cont == c.uuid).count() as u32)
            .unwrap_or(1);
        Ok(Response::new(daos_proto::cont::OpenResp {
            handle: cookie,
            uuid: c.uuid,
            rights: want,
            nhandles,
        }))
    }

    async fn disconnect(
        &self,
        req: Request<daos_proto::cont::HandleReq>,
    ) -> Result<Response<daos_proto::cont::CloseResp>, Status> {
        security::authorize(&req, "ContSvc.Disconnect", self.insecure)?;
        let agent = self.forwarded(&req)?;
        let r = req.into_inner();
        if r.handle == 0 {
            return Err(Status::invalid_argument(
                "DER_INVAL(-1003): HandleReq.handle is 0: name the handle to close",
            ));
        }
        if r.handle == self.system_handle(&r.pool).await {
            // Not a client's: nothing to close.
            return Ok(Response::new(daos_proto::cont::CloseResp { count: 0 }));
        }
        if let Some(who) = agent {
            // A client process closes its own handles only.
            let db = self.read(&r.pool).await?;
            let theirs = db
                .handles
                .iter()
                .any(|h| h.cookie == r.handle && h.user != who.user);
            if theirs {
                return Err(no_perm(
                    &who,
                    "close",
                    &format!("another user's handle of pool {}", r.pool),
                ));
            }
        }
        self.close(&r.pool, vec![r.handle], false).await
    }

    async fn handles(
        &self,
        req: Request<ContReq>,
    ) -> Result<Response<daos_proto::cont::HandlesResp>, Status> {
        security::authorize(&req, "ContSvc.Handles", self.insecure)?;
        let r = req.into_inner();
        let db = self.read(&r.pool).await?;
        Ok(Response::new(daos_proto::cont::HandlesResp {
            handles: db
                .handles
                .into_iter()
                .map(|h| daos_proto::cont::HandleInfo {
                    cookie: h.cookie,
                    rights: h.rights,
                    parent: h.parent,
                    cont: h.cont,
                    user: h.user,
                    machine: h.machine,
                })
                .collect(),
        }))
    }

    async fn acl(
        &self,
        req: Request<daos_proto::cont::ContAclReq>,
    ) -> Result<Response<ContResp>, Status> {
        use daos_auth::perm;
        security::authorize(&req, "ContSvc.Acl", self.insecure)?;
        let agent = self.forwarded(&req)?;
        let r = req.into_inner();
        let db = self.read(&r.pool).await?;
        let c = db.container(&r.id).cloned().ok_or_else(|| {
            Status::not_found(Refusal::UnknownContainer(r.id.clone()).to_string())
        })?;
        let (need, what) = match r.op {
            0 => (perm::GET_ACL, "read the ACL of"),
            1..=3 => (perm::SET_ACL, "change the ACL of"),
            4 => (perm::SET_OWNER, "change the owner of"),
            other => {
                return Err(Status::invalid_argument(format!(
                    "DER_INVAL(-1003): ContAclReq.op {other}: 0 get, 1 overwrite, 2 update, 3 delete, 4 set-owner"
                )));
            }
        };
        if let Some(p) = cont_handle_perms(&db, r.handle, &c.uuid) {
            if p & need == 0 {
                return Err(Status::permission_denied(format!(
                    "DER_NO_PERM(-1001): container handle {:#x} may not {what} container {} (its rights when it opened)",
                    r.handle, c.label
                )));
            }
        } else if let Some(who) = self.who(agent, &r.pool, r.handle).await? {
            let (uuid, _, _) = self.route(&r.pool).await?;
            let pool = self.pool_perms(&uuid, &who);
            if cont_perms(&c, &who, pool) & need == 0 {
                return Err(no_perm(&who, what, &format!("container {}", c.label)));
            }
        }
        if r.op == 0 {
            return Ok(Response::new(ContResp {
                container: Some(to_wire(c)),
            }));
        }
        let bad =
            |e: daos_auth::AuthError| Status::invalid_argument(format!("DER_INVAL(-1003): {e}"));
        let parse = |lines: &[String]| {
            daos_auth::Acl::parse(
                lines.iter().map(String::as_str),
                daos_auth::Object::Container,
            )
            .map_err(bad)
        };
        let principal = |n: &str| {
            if n.is_empty() {
                None
            } else if n.contains('@') {
                // `name@` or DAOS's `name@domain`.
                Some(n.to_string())
            } else {
                Some(format!("{n}@"))
            }
        };
        // An ACL change travels as the change, applied by the pool service's state machine
        // to the ACL it holds: concurrent changes compose (none lost, a deleted entry does
        // not come back). Entries are checked here too for the caller's error.
        use daos_mgmt::state::AclDelta;
        let cmd = match r.op {
            1 | 2 => {
                parse(&r.entries)?;
                let change = if r.op == 1 {
                    AclDelta::Overwrite(r.entries)
                } else {
                    AclDelta::Update(r.entries)
                };
                Command::ContAclChange {
                    id: c.uuid.clone(),
                    change,
                }
            }
            3 => {
                daos_auth::Principal::parse(&r.principal).map_err(bad)?;
                Command::ContAclChange {
                    id: c.uuid.clone(),
                    change: AclDelta::Delete(r.principal),
                }
            }
            _ => {
                if r.owner.is_empty() && r.group.is_empty() {
                    return Err(Status::invalid_argument(
                        "DER_INVAL(-1003): give --user and/or --group",
                    ));
                }
                Command::ContAcl {
                    id: c.uuid.clone(),
                    owner: principal(&r.owner),
                    owner_group: principal(&r.group),
                    acl: None,
                }
            }
        };
        let c = self.write(&r.pool, cmd).await?;
        Ok(Response::new(ContResp {
            container: Some(to_wire(c)),
        }))
    }

    async fn evict(
        &self,
        req: Request<daos_proto::cont::HandleReq>,
    ) -> Result<Response<daos_proto::cont::CloseResp>, Status> {
        security::authorize(&req, "ContSvc.Evict", self.insecure)?;
        let mut r = req.into_inner();
        // The system handle is no client's: never evicted.
        let all = r.handles.is_empty();
        let sys = self.system_handle(&r.pool).await;
        r.handles.retain(|h| *h != sys);
        if !all && r.handles.is_empty() {
            return Ok(Response::new(daos_proto::cont::CloseResp { count: 0 }));
        }
        self.close(&r.pool, r.handles, all).await
    }

    async fn map_change(&self, req: Request<MapReq>) -> Result<Response<MapResp>, Status> {
        security::authorize(&req, "ContSvc.MapChange", self.insecure)?;
        let r = req.into_inner();
        let cmd: Command = serde_json::from_slice(&r.command).map_err(|e| {
            Status::invalid_argument(format!("MapReq.command is not a pool map command: {e}"))
        })?;
        if !matches!(
            cmd,
            Command::PoolTargets { .. } | Command::PoolExtend { .. } | Command::PoolRebuild { .. }
        ) {
            return Err(Status::invalid_argument(
                "MapReq.command: only PoolTargets, PoolExtend and PoolRebuild change a pool map",
            ));
        }
        let (uuid, hosts, svc) = self.route(&r.pool).await?;
        // A service that does not hold the pool's record yet (created before the map moved
        // into it) takes the management service's first.
        let db = svc
            .read(&uuid)
            .await
            .map_err(|e| status(&uuid, e, &hosts))?;
        if db.pools.iter().all(|p| p.uuid != uuid) {
            let ms = self.ms.clone();
            let key = uuid.clone();
            let rec = tokio::task::spawn_blocking(move || ms.pool_find(&key))
                .await
                .map_err(|e| Status::internal(format!("pool lookup: {e}")))?
                .ok_or_else(|| Status::not_found(format!("DER_NONEXIST(-1005): pool {uuid}")))?;
            // Two first changes at once (an exclude racing an extend) both add it: the one
            // that lost finds it there and goes on.
            if let Err(e) = svc.write(&uuid, Command::PoolAdd(rec)).await {
                let added = svc
                    .read(&uuid)
                    .await
                    .is_ok_and(|db| db.pools.iter().any(|p| p.uuid == uuid));
                if !added {
                    return Err(status(&uuid, e, &hosts));
                }
            }
        }
        svc.write(&uuid, cmd)
            .await
            .map_err(|e| status(&uuid, e, &hosts))?;
        self.map_record(&uuid, &hosts, &svc).await
    }

    async fn map_query(&self, req: Request<ContReq>) -> Result<Response<MapResp>, Status> {
        security::authorize(&req, "ContSvc.MapQuery", self.insecure)?;
        let r = req.into_inner();
        let (uuid, hosts, svc) = self.route(&r.pool).await?;
        self.map_record(&uuid, &hosts, &svc).await
    }

    async fn list(&self, req: Request<ContReq>) -> Result<Response<ContListResp>, Status> {
        security::authorize(&req, "ContSvc.List", self.insecure)?;
        let agent = self.forwarded(&req)?;
        let r = req.into_inner();
        if let Some(who) = agent {
            self.may_read_pool(&who, &r.pool).await?;
        }
        let db = self.read(&r.pool).await?;
        Ok(Response::new(ContListResp {
            containers: db.containers.into_iter().map(to_wire).collect(),
        }))
    }
}
