//! QR codes for linking, rendered for a terminal, as SVG and as PNG.

use qrcode::render::{svg, unicode};
use qrcode::{Color, QrCode};

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
    let code = encode(data)?;
    let modules = code.width() as u32;
    let colors = code.to_colors();
    let side = (modules + 8) * scale;
    let mut pixels = vec![255u8; (side * side) as usize];
    for (i, c) in colors.iter().enumerate() {
        if *c == Color::Dark {
            let (mx, my) = (i as u32 % modules + 4, i as u32 / modules + 4);
            for y in my * scale..(my + 1) * scale {
                let row = (y * side) as usize;
                pixels[row + (mx * scale) as usize..row + ((mx + 1) * scale) as usize].fill(0);
            }
        }
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, side, side);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().map_err(|e| e.to_string())?;
    w.write_image_data(&pixels).map_err(|e| e.to_string())?;
    w.finish().map_err(|e| e.to_string())?;
    Ok(out)
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
    }
}
