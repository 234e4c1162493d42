//! Linking by QR: the server offers refs, the admin endpoint plays the phone
//! that scans the QR, signs the companion into the account (ADV) and, once the
//! companion countersigned, restarts its stream with 515.

use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use wacore::libsignal::crypto::hmac_sha256;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, SERVER_JID};
use waproto::buffa::Message;
use waproto::whatsapp as wa;

use crate::accounts::{Device, SignalKeys};
use crate::devices::{self, Change};
use crate::nodes::{self, attr, child};
use crate::state::{Outbound, Shared};

const ADV_PREFIX_ACCOUNT_SIGNATURE: &[u8] = &[6, 0];
const QR_REFS: usize = 6;
const RESTART_DELAY: std::time::Duration = std::time::Duration::from_millis(200);

/// The Signal keys an unpaired client announces in its registration payload.
pub fn registration_keys(payload: &wa::ClientPayload) -> Result<SignalKeys> {
    let reg = payload.device_pairing_data.as_option().context("registration payload has no devicePairingData")?;
    let field = |name: &str, v: &Option<Vec<u8>>| -> Result<Vec<u8>> {
        v.clone().with_context(|| format!("devicePairingData has no {name}"))
    };
    let uint = |b: &[u8]| b.iter().fold(0u32, |acc, x| (acc << 8) | u32::from(*x));
    let key32 = |name: &str, b: Vec<u8>| -> Result<[u8; 32]> {
        b.try_into().map_err(|_| anyhow!("devicePairingData {name} is not 32 bytes"))
    };
    Ok(SignalKeys {
        registration_id: uint(&field("eRegid", &reg.e_regid)?),
        identity: key32("eIdent", field("eIdent", &reg.e_ident)?)?,
        signed_prekey_id: uint(&field("eSkeyId", &reg.e_skey_id)?),
        signed_prekey: key32("eSkeyVal", field("eSkeyVal", &reg.e_skey_val)?)?,
        signed_prekey_sig: field("eSkeySig", &reg.e_skey_sig)?,
        prekeys: Vec::new(),
    })
}

pub fn new_refs() -> Vec<String> {
    (0..QR_REFS)
        .map(|_| {
            let raw: [u8; 18] = rand::random();
            format!("2@{}", B64.encode(raw))
        })
        .collect()
}

/// `from` must be exactly the server JID or the client ignores the stanza.
pub fn pair_device_iq(id: String, refs: &[String]) -> Node {
    let refs = refs.iter().map(|r| NodeBuilder::new("ref").bytes(r.as_bytes().to_vec()).build());
    NodeBuilder::new("iq")
        .attr("from", SERVER_JID)
        .attr("type", "set")
        .attr("id", id)
        .attr("xmlns", "md")
        .children([NodeBuilder::new("pair-device").children(refs).build()])
        .build()
}

/// The fields of a scanned QR that the phone needs.
struct Qr {
    pairing_ref: String,
    noise: [u8; 32],
    identity: [u8; 32],
    adv_secret: Vec<u8>,
}

fn parse_qr(qr: &str) -> Result<Qr> {
    let parts: Vec<&str> = qr.trim().split(',').collect();
    if parts.len() < 4 {
        bail!("QR has {} comma-separated fields, expected at least 4", parts.len());
    }
    let decode32 = |name: &str, s: &str| -> Result<[u8; 32]> {
        let b = B64.decode(s).with_context(|| format!("QR {name} is not base64"))?;
        b.try_into().map_err(|_| anyhow!("QR {name} is not 32 bytes"))
    };
    Ok(Qr {
        pairing_ref: parts[0].to_string(),
        noise: decode32("noise key", parts[1])?,
        identity: decode32("identity key", parts[2])?,
        adv_secret: B64.decode(parts[3]).context("QR adv secret is not base64")?,
    })
}

#[derive(Debug, serde::Serialize)]
pub struct Linked {
    pub jid: String,
    pub lid: String,
}

/// Plays the phone scanning `qr`: links the companion into the account of
/// `phone` (a new account when None) and sends it pair-success.
pub fn scan(shared: &Arc<Shared>, qr: &str, phone: Option<&str>) -> Result<Linked> {
    let qr = parse_qr(qr)?;
    {
        let inner = shared.lock();
        let pending = inner.pending.get(&qr.noise).context("no unpaired client with this QR's noise key is connected")?;
        if !pending.refs.contains(&qr.pairing_ref) {
            bail!("QR ref {} was not issued to this client", qr.pairing_ref);
        }
    }
    link_companion(shared, &qr.noise, &qr.identity, &qr.adv_secret, phone)
}

