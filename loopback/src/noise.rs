//! Noise responder (XX for new or cache-less clients, IK for returning ones, and
//! XXfallback for an IK client that cached a static key the server no longer has)
//! and the transport ciphers that follow it. The server static key survives a server
//! restart with a state dir; a client whose cached key the server no longer has (see
//! `ServerKeys::rotate`) fails IK, and the server answers it with XXfallback on the
//! same connection, as WhatsApp does.

use std::path::Path;
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result, anyhow, bail};
use wacore::handshake::NoiseHandshake;
use wacore::libsignal::protocol::{KeyPair, PrivateKey};
use wacore_binary::consts::{NOISE_PATTERN_IK, NOISE_PATTERN_XX, NOISE_PATTERN_XXFALLBACK, WA_CONN_HEADER};
use wacore_noise::NoiseCipher;
use waproto::buffa::{self, Message};
use waproto::whatsapp as wa;

/// The server's long-lived static key and the (zero-signed) cert chain for it.
pub struct ServerKeys {
    current: RwLock<Arc<StaticKey>>,
}

struct StaticKey {
    keypair: KeyPair,
    cert_chain: Vec<u8>,
}

impl ServerKeys {
    pub fn generate() -> Self {
        Self::from_keypair(KeyPair::generate(&mut rand::rng()))
    }

    /// Loads the static private key from `path`, creating it on first use.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        if path.exists() {
            let bytes = std::fs::read(path).with_context(|| format!("reading server static key {}", path.display()))?;
            let private =
                PrivateKey::deserialize(&bytes).map_err(|e| anyhow!("server static key {} is invalid: {e}", path.display()))?;
            let keypair = KeyPair::try_from(private).map_err(|e| anyhow!("deriving public key from {}: {e}", path.display()))?;
            return Ok(Self::from_keypair(keypair));
        }
        let keys = Self::generate();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating state dir {}", dir.display()))?;
        }
        std::fs::write(path, keys.current().keypair.private_key.serialize())
            .with_context(|| format!("writing server static key {}", path.display()))?;
        Ok(keys)
    }

    fn from_keypair(keypair: KeyPair) -> Self {
        Self { current: RwLock::new(Arc::new(StaticKey::new(keypair))) }
    }

    /// Replaces the static key with a new one, in memory only (a state dir keeps the
    /// old one): what a server restart with a lost key looks like to clients, without
    /// losing the accounts. Returning clients then fail IK and get XXfallback. For tests.
    pub fn rotate(&self) {
        let fresh = Arc::new(StaticKey::new(KeyPair::generate(&mut rand::rng())));
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
    }

    pub fn public(&self) -> [u8; 32] {
        self.current().public()
    }

    /// The key in use now; one handshake step uses one snapshot.
    fn current(&self) -> Arc<StaticKey> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl StaticKey {
    fn new(keypair: KeyPair) -> Self {
        let public = pub32(keypair.public_key.public_key_bytes());
        let cert_chain = wacore_noise::test_util::build_cert_chain_bytes(&public);
        Self { keypair, cert_chain }
    }

    fn public(&self) -> [u8; 32] {
        pub32(self.keypair.public_key.public_key_bytes())
    }

    fn private(&self) -> &[u8] {
        self.keypair.private_key.serialize()
    }
}

fn pub32(bytes: &[u8]) -> [u8; 32] {
    bytes.try_into().expect("X25519 public keys are 32 bytes")
}

/// The first client message, told apart by shape: IK carries static and payload.
pub enum ClientHello {
    Xx { ephemeral: [u8; 32] },
    Ik { ephemeral: [u8; 32], encrypted_static: Vec<u8>, encrypted_payload: Vec<u8> },
}

