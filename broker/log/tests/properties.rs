//! Property test: random appends, truncations, flushes, reopens, crashes (a cut at a random
//! byte after the last flush) and torn garbage keep offsets contiguous and every flushed entry
//! readable byte for byte.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use proptest::prelude::*;
use strand_log::{
    ENTRY_HEADER_LEN, EntryKind, FlushPolicy, Index, Log, LogConfig, NewEntry, Offset, Payload,
    SEGMENT_HEADER_LEN, Term, build_batch, stamp,
};

#[derive(Debug, Clone)]
enum Spec {
    Data(usize),
    Membership(usize),
    Blank,
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<Spec>),
    Flush,
    Truncate(u16),
    Reopen,
    Crash(u16),
    Garbage(Vec<u8>),
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        6 => (0usize..8).prop_map(Spec::Data),
        1 => (0usize..40).prop_map(Spec::Membership),
        1 => Just(Spec::Blank),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => prop::collection::vec(spec(), 1..6).prop_map(Op::Append),
        2 => Just(Op::Flush),
        2 => any::<u16>().prop_map(Op::Truncate),
        1 => Just(Op::Reopen),
        2 => any::<u16>().prop_map(Op::Crash),
        1 => prop::collection::vec(any::<u8>(), 1..200).prop_map(Op::Garbage),
    ]
}

