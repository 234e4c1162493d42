//! Small helpers over wacore-binary nodes, so handlers read like the protocol.

use std::borrow::Cow;

use anyhow::{Context, Result};
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Node, NodeContent, SERVER_JID};

pub fn attr<'a>(node: &'a Node, key: &str) -> Option<Cow<'a, str>> {
    node.attrs.get(key).map(|v| v.as_str())
}

pub fn attr_string(node: &Node, key: &str) -> Option<String> {
    attr(node, key).map(Cow::into_owned)
}

pub fn child<'a>(node: &'a Node, tag: &str) -> Option<&'a Node> {
    node.get_optional_child(tag)
}

pub fn children(node: &Node) -> &[Node] {
    node.children().unwrap_or(&[])
}

pub fn bytes(node: &Node) -> Option<&[u8]> {
    match &node.content {
        Some(NodeContent::Bytes(b)) => Some(b),
        Some(NodeContent::String(s)) => Some(s.as_bytes()),
        _ => None,
    }
}

pub fn child_bytes<'a>(node: &'a Node, tag: &str) -> Option<&'a [u8]> {
    child(node, tag).and_then(bytes)
}

/// Big-endian unsigned integer from a byte child (registration ids, key ids).
pub fn child_uint(node: &Node, tag: &str) -> Option<u32> {
    let b = child_bytes(node, tag)?;
    (b.len() <= 4).then(|| b.iter().fold(0u32, |acc, x| (acc << 8) | u32::from(*x)))
}

pub fn child_key32(node: &Node, tag: &str) -> Result<[u8; 32]> {
    let b = child_bytes(node, tag).with_context(|| format!("<{}> has no <{tag}>", node.tag))?;
    b.try_into().map_err(|_| anyhow::anyhow!("<{tag}> in <{}> is {} bytes, not 32", node.tag, b.len()))
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `<iq type="result">` answering `request`, with optional children.
pub fn iq_result(request: &Node, content: Vec<Node>) -> Node {
    let id = attr_string(request, "id").unwrap_or_default();
    let b = NodeBuilder::new("iq").attr("from", SERVER_JID).attr("type", "result").attr("id", id);
    if content.is_empty() { b.build() } else { b.children(content).build() }
}

pub fn iq_error(request: &Node, code: u16, text: &str) -> Node {
    let id = attr_string(request, "id").unwrap_or_default();
    NodeBuilder::new("iq")
        .attr("from", SERVER_JID)
        .attr("type", "error")
        .attr("id", id)
        .children([NodeBuilder::new("error").attr("code", code.to_string()).attr("text", text).build()])
        .build()
}

pub fn be_bytes(value: u32, len: usize) -> Vec<u8> {
    value.to_be_bytes()[4 - len..].to_vec()
}
