//! Calls, as far as a gateway meets them: the server rings a number's online devices
//! with an `<offer>` (`POST /admin/call`, the test playing the caller's phone), and
//! records what devices answer about it (`<call><reject .../></call>`), which tests read
//! from [`crate::state::Inner::call_signals`]. No media: nobody picks up here.

use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node};

use crate::nodes::{self, attr_string, children};
use crate::session::{Role, Session};
use crate::state::{Outbound, Shared};

/// What a device said about a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallSignal {
    /// The device's number.
    pub from_phone: String,
    /// `reject`, `accept`, `terminate`…: the action's tag.
    pub action: String,
    pub call_id: String,
    /// The `to` of the wrapper and the action's `call-creator`.
    pub to: String,
    pub call_creator: String,
}

/// Rings `to_phone`'s online devices with a call from `from_phone`. Returns the call id,
/// or None when no device of that number is online (nothing rang).
pub fn offer(shared: &Shared, from_phone: &str, to_phone: &str, video: bool) -> Option<String> {
    let call_id = format!("CALL{:016X}", shared.next_id());
    let caller = Jid::pn(from_phone);
    let mut media = vec![NodeBuilder::new("audio").attr("enc", "opus").attr("rate", "16000").build()];
    if video {
        media.push(NodeBuilder::new("video").attr("enc", "vp8").attr("dec", "vp8").build());
    }
    let stanza = NodeBuilder::new("call")
        .attr("from", caller.clone())
        .attr("id", format!("{:X}", shared.next_id()))
        .attr("t", nodes::now().to_string())
        .children([NodeBuilder::new("offer")
            .attr("call-creator", caller)
            .attr("call-id", call_id.clone())
            .children(media)
            .build()])
        .build();
    let inner = shared.lock();
    let devices: Vec<u16> = inner.dir.account(to_phone)?.devices.keys().copied().collect();
    let mut rang = false;
    for d in devices {
        if let Some(conn) = inner.online.get(&(to_phone.to_string(), d)) {
            rang |= conn.tx.send(Outbound::Node(stanza.clone())).is_ok();
        }
    }
    rang.then_some(call_id)
}

/// A `<call>` from a device: its action is recorded; the server acks the stanza.
pub fn on_call(session: &Session, node: &Node) {
    let Role::Device { phone, .. } = &session.role else { return };
    let to = attr_string(node, "to").unwrap_or_default();
    if let Some(action) = children(node).first() {
        let signal = CallSignal {
            from_phone: phone.clone(),
            action: action.tag.to_string(),
            call_id: attr_string(action, "call-id").unwrap_or_default(),
            to: to.clone(),
            call_creator: attr_string(action, "call-creator").unwrap_or_default(),
        };
        tracing::info!(?signal, "call signal from a device");
        session.shared.lock().call_signals.push(signal);
    }
    if let Some(id) = attr_string(node, "id") {
        session.send(NodeBuilder::new("ack").attr("class", "call").attr("id", id).attr("from", to).build());
    }
}
