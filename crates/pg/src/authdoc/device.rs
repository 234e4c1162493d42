//! whatsapp-rust's `Device` (the credentials of a linked device) as a readable document.
//!
//! Format `pgwa.auth.v1` (see docs/storage.md): named keys, bytes as base64. Runtime-only
//! fields of `Device` (device props, client profile) are not stored.

use std::sync::Arc;

use serde_json::{Value, json};
use whatsapp_rust::Jid;
use whatsapp_rust::wacore::libsignal::protocol::{KeyPair, PrivateKey, PublicKey};
use whatsapp_rust::wacore::store::{CachedNoiseCert, CachedServerCertChain, Device};
use whatsapp_rust::waproto::whatsapp as wa;

use super::bytes::encode;
use super::error::{AuthDocError, Problem};
use super::reader::Field;

pub const FORMAT: &str = "pgwa.auth.v1";

fn key_pair(kp: &KeyPair) -> Value {
    json!({
        "private": encode(kp.private_key.serialize()),
        "public": encode(kp.public_key.public_key_bytes()),
    })
}

fn opt_bytes(b: &Option<Vec<u8>>) -> Value {
    b.as_deref().map(encode).unwrap_or(Value::Null)
}

fn cert(c: &CachedNoiseCert) -> Value {
    json!({"key": encode(&c.key), "not_before": c.not_before, "not_after": c.not_after})
}

/// The document for a device.
pub fn to_document(d: &Device) -> Value {
    let account = d.account.as_ref().map(|a| {
        json!({
            "details": opt_bytes(&a.details),
            "account_signature_key": opt_bytes(&a.account_signature_key),
            "account_signature": opt_bytes(&a.account_signature),
            "device_signature": opt_bytes(&a.device_signature),
        })
    });
    json!({
        "format": FORMAT,
        "pn": d.pn.as_ref().map(|j| j.to_string()),
        "lid": d.lid.as_ref().map(|j| j.to_string()),
        "push_name": d.push_name,
        "registration_id": d.registration_id,
        "noise_key": key_pair(&d.noise_key),
        "identity_key": key_pair(&d.identity_key),
        "signed_pre_key": {
            "id": d.signed_pre_key_id,
            "private": encode(d.signed_pre_key.private_key.serialize()),
            "public": encode(d.signed_pre_key.public_key.public_key_bytes()),
            "signature": encode(&d.signed_pre_key_signature),
        },
        "adv_secret_key": encode(&d.adv_secret_key),
        "account": account,
        "app_version": {
            "primary": d.app_version_primary,
            "secondary": d.app_version_secondary,
            "tertiary": d.app_version_tertiary,
            "last_fetched_ms": d.app_version_last_fetched_ms,
        },
        "prekeys": {
            "next_id": d.next_pre_key_id,
            "first_unuploaded_id": d.first_unupload_pre_key_id,
            "server_has_prekeys": d.server_has_prekeys,
        },
        "edge_routing_info": opt_bytes(&d.edge_routing_info),
        "props_hash": d.props_hash,
        "nct_salt": opt_bytes(&d.nct_salt),
        "server_cert_chain": d.server_cert_chain.as_ref().map(|c| json!({
            "intermediate": cert(&c.intermediate),
            "leaf": cert(&c.leaf),
        })),
        "login_counter": d.login_counter,
        "lid_migrated": d.lid_migrated,
        "last_signed_pre_key_rotation_ms": d.last_signed_pre_key_rotation_ms,
        "read_receipts_disabled": d.read_receipts_disabled,
    })
}

/// A key pair from `private` and `public`; the public key must belong to the private one.
pub fn read_key_pair(f: &Field<'_>) -> Result<KeyPair, AuthDocError> {
    let private_f = f.get("private")?;
    let public_f = f.get("public")?;
    let private_raw: [u8; 32] = private_f.bytes_exact()?;
    let public_raw = public_f.public_key()?;
    let private =
        PrivateKey::deserialize(&private_raw).map_err(|_| private_f.error(Problem::Invalid("not a Curve25519 private key")))?;
    let public = PublicKey::from_djb_public_key_bytes(&public_raw)
        .map_err(|_| public_f.error(Problem::Invalid("not a Curve25519 public key")))?;
    let derived = private.public_key().map_err(|_| private_f.error(Problem::Invalid("not a Curve25519 private key")))?;
    if derived.public_key_bytes() != public.public_key_bytes() {
        return Err(public_f.error(Problem::Invalid("does not match the private key")));
    }
    Ok(KeyPair::new(public, private))
}

