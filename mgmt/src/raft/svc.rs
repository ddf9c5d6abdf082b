//! `raft.RaftSvc` served from an [`MsNode`]; the server plugs in its caller check (only the
//! `server` certificate may call these).

use std::sync::Arc;

use daos_proto::raft::RaftMsg;
use daos_proto::raft::raft_svc_server::{RaftSvc, RaftSvcServer};
use tonic::{Request, Response, Status};

use super::MsNode;
use super::net::{MAX_MESSAGE, Method};

/// Decides whether a caller may use a method (`RaftSvc.AppendEntries`, ...).
pub type Check = Arc<dyn Fn(&Request<RaftMsg>, &str) -> Result<(), Status> + Send + Sync>;

/// The service.
#[derive(Clone)]
pub struct Service {
    node: Arc<MsNode>,
    check: Check,
}

/// A tonic server of `raft.RaftSvc` for `node`.
pub fn server(node: Arc<MsNode>, check: Check) -> RaftSvcServer<Service> {
    RaftSvcServer::new(Service { node, check })
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

impl Service {
    async fn call(
        &self,
        req: Request<RaftMsg>,
        method: Method,
        name: &str,
    ) -> Result<Response<RaftMsg>, Status> {
        (self.check)(&req, name)?;
        self.node
            .check_peer_set(req.metadata())
            .map_err(|e| Status::failed_precondition(format!("{name}: {e}")))?;
        let msg = req.into_inner();
        let node = self.node.clone();
        let out =
            tokio::task::spawn_blocking(move || node.serve_group(msg.group, method, msg.data))
                .await
                .map_err(|e| Status::internal(format!("{name}: {e}")))?;
        match out {
            Ok(data) => Ok(Response::new(RaftMsg {
                data,
                group: String::new(),
            })),
            Err(e) if e.starts_with("not a DAOS") || e.starts_with("system is uninitialized") => {
                Err(Status::failed_precondition(e))
            }
            Err(e) => Err(Status::invalid_argument(format!("{name}: {e}"))),
        }
    }
}

#[tonic::async_trait]
impl RaftSvc for Service {
    async fn append_entries(&self, r: Request<RaftMsg>) -> Result<Response<RaftMsg>, Status> {
        self.call(r, Method::AppendEntries, "RaftSvc.AppendEntries")
            .await
    }
    async fn vote(&self, r: Request<RaftMsg>) -> Result<Response<RaftMsg>, Status> {
        self.call(r, Method::Vote, "RaftSvc.Vote").await
    }
    async fn install_snapshot(&self, r: Request<RaftMsg>) -> Result<Response<RaftMsg>, Status> {
        self.call(r, Method::InstallSnapshot, "RaftSvc.InstallSnapshot")
            .await
    }
    async fn propose(&self, r: Request<RaftMsg>) -> Result<Response<RaftMsg>, Status> {
        self.call(r, Method::Propose, "RaftSvc.Propose").await
    }
    async fn read(&self, r: Request<RaftMsg>) -> Result<Response<RaftMsg>, Status> {
        self.call(r, Method::Read, "RaftSvc.Read").await
    }
    async fn start(&self, r: Request<RaftMsg>) -> Result<Response<RaftMsg>, Status> {
        self.call(r, Method::Start, "RaftSvc.Start").await
    }
    async fn stop(&self, r: Request<RaftMsg>) -> Result<Response<RaftMsg>, Status> {
        self.call(r, Method::Stop, "RaftSvc.Stop").await
    }
}
