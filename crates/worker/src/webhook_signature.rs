//! Standard Webhooks signatures (standardwebhooks.com): the receiver checks
//! `webhook-signature` = `v1,` + base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}"))
//! with the key from the webhook's secret (`whsec_` + base64), using any of the
//! official libraries. The timestamp lets it refuse old replays; the id, repeats.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The key inside a `whsec_<base64>` secret.
pub fn key_of(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret.strip_prefix("whsec_").ok_or("secret: not in the whsec_<base64> form")?;
    STANDARD.decode(b64).map_err(|_| "secret: its base64 part does not decode".to_owned())
}

/// The `webhook-signature` header's value for one delivery attempt.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification, so any receiver's library
    /// accepts what pgwa signs.
    #[test]
    fn signs_the_specifications_example() {
        let key = key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let got = sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(got, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_in_another_form_are_named_not_shown() {
        assert_eq!(key_of("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(), "secret: not in the whsec_<base64> form");
        let e = key_of("whsec_!!not-base64!!").unwrap_err();
        assert!(!e.contains("not-base64"), "{e}");
    }
}
