//! A real Signal exchange between two devices whose whole state lives in PgBackend:
//! Alice builds a session from Bob's prekey bundle, both encrypt and decrypt, the pool is
//! dropped, a fresh pool and fresh backends continue the same ratchet; then a group
//! message with sender keys, likewise across a reconnect.
//!
//! The libsignal store traits are adapted to our Backend the simple way (load from the
//! store, save back after each call), which is what whatsapp-rust's cache does at flush.

use async_trait::async_trait;
use pgwa_pg::keys::PgBackend;
use pgwa_testkit::TestDb;
use sqlx::postgres::PgPoolOptions;
use whatsapp_rust::wacore::libsignal::protocol::*;
use whatsapp_rust::wacore::store::Device;
use whatsapp_rust::wacore::store::traits::{DeviceStore, SignalStore};

type SResult<T> = std::result::Result<T, SignalProtocolError>;

fn be(e: impl std::error::Error + Send + Sync + 'static) -> SignalProtocolError {
    SignalProtocolError::BackendError("pgwa store", Box::new(e))
}

/// libsignal's stores over one session's PgBackend.
#[derive(Clone)]
struct Stores {
    backend: PgBackend,
    identity: IdentityKeyPair,
    registration_id: u32,
}

impl Stores {
    async fn open(pool: &sqlx::PgPool, session: &str) -> Self {
        let backend = PgBackend::offline(pool.clone(), session);
        let device = backend.load().await.unwrap().expect("auth document");
        let identity = IdentityKeyPair::new(IdentityKey::new(device.identity_key.public_key), device.identity_key.private_key);
        Self { backend, identity, registration_id: device.registration_id }
    }
}

#[async_trait]
impl SessionStore for Stores {
    async fn load_session(&self, a: &ProtocolAddress) -> SResult<Option<SessionRecord>> {
        match self.backend.get_session(a.as_str()).await.map_err(be)? {
            None => Ok(None),
            Some(b) => Ok(Some(SessionRecord::deserialize(&b)?)),
        }
    }
    async fn has_session(&self, a: &ProtocolAddress) -> SResult<bool> {
        self.backend.has_session(a.as_str()).await.map_err(be)
    }
    async fn store_session(&mut self, a: &ProtocolAddress, r: SessionRecord) -> SResult<()> {
        self.backend.put_session(a.as_str(), &r.serialize()?).await.map_err(be)
    }
}

#[async_trait]
impl IdentityKeyStore for Stores {
    async fn get_identity_key_pair(&self) -> SResult<IdentityKeyPair> {
        Ok(self.identity.clone())
    }
    async fn get_local_registration_id(&self) -> SResult<u32> {
        Ok(self.registration_id)
    }
    async fn save_identity(&mut self, a: &ProtocolAddress, id: &IdentityKey) -> SResult<IdentityChange> {
        let old = self.backend.load_identity(a.as_str()).await.map_err(be)?;
        let new: [u8; 32] = id.public_key().public_key_bytes().try_into().unwrap();
        self.backend.put_identity(a.as_str(), new).await.map_err(be)?;
        Ok(IdentityChange::from_changed(old.is_some_and(|o| o != new)))
    }
    async fn is_trusted_identity(&self, a: &ProtocolAddress, id: &IdentityKey, _: Direction) -> SResult<bool> {
        let known = self.backend.load_identity(a.as_str()).await.map_err(be)?;
        Ok(known.is_none_or(|k| k.as_slice() == id.public_key().public_key_bytes()))
    }
    async fn get_identity(&self, a: &ProtocolAddress) -> SResult<Option<IdentityKey>> {
        match self.backend.load_identity(a.as_str()).await.map_err(be)? {
            None => Ok(None),
            Some(k) => Ok(Some(IdentityKey::new(PublicKey::from_djb_public_key_bytes(&k)?))),
        }
    }
}

