//! Masks phone numbers in the lines whatsapp-rust writes, or that are written inside its
//! spans. Its `log` lines print raw JIDs and Signal addresses in many places, at every
//! level: e.g. wacore-libsignal's session.rs and session_cipher.rs
//! ("processing PreKey message from <phone>:1@c.us.0"), client/lid_pn.rs:1024,1057
//! ("Migrated session <phone>:1@c.us.0 -> ..." at info), usync.rs:307 and
//! client/device_registry.rs:956,1347 (info), pair.rs:429, retry.rs:594 (warn).

use std::borrow::Cow;
use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::registry::LookupSpan;

use super::is_whatsapp;

/// What a masked number reads as.
const MASK: &str = "<number>";

/// Digit runs of 8 or more that stand alone (phone numbers: E.164 numbers with their
/// country code have 8 to 15 digits) become [`MASK`]. Left alone: runs inside words
/// or hex (message ids, `pn#…` tokens), fractions (`0.001255322`), dates and UUIDs
/// (`-` next to them), and LIDs (`…@lid`), which are not phone numbers and correlate
/// lines.
pub fn mask_numbers(line: &str) -> Cow<'_, str> {
    let b = line.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let before = start.checked_sub(1).map(|p| b[p]);
        let after = b.get(i).copied();
        let word = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_');
        let lid = {
            let rest = &line[i..];
            let rest = rest.strip_prefix(':').map(|r| r.trim_start_matches(|c: char| c.is_ascii_digit())).unwrap_or(rest);
            rest.starts_with("@lid")
        };
        if i - start >= 8 && !word(before) && !word(after) && !matches!(before, Some(b'.' | b'-')) && after != Some(b'-') && !lid
        {
            out.push_str(&line[copied..start]);
            out.push_str(MASK);
            copied = i;
        }
    }
    if copied == 0 {
        return Cow::Borrowed(line);
    }
    out.push_str(&line[copied..]);
    Cow::Owned(out)
}

/// An event format that masks numbers in the finished line when the event or one of
/// its spans comes from the WhatsApp client crates.
pub struct Redacting<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for Redacting<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let meta = event.metadata();
        let from_whatsapp = is_log_line(event)
            || is_whatsapp(meta.module_path().unwrap_or(meta.target()))
            || ctx.event_scope().is_some_and(|scope| {
                scope.from_root().any(|span| is_whatsapp(span.metadata().module_path().unwrap_or(span.metadata().target())))
            });
        if from_whatsapp { writer.write_str(&mask_numbers(&line)) } else { writer.write_str(&line) }
    }
}

/// Lines of the `log` crate: in pgwa only its dependencies use it (whatsapp-rust above
/// all); masking them all costs nothing of pgwa's own.
fn is_log_line(event: &Event<'_>) -> bool {
    event.metadata().fields().field("log.module_path").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_go_and_ids_stay() {
        assert_eq!(
            mask_numbers("processing PreKey message from 15557310486:1@c.us.0 with one-time prekey 1"),
            "processing PreKey message from <number>:1@c.us.0 with one-time prekey 1"
        );
        assert_eq!(mask_numbers(r#"<to jid="15558246913@s.whatsapp.net">"#), r#"<to jid="<number>@s.whatsapp.net">"#);
        assert_eq!(mask_numbers("mapping: 100000000000001 <-> 15557310486"), "mapping: <number> <-> <number>");
        for kept in [
            "lid=100000000000001:1@lid pn=pn#d49d6776fb54554b:1@s.whatsapp.net",
            "message 3EB0C867CDBF571F4569B7 elapsed_secs=0.001255322",
            "worker=12345678-bf87-75bb-be1b-4c7111000f62 at 2026-11-23T10:17:03.616099Z",
            "job 1234567 of 42",
        ] {
            assert_eq!(mask_numbers(kept), kept);
        }
    }
}
