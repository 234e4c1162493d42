//! whatsapp-rust events to `WaEvent`, with the little state the mapping needs.
//!
//! * Connected has no fields: the identity is read from the client (`pn`, `lid`,
//!   `push_name`) when the event is mapped.
//! * QR codes: the event's `timeout` is the code's remaining validity (60 s for the
//!   first, 20 s for each refresh), so `expires_at = now + timeout`; the same for
//!   pairing codes (~180 s).
//! * TemporaryBan's `expire` is a duration: `until = now + expire`.
//! * LoggedOut after our own close(logout) is suppressed: `logout()` dispatches it
//!   itself, and the worker would otherwise park a session the app closed on purpose.
//! * Undecryptable messages (Bad MAC): whatsapp-rust's event does not carry the cause.
//!   Every failure it reports for a peer's message (BadMac, InvalidMessage, NoSession,
//!   InvalidKeyId, missing sender key) is a broken Signal state with that peer, and the
//!   remedy the worker attaches to `bad_mac: true` (drop that peer's Signal sessions so
//!   the next message builds a fresh one) is the right one for all of them; app-state
//!   keys play no part in message decryption. So every such failure is reported with
//!   `bad_mac: true`, once per peer per `decrypt_failure_window_ms`: the library's own
//!   retry round trip, and the handshake after a peer cleanup, can fail once more for
//!   the same breakage and must not count twice. `is_unavailable` placeholders (phone-
//!   only fanouts) are not failures. Exact causes exist only in the retry receipt the
//!   library sends; sniffing it costs a node clone per outgoing stanza, so we don't.
//! * `bad_mac: false` (the seeds' "bad decrypt") is app state the client could not
//!   apply: `AppStateSyncFailed` with retryable collections, reported once per
//!   connection. Clearing the app-state sync keys makes the phone send them again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use whatsapp_rust::types::events::{Event, EventKind};
use whatsapp_rust::types::presence::ReceiptType;

use pgwa_core::wa::{ChatState, GroupChanged, InboundChatState, IncomingCall, ReceiptKind, WaEvent};

/// Our own identity, read from the client when it connects.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub jid: Option<String>,
    /// Our LID (`digits@lid`), when the client knows it.
    pub lid: Option<String>,
    pub push_name: Option<String>,
}

/// State of one connection, shared by the event handler, the stats watcher and the
/// session.
#[derive(Debug)]
pub struct Flags {
    /// close() is under way: a LoggedOut now is ours, not the phone's.
    pub closing: AtomicBool,
    /// Connected was seen since the last drop.
    pub up: AtomicBool,
    /// A Disconnected arrived since the stats watcher last looked (it explains one
    /// step of whatsapp-rust's reconnect counter).
    pub dropped: AtomicBool,
    /// The run loop ended (terminal event, QR exhausted, close): a new client is needed.
    pub ended: AtomicBool,
    /// The server logged this device out (not our own close): its identity is dead, so
    /// close() wipes the stored keys once the client has stopped.
    pub server_logout: AtomicBool,
    down_since: Mutex<Option<Instant>>,
    decrypt_seen: Mutex<HashMap<String, Instant>>,
    app_state_reported: AtomicBool,
    decrypt_window: Duration,
}

impl Flags {
    pub fn new(decrypt_window: Duration) -> Self {
        Self {
            closing: AtomicBool::new(false),
            up: AtomicBool::new(false),
            dropped: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            server_logout: AtomicBool::new(false),
            down_since: Mutex::new(Some(Instant::now())),
            decrypt_seen: Mutex::default(),
            app_state_reported: AtomicBool::new(false),
            decrypt_window,
        }
    }

    /// How long the connection has been down (None while up).
    pub fn down_for(&self) -> Option<Duration> {
        self.down_since.lock().unwrap_or_else(|p| p.into_inner()).map(|t| t.elapsed())
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        let mut d = self.down_since.lock().unwrap_or_else(|p| p.into_inner());
        *d = if up { None } else { d.or(Some(Instant::now())) };
    }