#[async_trait]
impl PreKeyStore for Stores {
    async fn get_pre_key(&self, id: PreKeyId) -> SResult<PreKeyRecord> {
        let b = self.backend.load_prekey(id.into()).await.map_err(be)?.ok_or(SignalProtocolError::InvalidPreKeyId)?;
        PreKeyRecord::deserialize(&b)
    }
    async fn save_pre_key(&mut self, id: PreKeyId, r: &PreKeyRecord) -> SResult<()> {
        self.backend.store_prekey(id.into(), &r.serialize()?, false).await.map_err(be)
    }
    async fn remove_pre_key(&mut self, id: PreKeyId) -> SResult<()> {
        self.backend.remove_prekey(id.into()).await.map_err(be)
    }
}

#[async_trait]
impl SignedPreKeyStore for Stores {
    async fn get_signed_pre_key(&self, id: SignedPreKeyId) -> SResult<SignedPreKeyRecord> {
        let b =
            self.backend.load_signed_prekey(id.into()).await.map_err(be)?.ok_or(SignalProtocolError::InvalidSignedPreKeyId)?;
        SignedPreKeyRecord::deserialize(&b)
    }
    async fn save_signed_pre_key(&mut self, id: SignedPreKeyId, r: &SignedPreKeyRecord) -> SResult<()> {
        self.backend.store_signed_prekey(id.into(), &r.serialize()?).await.map_err(be)
    }
}

#[async_trait]
impl SenderKeyStore for Stores {
    async fn store_sender_key(&mut self, n: &SenderKeyName, r: SenderKeyRecord) -> SResult<()> {
        self.backend.put_sender_key(n.cache_key(), &r.serialize()?).await.map_err(be)
    }
    async fn load_sender_key(&self, n: &SenderKeyName) -> SResult<Option<SenderKeyRecord>> {
        match self.backend.get_sender_key(n.cache_key()).await.map_err(be)? {
            None => Ok(None),
            Some(b) => Ok(Some(SenderKeyRecord::deserialize(&b)?)),
        }
    }
}

fn rng() -> rand010::rngs::StdRng {
    rand010::make_rng()
}

const ALICE: &str = "15550003333@s.whatsapp.net";
const BOB: &str = "15550004444@s.whatsapp.net";

fn addr(name: &str) -> ProtocolAddress {
    ProtocolAddress::new(name, 1.into())
}

/// Creates the session row and its credentials (auth document) in Postgres.
async fn enroll(pool: &sqlx::PgPool, session: &str) {
    sqlx::query("SELECT wa.add_session($1, start => false)").bind(session).execute(pool).await.unwrap();
    PgBackend::offline(pool.clone(), session).save(&Device::new()).await.unwrap();
}

/// Bob publishes a signed prekey (from his auth document) and one one-time prekey.
async fn bob_bundle(pool: &sqlx::PgPool) -> PreKeyBundle {
    let b = PgBackend::offline(pool.clone(), "bob");
    let d = b.load().await.unwrap().unwrap();
    let spk = SignedPreKeyRecord::new(
        d.signed_pre_key_id.into(),
        Timestamp::from_epoch_millis(0),
        &d.signed_pre_key,
        &d.signed_pre_key_signature,
    );
    b.store_signed_prekey(d.signed_pre_key_id, &spk.serialize().unwrap()).await.unwrap();
    let one_time = KeyPair::generate(&mut rng());
    b.store_prekey(31, &PreKeyRecord::new(31.into(), &one_time).serialize().unwrap(), true).await.unwrap();
    PreKeyBundle::new(
        d.registration_id,
        1.into(),
        Some((31.into(), one_time.public_key)),
        d.signed_pre_key_id.into(),
        d.signed_pre_key.public_key,
        d.signed_pre_key_signature.to_vec(),
        IdentityKey::new(d.identity_key.public_key),
    )
    .unwrap()
}

async fn encrypt(from: &Stores, to: &str, text: &[u8]) -> CiphertextMessage {
    let (mut s, mut i) = (from.clone(), from.clone());
    message_encrypt(text, &addr(to), &mut s, &mut i).await.unwrap()
}

