//! Baileys' `creds.json` (AuthenticationCreds, see initAuthCreds in
//! src/Utils/auth-utils.ts) to whatsapp-rust's `Device`. Read with the same
//! path-tracking reader as our own documents, so an error names the Baileys field
//! (`signedPreKey.signature`), and bytes are revived in any Buffer form.

use std::sync::Arc;

use serde_json::Value;
use whatsapp_rust::Jid;
use whatsapp_rust::wacore::store::Device;
use whatsapp_rust::waproto::whatsapp as wa;

use crate::authdoc::reader::Field;
use crate::authdoc::{AuthDocError, Problem, read_key_pair};

/// Fields of creds.json that whatsapp-rust has no place for; listed in the summary.
pub const IGNORED_FIELDS: &[&str] = &[
    "pairingEphemeralKeyPair",
    "processedHistoryMessages",
    "accountSyncCounter",
    "accountSettings",
    "signalIdentities",
    "myAppStateKeyId",
    "platform",
    "pairingCode",
    "additionalData",
    "registered",
];

fn jid(f: &Field<'_>) -> Result<Option<Jid>, AuthDocError> {
    match f.str_opt()? {
        None | Some("") => Ok(None),
        Some(s) => s.parse::<Jid>().map(Some).map_err(|_| f.error(Problem::Invalid("not a WhatsApp JID"))),
    }
}

/// The device described by a creds.json document. `session` names the session in errors.
pub fn device_from_creds(session: &str, creds: &Value) -> Result<Device, AuthDocError> {
    let root = Field::root(session, creds);
    let me = root.get("me")?;
    let spk = root.get("signedPreKey")?;
    let account = match root.get("account")?.optional() {
        None => None,
        Some(a) => Some(Arc::new(wa::ADVSignedDeviceIdentity {
            details: a.get("details")?.bytes_opt()?,
            account_signature_key: a.get("accountSignatureKey")?.bytes_opt()?,
            account_signature: a.get("accountSignature")?.bytes_opt()?,
            device_signature: a.get("deviceSignature")?.bytes_opt()?,
        })),
    };
    let first_unuploaded = root.get("firstUnuploadedPreKeyId")?.u32_or(1)?;

    let mut d = Device::new();
    d.noise_key = read_key_pair(&root.get("noiseKey")?)?;
    d.identity_key = read_key_pair(&root.get("signedIdentityKey")?)?;
    d.signed_pre_key = read_key_pair(&spk.get("keyPair")?)?;
    d.signed_pre_key_id = spk.get("keyId")?.u32()?;
    d.signed_pre_key_signature = spk.get("signature")?.bytes_exact()?;
    d.registration_id = root.get("registrationId")?.u32()?;
    // A base64 string in initAuthCreds, a Buffer in some forks: revival takes both.
    d.adv_secret_key = root.get("advSecretKey")?.bytes_exact()?;
    d.pn = jid(&me.get("id")?)?;
    d.lid = jid(&me.get("lid")?)?;
    d.push_name = me.get("name")?.str_opt()?.unwrap_or_default().to_string();
    d.account = account;
    d.next_pre_key_id = root.get("nextPreKeyId")?.u32_or(1)?;
    d.first_unupload_pre_key_id = first_unuploaded;
    d.server_has_prekeys = first_unuploaded > 1;
    d.edge_routing_info = root.get("routingInfo")?.bytes_opt()?;
    d.props_hash = root.get("lastPropHash")?.str_opt()?.map(str::to_string);
    Ok(d)
}
