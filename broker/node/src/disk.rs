//! Keeping a full disk from losing data: every broker watches the free space of its data
//! directory, and a partition with a replica on a broker short of space refuses produce
//! (`KAFKA_STORAGE_ERROR`, which clients retry) instead of running a replica into a failed
//! write. Records already accepted stay readable; produce resumes once space is freed.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

/// The reserve a broker keeps free unless configured otherwise: room for segment rolls,
/// snapshots and compaction's rewritten segments.
pub const DEFAULT_DISK_RESERVE_BYTES: u64 = 1 << 30;

/// How often free space is measured.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Free space of the data directory against the reserve this broker keeps.
#[derive(Debug)]
pub struct DiskGuard {
    reserve: AtomicU64,
    free: AtomicU64,
    low: AtomicBool,
}

impl DiskGuard {
    /// A guard keeping `reserve` bytes free.
    pub fn new(reserve: u64) -> DiskGuard {
        DiskGuard {
            reserve: AtomicU64::new(reserve),
            free: AtomicU64::new(u64::MAX),
            low: AtomicBool::new(false),
        }
    }

    /// Whether free space is below the reserve, as last measured.
    pub fn is_low(&self) -> bool {
        self.low.load(Ordering::Relaxed)
    }

    /// Free bytes, as last measured.
    pub fn free(&self) -> u64 {
        self.free.load(Ordering::Relaxed)
    }

    /// The reserve in bytes.
    pub fn reserve(&self) -> u64 {
        self.reserve.load(Ordering::Relaxed)
    }

    /// Changes the reserve; the next measurement applies it.
    pub fn set_reserve(&self, bytes: u64) {
        self.reserve.store(bytes, Ordering::Relaxed);
    }

    /// Measures `dir` now; whether the broker is short of space.
    pub fn measure(&self, dir: &Path) -> bool {
        let Some(free) = free_bytes(dir) else {
            return self.is_low();
        };
        self.free.store(free, Ordering::Relaxed);
        let low = free < self.reserve();
        let was = self.low.swap(low, Ordering::Relaxed);
        if low && !was {
            tracing::error!(dir = %dir.display(), free, reserve = self.reserve(),
                "data directory is nearly full: produce to partitions with a replica here is refused until space is freed");
        } else if was && !low {
            tracing::info!(free, "data directory has space again: produce resumes");
        }
        low
    }
}

/// Bytes an unprivileged process may still write on the file system holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Measures the free space of `dir` until `stop` turns true.
pub async fn run(disk: Arc<DiskGuard>, dir: std::path::PathBuf, mut stop: watch::Receiver<bool>) {
    loop {
        disk.measure(&dir);
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
