//! Outbound messages from a send job's payload. The payload is validated first (a bad
//! payload fails the job permanently with the field named), then turned into a waproto
//! message; the caller sends it with the message id fixed at enqueue.
//!
//! Payloads (`type` defaults to "text"; unknown keys such as `to` or `sim` are ignored):
//! * `{"type":"text","text":"hi","reply_to":"<message id>"}` — `reply_to` quotes a message;
//! * `{"type":"reaction","message_id":"<target id>","emoji":"👍","from_me":false}` — an
//!   empty emoji removes the reaction; `from_me` is looked up when absent;
//! * `{"type":"image"|"document","data":"<base64>"|"url":"https://…","mimetype":…,
//!   "caption":…,"file_name":…,"reply_to":…}` — exactly one of `data` and `url`; a URL
//!   is fetched by `super::fetch` (public addresses only, unless allowed).

use base64::Engine;
use serde_json::Value;
use whatsapp_rust::wacore::proto_helpers::{MessageBuilderExt, build_quote_context, build_reaction_message};
use whatsapp_rust::waproto::whatsapp as wa;

use pgwa_core::wa::SendError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Image,
    Document,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MediaSource {
    Bytes(Vec<u8>),
    Url(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct MediaRequest {
    pub kind: MediaKind,
    pub source: MediaSource,
    pub mimetype: Option<String>,
    pub caption: Option<String>,
    pub file_name: Option<String>,
    pub reply_to: Option<String>,
}

/// A validated send payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Text { text: String, reply_to: Option<String> },
    Reaction { target: String, emoji: String, from_me: Option<bool> },
    Media(MediaRequest),
}

/// The message a reply quotes, resolved from wa.inbox or wa.jobs.
#[derive(Debug, Clone)]
pub struct Quoted {
    pub id: String,
    /// The author of the quoted message (the peer, or our own JID for our messages).
    pub participant: String,
    /// Its text when known; WhatsApp shows it in the quote bubble.
    pub text: Option<String>,
}

fn bad(field: &str, why: impl std::fmt::Display) -> SendError {
    SendError::Permanent(format!("payload.{field}: {why}"))
}

fn opt_str(p: &Value, field: &str) -> Result<Option<String>, SendError> {
    match p.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(field, "must be a string")),
    }
}

fn req_str(p: &Value, field: &str) -> Result<String, SendError> {
    match opt_str(p, field)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(bad(field, "missing or empty")),
    }
}

/// Validates a payload. `max_media_bytes` bounds inline data (URL downloads are bounded
/// again after the fetch).
pub fn parse(p: &Value, max_media_bytes: usize) -> Result<Request, SendError> {
    if !p.is_object() {
        return Err(SendError::Permanent("payload: must be a JSON object".into()));
    }
    let kind = opt_str(p, "type")?.unwrap_or_else(|| "text".into());
    let reply_to = opt_str(p, "reply_to")?.filter(|s| !s.is_empty());
    match kind.as_str() {
        "text" => Ok(Request::Text { text: req_str(p, "text")?, reply_to }),
        "reaction" => {
            let emoji = opt_str(p, "emoji")?.ok_or_else(|| bad("emoji", "missing (use \"\" to remove a reaction)"))?;
            if emoji.chars().count() > 16 {
                return Err(bad("emoji", "must be one emoji (or empty to remove)"));
            }
            let from_me = match p.get("from_me") {
                None | Some(Value::Null) => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(_) => return Err(bad("from_me", "must be true or false")),
            };
            Ok(Request::Reaction { target: req_str(p, "message_id")?, emoji, from_me })
        }
        "image" | "document" => {
            let kind = if kind == "image" { MediaKind::Image } else { MediaKind::Document };
            let source = match (opt_str(p, "data")?, opt_str(p, "url")?) {
                (Some(_), Some(_)) => return Err(bad("data", "give either data or url, not both")),
                (None, None) => return Err(bad("data", "missing: give data (base64) or url")),
                (Some(d), None) => MediaSource::Bytes(decode_base64(&d, max_media_bytes)?),
                (None, Some(u)) => MediaSource::Url(check_url(&u)?),
            };
            let mimetype = opt_str(p, "mimetype")?;
            if let Some(m) = &mimetype {
                if !m.contains('/') {
                    return Err(bad("mimetype", format!("{m:?} is not a MIME type")));
                }
                if kind == MediaKind::Image && !m.starts_with("image/") {
                    return Err(bad("mimetype", format!("{m:?} is not an image type")));
                }
            }
            let req = MediaRequest {
                kind,
                source,
                mimetype,
                caption: opt_str(p, "caption")?,
                file_name: opt_str(p, "file_name")?,
                reply_to,
            };
            if let MediaSource::Bytes(b) = &req.source {
                check_media(&req, b, max_media_bytes)?;
            }
            Ok(Request::Media(req))
        }
        other => Err(bad("type", format!("{other:?} is not one of text, reaction, image, document"))),
    }
}