    /// True the first time a peer fails within the window.
    fn first_failure(&self, peer_user: &str) -> bool {
        let mut seen = self.decrypt_seen.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        seen.retain(|_, t| now.duration_since(*t) < self.decrypt_window);
        if seen.contains_key(peer_user) {
            return false;
        }
        seen.insert(peer_user.to_owned(), now);
        true
    }
}

fn nonempty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// The kinds `map` turns into WaEvents: the client delivers only the kinds asked for,
/// so a kind mapped below but missing here would never arrive.
pub const MAPPED: &[EventKind] = &[
    EventKind::Connected,
    EventKind::Disconnected,
    EventKind::PairSuccess,
    EventKind::PairError,
    EventKind::LoggedOut,
    EventKind::PairingQrCode,
    EventKind::PairingCode,
    EventKind::PairingCodeRefresh,
    EventKind::PairingCodeError,
    EventKind::PairingQrCodesExhausted,
    EventKind::ClientOutdated,
    EventKind::StreamReplaced,
    EventKind::TemporaryBan,
    EventKind::ConnectFailure,
    EventKind::Receipt,
    EventKind::UndecryptableMessage,
    EventKind::AppStateSyncFailed,
    EventKind::ChatPresence,
    EventKind::IncomingCall,
    EventKind::GroupUpdate,
];

