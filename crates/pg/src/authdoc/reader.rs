//! A path-tracking reader over a JSON document: every accessor knows the field path, so
//! an error names the session and exactly which field is wrong.

use serde_json::Value;

use super::bytes::revive;
use super::error::{AuthDocError, Problem, type_name};

/// A position in a document: the value there (if any) and how we got to it.
#[derive(Clone)]
pub struct Field<'a> {
    session: &'a str,
    path: String,
    value: Option<&'a Value>,
}

impl<'a> Field<'a> {
    pub fn root(session: &'a str, value: &'a Value) -> Self {
        Self { session, path: String::new(), value: Some(value) }
    }

    pub fn path(&self) -> &str {
        if self.path.is_empty() { "(root)" } else { &self.path }
    }

    pub fn error(&self, problem: Problem) -> AuthDocError {
        AuthDocError { session: self.session.to_string(), path: self.path().to_string(), problem }
    }

    /// The child `key`; the parent must be an object when present.
    pub fn get(&self, key: &str) -> Result<Field<'a>, AuthDocError> {
        let path = if self.path.is_empty() { key.to_string() } else { format!("{}.{key}", self.path) };
        let value = match self.value {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => o.get(key),
            Some(other) => return Err(self.error(Problem::WrongType { expected: "object", found: type_name(other) })),
        };
        Ok(Field { session: self.session, path, value })
    }

    /// Present and not null.
    pub fn is_present(&self) -> bool {
        !matches!(self.value, None | Some(Value::Null))
    }

    /// `Some(self)` when present, for optional sub-objects.
    pub fn optional(self) -> Option<Field<'a>> {
        self.is_present().then_some(self)
    }

    fn required(&self) -> Result<&'a Value, AuthDocError> {
        match self.value {
            None | Some(Value::Null) => Err(self.error(Problem::Missing)),
            Some(v) => Ok(v),
        }
    }

    pub fn bytes(&self) -> Result<Vec<u8>, AuthDocError> {
        revive(self.required()?).map_err(|p| self.error(p))
    }

    pub fn bytes_opt(&self) -> Result<Option<Vec<u8>>, AuthDocError> {
        if self.is_present() { self.bytes().map(Some) } else { Ok(None) }
    }

    pub fn bytes_exact<const N: usize>(&self) -> Result<[u8; N], AuthDocError> {
        let b = self.bytes()?;
        let found = b.len();
        b.try_into().map_err(|_| self.error(Problem::WrongLength { expected: len_name(N), found }))
    }

    /// A 32-byte Curve25519 public key, also accepted with libsignal's 0x05 type prefix.
    pub fn public_key(&self) -> Result<[u8; 32], AuthDocError> {
        let b = self.bytes()?;
        let raw = match b.len() {
            33 if b[0] == 5 => &b[1..],
            _ => &b[..],
        };
        raw.try_into()
            .map_err(|_| self.error(Problem::WrongLength { expected: "32 (or 33 with the 0x05 prefix)", found: b.len() }))
    }

    /// Integers as JSON numbers or decimal strings (protobuf longs arrive as strings).
    pub fn i64(&self) -> Result<i64, AuthDocError> {
        match self.required()? {
            Value::Number(n) => n.as_i64().ok_or_else(|| self.error(Problem::Invalid("not an integer in range"))),
            Value::String(s) => s.trim().parse().map_err(|_| self.error(Problem::Invalid("not a decimal integer"))),
            other => Err(self.error(Problem::WrongType { expected: "integer", found: type_name(other) })),
        }
    }

    pub fn i64_or(&self, default: i64) -> Result<i64, AuthDocError> {
        if self.is_present() { self.i64() } else { Ok(default) }
    }

    pub fn u32(&self) -> Result<u32, AuthDocError> {
        u32::try_from(self.i64()?).map_err(|_| self.error(Problem::Invalid("out of range for an unsigned 32-bit integer")))
    }

    pub fn u32_or(&self, default: u32) -> Result<u32, AuthDocError> {
        if self.is_present() { self.u32() } else { Ok(default) }
    }

    pub fn i32_or(&self, default: i32) -> Result<i32, AuthDocError> {
        let v = self.i64_or(i64::from(default))?;
        i32::try_from(v).map_err(|_| self.error(Problem::Invalid("out of range for a 32-bit integer")))
    }

    pub fn bool_or(&self, default: bool) -> Result<bool, AuthDocError> {
        match self.value {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.error(Problem::WrongType { expected: "boolean", found: type_name(other) })),
        }
    }

    pub fn str(&self) -> Result<&'a str, AuthDocError> {
        match self.required()? {
            Value::String(s) => Ok(s),
            other => Err(self.error(Problem::WrongType { expected: "string", found: type_name(other) })),
        }
    }

    pub fn str_opt(&self) -> Result<Option<&'a str>, AuthDocError> {
        if self.is_present() { self.str().map(Some) } else { Ok(None) }
    }
}

fn len_name(n: usize) -> &'static str {
    match n {
        32 => "32",
        64 => "64",
        _ => "a fixed number of",
    }
}
