//! The records of `__consumer_offsets` in Kafka's own format, so tools that read the topic
//! (Kafka's `OffsetsMessageFormatter` and `GroupMetadataMessageFormatter`, Burrow, kafka-ui)
//! understand it: a key is a version (the record type: 0 or 1 an offset commit, 2 a group's
//! metadata) and the key's fields; a value is its own version and the value's fields.
//!
//! Written: `OffsetCommitKey` (version 1), `OffsetCommitValue` version 3, `GroupMetadataKey`
//! (version 2) and `GroupMetadataValue` version 3. Read: every version Kafka defines (values
//! 0 to 4, 4 being the first flexible one). Records of an earlier Strand, whose keys and
//! values were JSON, are still read, so offsets committed before an upgrade are kept.

use bytes::Bytes;

/// A committed offset as stored in `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub(crate) struct Committed {
    /// The offset.
    pub(crate) offset: i64,
    /// The leader epoch the client saw at that offset.
    pub(crate) leader_epoch: i32,
    /// The client's metadata, at most `offset.metadata.max.bytes`.
    pub(crate) metadata: String,
    /// When it was committed, in ms since the epoch.
    pub(crate) commit_ms: i64,
}

/// A group's membership as stored in `__consumer_offsets` (Kafka's `GroupMetadataValue`):
/// written when a generation's assignments are handed out, when the group empties and when a
/// static member is replaced, and read by a new coordinator, so members keep their
/// generation and assignment across a coordinator failover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupRecord {
    /// The protocol type (`consumer`).
    pub(crate) protocol_type: String,
    /// The generation.
    pub(crate) generation: i32,
    /// The generation's protocol (the assignor), if it has members.
    pub(crate) protocol: Option<String>,
    /// The leader's member id.
    pub(crate) leader: Option<String>,
    /// When the group entered its state, in ms since the epoch (-1: unknown).
    pub(crate) state_ms: i64,
    /// The members.
    pub(crate) members: Vec<MemberRecord>,
}

/// One member in a [`GroupRecord`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberRecord {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) session_timeout_ms: i32,
    /// Its metadata for the generation's protocol.
    pub(crate) subscription: Bytes,
    pub(crate) assignment: Bytes,
}

/// What a key of `__consumer_offsets` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    /// A group's committed offset of a partition.
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    /// A group's metadata.
    Group(String),
}

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;

/// The key of `group`'s committed offset of `topic`/`partition`.
pub(crate) fn offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + group.len() + topic.len());
    out.extend_from_slice(&OFFSET_KEY_VERSION.to_be_bytes());
    put_str(&mut out, group);
    put_str(&mut out, topic);
    out.extend_from_slice(&partition.to_be_bytes());
    out
}

/// The key of `group`'s metadata.
pub(crate) fn group_key(group: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + group.len());
    out.extend_from_slice(&GROUP_KEY_VERSION.to_be_bytes());
    put_str(&mut out, group);
    out
}

/// A committed offset's value.
pub(crate) fn offset_value(committed: &Committed) -> Vec<u8> {
    let mut out = Vec::with_capacity(26 + committed.metadata.len());
    out.extend_from_slice(&OFFSET_VALUE_VERSION.to_be_bytes());
    out.extend_from_slice(&committed.offset.to_be_bytes());
    out.extend_from_slice(&committed.leader_epoch.to_be_bytes());
    put_str(&mut out, &committed.metadata);
    out.extend_from_slice(&committed.commit_ms.to_be_bytes());
    out
}

/// A group's metadata value.
pub(crate) fn group_value(group: &GroupRecord) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&GROUP_VALUE_VERSION.to_be_bytes());
    put_str(&mut out, &group.protocol_type);
    out.extend_from_slice(&group.generation.to_be_bytes());
    put_nullable(&mut out, group.protocol.as_deref());
    put_nullable(&mut out, group.leader.as_deref());
    out.extend_from_slice(&group.state_ms.to_be_bytes());
    out.extend_from_slice(&(group.members.len() as i32).to_be_bytes());
    for m in &group.members {
        put_str(&mut out, &m.member_id);
        put_nullable(&mut out, m.instance_id.as_deref());
        put_str(&mut out, &m.client_id);
        put_str(&mut out, &m.client_host);
        out.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
        out.extend_from_slice(&m.session_timeout_ms.to_be_bytes());
        put_bytes(&mut out, &m.subscription);
        put_bytes(&mut out, &m.assignment);
    }
    out
}

