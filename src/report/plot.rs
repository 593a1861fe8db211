//! Loss curves as a PNG, drawn with plotters. The font (DejaVu Sans, free licence, see
//! assets/fonts/) is compiled in, so plots need no system fonts.

use crate::picture::Image;
use plotters::coord::ranged1d::Ranged;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

pub(super) fn register_font() {
    REGISTER.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// One named curve of (x, y) points. Curves with the same `color` belong to one variant;
/// `dashed` marks the secondary curve (validation) of a pair.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub color: usize,
    pub dashed: bool,
}

/// Well-separated colours that read on white (Okabe & Ito's colour-blind-safe palette).
const COLORS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(230, 159, 0),
    RGBColor(0, 0, 0),
];

/// One chart of a figure.
pub struct Panel<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a [Series],
}

/// Draws the panels side by side in one PNG (900 pixels wide per panel).
pub fn panels_png(path: &Path, panels: &[Panel]) -> anyhow::Result<()> {
    register_font();
    let n = panels.len().max(1);
    let root = BitMapBackend::new(path, (900 * n as u32, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    for (area, p) in root.split_evenly((1, n)).iter().zip(panels) {
        draw(area, p)?;
    }
    root.present()?;
    Ok(())
}

/// A series' points that can be drawn (NaN and infinite values left out).
fn finite(s: &Series) -> Vec<(f64, f64)> {
    s.points.iter().copied().filter(|p| p.1.is_finite()).collect()
}

fn draw(area: &DrawingArea<BitMapBackend, plotters::coord::Shift>, p: &Panel) -> anyhow::Result<()> {
    let drawn: Vec<Vec<(f64, f64)>> = p.series.iter().map(finite).collect();
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in drawn.iter().flatten() {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        anyhow::bail!("nothing to plot: every series is empty");
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.05).max(1e-6);
    let (y0, y1) = (y0 - pad, y1 + pad);
    // where points are marked, a margin keeps the first and last markers whole
    let whole = drawn.iter().flatten().all(|p| p.0.fract() == 0.0);
    if drawn.iter().any(|pts| marks_points(pts.len())) {
        let margin = (x1 - x0) * 0.015;
        (x0, x1) = (x0 - margin, x1 + margin);
    }
    // x is a count (steps) when every point sits on a whole number; losses and metrics never are
    let x_axis = Axis::new(x0, x1, whole);
    let y_axis = Axis::new(y0, y1, false);
    let mut chart = ChartBuilder::on(area)
        .caption(p.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc(p.x_label)
        .y_desc(p.y_label)
        .x_labels(x_axis.count)
        .y_labels(y_axis.count)
        .x_label_formatter(&|v| tick_label(*v, x_axis.decimals))
        .y_label_formatter(&|v| tick_label(*v, y_axis.decimals))
        .label_style(("sans-serif", 14))
        .draw()?;
    for (s, pts) in p.series.iter().zip(drawn) {
        let color = COLORS[s.color % COLORS.len()];
        let style = color.stroke_width(2);
        let marked = marks_points(pts.len());
        if marked {
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, MARKER, color.filled())))?;
        }
        let anno = if s.dashed {
            chart.draw_series(DashedLineSeries::new(pts, 8, 5, style))?
        } else {
            chart.draw_series(LineSeries::new(pts, style))?
        };
        // the legend's sample: a stroke for a solid curve, two dashes for a dashed one, with
        // the marker between where the curve has them
        let [a, b] = if s.dashed { [(0, 6), (14, 20)] } else { [(0, 10), (10, 20)] };
        let line = move |(x, y)| {
            let stroke = |(from, to)| PathElement::new(vec![(from, 0), (to, 0)], color.stroke_width(3));
            EmptyElement::at((x, y)) + stroke(a) + stroke(b)
        };
        let anno = anno.label(s.name.clone());
        if marked {
            anno.legend(move |at| line(at) + Circle::new((10, 0), MARKER, color.filled()));
        } else {
            anno.legend(line);
        }
    }
    let (lo, hi) = ((x0, y0), (x1, y1));
    let corner = if legend_goes_low(p.series, lo, hi) {
        SeriesLabelPosition::LowerRight
    } else {
        SeriesLabelPosition::UpperRight
    };
    chart
        .configure_series_labels()
        .position(corner)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()?;
    Ok(())
}