/// The phone's half of linking, shared by QR and pair code: adds the device
/// to the account, signs it (ADV) and sends pair-success keyed by `adv_secret`.
pub fn link_companion(
    shared: &Shared,
    noise: &[u8; 32],
    companion_identity: &[u8; 32],
    adv_secret: &[u8],
    phone: Option<&str>,
) -> Result<Linked> {
    let mut inner = shared.lock();
    let inner = &mut *inner;
    let pending = inner.pending.get_mut(noise).context("the unpaired client disconnected")?;
    if pending.sent_success.is_some() {
        bail!("this client was already linked and is finishing its pairing");
    }
    let account = inner.dir.ensure_account(phone, &pending.push_name);
    let device_id = account.next_device;
    account.next_device += 1;
    let key_index = u32::from(device_id);
    let identity_hmac = sign_companion(account, key_index, companion_identity, adv_secret)?;
    let mut keys = pending.keys.clone();
    keys.identity = *companion_identity;
    account.devices.insert(device_id, Device { id: device_id, noise_static: *noise, key_index, keys, signed_identity: None });
    let jid = Jid::pn_device(&account.phone, device_id);
    let lid = Jid::lid_device(&account.lid, device_id);
    let id = shared.stanza_id("pair");
    let success = NodeBuilder::new("iq")
        .attr("from", SERVER_JID)
        .attr("type", "set")
        .attr("id", id.clone())
        .attr("xmlns", "md")
        .attr("t", nodes::now().to_string())
        .children([NodeBuilder::new("pair-success")
            .children([
                NodeBuilder::new("device-identity").bytes(identity_hmac).build(),
                NodeBuilder::new("device").attr("jid", jid.clone()).attr("lid", lid.clone()).build(),
                NodeBuilder::new("platform").attr("name", "android").build(),
                // Stored by the client as its push name, which spares every
                // later login the slow first-sync path.
                NodeBuilder::new("biz").attr("name", account.push_name.clone()).build(),
            ])
            .build()])
        .build();
    pending.sent_success = Some((id, account.phone.clone(), device_id));
    pending.tx.send(Outbound::Node(success)).map_err(|_| anyhow!("unpaired client disconnected before pair-success"))?;
    Ok(Linked { jid: jid.to_string(), lid: lid.to_string() })
}

/// `ADVSignedDeviceIdentityHMAC` binding `companion_identity` to the account.
fn sign_companion(
    account: &crate::accounts::Account,
    key_index: u32,
    companion_identity: &[u8; 32],
    adv_secret: &[u8],
) -> Result<Vec<u8>> {
    let details = wa::ADVDeviceIdentity {
        raw_id: Some(account.raw_id),
        timestamp: Some(nodes::now()),
        key_index: Some(key_index),
        account_type: Some(wa::ADVEncryptionType::E2EE),
        device_type: Some(wa::ADVEncryptionType::E2EE),
    }
    .encode_to_vec();
    let mut msg = ADV_PREFIX_ACCOUNT_SIGNATURE.to_vec();
    msg.extend_from_slice(&details);
    msg.extend_from_slice(companion_identity);
    let account_signature = account
        .acct
        .private_key
        .calculate_signature(&msg, &mut rand::rng())
        .map_err(|e| anyhow!("signing companion identity: {e}"))?;
    let signed = wa::ADVSignedDeviceIdentity {
        details: Some(details),
        account_signature_key: Some(account.acct.public_key.public_key_bytes().to_vec()),
        account_signature: Some(account_signature.to_vec()),
        device_signature: None,
    }
    .encode_to_vec();
    let hmac = hmac_sha256(adv_secret, &signed);
    Ok(wa::ADVSignedDeviceIdentityHMAC {
        details: Some(signed),
        hmac: Some(hmac.to_vec()),
        account_type: Some(wa::ADVEncryptionType::E2EE),
    }
    .encode_to_vec())
}

/// Handles the companion's answer to pair-success; returns false when `node`
/// is not that answer.
pub fn on_pair_answer(shared: &Shared, noise: &[u8; 32], node: &Node) -> bool {
    let mut inner = shared.lock();
    let inner = &mut *inner;
    let Some(pending) = inner.pending.get(noise) else { return false };
    let Some((id, phone, device)) = pending.sent_success.clone() else { return false };
    if attr(node, "id").as_deref() != Some(id.as_str()) {
        return false;
    }
    let tx = pending.tx.clone();
    if attr(node, "type").as_deref() == Some("error") {
        tracing::warn!(phone, device, "companion refused pair-success: {node:?}");
        if let Some(account) = inner.dir.account_mut(&phone) {
            account.devices.remove(&device);
        }
        inner.pending.remove(noise);
        return true;
    }
    let signed =
        child(node, "pair-device-sign").and_then(|s| child(s, "device-identity")).and_then(nodes::bytes).map(<[u8]>::to_vec);
    if let Some(dev) = inner.dir.device_mut(&phone, device) {
        dev.signed_identity = signed;
    }
    inner.pending.remove(noise);
    devices::announce(shared, inner, &phone, device, Change::Added);
    tracing::info!(phone, device, "companion linked; restarting its stream (515)");
    // The client sends pair-device-sign before it marks the coming disconnect
    // as expected; a 515 that overtakes that mark leaves the flag set on the
    // next socket, which the client then drops once more.
    tokio::spawn(async move {
        tokio::time::sleep(RESTART_DELAY).await;
        let _ = tx.send(Outbound::Node(NodeBuilder::new("stream:error").attr("code", "515").build()));
        let _ = tx.send(Outbound::Close);
    });
    true
}
