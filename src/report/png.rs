//! Pictures (src/picture.rs) written as PNG files with the `png` crate: 8-bit grey or RGB,
//! animated PNG (APNG) for frames, and heatmaps and keyed images (with text) through plotters.

use crate::picture::{Image, Picture};
use anyhow::Context;
use std::io::BufWriter;
use std::path::Path;

fn bytes(img: &Image) -> Vec<u8> {
    img.data.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect()
}

fn color(img: &Image) -> anyhow::Result<png::ColorType> {
    match img.channels {
        1 => Ok(png::ColorType::Grayscale),
        3 => Ok(png::ColorType::Rgb),
        c => anyhow::bail!("an image of {c} channels cannot be written (1 or 3)"),
    }
}

/// Writes `pic` to `path` as a PNG (an animated one for frames).
pub fn write_png(path: &Path, pic: &Picture) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let create = || std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()));
    match pic {
        Picture::Image(img) => {
            let mut enc = png::Encoder::new(BufWriter::new(create()?), img.width as u32, img.height as u32);
            enc.set_color(color(img)?);
            enc.set_depth(png::BitDepth::Eight);
            enc.write_header()?.write_image_data(&bytes(img))?;
        }
        Picture::Frames { frames, delay_ms } => {
            let first = frames.first().context("an animation needs at least one frame")?;
            let mut enc = png::Encoder::new(BufWriter::new(create()?), first.width as u32, first.height as u32);
            enc.set_color(color(first)?);
            enc.set_depth(png::BitDepth::Eight);
            enc.set_animated(frames.len() as u32, 0)?;
            enc.set_frame_delay(*delay_ms, 1000)?;
            let mut w = enc.write_header()?;
            for f in frames {
                anyhow::ensure!(
                    f.width == first.width && f.height == first.height && f.channels == first.channels,
                    "the frames of an animation must have one size"
                );
                w.write_image_data(&bytes(f))?;
            }
            w.finish()?;
        }
        Picture::Heatmap { rows, cols, values } => super::plot::heatmap_png(path, rows, cols, values)?,
        Picture::Keyed { image, caption, key } => super::plot::keyed_png(path, image, caption, key)?,
    }
    Ok(())
}

/// Reads a PNG file as an image: grey stays grey, everything else becomes RGB; transparent
/// pixels are composited over white; 16-bit samples are reduced to 8.
pub fn read_png(path: &Path) -> anyhow::Result<Image> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut dec = png::Decoder::new(std::io::BufReader::new(file));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut r = dec.read_info().map_err(|e| anyhow::anyhow!("not a PNG file ({e})"))?;
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).map_err(|e| anyhow::anyhow!("a damaged PNG file ({e})"))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let px = &buf[..info.buffer_size()];
    let f = |b: u8| b as f32 / 255.0;
    let over_white = |v: u8, a: u8| f(v) * f(a) + 1.0 - f(a);
    Ok(match info.color_type {
        png::ColorType::Grayscale => Image::gray(w, h, px.iter().map(|&b| f(b)).collect()),
        png::ColorType::GrayscaleAlpha => Image::gray(w, h, px.chunks(2).map(|p| over_white(p[0], p[1])).collect()),
        png::ColorType::Rgb => Image::rgb(w, h, px.iter().map(|&b| f(b)).collect()),
        png::ColorType::Rgba => {
            Image::rgb(w, h, px.chunks(4).flat_map(|p| [0, 1, 2].map(|c| over_white(p[c], p[3]))).collect())
        }
        png::ColorType::Indexed => anyhow::bail!("a palette PNG that did not expand"),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Decodes a PNG file: (width, height, channels, bytes of the first frame, frames).
    pub fn decode(path: &Path) -> (u32, u32, usize, Vec<u8>, u32) {
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
        let mut r = dec.read_info().unwrap();
        let frames = r.info().animation_control().map_or(1, |a| a.num_frames);
        let mut buf = vec![0; r.output_buffer_size()];
        let info = r.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info.width, info.height, info.color_type.samples(), buf, frames)
    }

    #[test]
    fn an_image_decodes_to_its_size_and_pixel_range() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/g.png");
        let img = Image::gray(3, 2, vec![-1.0, 0.0, 0.5, 1.0, 2.0, 0.25]);
        write_png(&p, &Picture::Image(img)).unwrap();
        let (w, h, c, px, n) = decode(&p);
        assert_eq!((w, h, c, n), (3, 2, 1, 1));
        assert_eq!(px, vec![0, 0, 128, 255, 255, 64], "clamped to [0, 1], scaled to 0..255");
    }

    #[test]
    fn a_written_image_reads_back_and_a_text_file_is_not_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.png");
        let img = Image::rgb(2, 1, vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        write_png(&p, &Picture::Image(img.clone())).unwrap();
        let back = read_png(&p).unwrap();
        assert_eq!((back.width, back.height, back.channels), (2, 1, 3));
        assert!(back.data.iter().zip(&img.data).all(|(a, b)| (a - b).abs() < 0.5 / 255.0 + 1e-6));
        std::fs::write(&p, "hello").unwrap();
        assert!(read_png(&p).unwrap_err().to_string().contains("not a PNG"));
    }

    #[test]
    fn frames_become_an_animated_png() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.png");
        let frames = (0..4).map(|i| Image::rgb(2, 2, vec![i as f32 / 3.0; 12])).collect();
        write_png(&p, &Picture::Frames { frames, delay_ms: 80 }).unwrap();
        let (w, h, c, px, n) = decode(&p);
        assert_eq!((w, h, c, n), (2, 2, 3, 4));
        assert!(px.iter().all(|&b| b == 0), "the first frame is black");
    }
}
