//! The state machine: [`SystemDb`] applied from the log, shared with readers, and whole-state
//! snapshots in `snapshot.json` (4-byte CRC, then JSON; written to a temp file, fsynced and
//! renamed), which bound the log.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};

use super::TypeConfig;
use crate::state::{Reply, SystemDb};

/// What the state machine holds: the system state and what of the log made it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Applied {
    pub last_applied: Option<LogId<u64>>,
    pub membership: StoredMembership<u64, BasicNode>,
    pub db: SystemDb,
}

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<u64, BasicNode>,
    applied: Applied,
}

/// The state machine; readers share [`StateMachine::shared`].
pub struct StateMachine {
    shared: Arc<RwLock<Applied>>,
    path: PathBuf,
    snapshot_count: u64,
}

fn read_file(path: &Path) -> Result<Option<SnapshotFile>, String> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let damaged = |why: String| {
        format!(
            "{} is damaged: {why}; fix: remove this replica's control_raft/ so it catches up from the other replicas, or restore it from a backup",
            path.display()
        )
    };
    if data.len() < 4 {
        return Err(damaged("shorter than its checksum".into()));
    }
    let (crc, body) = data.split_at(4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(damaged("checksum mismatch".into()));
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| damaged(e.to_string()))
}

fn write_file(path: &Path, file: &SnapshotFile) -> std::io::Result<()> {
    let body = serde_json::to_vec(file).map_err(std::io::Error::other)?;
    let mut data = crc32fast::hash(&body).to_le_bytes().to_vec();
    data.extend_from_slice(&body);
    let tmp = path.with_extension("json.tmp");
    daos_hw::private::write(&tmp, &data)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl StateMachine {
    /// Opens `dir/snapshot.json` (a new replica starts from `SystemDb::new(system)`).
    pub fn open(dir: &Path, system: &str) -> Result<StateMachine, String> {
        let path = dir.join("snapshot.json");
        let applied = match read_file(&path)? {
            Some(f) => {
                if f.applied.db.system != system {
                    return Err(format!(
                        "{} belongs to system {:?}, not {system:?}; fix: correct `name` in daos_server.yml, or remove control_raft/ to form a new system (engines then need a reformat)",
                        path.display(),
                        f.applied.db.system
                    ));
                }
                f.applied
            }
            None => Applied {
                db: SystemDb::new(system),
                ..Applied::default()
            },
        };
        Ok(StateMachine {
            shared: Arc::new(RwLock::new(applied)),
            path,
            snapshot_count: 0,
        })
    }

    pub fn shared(&self) -> Arc<RwLock<Applied>> {
        self.shared.clone()
    }

    // openraft's own error type; it is what the trait returns.
    #[allow(clippy::result_large_err)]
    fn snapshot_now(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let applied = self
            .shared
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.snapshot_count += 1;
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.membership.clone(),
            snapshot_id: format!(
                "{}-{}",
                applied.last_applied.map_or(0, |l| l.index),
                self.snapshot_count
            ),
        };
        let file = SnapshotFile {
            meta: meta.clone(),
            applied,
        };
        write_file(&self.path, &file)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        let data = serde_json::to_vec(&file.applied)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

/// Builds snapshots from the shared state.
pub struct Builder {
    sm: StateMachine,
}

impl RaftSnapshotBuilder<TypeConfig> for Builder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        self.sm.snapshot_now()
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Builder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let a = self.shared.read().unwrap_or_else(|p| p.into_inner());
        Ok((a.last_applied, a.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<super::Outcome>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut a = self.shared.write().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for e in entries {
            a.last_applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => out.push(Ok(Reply::Done)),
                EntryPayload::Normal(cmd) => out.push(a.db.apply(&cmd)),
                EntryPayload::Membership(m) => {
                    a.membership = StoredMembership::new(Some(e.log_id), m);
                    out.push(Ok(Reply::Done));
                }
            }
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        Builder {
            sm: StateMachine {
                shared: self.shared.clone(),
                path: self.path.clone(),
                snapshot_count: self.snapshot_count + 1000,
            },
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let applied: Applied = serde_json::from_slice(snapshot.get_ref())
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let file = SnapshotFile {
            meta: meta.clone(),
            applied,
        };
        write_file(&self.path, &file)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        *self.shared.write().unwrap_or_else(|p| p.into_inner()) = file.applied;
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        let file = read_file(&self.path)
            .map_err(|e| StorageIOError::read_snapshot(None, &std::io::Error::other(e)))?;
        Ok(match file {
            None => None,
            Some(f) => {
                let data = serde_json::to_vec(&f.applied)
                    .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
                Some(Snapshot {
                    meta: f.meta,
                    snapshot: Box::new(Cursor::new(data)),
                })
            }
        })
    }
}
