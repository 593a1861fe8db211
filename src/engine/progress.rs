//! The progress bar: steps, loss, lr and steps/s on stderr. Off when stderr is not a terminal
//! or when `--json` asked for machine output, so logs and pipes stay clean.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    pub fn new(total: u64, start: u64, label: &str, enabled: bool) -> Self {
        let bar = if enabled && std::io::stderr().is_terminal() {
            let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {msg} ({eta} left)")
                    .unwrap()
                    .progress_chars("=> "),
            );
            b.set_prefix(label.to_string());
            b.set_position(start);
            b
        } else {
            ProgressBar::hidden()
        };
        Self { bar }
    }

    pub fn update(&self, step: u64, loss: f64, lr: f64, steps_per_s: f64) {
        self.bar.set_position(step);
        self.bar.set_message(format!("loss {loss:.4} lr {lr:.2e} {steps_per_s:.1} steps/s"));
    }

    /// Prints a line above the bar without tearing it.
    pub fn println(&self, line: &str) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
