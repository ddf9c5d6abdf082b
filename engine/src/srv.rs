//! Questions the engine's CaRT context asks daos_server (dRPC module 3, as DAOS's engine asks
//! its daos_server): a pool's service replicas by UUID (`GET_POOL_SVC`) or its UUID and
//! replicas by label (`POOL_FIND_BYLABEL`), for `MGMT_POOL_FIND`; and a DAOS client's pool
//! connect, disconnect or query (`PoolCall`, daos-rs's own: our pool services are
//! daos_server's).
//!
//! dRPC blocks, so the calls run on their own thread: the context hands a question over a
//! bounded queue and polls for answers; a full queue is back-pressure (the context answers
//! `-DER_BUSY`, which DAOS's clients retry), never a wait on the shard.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use daos_drpc::SrvMethod;
use daos_drpc::srv::{
    ContCallReq, ContCallResp, GetPoolSvcReq, GetPoolSvcResp, PoolCallReq, PoolCallResp,
    PoolFindByLabelReq, PoolFindByLabelResp,
};
use daos_wire::der;
use prost::Message;

/// Questions waiting for the dRPC thread at most.
pub const QUEUE: usize = 32;
/// How long one dRPC call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A question for daos_server.
#[derive(Clone, Debug, PartialEq)]
pub enum Question {
    /// The service replicas of the pool with this UUID.
    PoolSvc([u8; 16]),
    /// The UUID and service replicas of the pool with this label.
    PoolByLabel(String),
    /// A pool connect, disconnect or query.
    Pool(PoolCallReq),
    /// A container call.
    Cont(ContCallReq),
}

/// daos_server's answer to a pool find: a pool's UUID and service replicas, or a DER code.
pub type Found = Result<([u8; 16], Vec<u32>), i32>;

/// daos_server's answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Found(Found),
    /// A pool call's answer (its `status` may be a refusal), or the DER code of a failed call.
    Pool(Result<PoolCallResp, i32>),
    /// A container call's answer, or the DER code of a failed call.
    Cont(Result<ContCallResp, i32>),
}

/// The context's end of the link to the dRPC thread.
pub struct SrvLink {
    ask: SyncSender<(u64, Question)>,
    answers: Receiver<(u64, Answer)>,
}

impl SrvLink {
    /// Starts the thread that asks daos_server at `sock`.
    pub fn start(sock: PathBuf) -> std::io::Result<SrvLink> {
        let (ask, questions) = mpsc::sync_channel::<(u64, Question)>(QUEUE);
        let (tell, answers) = mpsc::sync_channel::<(u64, Answer)>(QUEUE);
        std::thread::Builder::new()
            .name("srv-drpc".into())
            .spawn(move || {
                let mut client = None;
                while let Ok((id, q)) = questions.recv() {
                    let found = ask_server(&sock, &mut client, &q);
                    if tell.send((id, found)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(SrvLink { ask, answers })
    }

    /// Hands a question over; false when the queue is full (or the thread is gone).
    pub fn ask(&self, id: u64, q: Question) -> bool {
        match self.ask.try_send((id, q)) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }

    /// An answer, if one came.
    pub fn answer(&self) -> Option<(u64, Answer)> {
        self.answers.try_recv().ok()
    }
}

/// One question over dRPC, connecting (again) when needed.
fn ask_server(
    sock: &std::path::Path,
    client: &mut Option<daos_drpc::Client>,
    q: &Question,
) -> Answer {
    match q {
        Question::Pool(req) => Answer::Pool(call(sock, client, |c| {
            c.call(SrvMethod::PoolCall, &req.encode_to_vec())
                .map(|b| PoolCallResp::decode(&b[..]).map_err(|_| der::PROTO))
        })),
        Question::Cont(req) => Answer::Cont(call(sock, client, |c| {
            c.call(SrvMethod::ContCall, &req.encode_to_vec())
                .map(|b| ContCallResp::decode(&b[..]).map_err(|_| der::PROTO))
        })),
        _ => Answer::Found(call(sock, client, |c| find(c, q))),
    }
}

/// A pool find over an open connection.
fn find(c: &mut daos_drpc::Client, q: &Question) -> Result<Found, daos_drpc::DrpcError> {
    Ok(match q {
        Question::PoolSvc(uuid) => {
            let req = GetPoolSvcReq {
                uuid: daos_wire::uuid_text(uuid),
            };
            let b = c.call(SrvMethod::GetPoolSvc, &req.encode_to_vec())?;
            match GetPoolSvcResp::decode(&b[..]) {
                Ok(r) if r.status == 0 => Ok((*uuid, r.svcreps)),
                Ok(r) => Err(r.status),
                Err(_) => Err(der::PROTO),
            }
        }
        Question::PoolByLabel(label) => {
            let req = PoolFindByLabelReq {
                label: label.clone(),
            };
            let b = c.call(SrvMethod::PoolFindByLabel, &req.encode_to_vec())?;
            match PoolFindByLabelResp::decode(&b[..]) {
                Ok(r) if r.status == 0 => daos_wire::parse_uuid(&r.uuid)
                    .map(|u| (u, r.svcreps))
                    .ok_or(der::PROTO),
                Ok(r) => Err(r.status),
                Err(_) => Err(der::PROTO),
            }
        }
        Question::Pool(_) | Question::Cont(_) => Err(der::INVAL),
    })
}

/// Runs `f` on a connection to daos_server (connecting again once if the connection broke);
/// a call that cannot be made is `DER_UNREACH`.
fn call<T>(
    sock: &std::path::Path,
    client: &mut Option<daos_drpc::Client>,
    mut f: impl FnMut(&mut daos_drpc::Client) -> Result<Result<T, i32>, daos_drpc::DrpcError>,
) -> Result<T, i32> {
    for attempt in 0..2 {
        if client.is_none() {
            match daos_drpc::Client::connect_within(sock, CALL_TIMEOUT) {
                Ok(mut c) => {
                    let _ = c.set_timeout(CALL_TIMEOUT);
                    *client = Some(c);
                }
                Err(e) => {
                    crate::dlog!(
                        crate::log::Subsys::Mgmt,
                        daos_config::logmask::Level::Err,
                        "cannot reach daos_server at {}: {e}",
                        sock.display()
                    );
                    return Err(der::UNREACH);
                }
            }
        }
        let Some(c) = client.as_mut() else {
            return Err(der::UNREACH);
        };
        match f(c) {
            Ok(answer) => return answer,
            Err(e) => {
                // The connection broke (daos_server restarted): connect again once.
                *client = None;
                if attempt == 1 {
                    crate::dlog!(
                        crate::log::Subsys::Mgmt,
                        daos_config::logmask::Level::Err,
                        "asking daos_server: {e}"
                    );
                }
            }
        }
    }
    Err(der::UNREACH)
}
