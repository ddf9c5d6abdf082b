//! The client side of daos_agent (libdaos's `dc_sec_request_creds` and attach-info calls):
//! dRPC on `$DAOS_AGENT_DRPC_DIR/daos_agent.sock`, else `/var/run/daos_agent/daos_agent.sock`.
//! The agent learns who the caller is from the socket, so nothing here names a user.

use std::path::{Path, PathBuf};

use daos_drpc::ids::SecAgentMethod;
use daos_drpc::{Client, DrpcError, MgmtMethod};
use daos_proto::auth::{Credential, GetCredResp};
use daos_proto::mgmt::{GetAttachInfoReq, GetAttachInfoResp, PoolMonitorReq};

/// The environment variable naming the agent's socket directory (DAOS's).
pub const AGENT_DIR_ENV: &str = "DAOS_AGENT_DRPC_DIR";
/// DAOS's default socket directory.
pub const DEFAULT_AGENT_DIR: &str = "/var/run/daos_agent";

/// Why the agent could not help.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// DAOS: DER_AGENT_COMM.
    #[error("DER_AGENT_COMM(-2034): cannot talk to daos_agent at {}: {source} (is daos_agent running? set {AGENT_DIR_ENV} to its runtime_dir)", .path.display())]
    Comm {
        path: PathBuf,
        #[source]
        source: DrpcError,
    },
    /// The agent answered with a DAOS error.
    #[error("daos_agent refused {what}: status {status}")]
    Refused { what: &'static str, status: i32 },
}

/// The agent's socket path from the environment or DAOS's default.
pub fn socket_path() -> PathBuf {
    std::env::var_os(AGENT_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_AGENT_DIR))
        .join("daos_agent.sock")
}

/// A connection to daos_agent.
pub struct Agent {
    drpc: Client,
}

impl Agent {
    /// Connects to the agent at [`socket_path`].
    pub fn connect() -> Result<Agent, AgentError> {
        Agent::connect_at(&socket_path())
    }

    /// Connects to the agent's socket at `path`.
    pub fn connect_at(path: &Path) -> Result<Agent, AgentError> {
        Client::connect(path)
            .map(|drpc| Agent { drpc })
            .map_err(|source| AgentError::Comm {
                path: path.into(),
                source,
            })
    }

    fn comm(&self, source: DrpcError) -> AgentError {
        AgentError::Comm {
            path: self.drpc.path().into(),
            source,
        }
    }

    /// This process's signed credential (SEC_AGENT 101).
    pub fn credential(&mut self) -> Result<Credential, AgentError> {
        let r: GetCredResp = self
            .drpc
            .call_msg(SecAgentMethod::RequestCreds, &())
            .map_err(|e| self.comm(e))?;
        match r.cred {
            Some(c) if r.status == 0 => Ok(c),
            _ => Err(AgentError::Refused {
                what: "a credential",
                status: r.status,
            }),
        }
    }

    /// The system's attach info (MGMT 206).
    pub fn attach_info(&mut self, all_ranks: bool) -> Result<GetAttachInfoResp, AgentError> {
        let r: GetAttachInfoResp = self
            .drpc
            .call_msg(
                MgmtMethod::GetAttachInfo,
                &GetAttachInfoReq {
                    all_ranks,
                    ..Default::default()
                },
            )
            .map_err(|e| self.comm(e))?;
        if r.status != 0 {
            return Err(AgentError::Refused {
                what: "attach info",
                status: r.status,
            });
        }
        Ok(r)
    }

    /// Tells the agent this process holds (`connected`) or released a pool handle.
    pub fn notify_pool(
        &mut self,
        connected: bool,
        pool: &str,
        handle: &str,
    ) -> Result<(), AgentError> {
        let m = if connected {
            MgmtMethod::NotifyPoolConnect
        } else {
            MgmtMethod::NotifyPoolDisconnect
        };
        let req = PoolMonitorReq {
            pool_uuid: pool.into(),
            pool_handle_uuid: handle.into(),
            ..Default::default()
        };
        self.drpc
            .call(m, &prost::Message::encode_to_vec(&req))
            .map(|_| ())
            .map_err(|e| self.comm(e))
    }

    /// Tells the agent this process is exiting (MGMT 233).
    pub fn notify_exit(&mut self) -> Result<(), AgentError> {
        self.drpc
            .call(MgmtMethod::NotifyExit, &[])
            .map(|_| ())
            .map_err(|e| self.comm(e))
    }
}