async fn decrypt(at: &Stores, from: &str, msg: &CiphertextMessage) -> Vec<u8> {
    let (mut s, mut i, mut p, sp) = (at.clone(), at.clone(), at.clone(), at.clone());
    let r = message_decrypt(msg, &addr(from), &mut s, &mut i, &mut p, &sp, &mut rng(), UsePQRatchet::No).await.unwrap();
    if let Some(id) = r.consumed_prekey_id {
        // The caller removes a consumed one-time prekey once the session is durable.
        at.backend.remove_prekey(id.into()).await.unwrap();
    }
    r.plaintext
}

#[tokio::test]
async fn one_to_one_and_group_survive_a_new_pool() {
    let db = TestDb::new().await.unwrap();
    enroll(&db.pool, "alice").await;
    enroll(&db.pool, "bob").await;
    let bundle = bob_bundle(&db.pool).await;

    let alice = Stores::open(&db.pool, "alice").await;
    let bob = Stores::open(&db.pool, "bob").await;
    {
        let (mut s, mut i) = (alice.clone(), alice.clone());
        process_prekey_bundle(&addr(BOB), &mut s, &mut i, &bundle, &mut rng(), UsePQRatchet::No).await.unwrap();
    }
    let first = encrypt(&alice, BOB, b"hello bob").await;
    assert_eq!(first.message_type(), CiphertextMessageType::PreKey);
    assert_eq!(decrypt(&bob, ALICE, &first).await, b"hello bob");
    assert!(bob.backend.load_prekey(31).await.unwrap().is_none(), "one-time prekey consumed");
    let reply = encrypt(&bob, ALICE, b"hi alice").await;
    assert_eq!(reply.message_type(), CiphertextMessageType::Whisper);
    assert_eq!(decrypt(&alice, BOB, &reply).await, b"hi alice");

    // Group: Alice's sender key goes to Bob inside the 1:1 session.
    let group = SenderKeyName::from_parts("120363000000000077@g.us", addr(ALICE).as_str());
    let skdm = {
        let mut a = alice.clone();
        create_sender_key_distribution_message(&group, &mut a, &mut rng()).await.unwrap()
    };
    let wrapped = encrypt(&alice, BOB, skdm.serialized()).await;
    let skdm_bytes = decrypt(&bob, ALICE, &wrapped).await;
    {
        let mut b = bob.clone();
        let parsed = SenderKeyDistributionMessage::try_from(skdm_bytes.as_slice()).unwrap();
        process_sender_key_distribution_message(&group, &parsed, &mut b).await.unwrap();
    }
    let g1 = group_encrypt(&mut alice.clone(), &group, b"group one", &mut rng()).await.unwrap();
    assert_eq!(group_decrypt(g1.serialized(), &mut bob.clone(), &group).await.unwrap(), b"group one");

    // Drop every connection; continue from what is in Postgres only.
    drop((alice, bob));
    db.pool.close().await;
    let pool = PgPoolOptions::new().max_connections(4).connect(&db.url).await.unwrap();
    let alice = Stores::open(&pool, "alice").await;
    let bob = Stores::open(&pool, "bob").await;

    for round in 0..3 {
        let a2b = format!("a2b {round}");
        let m = encrypt(&alice, BOB, a2b.as_bytes()).await;
        assert_eq!(m.message_type(), CiphertextMessageType::Whisper, "the ratchet continues, no new session");
        assert_eq!(decrypt(&bob, ALICE, &m).await, a2b.as_bytes());
        let b2a = format!("b2a {round}");
        let m = encrypt(&bob, ALICE, b2a.as_bytes()).await;
        assert_eq!(decrypt(&alice, BOB, &m).await, b2a.as_bytes());
    }
    let g2 = group_encrypt(&mut alice.clone(), &group, b"group two", &mut rng()).await.unwrap();
    assert!(g2.iteration() > g1.iteration(), "sender chain continued");
    assert_eq!(group_decrypt(g2.serialized(), &mut bob.clone(), &group).await.unwrap(), b"group two");

    // Identities were recorded on both sides.
    assert!(alice.backend.load_identity(addr(BOB).as_str()).await.unwrap().is_some());
    assert!(bob.backend.load_identity(addr(ALICE).as_str()).await.unwrap().is_some());
    pool.close().await;
    let _ = TestDb { name: db.name, url: db.url, pool }.drop_now().await;
}
