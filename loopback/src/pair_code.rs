//! Linking by pair code. The client registers a code-wrapped ephemeral; the
//! phone (the admin endpoint, given the code a user would type) answers with
//! its own; the client's key bundle then yields the ADV secret that keys the
//! usual pair-success.

use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail, ensure};
use wacore::crypto::hkdf_sha256_into;
use wacore::libsignal::crypto::aes_256_gcm_decrypt;
use wacore::libsignal::protocol::{KeyPair, PublicKey};
use wacore::pair_code::PairCodeUtils;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Node, SERVER_JID};

use crate::nodes::{attr, child, child_bytes, iq_error, iq_result};
use crate::pairing::{self, Linked};
use crate::session::{Role, Session};
use crate::state::{CodeFlow, Outbound, Shared};

pub fn answer(session: &Session, node: &Node) -> Vec<Node> {
    let Role::Unpaired { noise } = &session.role else {
        return vec![iq_error(node, 400, "bad-request")];
    };
    let reg = child(node, "link_code_companion_reg").expect("routed on this child");
    let result = match attr(reg, "stage").as_deref() {
        Some("companion_hello") => companion_hello(session, noise, node, reg),
        Some("companion_finish") => companion_finish(session, noise, node, reg).map(|()| Vec::new()),
        other => Err(anyhow!("unknown link_code_companion_reg stage {other:?}")),
    };
    result.unwrap_or_else(|e| {
        tracing::warn!("pair-code step refused: {e:#}");
        vec![iq_error(node, 400, "bad-request")]
    })
}

fn companion_hello(session: &Session, noise: &[u8; 32], node: &Node, reg: &Node) -> Result<Vec<Node>> {
    let phone = attr(reg, "jid").context("companion_hello has no jid")?.split('@').next().unwrap_or_default().to_string();
    let wrapped = child_bytes(reg, "link_code_pairing_wrapped_companion_ephemeral_pub")
        .context("companion_hello has no wrapped companion ephemeral")?
        .to_vec();
    ensure!(wrapped.len() == 80, "wrapped companion ephemeral is {} bytes, not 80", wrapped.len());
    let pairing_ref = session.shared.stanza_id("code").into_bytes();
    let mut inner = session.shared.lock();
    let pending = inner.pending.get_mut(noise).context("unpaired client is not pending")?;
    pending.code_flow = Some(CodeFlow {
        phone: phone.clone(),
        pairing_ref: pairing_ref.clone(),
        wrapped_companion_ephemeral: wrapped,
        ephemerals: None,
    });
    tracing::info!(phone, "client asked to link by pair code");
    let body = NodeBuilder::new("link_code_companion_reg")
        .children([NodeBuilder::new("link_code_pairing_ref").bytes(pairing_ref).build()])
        .build();
    Ok(vec![iq_result(node, vec![body])])
}

#[derive(Debug, serde::Serialize)]
pub struct CodeEntered {
    pub phone: String,
}

/// Plays the phone on which the user typed `code`: sends primary_hello.
pub fn enter_code(shared: &Arc<Shared>, phone: &str, code: &str) -> Result<CodeEntered> {
    let code = code.trim().replace('-', "").to_uppercase();
    let (noise, wrapped) = {
        let inner = shared.lock();
        inner
            .pending
            .iter()
            .find_map(|(noise, p)| {
                let flow = p.code_flow.as_ref()?;
                (flow.phone == phone && flow.ephemerals.is_none()).then(|| (*noise, flow.wrapped_companion_ephemeral.clone()))
            })
            .with_context(|| format!("no client is waiting to link {phone} by pair code"))?
    };
    // Same salt ‖ iv ‖ AES-CTR layout in both directions; PBKDF2 is slow, so
    // it runs outside the lock.
    let companion_ephemeral = PairCodeUtils::decrypt_primary_ephemeral_pub(&wrapped, &code)
        .map_err(|e| anyhow!("unwrapping companion ephemeral: {e}"))?;
    let primary = KeyPair::generate(&mut rand::rng());
    let primary_pub: [u8; 32] = primary.public_key.public_key_bytes().try_into().expect("32-byte key");
    let wrapped_primary = PairCodeUtils::encrypt_ephemeral_pub(&primary_pub, &code);

    let mut inner = shared.lock();
    let inner = &mut *inner;
    let push_name = inner.pending.get(&noise).map(|p| p.push_name.clone()).unwrap_or_default();
    let identity = inner.dir.ensure_account(Some(phone), &push_name).acct.public_key.public_key_bytes().to_vec();
    let pending = inner.pending.get_mut(&noise).context("the client disconnected while the code was entered")?;
    let flow = pending.code_flow.as_mut().expect("found with a code flow above");
    flow.ephemerals = Some((primary, companion_ephemeral));
    let hello = NodeBuilder::new("link_code_companion_reg")
        .attr("stage", "primary_hello")
        .children([
            NodeBuilder::new("link_code_pairing_wrapped_primary_ephemeral_pub").bytes(wrapped_primary.to_vec()).build(),
            NodeBuilder::new("primary_identity_pub").bytes(identity).build(),
            NodeBuilder::new("link_code_pairing_ref").bytes(flow.pairing_ref.clone()).build(),
        ])
        .build();
    let notification = NodeBuilder::new("notification")
        .attr("from", SERVER_JID)
        .attr("id", shared.stanza_id("notif"))
        .attr("type", "link_code_companion_reg")
        .attr("t", crate::nodes::now().to_string())
        .children([hello])
        .build();
    pending.tx.send(Outbound::Node(notification)).map_err(|_| anyhow!("client disconnected"))?;
    Ok(CodeEntered { phone: phone.to_string() })
}

