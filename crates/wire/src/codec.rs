//! A tiny big-endian codec for binary bodies; every read is bounds-checked, so nothing a
//! peer sends can make it panic. `proto` uses it too, for the encrypted layers.

/// Why a byte string could not be decoded. The peer sent it, so nothing here panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("input ended early (needed {needed} more bytes)")]
    Truncated { needed: usize },
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
    #[error("invalid {0}")]
    Invalid(&'static str),
}

pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated { needed: n - self.buf.len() });
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub fn finish(self) -> Result<(), DecodeError> {
        match self.buf.len() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

impl Reader<'_> {
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    /// A `u16`-length-prefixed byte string of at most `max` bytes.
    pub fn bytes16(&mut self, max: usize) -> Result<&[u8], DecodeError> {
        let len = usize::from(self.u16()?);
        if len > max {
            return Err(DecodeError::Invalid("field length"));
        }
        self.take(len)
    }

    /// A `u32`-length-prefixed byte string of at most `max` bytes.
    pub fn bytes32(&mut self, max: usize) -> Result<&[u8], DecodeError> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(DecodeError::Invalid("field length"));
        }
        self.take(len)
    }

    /// A `u16`-length-prefixed UTF-8 string of at most `max` bytes.
    pub fn str16(&mut self, max: usize) -> Result<String, DecodeError> {
        let bytes = self.bytes16(max)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Invalid("utf-8 text"))
    }
}

/// Appends big-endian fields to a buffer; the inverse of [`Reader`].
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// Writes at most `u16::MAX` bytes; callers validate lengths before encoding.
    pub fn bytes16(&mut self, bytes: &[u8]) -> &mut Self {
        let n = bytes.len().min(usize::from(u16::MAX));
        self.u16(n as u16).raw(&bytes[..n])
    }

    pub fn bytes32(&mut self, bytes: &[u8]) -> &mut Self {
        self.u32(bytes.len() as u32).raw(bytes)
    }
}