pub fn parse_client_hello(frame: &[u8]) -> Result<ClientHello> {
    let msg = wa::HandshakeMessage::decode_from_slice(frame).context("decoding ClientHello")?;
    let hello = msg.client_hello.into_option().context("HandshakeMessage has no clientHello")?;
    let ephemeral: [u8; 32] = hello
        .ephemeral
        .context("ClientHello has no ephemeral")?
        .try_into()
        .map_err(|_| anyhow!("ClientHello ephemeral is not 32 bytes"))?;
    Ok(match (hello.r#static, hello.payload) {
        (Some(encrypted_static), Some(encrypted_payload)) => ClientHello::Ik { ephemeral, encrypted_static, encrypted_payload },
        _ => ClientHello::Xx { ephemeral },
    })
}

/// Per-direction AES-GCM ciphers with their frame counters.
pub struct Transport {
    write: NoiseCipher,
    read: NoiseCipher,
    write_counter: u32,
    read_counter: u32,
}

impl Transport {
    /// `finish()` yields the initiator's (write, read); the responder swaps them.
    fn from_handshake(noise: NoiseHandshake) -> Result<Self> {
        let (initiator_write, initiator_read) = noise.finish().context("splitting noise keys")?;
        Ok(Self { write: initiator_read, read: initiator_write, write_counter: 0, read_counter: 0 })
    }

    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let out = self
            .write
            .encrypt_with_counter(self.write_counter, plaintext)
            .map_err(|e| anyhow!("encrypting frame {}: {e}", self.write_counter))?;
        self.write_counter += 1;
        Ok(out)
    }

    pub fn decrypt(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>> {
        let mut buf = ciphertext.to_vec();
        self.read
            .decrypt_in_place_with_counter(self.read_counter, &mut buf)
            .map_err(|e| anyhow!("decrypting client frame {}: {e}", self.read_counter))?;
        self.read_counter += 1;
        Ok(buf)
    }
}

/// A finished handshake: the client's noise static and its ClientPayload.
pub struct Established {
    pub transport: Transport,
    pub client_static: [u8; 32],
    pub payload: wa::ClientPayload,
}

/// XX (or XXfallback) after the ServerHello went out, waiting for the ClientFinish.
pub struct XxPending {
    noise: NoiseHandshake,
    server_ephemeral: KeyPair,
}

/// XX step 1: answers a ClientHello with ephemeral, encrypted static and cert chain.
pub fn xx_respond(keys: &ServerKeys, client_ephemeral: &[u8; 32]) -> Result<(Vec<u8>, XxPending)> {
    respond_with_static(NOISE_PATTERN_XX, keys, client_ephemeral)
}

/// XXfallback step 1, for an IK ClientHello `ik_accept` could not read (the client
/// cached another server static): the same ServerHello as XX (its `static` tells the
/// client to fall back), over a transcript restarted under the XXfallback protocol
/// name from the ephemeral the client already sent. The IK static and payload are
/// dropped; the ClientFinish carries them again, read by `XxPending::finish`.
pub fn xx_fallback_respond(keys: &ServerKeys, client_ephemeral: &[u8; 32]) -> Result<(Vec<u8>, XxPending)> {
    respond_with_static(NOISE_PATTERN_XXFALLBACK, keys, client_ephemeral)
}

/// `-> e` (already received) then `<- e, ee, s, es` with the cert chain as payload.
fn respond_with_static(pattern: &str, keys: &ServerKeys, client_ephemeral: &[u8; 32]) -> Result<(Vec<u8>, XxPending)> {
    let keys = keys.current();
    let mut noise = NoiseHandshake::new(pattern, &WA_CONN_HEADER)?;
    noise.authenticate(client_ephemeral);
    let server_ephemeral = KeyPair::generate(&mut rand::rng());
    let eph_pub = pub32(server_ephemeral.public_key.public_key_bytes());
    noise.authenticate(&eph_pub);
    noise.mix_shared_secret(server_ephemeral.private_key.serialize(), client_ephemeral)?;
    let encrypted_static = noise.encrypt(&keys.public())?;
    noise.mix_shared_secret(keys.private(), client_ephemeral)?;
    let encrypted_cert = noise.encrypt(&keys.cert_chain)?;
    let hello = server_hello(eph_pub, Some(encrypted_static), encrypted_cert);
    Ok((hello, XxPending { noise, server_ephemeral }))
}

