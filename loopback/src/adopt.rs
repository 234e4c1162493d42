//! Adopting a companion device that linked somewhere else (a session imported from
//! Baileys or another client): the server learns it as if the phone had linked it
//! before the server started, so the device logs in (noise static key check) without a
//! QR or pair code, and other clients get its Signal keys and device list entry.
//!
//! Nothing is verified against an account key the server does not have: the server
//! plays the phone with its own `acct` key, so the adopted device's ADV identity (signed
//! by the real phone) is kept as given and only handed out in its bundles.

use anyhow::{Context, Result, anyhow, ensure};
use serde::Deserialize;
use wacore_binary::Jid;

use crate::accounts::{Device, SignalKeys};
use crate::devices::{self, Change};
use crate::pairing::Linked;
use crate::state::Shared;

/// What the server must know of a device it did not link. Keys are raw bytes: X25519
/// public keys of 32 bytes, or 33 with libsignal's 0x05 type prefix (stripped).
/// `POST /admin/adopt` takes the same fields as JSON (byte strings as number arrays).
#[derive(Clone, Debug, Deserialize)]
pub struct AdoptedDevice {
    /// The account's phone number, digits only (the user of `me.id`).
    pub phone: String,
    /// The account's LID user, digits only (the user of `me.lid`).
    pub lid: String,
    /// The companion's device id (the `:N` of `me.id`); 0 is the phone itself.
    pub device: u16,
    #[serde(default)]
    pub push_name: String,
    /// The device's noise static public key (Baileys `noiseKey.public`): its login.
    pub noise_static: Vec<u8>,
    /// The device's Signal identity public key (Baileys `signedIdentityKey.public`).
    pub identity: Vec<u8>,
    pub registration_id: u32,
    pub signed_prekey_id: u32,
    pub signed_prekey: Vec<u8>,
    pub signed_prekey_sig: Vec<u8>,
    /// The `ADVSignedDeviceIdentity` (Baileys `account`), protobuf-encoded, when known:
    /// served with the device's bundles and read for its key index.
    #[serde(default)]
    pub signed_identity: Option<Vec<u8>>,
}

/// A 32-byte X25519 public key from raw or 0x05-prefixed bytes.
pub fn public_key32(name: &str, bytes: &[u8]) -> Result<[u8; 32]> {
    let raw = match bytes {
        [0x05, rest @ ..] if rest.len() == 32 => rest,
        _ => bytes,
    };
    raw.try_into().map_err(|_| anyhow!("{name} is {} bytes, not a 32-byte public key (or 33 with 0x05)", bytes.len()))
}

/// The key index in an `ADVSignedDeviceIdentity`'s details, if it has one.
fn key_index_of(signed_identity: &[u8]) -> Option<u32> {
    let signed = waproto::codec::adv_signed_device_identity_decode(signed_identity).ok()?;
    let details = waproto::codec::adv_device_identity_decode(signed.details.as_deref()?).ok()?;
    details.key_index
}

