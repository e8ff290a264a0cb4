//! Record framing: `[len u32 LE][crc32 u32 LE][body]`.
//!
//! The body holds everything that identifies the event — position, stream
//! version, id, stream name — and the payload, so the checksum covers the
//! identity as well as the data: a record copied to the wrong key, or an index
//! pointing at the wrong record, is caught just like a flipped payload bit.
//!
//! Body layout (fixed part big-endian, then variable part):
//! `position u64 | stream_version u64 | id [16] | stream_len u32 | stream | payload`.

use uuid::Uuid;

use crate::{EventRef, StoreError};

/// Length + checksum header.
pub(crate) const HEADER_LEN: usize = 8;
/// Fixed part of the body before the stream name.
const FIXED_BODY_LEN: usize = 8 + 8 + 16 + 4;

/// Frames one event. The caller guarantees the sizes fit (payload limit and
/// stream name limit keep the body well under `u32::MAX`).
pub(crate) fn encode(
    position: u64,
    stream: &str,
    stream_version: u64,
    id: &Uuid,
    payload: &[u8],
) -> Vec<u8> {
    let body_len = FIXED_BODY_LEN + stream.len() + payload.len();
    let len = u32::try_from(body_len).expect("record size bounded by payload and stream limits");
    let mut buf = Vec::with_capacity(HEADER_LEN + body_len);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&position.to_be_bytes());
    buf.extend_from_slice(&stream_version.to_be_bytes());
    buf.extend_from_slice(id.as_bytes());
    buf.extend_from_slice(&(stream.len() as u32).to_be_bytes());
    buf.extend_from_slice(stream.as_bytes());
    buf.extend_from_slice(payload);
    let crc = crc32fast::hash(&buf[HEADER_LEN..]);
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
    buf
}

/// Total size of the frame starting at `bytes[0]`, if its length field fits
/// in `bytes` (checksum not verified).
pub(crate) fn frame_len(bytes: &[u8]) -> Option<usize> {
    let len = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    let total = HEADER_LEN.checked_add(len)?;
    (total <= bytes.len()).then_some(total)
}

fn corrupt(position: u64, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        position,
        reason: reason.into(),
    }
}

/// Verifies and decodes the record stored under key `position`, borrowing
/// from `bytes`.
pub(crate) fn decode(position: u64, bytes: &[u8]) -> Result<EventRef<'_>, StoreError> {
    if bytes.len() < HEADER_LEN + FIXED_BODY_LEN {
        return Err(corrupt(
            position,
            format!("record of {} bytes is shorter than its header", bytes.len()),
        ));
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    let body = &bytes[HEADER_LEN..];
    if len != body.len() {
        return Err(corrupt(
            position,
            format!(
                "length field says {len} bytes but the body has {}",
                body.len()
            ),
        ));
    }
    let actual = crc32fast::hash(body);
    if actual != crc {
        return Err(corrupt(
            position,
            format!("checksum mismatch (stored {crc:08x}, computed {actual:08x})"),
        ));
    }
    let stored_position = u64::from_be_bytes(body[0..8].try_into().expect("8 bytes"));
    if stored_position != position {
        return Err(corrupt(
            position,
            format!("record carries position {stored_position}"),
        ));
    }
    let stream_version = u64::from_be_bytes(body[8..16].try_into().expect("8 bytes"));
    let id = Uuid::from_bytes(body[16..32].try_into().expect("16 bytes"));
    let stream_len = u32::from_be_bytes(body[32..36].try_into().expect("4 bytes")) as usize;
    let rest = &body[FIXED_BODY_LEN..];
    if stream_len > rest.len() {
        return Err(corrupt(
            position,
            format!("stream name length {stream_len} exceeds the record"),
        ));
    }
    let (stream, payload) = rest.split_at(stream_len);
    let stream =
        std::str::from_utf8(stream).map_err(|_| corrupt(position, "stream name is not UTF-8"))?;
    Ok(EventRef {
        position,
        stream,
        stream_version,
        id,
        payload,
    })
}

/// Largest snapshot state that fits the `u32` length field.
pub(crate) const MAX_SNAPSHOT_STATE: usize = u32::MAX as usize - 40;

/// Snapshot framing: `[len u32 LE][crc32 u32 LE][position u64 BE][hash 32][state]`.
pub(crate) fn encode_snapshot(position: u64, hash: &[u8; 32], state: &[u8]) -> Vec<u8> {
    let body_len = 8 + 32 + state.len();
    let len = u32::try_from(body_len).expect("snapshot size checked by the caller");
    let mut buf = Vec::with_capacity(HEADER_LEN + body_len);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&position.to_be_bytes());
    buf.extend_from_slice(hash);
    buf.extend_from_slice(state);
    let crc = crc32fast::hash(&buf[HEADER_LEN..]);
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
    buf
}

/// Verifies and decodes a snapshot: `(position, hash, state)`.
pub(crate) fn decode_snapshot(bytes: &[u8]) -> Result<(u64, [u8; 32], &[u8]), String> {
    if bytes.len() < HEADER_LEN + 40 {
        return Err(format!(
            "snapshot of {} bytes is shorter than its header",
            bytes.len()
        ));
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    let body = &bytes[HEADER_LEN..];
    if len != body.len() {
        return Err(format!(
            "length field says {len} bytes but the body has {}",
            body.len()
        ));
    }
    let actual = crc32fast::hash(body);
    if actual != crc {
        return Err(format!(
            "checksum mismatch (stored {crc:08x}, computed {actual:08x})"
        ));
    }
    let position = u64::from_be_bytes(body[0..8].try_into().expect("8 bytes"));
    let hash: [u8; 32] = body[8..40].try_into().expect("32 bytes");
    Ok((position, hash, &body[40..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_flipped_byte_is_caught() {
        let id = Uuid::from_u128(42);
        let rec = encode(7, "interaction-1", 3, &id, b"payload bytes");
        let ev = decode(7, &rec).unwrap();
        assert_eq!(ev.position, 7);
        assert_eq!(ev.stream, "interaction-1");
        assert_eq!(ev.stream_version, 3);
        assert_eq!(ev.id, id);
        assert_eq!(ev.payload, b"payload bytes");
        // Stored under the wrong key: caught by the position inside the body.
        assert!(matches!(
            decode(8, &rec),
            Err(StoreError::Corrupt { position: 8, .. })
        ));
        for i in 0..rec.len() {
            let mut bad = rec.clone();
            bad[i] ^= 0x40;
            assert!(
                matches!(
                    decode(7, &bad),
                    Err(StoreError::Corrupt { position: 7, .. })
                ),
                "flip at byte {i} not detected"
            );
        }
        assert!(decode(7, &rec[..rec.len() - 1]).is_err());
    }

    #[test]
    fn snapshot_round_trip_and_corruption() {
        let snap = encode_snapshot(9, &[7; 32], b"state");
        let (p, h, s) = decode_snapshot(&snap).unwrap();
        assert_eq!((p, h, s), (9, [7; 32], &b"state"[..]));
        let mut bad = snap.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(decode_snapshot(&bad).is_err());
    }
}
