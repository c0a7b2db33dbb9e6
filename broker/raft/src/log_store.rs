//! openraft's log storage over the partition log: the Raft log *is* the partition log, so a
//! produced batch is written once.
//!
//! Appends go to the page cache under a short lock; a per-group flusher task then makes them
//! durable with one fsync for every append that arrived meanwhile (group commit) and only then
//! tells openraft they are flushed, in order.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::time::Instant;

use bytes::Bytes;
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{EntryPayload, OptionalSend};
use strand_log::{
    Clock, EntryKind, Index, Log, LogConfig, LogError, NewEntry, Payload, SystemClock, Term,
};
use tokio::sync::mpsc;

use crate::state_file::{RaftState, StateFile};
use crate::{Batch, Entry, LogId, NodeId, TypeConfig, Vote, log_id};

/// Appends whose flush may be waiting at once; a full queue makes appends wait (backpressure).
const FLUSH_QUEUE_MAX: usize = 1024;

/// Payload bytes of the newest entries a group keeps in memory as appended ([`Recent`]).
/// Under full load a leader's followers and state machine trail its appends by tens of
/// megabytes (a Kafka producer's batches are up to 1 MiB each, several in flight per
/// partition); entries they no longer find here are read back from the log. What all groups of
/// a broker keep together is bounded by their [`RecentBudget`] and by [`RECENT_AGE_MAX`].
const RECENT_BYTES_MAX: usize = 64 << 20;
/// Entries a group keeps in memory as appended, whatever their size.
const RECENT_ENTRIES_MAX: usize = 4096;
/// How long an appended entry stays in memory at most (see [`LogStore::trim_recent`]), so a
/// broker holds no more than about this long of what it appends, however many groups it has.
pub const RECENT_AGE_MAX: Duration = Duration::from_secs(2);