/// Eight batches of 1–4 records with values up to 300 bytes.
fn pool() -> Vec<Vec<u8>> {
    (0..8)
        .map(|i| {
            let value = vec![b'a' + i as u8; i * 40];
            let key = format!("key-{i}");
            let records: Vec<strand_log::RecordSpec<'_>> = (0..1 + i % 4)
                .map(|r| {
                    (
                        Some(key.as_bytes()),
                        Some(&value[..]),
                        1_000 + (i * 10 + r) as i64,
                    )
                })
                .collect();
            build_batch(&records)
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    term: Term,
    kind: EntryKind,
    first_offset: Offset,
    offset_count: u32,
    stored: Vec<u8>,
}

struct Harness {
    dir: tempfile::TempDir,
    config: LogConfig,
    log: Log,
    model: Vec<Expected>,
    term: u64,
    pool: Vec<Vec<u8>>,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes_max: 2048,
            index_interval_bytes: 128,
            flush: FlushPolicy::Never,
            ..LogConfig::default()
        };
        let log = Log::open(dir.path(), config.clone()).unwrap();
        Harness {
            dir,
            config,
            log,
            model: Vec::new(),
            term: 1,
            pool: pool(),
        }
    }

    fn end_offset(&self) -> Offset {
        self.model
            .last()
            .map_or(Offset(0), |e| e.first_offset.plus(e.offset_count))
    }

    fn reopen(&mut self) {
        let log = Log::open(self.dir.path(), self.config.clone());
        self.log = log.unwrap_or_else(|e| panic!("reopen failed: {e}"));
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Append(specs) => {
                let membership: Vec<Vec<u8>> = specs
                    .iter()
                    .map(|s| match s {
                        Spec::Membership(n) => vec![7u8; *n],
                        _ => Vec::new(),
                    })
                    .collect();
                let mut entries = Vec::new();
                let mut offset = self.end_offset();
                let base = self.model.len();
                for (i, s) in specs.iter().enumerate() {
                    let index = Index((base + i) as u64);
                    let term = Term(self.term);
                    let (payload, expected) = match s {
                        Spec::Data(b) => {
                            let batch = &self.pool[*b];
                            let count = strand_log::BatchHeader::parse(batch)
                                .unwrap()
                                .offset_count();
                            let mut stored = batch.clone();
                            stamp(&mut stored, offset.0, term.as_leader_epoch());
                            let e = Expected {
                                term,
                                kind: EntryKind::Data,
                                first_offset: offset,
                                offset_count: count,
                                stored,
                            };
                            (Payload::Data(batch), e)
                        }
                        Spec::Membership(_) => (
                            Payload::Membership(&membership[i]),
                            Expected {
                                term,
                                kind: EntryKind::Membership,
                                first_offset: offset,
                                offset_count: 0,
                                stored: membership[i].clone(),
                            },
                        ),
                        Spec::Blank => (
                            Payload::Blank,
                            Expected {
                                term,
                                kind: EntryKind::Blank,
                                first_offset: offset,
                                offset_count: 0,
                                stored: Vec::new(),
                            },
                        ),
                    };
                    offset = offset.plus(expected.offset_count);
                    entries.push(NewEntry {
                        index,
                        term,
                        payload,
                    });
                    self.model.push(expected);
                }
                self.log.append(&entries, 0).unwrap();
            }
            Op::Flush => self.log.flush(0).unwrap(),
            Op::Truncate(at) => {
                let keep = *at as usize % (self.model.len() + 1);
                let last_kept = keep.checked_sub(1).map(|i| Index(i as u64));
                self.log.truncate_after(last_kept).unwrap();
                self.model.truncate(keep);
                self.term += 1;
            }
            Op::Reopen => self.reopen(),
            Op::Crash(at) => {
                let active = self.log.segments().pop().unwrap();
                let flushed = self.log.flushed_next_index().0 as usize;
                assert!(
                    flushed as u64 >= active.base_index.0,
                    "closed segments are flushed"
                );
                let flushed_pos = SEGMENT_HEADER_LEN as u64
                    + self.model[active.base_index.0 as usize..flushed]
                        .iter()
                        .map(|e| (ENTRY_HEADER_LEN + e.stored.len()) as u64)
                        .sum::<u64>();
                let span = active.size_bytes - flushed_pos;
                let cut = flushed_pos + span * u64::from(*at) / u64::from(u16::MAX);
                let file = OpenOptions::new().write(true).open(&active.path).unwrap();
                file.set_len(cut).unwrap();
                drop(file);
                self.reopen();
                let next = self.log.next_index().0 as usize;
                assert!(
                    next >= flushed,
                    "flushed entry {flushed} lost after a cut at byte {cut}"
                );
                self.model.truncate(next);
            }
            Op::Garbage(bytes) => {
                let active = self.log.segments().pop().unwrap();
                let file = OpenOptions::new().write(true).open(&active.path).unwrap();
                file.write_all_at(bytes, active.size_bytes).unwrap();
                drop(file);
                self.reopen();
            }
        }
    }

    fn check(&self) {
        let log = &self.log;
        assert_eq!(log.next_index(), Index(self.model.len() as u64));
        assert_eq!(log.next_offset(), self.end_offset());
        let entries = log.entries(Index(0)..log.next_index()).unwrap();
        assert_eq!(entries.len(), self.model.len());
        for (e, m) in entries.iter().zip(&self.model) {
            let got = Expected {
                term: e.term,
                kind: e.kind,
                first_offset: e.first_offset,
                offset_count: e.offset_count,
                stored: e.payload.clone(),
            };
            assert_eq!(&got, m, "entry {}", e.index);
        }
        let all: Vec<u8> = self
            .model
            .iter()
            .filter(|m| m.kind == EntryKind::Data)
            .flat_map(|m| m.stored.clone())
            .collect();
        let read = log.read(Offset(0), log.next_offset(), usize::MAX).unwrap();
        assert_eq!(read.bytes, all);
        // Any offset comes back in the whole batch that holds it, first.
        for m in self.model.iter().filter(|m| m.kind == EntryKind::Data) {
            let last = Offset(m.first_offset.0 + i64::from(m.offset_count) - 1);
            let one = log.read(last, log.next_offset(), 1).unwrap();
            assert_eq!(one.bytes, m.stored);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn offsets_stay_contiguous_and_flushed_entries_survive(ops in prop::collection::vec(op(), 1..40)) {
        let mut h = Harness::new();
        for op in &ops {
            h.apply(op);
            h.check();
        }
    }
}
