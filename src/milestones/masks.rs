//! Segmentation masks as a picture: for each canvas, the input in grey, the true mask and the
//! predicted mask in class colours, side by side.

use crate::data::canvas::CLASSES;
use crate::picture::Image;

/// Class colours: background black, digits 0-9 in matplotlib's "tab10" order.
const COLORS: [(u8, u8, u8); CLASSES] = [
    (0, 0, 0),
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];
pub const COLOR_NAMES: [&str; 10] =
    ["blue", "orange", "green", "red", "purple", "brown", "pink", "grey", "olive", "cyan"];

/// What the mask colours mean, for the picture's key: background, then each digit.
pub fn key() -> Vec<([f32; 3], String)> {
    let label = |k: usize| if k == 0 { "background".to_string() } else { format!("{}", k - 1) };
    COLORS.iter().enumerate().map(|(k, c)| ([c.0, c.1, c.2].map(|v| v as f32 / 255.0), label(k))).collect()
}

/// One row per canvas: the input in grey, the true mask and the predicted mask in class
/// colours, each pixel drawn as a 3x3 block, on white with 8-pixel gutters.
pub fn segment_picture(size: usize, rows: &[(&[f32], &[u8], &[u32])]) -> Image {
    const ZOOM: usize = 3;
    const GAP: usize = 8;
    let panels: Vec<Image> = rows
        .iter()
        .flat_map(|(image, truth, pred)| {
            let colour = |c: (u8, u8, u8)| [c.0, c.1, c.2].map(|v| v as f32 / 255.0);
            let input = Image::gray(size, size, image.iter().map(|v| v.clamp(0.0, 1.0)).collect());
            let mask = |classes: &mut dyn Iterator<Item = usize>| {
                Image::rgb(size, size, classes.flat_map(|k| colour(COLORS[k % CLASSES])).collect())
            };
            [input.to_rgb(), mask(&mut truth.iter().map(|&k| k as usize)), mask(&mut pred.iter().map(|&k| k as usize))]
        })
        .map(|p| p.upscale(ZOOM))
        .collect();
    Image::grid(&panels, 3, GAP, 1.0)
}