/// Errors of a group's storage, as a person needs them to act.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The partition log failed (i/o, corruption, bad entry).
    #[error("partition log {dir}: {source}")]
    Log {
        /// The log directory.
        dir: PathBuf,
        /// What the log reported.
        source: LogError,
    },
    /// The group's raft state file could not be read or written.
    #[error("raft state of {dir}: {source}")]
    State {
        /// The group directory.
        dir: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

impl From<StorageError> for io::Error {
    fn from(e: StorageError) -> io::Error {
        io::Error::other(e)
    }
}

/// The newest entries of a group's log as they were appended, so that replication to followers
/// and the state machine take them from memory instead of reading back what was just written.
/// They hold the appended payloads themselves (shared, not copied). The entries are the log's
/// last ones, contiguous, as long as the log reports no rewrite since they were taken.
struct Recent {
    /// Shared with the other groups of the broker, if any.
    budget: Option<RecentBudget>,
    /// [`Log::rewrites`] when the entries were taken.
    rewrites: u64,
    /// The entries, oldest first, each with when it was appended.
    entries: VecDeque<(Instant, Entry)>,
    bytes: usize,
}

impl Recent {
    fn clear(&mut self) {
        self.entries.clear();
        self.take_bytes(self.bytes);
    }

    fn take_bytes(&mut self, bytes: usize) {
        self.bytes -= bytes;
        if let Some(budget) = &self.budget {
            budget.0.used.fetch_sub(bytes, Ordering::Relaxed);
        }
    }

    /// Takes entries just appended to `log`, dropping the oldest beyond the limits.
    fn extend(&mut self, log: &Log, appended: &[Entry], now: Instant) {
        let continues = self.rewrites == log.rewrites()
            && match (self.entries.back(), appended.first()) {
                (Some((_, last)), Some(first)) => first.log_id.index == last.log_id.index + 1,
                _ => true,
            };
        if !continues {
            self.clear();
            self.rewrites = log.rewrites();
        }
        let mut bytes = 0;
        for entry in appended {
            bytes += payload_len(entry);
            self.entries.push_back((now, entry.clone()));
        }
        self.bytes += bytes;
        if let Some(budget) = &self.budget {
            budget.0.used.fetch_add(bytes, Ordering::Relaxed);
        }
        self.trim(now.checked_sub(RECENT_AGE_MAX));
    }

    /// Drops the oldest entries beyond the size limits, and those appended before `before`.
    /// While the broker's budget is spent, the group that appends gives up its oldest.
    fn trim(&mut self, before: Option<Instant>) {
        while let Some((at, oldest)) = self.entries.front() {
            let expired = before.is_some_and(|before| *at < before);
            let over_budget = self.budget.as_ref().is_some_and(RecentBudget::spent);
            if !expired
                && !over_budget
                && self.bytes <= RECENT_BYTES_MAX
                && self.entries.len() <= RECENT_ENTRIES_MAX
            {
                break;
            }
            let bytes = payload_len(oldest);
            self.entries.pop_front();
            self.take_bytes(bytes);
        }
    }

    /// Entries `start..end` of `log`, if they are all here and still right.
    fn get(&self, log: &Log, start: u64, end: u64) -> Option<Vec<Entry>> {
        let first = self.entries.front()?.1.log_id.index;
        let next = first + self.entries.len() as u64;
        if self.rewrites != log.rewrites() || start < first || end > next {
            return None;
        }
        let from = (start - first) as usize;
        let to = (end - first) as usize;
        Some(
            self.entries
                .range(from..to)
                .map(|(_, entry)| entry.clone())
                .collect(),
        )
    }
}

impl Drop for Recent {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Bytes of newest entries ([`Recent`]) the groups of one broker may keep in memory together.
/// Cheap to clone; clones share the count.
#[derive(Debug, Clone)]
pub struct RecentBudget(Arc<BudgetInner>);

#[derive(Debug)]
struct BudgetInner {
    max: usize,
    used: AtomicUsize,
}

impl RecentBudget {
    /// A budget of `max_bytes` of payload.
    pub fn new(max_bytes: usize) -> Self {
        RecentBudget(Arc::new(BudgetInner {
            max: max_bytes,
            used: AtomicUsize::new(0),
        }))
    }

    /// Payload bytes the groups sharing the budget keep now.
    pub fn used(&self) -> usize {
        self.0.used.load(Ordering::Relaxed)
    }

    fn spent(&self) -> bool {
        self.used() > self.0.max
    }
}

fn payload_len(entry: &Entry) -> usize {
    match &entry.payload {
        EntryPayload::Normal(batch) => batch.0.len(),
        _ => 0,
    }
}

/// How much of the end of a group's log stays in the page cache once flushed
/// (`LogConfig::page_cache_window_bytes`), by the replica's role; `None` leaves it to the kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageCacheWindows {
    /// While the replica leads: consumers read from the leader.
    pub leader: Option<u64>,
    /// While it follows: only a follower that becomes leader reads its own log.
    pub follower: Option<u64>,
}

/// What a group's storage keeps in memory besides its own state.
#[derive(Debug, Clone, Default)]
pub struct Caching {
    /// The log's page cache windows.
    pub windows: PageCacheWindows,
    /// The budget the group's newest entries are kept out of, shared by the groups of a broker;
    /// `None`: only the group's own limits apply.
    pub recent: Option<RecentBudget>,
}

struct Shared {
    dir: PathBuf,
    /// This replica's Raft node id.
    node_id: NodeId,
    /// The page cache windows of the log while this replica leads and while it follows.
    windows: PageCacheWindows,
    log: Arc<RwLock<Log>>,
    /// The wall clock whose time the log's appends get (`segment.ms`, the flush interval).
    clock: Arc<dyn Clock>,
    /// Locked after `log` when both are.
    recent: Mutex<Recent>,
    state: Mutex<RaftState>,
    state_file: StateFile,
    /// Whether the marker that this replica once recorded a vote exists (`rejoin.rs`).
    marked: std::sync::atomic::AtomicBool,
    /// Whether the replica is rejoining (`rejoin.rs`): set at open, cleared once caught up.
    rejoining: tokio::sync::watch::Sender<bool>,
    /// What a rejoining replica must hold before it votes again: the first commit index it
    /// heard from a leader that had committed in its own term.
    rejoin_target: Mutex<Option<LogId>>,
    /// Whether a failed write or fsync took the log back to its last durable point: Raft
    /// still counts the entries after it as appended until the group stops on the error.
    discarded: std::sync::atomic::AtomicBool,
}

/// The log storage of one group, over its partition log. Cheap to clone.
#[derive(Clone)]
pub struct LogStore {
    shared: Arc<Shared>,
    flusher: mpsc::Sender<IOFlushed<TypeConfig>>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.shared.dir)
            .finish()
    }
}