/// Strings are at most `i16::MAX` bytes in Kafka's format; group ids, topic names and
/// metadata are bounded well below that before they get here, so the cut never happens.
fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = s.len().min(i16::MAX as usize);
    out.extend_from_slice(&(len as i16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..len]);
}

fn put_nullable(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => out.extend_from_slice(&(-1i16).to_be_bytes()),
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as i32).to_be_bytes());
    out.extend_from_slice(b);
}

/// Reads a key; `None` for a record type this broker does not know (a KIP-848 group's
/// records, say) or bytes that do not decode.
pub(crate) fn decode_key(key: &[u8]) -> Option<Key> {
    if key.first() == Some(&b'[') {
        return legacy_key(key);
    }
    let mut r = Reader::new(key, false);
    match r.i16()? {
        0 | 1 => Some(Key::Offset {
            group: r.string()?,
            topic: r.string()?,
            partition: r.i32()?,
        }),
        2 => Some(Key::Group(r.string()?)),
        _ => None,
    }
}

/// Reads an offset's value, of any version Kafka defines.
pub(crate) fn decode_offset(value: &[u8]) -> Option<Committed> {
    if value.first() == Some(&b'{') {
        return serde_json::from_slice(value).ok();
    }
    let version = i16::from_be_bytes([*value.first()?, *value.get(1)?]);
    if !(0..=4).contains(&version) {
        return None;
    }
    let mut r = Reader::new(&value[2..], version >= 4);
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_ms = r.i64()?;
    Some(Committed {
        offset,
        leader_epoch,
        metadata,
        commit_ms,
    })
}

/// Reads a group's metadata value, of any version Kafka defines.
pub(crate) fn decode_group(value: &[u8]) -> Option<GroupRecord> {
    let version = i16::from_be_bytes([*value.first()?, *value.get(1)?]);
    if !(0..=4).contains(&version) {
        return None;
    }
    let mut r = Reader::new(&value[2..], version >= 4);
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.nullable()?;
    let leader = r.nullable()?;
    let state_ms = if version >= 2 { r.i64()? } else { -1 };
    let count = r.array_len()?;
    let mut members = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let member_id = r.string()?;
        let instance_id = if version >= 3 { r.nullable()? } else { None };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout_ms = r.i32()?;
        let subscription = r.bytes()?;
        let assignment = r.bytes()?;
        r.tagged_fields()?;
        members.push(MemberRecord {
            member_id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms: if rebalance_timeout_ms < 0 {
                session_timeout_ms
            } else {
                rebalance_timeout_ms
            },
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Some(GroupRecord {
        protocol_type,
        generation,
        protocol,
        leader,
        state_ms,
        members,
    })
}

/// The topics a `consumer` member subscribes to, from its protocol metadata (Kafka's
/// `ConsumerProtocolSubscription`, any version: they all start with the topics).
pub(crate) fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut r = Reader::new(metadata, false);
    let version = r.i16()?;
    if version < 0 {
        return None;
    }
    let count = r.array_len()?;
    let mut topics = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        topics.push(r.string()?);
    }
    Some(topics)
}

/// The keys an earlier Strand wrote: `["offset", group, topic, partition]` in JSON.
fn legacy_key(key: &[u8]) -> Option<Key> {
    let (kind, group, topic, partition) =
        serde_json::from_slice::<(String, String, String, i32)>(key).ok()?;
    (kind == "offset").then_some(Key::Offset {
        group,
        topic,
        partition,
    })
}

/// Reads Kafka's fixed-width and (for flexible versions) compact encodings, refusing
/// anything that runs past the end.
struct Reader<'a> {
    rest: &'a [u8],
    flexible: bool,
}

