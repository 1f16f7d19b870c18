//! Avro's binary encoding for the generated types: what the generated `Encode`/`Decode` impls
//! call. Records are their fields in schema order; `long`/`int` are zigzag varints; strings are
//! a length and UTF-8 bytes; `["null", T]` is a branch index then the value; arrays are blocks
//! of items ending with an empty block. Decoding checks everything (truncation, overlong
//! numbers, an `int` outside 32 bits, lengths beyond the input, invalid UTF-8, unknown
//! branches) and never allocates more than the input could hold.

use std::fmt;

use uuid::Uuid;

/// Writes a value in Avro's binary encoding.
pub trait Encode {
    fn encode(&self, out: &mut Vec<u8>);
}

/// Reads a value in Avro's binary encoding, written with exactly the schema of its type.
pub trait Decode: Sized {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// Bytes that are not a datum of the expected schema, and where in it reading failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    message: String,
    /// Field names from the innermost out.
    path: Vec<&'static str>,
}

impl DecodeError {
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), path: Vec::new() }
    }

    /// The same error, as met inside `field`.
    pub fn within(mut self, field: &'static str) -> Self {
        self.path.push(field);
        self
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            let path: Vec<&str> = self.path.iter().rev().copied().collect();
            write!(f, "{}: ", path.join("."))?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for DecodeError {}

/// A cursor over a datum.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// A zigzag varint of at most ten bytes.
    pub fn long(&mut self) -> Result<i64, DecodeError> {
        let (mut z, mut shift) = (0u64, 0u32);
        loop {
            let (&byte, rest) = self.bytes.split_first().ok_or_else(|| DecodeError::new("truncated number"))?;
            self.bytes = rest;
            if shift == 63 && byte > 1 {
                return Err(DecodeError::new("number longer than 64 bits"));
            }
            z |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
            }
            shift += 7;
        }
    }

    fn int(&mut self) -> Result<i32, DecodeError> {
        let n = self.long()?;
        i32::try_from(n).map_err(|_| DecodeError::new(format!("{n} is out of range for an int")))
    }

    /// A length, checked against what is left of the input.
    fn len(&mut self) -> Result<usize, DecodeError> {
        let n = self.long()?;
        usize::try_from(n)
            .ok()
            .filter(|&len| len <= self.bytes.len())
            .ok_or_else(|| DecodeError::new(format!("length {n} does not fit the {} bytes left", self.bytes.len())))
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.len()?;
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }

    fn str(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes()?).map_err(|e| DecodeError::new(format!("not UTF-8: {e}")))
    }
}

/// Writes `n` as a zigzag varint.
pub fn write_long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Reads a field of a record, naming it in the error.
pub fn field<T: Decode>(r: &mut Reader<'_>, name: &'static str) -> Result<T, DecodeError> {
    T::decode(r).map_err(|e| e.within(name))
}

/// Reads a whole datum: nothing may be left over.
pub fn decode<T: Decode>(datum: &[u8]) -> Result<T, DecodeError> {
    let mut r = Reader::new(datum);
    let value = T::decode(&mut r)?;
    if r.is_empty() { Ok(value) } else { Err(DecodeError::new(format!("{} bytes left over", r.bytes.len()))) }
}

impl Encode for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl Decode for bool {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (&byte, rest) = r.bytes.split_first().ok_or_else(|| DecodeError::new("truncated boolean"))?;
        r.bytes = rest;
        match byte {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(DecodeError::new(format!("{other} is not a boolean"))),
        }
    }
}

impl Encode for i32 {
    fn encode(&self, out: &mut Vec<u8>) {
        write_long(out, i64::from(*self));
    }
}

impl Decode for i32 {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.int()
    }
}

impl Encode for i64 {
    fn encode(&self, out: &mut Vec<u8>) {
        write_long(out, *self);
    }
}

impl Decode for i64 {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.long()
    }
}

impl Encode for String {
    fn encode(&self, out: &mut Vec<u8>) {
        write_long(out, self.len() as i64);
        out.extend_from_slice(self.as_bytes());
    }
}

impl Decode for String {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.str().map(str::to_owned)
    }
}