fn read_jid(f: &Field<'_>) -> Result<Option<Jid>, AuthDocError> {
    match f.str_opt()? {
        None | Some("") => Ok(None),
        Some(s) => s.parse::<Jid>().map(Some).map_err(|_| f.error(Problem::Invalid("not a WhatsApp JID"))),
    }
}

fn read_cert(f: &Field<'_>) -> Result<CachedNoiseCert, AuthDocError> {
    Ok(CachedNoiseCert {
        key: f.get("key")?.bytes_exact()?,
        not_before: f.get("not_before")?.i64()?,
        not_after: f.get("not_after")?.i64()?,
    })
}

/// Reads a document written by [`to_document`] (bytes in any accepted form).
pub fn from_document(session: &str, doc: &Value) -> Result<Device, AuthDocError> {
    let root = Field::root(session, doc);
    if !doc.is_object() {
        return Err(root.error(Problem::WrongType { expected: "object", found: super::error::type_name(doc) }));
    }
    if let Some(fmt) = root.get("format")?.str_opt()?
        && fmt != FORMAT
    {
        return Err(root.get("format")?.error(Problem::Invalid("unknown document format (expected pgwa.auth.v1)")));
    }
    let spk = root.get("signed_pre_key")?;
    let spk_pair = read_key_pair(&spk)?;
    let signature: [u8; 64] = spk.get("signature")?.bytes_exact()?;
    let account = match root.get("account")?.optional() {
        None => None,
        Some(a) => Some(Arc::new(wa::ADVSignedDeviceIdentity {
            details: a.get("details")?.bytes_opt()?,
            account_signature_key: a.get("account_signature_key")?.bytes_opt()?,
            account_signature: a.get("account_signature")?.bytes_opt()?,
            device_signature: a.get("device_signature")?.bytes_opt()?,
        })),
    };
    let chain = match root.get("server_cert_chain")?.optional() {
        None => None,
        Some(c) => {
            Some(CachedServerCertChain { intermediate: read_cert(&c.get("intermediate")?)?, leaf: read_cert(&c.get("leaf")?)? })
        }
    };
    let app = root.get("app_version")?;
    let pk = root.get("prekeys")?;

    let mut d = Device::new();
    d.pn = read_jid(&root.get("pn")?)?;
    d.lid = read_jid(&root.get("lid")?)?;
    d.push_name = root.get("push_name")?.str_opt()?.unwrap_or_default().to_string();
    d.registration_id = root.get("registration_id")?.u32()?;
    d.noise_key = read_key_pair(&root.get("noise_key")?)?;
    d.identity_key = read_key_pair(&root.get("identity_key")?)?;
    d.signed_pre_key = spk_pair;
    d.signed_pre_key_id = spk.get("id")?.u32()?;
    d.signed_pre_key_signature = signature;
    d.adv_secret_key = root.get("adv_secret_key")?.bytes_exact()?;
    d.account = account;
    d.app_version_primary = app.get("primary")?.u32_or(d.app_version_primary)?;
    d.app_version_secondary = app.get("secondary")?.u32_or(d.app_version_secondary)?;
    d.app_version_tertiary = app.get("tertiary")?.u32_or(d.app_version_tertiary)?;
    d.app_version_last_fetched_ms = app.get("last_fetched_ms")?.i64_or(0)?;
    d.next_pre_key_id = pk.get("next_id")?.u32_or(0)?;
    d.first_unupload_pre_key_id = pk.get("first_unuploaded_id")?.u32_or(0)?;
    d.server_has_prekeys = pk.get("server_has_prekeys")?.bool_or(false)?;
    d.edge_routing_info = root.get("edge_routing_info")?.bytes_opt()?;
    d.props_hash = root.get("props_hash")?.str_opt()?.map(str::to_string);
    d.nct_salt = root.get("nct_salt")?.bytes_opt()?;
    d.server_cert_chain = chain;
    d.login_counter = root.get("login_counter")?.i32_or(0)?;
    d.lid_migrated = root.get("lid_migrated")?.bool_or(false)?;
    d.last_signed_pre_key_rotation_ms = root.get("last_signed_pre_key_rotation_ms")?.i64_or(0)?;
    d.read_receipts_disabled = root.get("read_receipts_disabled")?.bool_or(false)?;
    Ok(d)
}
