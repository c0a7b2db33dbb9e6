//! Kafka RecordBatch v2: reading its header, checking it, stamping offsets, and record access.
//!
//! The log stores batches byte for byte. Only `baseOffset` and `partitionLeaderEpoch`, which lie
//! outside the batch CRC, are ever rewritten in place.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};

use crate::error::BatchError;

const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORDS_COUNT: usize = 57;
/// Size of the fixed RecordBatch v2 header.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before the `batchLength` field's coverage starts.
const LENGTH_PREFIX: usize = 12;

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_LOG_APPEND_TIME: i16 = 1 << 3;
const ATTR_TRANSACTIONAL: i16 = 1 << 4;
const ATTR_CONTROL: i16 = 1 << 5;

/// The fixed header of a RecordBatch v2, as parsed from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// `baseOffset` as stored.
    pub base_offset: i64,
    /// `partitionLeaderEpoch` as stored.
    pub partition_leader_epoch: i32,
    /// `attributes`: compression, timestamp type, transactional and control bits.
    pub attributes: i16,
    /// `lastOffsetDelta`: the batch spans `lastOffsetDelta + 1` offsets.
    pub last_offset_delta: i32,
    /// `baseTimestamp`.
    pub base_timestamp: i64,
    /// `maxTimestamp`.
    pub max_timestamp: i64,
    /// `producerId`, -1 for none.
    pub producer_id: i64,
    /// `producerEpoch`.
    pub producer_epoch: i16,
    /// `baseSequence`.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub records_count: i32,
}

fn i16_at(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn i32_at(bytes: &[u8], at: usize) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    i32::from_be_bytes(b)
}

fn i64_at(bytes: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    i64::from_be_bytes(b)
}

impl BatchHeader {
    /// Parses and checks the header of exactly one batch (`bytes` is the whole batch).
    /// The CRC is not checked here; see [`verify_crc`].
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
        if bytes.len() < BATCH_HEADER_LEN {
            return Err(BatchError::TooShort(bytes.len()));
        }
        let magic = bytes[MAGIC] as i8;
        if magic != 2 {
            return Err(BatchError::Magic(magic));
        }
        let declared = i64::from(i32_at(bytes, BATCH_LENGTH)) + LENGTH_PREFIX as i64;
        if declared != bytes.len() as i64 {
            return Err(BatchError::Length {
                declared,
                actual: bytes.len(),
            });
        }
        let header = BatchHeader {
            base_offset: i64_at(bytes, BASE_OFFSET),
            partition_leader_epoch: i32_at(bytes, PARTITION_LEADER_EPOCH),
            attributes: i16_at(bytes, ATTRIBUTES),
            last_offset_delta: i32_at(bytes, LAST_OFFSET_DELTA),
            base_timestamp: i64_at(bytes, BASE_TIMESTAMP),
            max_timestamp: i64_at(bytes, MAX_TIMESTAMP),
            producer_id: i64_at(bytes, PRODUCER_ID),
            producer_epoch: i16_at(bytes, PRODUCER_EPOCH),
            base_sequence: i32_at(bytes, BASE_SEQUENCE),
            records_count: i32_at(bytes, RECORDS_COUNT),
        };
        if header.last_offset_delta < 0 {
            return Err(BatchError::Field {
                field: "lastOffsetDelta",
                value: header.last_offset_delta.into(),
            });
        }
        if header.records_count < 0 {
            return Err(BatchError::Field {
                field: "recordsCount",
                value: header.records_count.into(),
            });
        }
        Ok(header)
    }

    /// How many offsets the batch takes: `lastOffsetDelta + 1`.
    pub fn offset_count(&self) -> u32 {
        // parse() rejected negative deltas, so this cannot wrap.
        self.last_offset_delta as u32 + 1
    }

    /// The compression codec of the records.
    pub fn compression(&self) -> Compression {
        match self.attributes & ATTR_COMPRESSION_MASK {
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            _ => Compression::None,
        }
    }

    /// Whether the batch is part of a transaction or holds control records;
    /// compaction leaves such batches whole.
    pub fn is_transactional_or_control(&self) -> bool {
        self.attributes & (ATTR_TRANSACTIONAL | ATTR_CONTROL) != 0
    }
}

/// Checks the batch CRC (CRC32C over `attributes` to the end).
pub fn verify_crc(bytes: &[u8]) -> Result<(), BatchError> {
    if bytes.len() < BATCH_HEADER_LEN {
        return Err(BatchError::TooShort(bytes.len()));
    }
    let stored = i32_at(bytes, CRC) as u32;
    let computed = crc32c::crc32c(&bytes[ATTRIBUTES..]);
    if stored != computed {
        return Err(BatchError::Crc { stored, computed });
    }
    Ok(())
}

