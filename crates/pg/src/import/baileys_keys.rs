//! Baileys' signal key store entries (`<type>-<id>.json` files, or rows of a table) to
//! what whatsapp-rust stores: one-time prekeys, app-state sync keys, LID mappings.
//! Entries that cannot be converted are skipped with a reason.

use serde_json::Value;
use whatsapp_rust::wacore::libsignal::protocol::PreKeyRecord;
use whatsapp_rust::wacore::store::traits::AppStateSyncKey;
use whatsapp_rust::waproto;
use whatsapp_rust::waproto::whatsapp as wa;

use crate::authdoc::reader::Field;
use crate::authdoc::{AuthDocError, Problem, decode_base64, read_key_pair};

/// One entry of a Baileys key store: its type (`pre-key`, `app-state-sync-key`, ...),
/// its id, its JSON value, and where it came from (file name or row) for messages.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: String,
    pub id: String,
    pub value: Value,
    pub origin: String,
}

/// Everything convertible, ready to write.
#[derive(Default)]
pub struct Converted {
    /// (id, serialized PreKeyRecord, uploaded)
    pub prekeys: Vec<(u32, Vec<u8>, bool)>,
    pub sync_keys: Vec<(Vec<u8>, AppStateSyncKey)>,
    /// (lid user, phone user)
    pub lid_mappings: Vec<(String, String)>,
    pub skipped: Vec<(String, String)>,
}

const SESSION_SKIP: &str = "libsignal-node session records are not convertible to whatsapp-rust's; \
     the peer's next message (a pkmsg built from our uploaded prekeys) starts a fresh session";
const SENDER_KEY_SKIP: &str = "libsignal-node sender keys are not convertible; group senders redistribute \
     their sender key (SKDM) when a member cannot decrypt";
const REBUILT_SKIP: &str = "rebuilt by whatsapp-rust on its own (app-state resync / sender-key tracking)";

/// Baileys' fixFileName replaced '/' with '__' and ':' with '-' in ids.
pub fn unfix_file_id(id: &str) -> String {
    id.replace("__", "/")
}

impl Converted {
    /// Converts one entry; `first_unuploaded` (creds.firstUnuploadedPreKeyId) decides
    /// which prekeys the server already has.
    pub fn add(&mut self, session: &str, e: &Entry, first_unuploaded: u32) -> Result<(), AuthDocError> {
        let f = Field::root(session, &e.value);
        let at = |err: AuthDocError| AuthDocError { path: format!("{}: {}", e.origin, err.path), ..err };
        match e.kind.as_str() {
            "pre-key" => {
                let Ok(id) = e.id.parse::<u32>() else {
                    self.skip(e, "pre-key id is not a number");
                    return Ok(());
                };
                if !f.is_present() {
                    self.skip(e, "deleted pre-key (null value)");
                    return Ok(());
                }
                let kp = read_key_pair(&f).map_err(at)?;
                let record = PreKeyRecord::new(id.into(), &kp)
                    .serialize()
                    .map_err(|_| at(f.error(Problem::Invalid("cannot serialize as a prekey record"))))?;
                self.prekeys.push((id, record, id < first_unuploaded));
            }
            "app-state-sync-key" => {
                let key_id = decode_base64(&unfix_file_id(&e.id)).map_err(|p| at(f.error(p)))?;
                let fp = f.get("fingerprint").map_err(at)?;
                let fingerprint = match fp.clone().optional() {
                    None => Vec::new(),
                    Some(fp) => {
                        let raw_id = fp.get("rawId").map_err(at)?.u32_or(0).map_err(at)?;
                        let current = fp.get("currentIndex").map_err(at)?.u32_or(0).map_err(at)?;
                        let idx = match &e.value["fingerprint"]["deviceIndexes"] {
                            Value::Array(a) => a.iter().filter_map(Value::as_u64).map(|n| n as u32).collect(),
                            _ => Vec::new(),
                        };
                        let msg = wa::message::AppStateSyncKeyFingerprint {
                            raw_id: Some(raw_id),
                            current_index: Some(current),
                            device_indexes: idx,
                        };
                        waproto::codec::app_state_sync_key_fingerprint_to_vec(&msg)
                    }
                };
                self.sync_keys.push((
                    key_id,
                    AppStateSyncKey {
                        key_data: f.get("keyData").map_err(at)?.bytes().map_err(at)?,
                        fingerprint,
                        timestamp: f.get("timestamp").map_err(at)?.i64_or(0).map_err(at)?,
                    },
                ));
            }
            "lid-mapping" => {
                let other = f.str().map_err(at)?.to_string();
                match e.id.strip_suffix("_reverse") {
                    // `<lid>_reverse` -> phone: the same pair as the forward entry.
                    Some(lid) => self.lid_mappings.push((lid.to_string(), other)),
                    None => self.lid_mappings.push((other, e.id.clone())),
                }
            }
            "session" => self.skip(e, SESSION_SKIP),
            "sender-key" => self.skip(e, SENDER_KEY_SKIP),
            "sender-key-memory" | "app-state-sync-version" => self.skip(e, REBUILT_SKIP),
            other => self.skip(e, &format!("unknown key type {other:?}")),
        }
        Ok(())
    }

    fn skip(&mut self, e: &Entry, reason: &str) {
        self.skipped.push((e.origin.clone(), reason.to_string()));
    }

    /// LID mappings appear twice (forward and `_reverse`); keep one per LID.
    pub fn dedup(&mut self) {
        self.lid_mappings.sort();
        self.lid_mappings.dedup_by(|a, b| a.0 == b.0);
        self.prekeys.sort_by_key(|p| p.0);
        self.prekeys.dedup_by_key(|p| p.0);
    }
}
