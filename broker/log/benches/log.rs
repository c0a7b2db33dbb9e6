//! Throughput of the partition log: appends of 1 KiB records in 16 KiB and 256 KiB batches with
//! and without an fsync per append, and sequential reads from the page cache.

// criterion_group! generates undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strand_log::{
    FlushPolicy, Index, Log, LogConfig, NewEntry, Offset, Payload, Term, build_batch,
};

const RECORD_BYTES: usize = 1024;
/// Start a fresh log once this much has been written, to bound the disk the benchmark uses.
const LOG_BYTES_MAX: u64 = 2 << 30;

fn batch_of(batch_bytes: usize) -> Vec<u8> {
    let value = vec![0x5a; RECORD_BYTES - 40];
    let keys: Vec<String> = (0..batch_bytes / RECORD_BYTES)
        .map(|i| format!("key-{i:08}"))
        .collect();
    let records: Vec<strand_log::RecordSpec<'_>> = keys
        .iter()
        .map(|k| (Some(k.as_bytes()), Some(&value[..]), 1_700_000_000_000))
        .collect();
    build_batch(&records)
}

fn bench_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group.measurement_time(Duration::from_secs(8));
    for (name, flush) in [
        ("flush_never", FlushPolicy::Never),
        ("flush_every_append", FlushPolicy::EveryAppend),
    ] {
        for batch_bytes in [16 << 10, 256 << 10] {
            let batch = batch_of(batch_bytes);
            group.throughput(Throughput::Bytes(batch.len() as u64));
            let id = format!("{name}/{}KiB", batch_bytes >> 10);
            group.bench_function(id, |b| {
                let config = LogConfig {
                    flush,
                    ..LogConfig::default()
                };
                let mut dir = tempfile::tempdir().unwrap();
                let mut log = Log::open(dir.path(), config.clone()).unwrap();
                b.iter_custom(|iters| {
                    let mut elapsed = Duration::ZERO;
                    for _ in 0..iters {
                        if log.size_bytes() > LOG_BYTES_MAX {
                            drop(std::mem::replace(&mut dir, tempfile::tempdir().unwrap()));
                            log = Log::open(dir.path(), config.clone()).unwrap();
                        }
                        let entry = NewEntry {
                            index: log.next_index(),
                            term: Term(1),
                            payload: Payload::Data(&batch),
                        };
                        let start = Instant::now();
                        black_box(log.append(&[entry], 0).unwrap());
                        elapsed += start.elapsed();
                    }
                    elapsed
                });
            });
        }
    }
    group.finish();
}

fn bench_read(c: &mut Criterion) {
    let mut group = c.benchmark_group("read");
    let batch = batch_of(16 << 10);
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush: FlushPolicy::Never,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    let entries = (256 << 20) / batch.len();
    for i in 0..entries {
        let entry = NewEntry {
            index: Index(i as u64),
            term: Term(1),
            payload: Payload::Data(&batch),
        };
        log.append(&[entry], 0).unwrap();
    }
    log.flush(0).unwrap();
    let end = log.next_offset();
    let total: u64 = log.read(Offset(0), end, usize::MAX).unwrap().bytes.len() as u64;
    group.throughput(Throughput::Bytes(total));
    group.sample_size(20);
    group.bench_function("sequential_1MiB_reads/16KiB_batches", |b| {
        b.iter(|| {
            let mut offset = Offset(0);
            while offset < end {
                let batches = log.read(offset, end, 1 << 20).unwrap();
                offset = batches.next_offset;
                black_box(batches.bytes.len());
            }
        });
    });
    group.finish();
}

criterion_group!(benches, bench_append, bench_read);
criterion_main!(benches);
