//! One WebSocket connection: handshake, then encrypted nodes in both directions.
//! Reading and writing run in one task so frame counters stay in order.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result, bail};
use axum::extract::ws::{Message, WebSocket};
use futures::StreamExt;
use tokio::sync::mpsc;
use wacore_binary::Node;

use crate::frames::{self, FrameReader};
use crate::noise::{self, ClientHello, Established, Transport};
use crate::session::Session;
use crate::state::{Outbound, Shared};

pub async fn serve(socket: WebSocket, shared: Arc<Shared>) {
    let conn_id = shared.next_id();
    match run(socket, shared, conn_id).await {
        Ok(()) => tracing::debug!(conn_id, "connection closed"),
        Err(e) => tracing::debug!(conn_id, "connection ended: {e:#}"),
    }
}

struct Wire {
    socket: WebSocket,
    reader: FrameReader,
    queued: std::collections::VecDeque<Vec<u8>>,
}

impl Wire {
    /// Next client frame, or None when the client closed.
    async fn next_frame(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            if let Some(f) = self.queued.pop_front() {
                return Ok(Some(f));
            }
            match self.socket.next().await {
                None => return Ok(None),
                Some(msg) => match msg.context("reading websocket")? {
                    Message::Binary(data) => self.queued.extend(self.reader.push(&data)?),
                    Message::Close(_) => return Ok(None),
                    _ => {}
                },
            }
        }
    }

    async fn send_frame(&mut self, payload: &[u8]) -> Result<()> {
        let framed = frames::encode(payload)?;
        self.socket.send(Message::Binary(framed.into())).await.context("writing websocket")
    }
}

async fn handshake(wire: &mut Wire, shared: &Shared) -> Result<Option<Established>> {
    let Some(first) = wire.next_frame().await? else { return Ok(None) };
    match noise::parse_client_hello(&first)? {
        ClientHello::Xx { ephemeral } => {
            shared.stats.xx_handshakes.fetch_add(1, Ordering::Relaxed);
            let (hello, pending) = noise::xx_respond(&shared.keys, &ephemeral)?;
            wire.send_frame(&hello).await?;
            let Some(finish) = wire.next_frame().await? else { return Ok(None) };
            Ok(Some(pending.finish(&finish)?))
        }
        ClientHello::Ik { ephemeral, encrypted_static, encrypted_payload } => {
            shared.stats.ik_handshakes.fetch_add(1, Ordering::Relaxed);
            match noise::ik_accept(&shared.keys, &ephemeral, &encrypted_static, &encrypted_payload) {
                Ok((hello, est)) => {
                    wire.send_frame(&hello).await?;
                    Ok(Some(est))
                }
                Err(e) => {
                    // The client cached a static key this server no longer has (or sent an
                    // IK hello it cannot use): answer XXfallback, as WhatsApp does, and the
                    // client finishes like XX on this same connection.
                    tracing::debug!("IK refused, answering XXfallback: {e:#}");
                    shared.stats.xx_fallback_handshakes.fetch_add(1, Ordering::Relaxed);
                    let (hello, pending) = noise::xx_fallback_respond(&shared.keys, &ephemeral)?;
                    wire.send_frame(&hello).await?;
                    let Some(finish) = wire.next_frame().await? else { return Ok(None) };
                    Ok(Some(pending.finish(&finish).context("XXfallback client finish")?))
                }
            }
        }
    }
}

async fn run(socket: WebSocket, shared: Arc<Shared>, conn_id: u64) -> Result<()> {
    let mut wire = Wire { socket, reader: FrameReader::new(), queued: Default::default() };
    let Some(est) = handshake(&mut wire, &shared).await.context("noise handshake")? else {
        return Ok(());
    };
    let mut transport = est.transport;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut session = Session::start(shared.clone(), conn_id, tx, est.client_static, est.payload);
    let result = async {
        loop {
            tokio::select! {
                out = rx.recv() => match out {
                    Some(Outbound::Node(node)) => write_node(&mut wire, &mut transport, &node).await?,
                    Some(Outbound::Close) | None => {
                        let _ = wire.socket.send(Message::Close(None)).await;
                        return Ok(());
                    }
                },
                frame = wire.next_frame() => {
                    let Some(frame) = frame? else { return Ok(()) };
                    let node = read_node(&mut transport, &frame)?;
                    tracing::trace!(conn_id, "<- {node:?}");
                    session.handle(node);
                }
            }
        }
    }
    .await;
    session.end();
    result
}

async fn write_node(wire: &mut Wire, transport: &mut Transport, node: &Node) -> Result<()> {
    tracing::trace!("-> {node:?}");
    let plain = wacore_binary::marshal(node).context("marshalling server node")?;
    let cipher = transport.encrypt(&plain)?;
    wire.send_frame(&cipher).await
}

fn read_node(transport: &mut Transport, frame: &[u8]) -> Result<Node> {
    let plain = transport.decrypt(frame)?;
    let unpacked = wacore_binary::util::unpack(&plain).context("unpacking client node")?;
    let node = wacore_binary::marshal::unmarshal_ref(&unpacked).context("decoding client node")?;
    if node.tag.is_empty() {
        bail!("client sent a node without a tag");
    }
    Ok(node.to_owned())
}