impl XxPending {
    /// XX step 2: reads the client static and payload from the ClientFinish.
    pub fn finish(mut self, frame: &[u8]) -> Result<Established> {
        let msg = wa::HandshakeMessage::decode_from_slice(frame).context("decoding ClientFinish")?;
        let finish = msg.client_finish.into_option().context("HandshakeMessage has no clientFinish")?;
        let encrypted_static = finish.r#static.context("ClientFinish has no static")?;
        let encrypted_payload = finish.payload.context("ClientFinish has no payload")?;
        let client_static: [u8; 32] = self
            .noise
            .decrypt(&encrypted_static)
            .context("decrypting client static")?
            .try_into()
            .map_err(|_| anyhow!("client static is not 32 bytes"))?;
        self.noise.mix_shared_secret(self.server_ephemeral.private_key.serialize(), &client_static)?;
        let payload = self.noise.decrypt(&encrypted_payload).context("decrypting ClientPayload")?;
        let payload = wa::ClientPayload::decode_from_slice(&payload).context("decoding ClientPayload")?;
        Ok(Established { transport: Transport::from_handshake(self.noise)?, client_static, payload })
    }
}

/// IK in one round: decrypts the client's static and payload, answers with a
/// ServerHello without `static` (its presence would mean "fall back to XX").
pub fn ik_accept(
    keys: &ServerKeys,
    client_ephemeral: &[u8; 32],
    encrypted_static: &[u8],
    encrypted_payload: &[u8],
) -> Result<(Vec<u8>, Established)> {
    let keys = keys.current();
    let mut noise = NoiseHandshake::new(NOISE_PATTERN_IK, &WA_CONN_HEADER)?;
    noise.authenticate(&keys.public());
    noise.authenticate(client_ephemeral);
    noise.mix_shared_secret(keys.private(), client_ephemeral)?;
    let client_static: [u8; 32] = noise
        .decrypt(encrypted_static)
        .context("decrypting IK client static (client cached another server key?)")?
        .try_into()
        .map_err(|_| anyhow!("IK client static is not 32 bytes"))?;
    noise.mix_shared_secret(keys.private(), &client_static)?;
    let payload = noise.decrypt(encrypted_payload).context("decrypting IK ClientPayload")?;
    let payload = wa::ClientPayload::decode_from_slice(&payload).context("decoding IK ClientPayload")?;
    let server_ephemeral = KeyPair::generate(&mut rand::rng());
    let eph_pub = pub32(server_ephemeral.public_key.public_key_bytes());
    noise.authenticate(&eph_pub);
    noise.mix_shared_secret(server_ephemeral.private_key.serialize(), client_ephemeral)?;
    noise.mix_shared_secret(server_ephemeral.private_key.serialize(), &client_static)?;
    let encrypted_cert = noise.encrypt(&keys.cert_chain)?;
    let hello = server_hello(eph_pub, None, encrypted_cert);
    if payload.username.is_none() {
        bail!("IK handshake carried a registration payload; IK is for registered devices");
    }
    Ok((hello, Established { transport: Transport::from_handshake(noise)?, client_static, payload }))
}