impl LogStore {
    /// Opens (recovering) the group stored in `dir`: the partition log in `dir/log` and the raft
    /// state beside it, for the replica that is Raft node `node_id`. Must be called inside a
    /// tokio runtime: it starts the flusher task. Before each flush the log's page cache window
    /// is set from `caching.windows` by whether this replica leads the group. Appends take
    /// their time (for `segment.ms` and the flush interval) from the system clock.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        node_id: NodeId,
        caching: Caching,
    ) -> Result<LogStore, StorageError> {
        Self::open_with_clock(dir, config, node_id, caching, Arc::new(SystemClock))
    }

    /// Opens the group stored in `dir` as [`LogStore::open`] does, with appends taking their
    /// time from `clock` instead of the system clock.
    pub fn open_with_clock(
        dir: &Path,
        config: LogConfig,
        node_id: NodeId,
        caching: Caching,
        clock: Arc<dyn Clock>,
    ) -> Result<LogStore, StorageError> {
        let log = Log::open(&dir.join("log"), config).map_err(|source| StorageError::Log {
            dir: dir.join("log"),
            source,
        })?;
        let state_file = StateFile::new(dir);
        let state_error = |source| StorageError::State {
            dir: dir.to_path_buf(),
            source,
        };
        let mut state = state_file.load().map_err(state_error)?;
        let marked = crate::rejoin::marker_path(dir).exists();
        if marked && state.vote.is_none() && !state.rejoining {
            tracing::warn!(dir = %dir.display(),
                "this replica once recorded a vote but its state is gone: it votes again once it has caught up with its group");
            state.rejoining = true;
            state_file.store(&state).map_err(state_error)?;
        }
        if let Some(durable) = log.recovery().lost_durable
            && !state.rejoining
        {
            tracing::warn!(dir = %dir.display(), log_end = %log.next_index(), durable_through = %durable,
                "the log lost entries it had made durable (damage cut at open): it votes again once it has fetched them from its group");
            state.rejoining = true;
            state_file.store(&state).map_err(state_error)?;
        }
        let (rejoining, _) = tokio::sync::watch::channel(state.rejoining);
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            node_id,
            windows: caching.windows,
            log: Arc::new(RwLock::new(log)),
            clock,
            recent: Mutex::new(Recent {
                budget: caching.recent,
                rewrites: 0,
                entries: VecDeque::new(),
                bytes: 0,
            }),
            state: Mutex::new(state),
            state_file,
            marked: std::sync::atomic::AtomicBool::new(marked),
            rejoining,
            rejoin_target: Mutex::new(None),
            discarded: Default::default(),
        });
        let (flusher, requests) = mpsc::channel(FLUSH_QUEUE_MAX);
        tokio::spawn(flush_loop(shared.clone(), requests));
        Ok(LogStore { shared, flusher })
    }

    /// The partition log, shared with the state machine and the Kafka read path.
    pub fn log(&self) -> Arc<RwLock<Log>> {
        self.shared.log.clone()
    }

    /// The group directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The wall clock the store's appends take their time from.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.shared.clock.clone()
    }

    /// The first index Raft may still read from this log: the one after its purge point.
    /// Raft sends a follower that needs anything older a snapshot instead, so retention and
    /// compaction may only touch entries before it; an entry after it may still be sent to a
    /// lagging follower as it was appended.
    pub fn purged_next_index(&self) -> Index {
        Index(self.state().purged.map_or(0, |p| p.index + 1))
    }

    /// Whether this replica lost its state and has not caught up yet: it must not vote, stand
    /// for election or take leadership (see `rejoin.rs`).
    pub fn rejoining(&self) -> bool {
        *self.shared.rejoining.borrow()
    }

    /// Follows [`LogStore::rejoining`].
    pub fn rejoining_changes(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shared.rejoining.subscribe()
    }

    /// Tells a rejoining replica what a leader of `leader_term` sent it: the leader's commit
    /// index as (term, index). The first commit made in the leader's own term is what the
    /// replica must hold before it votes again; once its flushed log holds it, the replica
    /// has rejoined. Costs nothing for a replica that is not rejoining.
    pub fn heard_from_leader(&self, leader_term: u64, leader_commit: Option<(u64, u64)>) {
        if !self.rejoining() {
            return;
        }
        let Some((term, index)) = leader_commit else {
            return;
        };
        let target = {
            let mut target = self
                .shared
                .rejoin_target
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if target.is_none() && term == leader_term {
                *target = Some(log_id(term, index));
            }
            match *target {
                Some(target) => target,
                None => return,
            }
        };
        let holds = {
            let log = self.read_log();
            let at = Index(target.index);
            log.flushed_next_index() > at
                && (log.first_index() > at
                    || log
                        .entries(at..at.next())
                        .ok()
                        .and_then(|e| e.first().map(|e| e.term.0))
                        == Some(target.leader_id.term))
        };
        if !holds {
            return;
        }
        let mut state = self.state().clone();
        state.rejoining = false;
        if let Err(e) = self.store_state(&state) {
            tracing::warn!(dir = %self.shared.dir.display(), error = %e,
                "cannot record that the replica caught up; it stays out of elections");
            return;
        }
        *self.state() = state;
        self.shared.rejoining.send_replace(false);
        tracing::info!(dir = %self.shared.dir.display(), caught_up_to = %target,
            "the replica caught up with its group and votes again");
    }

    fn state(&self) -> std::sync::MutexGuard<'_, RaftState> {
        // A panic while holding this lock would already have failed the group.
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops the entries kept in memory that were appended more than `max_age` ago. A group
    /// drops them itself as it appends; a broker calls this now and then for groups that went
    /// quiet ([`RECENT_AGE_MAX`]).
    pub fn trim_recent(&self, max_age: Duration) {
        self.recent().trim(Instant::now().checked_sub(max_age));
    }

    /// Payload bytes of the entries kept in memory.
    pub fn recent_bytes(&self) -> usize {
        self.recent().bytes
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.shared.recent.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read_log(&self) -> std::sync::RwLockReadGuard<'_, Log> {
        self.shared.log.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_log(&self) -> std::sync::RwLockWriteGuard<'_, Log> {
        self.shared.log.write().unwrap_or_else(|p| p.into_inner())
    }

    fn log_error(&self, source: LogError) -> io::Error {
        StorageError::Log {
            dir: self.shared.dir.join("log"),
            source,
        }
        .into()
    }

    fn store_state(&self, state: &RaftState) -> io::Result<()> {
        self.shared.state_file.store(state).map_err(|source| {
            StorageError::State {
                dir: self.shared.dir.clone(),
                source,
            }
            .into()
        })
    }
}

