//! Inbound messages: whatsapp-rust's durability hook commits each message to wa.inbox
//! (deduplicated on session, chat, sender, message id) before it returns Ok, and the
//! library acks the server only after that. The insert is fenced by the lease: a worker
//! that lost the session returns an error, so the server is not acked and redelivers
//! to the new owner. An unreachable database (a restart) is waited out, up to
//! `whatsapp.rust.outage_wait_ms`; other database errors are retried briefly. If the
//! hook fails anyway, the message stays in whatsapp-rust's pending-inbound buffer (held
//! by the key store and written before the session's next key write, see
//! `pgwa_pg::unbuffered`), and the session reconnects once the database answers so the
//! server redelivers it.
//!
//! Not stored: our own messages echoed from the phone (`is_from_me`), protocol messages
//! other than edits and deletes (key shares, history-sync notices) and bare sender-key
//! distributions: the inbox is what people sent us. An edit or a delete for everyone is
//! applied to the row of the message it changes, the earlier text kept in its history
//! (or stored as a row of its own when that message is not in the inbox). The NOTIFY on
//! wa_inbox comes from the table's triggers, in the same transaction as the write.
//!
//! Media metadata keeps what is needed to download the file later (direct path, media
//! key, hashes, as base64): the media key is a per-message content key, as sensitive as
//! the content itself, not a session key.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use serde_json::{Map, Value, json};
use whatsapp_rust::wacore::proto_helpers::MessageExt;
use whatsapp_rust::wacore::types::message::MessageInfo;
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::{Client, InboundDurabilityHook};

use pgwa_core::backoff::Backoff;
use pgwa_core::fence::Fence;
use pgwa_core::wa::{InboundChange, InboundMessage};
use pgwa_pg::WriteFailed;
use pgwa_pg::inbox::{self, InboxWriter};
use pgwa_pg::outage::{caused_by_unreachable, is_unreachable, wait_out};
use pgwa_pg::sessions;

fn b64(b: &Option<Vec<u8>>) -> Value {
    match b {
        Some(v) if !v.is_empty() => Value::String(base64::engine::general_purpose::STANDARD.encode(v)),
        _ => Value::Null,
    }
}

