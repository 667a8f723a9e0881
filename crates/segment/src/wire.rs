//! Bounds-checked big-endian and Kafka varint primitives.
//!
//! Every read goes through [`Reader`], which never slices past its input and
//! reports [`SegmentError::Truncated`] instead.

use crate::SegmentError;

/// A cursor over a byte slice whose reads are all bounds-checked.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Current position from the start of the input.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left to read.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Takes the next `n` bytes.
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], SegmentError> {
        let available = self.remaining();
        if n > available {
            return Err(SegmentError::Truncated {
                what,
                needed: n,
                available,
            });
        }
        let start = self.pos;
        self.pos = start + n;
        self.buf.get(start..self.pos).ok_or(SegmentError::Truncated {
            what,
            needed: n,
            available,
        })
    }

    /// Takes the next `N` bytes as an array.
    pub(crate) fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], SegmentError> {
        let slice = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, SegmentError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn i8(&mut self, what: &'static str) -> Result<i8, SegmentError> {
        Ok(i8::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, SegmentError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i16(&mut self, what: &'static str) -> Result<i16, SegmentError> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, SegmentError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, SegmentError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, SegmentError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64, SegmentError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    /// Reads an unsigned LEB128 value of at most `max_bytes` bytes.
    fn uvarint(&mut self, max_bytes: usize, what: &'static str) -> Result<u64, SegmentError> {
        let mut value: u64 = 0;
        for i in 0..max_bytes {
            let byte = self.u8(what)?;
            // i < 10, so the shift is at most 63; high bits of the last byte
            // that do not fit are dropped, as Kafka's reader does.
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(SegmentError::VarintTooLong { max_bytes })
    }

    /// Reads a Kafka zigzag varint (32-bit, at most 5 bytes).
    pub(crate) fn varint(&mut self, what: &'static str) -> Result<i32, SegmentError> {
        // Truncation to 32 bits is the defined behaviour for the 5th byte.
        let raw = self.uvarint(5, what)? as u32;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    /// Reads a Kafka zigzag varlong (64-bit, at most 10 bytes).
    pub(crate) fn varlong(&mut self, what: &'static str) -> Result<i64, SegmentError> {
        let raw = self.uvarint(10, what)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }
}

/// Appends an unsigned LEB128 value.
fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a Kafka zigzag varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, v: i32) {
    put_uvarint(out, u64::from(((v << 1) ^ (v >> 31)) as u32));
}

/// Appends a Kafka zigzag varlong.
pub(crate) fn put_varlong(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Encoded size of an unsigned LEB128 value.
fn uvarint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Encoded size of a Kafka zigzag varint.
pub(crate) fn varint_len(v: i32) -> usize {
    uvarint_len(u64::from(((v << 1) ^ (v >> 31)) as u32))
}

/// Encoded size of a Kafka zigzag varlong.
pub(crate) fn varlong_len(v: i64) -> usize {
    uvarint_len(((v << 1) ^ (v >> 63)) as u64)
}

/// Overwrites 4 bytes at `at` with `v` big-endian; `false` if out of bounds.
pub(crate) fn patch_u32(buf: &mut [u8], at: usize, v: u32) -> bool {
    match at.checked_add(4).and_then(|end| buf.get_mut(at..end)) {
        Some(dst) => {
            dst.copy_from_slice(&v.to_be_bytes());
            true
        }
        None => false,
    }
}

/// Overwrites 8 bytes at `at` with `v` big-endian; `false` if out of bounds.
pub(crate) fn patch_u64(buf: &mut [u8], at: usize, v: u64) -> bool {
    match at.checked_add(8).and_then(|end| buf.get_mut(at..end)) {
        Some(dst) => {
            dst.copy_from_slice(&v.to_be_bytes());
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip32(v: i32) {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        assert_eq!(out.len(), varint_len(v));
        let mut r = Reader::new(&out);
        assert_eq!(r.varint("t").expect("decodes"), v);
        assert_eq!(r.remaining(), 0);
    }

    fn roundtrip64(v: i64) {
        let mut out = Vec::new();
        put_varlong(&mut out, v);
        assert_eq!(out.len(), varlong_len(v));
        let mut r = Reader::new(&out);
        assert_eq!(r.varlong("t").expect("decodes"), v);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn varint_known_encodings() {
        // Values from Kafka's ByteUtilsTest: zigzag then LEB128.
        let cases: [(i32, &[u8]); 6] = [
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (i32::MIN, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ];
        for (v, bytes) in cases {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out, bytes, "value {v}");
        }
    }

    #[test]
    fn varint_roundtrips_extremes() {
        for v in [0, 1, -1, 63, -64, 64, 8191, -8192, i32::MAX, i32::MIN] {
            roundtrip32(v);
        }
        for v in [0, 1, -1, i64::MAX, i64::MIN, 1 << 40, -(1 << 40)] {
            roundtrip64(v);
        }
    }

    #[test]
    fn varint_rejects_overlong_and_truncated() {
        let mut r = Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
        assert_eq!(r.varint("t"), Err(SegmentError::VarintTooLong { max_bytes: 5 }));
        let mut r = Reader::new(&[0x80]);
        assert!(matches!(r.varint("t"), Err(SegmentError::Truncated { .. })));
        let mut r = Reader::new(&[0xff; 11]);
        assert_eq!(r.varlong("t"), Err(SegmentError::VarintTooLong { max_bytes: 10 }));
    }

    #[test]
    fn reader_bounds() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert!(r.u32("x").is_err());
        assert_eq!(r.u16("x").expect("two bytes"), 0x0102);
        assert!(r.take(2, "x").is_err());
        assert_eq!(r.u8("x").expect("one byte"), 3);
        assert_eq!(r.pos(), 3);
        assert!(r.take(usize::MAX, "x").is_err());
    }
}
