//! Buffered inbound rows that the inbox statement already deleted.
//!
//! whatsapp-rust buffers each decrypted message in wa.pending_inbound, runs the
//! durability hook, then deletes the buffered rows before it acks the server. The inbox
//! writer deletes a message's buffered row itself, in the transaction that makes the
//! message durable in wa.inbox, so that later delete would be one more group-committed
//! key write, waited for before every ack, that finds nothing. The hook notes here what
//! its statements cleared, and the session's key store leaves those keys out of the
//! delete. A key noted but never asked for (whatsapp-rust's commit cancelled after its
//! hook) is forgotten when the set is full; forgetting one costs only a delete that
//! finds nothing.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Mutex;

use whatsapp_rust::wacore::store::traits::PendingInboundKey;

const MAX_KEYS: usize = 4096;

/// The keys of one session connection's buffered rows that the inbox cleared.
#[derive(Debug, Default)]
pub struct Unbuffered {
    keys: Mutex<HashSet<String>>,
}

/// The buffer's key (chat, sender, stanza id) as one string: none of them holds a NUL.
fn key(chat: &str, sender: &str, id: &str) -> String {
    [chat, sender, id].join("\0")
}

impl Unbuffered {
    /// The inbox statement that stored (or found) this message committed, and with it
    /// the deletion of its buffered row.
    pub fn cleared(&self, chat: &str, sender: &str, id: &str) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= MAX_KEYS {
            keys.clear();
        }
        keys.insert(key(chat, sender, id));
    }

    /// `keys` without those the inbox already cleared, each of which is forgotten as it
    /// is matched: a later buffered row with the same key is deleted as usual.
    /// When nothing is noted as cleared, the keys go back as they came, uncopied.
    pub fn still_buffered<'k, 'a>(&self, keys: &'k [PendingInboundKey<'a>]) -> Cow<'k, [PendingInboundKey<'a>]> {
        let mut cleared = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if cleared.is_empty() {
            return Cow::Borrowed(keys);
        }
        Cow::Owned(keys.iter().filter(|k| !cleared.remove(&key(k.chat, k.sender, k.id))).copied().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k<'a>(id: &'a str) -> PendingInboundKey<'a> {
        PendingInboundKey { chat: "c", sender: "s", id }
    }

    #[test]
    fn a_cleared_key_is_left_out_once() {
        let u = Unbuffered::default();
        u.cleared("c", "s", "A");
        let keys = [k("A"), k("B")];
        let rest = u.still_buffered(&keys);
        assert_eq!(rest.iter().map(|k| k.id).collect::<Vec<_>>(), ["B"]);
        let keys = [k("A")];
        let again = u.still_buffered(&keys);
        assert_eq!(again.len(), 1, "the mark is used up: a new buffered row of A is deleted");
    }

    #[test]
    fn nothing_cleared_hands_the_keys_back_uncopied() {
        let u = Unbuffered::default();
        assert!(matches!(u.still_buffered(&[k("A"), k("B")]), Cow::Borrowed(b) if b.len() == 2));
    }

    #[test]
    fn the_parts_of_a_key_do_not_run_together() {
        let u = Unbuffered::default();
        u.cleared("c", "s", "A");
        let other = PendingInboundKey { chat: "c", sender: "sA", id: "" };
        assert_eq!(u.still_buffered(&[other]).len(), 1);
    }

    #[test]
    fn a_full_set_forgets_rather_than_grows() {
        let u = Unbuffered::default();
        for i in 0..MAX_KEYS + 10 {
            u.cleared("c", "s", &i.to_string());
        }
        assert!(u.keys.lock().unwrap().len() <= MAX_KEYS);
    }
}
