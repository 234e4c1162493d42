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
//!   is fetched by `super::fetch` (public addresses only, unless allowed);
//! * `{"type":"location","latitude":-23.56,"longitude":-46.65,"name":…,"address":…}`;
//! * `{"type":"contact","display_name":"Ana","phones":["5511999998888"]}` — the vCard is
//!   built here;
//! * `{"type":"edit","message_id":"<our earlier message>","text":"…"}` and
//!   `{"type":"revoke","message_id":"<our earlier message>"}` — protocol messages that
//!   change a message this session sent (the SQL API checks that it did);
//! * `"mentions":["5511…@s.whatsapp.net"]` on a text: the JIDs the text's `@<number>`
//!   tokens name.

use base64::Engine;
use serde_json::Value;
use whatsapp_rust::buffa::MessageField;
use whatsapp_rust::wacore::proto_helpers::{MessageBuilderExt, build_quote_context, build_reaction_message};
use whatsapp_rust::waproto::whatsapp as wa;

use pgwa_core::wa::SendError;

use super::media_format as format;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Image,
    Document,
    Video,
    Audio,
    /// A push-to-talk voice note: Ogg Opus, shown with its length and waveform.
    Voice,
    Sticker,
}

impl MediaKind {
    pub fn parse(kind: &str) -> Option<Self> {
        Some(match kind {
            "image" => Self::Image,
            "document" => Self::Document,
            "video" => Self::Video,
            "audio" => Self::Audio,
            "voice" => Self::Voice,
            "sticker" => Self::Sticker,
            _ => return None,
        })
    }

    /// Where WhatsApp's CDN takes the upload (a voice note is audio, a sticker an image).
    pub fn media_type(self) -> whatsapp_rust::download::MediaType {
        use whatsapp_rust::download::MediaType;
        match self {
            Self::Image => MediaType::Image,
            Self::Document => MediaType::Document,
            Self::Video => MediaType::Video,
            Self::Audio | Self::Voice => MediaType::Audio,
            Self::Sticker => MediaType::Sticker,
        }
    }
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
    /// Length of a video, audio or voice note; read from an Ogg Opus voice note if absent.
    pub seconds: Option<u32>,
    /// A voice note's waveform: up to 64 loudness samples, 0 to 100.
    pub waveform: Option<Vec<u8>>,
}

/// A validated send payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Text { text: String, reply_to: Option<String>, mentions: Vec<String> },
    Reaction { target: String, emoji: String, from_me: Option<bool> },
    Media(MediaRequest),
    Location { latitude: f64, longitude: f64, name: Option<String>, address: Option<String>, reply_to: Option<String> },
    Contact { display_name: String, phones: Vec<String>, reply_to: Option<String> },
    Edit { target: String, text: String },
    Revoke { target: String },
    Poll { question: String, options: Vec<String>, selectable: u32 },
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

fn str_list(p: &Value, field: &str) -> Result<Vec<String>, SendError> {
    match p.get(field) {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(items)) => {
            items.iter().map(|v| v.as_str().map(str::to_owned).ok_or_else(|| bad(field, "must be a list of strings"))).collect()
        }
        Some(_) => Err(bad(field, "must be a list of strings")),
    }
}

fn degrees(p: &Value, field: &str, limit: f64) -> Result<f64, SendError> {
    match p.get(field).and_then(Value::as_f64) {
        Some(d) if d.is_finite() && d.abs() <= limit => Ok(d),
        _ => Err(bad(field, format!("must be a number from -{limit} to {limit}"))),
    }
}