/// How often at most the durable mark is written (`strand_log::DurablePoint`): what a replica
/// made durable in the last such interval before a crash is not told apart from a torn tail.
const DURABLE_MARK_EVERY: Duration = Duration::from_secs(1);

/// Makes appends durable: one fsync for everything queued, then the callbacks in order; and
/// at most every [`DURABLE_MARK_EVERY`], or after that long without appends, the log's
/// durable mark.
async fn flush_loop(shared: Arc<Shared>, mut requests: mpsc::Receiver<IOFlushed<TypeConfig>>) {
    let mut waiting = Vec::new();
    let mut marked_at = Instant::now();
    let mut unmarked = None;
    loop {
        let first = match tokio::time::timeout(DURABLE_MARK_EVERY, requests.recv()).await {
            Ok(Some(first)) => first,
            Ok(None) => return,
            // Quiet: what the last flushes made durable is marked now.
            Err(_) => {
                if let Some(point) = unmarked.take() {
                    write_durable_mark(&shared, point).await;
                    marked_at = Instant::now();
                }
                continue;
            }
        };
        waiting.push(first);
        while let Ok(more) = requests.try_recv() {
            waiting.push(more);
        }
        let leading = shared
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .vote
            .is_some_and(|v| v.committed && v.leader_id.voted_for == shared.node_id);
        let handle = {
            let log = shared.log.read().unwrap_or_else(|p| p.into_inner());
            log.set_page_cache_window(if leading {
                shared.windows.leader
            } else {
                shared.windows.follower
            });
            log.sync_handle()
        };
        let point = handle.as_ref().ok().map(|h| h.point());
        let synced = match handle {
            Ok(handle) => tokio::task::spawn_blocking(move || handle.sync())
                .await
                .unwrap_or_else(|e| {
                    Err(LogError::Io {
                        path: PathBuf::new(),
                        source: io::Error::other(e),
                    })
                }),
            Err(e) => Err(e),
        };
        let result = match synced {
            Ok(next_index) => {
                let mut log = shared.log.write().unwrap_or_else(|p| p.into_inner());
                log.mark_flushed(next_index);
                Ok(())
            }
            Err(e) => {
                let mut log = shared.log.write().unwrap_or_else(|p| p.into_inner());
                discard_unflushed(&shared, &mut log);
                shared
                    .recent
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
                Err(e.to_string())
            }
        };
        let flushed = result.is_ok();
        for callback in waiting.drain(..) {
            callback.io_completed(result.clone().map_err(io::Error::other));
        }
        if flushed {
            unmarked = point;
        }
        if marked_at.elapsed() >= DURABLE_MARK_EVERY
            && let Some(point) = unmarked.take()
        {
            write_durable_mark(&shared, point).await;
            marked_at = Instant::now();
        }
    }
}

