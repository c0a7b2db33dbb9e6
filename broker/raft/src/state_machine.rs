//! The state machine of a group: what every replica derives from committed entries.
//!
//! It is tiny on purpose. The data is the partition log itself; the state machine tracks the
//! last applied entry, the membership, the next offset (so the high watermark is known on every
//! replica), and whatever a group's [`Machine`] keeps (for the metadata group, the cluster
//! state). A snapshot at index X copies nothing: it is that small state plus "the log from its
//! start through X", whose files are read when the snapshot is sent.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use serde::{Deserialize, Serialize};
use strand_log::{BatchHeader, FileSpan, Index, Log, Offset};
use tokio::sync::{Mutex, watch};

use crate::{Applied, Batch, LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};

/// What a group does with committed data entries beyond counting offsets.
pub trait Machine: Send + Sync + 'static {
    /// Applies one committed data entry, `batch` with its parsed `header`, whose first record
    /// has `base_offset`; the answer goes back to the writer. (The header is parsed once, by
    /// the group's state machine, for the offsets and for the machine.)
    fn apply(
        &mut self,
        log_id: LogId,
        batch: &Batch,
        header: &BatchHeader,
        base_offset: Offset,
    ) -> Option<Bytes>;
    /// The machine's state, for a snapshot.
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the machine's state with one from a snapshot.
    fn restore(&mut self, state: &[u8]) -> io::Result<()>;
}

/// A machine that keeps nothing: a partition whose only state is its offsets.
#[derive(Debug, Default)]
pub struct NoMachine;

impl Machine for NoMachine {
    fn apply(&mut self, _: LogId, _: &Batch, _: &BatchHeader, _: Offset) -> Option<Bytes> {
        None
    }

    fn snapshot(&self) -> Vec<u8> {
        Vec::new()
    }

    fn restore(&mut self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

/// Where a snapshot's log files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotSource {
    /// In this replica's log: the files and byte lengths to send.
    Local(Vec<FileSpan>),
    /// Received from another replica into this directory, ready to adopt.
    Staged(PathBuf),
}

/// The data of a snapshot: the small state, and where the log prefix is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotData {
    /// The offset after the snapshot's last entry.
    pub next_offset: Offset,
    /// The group machine's state at the snapshot.
    pub machine_state: Vec<u8>,
    /// The log from its start through the snapshot's last entry.
    pub source: SnapshotSource,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    next_offset: Offset,
    machine_state_crc: u32,
}

struct State<M> {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    next_offset: Offset,
    machine: M,
}

struct Inner<M> {
    dir: PathBuf,
    log: Arc<RwLock<Log>>,
    state: Mutex<State<M>>,
    high_watermark: watch::Sender<Offset>,
    current: std::sync::Mutex<Option<(StoredSnapshot, Vec<u8>)>>,
}

/// The state machine of one group. Cheap to clone.
pub struct GroupStateMachine<M: Machine> {
    inner: Arc<Inner<M>>,
}

impl<M: Machine> Clone for GroupStateMachine<M> {
    fn clone(&self) -> Self {
        GroupStateMachine {
            inner: self.inner.clone(),
        }
    }
}

impl<M: Machine> GroupStateMachine<M> {
    /// Opens the state machine of the group in `dir`, over the group's shared log. It starts
    /// from the last snapshot, if any; openraft re-applies committed entries after it.
    pub fn open(dir: &Path, log: Arc<RwLock<Log>>, mut machine: M) -> io::Result<Self> {
        let current = load_snapshot(dir)?;
        let mut state = State {
            last_applied: None,
            membership: StoredMembership::default(),
            next_offset: Offset(0),
            machine: NoMachine,
        };
        if let Some((stored, machine_state)) = &current {
            machine.restore(machine_state)?;
            state.last_applied = stored.meta.last_log_id;
            state.membership = stored.meta.last_membership.clone();
            state.next_offset = stored.next_offset;
        }
        let state = State {
            last_applied: state.last_applied,
            membership: state.membership,
            next_offset: state.next_offset,
            machine,
        };
        let (high_watermark, _) = watch::channel(state.next_offset);
        Ok(GroupStateMachine {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                log,
                state: Mutex::new(state),
                high_watermark,
                current: std::sync::Mutex::new(current),
            }),
        })
    }

    /// The high watermark: the offset after the last applied (so committed) record. Fetches
    /// long-poll on changes of it.
    pub fn high_watermark(&self) -> watch::Receiver<Offset> {
        self.inner.high_watermark.subscribe()
    }

    /// Runs `f` on the machine's state, for reads (e.g. the metadata a broker serves).
    pub async fn with_machine<T>(&self, f: impl FnOnce(&M) -> T) -> T {
        f(&self.inner.state.lock().await.machine)
    }

    fn read_log(&self) -> std::sync::RwLockReadGuard<'_, Log> {
        self.inner.log.read().unwrap_or_else(|p| p.into_inner())
    }

    fn log_prefix(&self, last: Option<LogId>) -> io::Result<Vec<FileSpan>> {
        match last {
            None => Ok(Vec::new()),
            Some(id) => self
                .read_log()
                .prefix(Index(id.index))
                .map_err(io::Error::other),
        }
    }
}

fn snapshot_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("snapshot.json"), dir.join("snapshot.state"))
}

