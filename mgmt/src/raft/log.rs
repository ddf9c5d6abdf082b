//! The Raft log and vote on disk: a checksummed append-only file of our own (`raft.log`).
//!
//! Why not an embedded database: the MS log is small (a few thousand entries between
//! snapshots) and written by one task; a record file with a CRC per record and an fsync per
//! write is all the durability it needs, is easy to check by hand, and adds no dependency.
//!
//! Each record is `len: u32 LE | crc32(payload): u32 LE | payload (JSON of [`Record`])`.
//! Opening replays the records into memory. A record cut short by a crash at the end of the
//! file (or whose checksum fails there) is dropped with a warning: it was never acknowledged.
//! A bad record followed by more data is damage, refused with the offset and the fix. When
//! purged or truncated records make up most of the file, it is rewritten (temp file, fsync,
//! rename, fsync of the directory).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader, StorageError,
    StorageIOError, Vote,
};
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::TypeConfig;

/// Largest record accepted when reading (a record holds one append batch).
const MAX_RECORD: usize = 64 << 20;

#[derive(Serialize, Deserialize)]
enum Record {
    Vote(Vote<u64>),
    Committed(Option<LogId<u64>>),
    Append(Vec<Entry<TypeConfig>>),
    /// Deletes entries from this index on.
    Truncate(u64),
    /// Deletes entries up to and including this log id.
    Purge(LogId<u64>),
}

struct Inner {
    path: PathBuf,
    file: File,
    vote: Option<Vote<u64>>,
    committed: Option<LogId<u64>>,
    last_purged: Option<LogId<u64>>,
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    /// Entries written to the file since it was last rewritten.
    written: u64,
}

/// The log store; clones share it (the reader handed to replication tasks is a clone).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

fn io_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError<u64> {
    StorageIOError::new(
        ErrorSubject::Logs,
        verb,
        openraft::AnyError::error(e.to_string()),
    )
    .into()
}

fn encode(rec: &Record) -> Vec<u8> {
    let payload = serde_json::to_vec(rec).unwrap_or_default();
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Parses the records of `data`; returns them and the length of the good prefix, or an error
/// naming the damaged offset.
fn parse(data: &[u8], path: &Path) -> Result<(Vec<Record>, usize), String> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < data.len() {
        let torn = |why: &str| {
            warn!(
                "{}: dropping an unfinished record at offset {at} ({why}); it was never acknowledged",
                path.display()
            );
        };
        if data.len() - at < 8 {
            torn("header cut short");
            break;
        }
        let len = u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
        let crc = u32::from_le_bytes([data[at + 4], data[at + 5], data[at + 6], data[at + 7]]);
        let end = at + 8 + len;
        if len > MAX_RECORD || end > data.len() {
            if len > MAX_RECORD && end < data.len() {
                return Err(format!("record at offset {at} claims {len} bytes"));
            }
            torn("record cut short");
            break;
        }
        let payload = &data[at + 8..end];
        if crc32fast::hash(payload) != crc {
            if end == data.len() {
                torn("checksum of the last record fails");
                break;
            }
            return Err(format!("record at offset {at} fails its checksum"));
        }
        let rec: Record = serde_json::from_slice(payload)
            .map_err(|e| format!("record at offset {at} does not decode: {e}"))?;
        out.push(rec);
        at = end;
    }
    Ok((out, at))
}

