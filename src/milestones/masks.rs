//! Segmentation masks as a picture: for each canvas, the input in grey, the true mask and the
//! predicted mask in class colours, side by side in one PNG (plotters' bitmap backend).

use crate::data::canvas::CLASSES;

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

/// One row per canvas: the input in grey, the true mask and the predicted mask in class
/// colours, each pixel drawn as a 3x3 block, on white with 8-pixel gutters.
pub fn segment_png(path: &std::path::Path, size: usize, rows: &[(&[f32], &[u8], &[u32])]) -> anyhow::Result<()> {
    use plotters::prelude::*;
    const ZOOM: usize = 3;
    const GAP: usize = 8;
    let panel = size * ZOOM;
    let (w, h) = (3 * panel + 4 * GAP, rows.len() * (panel + GAP) + GAP);
    let root = BitMapBackend::new(path, (w as u32, h as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    for (r, (image, truth, pred)) in rows.iter().enumerate() {
        let top = GAP + r * (panel + GAP);
        for k in 0..size * size {
            let g = (image[k].clamp(0.0, 1.0) * 255.0) as u8;
            let cols = [(g, g, g), COLORS[truth[k] as usize], COLORS[pred[k] as usize % CLASSES]];
            for (p, (cr, cg, cb)) in cols.into_iter().enumerate() {
                let (x0, y0) = (GAP + p * (panel + GAP) + (k % size) * ZOOM, top + (k / size) * ZOOM);
                for d in 0..ZOOM * ZOOM {
                    root.draw_pixel(((x0 + d % ZOOM) as i32, (y0 + d / ZOOM) as i32), &RGBColor(cr, cg, cb))?;
                }
            }
        }
    }
    root.present().map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}
