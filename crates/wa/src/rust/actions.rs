//! Actions on the connection that are not messages: read receipts, number checks,
//! declined calls and media downloads.

use whatsapp_rust::Jid;

use super::{RustSession, parse_jid};
use pgwa_core::wa::{IncomingCall, NumberCheck, SendError};

impl RustSession {
    pub(super) async fn send_read_receipts(&self, chat: &str, sender: Option<&str>, ids: &[String]) -> Result<(), SendError> {
        let chat_jid = parse_jid(chat)?;
        let sender = sender.map(parse_jid).transpose()?;
        let client = self.logged_in().await?;
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        client
            .mark_as_read(&chat_jid, sender.as_ref(), &ids)
            .await
            .map_err(|e| SendError::Retryable(format!("read receipts to {chat}: {e}")))
    }

    pub(super) async fn decline_call(&self, call: &IncomingCall) -> Result<(), SendError> {
        let from = parse_jid(&call.from)?;
        let creator = parse_jid(&call.creator)?;
        let client = self.logged_in().await?;
        client
            .voip()
            .reject_call(&call.call_id, &from, &creator)
            .await
            .map_err(|e| SendError::Retryable(format!("declining call {}: {e}", call.call_id)))
    }

    /// Downloads the file an inbox row's media metadata points to (`kind`: the row's kind).
    pub(super) async fn fetch_media(&self, kind: &str, media: &serde_json::Value) -> Result<Vec<u8>, SendError> {
        use whatsapp_rust::download::{DownloadParams, MediaType};
        let bad = |field: &str| SendError::Permanent(format!("media.{field}: missing or not base64; the file cannot be fetched"));
        let bytes = |field: &str| {
            media[field]
                .as_str()
                .and_then(|s| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, s).ok())
                .ok_or_else(|| bad(field))
        };
        let media_type = match kind {
            "image" | "sticker" => MediaType::Image,
            "video" => MediaType::Video,
            "audio" | "voice" => MediaType::Audio,
            "document" => MediaType::Document,
            other => return Err(SendError::Permanent(format!("a {other} message has no file to fetch"))),
        };
        let direct_path = media["direct_path"].as_str().ok_or_else(|| bad("direct_path"))?;
        let params = DownloadParams::encrypted(
            direct_path,
            &bytes("media_key")?,
            &bytes("file_sha256")?,
            &bytes("file_enc_sha256")?,
            media["file_length"].as_u64().unwrap_or(0),
            media_type,
        );
        let client = self.logged_in().await?;
        client.download_from_params(&params).await.map_err(|e| {
            // A file that does not decrypt with its message's key (bad MAC, cut short)
            // will not on the next attempt either; hosts and network failures may pass.
            use whatsapp_rust::wacore::download::MediaDecryptionError;
            match e.chain().find_map(|c| c.downcast_ref::<MediaDecryptionError>()) {
                Some(MediaDecryptionError::Other(_)) | None => SendError::Retryable(format!("downloading the file: {e:#}")),
                Some(d) => SendError::Permanent(format!("the file does not open with its message's media key: {d}")),
            }
        })
    }

    pub(super) async fn ask_numbers(&self, phones: &[String]) -> Result<Vec<NumberCheck>, SendError> {
        let jids: Vec<Jid> = phones.iter().map(|p| Jid::pn(p.as_str())).collect();
        let client = self.logged_in().await?;
        let answers = client
            .contacts()
            .is_on_whatsapp(&jids)
            .await
            .map_err(|e| SendError::Retryable(format!("number check of {} numbers: {e}", phones.len())))?;
        Ok(answers
            .into_iter()
            .filter_map(|a| {
                // A LID-primary answer names the number in pn_jid.
                let (pn, lid) = if a.jid.is_lid() { (a.pn_jid?, Some(a.jid)) } else { (a.jid, a.lid) };
                Some(NumberCheck {
                    phone: pn.user.to_string(),
                    on_whatsapp: a.is_registered,
                    jid: a.is_registered.then(|| pn.to_non_ad().to_string()),
                    lid: lid.map(|l| l.to_non_ad().to_string()),
                    is_business: a.is_business,
                })
            })
            .collect())
    }
}
