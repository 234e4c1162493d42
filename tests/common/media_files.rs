//! Small media files built byte by byte, for the formats pgwa reads: an Ogg Opus voice
//! note of a known length, a lossless WebP header of a known size, an MP4's first box.
//! Their payloads are not playable; what pgwa and WhatsApp read from the headers is real.

/// One Ogg page carrying one packet (CRC left zero: nothing here checks it).
fn ogg_page(header_type: u8, granule: u64, sequence: u32, packet: &[u8]) -> Vec<u8> {
    assert!(packet.len() < 255, "one lacing value per test packet");
    let mut page = b"OggS".to_vec();
    page.push(0); // version
    page.push(header_type);
    page.extend(granule.to_le_bytes());
    page.extend(0x5047_5741u32.to_le_bytes()); // stream serial
    page.extend(sequence.to_le_bytes());
    page.extend([0; 4]); // CRC
    page.push(1);
    page.push(packet.len() as u8);
    page.extend(packet);
    page
}

/// An Ogg Opus file whose last page ends `seconds` of audio after a 312-sample pre-skip.
pub fn ogg_opus(seconds: u64) -> Vec<u8> {
    let mut head = b"OpusHead".to_vec();
    head.push(1); // version
    head.push(1); // channels
    head.extend(312u16.to_le_bytes()); // pre-skip
    head.extend(48_000u32.to_le_bytes()); // input rate
    head.extend(0i16.to_le_bytes()); // gain
    head.push(0); // mapping family
    let mut file = ogg_page(0x02, 0, 0, &head);
    file.extend(ogg_page(0, 0, 1, b"OpusTags\x00\x00\x00\x00\x00\x00\x00\x00"));
    file.extend(ogg_page(0x04, 312 + 48_000 * seconds, 2, &[0xFC; 40]));
    file
}

/// A lossless WebP (VP8L) header for a `width` x `height` image.
pub fn webp(width: u32, height: u32) -> Vec<u8> {
    let bits = (width - 1) | (height - 1) << 14;
    let mut chunk = vec![0x2F];
    chunk.extend(bits.to_le_bytes());
    chunk.extend([0; 11]);
    let mut file = b"RIFF".to_vec();
    file.extend((4 + 8 + chunk.len() as u32).to_le_bytes());
    file.extend(b"WEBPVP8L");
    file.extend((chunk.len() as u32).to_le_bytes());
    file.extend(chunk);
    file
}

/// The start of an MP4: an `ftyp` box, then an empty `mdat`.
pub fn mp4() -> Vec<u8> {
    let mut file = vec![0, 0, 0, 24];
    file.extend(b"ftypisom\x00\x00\x02\x00isomiso2");
    file.extend([0, 0, 0, 8]);
    file.extend(b"mdat");
    file
}
