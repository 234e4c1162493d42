//! Bytes in JSON, in every form found in the wild, and the one form we write.
//!
//! Written: a standard base64 string (padded). Read, anywhere in a document:
//! - a base64 string (standard or URL-safe alphabet, padded or not);
//! - an array of numbers `[1, 2, 3]` (serde's default for `Vec<u8>`);
//! - `{"type":"Buffer","data":[1,2,3]}` (Node's `Buffer.toJSON`);
//! - `{"type":"Buffer","data":"<base64>"}` (Baileys' `BufferJSON.replacer`, which is what
//!   survives a trip through Postgres JSONB; the seeds lost a production day to it);
//! - `{"buffer":true,"value":"<base64>"}` (older Baileys releases);
//! - `{"0":1,"1":2}` (a `Uint8Array` passed through `JSON.stringify`).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::error::{Problem, type_name};

/// The form we write.
pub fn encode(bytes: &[u8]) -> Value {
    Value::String(STANDARD.encode(bytes))
}

/// The forms bytes take in the wild; `encode_as` writes each (tests and fixtures use it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteForm {
    Base64,
    NumberArray,
    BufferArray,
    BufferBase64,
    Uint8ArrayObject,
}

impl ByteForm {
    pub const ALL: [ByteForm; 5] =
        [ByteForm::Base64, ByteForm::NumberArray, ByteForm::BufferArray, ByteForm::BufferBase64, ByteForm::Uint8ArrayObject];
}

pub fn encode_as(bytes: &[u8], form: ByteForm) -> Value {
    match form {
        ByteForm::Base64 => encode(bytes),
        ByteForm::NumberArray => json!(bytes),
        ByteForm::BufferArray => json!({"type": "Buffer", "data": bytes}),
        ByteForm::BufferBase64 => json!({"type": "Buffer", "data": STANDARD.encode(bytes)}),
        ByteForm::Uint8ArrayObject => Value::Object(bytes.iter().enumerate().map(|(i, b)| (i.to_string(), json!(b))).collect()),
    }
}

/// Decodes base64 in any of the common alphabets and paddings.
pub fn decode_base64(s: &str) -> Result<Vec<u8>, Problem> {
    let s = s.trim();
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        if let Ok(b) = engine.decode(s) {
            return Ok(b);
        }
    }
    Err(Problem::InvalidBase64)
}

fn from_array(items: &[Value]) -> Result<Vec<u8>, Problem> {
    items
        .iter()
        .enumerate()
        .map(|(index, v)| v.as_u64().filter(|n| *n <= 255).map(|n| n as u8).ok_or(Problem::NotAByte { index }))
        .collect()
}

/// True for `{"type":"Buffer","data":...}` and old Baileys' `{"buffer":true,"value":...}`.
pub fn is_buffer_object(v: &Value) -> bool {
    v.as_object().is_some_and(|o| {
        (o.get("type").and_then(Value::as_str) == Some("Buffer") && o.contains_key("data"))
            || (o.get("buffer") == Some(&Value::Bool(true)) && o.contains_key("value"))
    })
}

fn is_uint8array_object(o: &serde_json::Map<String, Value>) -> bool {
    (0..o.len()).all(|i| o.get(&i.to_string()).is_some_and(Value::is_u64))
}

/// Bytes from any accepted form.
pub fn revive(v: &Value) -> Result<Vec<u8>, Problem> {
    match v {
        Value::String(s) => decode_base64(s),
        Value::Array(items) => from_array(items),
        Value::Object(o) if is_buffer_object(v) => match o.get("data").or_else(|| o.get("value")) {
            Some(Value::String(s)) => decode_base64(s),
            Some(Value::Array(items)) => from_array(items),
            Some(other) => {
                Err(Problem::WrongType { expected: "Buffer data as an array or base64 string", found: type_name(other) })
            }
            None => Err(Problem::Missing),
        },
        Value::Object(o) if is_uint8array_object(o) => {
            let items: Vec<Value> = (0..o.len()).map(|i| o[&i.to_string()].clone()).collect();
            from_array(&items)
        }
        other => Err(Problem::WrongType {
            expected: "bytes (base64 string, array of numbers or Buffer object)",
            found: type_name(other),
        }),
    }
}

/// Rewrites every Buffer object nested anywhere in `v` into a base64 string, so a
/// document imported from Baileys reads the same in psql as one we wrote. Arrays of
/// numbers are left alone: without a schema they cannot be told from lists of integers.
pub fn normalize_buffers(v: &Value) -> Result<Value, Problem> {
    Ok(match v {
        _ if is_buffer_object(v) => encode(&revive(v)?),
        Value::Array(items) => Value::Array(items.iter().map(normalize_buffers).collect::<Result<_, _>>()?),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, x)| Ok((k.clone(), normalize_buffers(x)?))).collect::<Result<_, Problem>>()?)
        }
        other => other.clone(),
    })
}
