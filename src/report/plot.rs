//! Loss curves as a PNG, drawn with plotters. The font (DejaVu Sans, free licence, see
//! assets/fonts/) is compiled in, so plots need no system fonts.

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

/// Draws `series` on one chart.
pub fn curves_png(path: &Path, title: &str, x_label: &str, y_label: &str, series: &[Series]) -> anyhow::Result<()> {
    panels_png(path, &[Panel { title, x_label, y_label, series }])
}

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

fn draw(area: &DrawingArea<BitMapBackend, plotters::coord::Shift>, p: &Panel) -> anyhow::Result<()> {
    let pts = p.series.iter().flat_map(|s| s.points.iter()).filter(|p| p.1.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
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
    let mut chart = ChartBuilder::on(area)
        .caption(p.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))?;
    chart.configure_mesh().x_desc(p.x_label).y_desc(p.y_label).label_style(("sans-serif", 14)).draw()?;
    for s in p.series {
        let color = COLORS[s.color % COLORS.len()];
        let style = color.stroke_width(2);
        let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(|p| p.1.is_finite()).collect();
        let anno = if s.dashed {
            chart.draw_series(DashedLineSeries::new(pts, 8, 5, style))?
        } else {
            chart.draw_series(LineSeries::new(pts, style))?
        };
        let dashed = s.dashed;
        anno.label(s.name.clone()).legend(move |(x, y)| {
            let end = if dashed { x + 9 } else { x + 20 };
            PathElement::new(vec![(x, y), (end, y)], color.stroke_width(3))
        });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()?;
    Ok(())
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
        curves_png(&p, "loss", "step", "loss", &[s("a", 2.0), s("b", 1.0)]).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
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