/// Bytes at the start of a batch that [`stamp`] may change: `baseOffset`, `batchLength`
/// (unchanged) and `partitionLeaderEpoch`. The rest of a stored batch is the produced bytes.
pub const STAMPED_PREFIX_LEN: usize = PARTITION_LEADER_EPOCH + 4;

/// Writes the offset and leader epoch the log assigned into the batch.
/// Both fields lie outside the batch CRC, so the batch stays valid.
pub fn stamp(bytes: &mut [u8], base_offset: i64, leader_epoch: i32) {
    bytes[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    bytes[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4]
        .copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Decodes (and decompresses) every record of one batch.
pub fn decode_records(bytes: &[u8]) -> Result<Vec<Record>, BatchError> {
    let mut buf = Bytes::copy_from_slice(bytes);
    RecordBatchDecoder::decode(&mut buf)
        .map(|set| set.records)
        .map_err(|e| BatchError::Records(e.to_string()))
}

/// Encodes records that came out of one batch back into one batch with the same codec,
/// producer fields and timestamp type.
pub fn encode_records(original: &BatchHeader, records: &[Record]) -> Result<Vec<u8>, BatchError> {
    encode_records_with(original, records, original.compression())
}

/// Re-encodes a whole batch with another codec, keeping its records, offsets, timestamps,
/// producer fields and timestamp type (a topic's `compression.type` other than `producer`).
pub fn recompress(bytes: &[u8], compression: Compression) -> Result<Vec<u8>, BatchError> {
    let header = BatchHeader::parse(bytes)?;
    let records = decode_records(bytes)?;
    encode_records_with(&header, &records, compression)
}

/// Marks the batch's timestamps as the broker's (`LogAppendTime`): sets the timestamp-type
/// attribute and `maxTimestamp`, which clients then report for every record, and re-seals the
/// CRC. The batch must be at least a header long.
pub fn set_log_append_time(bytes: &mut [u8], now_ms: i64) {
    let attributes = i16_at(bytes, ATTRIBUTES) | ATTR_LOG_APPEND_TIME;
    bytes[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    bytes[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[ATTRIBUTES..]);
    bytes[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

fn encode_records_with(
    original: &BatchHeader,
    records: &[Record],
    compression: Compression,
) -> Result<Vec<u8>, BatchError> {
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    // Without a producer id the base sequence must stay -1; the encoder derives it from the
    // first record, so renumber the sequences as if the batch started at -1.
    let renumbered: Vec<Record>;
    let records = if original.producer_id < 0 {
        let min_offset = records.iter().map(|r| r.offset).min().unwrap_or(0);
        renumbered = records
            .iter()
            .map(|r| Record {
                sequence: (r.offset - min_offset) as i32 - 1,
                ..r.clone()
            })
            .collect();
        &renumbered[..]
    } else {
        records
    };
    RecordBatchEncoder::encode(&mut buf, records, &options)
        .map_err(|e| BatchError::Records(e.to_string()))?;
    let mut bytes = buf.to_vec();
    // The encoder does not carry the timestamp-type bit; restore it and re-seal the CRC.
    if original.attributes & ATTR_LOG_APPEND_TIME != 0 && bytes.len() >= BATCH_HEADER_LEN {
        let attributes = i16_at(&bytes, ATTRIBUTES) | ATTR_LOG_APPEND_TIME;
        bytes[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
        let crc = crc32c::crc32c(&bytes[ATTRIBUTES..]);
        bytes[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
    Ok(bytes)
}

/// A record to build a batch from: key, value (None is a tombstone) and timestamp.
pub type RecordSpec<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, i64);

/// Builds an uncompressed batch of `(key, value, timestamp)` records starting at offset 0.
/// For tests, benchmarks and tools that need real batches.
pub fn build_batch(records: &[RecordSpec<'_>]) -> Vec<u8> {
    build_batch_with(Compression::None, records)
}

/// Like [`build_batch`] with a compression codec.
pub fn build_batch_with(compression: Compression, records: &[RecordSpec<'_>]) -> Vec<u8> {
    // No producer id: the batch's base sequence must come out as -1.
    build(compression, (-1, -1, -1), records)
}

/// Like [`build_batch`], written by an idempotent producer: its id, its epoch and the
/// sequence number of the first record.
pub fn build_producer_batch(producer: (i64, i16, i32), records: &[RecordSpec<'_>]) -> Vec<u8> {
    build(Compression::None, producer, records)
}

fn build(
    compression: Compression,
    (producer_id, producer_epoch, base_sequence): (i64, i16, i32),
    records: &[RecordSpec<'_>],
) -> Vec<u8> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value, timestamp))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: kafka_protocol::records::TimestampType::Creation,
            offset: i as i64,
            sequence: base_sequence.wrapping_add(i as i32),
            timestamp: *timestamp,
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    // Encoding records built in memory with a compiled-in codec cannot fail.
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encode test batch");
    buf.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_batch_parses_and_keeps_crc_after_stamping() {
        let mut batch = build_batch(&[(Some(b"k"), Some(b"v"), 10), (None, Some(b"w"), 12)]);
        let header = BatchHeader::parse(&batch).unwrap();
        assert_eq!(header.offset_count(), 2);
        assert_eq!(header.max_timestamp, 12);
        verify_crc(&batch).unwrap();
        stamp(&mut batch, 1000, 7);
        verify_crc(&batch).unwrap();
        let header = BatchHeader::parse(&batch).unwrap();
        assert_eq!(header.base_offset, 1000);
        assert_eq!(header.partition_leader_epoch, 7);
    }

    #[test]
    fn recompressed_batches_keep_records_and_producer_fields() {
        let records = [
            (Some(&b"k"[..]), Some(&b"v1"[..]), 10),
            (None, Some(&b"v2"[..]), 12),
        ];
        let gzip = build_batch_with(Compression::Gzip, &records);
        let mut producer = BatchHeader::parse(&gzip).unwrap();
        // As an idempotent producer's batch.
        let mut decoded = decode_records(&gzip).unwrap();
        for (i, record) in decoded.iter_mut().enumerate() {
            record.producer_id = 42;
            record.producer_epoch = 3;
            record.sequence = 7 + i as i32;
        }
        producer.producer_id = 42;
        let idempotent = encode_records(&producer, &decoded).unwrap();
        for (codec, attribute) in [(Compression::Zstd, 4), (Compression::None, 0)] {
            let out = recompress(&idempotent, codec).unwrap();
            verify_crc(&out).unwrap();
            let header = BatchHeader::parse(&out).unwrap();
            assert_eq!(header.attributes & ATTR_COMPRESSION_MASK, attribute);
            assert_eq!(
                (
                    header.producer_id,
                    header.producer_epoch,
                    header.base_sequence
                ),
                (42, 3, 7)
            );
            assert_eq!((header.offset_count(), header.max_timestamp), (2, 12));
            let values: Vec<_> = decode_records(&out)
                .unwrap()
                .into_iter()
                .map(|r| (r.key, r.value, r.timestamp))
                .collect();
            assert_eq!(
                values,
                [
                    (
                        Some(Bytes::from_static(b"k")),
                        Some(Bytes::from_static(b"v1")),
                        10
                    ),
                    (None, Some(Bytes::from_static(b"v2")), 12)
                ]
            );
        }
    }

    #[test]
    fn log_append_time_marks_the_batch_and_keeps_it_valid() {
        let mut batch = build_batch_with(Compression::Lz4, &[(None, Some(b"v"), 5)]);
        set_log_append_time(&mut batch, 1_700_000_000_000);
        verify_crc(&batch).unwrap();
        let header = BatchHeader::parse(&batch).unwrap();
        assert_eq!(
            header.attributes & ATTR_LOG_APPEND_TIME,
            ATTR_LOG_APPEND_TIME
        );
        assert_eq!(header.compression(), Compression::Lz4);
        assert_eq!(header.max_timestamp, 1_700_000_000_000);
        let records = decode_records(&batch).unwrap();
        assert_eq!(
            records[0].timestamp_type,
            kafka_protocol::records::TimestampType::LogAppend
        );
    }

    #[test]
    fn bad_batches_are_rejected_with_reasons() {
        let batch = build_batch(&[(None, Some(b"v"), 1)]);
        assert_eq!(
            BatchHeader::parse(&batch[..10]),
            Err(BatchError::TooShort(10))
        );
        let mut wrong_magic = batch.clone();
        wrong_magic[MAGIC] = 1;
        assert_eq!(BatchHeader::parse(&wrong_magic), Err(BatchError::Magic(1)));
        let mut flipped = batch.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        assert!(matches!(verify_crc(&flipped), Err(BatchError::Crc { .. })));
        let mut longer = batch.clone();
        longer.push(0);
        assert!(matches!(
            BatchHeader::parse(&longer),
            Err(BatchError::Length { .. })
        ));
    }
}