/// Whether the legend should sit in the lower right corner rather than the upper right: where
/// fewer of the curves pass (a rising accuracy ends in the upper right, under the legend). The
/// curves are followed between their points, so a two-point line counts where it runs.
fn legend_goes_low(series: &[Series], lo: (f64, f64), hi: (f64, f64)) -> bool {
    let (w, h) = (hi.0 - lo.0, hi.1 - lo.1);
    let (mut upper, mut lower) = (0, 0);
    for s in series {
        let pts = finite(s);
        let along = pts.windows(2).flat_map(|w| {
            (0..16).map(move |k| {
                let t = k as f64 / 16.0;
                (w[0].0 + t * (w[1].0 - w[0].0), w[0].1 + t * (w[1].1 - w[0].1))
            })
        });
        // the corners are about a legend's size: the right 30% of the width, 30% of the height
        for (x, y) in along.chain(pts.last().copied()) {
            let (fx, fy) = ((x - lo.0) / w, (y - lo.1) / h);
            if fx >= 0.7 {
                upper += (fy >= 0.7) as usize;
                lower += (fy <= 0.3) as usize;
            }
        }
    }
    lower < upper
}

/// Curves of at most this many points also mark each point: a validation metric measured twice
/// would otherwise draw as one straight line, as if it had been measured all along.
const MARKED_UP_TO: usize = 20;
/// The radius of a point marker, in pixels.
const MARKER: i32 = 3;

fn marks_points(n: usize) -> bool {
    n <= MARKED_UP_TO
}

/// How one axis is labelled: at most `count` ticks (placed by plotters), each written with
/// `decimals` decimals, as many as the spacing of the ticks needs (plotters' own labels always
/// carry one, so steps read "50.0").
struct Axis {
    count: usize,
    decimals: usize,
}

impl Axis {
    /// plotters' usual number of labelled ticks.
    const MOST: usize = 10;

    /// The axis over `lo..hi`; `whole` when it counts something (steps), so that its ticks fall
    /// on whole numbers: at most one a unit, which makes plotters' spacing (1, 2 or 5 times a
    /// power of ten) a whole number too.
    fn new(lo: f64, hi: f64, whole: bool) -> Self {
        let count = if whole { Self::MOST.min((hi - lo).floor() as usize + 1).max(2) } else { Self::MOST };
        let ticks = plotters::coord::types::RangedCoordf64::from(lo..hi).key_points(count);
        Self { count, decimals: decimals_for(&ticks) }
    }
}

/// The decimals that tell evenly spaced `ticks` apart: none for a spacing of 1 or more, one
/// for 0.5 or 0.1, two for 0.05, and so on.
fn decimals_for(ticks: &[f64]) -> usize {
    let step = ticks.windows(2).map(|w| w[1] - w[0]).fold(f64::INFINITY, f64::min);
    if !(step.is_finite() && step > 0.0) {
        return 0;
    }
    (0..=9)
        .find(|&d| {
            let scaled = step * 10f64.powi(d as i32);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
        })
        .unwrap_or(9)
}

/// A tick's label with `decimals` decimals, never "-0".
fn tick_label(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    match s.strip_prefix('-') {
        Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_string(),
        _ => s,
    }
}

/// Labelled points on log–log axes with an optional line through them (e.g. a fitted power
/// law, which is straight there).
pub struct LogLog {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// (label, x, y), x and y > 0
    pub points: Vec<(String, f64, f64)>,
    /// (x, y) vertices of the line, and its legend entry
    pub line: Vec<(f64, f64)>,
    pub line_label: String,
}

