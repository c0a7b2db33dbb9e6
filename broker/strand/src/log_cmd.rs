//! `strand log …`: open a partition directory the way a broker does and report what is in it.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use strand_log::{Log, LogConfig, SegmentInfo};

/// Subcommands of `strand log`.
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Open a partition log as a broker would at start-up: check every entry's CRC, cut a torn
    /// tail of the active segment, rebuild missing indexes; then list its segments.
    /// Fails with the file and byte position of any corruption outside the torn tail.
    Check {
        /// The partition's data directory (the one holding `<first-index>.log` files).
        dir: PathBuf,
    },
}

/// Runs a `strand log` subcommand.
pub fn run(command: LogCommand) -> anyhow::Result<()> {
    match command {
        LogCommand::Check { dir } => check(dir),
    }
}

fn check(dir: PathBuf) -> anyhow::Result<()> {
    anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
    let log = Log::open(&dir, LogConfig::default())
        .with_context(|| format!("partition log {} is not usable", dir.display()))?;
    let recovery = log.recovery();
    if let Some(torn) = &recovery.torn_tail {
        println!(
            "cut a torn tail of {} bytes from {} at byte {}: {}",
            torn.bytes_removed,
            torn.path.display(),
            torn.position,
            torn.reason
        );
    }
    for path in &recovery.rebuilt_indexes {
        println!("rebuilt the indexes of {}", path.display());
    }
    for path in &recovery.removed_leftovers {
        println!("removed leftover {}", path.display());
    }
    println!(
        "{:<26} {:>12} {:>12} {:>14} {:>14} {:>12}  state",
        "segment", "first index", "next index", "first offset", "next offset", "bytes"
    );
    for segment in log.segments() {
        print_segment(&segment);
    }
    println!(
        "log start offset {}, log end offset {}, next index {}, {} bytes",
        log.log_start_offset(),
        log.next_offset(),
        log.next_index(),
        log.size_bytes()
    );
    Ok(())
}

fn print_segment(s: &SegmentInfo) {
    let name = s
        .path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    println!(
        "{:<26} {:>12} {:>12} {:>14} {:>14} {:>12}  {}",
        name,
        s.base_index,
        s.next_index,
        s.base_offset,
        s.next_offset,
        s.size_bytes,
        if s.closed { "closed" } else { "active" }
    );
}