/// A phone number as digits (country code first), from what the SQL API stored.
fn phone_digits(field: &str, raw: &str) -> Result<String, SendError> {
    let digits: String = raw.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '+')).collect();
    if (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0') {
        Ok(digits)
    } else {
        Err(bad(field, format!("{raw:?} is not a phone number (7 to 15 digits, country code first)")))
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
        "text" => {
            let mentions = str_list(p, "mentions")?;
            if let Some(m) = mentions.iter().find(|m| !(m.ends_with("@s.whatsapp.net") || m.ends_with("@lid"))) {
                return Err(bad("mentions", format!("{m:?} is not a user JID")));
            }
            Ok(Request::Text { text: req_str(p, "text")?, reply_to, mentions })
        }
        "location" => Ok(Request::Location {
            latitude: degrees(p, "latitude", 90.0)?,
            longitude: degrees(p, "longitude", 180.0)?,
            name: opt_str(p, "name")?,
            address: opt_str(p, "address")?,
            reply_to,
        }),
        "contact" => {
            let phones = str_list(p, "phones")?;
            if phones.is_empty() {
                return Err(bad("phones", "a contact needs at least one phone number"));
            }
            let phones = phones.iter().map(|ph| phone_digits("phones", ph)).collect::<Result<_, _>>()?;
            Ok(Request::Contact { display_name: req_str(p, "display_name")?, phones, reply_to })
        }
        "edit" => Ok(Request::Edit { target: req_str(p, "message_id")?, text: req_str(p, "text")? }),
        "revoke" => Ok(Request::Revoke { target: req_str(p, "message_id")? }),
        "poll" => super::poll::parse(p),
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
        other => match MediaKind::parse(other) {
            Some(kind) => parse_media(p, kind, other, reply_to, max_media_bytes),
            None => Err(bad(
                "type",
                format!(
                    "{other:?} is not one of text, reaction, image, document, video, audio, voice, sticker, location, \
                     contact, poll, edit, revoke"
                ),
            )),
        },
    }
}

/// A media payload of `kind` (`media` is its name in the payload).
fn parse_media(
    p: &Value,
    kind: MediaKind,
    media: &str,
    reply_to: Option<String>,
    max_media_bytes: usize,
) -> Result<Request, SendError> {
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
        let family = match kind {
            MediaKind::Image => Some("image/"),
            MediaKind::Video => Some("video/"),
            MediaKind::Audio | MediaKind::Voice => Some("audio/"),
            MediaKind::Sticker => Some("image/webp"),
            MediaKind::Document => None,
        };
        if let Some(f) = family.filter(|f| !m.starts_with(f)) {
            return Err(bad("mimetype", format!("{m:?} is not a {f} type, as a {media} needs")));
        }
    }
    let seconds = match p.get("seconds") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if n <= 86_400 => Some(n as u32),
            _ => return Err(bad("seconds", "must be a whole number of seconds from 0 to 86400")),
        },
    };
    let waveform = match opt_str(p, "waveform")? {
        None => None,
        Some(w) => {
            let w = decode_base64(&w, 64).map_err(|_| bad("waveform", "must be base64 of at most 64 bytes"))?;
            if w.len() > 64 || w.iter().any(|&v| v > 100) {
                return Err(bad("waveform", "at most 64 samples, each 0 to 100"));
            }
            Some(w)
        }
    };
    let req = MediaRequest {
        kind,
        source,
        mimetype,
        caption: opt_str(p, "caption")?,
        file_name: opt_str(p, "file_name")?,
        reply_to,
        seconds,
        waveform,
    };
    if let MediaSource::Bytes(b) = &req.source {
        check_media(&req, b, max_media_bytes)?;
    }
    Ok(Request::Media(req))
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

