//! Who exists on this server: accounts (phones) and their companion devices.
//! Kept in memory for the server's life; the server plays every phone, so each
//! account owns the `acct` identity that signs its companions.

use std::collections::{BTreeMap, HashMap};

use wacore::libsignal::protocol::KeyPair;

/// A device's public Signal keys as the server hands them out in bundles.
#[derive(Clone, Debug)]
pub struct SignalKeys {
    pub registration_id: u32,
    pub identity: [u8; 32],
    pub signed_prekey_id: u32,
    pub signed_prekey: [u8; 32],
    pub signed_prekey_sig: Vec<u8>,
    /// One-time prekeys, each handed out once.
    pub prekeys: Vec<(u32, [u8; 32])>,
}

pub struct Device {
    pub id: u16,
    pub noise_static: [u8; 32],
    pub key_index: u32,
    pub keys: SignalKeys,
    /// The `ADVSignedDeviceIdentity` the companion returned in pair-device-sign.
    pub signed_identity: Option<Vec<u8>>,
}

pub struct Account {
    pub phone: String,
    pub lid: String,
    pub push_name: String,
    pub acct: KeyPair,
    pub raw_id: u32,
    pub next_device: u16,
    /// Device 0, the phone: it exists only so senders have a bundle for it.
    pub phone_keys: SignalKeys,
    pub devices: BTreeMap<u16, Device>,
}

impl Account {
    /// Key indexes of the companions in device order, for key-index lists.
    pub fn key_indexes(&self) -> Vec<u32> {
        self.devices.values().map(|d| d.key_index).collect()
    }
}

#[derive(Default)]
pub struct Directory {
    accounts: HashMap<String, Account>,
    lid_to_phone: HashMap<String, String>,
    next_phone: u64,
    next_lid: u64,
}

impl Directory {
    pub fn account(&self, phone: &str) -> Option<&Account> {
        self.accounts.get(phone)
    }

    pub fn account_mut(&mut self, phone: &str) -> Option<&mut Account> {
        self.accounts.get_mut(phone)
    }

    pub fn phone_for_lid(&self, lid: &str) -> Option<&str> {
        self.lid_to_phone.get(lid).map(String::as_str)
    }

    pub fn device(&self, phone: &str, device: u16) -> Option<&Device> {
        self.accounts.get(phone)?.devices.get(&device)
    }

    pub fn device_mut(&mut self, phone: &str, device: u16) -> Option<&mut Device> {
        self.accounts.get_mut(phone)?.devices.get_mut(&device)
    }

    /// Returns the account for `phone`, creating it (with a fresh number when
    /// `phone` is None) on first use.
    pub fn ensure_account(&mut self, phone: Option<&str>, push_name: &str) -> &mut Account {
        let phone = match phone {
            Some(p) => p.to_string(),
            None => loop {
                self.next_phone += 1;
                let candidate = format!("1555{:07}", self.next_phone);
                if !self.accounts.contains_key(&candidate) {
                    break candidate;
                }
            },
        };
        if !self.accounts.contains_key(&phone) {
            self.next_lid += 1;
            let lid = format!("{}", 100_000_000_000_000u64 + self.next_lid);
            self.lid_to_phone.insert(lid.clone(), phone.clone());
            self.accounts.insert(phone.clone(), new_account(&phone, &lid, push_name));
        }
        self.accounts.get_mut(&phone).expect("inserted above")
    }

    /// Creates the account for `phone` with the LID it already has elsewhere (a device
    /// adopted from a real link, `crate::adopt`); an existing account must have that LID.
    pub fn ensure_account_with_lid(&mut self, phone: &str, lid: &str, push_name: &str) -> anyhow::Result<&mut Account> {
        if let Some(owner) = self.lid_to_phone.get(lid).filter(|p| p.as_str() != phone) {
            anyhow::bail!("LID {lid} belongs to account {owner}");
        }
        if let Some(existing) = self.accounts.get(phone).map(|a| a.lid.clone()) {
            anyhow::ensure!(existing == lid, "account {phone} exists with LID {existing}, not {lid}");
            return Ok(self.accounts.get_mut(phone).expect("checked above"));
        }
        self.lid_to_phone.insert(lid.to_string(), phone.to_string());
        Ok(self.accounts.entry(phone.to_string()).or_insert_with(|| new_account(phone, lid, push_name)))
    }

    /// Finds the device whose noise static is `noise`, for login checks.
    pub fn device_by_noise(&self, noise: &[u8; 32]) -> Option<(&Account, &Device)> {
        self.accounts.values().find_map(|a| a.devices.values().find(|d| &d.noise_static == noise).map(|d| (a, d)))
    }
}

/// A new account with no companions yet; the server holds its phone's keys.
fn new_account(phone: &str, lid: &str, push_name: &str) -> Account {
    let acct = KeyPair::generate(&mut rand::rng());
    let phone_keys = phone_signal_keys(&acct);
    Account {
        phone: phone.to_string(),
        lid: lid.to_string(),
        push_name: if push_name.is_empty() { format!("Loopback {phone}") } else { push_name.to_string() },
        acct,
        raw_id: rand::random::<u32>() >> 1,
        next_device: 1,
        phone_keys,
        devices: BTreeMap::new(),
    }
}

/// The phone's own Signal bundle: identity = acct, so ADV and Signal agree.
fn phone_signal_keys(acct: &KeyPair) -> SignalKeys {
    let mut rng = rand::rng();
    let signed = KeyPair::generate(&mut rng);
    let sig =
        acct.private_key.calculate_signature(&signed.public_key.serialize(), &mut rng).expect("XEdDSA signing with a fresh key");
    let prekeys = (1..=20)
        .map(|id| {
            let kp = KeyPair::generate(&mut rng);
            (id, kp.public_key.public_key_bytes().try_into().expect("32-byte key"))
        })
        .collect();
    SignalKeys {
        registration_id: rand::random::<u32>() & 0x3fff,
        identity: acct.public_key.public_key_bytes().try_into().expect("32-byte key"),
        signed_prekey_id: 1,
        signed_prekey: signed.public_key.public_key_bytes().try_into().expect("32-byte key"),
        signed_prekey_sig: sig.to_vec(),
        prekeys,
    }
}
