//! QR codes for linking, rendered for a terminal, as SVG and as PNG.

use qrcode::QrCode;
use qrcode::render::{svg, unicode};

fn encode(data: &str) -> Result<QrCode, String> {
    QrCode::new(data.as_bytes()).map_err(|e| format!("cannot encode the QR code: {e}"))
}

/// Two modules per character row, for a terminal.
pub fn terminal(data: &str) -> Result<String, String> {
    Ok(encode(data)?.render::<unicode::Dense1x2>().quiet_zone(true).build())
}

pub fn svg(data: &str) -> Result<String, String> {
    Ok(encode(data)?.render::<svg::Color>().min_dimensions(256, 256).quiet_zone(true).build())
}

/// A black-on-white PNG, `scale` pixels per module, with the standard 4-module margin.
pub fn png(data: &str, scale: u32) -> Result<Vec<u8>, String> {
    let img = encode(data)?.render::<image::Luma<u8>>().module_dimensions(scale, scale).quiet_zone(true).build();
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).map_err(|e| format!("cannot encode the QR code as PNG: {e}"))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_format() {
        let data = "2@abc,def,ghi,jkl";
        assert!(terminal(data).unwrap().contains('█'));
        assert!(svg(data).unwrap().starts_with("<?xml"));
        let png = png(data, 4).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        // 4 px per module, 4 modules of margin on each side, black on white.
        let img = image::load_from_memory(&png).unwrap().to_luma8();
        let modules = encode(data).unwrap().width() as u32;
        assert_eq!(img.dimensions(), ((modules + 8) * 4, (modules + 8) * 4));
        assert_eq!(img.get_pixel(0, 0).0, [255], "the margin is white");
        assert_eq!(img.get_pixel(16, 16).0, [0], "the finder pattern's corner is black");
    }
}