/// Checks media bytes (inline or fetched) against the request.
pub fn check_media(req: &MediaRequest, bytes: &[u8], max: usize) -> Result<(), SendError> {
    let field = if matches!(req.source, MediaSource::Url(_)) { "url" } else { "data" };
    if bytes.is_empty() {
        return Err(bad(field, "the media is empty"));
    }
    if bytes.len() > max {
        return Err(bad(field, format!("{} bytes is larger than the {max}-byte limit", bytes.len())));
    }
    let wrong = match req.kind {
        MediaKind::Image if format::image(bytes).is_none() => Some("not a JPEG, PNG or WebP image"),
        MediaKind::Video if !format::is_mp4(bytes) => Some("not an MP4 video (WhatsApp plays MP4 with H.264)"),
        MediaKind::Voice if !format::is_ogg_opus(bytes) => {
            Some("not an Ogg Opus file (a voice note is Opus in Ogg, as WhatsApp records them)")
        }
        MediaKind::Sticker if !format::is_webp(bytes) => Some("not a WebP image (stickers are WebP)"),
        _ => None,
    };
    match wrong {
        Some(why) => Err(bad(field, why)),
        None => Ok(()),
    }
}

/// The quote context of a reply.
pub fn quote_context(q: &Quoted) -> wa::ContextInfo {
    let quoted = wa::Message::text(q.text.clone().unwrap_or_default());
    build_quote_context(q.id.clone(), q.participant.clone(), &quoted)
}

/// The context of a message: the quote of a reply and the JIDs it mentions, or None.
fn context(quoted: Option<&Quoted>, mentions: &[String]) -> Option<wa::ContextInfo> {
    if quoted.is_none() && mentions.is_empty() {
        return None;
    }
    let mut ctx = quoted.map(quote_context).unwrap_or_default();
    ctx.mentioned_jid = mentions.to_vec();
    Some(ctx)
}

/// A text message, quoting `quoted` when it is a reply, mentioning `mentions`.
pub fn text_message(text: &str, quoted: Option<&Quoted>, mentions: &[String]) -> wa::Message {
    match context(quoted, mentions) {
        Some(ctx) => wa::Message::text_with_context(text, ctx),
        None => wa::Message::text(text),
    }
}

