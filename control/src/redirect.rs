//! DAOS's "annotated" management-service errors: a not-leader or not-replica error travels as
//! gRPC status `Internal` with DAOS's message, and a `google.rpc.ErrorInfo` detail
//! (reason `proto.system.ErrNotLeader` / `proto.system.ErrNotReplica`, domain `DAOS`,
//! metadata `LeaderHint` and `Replicas` as a JSON list) that DAOS's clients read to retry
//! elsewhere. Both directions are here so our servers send and our clients follow exactly
//! what DAOS's do.

use daos_proto::google_rpc::{Any, ErrorInfo, Status as RpcStatus};
use prost::Message;

/// Reason of a not-leader error.
pub const NOT_LEADER: &str = "proto.system.ErrNotLeader";
/// Reason of a not-replica error.
pub const NOT_REPLICA: &str = "proto.system.ErrNotReplica";
const ERROR_INFO_URL: &str = "type.googleapis.com/google.rpc.ErrorInfo";

/// Where the management service says to go instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redirect {
    /// Ask `hint` (may be empty: no leader known) or one of `replicas`.
    NotLeader { hint: String, replicas: Vec<String> },
    /// Ask one of `replicas`.
    NotReplica { replicas: Vec<String> },
}

impl Redirect {
    /// DAOS's message for it.
    pub fn message(&self) -> String {
        match self {
            Redirect::NotLeader { hint, replicas } => format!(
                "not the DAOS Management Service leader (try {hint} or one of {})",
                replicas.join(",")
            ),
            Redirect::NotReplica { replicas } => format!(
                "not a DAOS Management Service replica (try one of {})",
                replicas.join(",")
            ),
        }
    }

    /// The hosts to try, best first.
    pub fn hosts(&self) -> Vec<String> {
        match self {
            Redirect::NotLeader { hint, replicas } => std::iter::once(hint)
                .filter(|h| !h.is_empty())
                .chain(replicas)
                .cloned()
                .collect(),
            Redirect::NotReplica { replicas } => replicas.clone(),
        }
    }

    /// As a gRPC status, annotated as DAOS does.
    pub fn to_status(&self) -> tonic::Status {
        let (reason, replicas, hint) = match self {
            Redirect::NotLeader { hint, replicas } => (NOT_LEADER, replicas, Some(hint)),
            Redirect::NotReplica { replicas } => (NOT_REPLICA, replicas, None),
        };
        let mut metadata = std::collections::HashMap::new();
        metadata.insert(
            "Replicas".to_string(),
            serde_json::to_string(replicas).unwrap_or_else(|_| "[]".into()),
        );
        if let Some(h) = hint {
            metadata.insert("LeaderHint".to_string(), h.clone());
        }
        let info = ErrorInfo {
            reason: reason.into(),
            domain: "DAOS".into(),
            metadata,
        };
        let message = self.message();
        let details = RpcStatus {
            code: tonic::Code::Internal as i32,
            message: message.clone(),
            details: vec![Any {
                type_url: ERROR_INFO_URL.into(),
                value: info.encode_to_vec(),
            }],
        };
        tonic::Status::with_details(
            tonic::Code::Internal,
            message,
            details.encode_to_vec().into(),
        )
    }

    /// Reads a redirect from a status's details (none for any other error).
    pub fn from_status(s: &tonic::Status) -> Option<Redirect> {
        let details = RpcStatus::decode(s.details()).ok()?;
        for any in details.details {
            if any.type_url != ERROR_INFO_URL {
                continue;
            }
            let Ok(info) = ErrorInfo::decode(any.value.as_slice()) else {
                continue;
            };
            let replicas: Vec<String> = info
                .metadata
                .get("Replicas")
                .and_then(|r| serde_json::from_str(r).ok())
                .unwrap_or_default();
            match info.reason.as_str() {
                NOT_LEADER => {
                    return Some(Redirect::NotLeader {
                        hint: info.metadata.get("LeaderHint").cloned().unwrap_or_default(),
                        replicas,
                    });
                }
                NOT_REPLICA => return Some(Redirect::NotReplica { replicas }),
                _ => {}
            }
        }
        None
    }
}

/// The hosts a caller asks in turn while looking for the management service leader: each at
/// most once per round, and the hosts a redirect names (the leader hint first) go ahead of
/// the rest. Without the "at most once", two followers that both name each other among the
/// replicas keep a caller bouncing between them and the leader is never asked.
#[derive(Clone, Debug, Default)]
pub struct HostQueue {
    queue: std::collections::VecDeque<String>,
    tried: Vec<String>,
}

impl HostQueue {
    /// A round over `hosts` (duplicates and empty names dropped), in order.
    pub fn new(hosts: impl IntoIterator<Item = String>) -> HostQueue {
        let mut q = HostQueue::default();
        for h in hosts {
            if !h.is_empty() && !q.queue.contains(&h) {
                q.queue.push_back(h);
            }
        }
        q
    }

    /// The next host to ask, or None when every host was asked.
    pub fn next_host(&mut self) -> Option<String> {
        let h = self.queue.pop_front()?;
        self.tried.push(h.clone());
        Some(h)
    }

    /// Asks `hosts` next, in their order, skipping those already asked this round.
    pub fn prefer(&mut self, hosts: Vec<String>) {
        for h in hosts.into_iter().rev() {
            if h.is_empty() || self.tried.contains(&h) {
                continue;
            }
            self.queue.retain(|q| *q != h);
            self.queue.push_front(h);
        }
    }

    /// How many hosts were asked this round.
    pub fn asked(&self) -> usize {
        self.tried.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followers_naming_each_other_do_not_hide_the_leader() {
        let h = |s: &str| s.to_string();
        let mut q = HostQueue::new(["h1", "h2", "h3", "h2"].map(h));
        assert_eq!(q.next_host().as_deref(), Some("h1"));
        // h1 says: try h3, or h2 or h3.
        q.prefer(["h3", "h2", "h3"].map(h).to_vec());
        assert_eq!(q.next_host().as_deref(), Some("h3"));
        // h3 is a follower now too and names h1 (asked already) and h2.
        q.prefer(["h1", "h2"].map(h).to_vec());
        assert_eq!(q.next_host().as_deref(), Some("h2"));
        q.prefer(["h1", "h3"].map(h).to_vec());
        assert_eq!(q.next_host(), None, "each host at most once a round");
        assert_eq!(q.asked(), 3);
    }

    #[test]
    fn redirects_round_trip_through_a_status_with_daos_messages() {
        let r = Redirect::NotLeader {
            hint: "h2:10001".into(),
            replicas: vec!["h1:10001".into(), "h3:10001".into()],
        };
        let s = r.to_status();
        assert_eq!(s.code(), tonic::Code::Internal);
        assert_eq!(
            s.message(),
            "not the DAOS Management Service leader (try h2:10001 or one of h1:10001,h3:10001)"
        );
        assert_eq!(Redirect::from_status(&s), Some(r.clone()));
        assert_eq!(r.hosts(), ["h2:10001", "h1:10001", "h3:10001"]);
        let n = Redirect::NotReplica {
            replicas: vec!["h1:10001".into()],
        };
        assert_eq!(
            n.message(),
            "not a DAOS Management Service replica (try one of h1:10001)"
        );
        assert_eq!(Redirect::from_status(&n.to_status()), Some(n));
        assert_eq!(
            Redirect::from_status(&tonic::Status::internal("plain")),
            None
        );
        // Garbage details are no redirect.
        let junk = tonic::Status::with_details(tonic::Code::Internal, "x", vec![1u8, 2, 3].into());
        assert_eq!(Redirect::from_status(&junk), None);
    }
}