/// The client's key bundle: proves it knew the code and seeds the ADV secret.
fn companion_finish(session: &Session, noise: &[u8; 32], node: &Node, reg: &Node) -> Result<()> {
    let bundle = child_bytes(reg, "link_code_pairing_wrapped_key_bundle").context("companion_finish has no key bundle")?;
    let companion_identity: [u8; 32] = child_bytes(reg, "companion_identity_public")
        .context("companion_finish has no companion_identity_public")?
        .try_into()
        .map_err(|_| anyhow!("companion_identity_public is not 32 bytes"))?;
    ensure!(bundle.len() > 44, "key bundle is only {} bytes", bundle.len());
    let (phone, eph_shared, acct) = {
        let inner = session.shared.lock();
        let flow =
            inner.pending.get(noise).and_then(|p| p.code_flow.as_ref()).context("companion_finish without a pair-code flow")?;
        let (primary, companion_eph) = flow.ephemerals.as_ref().context("companion_finish before the code was entered")?;
        let companion_eph =
            PublicKey::from_djb_public_key_bytes(companion_eph).map_err(|e| anyhow!("companion ephemeral: {e}"))?;
        let eph_shared = primary.private_key.calculate_agreement(&companion_eph).map_err(|e| anyhow!("ephemeral DH: {e}"))?;
        let acct = inner.dir.account(&flow.phone).context("pair-code account vanished")?.acct.clone();
        (flow.phone.clone(), eph_shared, acct)
    };
    let mut key = [0u8; 32];
    hkdf_sha256_into(&eph_shared, Some(&bundle[..32]), b"link_code_pairing_key_bundle_encryption_key", &mut key)
        .map_err(|_| anyhow!("deriving key-bundle key"))?;
    let iv: [u8; 12] = bundle[32..44].try_into().expect("12 bytes");
    let mut plain = Vec::new();
    aes_256_gcm_decrypt(&key, &iv, b"", &bundle[44..], &mut plain)
        .map_err(|e| anyhow!("decrypting key bundle (wrong code?): {e:?}"))?;
    ensure!(plain.len() == 96, "key bundle plaintext is {} bytes, not 96", plain.len());
    if plain[..32] != companion_identity || plain[32..64] != *acct.public_key.public_key_bytes() {
        bail!("key bundle names other identities than the companion and this phone");
    }
    let companion_pub =
        PublicKey::from_djb_public_key_bytes(&companion_identity).map_err(|e| anyhow!("companion identity: {e}"))?;
    let id_shared = acct.private_key.calculate_agreement(&companion_pub).map_err(|e| anyhow!("identity DH: {e}"))?;
    let mut adv_secret = [0u8; 32];
    hkdf_sha256_into(&[&eph_shared[..], &id_shared[..], &plain[64..]].concat(), None, b"adv_secret", &mut adv_secret)
        .map_err(|_| anyhow!("deriving adv secret"))?;
    // The result first: pair-success must not overtake the answer the client awaits.
    session.send(iq_result(node, vec![]));
    let Linked { jid, .. } = pairing::link_companion(&session.shared, noise, &companion_identity, &adv_secret, Some(&phone))?;
    tracing::info!(jid, "pair-code link accepted");
    Ok(())
}