fn load_snapshot(dir: &Path) -> io::Result<Option<(StoredSnapshot, Vec<u8>)>> {
    let (meta_path, state_path) = snapshot_paths(dir);
    let meta = match fs::read(&meta_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let damaged = |what: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("snapshot in {} is damaged: {what}", dir.display()),
        )
    };
    let stored: StoredSnapshot =
        serde_json::from_slice(&meta).map_err(|e| damaged(e.to_string()))?;
    let state = fs::read(&state_path)?;
    if crc32c::crc32c(&state) != stored.machine_state_crc {
        return Err(damaged("machine state checksum mismatch".into()));
    }
    Ok(Some((stored, state)))
}

fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_data()?;
    fs::rename(&tmp, path)
}

fn store_snapshot(dir: &Path, stored: &StoredSnapshot, machine_state: &[u8]) -> io::Result<()> {
    let (meta_path, state_path) = snapshot_paths(dir);
    // The state first: the meta names its checksum, so a crash between leaves the old pair
    // detectably mismatched rather than silently mixed.
    write_durably(&state_path, machine_state)?;
    write_durably(
        &meta_path,
        &serde_json::to_vec(stored).map_err(io::Error::other)?,
    )?;
    fs::File::open(dir)?.sync_all()
}

impl<M: Machine> RaftSnapshotBuilder<TypeConfig> for GroupStateMachine<M> {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let state = self.inner.state.lock().await;
        let meta = SnapshotMeta {
            last_log_id: state.last_applied,
            last_membership: state.membership.clone(),
        };
        let machine_state = state.machine.snapshot();
        let next_offset = state.next_offset;
        drop(state);
        let stored = StoredSnapshot {
            meta: meta.clone(),
            next_offset,
            machine_state_crc: crc32c::crc32c(&machine_state),
        };
        store_snapshot(&self.inner.dir, &stored, &machine_state)?;
        let source = SnapshotSource::Local(self.log_prefix(meta.last_log_id)?);
        *self.inner.current.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((stored, machine_state.clone()));
        Ok(Snapshot {
            meta,
            snapshot: SnapshotData {
                next_offset,
                machine_state,
                source,
            },
        })
    }
}

impl<M: Machine> RaftStateMachine<TypeConfig> for GroupStateMachine<M> {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        let state = self.inner.state.lock().await;
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        let mut state = self.inner.state.lock().await;
        while let Some((entry, responder)) = entries.try_next().await? {
            let base_offset = state.next_offset;
            let mut answer = None;
            match &entry.payload {
                EntryPayload::Normal(batch) => {
                    let header = BatchHeader::parse(&batch.0).map_err(|e| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("entry {} holds no record batch: {e}", entry.log_id),
                        )
                    })?;
                    state.next_offset = base_offset.plus(header.offset_count());
                    answer = state
                        .machine
                        .apply(entry.log_id, batch, &header, base_offset);
                }
                EntryPayload::Membership(membership) => {
                    state.membership =
                        StoredMembership::new(Some(entry.log_id), membership.clone());
                }
                EntryPayload::Blank => {}
            }
            state.last_applied = Some(entry.log_id);
            if let Some(responder) = responder {
                responder.send(Applied {
                    base_offset,
                    answer,
                });
            }
        }
        self.inner.high_watermark.send_replace(state.next_offset);
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> io::Result<()> {
        let mut state = self.inner.state.lock().await;
        if let Some(last) = meta.last_log_id {
            let has_it = {
                let log = self.read_log();
                let index = Index(last.index);
                index >= log.first_index()
                    && index < log.next_index()
                    && log
                        .entries(index..index.next())
                        .map_err(io::Error::other)?
                        .first()
                        .is_some_and(|e| e.term.0 == last.leader_id.term)
            };
            // A log that already holds the snapshot's last entry holds everything before it
            // (Raft's log matching), and may hold entries after it that must stay.
            if !has_it {
                let staged = match &snapshot.source {
                    SnapshotSource::Staged(dir) => dir.clone(),
                    SnapshotSource::Local(spans) => stage_local(&self.inner.dir, spans)?,
                };
                let mut log = self.inner.log.write().unwrap_or_else(|p| p.into_inner());
                log.adopt(&staged, Index(last.index).next(), snapshot.next_offset)
                    .map_err(io::Error::other)?;
                drop(log);
                let _ = fs::remove_dir_all(&staged);
            }
        }
        state.machine.restore(&snapshot.machine_state)?;
        state.last_applied = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        state.next_offset = snapshot.next_offset;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            next_offset: snapshot.next_offset,
            machine_state_crc: crc32c::crc32c(&snapshot.machine_state),
        };
        store_snapshot(&self.inner.dir, &stored, &snapshot.machine_state)?;
        *self.inner.current.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((stored, snapshot.machine_state));
        self.inner.high_watermark.send_replace(state.next_offset);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        let current = self
            .inner
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some((stored, machine_state)) = current else {
            return Ok(None);
        };
        // The files are looked up now, not when the snapshot was built: retention may have
        // removed old segments since, and the log from its start through X is what to send.
        let source = SnapshotSource::Local(self.log_prefix(stored.meta.last_log_id)?);
        Ok(Some(Snapshot {
            meta: stored.meta,
            snapshot: SnapshotData {
                next_offset: stored.next_offset,
                machine_state,
                source,
            },
        }))
    }
}

/// Copies the spans of another log on this machine into a fresh staging directory.
fn stage_local(dir: &Path, spans: &[FileSpan]) -> io::Result<PathBuf> {
    let staged = dir.join("snapshot-staging");
    let _ = fs::remove_dir_all(&staged);
    fs::create_dir_all(&staged)?;
    for span in spans {
        let mut bytes = Vec::new();
        fs::File::open(&span.path)?
            .take(span.len)
            .read_to_end(&mut bytes)?;
        write_durably(&staged.join(&span.name), &bytes)?;
    }
    Ok(staged)
}