fn decode_base64(data: &str, max: usize) -> Result<Vec<u8>, SendError> {
    // A cheap bound before decoding: 4 base64 chars carry 3 bytes.
    if data.len() / 4 * 3 > max + 3 {
        return Err(bad("data", format!("larger than the {max}-byte limit")));
    }
    let cleaned: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let engine = &base64::engine::general_purpose::STANDARD;
    engine
        .decode(cleaned.as_bytes())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(cleaned.as_bytes()))
        .map_err(|e| bad("data", format!("not valid base64 ({e})")))
}

fn check_url(u: &str) -> Result<String, SendError> {
    let parsed = url::Url::parse(u).map_err(|e| bad("url", format!("not a valid URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("url", format!("scheme {:?} is not http or https", parsed.scheme())));
    }
    // Refused here already so the job fails at once; the fetch checks every redirect again.
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("url", "credentials in the URL (user:password@) are refused; the worker sends none"));
    }
    Ok(parsed.to_string())
}

/// The image formats WhatsApp renders inline, by their magic bytes.
pub fn sniff_image(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if b.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some("image/png")
    } else if b.len() >= 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// Checks media bytes (inline or fetched) against the request.
pub fn check_media(req: &MediaRequest, bytes: &[u8], max: usize) -> Result<(), SendError> {
    let field = if matches!(req.source, MediaSource::Url(_)) { "url" } else { "data" };
    if bytes.is_empty() {
        return Err(bad(field, "the media is empty"));
    }
    if bytes.len() > max {
        return Err(bad(field, format!("{} bytes is larger than the {max}-byte limit", bytes.len())));
    }
    if req.kind == MediaKind::Image && sniff_image(bytes).is_none() {
        return Err(bad(field, "not a JPEG, PNG or WebP image"));
    }
    Ok(())
}

/// The quote context of a reply.
pub fn quote_context(q: &Quoted) -> wa::ContextInfo {
    let quoted = wa::Message::text(q.text.clone().unwrap_or_default());
    build_quote_context(q.id.clone(), q.participant.clone(), &quoted)
}

/// A text message, quoting `quoted` when it is a reply.
pub fn text_message(text: &str, quoted: Option<&Quoted>) -> wa::Message {
    match quoted {
        Some(q) => wa::Message::text_with_context(text, quote_context(q)),
        None => wa::Message::text(text),
    }
}

/// A reaction to `target` in `chat`. `participant` is the target's author in a group.
pub fn reaction_message(
    chat: &str,
    target: &str,
    emoji: &str,
    from_me: bool,
    participant: Option<String>,
    now_ms: i64,
) -> wa::Message {
    let key =
        wa::MessageKey { remote_jid: Some(chat.to_owned()), from_me: Some(from_me), id: Some(target.to_owned()), participant };
    build_reaction_message(key, emoji, now_ms)
}

/// The mimetype to announce: the caller's, else sniffed (images), else a generic one.
pub fn media_mimetype(req: &MediaRequest, bytes: &[u8]) -> String {
    req.mimetype.clone().unwrap_or_else(|| match req.kind {
        MediaKind::Image => sniff_image(bytes).unwrap_or("image/jpeg").to_owned(),
        MediaKind::Document => "application/octet-stream".to_owned(),
    })
}

/// The message for uploaded media.
pub fn media_message(
    req: &MediaRequest,
    mimetype: String,
    upload: whatsapp_rust::upload::UploadResponse,
    quoted: Option<&Quoted>,
) -> wa::Message {
    use whatsapp_rust::media::{DocumentOptions, ImageOptions, document_message, image_message};
    let context_info = quoted.map(|q| Box::new(quote_context(q)));
    match req.kind {
        MediaKind::Image => image_message(
            upload,
            ImageOptions { caption: req.caption.clone(), mimetype: Some(mimetype), context_info, ..Default::default() },
        ),
        MediaKind::Document => {
            let file_name = req.file_name.clone().unwrap_or_else(|| "file".into());
            document_message(
                upload,
                DocumentOptions {
                    mimetype: Some(mimetype),
                    title: Some(file_name.clone()),
                    file_name: Some(file_name),
                    caption: req.caption.clone(),
                    context_info,
                    ..Default::default()
                },
            )
        }
    }
}
