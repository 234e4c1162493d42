//! The whatsapp-rust 0.7 log lines that carry secrets, dropped at every filter setting.
//!
//! Found by reading every `log`/`tracing` call site of whatsapp-rust, wacore,
//! wacore-libsignal and wacore-noise 0.7.0 for codes, refs, keys, text, names and
//! numbers. Its `tracing` spans are safe: their JID fields go through `Jid::observe()`
//! (a keyed hash) and key or text fields do not exist. Its `log` lines are not. Message
//! text and key bytes appear in no call site; stanza dumps print every printable byte
//! payload, so they are dropped whatever they hold.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use super::is_whatsapp;

enum Site {
    /// A `log` target (whatsapp-rust names many lines `Client/...`).
    Target(&'static str),
    /// A module path and its submodules.
    Module(&'static str),
}

struct Rule {
    site: Site,
    /// The most verbose level still shown; `None`: nothing from this site is.
    keep_up_to: Option<Level>,
}

/// Each entry: the file of whatsapp-rust 0.7.0 and what it leaked.
const RULES: &[Rule] = &[
    // pair_code.rs:351 "Starting pair code authentication for phone: <number>" and
    // :471 "Stage 1 complete, waiting for phone confirmation. Code: <code>", both info.
    Rule { site: Site::Target("Client/PairCode"), keep_up_to: None },
    Rule { site: Site::Module("whatsapp_rust::pair_code"), keep_up_to: None },
    // bot.rs: "Pair code generated: <code>" (info).
    Rule { site: Site::Target("Bot/PairCode"), keep_up_to: None },
    // client/messaging.rs:119 and client/node_io.rs:332,450: every stanza sent and
    // received (debug): the QR refs of <pair-device>, link-code refs, phone-number JIDs,
    // push names, and every printable byte payload.
    Rule { site: Site::Target("Client/Send"), keep_up_to: None },
    Rule { site: Site::Target("Client/Recv"), keep_up_to: None },
    // pair.rs:434 "Added own LID-PN mapping to cache: <lid> <-> <phone>" and :442
    // "Setting push_name during pairing: '<name>'" (info). Its warnings and errors name
    // failures only (except :429, whose number the redaction masks).
    Rule { site: Site::Module("whatsapp_rust::pair"), keep_up_to: Some(Level::WARN) },
    // handlers/notification/device.rs:466 "Device notification: user=<phone>" (debug).
    Rule { site: Site::Module("whatsapp_rust::handlers::notification::device"), keep_up_to: Some(Level::INFO) },
    // features/presence.rs:76,103: the push name (debug).
    Rule { site: Site::Module("whatsapp_rust::features::presence"), keep_up_to: Some(Level::INFO) },
    // store/persistence_manager.rs:50: "Loaded existing device data (PushName: '<name>')"
    // (debug).
    Rule { site: Site::Module("whatsapp_rust::store::persistence_manager"), keep_up_to: Some(Level::INFO) },
];

fn module_matches(module: &str, prefix: &str) -> bool {
    module.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// Whether a line from this call site may be shown at all (stanza dumps aside).
fn site_allowed(level: &Level, target: &str, module: &str) -> bool {
    RULES.iter().all(|r| {
        let hit = match r.site {
            Site::Target(t) => target == t,
            Site::Module(m) => module_matches(module, m),
        };
        // More verbose levels compare greater.
        !hit || r.keep_up_to.is_some_and(|keep| *level <= keep)
    })
}

/// A stanza printed by wacore's `DisplayableNode`: `<tag attr="...">`. Besides the
/// Client/Send and Client/Recv lines, whatsapp-rust prints whole stanzas in warnings
/// and debug lines: client/node_io.rs:545,1867,1927,1945,1970 (unknown node, stream
/// error, connect failure), handlers/iq.rs:38,43 (late or unhandled IQ),
/// handlers/notification/groups.rs:354,363,426,447.
fn carries_stanza(message: &str) -> bool {
    message.match_indices('<').any(|(i, _)| {
        let rest = &message[i + 1..];
        rest.starts_with(|c: char| c.is_ascii_lowercase()) && rest.split('>').next().is_some_and(|tag| tag.contains("=\""))
    })
}

/// The call site of an event: its own metadata, or for a line of the `log` crate (how
/// whatsapp-rust logs) the `log.target` and `log.module_path` fields the bridge adds.
#[derive(Default)]
struct Origin {
    target: Option<String>,
    module: Option<String>,
}

impl Visit for Origin {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "log.target" => self.target = Some(value.to_owned()),
            "log.module_path" => self.module = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {}
}

#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_owned();
        }
    }
}

/// A layer that vetoes, before any output layer sees them, the lines in [`RULES`] and
/// whatsapp-rust lines that print a stanza. Installed by [`super::init`] ahead of the
/// formatter, whatever the filter.
pub struct SecretFilter;

impl SecretFilter {
    fn static_allowed(meta: &Metadata<'_>) -> bool {
        !meta.is_event() || site_allowed(meta.level(), meta.target(), meta.module_path().unwrap_or(""))
    }
}

impl<S: Subscriber> Layer<S> for SecretFilter {
    fn enabled(&self, meta: &Metadata<'_>, _: Context<'_, S>) -> bool {
        Self::static_allowed(meta)
    }

    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        let meta = event.metadata();
        let mut origin = Origin::default();
        if meta.fields().field("log.module_path").is_some() {
            event.record(&mut origin);
        }
        let target = origin.target.as_deref().unwrap_or(meta.target());
        let module = origin.module.as_deref().or(meta.module_path()).unwrap_or("");
        if !site_allowed(meta.level(), target, module) {
            return false;
        }
        if !(is_whatsapp(module) || is_whatsapp(target)) {
            return true;
        }
        let mut message = Message::default();
        event.record(&mut message);
        !carries_stanza(&message.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_code_lines_go_at_every_level_and_pair_keeps_its_warnings() {
        for level in [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG, Level::TRACE] {
            assert!(!site_allowed(&level, "Client/PairCode", "whatsapp_rust::pair_code"));
            assert!(!site_allowed(&level, "Client/Recv", "whatsapp_rust::client::node_io"));
        }
        assert!(site_allowed(&Level::WARN, "whatsapp_rust::pair", "whatsapp_rust::pair"));
        assert!(!site_allowed(&Level::INFO, "whatsapp_rust::pair", "whatsapp_rust::pair"));
        // A module rule does not reach a sibling whose name merely starts the same.
        assert!(site_allowed(&Level::TRACE, "x", "whatsapp_rust::pairing_extra"));
        assert!(site_allowed(&Level::TRACE, "pgwa::worker", "pgwa::worker"));
    }

    #[test]
    fn stanzas_are_recognised_by_their_attributes() {
        assert!(carries_stanza(r#"Received unhandled IQ: <iq from="s.whatsapp.net" id="1"><pair-device/></iq>"#));
        assert!(carries_stanza(r#"Temporary ban connect failure: <failure reason="402"/>"#));
        assert!(!carries_stanza("Stream error <xml-not-well-formed>: closing socket to recycle the stream"));
        assert!(!carries_stanza("Received <xmlstreamend/> (server stream end); reconnecting."));
    }
}
