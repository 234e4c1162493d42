//! Forcing a device off the server, the ways the real server does (§7 of
//! LOOPBACK-PROTOCOL.md): stream errors, conflicts, a bare stream end.

use anyhow::{Context, Result, bail};
use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use crate::devices::{self, Change};
use crate::prekeys::resolve;
use crate::state::{Outbound, Shared};

/// Sends `reason` to the online device `jid` and closes its socket.
/// `replaced` is a conflict (another client took over); `end` a bare
/// `<xmlstreamend/>`; `close` drops the socket silently; a number is a
/// `<stream:error code>`, and 401/516 also unlink the device for good.
pub fn kick(shared: &Shared, jid: &str, reason: &str) -> Result<()> {
    let stanza: Option<Node> = match reason {
        "replaced" => Some(
            NodeBuilder::new("stream:error").children([NodeBuilder::new("conflict").attr("type", "replaced").build()]).build(),
        ),
        "end" => Some(NodeBuilder::new("xmlstreamend").build()),
        "close" => None,
        code if code.parse::<u16>().is_ok() => Some(NodeBuilder::new("stream:error").attr("code", code.to_string()).build()),
        other => bail!("unknown kick reason {other:?}"),
    };
    let mut inner = shared.lock();
    let (phone, device) = resolve(&inner, jid).with_context(|| format!("unknown device {jid}"))?;
    if matches!(reason, "401" | "516") {
        let account = inner.dir.account_mut(&phone).context("account vanished")?;
        account.devices.remove(&device).with_context(|| format!("{jid} is not linked"))?;
        tracing::info!(phone, device, reason, "device unlinked");
        devices::announce(shared, &inner, &phone, device, Change::Removed);
    }
    let conn = inner.online.remove(&(phone, device)).with_context(|| format!("{jid} is not online"))?;
    if let Some(stanza) = stanza {
        let _ = conn.tx.send(Outbound::Node(stanza));
    }
    let _ = conn.tx.send(Outbound::Close);
    Ok(())
}
