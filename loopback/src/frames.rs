//! WebSocket byte stream <-> frames. The client may split or join frames across
//! WebSocket messages, so input is buffered; its very first bytes carry the
//! connection header, which the server must strip once and never send back. A client
//! that stored routing info from an earlier server (an imported session: Baileys'
//! `routingInfo`) puts an edge-routing pre-intro before that header
//! (`ED\0\1`, 3-byte length, the routing data), which is skipped.

use wacore_binary::consts::WA_CONN_HEADER;
use wacore_noise::framing::FrameDecoder;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("client stream does not start with the WA connection header (got {0:02x?})")]
    BadHeader(Vec<u8>),
    #[error("outgoing frame of {0} bytes exceeds the 3-byte length limit")]
    TooLarge(usize),
}

/// The start of an edge-routing pre-intro (wacore-noise `edge_routing`).
const EDGE_ROUTING_PREFIX: &[u8] = b"ED\x00\x01";

/// Reassembles client frames from WebSocket messages.
pub struct FrameReader {
    header_seen: bool,
    pending_header: Vec<u8>,
    decoder: FrameDecoder,
}

impl Default for FrameReader {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameReader {
    pub fn new() -> Self {
        Self { header_seen: false, pending_header: Vec::new(), decoder: FrameDecoder::new() }
    }

    /// Feeds one WebSocket message and returns every frame it completed.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut data = data;
        if !self.header_seen {
            self.pending_header.extend_from_slice(data);
            data = &[];
            let mut start = 0;
            if self.pending_header.starts_with(EDGE_ROUTING_PREFIX) {
                let Some(len) = self.pending_header.get(4..7) else { return Ok(Vec::new()) };
                start = 7 + len.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b));
            }
            let Some(header) = self.pending_header.get(start..start + WA_CONN_HEADER.len()) else {
                return Ok(Vec::new());
            };
            if header != WA_CONN_HEADER {
                return Err(FrameError::BadHeader(header.to_vec()));
            }
            self.header_seen = true;
            let rest = self.pending_header.split_off(start + WA_CONN_HEADER.len());
            self.decoder.feed(&rest);
        }
        self.decoder.feed(data);
        let mut frames = Vec::new();
        while let Some(frame) = self.decoder.decode_frame() {
            frames.push(frame.to_vec());
        }
        Ok(frames)
    }
}

/// Prefixes a server payload with its 3-byte big-endian length.
pub fn encode(payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    if payload.len() >= 1 << 24 {
        return Err(FrameError::TooLarge(payload.len()));
    }
    let len = payload.len() as u32;
    let mut out = Vec::with_capacity(payload.len() + 3);
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(payload);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_frames_split_across_messages() {
        let mut wire = WA_CONN_HEADER.to_vec();
        wire.extend(encode(b"hello").unwrap());
        wire.extend(encode(b"world!").unwrap());
        let mut reader = FrameReader::new();
        let mut got = Vec::new();
        for chunk in wire.chunks(3) {
            got.extend(reader.push(chunk).unwrap());
        }
        assert_eq!(got, vec![b"hello".to_vec(), b"world!".to_vec()]);
    }

    #[test]
    fn an_edge_routing_pre_intro_is_skipped() {
        let (mut wire, _) = wacore_noise::build_handshake_header(Some(b"routing-info"));
        assert!(wire.starts_with(EDGE_ROUTING_PREFIX) && wire.ends_with(&WA_CONN_HEADER));
        wire.extend(encode(b"hello").unwrap());
        let mut reader = FrameReader::new();
        let mut got = Vec::new();
        for chunk in wire.chunks(2) {
            got.extend(reader.push(chunk).unwrap());
        }
        assert_eq!(got, vec![b"hello".to_vec()]);
    }

    #[test]
    fn wrong_header_is_rejected() {
        let mut reader = FrameReader::new();
        assert!(matches!(reader.push(b"XXXX"), Err(FrameError::BadHeader(_))));
    }
}
