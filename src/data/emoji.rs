//! The emoji set (fetched by `make data` into data/fetched/emoji): index.json, one entry per
//! emoji with its `unicode` (the file `png/<UNICODE>.png`), `name`, `category` and `keywords`,
//! and 64x64 palette PNGs. Images are decoded to RGB in [0, 1], alpha composited onto white,
//! and box-downscaled; captions are lowercase word lists (for image–text training).

use super::catalog::{fetched_dir, present};
use crate::error::DlError;
use std::path::Path;

/// One emoji: its RGB image (`size * size * 3`, row-major, channels last), name and keywords.
#[derive(Clone, Debug)]
pub struct Emoji {
    pub unicode: String,
    pub name: String,
    pub category: String,
    pub keywords: Vec<String>,
    pub rgb: Vec<f32>,
}

/// The emoji set at one image size, sorted by `unicode` (a fixed order for seeded splits).
#[derive(Clone, Debug)]
pub struct EmojiSet {
    pub items: Vec<Emoji>,
    pub size: usize,
}

/// Lowercase words of a caption: runs of ASCII letters and digits (`"Thumbs-up sign"` →
/// `["thumbs", "up", "sign"]`).
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).map(|w| w.to_ascii_lowercase()).collect()
}

/// Decodes PNG bytes (palette, gray, RGB, with or without alpha; 8 or 16 bit) to RGB in [0, 1]
/// at `size x size`, alpha composited onto white, box-averaged. `what` names the source in errors.
pub fn decode_png_rgb(bytes: &[u8], size: usize, what: &str) -> Result<Vec<f32>, DlError> {
    let bad = |m: String| DlError::Data(format!("{what} is not a readable PNG image ({m}). Pass a .png file"));
    if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Err(bad("no PNG signature".into()));
    }
    let mut dec = png::Decoder::new(bytes);
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().map_err(|e| bad(e.to_string()))?;
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).map_err(|e| bad(e.to_string()))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let ch = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err(bad("palette not expanded".into())),
    };
    if w == 0 || h == 0 || size == 0 {
        return Err(bad("empty image".into()));
    }
    let stride = info.line_size;
    let pixel = |x: usize, y: usize| -> [f32; 3] {
        let p = &buf[y * stride + x * ch..y * stride + (x + 1) * ch];
        let f = |v: u8| v as f32 / 255.0;
        let (rgb, a) = match ch {
            1 => ([f(p[0]); 3], 1.0),
            2 => ([f(p[0]); 3], f(p[1])),
            3 => ([f(p[0]), f(p[1]), f(p[2])], 1.0),
            _ => ([f(p[0]), f(p[1]), f(p[2])], f(p[3])),
        };
        rgb.map(|c| c * a + (1.0 - a))
    };
    // Output pixel (ox, oy) averages the source pixels x with x * size / w == ox (every source
    // pixel lands in exactly one output pixel; an exact box filter when size divides w).
    let mut sum = vec![0f32; size * size * 3];
    let mut count = vec![0f32; size * size];
    for y in 0..h {
        let oy = y * size / h;
        for x in 0..w {
            let ox = x * size / w;
            let c = pixel(x, y);
            let o = oy * size + ox;
            count[o] += 1.0;
            for k in 0..3 {
                sum[o * 3 + k] += c[k];
            }
        }
    }
    // Upscaling leaves holes: fill them from the nearest source pixel.
    for oy in 0..size {
        for ox in 0..size {
            let o = oy * size + ox;
            if count[o] == 0.0 {
                let c = pixel(ox * w / size, oy * h / size);
                sum[o * 3..o * 3 + 3].copy_from_slice(&c);
                count[o] = 1.0;
            }
        }
    }
    Ok(sum.iter().enumerate().map(|(i, s)| s / count[i / 3]).collect())
}