/// Registers `device` in its account (created with the given LID when absent) and
/// tells online devices about it. Refused when the device id is taken or another
/// device already has its noise key.
pub fn adopt(shared: &Shared, device: AdoptedDevice) -> Result<Linked> {
    let digits = |name: &str, v: &str| {
        ensure!(!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()), "{name} {v:?} is not a user number");
        Ok(())
    };
    digits("phone", &device.phone)?;
    digits("lid", &device.lid)?;
    ensure!(device.device != 0, "device 0 is the phone, which this server plays; adopt companions only");
    let noise = public_key32("noise_static", &device.noise_static)?;
    let keys = SignalKeys {
        registration_id: device.registration_id,
        identity: public_key32("identity", &device.identity)?,
        signed_prekey_id: device.signed_prekey_id,
        signed_prekey: public_key32("signed_prekey", &device.signed_prekey)?,
        signed_prekey_sig: device.signed_prekey_sig.clone(),
        prekeys: Vec::new(),
    };
    ensure!(keys.signed_prekey_sig.len() == 64, "signed_prekey_sig is {} bytes, not 64", keys.signed_prekey_sig.len());
    let key_index = device.signed_identity.as_deref().and_then(key_index_of).unwrap_or(u32::from(device.device));

    let mut inner = shared.lock();
    let inner = &mut *inner;
    if let Some((a, d)) = inner.dir.device_by_noise(&noise) {
        anyhow::bail!("this noise key is already device {}:{}", a.phone, d.id);
    }
    let account = inner.dir.ensure_account_with_lid(&device.phone, &device.lid, &device.push_name)?;
    ensure!(!account.devices.contains_key(&device.device), "device {}:{} already exists", device.phone, device.device);
    account.devices.insert(
        device.device,
        Device { id: device.device, noise_static: noise, key_index, keys, signed_identity: device.signed_identity },
    );
    account.next_device = account.next_device.max(device.device.checked_add(1).context("device id overflows")?);
    let linked = Linked {
        jid: Jid::pn_device(&account.phone, device.device).to_string(),
        lid: Jid::lid_device(&account.lid, device.device).to_string(),
    };
    devices::announce(shared, inner, &device.phone, device.device, Change::Added);
    tracing::info!(phone = device.phone, device = device.device, key_index, "adopted a device linked elsewhere");
    Ok(linked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::ServerKeys;

    fn device(noise: u8, id: u16) -> AdoptedDevice {
        let mut identity = vec![0x05];
        identity.extend([7u8; 32]);
        AdoptedDevice {
            phone: "15551230000".into(),
            lid: "100000012340000".into(),
            device: id,
            push_name: "Salon Aurora".into(),
            noise_static: vec![noise; 32],
            identity,
            registration_id: 11280,
            signed_prekey_id: 1,
            signed_prekey: vec![9; 32],
            signed_prekey_sig: vec![1; 64],
            signed_identity: None,
        }
    }

    #[test]
    fn an_adopted_device_is_known_by_its_noise_key_and_lid() {
        let shared = Shared::new(ServerKeys::generate());
        let linked = adopt(&shared, device(3, 21)).unwrap();
        assert_eq!(linked.jid, "15551230000:21@s.whatsapp.net");
        assert_eq!(linked.lid, "100000012340000:21@lid");
        let inner = shared.lock();
        let (account, dev) = inner.dir.device_by_noise(&[3; 32]).expect("known by its noise key");
        assert_eq!(
            (account.phone.as_str(), account.lid.as_str(), account.push_name.as_str()),
            ("15551230000", "100000012340000", "Salon Aurora")
        );
        assert_eq!((dev.id, dev.key_index, dev.keys.identity, dev.keys.registration_id), (21, 21, [7; 32], 11280));
        assert_eq!(account.next_device, 22, "a later QR link gets a new device id");
        assert_eq!(inner.dir.phone_for_lid("100000012340000"), Some("15551230000"));
    }

    #[test]
    fn a_second_device_joins_the_account_and_conflicts_are_refused() {
        let shared = Shared::new(ServerKeys::generate());
        adopt(&shared, device(3, 21)).unwrap();
        adopt(&shared, device(4, 5)).unwrap();
        assert_eq!(shared.lock().dir.account("15551230000").unwrap().next_device, 22);
        assert!(adopt(&shared, device(5, 21)).is_err(), "device id taken");
        assert!(adopt(&shared, device(3, 22)).is_err(), "noise key taken");
        let mut other_lid = device(6, 23);
        other_lid.lid = "100000099990000".into();
        assert!(adopt(&shared, other_lid).is_err(), "the account has another LID");
        let mut bad = device(7, 24);
        bad.identity = vec![1; 31];
        assert!(adopt(&shared, bad).is_err(), "a 31-byte identity key");
        assert!(adopt(&shared, device(8, 0)).is_err(), "device 0 is the phone");
    }

    #[test]
    fn the_key_index_comes_from_the_adv_identity() {
        use waproto::buffa::Message;
        use waproto::whatsapp as wa;
        let details = wa::ADVDeviceIdentity { raw_id: Some(1), key_index: Some(9), ..Default::default() }.encode_to_vec();
        let signed = wa::ADVSignedDeviceIdentity { details: Some(details), ..Default::default() }.encode_to_vec();
        let shared = Shared::new(ServerKeys::generate());
        let mut d = device(3, 21);
        d.signed_identity = Some(signed.clone());
        adopt(&shared, d).unwrap();
        let inner = shared.lock();
        let dev = inner.dir.device("15551230000", 21).unwrap();
        assert_eq!((dev.key_index, dev.signed_identity.as_deref()), (9, Some(signed.as_slice())));
    }
}