/// Checks a `raft.log` image as opening it would: the length of its good prefix, or why it is
/// refused (for fuzzing and tools).
pub fn scan(data: &[u8]) -> Result<usize, String> {
    parse(data, Path::new("raft.log")).map(|(_, good)| good)
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

impl LogStore {
    /// Opens (or creates) `dir/raft.log`.
    pub fn open(dir: &Path) -> Result<LogStore, String> {
        daos_hw::private::create_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join("raft.log");
        let mut data = Vec::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut data)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
        let (records, good) = parse(&data, &path).map_err(|e| {
            format!(
                "{} is damaged: {e}; fix: restore control_raft/ from a backup, or remove this replica's control_raft/ so it catches up from the other replicas",
                path.display()
            )
        })?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode_private()
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if good < data.len() {
            file.set_len(good as u64)
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        let mut inner = Inner {
            path,
            file,
            vote: None,
            committed: None,
            last_purged: None,
            entries: BTreeMap::new(),
            written: 0,
        };
        for rec in records {
            inner.replay(rec);
        }
        Ok(LogStore {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True when nothing was ever stored (a new replica).
    pub fn is_empty(&self) -> bool {
        let i = self.lock();
        i.vote.is_none() && i.entries.is_empty() && i.last_purged.is_none()
    }
}

trait ModePrivate {
    fn mode_private(&mut self) -> &mut Self;
}

impl ModePrivate for OpenOptions {
    fn mode_private(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

impl Inner {
    fn replay(&mut self, rec: Record) {
        match rec {
            Record::Vote(v) => self.vote = Some(v),
            Record::Committed(c) => self.committed = c,
            Record::Append(es) => {
                for e in es {
                    self.written += 1;
                    self.entries.insert(e.log_id.index, e);
                }
            }
            Record::Truncate(from) => {
                self.entries.split_off(&from);
            }
            Record::Purge(upto) => {
                self.entries = self.entries.split_off(&(upto.index + 1));
                self.last_purged = Some(upto);
            }
        }
    }

    fn write(&mut self, rec: Record) -> std::io::Result<()> {
        let bytes = encode(&rec);
        self.file.write_all(&bytes)?;
        self.file.sync_data()?;
        self.replay(rec);
        Ok(())
    }

    /// Rewrites the file with only what is live when the dead part dominates.
    fn compact_if_worth_it(&mut self) -> std::io::Result<()> {
        let live = self.entries.len() as u64;
        if self.written < 256 || self.written < 4 * live.max(1) {
            return Ok(());
        }
        let tmp = self.path.with_extension("log.tmp");
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode_private()
            .open(&tmp)?;
        if let Some(v) = self.vote {
            f.write_all(&encode(&Record::Vote(v)))?;
        }
        f.write_all(&encode(&Record::Committed(self.committed)))?;
        if let Some(p) = self.last_purged {
            f.write_all(&encode(&Record::Purge(p)))?;
        }
        let entries: Vec<Entry<TypeConfig>> = self.entries.values().cloned().collect();
        if !entries.is_empty() {
            f.write_all(&encode(&Record::Append(entries)))?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        sync_dir(&self.path)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.written = live;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        Ok(self
            .lock()
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let i = self.lock();
        let last = i.entries.values().next_back().map(|e| e.log_id);
        Ok(LogState {
            last_purged_log_id: i.last_purged,
            last_log_id: last.or(i.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        self.lock()
            .write(Record::Vote(*vote))
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(self.lock().vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        self.lock()
            .write(Record::Committed(committed))
            .map_err(|e| io_err(ErrorVerb::Write, e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let r = self.lock().write(Record::Append(entries));
        match r {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let text = e.to_string();
                callback.log_io_completed(Err(e));
                Err(io_err(ErrorVerb::Write, text))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.lock()
            .write(Record::Truncate(log_id.index))
            .map_err(|e| io_err(ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let mut i = self.lock();
        i.write(Record::Purge(log_id))
            .and_then(|()| i.compact_if_worth_it())
            .map_err(|e| io_err(ErrorVerb::Delete, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(term, 0), index),
            payload: openraft::EntryPayload::Blank,
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    }

    #[test]
    fn a_reopened_log_has_what_was_written_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        rt().block_on(async {
            let mut s = LogStore::open(dir.path()).expect("open");
            assert!(s.is_empty());
            s.save_vote(&Vote::new(3, 1)).await.expect("vote");
            s.lock()
                .write(Record::Append((1..=5).map(|n| entry(1, n)).collect()))
                .expect("append");
            s.truncate(entry(1, 4).log_id).await.expect("truncate");
            s.purge(entry(1, 1).log_id).await.expect("purge");
        });
        let path = dir.path().join("raft.log");
        // A crash mid-write leaves half a record at the end.
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(&encode(&Record::Append(vec![entry(2, 4)]))[..11])
            .expect("write");
        drop(f);
        rt().block_on(async {
            let mut s = LogStore::open(dir.path()).expect("reopen");
            assert_eq!(s.read_vote().await.expect("vote"), Some(Vote::new(3, 1)));
            let state = s.get_log_state().await.expect("state");
            assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(1));
            assert_eq!(state.last_log_id.map(|l| l.index), Some(3));
            let got: Vec<u64> = s
                .try_get_log_entries(0..100)
                .await
                .expect("read")
                .iter()
                .map(|e| e.log_id.index)
                .collect();
            assert_eq!(got, [2, 3]);
        });
    }

    #[test]
    fn damage_in_the_middle_is_refused_with_the_offset_and_a_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("raft.log");
        let mut data = encode(&Record::Vote(Vote::new(1, 0)));
        data.extend(encode(&Record::Committed(None)));
        data[10] ^= 0xff;
        std::fs::write(&path, &data).expect("write");
        let err = LogStore::open(dir.path()).err().expect("refused");
        assert!(
            err.contains("offset 0") && err.contains("checksum") && err.contains("fix:"),
            "{err}"
        );
    }

    #[test]
    fn many_purges_rewrite_the_file_small() {
        let dir = tempfile::tempdir().expect("tempdir");
        rt().block_on(async {
            let mut s = LogStore::open(dir.path()).expect("open");
            for n in 1..=600u64 {
                s.lock()
                    .write(Record::Append(vec![entry(1, n)]))
                    .expect("append");
                if n % 50 == 0 {
                    s.purge(entry(1, n - 10).log_id).await.expect("purge");
                }
            }
            let size = std::fs::metadata(dir.path().join("raft.log"))
                .expect("meta")
                .len();
            assert!(size < 600 * 40, "log not compacted: {size} bytes");
            drop(s);
            let mut s = LogStore::open(dir.path()).expect("reopen");
            let got = s.try_get_log_entries(0..1000).await.expect("read");
            assert_eq!(got.first().map(|e| e.log_id.index), Some(591));
            assert_eq!(got.len(), 10);
        });
    }
}
