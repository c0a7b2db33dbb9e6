//! The small durable state of a group beside its log: vote, committed log id, purged log id.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{LogId, Vote};

/// What openraft asks a log store to keep besides the entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RaftState {
    /// The vote this node granted or holds; must be durable before a vote is answered.
    pub vote: Option<Vote>,
    /// The last log id known committed, to re-apply up to it after a restart.
    pub committed: Option<LogId>,
    /// Entries up to this log id are behind the last snapshot. The entries themselves stay in
    /// the partition log, which is the data; this is only a marker for Raft.
    pub purged: Option<LogId>,
    /// The replica lost its state while its broker kept its identity, and has not caught up
    /// yet: it neither votes nor stands (`rejoin.rs`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rejoining: bool,
}

/// The file that holds a group's [`RaftState`].
#[derive(Debug)]
pub(crate) struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(dir: &Path) -> StateFile {
        StateFile {
            path: dir.join("raft-state.json"),
        }
    }

    /// Reads the state; a missing file is an empty state, a damaged one an error.
    pub fn load(&self) -> io::Result<RaftState> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is damaged: {e}", self.path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(RaftState::default()),
            Err(e) => Err(e),
        }
    }

    /// Replaces the state durably: temporary file, fsync, rename, fsync of the directory.
    pub fn store(&self, state: &RaftState) -> io::Result<()> {
        use strand_log::failpoints::{DiskError, injected};
        if let Some(e) = injected("raft::state", &self.path, DiskError::Failing) {
            return Err(e);
        }
        let bytes = serde_json::to_vec(state).map_err(io::Error::other)?;
        let tmp = self.path.with_extension("json.tmp");
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_data()?;
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}
