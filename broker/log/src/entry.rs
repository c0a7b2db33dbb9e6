//! The on-disk format of segment headers and log entries.
//!
//! A segment file starts with a 32-byte header naming its first index and first offset, so even
//! an empty segment knows where the log continues. Then entries follow back to back:
//!
//! ```text
//! entry header (48 bytes, little-endian)
//!   0  u32 crc32c of bytes 4..48 and of the payload
//!   4  u32 payload length
//!   8  u64 raft index
//!  16  u64 raft term
//!  24  u8  kind (1 data, 2 membership, 3 blank)
//!  25  u8  format version (1)
//!  26  u16 reserved, zero
//!  28  i64 first offset
//!  36  u32 offset count (0 for non-data entries)
//!  40  i64 max timestamp (-1 for non-data entries)
//! payload
//! ```

use crate::types::{EntryKind, Index, Offset, Term};

/// Size of an entry header.
pub const ENTRY_HEADER_LEN: usize = 48;
/// Size of a segment file header.
pub const SEGMENT_HEADER_LEN: usize = 32;
const SEGMENT_MAGIC: &[u8; 8] = b"STRNDSEG";
const FORMAT_VERSION: u8 = 1;

/// The header of one entry, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryHeader {
    /// Stored checksum.
    pub crc: u32,
    /// Payload length in bytes.
    pub payload_len: u32,
    /// Raft index.
    pub index: Index,
    /// Raft term.
    pub term: Term,
    /// What the payload is.
    pub kind: EntryKind,
    /// First Kafka offset of the entry (the next offset for non-data entries).
    pub first_offset: Offset,
    /// How many offsets the entry takes.
    pub offset_count: u32,
    /// Largest record timestamp, -1 when none.
    pub max_timestamp: i64,
}

impl EntryHeader {
    /// Total size on disk: header plus payload.
    pub fn stored_len(&self) -> u64 {
        ENTRY_HEADER_LEN as u64 + u64::from(self.payload_len)
    }

    /// The offset after this entry.
    pub fn next_offset(&self) -> Offset {
        self.first_offset.plus(self.offset_count)
    }

    /// Encodes the header with the checksum of itself and `payload`.
    pub fn encode(&self, payload: &[u8]) -> [u8; ENTRY_HEADER_LEN] {
        self.encode_parts(payload, &[])
    }

    /// Like [`EntryHeader::encode`], for a payload held in two parts (`head` then `tail`), so
    /// a batch whose first bytes were stamped need not be copied whole to be checksummed.
    pub fn encode_parts(&self, head: &[u8], tail: &[u8]) -> [u8; ENTRY_HEADER_LEN] {
        let mut h = [0u8; ENTRY_HEADER_LEN];
        h[4..8].copy_from_slice(&self.payload_len.to_le_bytes());
        h[8..16].copy_from_slice(&self.index.0.to_le_bytes());
        h[16..24].copy_from_slice(&self.term.0.to_le_bytes());
        h[24] = self.kind.to_byte();
        h[25] = FORMAT_VERSION;
        h[28..36].copy_from_slice(&self.first_offset.0.to_le_bytes());
        h[36..40].copy_from_slice(&self.offset_count.to_le_bytes());
        h[40..48].copy_from_slice(&self.max_timestamp.to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c_append(crc32c::crc32c(&h[4..]), head), tail);
        h[0..4].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Decodes a header without checking the checksum (that needs the payload).
    pub fn decode(h: &[u8; ENTRY_HEADER_LEN]) -> Result<EntryHeader, &'static str> {
        let u32_at = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[at..at + 8]);
            u64::from_le_bytes(b)
        };
        if h[25] != FORMAT_VERSION {
            return Err("unknown entry format version");
        }
        let kind = EntryKind::from_byte(h[24]).ok_or("unknown entry kind")?;
        Ok(EntryHeader {
            crc: u32_at(0),
            payload_len: u32_at(4),
            index: Index(u64_at(8)),
            term: Term(u64_at(16)),
            kind,
            first_offset: Offset(u64_at(28) as i64),
            offset_count: u32_at(36),
            max_timestamp: u64_at(40) as i64,
        })
    }

    /// Whether the stored checksum matches this header's bytes and `payload`.
    pub fn crc_matches(&self, raw: &[u8; ENTRY_HEADER_LEN], payload: &[u8]) -> bool {
        crc32c::crc32c_append(crc32c::crc32c(&raw[4..]), payload) == self.crc
    }
}

/// Encodes a segment header for a segment whose first entry will be `index` at `offset`.
pub fn encode_segment_header(index: Index, offset: Offset) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[0..8].copy_from_slice(SEGMENT_MAGIC);
    h[8] = FORMAT_VERSION;
    h[16..24].copy_from_slice(&index.0.to_le_bytes());
    h[24..32].copy_from_slice(&offset.0.to_le_bytes());
    let crc = crc32c::crc32c(&h[16..]);
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Decodes a segment header into (first index, first offset).
pub fn decode_segment_header(
    h: &[u8; SEGMENT_HEADER_LEN],
) -> Result<(Index, Offset), &'static str> {
    if &h[0..8] != SEGMENT_MAGIC {
        return Err("not a strand segment (bad magic)");
    }
    if h[8] != FORMAT_VERSION {
        return Err("unknown segment format version");
    }
    let crc = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
    if crc != crc32c::crc32c(&h[16..]) {
        return Err("segment header checksum mismatch");
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[16..24]);
    let index = Index(u64::from_le_bytes(b));
    b.copy_from_slice(&h[24..32]);
    Ok((index, Offset(i64::from_le_bytes(b))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_header_round_trips_and_detects_flips() {
        let payload = b"payload bytes";
        let header = EntryHeader {
            crc: 0,
            payload_len: payload.len() as u32,
            index: Index(42),
            term: Term(3),
            kind: EntryKind::Data,
            first_offset: Offset(1000),
            offset_count: 5,
            max_timestamp: 1_700_000_000_000,
        };
        let raw = header.encode(payload);
        let decoded = EntryHeader::decode(&raw).unwrap();
        assert!(decoded.crc_matches(&raw, payload));
        assert_eq!(decoded.index, Index(42));
        assert_eq!(decoded.next_offset(), Offset(1005));
        assert!(!decoded.crc_matches(&raw, b"payload bytez"));
    }

    #[test]
    fn segment_header_round_trips() {
        let raw = encode_segment_header(Index(7), Offset(99));
        assert_eq!(decode_segment_header(&raw), Ok((Index(7), Offset(99))));
        let mut bad = raw;
        bad[20] ^= 1;
        assert!(decode_segment_header(&bad).is_err());
    }
}
