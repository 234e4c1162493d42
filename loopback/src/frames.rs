//! WebSocket byte stream <-> frames. The client may split or join frames across
//! WebSocket messages, so input is buffered; its very first bytes carry the
//! connection header, which the server must strip once and never send back.

use wacore_binary::consts::WA_CONN_HEADER;
use wacore_noise::framing::FrameDecoder;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("client stream does not start with the WA connection header (got {0:02x?})")]
    BadHeader(Vec<u8>),
    #[error("client sent an edge-routing pre-intro, which this server never asks for")]
    EdgeRouting,
    #[error("outgoing frame of {0} bytes exceeds the 3-byte length limit")]
    TooLarge(usize),
}

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
            let need = WA_CONN_HEADER.len() - self.pending_header.len();
            let take = need.min(data.len());
            self.pending_header.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending_header.len() < WA_CONN_HEADER.len() {
                return Ok(Vec::new());
            }
            if self.pending_header.starts_with(b"ED") {
                return Err(FrameError::EdgeRouting);
            }
            if self.pending_header[..] != WA_CONN_HEADER[..] {
                return Err(FrameError::BadHeader(self.pending_header.clone()));
            }
            self.header_seen = true;
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
    fn wrong_header_is_rejected() {
        let mut reader = FrameReader::new();
        assert!(matches!(reader.push(b"XXXX"), Err(FrameError::BadHeader(_))));
    }
}
