//! `strand log check` against real partition directories.

use std::os::unix::fs::FileExt;
use std::process::Command;

use strand_log::{Log, LogConfig, NewEntry, Payload, Term, build_batch};

fn strand(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strand"))
        .args(args)
        .output()
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.success(), text(out.stdout), text(out.stderr))
}

fn write_log(dir: &std::path::Path, entries: u64) {
    let config = LogConfig {
        segment_bytes_max: 2048,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir, config).unwrap();
    let batch = build_batch(&[(Some(b"k"), Some(&[1u8; 300][..]), 5)]);
    for i in 0..entries {
        let entry = NewEntry {
            index: strand_log::Index(i),
            term: Term(1),
            payload: Payload::Data(&batch),
        };
        log.append(&[entry], 0).unwrap();
    }
}

#[test]
fn log_check_lists_segments_and_offsets() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 12);
    let (ok, stdout, stderr) = strand(&["log", "check", dir.path().to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("00000000000000000000.log"), "{stdout}");
    assert!(
        stdout.contains("log start offset 0, log end offset 12, next index 12"),
        "{stdout}"
    );
}

#[test]
fn log_check_names_the_corrupt_file_and_byte() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 12);
    let first = dir.path().join("00000000000000000000.log");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&first)
        .unwrap();
    // A byte of the first record's value (the value bytes are all 1).
    file.write_all_at(&[0xfe], 32 + 48 + 200).unwrap();
    let (ok, stdout, stderr) = strand(&["log", "check", dir.path().to_str().unwrap()]);
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("00000000000000000000.log at byte 32"),
        "{stderr}"
    );
    assert!(stderr.contains("checksum mismatch"), "{stderr}");
}
