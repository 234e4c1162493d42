//! What a media file is, read from its first bytes (a payload's `mimetype` is the app's
//! word; WhatsApp's apps play what the bytes are): the image formats shown inline, MP4
//! video, Ogg Opus voice notes (and their length), WebP stickers (size, animation).

/// The image formats WhatsApp renders inline.
pub fn image(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if b.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some("image/png")
    } else if is_webp(b) {
        Some("image/webp")
    } else {
        None
    }
}

pub fn is_webp(b: &[u8]) -> bool {
    b.len() >= 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WEBP"
}

/// An ISO base media file (MP4, MOV, 3GP): its first box is `ftyp`.
pub fn is_mp4(b: &[u8]) -> bool {
    b.len() >= 12 && &b[4..8] == b"ftyp"
}

/// An Ogg stream whose first packet is an Opus header: what WhatsApp records voice in.
pub fn is_ogg_opus(b: &[u8]) -> bool {
    b.starts_with(b"OggS") && opus_head(b).is_some()
}

/// The OpusHead packet's pre-skip (samples at 48 kHz to drop from the start).
fn opus_head(b: &[u8]) -> Option<u16> {
    let at = b.windows(8).take(512).position(|w| w == b"OpusHead")?;
    let pre_skip = b.get(at + 10..at + 12)?;
    Some(u16::from_le_bytes([pre_skip[0], pre_skip[1]]))
}

/// An Ogg Opus file's length in whole seconds (rounded up), from the granule position of
/// its last page: Opus counts samples at 48 kHz whatever the input rate.
pub fn ogg_opus_seconds(b: &[u8]) -> Option<u32> {
    let pre_skip = u64::from(opus_head(b)?);
    let last = b.windows(4).rposition(|w| w == b"OggS")?;
    let granule = b.get(last + 6..last + 14)?;
    let samples = u64::from_le_bytes(granule.try_into().ok()?);
    // -1 marks a page where no packet ends; such a last page tells nothing.
    if samples == u64::MAX {
        return None;
    }
    Some(samples.saturating_sub(pre_skip).div_ceil(48_000) as u32)
}

/// A WebP's canvas size and whether it is animated, from its first chunk (VP8X for
/// extended files, else the VP8 or VP8L bitstream header).
pub fn webp_info(b: &[u8]) -> Option<(u32, u32, bool)> {
    if !is_webp(b) {
        return None;
    }
    let chunk = b.get(12..16)?;
    let data = b.get(20..)?;
    let le24 = |s: &[u8]| u32::from(s[0]) | u32::from(s[1]) << 8 | u32::from(s[2]) << 16;
    match chunk {
        b"VP8X" => {
            let d = data.get(..10)?;
            Some((le24(&d[4..7]) + 1, le24(&d[7..10]) + 1, d[0] & 0x02 != 0))
        }
        b"VP8 " => {
            let d = data.get(..10)?;
            // Key frame start code, then 14-bit width and height.
            (d[3..6] == [0x9D, 0x01, 0x2A]).then(|| {
                (
                    u32::from(u16::from_le_bytes([d[6], d[7]]) & 0x3FFF),
                    u32::from(u16::from_le_bytes([d[8], d[9]]) & 0x3FFF),
                    false,
                )
            })
        }
        b"VP8L" => {
            let d = data.get(..5)?;
            if d[0] != 0x2F {
                return None;
            }
            let bits = u32::from_le_bytes([d[1], d[2], d[3], d[4]]);
            Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, false))
        }
        _ => None,
    }
}