/// Converts one decrypted message to an inbox row, or None for what the inbox skips.
pub fn to_inbound(msg: &wa::Message, info: &MessageInfo) -> Option<InboundMessage> {
    if info.source.is_from_me {
        return None;
    }
    let m = msg.get_base_message();
    if let Some(p) = m.protocol_message.as_option().or_else(|| edit_wrapper(m)) {
        return change(p, info, msg);
    }
    let (kind, text, ctx, media) = if let Some(t) = &m.conversation {
        ("text", Some(t.clone()), None, None)
    } else if let Some(e) = m.extended_text_message.as_option() {
        ("text", e.text.clone(), e.context_info.as_option(), None)
    } else if let Some(i) = m.image_message.as_option() {
        let meta = json!({
            "mimetype": i.mimetype, "caption": i.caption, "file_length": i.file_length,
            "width": i.width, "height": i.height, "url": i.url, "direct_path": i.direct_path,
            "media_key": b64(&i.media_key), "file_sha256": b64(&i.file_sha256),
            "file_enc_sha256": b64(&i.file_enc_sha256), "media_key_timestamp": i.media_key_timestamp,
        });
        ("image", i.caption.clone(), i.context_info.as_option(), Some(meta))
    } else if let Some(d) = m.document_message.as_option() {
        let meta = json!({
            "mimetype": d.mimetype, "caption": d.caption, "file_name": d.file_name, "title": d.title,
            "file_length": d.file_length, "page_count": d.page_count, "url": d.url,
            "direct_path": d.direct_path, "media_key": b64(&d.media_key), "file_sha256": b64(&d.file_sha256),
            "file_enc_sha256": b64(&d.file_enc_sha256), "media_key_timestamp": d.media_key_timestamp,
        });
        ("document", d.caption.clone(), d.context_info.as_option(), Some(meta))
    } else if let Some(r) = m.reaction_message.as_option() {
        let mut row = row(info, "reaction", r.text.clone(), None, msg);
        row.quoted_id = r.key.as_option().and_then(|k| k.id.clone());
        return Some(row);
    } else if let Some(v) = m.video_message.as_option() {
        let meta = json!({
            "mimetype": v.mimetype, "caption": v.caption, "file_length": v.file_length, "seconds": v.seconds,
            "width": v.width, "height": v.height, "gif_playback": v.gif_playback, "url": v.url,
            "direct_path": v.direct_path, "media_key": b64(&v.media_key), "file_sha256": b64(&v.file_sha256),
            "file_enc_sha256": b64(&v.file_enc_sha256), "media_key_timestamp": v.media_key_timestamp,
        });
        ("video", v.caption.clone(), v.context_info.as_option(), Some(meta))
    } else if let Some(a) = m.audio_message.as_option() {
        let meta = json!({
            "mimetype": a.mimetype, "file_length": a.file_length, "seconds": a.seconds, "ptt": a.ptt,
            "waveform": b64(&a.waveform), "url": a.url, "direct_path": a.direct_path,
            "media_key": b64(&a.media_key), "file_sha256": b64(&a.file_sha256),
            "file_enc_sha256": b64(&a.file_enc_sha256), "media_key_timestamp": a.media_key_timestamp,
        });
        // A push-to-talk recording is a voice note, shown and played differently.
        let kind = if a.ptt == Some(true) { "voice" } else { "audio" };
        (kind, None, a.context_info.as_option(), Some(meta))
    } else if let Some(s) = m.sticker_message.as_option() {
        let meta = json!({
            "mimetype": s.mimetype, "file_length": s.file_length, "width": s.width, "height": s.height,
            "is_animated": s.is_animated, "url": s.url, "direct_path": s.direct_path,
            "media_key": b64(&s.media_key), "file_sha256": b64(&s.file_sha256),
            "file_enc_sha256": b64(&s.file_enc_sha256), "media_key_timestamp": s.media_key_timestamp,
        });
        ("sticker", None, s.context_info.as_option(), Some(meta))
    } else if let Some(l) = m.location_message.as_option() {
        let data = json!({
            "latitude": l.degrees_latitude, "longitude": l.degrees_longitude, "name": l.name,
            "address": l.address, "url": l.url,
        });
        return Some(with_data(info, "location", l.name.clone(), l.context_info.as_option(), data, msg));
    } else if let Some(c) = m.contact_message.as_option() {
        let data = contact_data(c);
        return Some(with_data(info, "contact", c.display_name.clone(), c.context_info.as_option(), data, msg));
    } else if let Some(a) = m.contacts_array_message.as_option() {
        let data = json!({ "contacts": a.contacts.iter().map(contact_data).collect::<Vec<_>>() });
        return Some(with_data(info, "contacts", a.display_name.clone(), a.context_info.as_option(), data, msg));
    } else if let Some(p) = m
        .poll_creation_message_v3
        .as_option()
        .or_else(|| m.poll_creation_message.as_option())
        .or_else(|| m.poll_creation_message_v2.as_option())
    {
        let data = super::poll::received(p);
        return Some(with_data(info, "poll", p.name.clone(), p.context_info.as_option(), data, msg));
    } else if let Some(u) = m.poll_update_message.as_option() {
        // Sealed here; the hook opens it with the poll's secret (`open_votes`).
        let (poll_id, sealed) = super::poll::sealed_vote(u);
        let mut row = row(info, "poll_vote", None, None, msg);
        row.quoted_id = poll_id;
        row.data = Some(sealed);
        return Some(row);
    } else if m.sender_key_distribution_message.is_set() {
        return None; // a key share with no content of its own
    } else {
        ("other", m.text_content().map(str::to_owned), None, None)
    };
    let mut r = row(info, kind, text, ctx, msg);
    r.media = media.map(strip_nulls);
    Some(r)
}