/// Writes the log's durable mark after the flush that made `point` durable, holding the log
/// shared so no truncation removes entries meanwhile.
async fn write_durable_mark(shared: &Arc<Shared>, point: strand_log::DurablePoint) {
    let shared = shared.clone();
    let written = tokio::task::spawn_blocking(move || {
        let log = shared.log.read().unwrap_or_else(|p| p.into_inner());
        log.write_durable_mark(point)
            .map_err(|e| (shared.dir.clone(), e))
    })
    .await;
    if let Ok(Err((dir, e))) = written {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot write the log's durable mark");
    }
}

/// After a failed write or fsync, takes the log back to what an fsync confirmed
/// (`Log::discard_unflushed`); the group stops on the error and is opened again from disk.
fn discard_unflushed(shared: &Shared, log: &mut Log) {
    let dir = &shared.dir;
    shared.discarded.store(true, Ordering::Relaxed);
    match log.discard_unflushed() {
        Ok(()) => {
            tracing::warn!(dir = %dir.display(), flushed_next_index = %log.flushed_next_index(),
            "a write to the log failed: it is back to what was last made durable")
        }
        Err(e) => tracing::warn!(dir = %dir.display(), error = %e,
            "a write to the log failed, and so did cutting it back to what was last made durable"),
    }
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

fn to_entry(e: strand_log::Entry) -> io::Result<Entry> {
    let id = log_id(e.term.0, e.index.0);
    let payload = match e.kind {
        EntryKind::Data => EntryPayload::Normal(Batch(Bytes::from(e.payload))),
        EntryKind::Blank => EntryPayload::Blank,
        EntryKind::Membership => {
            let membership = serde_json::from_slice(&e.payload).map_err(|err| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("membership entry {} is not readable: {err}", e.index),
                )
            })?;
            EntryPayload::Membership(membership)
        }
    };
    Ok(Entry::new(id, payload))
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        let purged = self.state().purged;
        let purged_next = purged.map_or(0, |p| p.index + 1);
        let (start, wanted_end) = bounds(&range);
        let log = self.read_log();
        let start = start.max(purged_next);
        let end = wanted_end.min(log.next_index().0);
        if self.shared.discarded.load(Ordering::Relaxed)
            && wanted_end != u64::MAX
            && wanted_end > end
            && start < wanted_end
        {
            // Raft asks for entries it was told were appended, and they are gone: a write or
            // fsync failed and the log went back to its last durable point
            // (`Log::discard_unflushed`). Answering with fewer (as a read past the end is
            // answered otherwise) would let the state machine skip them, or hand a follower a
            // short log; the error stops the group, which reopens and catches up.
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "entries {end}..{wanted_end} of {} are not in the log: it went back to its \
                     last durable point after a failed write",
                    self.shared.dir.display()
                ),
            ));
        }
        if purged.is_some() && start < end && start < log.first_index().0 {
            // Once Raft has purged, the log holds everything after the purge point (retention
            // and compaction stay below it). Entries missing there were removed behind Raft's
            // back: answering with the ones after them would hand a follower a log with a
            // hole, so say what is missing instead. (Before any purge, a log that Raft started
            // past index 0 simply has no earlier entries.)
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "entries {start}..{} of {} were removed before Raft purged them",
                    log.first_index(),
                    self.shared.dir.display()
                ),
            ));
        }
        let start = start.max(log.first_index().0);
        if start >= end {
            return Ok(Vec::new());
        }
        if let Some(entries) = self.recent().get(&log, start, end) {
            return Ok(entries);
        }
        let entries = log
            .entries(Index(start)..Index(end))
            .map_err(|e| self.log_error(e))?;
        drop(log);
        entries.into_iter().map(to_entry).collect()
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        Ok(self.state().vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let purged = self.state().purged;
        let last = self.read_log().last_entry().map(|(i, t)| log_id(t.0, i.0));
        let last_log_id = match (last, purged) {
            (Some(last), Some(purged)) if last.index <= purged.index => Some(purged),
            (Some(last), _) => Some(last),
            (None, purged) => purged,
        };
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        let mut state = self.state().clone();
        state.vote = Some(*vote);
        self.store_state(&state)?;
        *self.state() = state;
        // From the first vote on, a lost state is told apart from a new replica.
        if !self.shared.marked.load(Ordering::Relaxed) {
            crate::rejoin::mark(&self.shared.dir)?;
            self.shared.marked.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        // Kept in memory only: it lets a running group re-apply quickly, and after a restart
        // the leader tells every replica the commit index again.
        self.state().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        Ok(self.state().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let memberships: Vec<Option<Vec<u8>>> = entries
            .iter()
            .map(|e| match &e.payload {
                EntryPayload::Membership(m) => serde_json::to_vec(m).map(Some),
                _ => Ok(None),
            })
            .collect::<Result<_, _>>()
            .map_err(io::Error::other)?;
        let new: Vec<NewEntry<'_>> = entries
            .iter()
            .zip(&memberships)
            .map(|(e, membership)| NewEntry {
                index: Index(e.log_id.index),
                term: Term(e.log_id.leader_id.term),
                payload: match (&e.payload, membership) {
                    (EntryPayload::Normal(batch), _) => Payload::Data(&batch.0),
                    (EntryPayload::Membership(_), Some(bytes)) => Payload::Membership(bytes),
                    _ => Payload::Blank,
                },
            })
            .collect();
        let purged = self.state().purged;
        {
            let mut log = self.write_log();
            if let Some(first) = new.first() {
                // A log that holds nothing past the purge point (a new replica after a snapshot)
                // continues wherever Raft's next entry is.
                let next = log.next_index();
                let behind_purge = purged.is_some_and(|p| next.0 <= p.index + 1);
                let empty = log.first_index() == next;
                if first.index > next && (behind_purge || empty) {
                    let offset = log.next_offset();
                    log.reset(first.index, offset)
                        .map_err(|e| self.log_error(e))?;
                }
            }
            let appended = log.append(&new, self.shared.clock.now_ms());
            let mut recent = self.recent();
            match appended {
                Ok(_) => recent.extend(&log, &entries, Instant::now()),
                Err(e) => {
                    recent.clear();
                    discard_unflushed(&self.shared, &mut log);
                    return Err(self.log_error(e));
                }
            }
        }
        self.flusher
            .send(callback)
            .await
            .map_err(|_| io::Error::other("the group's flusher has stopped"))
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        let last_kept = last_log_id.map(|id| Index(id.index));
        self.write_log()
            .truncate_after(last_kept)
            .map_err(|e| self.log_error(e))
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        let mut state = self.state().clone();
        if state.purged.is_some_and(|p| p.index >= log_id.index) {
            return Ok(());
        }
        state.purged = Some(log_id);
        self.store_state(&state)?;
        *self.state() = state;
        Ok(())
    }
}
