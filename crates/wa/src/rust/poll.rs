//! Polls: the message that asks (with the secret its votes are encrypted with) and the
//! opening of the votes that come back. WhatsApp Web's wire format, as whatsapp-rust's
//! own `polls()` builds it; pgwa builds it itself because a send job fixes the message
//! id and the secret before the first attempt, and `polls().create` picks both.

use serde_json::{Value, json};
use whatsapp_rust::Jid;
use whatsapp_rust::wacore::poll::{self, PollVoteAddressing, PollVoteCiphertext};
use whatsapp_rust::wacore::types::message::MessageInfo;
use whatsapp_rust::waproto::buffa;
use whatsapp_rust::waproto::whatsapp as wa;

use super::send::Request;

/// A poll to send, read from its payload (checked at enqueue by wa._check_poll).
pub fn parse(p: &Value) -> Result<Request, pgwa_core::wa::SendError> {
    let bad = |field: &str, why: &str| pgwa_core::wa::SendError::Permanent(format!("payload.{field}: {why}"));
    let question = p["question"].as_str().filter(|q| !q.trim().is_empty()).ok_or_else(|| bad("question", "missing or empty"))?;
    let options: Vec<String> =
        p["options"].as_array().map(|a| a.iter().filter_map(|o| o.as_str().map(str::to_owned)).collect()).unwrap_or_default();
    if !(2..=12).contains(&options.len()) || options.len() != p["options"].as_array().map_or(0, Vec::len) {
        return Err(bad("options", "a poll has 2 to 12 options, each a text"));
    }
    let mut distinct = options.clone();
    distinct.sort();
    distinct.dedup();
    if distinct.len() != options.len() {
        return Err(bad("options", "the same option twice"));
    }
    let selectable = match p.get("selectable_count").and_then(Value::as_u64) {
        None => 1,
        Some(n) if n as usize <= options.len() => n as u32,
        Some(_) => return Err(bad("selectable_count", "more than the number of options")),
    };
    Ok(Request::Poll { question: question.to_owned(), options, selectable })
}

/// The poll message: single-choice polls go as v3, others as v1, as WhatsApp Web sends
/// them; `secret` (32 bytes) keys the votes.
pub fn message(question: &str, options: &[String], selectable: u32, secret: Vec<u8>) -> wa::Message {
    let creation = wa::message::PollCreationMessage {
        name: Some(question.to_owned()),
        options: options
            .iter()
            .map(|o| wa::message::poll_creation_message::Option { option_name: Some(o.clone()), option_hash: None })
            .collect(),
        selectable_options_count: Some(selectable),
        poll_content_type: Some(wa::message::PollContentType::TEXT),
        ..Default::default()
    };
    let mut m = if selectable == 1 {
        wa::Message { poll_creation_message_v3: buffa::MessageField::some(creation), ..Default::default() }
    } else {
        wa::Message { poll_creation_message: buffa::MessageField::some(creation), ..Default::default() }
    };
    m.message_context_info =
        buffa::MessageField::some(wa::MessageContextInfo { message_secret: Some(secret), ..Default::default() });
    m
}

/// The options a vote picked, as the `data` of its wa.inbox row: `{"options": [...]}`
/// (empty: the voter withdrew their vote), or `{"error": ...}` when it cannot be opened.
/// The vote's key binds the poll's author and the voter by JID, under phone numbers or
/// LIDs alike; both are tried, as WhatsApp Web does.
pub fn open_vote(
    sealed: &Value,
    poll_id: &str,
    options: &[String],
    secret: &[u8],
    me: (Option<Jid>, Option<Jid>),
    info: &MessageInfo,
) -> Value {
    let engine = &base64::engine::general_purpose::STANDARD;
    let field = |k: &str| sealed[k].as_str().and_then(|s| base64::Engine::decode(engine, s).ok());
    let (Some(enc_payload), Some(enc_iv)) = (field("enc_payload"), field("enc_iv")) else {
        return json!({ "error": "the vote carries no encrypted payload" });
    };
    let (my_pn, my_lid) = me;
    let voter = info.source.sender.to_non_ad();
    let voter_alt = info.source.sender_alt.as_ref().map(Jid::to_non_ad);
    let (mine, mine_alt) = if voter.is_lid() { (my_lid, my_pn) } else { (my_pn, my_lid) };
    let Some(mine) = mine.map(|j| j.to_non_ad().to_string()) else {
        return json!({ "error": "this session's own JID is not known yet" });
    };
    let voter = voter.to_string();
    let alt = mine_alt.map(|j| j.to_non_ad().to_string()).zip(voter_alt.map(|j| j.to_string()));
    let ciphertext = PollVoteCiphertext { enc_payload: &enc_payload, enc_iv: &enc_iv };
    let primary = PollVoteAddressing { poll_creator_jid: &mine, voter_jid: &voter };
    let fallback = alt.as_ref().map(|(c, v)| PollVoteAddressing { poll_creator_jid: c, voter_jid: v });
    match poll::decrypt_poll_vote_with_fallback(ciphertext, secret, poll_id, primary, fallback) {
        Ok(hashes) => {
            let picked: Vec<&String> =
                options.iter().filter(|o| hashes.iter().any(|h| h.as_slice() == poll::compute_option_hash(o))).collect();
            json!({ "options": picked })
        }
        Err(e) => json!({ "error": format!("the vote could not be opened: {e}") }),
    }
}

/// A vote as it arrives: the poll it is for and its sealed payload (base64), opened by
/// the inbox hook with the poll's secret.
pub fn sealed_vote(u: &wa::message::PollUpdateMessage) -> (Option<String>, Value) {
    let engine = &base64::engine::general_purpose::STANDARD;
    let poll_id = u.poll_creation_message_key.as_option().and_then(|k| k.id.clone());
    let vote = u.vote.as_option();
    let b = |v: Option<&Vec<u8>>| v.map(|b| base64::Engine::encode(engine, b));
    let sealed = json!({
        "enc_payload": b(vote.and_then(|v| v.enc_payload.as_ref())),
        "enc_iv": b(vote.and_then(|v| v.enc_iv.as_ref())),
    });
    (poll_id, sealed)
}

/// A poll someone sent us, as the `data` of its wa.inbox row.
pub fn received(p: &wa::message::PollCreationMessage) -> Value {
    json!({
        "question": p.name,
        "options": p.options.iter().filter_map(|o| o.option_name.clone()).collect::<Vec<_>>(),
        "selectable_count": p.selectable_options_count,
    })
}