/// An edit some clients wrap in the message's `edited_message` field.
fn edit_wrapper(m: &wa::Message) -> Option<&wa::message::ProtocolMessage> {
    m.edited_message.as_option()?.message.as_option()?.protocol_message.as_option()
}

/// An edit or a delete for everyone, as a change to its target; other protocol messages
/// (key shares, history-sync notices, app-state keys) are not for the inbox.
fn change(p: &wa::message::ProtocolMessage, info: &MessageInfo, msg: &wa::Message) -> Option<InboundMessage> {
    use wa::message::protocol_message::Type;
    let target = p.key.as_option()?.id.clone().filter(|id| !id.is_empty())?;
    let change = match p.r#type? {
        Type::REVOKE => InboundChange::Revoke { target },
        Type::MESSAGE_EDIT => {
            let edited = p.edited_message.as_option();
            let text = edited.and_then(|e| e.text_content().or_else(|| e.get_caption())).map(str::to_owned);
            InboundChange::Edit { target, text }
        }
        _ => return None,
    };
    let text = match &change {
        InboundChange::Edit { text, .. } => text.clone(),
        InboundChange::Revoke { .. } => None,
    };
    let mut r = row(info, change.kind(), text, None, msg);
    r.quoted_id = Some(change.target().to_owned());
    r.change = Some(change);
    Some(r)
}

/// A contact card's fields: the numbers are read from the vCard's `waid` (the WhatsApp
/// account) or its TEL value.
fn contact_data(c: &wa::message::ContactMessage) -> Value {
    json!({ "display_name": c.display_name, "phones": vcard_phones(c.vcard.as_deref().unwrap_or("")), "vcard": c.vcard })
}

pub fn vcard_phones(vcard: &str) -> Vec<String> {
    vcard
        .lines()
        .filter_map(|line| {
            let (head, value) = line.split_once(':')?;
            let mut params = head.split(';');
            // A property may carry a group prefix ("item1.TEL"), as iOS writes them.
            let name = params.next()?.rsplit('.').next()?;
            if !name.eq_ignore_ascii_case("TEL") {
                return None;
            }
            let waid = params.find_map(|p| p.strip_prefix("waid="));
            let digits: String = waid.unwrap_or(value).chars().filter(char::is_ascii_digit).collect();
            (!digits.is_empty()).then_some(digits)
        })
        .collect()
}

fn with_data(
    info: &MessageInfo,
    kind: &str,
    text: Option<String>,
    ctx: Option<&wa::ContextInfo>,
    data: Value,
    msg: &wa::Message,
) -> InboundMessage {
    let mut r = row(info, kind, text, ctx, msg);
    r.data = Some(strip_nulls(data));
    r
}

/// The row of a message: the reply's quoted id and the mentions come from its context.
fn row(info: &MessageInfo, kind: &str, text: Option<String>, ctx: Option<&wa::ContextInfo>, msg: &wa::Message) -> InboundMessage {
    InboundMessage {
        chat: info.source.chat.to_string(),
        sender: info.source.sender.to_string(),
        message_id: info.id.to_string(),
        kind: kind.to_owned(),
        text,
        quoted_id: ctx.and_then(|c| c.stanza_id.clone()),
        mentions: ctx.map(|c| c.mentioned_jid.clone()).unwrap_or_default(),
        raw: raw_json(msg, info),
        sent_at: Some(info.timestamp),
        ..Default::default()
    }
}

