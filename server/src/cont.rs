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
}

/// A tonic server of `cont.ContSvc`.
pub fn server(ms: Arc<dyn ManagementService>, insecure: bool) -> ContSvcServer<ContService> {
    ContSvcServer::new(ContService { ms, insecure })
}

fn to_wire(c: ContainerRecord) -> Container {
    Container {
        uuid: c.uuid,
        label: c.label,
        props: c.props,
    }
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
            Refusal::UnknownContainer(_) => Status::not_found(r.to_string()),
            Refusal::ContLabelTaken(_) | Refusal::ContUuidTaken(_) => {
                Status::already_exists(r.to_string())
            }
            _ => Status::failed_precondition(r.to_string()),
        },
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
            Err(PoolSvcError::Ms(MsError::Unavailable(_))) => {
                svc.read_any(&uuid).map_err(|e| status(&uuid, e, &hosts))
            }
            Err(e) => Err(status(&uuid, e, &hosts)),
        }
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
        let r = req.into_inner();
        check_label(&r.label)?;
        let uuid = daos_wire::parse_uuid(&r.uuid).ok_or_else(|| {
            Status::invalid_argument(format!(
                "DER_INVAL(-1003): ContReq.uuid {:?} is not a UUID",
                r.uuid
            ))
        })?;
        let c = ContainerRecord {
            uuid: daos_wire::uuid_text(&uuid),
            label: r.label,
            props: r.props,
        };
        let c = self.write(&r.pool, Command::ContCreate(c)).await?;
        Ok(Response::new(ContResp {
            container: Some(to_wire(c)),
        }))
    }

    async fn destroy(&self, req: Request<ContReq>) -> Result<Response<ContResp>, Status> {
        security::authorize(&req, "ContSvc.Destroy", self.insecure)?;
        let r = req.into_inner();
        let c = self
            .write(&r.pool, Command::ContDestroy { id: r.id })
            .await?;
        Ok(Response::new(ContResp {
            container: Some(to_wire(c)),
        }))
    }

    async fn set_props(&self, req: Request<ContReq>) -> Result<Response<ContResp>, Status> {
        security::authorize(&req, "ContSvc.SetProps", self.insecure)?;
        let r = req.into_inner();
        let c = self
            .write(
                &r.pool,
                Command::ContSetProps {
                    id: r.id,
                    props: r.props,
                },
            )
            .await?;
        Ok(Response::new(ContResp {
            container: Some(to_wire(c)),
        }))
    }

    async fn query(&self, req: Request<ContReq>) -> Result<Response<ContResp>, Status> {
        security::authorize(&req, "ContSvc.Query", self.insecure)?;
        let r = req.into_inner();
        let db = self.read(&r.pool).await?;
        let c = db.container(&r.id).cloned().ok_or_else(|| {
            Status::not_found(Refusal::UnknownContainer(r.id.clone()).to_string())
        })?;
        Ok(Response::new(ContResp {
            container: Some(to_wire(c)),
        }))
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
            svc.write(&uuid, Command::PoolAdd(rec))
                .await
                .map_err(|e| status(&uuid, e, &hosts))?;
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
        let r = req.into_inner();
        let db = self.read(&r.pool).await?;
        Ok(Response::new(ContListResp {
            containers: db.containers.into_iter().map(to_wire).collect(),
        }))
    }
}
