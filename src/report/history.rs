//! The history as one picture: years across, one row per constraint down, a mark per
//! (milestone, constraint) coloured by its verdict. Labels that would overlap go to the next
//! lane of their row, so every name stays readable.

use super::plot::register_font;
use plotters::prelude::*;
use std::path::Path;

/// What a mark's colour says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    /// not in the replay, or not checked there (its data was not fetched)
    NotRun,
}

/// One milestone in one row.
pub struct Mark {
    pub year: u16,
    pub label: String,
    pub verdict: Verdict,
}

/// One constraint: its name, "hard limit" or "lever" (hard limits are drawn on a shaded band).
pub struct Row {
    pub name: String,
    pub kind: String,
    pub hard: bool,
    pub marks: Vec<Mark>,
}

const WIDTH: i32 = 1800;
const LEFT: i32 = 270;
const RIGHT: i32 = 50;
const TOP: i32 = 96;
const LANE: i32 = 19;
const ROW_PAD: i32 = 12;
const YEARS: (f64, f64) = (1948.0, 2025.0);
const GREEN: RGBColor = RGBColor(0, 150, 90);
const RED: RGBColor = RGBColor(215, 48, 39);
const GREY: RGBColor = RGBColor(150, 150, 150);

fn x_of(year: u16) -> i32 {
    let f = (year as f64 - YEARS.0) / (YEARS.1 - YEARS.0);
    LEFT + (f * (WIDTH - LEFT - RIGHT) as f64) as i32
}

fn color(v: Verdict) -> RGBColor {
    match v {
        Verdict::Pass => GREEN,
        Verdict::Fail => RED,
        Verdict::NotRun => GREY,
    }
}

/// The lane of each mark of `row` (in its order, sorted by year): the first lane whose last
/// label ends left of this mark, with `width(label)` the label's width in pixels.
fn lanes(row: &Row, width: &dyn Fn(&str) -> i32) -> Vec<usize> {
    let mut ends: Vec<i32> = vec![];
    row.marks
        .iter()
        .map(|m| {
            let (start, end) = (x_of(m.year) - 7, x_of(m.year) + 10 + width(&m.label));
            let lane = ends.iter().position(|&e| e + 4 < start).unwrap_or(ends.len());
            if lane == ends.len() {
                ends.push(end);
            } else {
                ends[lane] = end;
            }
            lane
        })
        .collect()
}

/// Draws `rows` (each row's marks sorted by year) under `title` into `path`; returns the
/// picture's (width, height).
pub fn history_png(path: &Path, title: &str, rows: &[Row]) -> anyhow::Result<(u32, u32)> {
    register_font();
    let label_font = ("sans-serif", 14).into_font().color(&BLACK);
    // label widths from the font itself, on a scratch canvas
    let mut scratch = vec![0u8; 3 * 8 * 8];
    let measure = BitMapBackend::with_buffer(&mut scratch, (8, 8)).into_drawing_area();
    let width =
        |s: &str| measure.estimate_text_size(s, &label_font).map(|(w, _)| w as i32).unwrap_or(8 * s.len() as i32);
    let laid: Vec<Vec<usize>> = rows.iter().map(|r| lanes(r, &width)).collect();
    let heights: Vec<i32> =
        laid.iter().map(|l| (l.iter().max().map_or(1, |m| m + 1) as i32).max(2) * LANE + 2 * ROW_PAD).collect();
    let height = TOP + heights.iter().sum::<i32>() + 60;
    let root = BitMapBackend::new(path, (WIDTH as u32, height as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let text = |size: u32| ("sans-serif", size).into_font().color(&BLACK);
    root.draw_text(title, &text(24), (20, 18))?;
    // legend
    let mut lx = 20;
    for (v, what) in [(Verdict::Pass, "PASS"), (Verdict::Fail, "FAIL"), (Verdict::NotRun, "not run or not checked")] {
        root.draw(&Circle::new((lx + 6, 66), 6, color(v).filled()))?;
        root.draw_text(what, &text(16), (lx + 18, 58))?;
        lx += 40 + width(what) + 30;
    }
    root.draw(&Rectangle::new([(lx, 58), (lx + 26, 74)], RGBColor(238, 232, 218).filled()))?;
    root.draw_text("hard limit (else a lever)", &text(16), (lx + 34, 58))?;
    // the decades
    let bottom = TOP + heights.iter().sum::<i32>();
    let mut y = TOP;
    for (row, h) in rows.iter().zip(&heights) {
        if row.hard {
            root.draw(&Rectangle::new([(10, y), (WIDTH - 10, y + h)], RGBColor(238, 232, 218).filled()))?;
        }
        root.draw(&PathElement::new(vec![(10, y), (WIDTH - 10, y)], RGBColor(200, 200, 200)))?;
        y += h;
    }
    for decade in (1950..=2020).step_by(10) {
        let x = x_of(decade);
        root.draw(&PathElement::new(vec![(x, TOP), (x, bottom)], RGBColor(215, 215, 215)))?;
        root.draw_text(&decade.to_string(), &text(16), (x - 18, bottom + 10))?;
    }
    root.draw(&PathElement::new(vec![(10, bottom), (WIDTH - 10, bottom)], BLACK))?;
    root.draw_text("year", &text(16), (WIDTH / 2, bottom + 34))?;
    let mut y = TOP;
    for ((row, h), lane) in rows.iter().zip(&heights).zip(&laid) {
        root.draw_text(&row.name, &text(18), (20, y + h / 2 - 18))?;
        root.draw_text(
            &format!("({})", row.kind),
            &("sans-serif", 15).into_font().color(&RGBColor(90, 90, 90)),
            (20, y + h / 2 + 4),
        )?;
        if row.marks.is_empty() {
            let grey = ("sans-serif", 15).into_font().color(&RGBColor(110, 110, 110));
            root.draw_text("no milestone here lifted it", &grey, (LEFT + 10, y + h / 2 - 8))?;
        }
        for (m, &l) in row.marks.iter().zip(lane) {
            let (x, my) = (x_of(m.year), y + ROW_PAD + LANE / 2 + LANE * l as i32);
            root.draw(&Circle::new((x, my), 6, color(m.verdict).filled()))?;
            root.draw_text(&m.label, &label_font, (x + 9, my - 8))?;
        }
        y += h;
    }
    root.present().map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok((WIDTH as u32, height as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_labels_take_the_next_free_lane() {
        let mark = |year, label: &str| Mark { year, label: label.into(), verdict: Verdict::Pass };
        let row = Row {
            name: "r".into(),
            kind: "lever".into(),
            hard: false,
            marks: vec![mark(1986, "a"), mark(1986, "b"), mark(1988, "c"), mark(2010, "d")],
        };
        // 100-pixel labels: the two 1986 marks and the 1988 one collide, 2010 is far away; 1-pixel
        // labels: only the two of 1986
        assert_eq!(lanes(&row, &|_| 100), vec![0, 1, 2, 0]);
        assert_eq!(lanes(&row, &|_| 1), vec![0, 1, 0, 0]);
    }
}