/// The message as JSON, without nulls, empty lists and thumbnails (waproto serializes
/// every unset field and bytes as number arrays), plus who sent it.
pub fn raw_json(msg: &wa::Message, info: &MessageInfo) -> Option<Value> {
    let mut v = serde_json::to_value(msg).ok()?;
    v = strip_nulls(v);
    let mut out = Map::new();
    out.insert("message".into(), v);
    out.insert("push_name".into(), Value::String(info.push_name.clone()));
    out.insert("is_group".into(), Value::Bool(info.source.is_group));
    if let Some(alt) = &info.source.sender_alt {
        out.insert("sender_alt".into(), Value::String(alt.to_string()));
    }
    Some(Value::Object(out))
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, v)| !v.is_null() && k != "jpeg_thumbnail" && !matches!(v, Value::Array(a) if a.is_empty()))
                .map(|(k, v)| (k, strip_nulls(v)))
                .filter(|(_, v)| !matches!(v, Value::Object(m) if m.is_empty()))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

/// Where the pauses between inbox attempts stop doubling: a larger `inbox_attempts` adds
/// attempts 2 s apart, not ever longer waits while the message sits unacknowledged.
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// The durability hook of one session connection.
pub struct InboxHook {
    pub pool: pgwa_pg::PgPool,
    /// Where new messages are stored, together with those of the worker's other sessions.
    pub writer: Arc<InboxWriter>,
    pub fence: Fence,
    /// Where the hook notes the buffered rows its inbox statements deleted, for the
    /// session's key store to leave out of whatsapp-rust's deletion that follows.
    pub unbuffered: Arc<pgwa_pg::unbuffered::Unbuffered>,
    /// Attempts per message on database errors other than an outage, and the first
    /// pause between them (doubling, at most 2 s or this pause if longer).
    pub attempts: u32,
    pub pause: Duration,
    /// How long a message waits for a database that stopped answering (a restart)
    /// before the hook fails.
    pub outage_wait: Duration,
}