fn server_hello(ephemeral: [u8; 32], encrypted_static: Option<Vec<u8>>, payload: Vec<u8>) -> Vec<u8> {
    wa::HandshakeMessage {
        server_hello: buffa::MessageField::some(wa::handshake_message::ServerHello {
            ephemeral: Some(ephemeral.to_vec()),
            r#static: encrypted_static,
            payload: Some(payload),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wacore_noise::{IkHandshakeState, IkServerHelloOutcome, XxFallbackHandshakeState, XxHandshakeState};

    fn login_payload() -> Vec<u8> {
        wa::ClientPayload { username: Some(15550000001), device: Some(3), ..Default::default() }.encode_to_vec()
    }

    fn client_hello_ephemeral(bytes: &[u8]) -> ClientHello {
        parse_client_hello(bytes).expect("client hello parses")
    }

    /// Frames both ways after a handshake must decrypt with the peer's cipher.
    fn assert_ciphers_pair(server: &mut Transport, client_write: &NoiseCipher, client_read: &NoiseCipher) {
        let from_client = client_write.encrypt_with_counter(0, b"ping").unwrap();
        assert_eq!(server.decrypt(&from_client).unwrap(), b"ping");
        let from_server = server.encrypt(b"pong").unwrap();
        let mut buf = from_server.clone();
        client_read.decrypt_in_place_with_counter(0, &mut buf).unwrap();
        assert_eq!(buf, b"pong");
    }

    #[test]
    fn xx_round_trip_with_the_client_state_machine() {
        let keys = ServerKeys::generate();
        let client_static = KeyPair::generate(&mut rand::rng());
        let mut client = XxHandshakeState::new(client_static.clone(), login_payload(), &WA_CONN_HEADER).unwrap();
        let ClientHello::Xx { ephemeral } = client_hello_ephemeral(&client.build_client_hello().unwrap()) else {
            panic!("XX client hello was read as IK");
        };
        let (server_hello, pending) = xx_respond(&keys, &ephemeral).unwrap();
        let finish = client.read_server_hello_and_build_client_finish(&server_hello).unwrap();
        let mut est = pending.finish(&finish).unwrap();
        let outcome = client.finish().unwrap();
        assert_eq!(&est.client_static[..], client_static.public_key.public_key_bytes());
        assert_eq!(est.payload.device, Some(3));
        assert_ciphers_pair(&mut est.transport, &outcome.write_cipher, &outcome.read_cipher);
    }

    #[test]
    fn ik_accept_round_trip_with_the_client_state_machine() {
        let keys = ServerKeys::generate();
        let client_static = KeyPair::generate(&mut rand::rng());
        let mut client = IkHandshakeState::new(client_static, keys.public(), login_payload(), &WA_CONN_HEADER).unwrap();
        let ClientHello::Ik { ephemeral, encrypted_static, encrypted_payload } =
            client_hello_ephemeral(&client.build_client_hello().unwrap())
        else {
            panic!("IK client hello was read as XX");
        };
        let (server_hello, mut est) = ik_accept(&keys, &ephemeral, &encrypted_static, &encrypted_payload).unwrap();
        let IkServerHelloOutcome::Continue(outcome) = client.read_server_hello(&server_hello).unwrap() else {
            panic!("client took the server hello as an XX fallback");
        };
        assert_eq!(est.payload.username, Some(15550000001));
        assert_ciphers_pair(&mut est.transport, &outcome.write_cipher, &outcome.read_cipher);
    }

    #[test]
    fn ik_against_another_server_key_fails() {
        let keys = ServerKeys::generate();
        let stale = ServerKeys::generate();
        let mut client =
            IkHandshakeState::new(KeyPair::generate(&mut rand::rng()), stale.public(), login_payload(), &WA_CONN_HEADER).unwrap();
        let ClientHello::Ik { ephemeral, encrypted_static, encrypted_payload } =
            client_hello_ephemeral(&client.build_client_hello().unwrap())
        else {
            panic!("IK client hello was read as XX");
        };
        assert!(ik_accept(&keys, &ephemeral, &encrypted_static, &encrypted_payload).is_err());
    }

    #[test]
    fn ik_with_a_stale_server_key_falls_back_to_xx_on_the_same_connection() {
        let keys = ServerKeys::generate();
        let stale = ServerKeys::generate();
        let client_static = KeyPair::generate(&mut rand::rng());
        let mut client = IkHandshakeState::new(client_static.clone(), stale.public(), login_payload(), &WA_CONN_HEADER).unwrap();
        let ClientHello::Ik { ephemeral, encrypted_static, encrypted_payload } =
            client_hello_ephemeral(&client.build_client_hello().unwrap())
        else {
            panic!("IK client hello was read as XX");
        };
        assert!(ik_accept(&keys, &ephemeral, &encrypted_static, &encrypted_payload).is_err());

        let (server_hello, pending) = xx_fallback_respond(&keys, &ephemeral).unwrap();
        let IkServerHelloOutcome::Fallback(inputs) = client.read_server_hello(&server_hello).unwrap() else {
            panic!("client took the fallback server hello as an IK accept");
        };
        let mut fallback = XxFallbackHandshakeState::from_ik_failure(*inputs, &WA_CONN_HEADER).unwrap();
        let finish = fallback.build_client_finish().expect("client reads the fallback server hello");
        let mut est = pending.finish(&finish).unwrap();
        let outcome = fallback.finish().unwrap();
        assert_eq!(&est.client_static[..], client_static.public_key.public_key_bytes());
        assert_eq!(est.payload.username, Some(15550000001));
        assert_eq!(est.payload.device, Some(3));
        assert_eq!(outcome.server_cert_chain.leaf_key, keys.public(), "the client learns the server's current key");
        assert_ciphers_pair(&mut est.transport, &outcome.write_cipher, &outcome.read_cipher);
    }

    #[test]
    fn a_plain_xx_answer_does_not_complete_an_ik_fallback() {
        // The fallback transcript starts under its own protocol name: an XX ServerHello
        // sent to an IK client must not verify, or the test above would prove nothing.
        let keys = ServerKeys::generate();
        let stale = ServerKeys::generate();
        let mut client =
            IkHandshakeState::new(KeyPair::generate(&mut rand::rng()), stale.public(), login_payload(), &WA_CONN_HEADER).unwrap();
        let ClientHello::Ik { ephemeral, .. } = client_hello_ephemeral(&client.build_client_hello().unwrap()) else {
            panic!("IK client hello was read as XX");
        };
        let (server_hello, _) = xx_respond(&keys, &ephemeral).unwrap();
        let IkServerHelloOutcome::Fallback(inputs) = client.read_server_hello(&server_hello).unwrap() else {
            panic!("a server hello with a static must mean fallback");
        };
        let mut fallback = XxFallbackHandshakeState::from_ik_failure(*inputs, &WA_CONN_HEADER).unwrap();
        assert!(fallback.build_client_finish().is_err());
    }

    #[test]
    fn a_rotated_key_fails_ik_and_is_what_the_fallback_sends() {
        let keys = ServerKeys::generate();
        let old = keys.public();
        keys.rotate();
        assert_ne!(keys.public(), old);
        let mut client =
            IkHandshakeState::new(KeyPair::generate(&mut rand::rng()), old, login_payload(), &WA_CONN_HEADER).unwrap();
        let ClientHello::Ik { ephemeral, encrypted_static, encrypted_payload } =
            client_hello_ephemeral(&client.build_client_hello().unwrap())
        else {
            panic!("IK client hello was read as XX");
        };
        assert!(ik_accept(&keys, &ephemeral, &encrypted_static, &encrypted_payload).is_err());
        let (server_hello, _) = xx_fallback_respond(&keys, &ephemeral).unwrap();
        let IkServerHelloOutcome::Fallback(inputs) = client.read_server_hello(&server_hello).unwrap() else {
            panic!("expected fallback");
        };
        let mut fallback = XxFallbackHandshakeState::from_ik_failure(*inputs, &WA_CONN_HEADER).unwrap();
        fallback.build_client_finish().unwrap();
        assert_eq!(fallback.finish().unwrap().server_cert_chain.leaf_key, keys.public());
    }

    #[test]
    fn static_key_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("pgwa-loopback-key-{}-{}", std::process::id(), rand::random::<u32>()));
        let path = dir.join("server_static.key");
        let first = ServerKeys::load_or_create(&path).unwrap();
        let second = ServerKeys::load_or_create(&path).unwrap();
        assert_eq!(first.public(), second.public());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
