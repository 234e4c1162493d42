//! Connect-link tokens: `b64url("<expires unix>:<session>") . b64url(HMAC-SHA256(key,
//! "pgwa-connect:" + that payload))`, as wa.connect_link signs them in SQL. The prefix
//! keeps the key from vouching for anything but connect links.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const DOMAIN: &[u8] = b"pgwa-connect:";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub session: String,
    pub expires: i64,
}

fn mac(key: &[u8], payload: &[u8]) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(DOMAIN);
    m.update(payload);
    m
}

/// A token for `session` valid until `expires` (unix seconds): what wa.connect_link
/// returns, for tests and tools that hold the key.
pub fn sign(key: &[u8], session: &str, expires: i64) -> String {
    let payload = format!("{expires}:{session}");
    let sig = mac(key, payload.as_bytes()).finalize().into_bytes();
    format!("{}.{}", B64.encode(payload), B64.encode(sig))
}

/// The session a token grants, if it is well-formed, signed with `key` and not expired
/// at `now`. Which of these failed is not told: a forger learns nothing.
pub fn verify(key: &[u8], token: &str, now: i64) -> Option<Grant> {
    let (payload, sig) = token.split_once('.')?;
    let payload = B64.decode(payload).ok()?;
    let sig = B64.decode(sig).ok()?;
    // Constant-time comparison of the signature.
    mac(key, &payload).verify_slice(&sig).ok()?;
    let payload = String::from_utf8(payload).ok()?;
    let (expires, session) = payload.split_once(':')?;
    let expires: i64 = expires.parse().ok()?;
    (expires > now && !session.is_empty()).then(|| Grant { session: session.to_owned(), expires })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_grants_its_session_until_it_expires_and_nothing_once_touched() {
        let key = [7u8; 32];
        let t = sign(&key, "salon-42", 1_000);
        assert_eq!(verify(&key, &t, 999), Some(Grant { session: "salon-42".into(), expires: 1_000 }));
        assert_eq!(verify(&key, &t, 1_000), None, "expired");
        assert_eq!(verify(&[8u8; 32], &t, 0), None, "another key");
        // Another session or expiry under the same signature.
        let (_, sig) = t.split_once('.').unwrap();
        for payload in ["1000:salon-43", "9999:salon-42", "1000:salon-42:x"] {
            assert_eq!(verify(&key, &format!("{}.{sig}", B64.encode(payload)), 0), None, "{payload}");
        }
        for junk in ["", ".", "a.b", "no-dot", &t[..t.len() - 1], &format!("{t}x")] {
            assert_eq!(verify(&key, junk, 0), None, "{junk:?}");
        }
    }
}