/// Why one attempt to store a message failed.
#[derive(Debug, thiserror::Error)]
enum StoreFailed {
    /// The group-committed statement holding it failed.
    #[error(transparent)]
    Batched(#[from] WriteFailed),
    /// Its own statement (an edit or a delete, applied alone) failed.
    #[error("applying an inbound edit or delete failed: {0}")]
    Alone(#[from] pgwa_pg::Error),
}

/// What one insert found.
enum Stored {
    New,
    /// Already in the inbox: a redelivery.
    Known,
    /// The fence refused: another worker holds the session now.
    LeaseLost,
}

impl InboxHook {
    /// Stores rows in order (what `on_messages` does after conversion); returns how many
    /// were new. Fails, so the server is not acked, when the lease is lost or the
    /// database stays unreachable.
    pub async fn commit(&self, rows: Vec<InboundMessage>) -> anyhow::Result<usize> {
        let mut new = 0;
        for m in rows {
            // Shared, not copied, with the group commit (and its retries) that stores it.
            new += usize::from(self.store(&Arc::new(m)).await?);
        }
        Ok(new)
    }

    async fn store(&self, m: &Arc<InboundMessage>) -> anyhow::Result<bool> {
        let retry = Backoff::doubling(self.pause, self.pause.max(MAX_PAUSE));
        for (attempt, pause) in (1..).zip(retry.delays()) {
            let once = || self.store_once(m);
            match wait_out(self.outage_wait, "storing an inbound message", |e: &StoreFailed| caused_by_unreachable(e), once).await
            {
                Ok(Stored::New) => {
                    metrics::counter!(pgwa_core::metrics::MESSAGES_RECEIVED).increment(1);
                    return Ok(true);
                }
                Ok(Stored::Known) => return Ok(false),
                Ok(Stored::LeaseLost) => anyhow::bail!(
                    "lease lost: session {} is no longer held at epoch {}; message not acknowledged",
                    self.fence.session,
                    self.fence.epoch
                ),
                Err(e) if attempt < self.attempts.max(1) && !caused_by_unreachable(&e) => {
                    tracing::debug!(session = %self.fence.session, attempt, error = %e, "inbox insert failed; retrying");
                    tokio::time::sleep(pause).await;
                }
                Err(e) => return Err(anyhow::Error::new(e).context("storing an inbound message in wa.inbox")),
            }
        }
        unreachable!("the pauses never run out")
    }

    async fn store_once(&self, m: &Arc<InboundMessage>) -> Result<Stored, StoreFailed> {
        if m.change.is_none() {
            let stored = match self.writer.store(&self.fence, m.clone()).await? {
                inbox::Stored::New(_) => Stored::New,
                inbox::Stored::Known => Stored::Known,
                inbox::Stored::FenceLost => return Ok(Stored::LeaseLost),
            };
            self.unbuffered.cleared(&m.chat, &m.sender, &m.message_id).await;
            return Ok(stored);
        }
        if sessions::insert_inbound(&self.pool, &self.fence, m).await?.is_some() {
            return Ok(Stored::New);
        }
        // Either a redelivery (already applied) or the fence refused: tell them apart.
        let held = sessions::still_held(&self.pool, &self.fence).await?;
        Ok(if held { Stored::Known } else { Stored::LeaseLost })
    }

    /// Opens a poll vote with the secret of the poll this session sent: its row keeps
    /// the options picked (`{"options": [...]}`), never the sealed payload. A vote on a
    /// poll this session did not send (or whose secret is gone) is kept with the reason.
    async fn open_vote(&self, client: &Client, row: &mut InboundMessage, info: &MessageInfo) -> anyhow::Result<()> {
        let sealed = row.data.take().unwrap_or_default();
        let Some(poll_id) = row.quoted_id.clone() else {
            row.data = Some(json!({ "error": "the vote names no poll" }));
            return Ok(());
        };
        let once = || pgwa_pg::polls::sent_poll(&self.pool, &self.fence.session, &poll_id);
        let poll = wait_out(self.outage_wait, "reading a poll's secret", is_unreachable, once).await?;
        row.data = Some(match poll {
            Some(p) => super::poll::open_vote(&sealed, &poll_id, &p.options, &p.secret, (client.pn(), client.lid()), info),
            None => json!({ "error": "not a poll this session sent" }),
        });
        // The sealed vote stays out of `raw` too.
        if let Some(raw) = row.raw.as_mut().and_then(|r| r.get_mut("message")).and_then(Value::as_object_mut) {
            raw.remove("poll_update_message");
        }
        Ok(())
    }

    /// After a commit that failed because the database stayed unreachable, the messages
    /// sit unacknowledged (their buffered copies in wa.pending_inbound), and the server
    /// redelivers them only on a new connection: once the database answers, reconnect,
    /// unless the session was handed over. Other failures do not reconnect: a message
    /// the inbox refuses would come back and fail again, in a loop.
    fn reconnect_when_database_answers(&self, client: Arc<Client>) {
        let (pool, fence) = (self.pool.clone(), self.fence.clone());
        tokio::spawn(async move {
            let check = || sessions::still_held(&pool, &fence);
            match wait_out(Duration::from_secs(3600), "checking the lease before a redelivery", is_unreachable, check).await {
                Ok(true) => {
                    tracing::info!(session = %fence.session, "reconnecting so the server redelivers unacknowledged messages");
                    client.reconnect_immediately().await;
                }
                Ok(false) => {} // the new holder's connection gets the redelivery
                Err(e) => tracing::warn!(session = %fence.session, error = %e, "no reconnect for redelivery"),
            }
        });
    }
}

#[async_trait]
impl InboundDurabilityHook for InboxHook {
    async fn on_messages(
        &self,
        client: Arc<Client>,
        batch: &[whatsapp_rust::types::events::InboundMessage],
    ) -> anyhow::Result<()> {
        let result = async {
            let mut rows = Vec::with_capacity(batch.len());
            for i in batch {
                if let Some(mut row) = to_inbound(&i.message, &i.info) {
                    if row.kind == "poll_vote" {
                        self.open_vote(&client, &mut row, &i.info).await?;
                    }
                    rows.push(row);
                }
            }
            self.commit(rows).await.map(|_| ())
        }
        .await;
        if let Err(e) = &result
            && caused_by_unreachable(e.as_ref())
        {
            self.reconnect_when_database_answers(client);
        }
        result
    }
}