/// Maps one event. `me` is called only for Connected and group removals.
pub fn map(ev: &Event, flags: &Flags, now: DateTime<Utc>, me: impl FnOnce() -> Identity) -> Vec<WaEvent> {
    let one = |e: WaEvent| vec![e];
    match ev {
        Event::Connected(_) => {
            flags.set_up(true);
            flags.decrypt_seen.lock().unwrap_or_else(|p| p.into_inner()).clear();
            flags.app_state_reported.store(false, Ordering::SeqCst);
            let id = me();
            one(WaEvent::Connected { jid: id.jid, push_name: id.push_name })
        }
        Event::Disconnected(d) => {
            flags.set_up(false);
            flags.dropped.store(true, Ordering::SeqCst);
            one(WaEvent::Disconnected { reason: d.reason.to_string() })
        }
        Event::PairSuccess(p) => one(WaEvent::Paired {
            jid: p.id.to_string(),
            lid: nonempty(&p.lid.to_string()),
            phone: nonempty(&p.id.user),
            push_name: nonempty(&p.business_name),
        }),
        Event::PairError(p) => one(WaEvent::Error { message: format!("pairing failed: {}", p.error) }),
        Event::LoggedOut(l) => {
            flags.set_up(false);
            if flags.closing.load(Ordering::SeqCst) {
                return vec![];
            }
            flags.server_logout.store(true, Ordering::SeqCst);
            let mut reason = format!("logged out by the server ({:?}{})", l.reason, if l.on_connect { ", at login" } else { "" });
            if let Some(h) = l.logout_message.as_ref().and_then(|m| m.header.as_deref()) {
                reason.push_str(": ");
                reason.push_str(h);
            }
            one(WaEvent::LoggedOut { reason })
        }
        Event::PairingQrCode(q) => {
            one(WaEvent::Qr { code: q.code.clone(), expires_at: now + chrono::Duration::from_std(q.timeout).unwrap_or_default() })
        }
        Event::PairingCode(c) => one(WaEvent::PairCode {
            code: c.code.clone(),
            expires_at: now + chrono::Duration::from_std(c.timeout).unwrap_or_default(),
        }),
        Event::PairingCodeError(e) => one(WaEvent::Error { message: format!("pairing code refused: {}", e.error) }),
        // Found by the loopback e2e tests: whatsapp-rust rotates QR codes on a pair-code
        // connection too, and when they run out while a pairing code is still valid it
        // leaves the socket up (`disconnected: false`) so the code can still be entered.
        // Parking the session as stopped there would void a code the app is showing
        // (QR rotation lasts 60 s + 5 x 20 s, a pairing code about 180 s). Only an
        // exhaustion that ended the connection is the end of linking.
        Event::PairingQrCodesExhausted(e) if !e.disconnected => vec![],
        Event::PairingQrCodesExhausted(_) => one(WaEvent::QrExhausted),
        Event::ClientOutdated(_) => {
            flags.set_up(false);
            one(WaEvent::ClientOutdated)
        }
        Event::StreamReplaced(_) => {
            flags.set_up(false);
            one(WaEvent::StreamReplaced)
        }
        Event::TemporaryBan(b) => {
            flags.set_up(false);
            let expire = b.expire.max(chrono::Duration::zero());
            let mut reason = format!("temporarily banned: {}", b.code);
            if let Some(m) = &b.message {
                reason.push_str(" (");
                reason.push_str(m);
                reason.push(')');
            }
            one(WaEvent::TemporaryBan { until: now + expire, reason })
        }
        Event::ConnectFailure(f) => {
            flags.set_up(false);
            // Already reported here: the reconnect it causes (500/503) must not be
            // reported again by the stats watcher.
            flags.dropped.store(true, Ordering::SeqCst);
            let mut reason = format!("the server refused the login: {:?}", f.reason);
            if let Some(m) = &f.message {
                reason.push_str(": ");
                reason.push_str(m);
            }
            one(WaEvent::ConnectFailure { reason })
        }
        Event::Receipt(r) => {
            let kind = match r.r#type {
                // `inactive` is the delivery receipt of a passive device (one that has
                // not sent presence `available`): whatsapp-rust sends it *instead of*
                // `delivery`, so the message did reach that device. Found by the
                // loopback e2e tests, where the recipient is another pgwa session.
                ReceiptType::Delivered | ReceiptType::Inactive => ReceiptKind::Delivered,
                ReceiptType::Read | ReceiptType::Played => ReceiptKind::Read,
                _ => return vec![],
            };
            r.message_ids.iter().map(|id| WaEvent::Receipt { message_id: id.to_string(), kind, at: r.timestamp }).collect()
        }
        Event::UndecryptableMessage(u) => {
            let peer = u.info.source.sender.to_non_ad_string();
            if u.is_unavailable || !flags.first_failure(&peer) {
                return vec![];
            }
            // The peer, not its device: the cleanup clears every device of that user,
            // and wa.enqueue refuses a device JID as a key_cleanup peer.
            one(WaEvent::Undecryptable { peer, bad_mac: true })
        }
        Event::ChatPresence(p) => {
            use whatsapp_rust::types::presence::{ChatPresence, ChatPresenceMedia};
            let state = match (p.state, p.media) {
                (ChatPresence::Composing, ChatPresenceMedia::Audio) => ChatState::Recording,
                (ChatPresence::Composing, _) => ChatState::Composing,
                (ChatPresence::Paused, _) => ChatState::Paused,
            };
            let (chat, sender) = (p.source.chat.to_non_ad_string(), p.source.sender.to_non_ad_string());
            one(WaEvent::ChatState(InboundChatState { chat, sender, state }))
        }
        Event::IncomingCall(c) => match &c.action {
            // Only the offer rings; the rest of a call's signalling is not for the worker.
            whatsapp_rust::types::call::CallAction::Offer { call_id, call_creator, is_video, group_jid, .. } => {
                one(WaEvent::IncomingCall(IncomingCall {
                    call_id: call_id.clone(),
                    from: c.from.to_string(),
                    creator: call_creator.to_string(),
                    group: group_jid.as_ref().map(|g| g.to_string()),
                    video: *is_video,
                    at: c.timestamp,
                }))
            }
            _ => vec![],
        },
        Event::GroupUpdate(g) => {
            use whatsapp_rust::wacore::stanza::groups::GroupNotificationAction as Action;
            let removed_me = match &g.action {
                Action::Remove { participants, .. } => {
                    // Our JIDs without their device part, as a participant is named.
                    let me = me();
                    let ours: Vec<String> = [me.jid, me.lid]
                        .into_iter()
                        .flatten()
                        .filter_map(|j| j.parse::<whatsapp_rust::Jid>().ok())
                        .map(|j| j.to_non_ad_string())
                        .collect();
                    let mine = |jid: &str| ours.iter().any(|o| o == jid);
                    participants.iter().any(|p| {
                        mine(&p.jid.to_non_ad_string()) || p.phone_number.as_ref().is_some_and(|pn| mine(&pn.to_non_ad_string()))
                    })
                }
                _ => false,
            };
            one(WaEvent::GroupChanged(GroupChanged {
                group: g.group_jid.to_string(),
                action: g.action.tag_name().to_string(),
                removed_me,
            }))
        }
        Event::AppStateSyncFailed(a) => {
            if a.retryable.is_empty() {
                let what = if a.fatal.is_empty() { return vec![] } else { a.fatal.join(", ") };
                return one(WaEvent::Error { message: format!("app state sync refused by the server: {what}") });
            }
            if flags.app_state_reported.swap(true, Ordering::SeqCst) {
                return vec![];
            }
            one(WaEvent::Undecryptable { peer: String::new(), bad_mac: false })
        }
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use whatsapp_rust::types::events as ev;
    use whatsapp_rust::wacore::types::message::MessageSource;

    fn map_one(e: Event) -> Vec<WaEvent> {
        map(&e, &Flags::new(Duration::from_secs(60)), Utc::now(), Identity::default)
    }

    #[test]
    fn an_inactive_receipt_is_a_delivery() {
        let receipt = ev::Receipt::builder()
            .source(MessageSource::default())
            .message_ids(vec!["M1".into()])
            .timestamp(Utc::now())
            .r#type(ReceiptType::Inactive)
            .offline(false)
            .build();
        let got = map_one(Event::Receipt(receipt));
        assert!(matches!(&got[..], [WaEvent::Receipt { kind: ReceiptKind::Delivered, .. }]), "{got:?}");
    }

    /// The kind of every event `map` turns into something is one the client is asked to
    /// deliver (MAPPED): a chat state once went unseen because it was not.
    fn mapped(e: Event) -> Vec<WaEvent> {
        let kind = e.kind();
        let got = map_one(e);
        assert!(got.is_empty() || MAPPED.contains(&kind), "{kind:?} is mapped but not in MAPPED");
        got
    }

    #[test]
    fn chat_states_are_mapped_and_asked_for() {
        use whatsapp_rust::types::presence::{ChatPresence, ChatPresenceMedia};
        let alice: whatsapp_rust::Jid = "15550001111@s.whatsapp.net".parse().unwrap();
        let state = |state, media| {
            let source = MessageSource { chat: alice.clone(), sender: alice.clone(), ..Default::default() };
            Event::ChatPresence(ev::ChatPresenceUpdate::builder().source(source).state(state).media(media).build())
        };
        for (s, m, want) in [
            (ChatPresence::Composing, ChatPresenceMedia::Text, ChatState::Composing),
            (ChatPresence::Composing, ChatPresenceMedia::Audio, ChatState::Recording),
            (ChatPresence::Paused, ChatPresenceMedia::Text, ChatState::Paused),
        ] {
            let got = mapped(state(s, m));
            let expected = InboundChatState { chat: alice.to_string(), sender: alice.to_string(), state: want };
            assert!(matches!(&got[..], [WaEvent::ChatState(c)] if *c == expected), "{got:?}");
        }
        assert!(
            !mapped(Event::PairingQrCodesExhausted(ev::PairingQrCodesExhausted::builder().disconnected(true).build())).is_empty()
        );
    }

    #[test]
    fn qr_exhaustion_ends_linking_only_when_the_client_disconnected() {
        let exhausted = |d| Event::PairingQrCodesExhausted(ev::PairingQrCodesExhausted::builder().disconnected(d).build());
        assert!(matches!(&map_one(exhausted(true))[..], [WaEvent::QrExhausted]));
        assert!(map_one(exhausted(false)).is_empty(), "a pairing code is still outstanding on the open socket");
    }
}