impl<'a> Reader<'a> {
    fn new(rest: &'a [u8], flexible: bool) -> Self {
        Reader { rest, flexible }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes(b.try_into().unwrap_or_default()))
    }

    fn i64(&mut self) -> Option<i64> {
        self.take(8)
            .map(|b| i64::from_be_bytes(b.try_into().unwrap_or_default()))
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..35).step_by(7) {
            let byte = *self.take(1)?.first()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// A length: -1 for null.
    fn len(&mut self, wide: bool) -> Option<i64> {
        if self.flexible {
            Some(self.varint()? as i64 - 1)
        } else if wide {
            self.i32().map(i64::from)
        } else {
            self.i16().map(i64::from)
        }
    }

    fn nullable(&mut self) -> Option<Option<String>> {
        let len = self.len(false)?;
        if len < 0 {
            return Some(None);
        }
        let raw = self.take(usize::try_from(len).ok()?)?;
        String::from_utf8(raw.to_vec()).ok().map(Some)
    }

    fn string(&mut self) -> Option<String> {
        self.nullable()?
    }

    fn bytes(&mut self) -> Option<Bytes> {
        let len = self.len(true)?;
        if len < 0 {
            return Some(Bytes::new());
        }
        self.take(usize::try_from(len).ok()?)
            .map(Bytes::copy_from_slice)
    }

    fn array_len(&mut self) -> Option<usize> {
        let len = self.len(true)?;
        usize::try_from(len.max(0)).ok()
    }

    /// Skips a flexible version's tagged fields.
    fn tagged_fields(&mut self) -> Option<()> {
        if !self.flexible {
            return Some(());
        }
        for _ in 0..self.varint()? {
            self.varint()?;
            let size = self.varint()?;
            self.take(usize::try_from(size).ok()?)?;
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_commit_is_written_as_kafka_writes_it() {
        // OffsetCommitKey v1: group "g", topic "t", partition 2.
        assert_eq!(
            offset_key("g", "t", 2),
            [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 2]
        );
        let committed = Committed {
            offset: 5,
            leader_epoch: 7,
            metadata: "m".into(),
            commit_ms: 9,
        };
        // OffsetCommitValue v3: offset, leader epoch, metadata, commit timestamp.
        let mut expect = vec![0, 3];
        expect.extend_from_slice(&5i64.to_be_bytes());
        expect.extend_from_slice(&7i32.to_be_bytes());
        expect.extend_from_slice(&[0, 1, b'm']);
        expect.extend_from_slice(&9i64.to_be_bytes());
        assert_eq!(offset_value(&committed), expect);
        assert_eq!(decode_offset(&expect), Some(committed));
        assert_eq!(
            decode_key(&offset_key("g", "t", 2)),
            Some(Key::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 2
            })
        );
        assert_eq!(decode_key(&group_key("g")), Some(Key::Group("g".into())));
    }

    #[test]
    fn every_offset_value_version_kafka_defines_is_read() {
        // v1 (with the expire timestamp) has no leader epoch.
        let mut v1 = vec![0, 1];
        v1.extend_from_slice(&42i64.to_be_bytes());
        v1.extend_from_slice(&[0, 0]);
        v1.extend_from_slice(&3i64.to_be_bytes());
        v1.extend_from_slice(&(-1i64).to_be_bytes());
        let read = decode_offset(&v1).unwrap();
        assert_eq!(
            (read.offset, read.leader_epoch, read.commit_ms),
            (42, -1, 3)
        );
        // v4 is flexible: compact strings (length + 1) and tagged fields.
        let mut v4 = vec![0, 4];
        v4.extend_from_slice(&42i64.to_be_bytes());
        v4.extend_from_slice(&6i32.to_be_bytes());
        v4.extend_from_slice(&[3, b'h', b'i']);
        v4.extend_from_slice(&3i64.to_be_bytes());
        v4.push(0);
        let read = decode_offset(&v4).unwrap();
        assert_eq!((read.offset, read.leader_epoch), (42, 6));
        assert_eq!(read.metadata, "hi");
        // An earlier Strand's JSON records.
        let key = serde_json::to_vec(&("offset", "g", "t", 1)).unwrap();
        assert_eq!(
            decode_key(&key),
            Some(Key::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 1
            })
        );
        let value = br#"{"offset":8,"leader_epoch":1,"metadata":"","commit_ms":2}"#;
        assert_eq!(decode_offset(value).unwrap().offset, 8);
    }

    #[test]
    fn a_group_record_round_trips_and_truncated_bytes_are_refused() {
        let group = GroupRecord {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("m-1".into()),
            state_ms: 1234,
            members: vec![MemberRecord {
                member_id: "m-1".into(),
                instance_id: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let value = group_value(&group);
        assert_eq!(decode_group(&value), Some(group));
        for cut in 0..value.len() {
            assert_eq!(decode_group(&value[..cut]), None, "cut at {cut}");
        }
        assert_eq!(decode_key(&[0, 9, 0, 0]), None);
        assert_eq!(decode_key(&[0]), None);
    }
}
