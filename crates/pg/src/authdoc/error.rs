//! Errors of the auth-document reader. They name the session and the JSON field path,
//! never the value: documents hold private keys.

/// A document that could not be read; nothing was written because of it.
#[derive(Debug, thiserror::Error)]
#[error("auth document of session {session}: field {path}: {problem}")]
pub struct AuthDocError {
    pub session: String,
    /// JSON path of the offending field, e.g. `signed_pre_key.signature` or `account.details`.
    pub path: String,
    pub problem: Problem,
}

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("missing")]
    Missing,
    #[error("expected {expected}, found {found}")]
    WrongType { expected: &'static str, found: &'static str },
    #[error("invalid base64")]
    InvalidBase64,
    #[error("expected {expected} bytes, found {found}")]
    WrongLength { expected: &'static str, found: usize },
    #[error("element {index} is not a byte (an integer 0 to 255)")]
    NotAByte { index: usize },
    #[error("{0}")]
    Invalid(&'static str),
}

/// The JSON type name used in messages.
pub fn type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}
