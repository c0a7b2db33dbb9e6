//! Fuzz targets, run as tests with random inputs (`STRAND_FUZZ_ITERATIONS` of them, 20,000 by
//! default; a tenth of that for the targets that write files) and under libFuzzer by `cargo bolero test --package strand-log --test fuzz
//! <name>` for long runs: record batches from any bytes, and a log recovered from any bytes on
//! disk. None may panic; a recovered log must read back whole.

mod common;

use std::sync::OnceLock;

use common::*;
use strand_log::{BatchHeader, Log, LogConfig, Offset, decode_records};

/// Segments of a few entries each, so a few hundred bytes of damage reach several of them.
fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 600,
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

/// Inputs per target when run as a test.
fn iterations() -> usize {
    std::env::var("STRAND_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// Inputs per target that writes a log to disk for each.
fn disk_iterations() -> usize {
    iterations() / 10
}

#[test]
fn record_batches_from_any_bytes() {
    bolero::check!()
        .with_iterations(iterations())
        .for_each(|bytes: &[u8]| {
            if let Ok(header) = BatchHeader::parse(bytes) {
                let _ = header.offset_count();
            }
            let _ = decode_records(bytes);
        });
}

/// A stamped, valid batch with its first bytes replaced by `prefix`: the header fields a
/// parser looks at first, over a real body.
#[test]
fn record_batches_with_any_header() {
    let valid = keyed_batch(0, 3, 20, 1_000);
    bolero::check!()
        .with_iterations(iterations())
        .with_type::<(Vec<u8>, u16)>()
        .for_each(|(prefix, cut)| {
            let mut bytes = valid.clone();
            let n = prefix.len().min(bytes.len());
            bytes[..n].copy_from_slice(&prefix[..n]);
            bytes.truncate(usize::from(*cut).min(bytes.len()).max(1));
            if let Ok(header) = BatchHeader::parse(&bytes) {
                let _ = header.offset_count();
            }
            let _ = decode_records(&bytes);
        });
}

/// The segment files of a small valid log of several segments.
fn template() -> &'static Vec<(String, Vec<u8>)> {
    static TEMPLATE: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), config());
        for i in 0..12 {
            append_batch(&mut log, &keyed_batch(i * 2, 2, 40, 1_000 + i as i64), 0);
        }
        drop(log);
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .map(|p| {
                let name = p.file_name().unwrap().to_str().unwrap().to_string();
                (name, std::fs::read(&p).unwrap())
            })
            .collect();
        files.sort();
        assert!(files.len() >= 3, "the template spans segments");
        files
    })
}

/// Opens whatever is on disk; a log that opens must read back every entry and batch.
fn open_and_read(dir: &std::path::Path) {
    let Ok(log) = Log::open(dir, config()) else {
        return;
    };
    let entries = log
        .entries(log.first_index()..log.next_index())
        .expect("a log that opened reads its entries");
    for pair in entries.windows(2) {
        assert!(pair[0].index < pair[1].index, "indexes increase");
        assert!(
            pair[0].first_offset <= pair[1].first_offset,
            "offsets increase"
        );
    }
    let mut offset = log.log_start_offset();
    while offset < log.next_offset() {
        let read = log
            .read(offset, log.next_offset(), 1 << 16)
            .expect("a log that opened reads its batches");
        if read.batch_count == 0 {
            break;
        }
        assert!(read.next_offset > offset);
        offset = read.next_offset;
    }
    let _ = log.read(Offset(log.next_offset().0), log.next_offset(), 1 << 16);
}

/// A valid log whose files get bytes overwritten, are cut short, or lose a segment: recovery
/// either cuts a torn tail, refuses with an error naming the damage, or opens, and then reads
/// back whole.
#[test]
fn a_log_recovers_from_damaged_segment_files() {
    bolero::check!()
        .with_iterations(disk_iterations())
        .with_type::<(Vec<(u8, u16, u8)>, Option<(u8, u16)>, Option<u8>)>()
        .for_each(|(flips, cut, lost)| {
            let files = template();
            let dir = tempfile::tempdir().unwrap();
            let mut contents: Vec<(String, Vec<u8>)> = files.clone();
            for (file, position, byte) in flips {
                let (_, bytes) = &mut contents[usize::from(*file) % files.len()];
                let at = usize::from(*position) % bytes.len();
                bytes[at] = *byte;
            }
            if let Some((file, len)) = cut {
                let (_, bytes) = &mut contents[usize::from(*file) % files.len()];
                let len = usize::from(*len) % (bytes.len() + 1);
                bytes.truncate(len);
            }
            if let Some(file) = lost {
                contents.remove(usize::from(*file) % files.len());
            }
            for (name, bytes) in &contents {
                std::fs::write(dir.path().join(name), bytes).unwrap();
            }
            open_and_read(dir.path());
        });
}

/// Any bytes at all as a segment file, alone or after a valid one.
#[test]
fn a_log_opens_or_refuses_any_segment_bytes() {
    bolero::check!()
        .with_iterations(disk_iterations())
        .with_type::<(bool, Vec<u8>)>()
        .for_each(|(after_valid, bytes)| {
            let dir = tempfile::tempdir().unwrap();
            let files = template();
            let name = if *after_valid {
                let (first, valid) = &files[0];
                std::fs::write(dir.path().join(first), valid).unwrap();
                // A name past the first segment: the second segment's.
                files[1].0.clone()
            } else {
                files[0].0.clone()
            };
            std::fs::write(dir.path().join(name), bytes).unwrap();
            open_and_read(dir.path());
        });
}