/// Draws `plot` (both axes logarithmic, a margin of about 20% of the span around the data).
pub fn loglog_png(path: &Path, plot: &LogLog) -> anyhow::Result<()> {
    register_font();
    let all = plot.points.iter().map(|p| (p.1, p.2)).chain(plot.line.iter().copied());
    let pos: Vec<(f64, f64)> = all.filter(|&(x, y)| x > 0.0 && y > 0.0 && x.is_finite() && y.is_finite()).collect();
    if pos.is_empty() {
        anyhow::bail!("nothing to plot: no positive points");
    }
    let span = |v: Vec<f64>| {
        let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        let pad = ((hi / lo).powf(0.2)).max(1.05);
        (lo / pad)..(hi * pad)
    };
    let (xr, yr) = (span(pos.iter().map(|p| p.0).collect()), span(pos.iter().map(|p| p.1).collect()));
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&plot.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(xr.log_scale(), yr.log_scale())?;
    chart.configure_mesh().x_desc(&plot.x_label).y_desc(&plot.y_label).label_style(("sans-serif", 14)).draw()?;
    if plot.line.len() >= 2 {
        let color = COLORS[1];
        chart
            .draw_series(DashedLineSeries::new(plot.line.clone(), 8, 5, color.stroke_width(2)))?
            .label(plot.line_label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
    }
    let color = COLORS[0];
    for (label, x, y) in &plot.points {
        chart.draw_series(std::iter::once(Circle::new((*x, *y), 6, color.filled())))?;
        let style = ("sans-serif", 15).into_font().color(&BLACK);
        chart.draw_series(std::iter::once(Text::new(label.clone(), (*x, *y), style)))?;
    }
    if plot.line.len() >= 2 {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()?;
    }
    root.present().map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// A heatmap of `matrix` (rows × columns, values in 0..=1), white to dark blue, each cell
/// labelled by its column word above and its row word on the left (e.g. an attention matrix:
/// one row per output word, one column per source word).
pub fn heatmap_png(path: &Path, rows: &[String], cols: &[String], matrix: &[Vec<f32>]) -> anyhow::Result<()> {
    register_font();
    const CELL: i32 = 36;
    let label_w = 10 + 9 * rows.iter().map(|r| r.chars().count()).max().unwrap_or(1) as i32;
    let label_h = 10 + 9 * cols.iter().map(|c| c.chars().count()).max().unwrap_or(1) as i32;
    let (w, h) = (label_w + CELL * cols.len() as i32 + 10, label_h + CELL * rows.len() as i32 + 10);
    let root = BitMapBackend::new(path, (w as u32, h as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let font = ("sans-serif", 14).into_font();
    for (j, c) in cols.iter().enumerate() {
        // column words run upwards, ending just above their column
        let style = font.clone().transform(FontTransform::Rotate270).color(&BLACK);
        root.draw_text(c, &style, (label_w + CELL * j as i32 + CELL / 3, label_h - 6))?;
    }
    for (i, r) in rows.iter().enumerate() {
        root.draw_text(r, &font.clone().color(&BLACK), (4, label_h + CELL * i as i32 + CELL / 3))?;
        for (j, &a) in matrix[i].iter().enumerate() {
            let a = a.clamp(0.0, 1.0) as f64;
            let shade = |full: f64| (255.0 - a * (255.0 - full)) as u8;
            let (x, y) = (label_w + CELL * j as i32, label_h + CELL * i as i32);
            root.draw(&Rectangle::new(
                [(x, y), (x + CELL - 1, y + CELL - 1)],
                RGBColor(shade(8.0), shade(48.0), shade(107.0)).filled(),
            ))?;
        }
    }
    root.present().map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// `image` with `caption` and a key under it: a swatch of each colour and its label, in rows
/// no wider than the image (or than the caption, if wider).
pub fn keyed_png(path: &Path, image: &Image, caption: &str, key: &[([f32; 3], String)]) -> anyhow::Result<()> {
    register_font();
    const PAD: i32 = 8;
    const LINE: i32 = 22;
    const SWATCH: i32 = 14;
    let text = ("sans-serif", 15).into_font().color(&BLACK);
    // text is measured on a scratch bitmap before the picture's size is known
    let mut scratch = vec![0u8; 3];
    let measure = BitMapBackend::with_buffer(&mut scratch, (1, 1)).into_drawing_area();
    let text_w = |t: &str| measure.estimate_text_size(t, &text).map(|(w, _)| w as i32);
    let entries: Vec<i32> = key.iter().map(|(_, l)| Ok(SWATCH + 5 + text_w(l)? + 14)).collect::<anyhow::Result<_>>()?;
    let width = (image.width as i32).max(text_w(caption)? + 2 * PAD);
    // the key's entries, greedily packed into rows: (row, x) of each
    let mut at = vec![];
    let (mut row, mut x) = (0, PAD);
    for &w in &entries {
        if x > PAD && x + w > width - PAD {
            (row, x) = (row + 1, PAD);
        }
        at.push((row, x));
        x += w;
    }
    let rows = if key.is_empty() { 0 } else { row + 1 };
    let height = image.height as i32 + PAD + LINE * (1 + rows) + PAD / 2;
    let root = BitMapBackend::new(path, (width as u32, height as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let rgb = |c: &[f32]| {
        let b = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        RGBColor(b(c[0]), b(c[1]), b(c[2]))
    };
    let img = image.to_rgb();
    for (i, px) in img.data.chunks(3).enumerate() {
        root.draw_pixel(((i % img.width) as i32, (i / img.width) as i32), &rgb(px))?;
    }
    let top = image.height as i32 + PAD;
    root.draw_text(caption, &text, (PAD, top))?;
    for ((color, label), &(row, x)) in key.iter().zip(&at) {
        let y = top + LINE * (1 + row);
        root.draw(&Rectangle::new([(x, y + 1), (x + SWATCH, y + 1 + SWATCH)], rgb(color).filled()))?;
        // a grey outline, so a white or black swatch still reads as one
        root.draw(&Rectangle::new([(x, y + 1), (x + SWATCH, y + 1 + SWATCH)], RGBColor(128, 128, 128)))?;
        root.draw_text(label, &text, (x + SWATCH + 5, y))?;
    }
    root.present().map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn writes_a_png_with_two_curves() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.png");
        let s = |n: &str, k: f64| Series {
            name: n.into(),
            points: (0..50).map(|i| (i as f64, k / (1.0 + i as f64))).collect(),
            color: 0,
            dashed: k < 1.5,
        };
        let series = [s("a", 2.0), s("b", 1.0)];
        panels_png(&p, &[Panel { title: "loss", x_label: "step", y_label: "loss", series: &series }]).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
    }

    /// The labels of one axis, as `draw` writes them.
    fn labels(lo: f64, hi: f64, whole: bool) -> Vec<String> {
        let a = Axis::new(lo, hi, whole);
        let ticks = plotters::coord::types::RangedCoordf64::from(lo..hi).key_points(a.count);
        ticks.iter().map(|&v| tick_label(v, a.decimals)).collect()
    }

    #[test]
    fn a_step_axis_is_labelled_with_whole_numbers() {
        let steps = labels(0.0, 200.0, true);
        assert_eq!(steps.first().map(String::as_str), Some("0"), "{steps:?}");
        assert!(steps.contains(&"100".to_string()) && steps.iter().all(|l| !l.contains('.')), "{steps:?}");
        // a short run: one tick a step, not 0.5 apart
        assert_eq!(labels(0.0, 4.0, true), ["0", "1", "2", "3", "4"]);
        assert_eq!(labels(10.0, 11.0, true), ["10", "11"]);
        // huge counts too
        assert!(labels(0.0, 50_000.0, true).iter().all(|l| !l.contains('.')));
    }

    #[test]
    fn a_fractional_axis_keeps_the_decimals_its_spacing_needs() {
        let loss = labels(0.05, 2.4, false);
        assert!(loss.contains(&"1.0".to_string()) && loss.contains(&"0.5".to_string()), "{loss:?}");
        assert!(loss.iter().all(|l| l.split_once('.').is_some_and(|(_, d)| d.len() == 1)), "{loss:?}");
        let acc = labels(0.93, 0.98, false);
        assert!(acc.contains(&"0.95".to_string()), "{acc:?}");
        // a loss axis that spans several units needs none
        assert!(labels(0.0, 40.0, false).iter().all(|l| !l.contains('.')));
        // the same 0..4 as a fraction keeps its half steps apart
        let halves = labels(0.0, 4.0, false);
        assert!(halves.contains(&"0.5".to_string()), "{halves:?}");
        assert_eq!(tick_label(-0.00001, 2), "0.00");
        assert_eq!(tick_label(-0.5, 1), "-0.5");
    }

    #[test]
    fn the_legend_moves_down_where_the_curves_end_high() {
        let line = |a: f64, b: f64, n: usize| Series {
            name: "x".into(),
            points: (0..n).map(|i| (i as f64, a + (b - a) * i as f64 / (n - 1) as f64)).collect(),
            color: 0,
            dashed: false,
        };
        let (lo, hi) = ((0.0, 0.0), (99.0, 1.0));
        // a falling loss leaves the upper right free; a rising accuracy, even of two points, does not
        assert!(!legend_goes_low(&[line(1.0, 0.0, 100)], lo, hi));
        assert!(legend_goes_low(&[line(0.0, 1.0, 100)], lo, hi));
        assert!(legend_goes_low(&[Series { points: vec![(0.0, 0.05), (99.0, 0.95)], ..line(0.0, 1.0, 2) }], lo, hi));
        // a tie keeps the usual place
        assert!(!legend_goes_low(&[line(0.5, 0.5, 100)], lo, hi));
    }

    #[test]
    fn sparse_curves_are_marked_dense_ones_are_not() {
        assert!(marks_points(2) && marks_points(1) && marks_points(MARKED_UP_TO));
        assert!(!marks_points(MARKED_UP_TO + 1) && !marks_points(500));
    }

    #[test]
    fn a_keyed_image_keeps_its_pixels_and_draws_each_colour_under_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.png");
        let image = Image::rgb(120, 40, vec![0.5; 3 * 120 * 40]);
        let key: Vec<([f32; 3], String)> =
            (0..8).map(|i| ([i as f32 / 8.0, 1.0 - i as f32 / 8.0, 0.0], format!("class {i}"))).collect();
        keyed_png(&p, &image, "what the colours mean", &key).unwrap();
        let back = crate::report::png::read_png(&p).unwrap();
        assert!(back.width >= 120 && back.height > 40 + 2 * 22, "{}x{}", back.width, back.height);
        let px = |x: usize, y: usize| {
            let at = 3 * (y * back.width + x);
            [0, 1, 2].map(|c| (back.data[at + c] * 255.0).round() as u8)
        };
        assert_eq!(px(0, 0), [128; 3]);
        assert_eq!(px(119, 39), [128; 3]);
        // below the image, each key colour fills a swatch
        let below: Vec<[u8; 3]> =
            (40..back.height).flat_map(|y| (0..back.width).map(move |x| (x, y))).map(|(x, y)| px(x, y)).collect();
        for (c, l) in &key {
            let want = c.map(|v| (v * 255.0).round() as u8);
            assert!(below.iter().filter(|p| **p == want).count() >= 100, "no swatch for {l}");
        }
    }

    #[test]
    fn writes_a_log_log_png_with_points_and_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fit.png");
        let plot = LogLog {
            title: "val loss against parameters".into(),
            x_label: "parameters".into(),
            y_label: "val loss".into(),
            points: vec![("xs".into(), 2e4, 2.5), ("s".into(), 1.1e5, 2.1), ("m".into(), 8e5, 1.9)],
            line: vec![(1e4, 2.6), (1e6, 1.85)],
            line_label: "fit".into(),
        };
        loglog_png(&p, &plot).unwrap();
        assert_eq!(&std::fs::read(&p).unwrap()[1..4], b"PNG");
        assert!(loglog_png(&p, &LogLog { points: vec![], line: vec![], ..plot }).is_err());
    }
}