/// The `uuid` logical type: a string in the hyphenated, lower-case form.
impl Encode for Uuid {
    fn encode(&self, out: &mut Vec<u8>) {
        write_long(out, 36);
        out.extend_from_slice(self.hyphenated().encode_lower(&mut Uuid::encode_buffer()).as_bytes());
    }
}

impl Decode for Uuid {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Uuid::try_parse_ascii(r.bytes()?).map_err(|e| DecodeError::new(format!("not a UUID: {e}")))
    }
}

/// `["null", T]`.
impl<T: Encode> Encode for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => write_long(out, 0),
            Some(value) => {
                write_long(out, 1);
                value.encode(out);
            }
        }
    }
}

impl<T: Decode> Decode for Option<T> {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.long()? {
            0 => Ok(None),
            1 => T::decode(r).map(Some),
            other => Err(DecodeError::new(format!("no union branch at index {other}"))),
        }
    }
}

/// One block with every item (what apache-avro writes too), then the empty block.
impl<T: Encode> Encode for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        if !self.is_empty() {
            write_long(out, self.len() as i64);
            for item in self {
                item.encode(out);
            }
        }
        write_long(out, 0);
    }
}

/// Any number of blocks; a negative count is followed by the block's size in bytes. Every item
/// of the contract's arrays takes at least one byte, so a count beyond the bytes left is
/// refused before anything is allocated for it.
impl<T: Decode> Decode for Vec<T> {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut items = Vec::new();
        loop {
            let count = r.long()?;
            if count == 0 {
                return Ok(items);
            }
            if count < 0 {
                r.long()?;
            }
            let count =
                usize::try_from(count.unsigned_abs()).ok().filter(|&n| n <= r.bytes.len()).ok_or_else(|| {
                    DecodeError::new(format!("{count} items do not fit the {} bytes left", r.bytes.len()))
                })?;
            items.reserve(count);
            for _ in 0..count {
                items.push(T::decode(r)?);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn longs_are_zigzag_varints() {
        for (n, bytes) in [(0, vec![0]), (-1, vec![1]), (1, vec![2]), (-64, vec![127]), (64, vec![128, 1])] {
            let mut out = Vec::new();
            write_long(&mut out, n);
            assert_eq!(out, bytes, "{n}");
            assert_eq!(Reader::new(&out).long(), Ok(n));
        }
    }

    #[test]
    fn malformed_input_is_an_error_never_a_panic_or_a_huge_allocation() {
        let cases: [(&[u8], &str); 6] = [
            (&[], "truncated"),
            (&[0x80], "truncated"),
            (&[0xff; 11], "longer than 64 bits"),
            (&[72, b'x'], "does not fit"),
            // Claims 2^62 items in three bytes.
            (&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], "do not fit"),
            (&[4, 0xff, 0xfe], "not UTF-8"),
        ];
        for (bytes, expected) in cases {
            let error = match expected {
                "do not fit" => decode::<Vec<String>>(bytes).unwrap_err(),
                _ => decode::<String>(bytes).unwrap_err(),
            };
            assert!(error.to_string().contains(expected), "{bytes:?}: {error}");
        }
        assert!(decode::<i32>(&[0x80, 0x80, 0x80, 0x80, 0x10]).unwrap_err().to_string().contains("out of range"));
        assert!(decode::<bool>(&[2]).is_err());
        assert!(decode::<Option<i64>>(&[4]).unwrap_err().to_string().contains("no union branch"));
        assert!(decode::<i64>(&[0, 0]).unwrap_err().to_string().contains("left over"));
    }

    #[test]
    fn errors_name_the_field_path() {
        let error = DecodeError::new("bad").within("email").within("user");
        assert_eq!(error.to_string(), "user.email: bad");
    }

    proptest! {
        #[test]
        fn every_long_round_trips(n in any::<i64>()) {
            let mut out = Vec::new();
            n.encode(&mut out);
            prop_assert!(out.len() <= 10);
            prop_assert_eq!(decode::<i64>(&out), Ok(n));
        }

        #[test]
        fn arrays_of_strings_round_trip(items in proptest::collection::vec("\\PC{0,20}", 0..20)) {
            let mut out = Vec::new();
            items.encode(&mut out);
            prop_assert_eq!(decode::<Vec<String>>(&out), Ok(items));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode::<Vec<Option<String>>>(&bytes);
            let _ = decode::<Uuid>(&bytes);
        }
    }
}
