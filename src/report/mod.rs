//! What people read: tables, curve plots, ASCII images, metrics such as BLEU, and fits.

pub mod ascii;
pub mod bleu;
pub mod fd;
pub mod fit;
pub mod history;
pub mod plot;
pub mod png;
pub mod table;

/// A metric for a table cell: percentages for accuracies, 4 significant decimals otherwise.
pub fn fmt_metric(key: &str, v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if key.ends_with("acc") || key.ends_with("frac") => format!("{:.2}%", v * 100.0),
        Some(v) => format!("{v:.4}"),
    }
}
