//! Failpoints: disk errors a test injects into one broker's files, through the `fail` crate.
//! They are compiled in only with the `failpoints` feature, which only test builds turn on;
//! without it [`injected`] is always `None` and costs nothing.
//!
//! A test turns one on with `fail::cfg(name, "return(FRAGMENT)")`: only files whose path
//! contains `FRAGMENT` fail (without an argument, every file), so one broker of a cluster that
//! shares the test's process can be given a failing disk. `fail`'s counts and probabilities
//! (`3*return(…)`, `10%return(…)`) count every file that passes the point.
//!
//! | failpoint | where | error |
//! |---|---|---|
//! | `log::write` | appending entries to a segment | ENOSPC, as a full disk |
//! | `log::fsync` | making a segment's appends durable | EIO, as a failing disk |
//! | `raft::state` | saving a Raft group's state file, its vote (`strand-raft`) | EIO |
//! | `raft::lease_renewal` | a partition leader renewing its quorum lease before a write (`strand-node`); the argument is a topic name, not a path | the renewal is skipped |
//! | `controller::metadata_voters` | the controller changing the metadata group's voters (`strand-server`); the argument is a fragment of the controller's data directory | the change waits (`strand_node::failpoints::holds`) |

use std::io;
use std::path::Path;

/// The error a failpoint injects.
#[derive(Debug, Clone, Copy)]
pub enum DiskError {
    /// ENOSPC: no space left on the device.
    Full,
    /// EIO: the device failed.
    Failing,
}

/// The error failpoint `name` injects into an operation on the file at `path`, if the
/// failpoint is on for that file.
pub fn injected(name: &str, path: &Path, error: DiskError) -> Option<io::Error> {
    #[cfg(feature = "failpoints")]
    {
        let applies = fail::eval(name, |fragment| {
            fragment.is_none_or(|fragment| path.to_string_lossy().contains(fragment.as_str()))
        })?;
        let errno = match error {
            DiskError::Full => rustix::io::Errno::NOSPC,
            DiskError::Failing => rustix::io::Errno::IO,
        };
        applies.then(|| io::Error::from_raw_os_error(errno.raw_os_error()))
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = (name, path, error);
        None
    }
}