/// Reads the set from `dir` (holding index.json and png/).
pub fn load_from(dir: &Path, size: usize) -> Result<EmojiSet, DlError> {
    let index = dir.join("index.json");
    let text = std::fs::read_to_string(&index)
        .map_err(|e| DlError::Data(format!("cannot read {}: {e}. Re-fetch it with `make data`", index.display())))?;
    let malformed =
        |m: String| DlError::Malformed { what: "emoji index", path: index.display().to_string(), message: m };
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| malformed(e.to_string()))?;
    let entries = json.as_object().ok_or_else(|| malformed("expected an object of entries".into()))?;
    let mut items = Vec::with_capacity(entries.len());
    for (key, e) in entries {
        let field = |f: &str| -> Result<String, DlError> {
            e.get(f)
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| malformed(format!("entry `{key}` has no string `{f}`")))
        };
        let unicode = field("unicode")?;
        let keywords = match e.get("keywords").and_then(|v| v.as_array()) {
            Some(a) => a.iter().filter_map(|v| v.as_str()).map(str::to_string).collect(),
            None => vec![],
        };
        let path = dir.join("png").join(format!("{unicode}.png"));
        let bytes = std::fs::read(&path)
            .map_err(|e| DlError::Data(format!("cannot read {}: {e}. Re-fetch it with `make data`", path.display())))?;
        let rgb = decode_png_rgb(&bytes, size, &path.display().to_string())?;
        items.push(Emoji {
            unicode,
            name: field("name")?,
            category: field("category").unwrap_or_default(),
            keywords,
            rgb,
        });
    }
    items.sort_by(|a, b| a.unicode.cmp(&b.unicode));
    Ok(EmojiSet { items, size })
}

/// The fetched set at `size x size`, or `None` when `make data` has not fetched it.
pub fn load(size: usize) -> Result<Option<EmojiSet>, DlError> {
    if !present("emoji") {
        return Ok(None);
    }
    load_from(&fetched_dir().join("emoji"), size).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4x4 palette PNG: left half opaque red, right half fully transparent (→ white).
    fn fixture_png() -> Vec<u8> {
        let mut out = vec![];
        {
            let mut enc = png::Encoder::new(&mut out, 4, 4);
            enc.set_color(png::ColorType::Indexed);
            enc.set_depth(png::BitDepth::Eight);
            enc.set_palette(vec![255, 0, 0, 0, 0, 255]);
            enc.set_trns(vec![255, 0]);
            let mut w = enc.write_header().unwrap();
            let row = [0u8, 0, 1, 1];
            w.write_image_data(&row.repeat(4)).unwrap();
        }
        out
    }

    #[test]
    fn decodes_palette_with_alpha_onto_white_and_downscales() {
        let rgb = decode_png_rgb(&fixture_png(), 2, "fixture").unwrap();
        // 2x2: left column red (1, 0, 0), right column transparent blue composited → white.
        assert_eq!(rgb, vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        let full = decode_png_rgb(&fixture_png(), 4, "fixture").unwrap();
        assert_eq!(full.len(), 48);
        let err = decode_png_rgb(b"GIF89a....", 2, "x.gif").unwrap_err().to_string();
        assert!(err.contains("x.gif is not a readable PNG"), "{err}");
    }

    #[test]
    fn loads_a_fixture_set_sorted_by_unicode() {
        let dir = std::env::temp_dir().join(format!("dlhist-emoji-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("png")).unwrap();
        std::fs::write(dir.join("png/1F600.png"), fixture_png()).unwrap();
        std::fs::write(dir.join("png/1F4AF.png"), fixture_png()).unwrap();
        let index = r#"{"grin": {"unicode": "1F600", "name": "Grinning face", "category": "people", "keywords": ["happy", "smile"]},
                        "100": {"unicode": "1F4AF", "name": "hundred points symbol", "category": "symbols"}}"#;
        std::fs::write(dir.join("index.json"), index).unwrap();
        let set = load_from(&dir, 2).unwrap();
        std::fs::write(dir.join("index.json"), r#"{"x": {"name": "no unicode"}}"#).unwrap();
        let err = load_from(&dir, 2).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(set.items.iter().map(|e| e.unicode.as_str()).collect::<Vec<_>>(), ["1F4AF", "1F600"]);
        assert_eq!(set.items[1].keywords, ["happy", "smile"]);
        assert!(set.items[0].keywords.is_empty());
        assert_eq!(words(&set.items[1].name), ["grinning", "face"]);
        assert_eq!(set.items[0].rgb.len(), 12);
        assert!(err.contains("no string `unicode`"), "{err}");
    }

    /// The fetched set, when present: 1,794 entries, all decodable.
    #[test]
    fn fetched_set_loads() {
        let Some(set) = load(32).unwrap() else { return };
        assert_eq!(set.items.len(), 1794);
        assert!(set.items.iter().all(|e| e.rgb.len() == 32 * 32 * 3 && !e.name.is_empty()));
    }
}