/// A pinned location.
pub fn location_message(
    latitude: f64,
    longitude: f64,
    name: Option<String>,
    address: Option<String>,
    quoted: Option<&Quoted>,
) -> wa::Message {
    wa::Message {
        location_message: MessageField::some(wa::message::LocationMessage {
            degrees_latitude: Some(latitude),
            degrees_longitude: Some(longitude),
            name,
            address,
            context_info: context(quoted, &[]).map(MessageField::some).unwrap_or_default(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A contact card: WhatsApp shows the name and offers to message or call each number.
pub fn contact_message(display_name: &str, phones: &[String], quoted: Option<&Quoted>) -> wa::Message {
    wa::Message {
        contact_message: MessageField::some(wa::message::ContactMessage {
            display_name: Some(display_name.to_owned()),
            vcard: Some(vcard(display_name, phones)),
            context_info: context(quoted, &[]).map(MessageField::some).unwrap_or_default(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A vCard 3.0 as WhatsApp's apps write one: `waid` marks each number as a WhatsApp
/// account, which makes the card's "Message" button work.
pub fn vcard(display_name: &str, phones: &[String]) -> String {
    // RFC 6350 3.4: backslash, comma, semicolon and newlines are escaped in values.
    let mut name = String::with_capacity(display_name.len());
    for c in display_name.chars() {
        match c {
            '\\' | ',' | ';' => {
                name.push('\\');
                name.push(c);
            }
            '\n' => name.push_str("\\n"),
            '\r' => {}
            c => name.push(c),
        }
    }
    let mut card = format!("BEGIN:VCARD\nVERSION:3.0\nFN:{name}\n");
    for p in phones {
        card.push_str(&format!("TEL;type=CELL;type=VOICE;waid={p}:+{p}\n"));
    }
    card.push_str("END:VCARD");
    card
}

/// An edit of our earlier message `target` in `chat`: a protocol message carrying the new
/// text. `participant` is our own JID in a group (WhatsApp's key format).
pub fn edit_message(chat: &str, target: &str, text: &str, participant: Option<String>, now_ms: i64) -> wa::Message {
    wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            key: MessageField::some(own_key(chat, target, participant)),
            r#type: Some(wa::message::protocol_message::Type::MessageEdit),
            edited_message: MessageField::some(wa::Message::text(text)),
            timestamp_ms: Some(now_ms),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A delete for everyone of our earlier message `target` in `chat`.
pub fn revoke_message(chat: &str, target: &str, participant: Option<String>) -> wa::Message {
    wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            key: MessageField::some(own_key(chat, target, participant)),
            r#type: Some(wa::message::protocol_message::Type::Revoke),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn own_key(chat: &str, target: &str, participant: Option<String>) -> wa::MessageKey {
    wa::MessageKey { remote_jid: Some(chat.to_owned()), from_me: Some(true), id: Some(target.to_owned()), participant }
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

/// The mimetype to announce: the caller's, else what the bytes are, else a generic one.
pub fn media_mimetype(req: &MediaRequest, bytes: &[u8]) -> String {
    req.mimetype.clone().unwrap_or_else(|| {
        match req.kind {
            MediaKind::Image => format::image(bytes).unwrap_or("image/jpeg"),
            MediaKind::Document => "application/octet-stream",
            MediaKind::Video => "video/mp4",
            MediaKind::Audio if format::is_ogg_opus(bytes) => "audio/ogg; codecs=opus",
            MediaKind::Audio if format::is_mp4(bytes) => "audio/mp4",
            MediaKind::Audio => "audio/mpeg",
            MediaKind::Voice => "audio/ogg; codecs=opus",
            MediaKind::Sticker => "image/webp",
        }
        .to_owned()
    })
}

/// The message for uploaded media.
pub fn media_message(
    req: &MediaRequest,
    mimetype: String,
    upload: whatsapp_rust::upload::UploadResponse,
    quoted: Option<&Quoted>,
    sticker_info: Option<(u32, u32, bool)>,
) -> wa::Message {
    use whatsapp_rust::media::{
        AudioOptions, DocumentOptions, ImageOptions, VideoOptions, audio_message, document_message, image_message, video_message,
    };
    let context_info = quoted.map(|q| Box::new(quote_context(q)));
    match req.kind {
        MediaKind::Video => video_message(
            upload,
            VideoOptions {
                caption: req.caption.clone(),
                mimetype: Some(mimetype),
                duration_seconds: req.seconds,
                context_info,
                ..Default::default()
            },
        ),
        MediaKind::Audio | MediaKind::Voice => audio_message(
            upload,
            AudioOptions {
                mimetype: Some(mimetype),
                duration_seconds: req.seconds,
                ptt: Some(req.kind == MediaKind::Voice),
                waveform: req.waveform.clone(),
                context_info,
            },
        ),
        MediaKind::Sticker => sticker_message(upload, mimetype, sticker_info, context_info),
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

/// A sticker (whatsapp-rust has no builder for one): `info` is the WebP's width, height
/// and whether it is animated.
fn sticker_message(
    upload: whatsapp_rust::upload::UploadResponse,
    mimetype: String,
    info: Option<(u32, u32, bool)>,
    context_info: Option<Box<wa::ContextInfo>>,
) -> wa::Message {
    wa::Message {
        sticker_message: MessageField::some(wa::message::StickerMessage {
            url: Some(upload.url),
            direct_path: Some(upload.direct_path),
            media_key: Some(upload.media_key.to_vec()),
            file_sha256: Some(upload.file_sha256.to_vec()),
            file_enc_sha256: Some(upload.file_enc_sha256.to_vec()),
            file_length: Some(upload.file_length),
            media_key_timestamp: Some(upload.media_key_timestamp),
            mimetype: Some(mimetype),
            width: info.map(|i| i.0),
            height: info.map(|i| i.1),
            is_animated: info.map(|i| i.2),
            context_info: context_info.map(|c| MessageField::some(*c)).unwrap_or_default(),
            ..Default::default()
        }),
        ..Default::default()
    }
}
