//! Grayscale images drawn with characters, for terminal samples.

const RAMP: &[u8] = b" .:-=+*#%@";

/// Renders an h×w image in [0, 1] as lines of text. Each pixel is two characters wide so the
/// aspect ratio survives; images wider than 16 pixels are pooled 2x2 first (28x28 -> 14 lines).
pub fn render(img: &[f32], h: usize, w: usize) -> Vec<String> {
    let f = if w > 16 { 2 } else { 1 };
    let (oh, ow) = (h / f, w / f);
    (0..oh)
        .map(|r| {
            (0..ow)
                .map(|c| {
                    let mut s = 0.0;
                    for dr in 0..f {
                        for dc in 0..f {
                            s += img[(r * f + dr) * w + c * f + dc];
                        }
                    }
                    let v = (s / (f * f) as f32).clamp(0.0, 1.0);
                    let ch = RAMP[((v * (RAMP.len() - 1) as f32).round()) as usize] as char;
                    format!("{ch}{ch}")
                })
                .collect()
        })
        .collect()
}

/// Lays out blocks of lines side by side with a caption under each.
pub fn side_by_side(blocks: &[Vec<String>], captions: &[String]) -> String {
    let width = blocks
        .iter()
        .flat_map(|b| b.iter().map(|l| l.chars().count()))
        .chain(captions.iter().map(|c| c.chars().count()))
        .max()
        .unwrap_or(0)
        + 3;
    let rows = blocks.iter().map(|b| b.len()).max().unwrap_or(0);
    let mut out = String::new();
    for r in 0..rows {
        let line: String =
            blocks.iter().map(|b| format!("{:<width$}", b.get(r).map(|s| s.as_str()).unwrap_or(""))).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let line: String = captions.iter().map(|c| format!("{c:<width$}")).collect();
    out.push_str(line.trim_end());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn a_bright_pixel_is_drawn_darkest_and_28px_images_are_pooled() {
        let mut img = vec![0.0; 64];
        img[0] = 1.0;
        let r = render(&img, 8, 8);
        assert_eq!(r.len(), 8);
        assert!(r[0].starts_with("@@"));
        assert_eq!(render(&vec![0.0; 784], 28, 28).len(), 14);
    }
}
