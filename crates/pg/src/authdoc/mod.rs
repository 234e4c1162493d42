//! Device credentials as one readable JSONB document per session, and a reader that
//! revives bytes in every form found in the wild (see [`bytes`]).
//!
//! Reading is all-or-nothing: a bad document gives an [`AuthDocError`] naming the
//! session and the JSON path of the field, and the caller writes nothing.

pub mod bytes;
mod device;
mod error;
pub mod reader;

pub use bytes::{ByteForm, decode_base64, encode, encode_as, normalize_buffers, revive};
pub use device::{FORMAT, from_document, read_key_pair, to_document};
pub use error::{AuthDocError, Problem};
