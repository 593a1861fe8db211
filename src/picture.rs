//! Pictures as data: what a sampler returns when people would rather look than read (sample
//! grids, reconstructions, masks, a denoising trajectory, an attention matrix). Milestones build
//! them; only cli/ writes them, through report/, as PNG files.

/// Pixels, row-major, values in [0, 1] (clamped when written); 1 channel (grey) or 3 (RGB,
/// interleaved).
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<f32>,
}

/// Something to draw.
#[derive(Clone, Debug)]
pub enum Picture {
    Image(Image),
    /// frames of one size, written as an animated PNG that loops (e.g. a denoising trajectory)
    Frames {
        frames: Vec<Image>,
        delay_ms: u16,
    },
    /// a matrix with labelled rows and columns, values in [0, 1] (attention weights), drawn as a
    /// heatmap
    Heatmap {
        rows: Vec<String>,
        cols: Vec<String>,
        values: Vec<Vec<f32>>,
    },
    /// an image whose colours mean something (classes of a segmentation mask), drawn with a
    /// caption and a key under it: a swatch of each colour (RGB in [0, 1]) and its label
    Keyed {
        image: Image,
        caption: String,
        key: Vec<([f32; 3], String)>,
    },
}

impl Image {
    /// A grey image; `data` has `width · height` values.
    pub fn gray(width: usize, height: usize, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), width * height, "a {width}x{height} grey image");
        Self { width, height, channels: 1, data }
    }

    /// An RGB image; `data` has `3 · width · height` values, interleaved.
    pub fn rgb(width: usize, height: usize, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), 3 * width * height, "a {width}x{height} RGB image");
        Self { width, height, channels: 3, data }
    }

    /// A `width`×`height` image of one colour (`rgb` for 3 channels, its first value for grey).
    pub fn filled(width: usize, height: usize, channels: usize, rgb: [f32; 3]) -> Self {
        let data = (0..width * height).flat_map(|_| rgb[..channels].to_vec()).collect();
        Self { width, height, channels, data }
    }

    /// The same image with 3 channels.
    pub fn to_rgb(&self) -> Self {
        if self.channels == 3 {
            return self.clone();
        }
        Self::rgb(self.width, self.height, self.data.iter().flat_map(|&v| [v, v, v]).collect())
    }

    /// Each pixel drawn as a `k`×`k` block (small images, e.g. 8x8 digits, become visible).
    pub fn upscale(&self, k: usize) -> Self {
        let (w, h, c) = (self.width * k, self.height * k, self.channels);
        let mut data = Vec::with_capacity(w * h * c);
        for y in 0..h {
            for x in 0..w {
                let at = ((y / k) * self.width + x / k) * c;
                data.extend_from_slice(&self.data[at..at + c]);
            }
        }
        Self { width: w, height: h, channels: c, data }
    }

    /// `self` copied into `canvas` with its top-left corner at (x, y).
    fn paste_into(&self, canvas: &mut Image, x: usize, y: usize) {
        let c = canvas.channels;
        let src = if self.channels == c { self.clone() } else { self.to_rgb() };
        for row in 0..src.height {
            let from = row * src.width * c;
            let to = ((y + row) * canvas.width + x) * c;
            canvas.data[to..to + src.width * c].copy_from_slice(&src.data[from..from + src.width * c]);
        }
    }

    /// Images of one size tiled row by row into `cols` columns, `pad` pixels apart and around,
    /// on a background of `bg` (e.g. 0.5 grey, so black and white digits both stand out).
    pub fn grid(images: &[Image], cols: usize, pad: usize, bg: f32) -> Self {
        assert!(!images.is_empty() && cols > 0, "a grid of at least one image");
        let (w, h) = (images[0].width, images[0].height);
        assert!(images.iter().all(|i| i.width == w && i.height == h), "a grid of images of one size");
        let channels = images.iter().map(|i| i.channels).max().unwrap();
        let cols = cols.min(images.len());
        let rows = images.len().div_ceil(cols);
        let mut canvas = Image::filled(cols * (w + pad) + pad, rows * (h + pad) + pad, channels, [bg; 3]);
        for (i, img) in images.iter().enumerate() {
            img.paste_into(&mut canvas, pad + (i % cols) * (w + pad), pad + (i / cols) * (h + pad));
        }
        canvas
    }

    /// The smallest square-ish grid: ⌈√n⌉ columns (64 images: 8x8).
    pub fn square_grid(images: &[Image], pad: usize, bg: f32) -> Self {
        let cols = (images.len() as f64).sqrt().ceil() as usize;
        Self::grid(images, cols.max(1), pad, bg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_places_each_image_in_its_cell_on_the_background() {
        let imgs: Vec<Image> = (0..5).map(|i| Image::gray(2, 2, vec![i as f32 / 4.0; 4])).collect();
        let g = Image::grid(&imgs, 3, 1, 0.5);
        assert_eq!((g.width, g.height, g.channels), (3 * 3 + 1, 2 * 3 + 1, 1));
        let at = |x: usize, y: usize| g.data[y * g.width + x];
        assert_eq!((at(0, 0), at(1, 1), at(4, 1), at(2, 5), at(5, 5)), (0.5, 0.0, 0.25, 0.75, 1.0));
        assert_eq!(at(8, 5), 0.5, "the sixth cell is empty");
        let big = imgs[1].upscale(3);
        assert_eq!((big.width, big.data.len()), (6, 36));
    }
}
