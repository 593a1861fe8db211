//! `dlhist sample NAME|RUN_DIR`: what a trained model produces.

use super::common::{self, print_json};
use crate::error::DlError;
use crate::experiment::SampleRequest;
use crate::rng::Rng;
use std::path::PathBuf;

/// Show what a trained run produces: predictions, generated text or images
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  dlhist sample mlp --n 4                 # predictions on 4 test digits, drawn in ASCII\n  dlhist sample backprop                  # the truth table the net learned\n  dlhist sample checkpoints/mlp/RUN --out preds.txt"
)]
pub struct Args {
    /// a milestone name (its newest finished run) or a run directory
    pub target: String,
    /// how many samples: images (default 6), characters of text (default 300), sequences…
    #[arg(long)]
    pub n: Option<usize>,
    /// text to start from (text and translation milestones)
    #[arg(long)]
    pub prompt: Option<String>,
    /// sampling temperature (generative milestones)
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// seed for picking/sampling
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// also write the text here (it is always saved under the run's samples/); a FILE ending in
    /// .png receives the picture instead, for milestones that draw one (unet)
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// cpu, or cuda:N when built with --features cuda
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(a: Args, json: bool) -> anyhow::Result<()> {
    if !(a.temperature > 0.0 && a.temperature.is_finite()) {
        return Err(DlError::Usage(format!("--temperature must be positive, got {}", a.temperature)).into());
    }
    let device = common::device(&a.device)?;
    let (res, rd) = common::find_run(&a.target)?;
    let mut exp = common::load_trained(&res, &rd, &device)?;
    let dir = rd.samples();
    let stamp = common::new_run_id();
    // a picture goes to --out when that names a .png, else beside the text under samples/
    let png_out = a.out.as_ref().filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")));
    let image = png_out.cloned().unwrap_or_else(|| dir.join(format!("sample-{stamp}.png")));
    let saved = std::fs::create_dir_all(&dir).is_ok();
    let req =
        SampleRequest { n: a.n.unwrap_or(0), prompt: a.prompt.clone(), temperature: a.temperature, image: Some(image) };
    let out = exp.sample(&req, &mut Rng::derive(a.seed, "sample", 0))?;
    if saved {
        let _ = std::fs::write(dir.join(format!("sample-{stamp}.txt")), &out.text);
    }
    if let Some(p) = a.out.as_ref().filter(|_| png_out.is_none()) {
        std::fs::write(p, &out.text).map_err(|e| DlError::Unwritable { path: p.clone(), message: e.to_string() })?;
    }
    if json {
        print_json(&serde_json::json!({"name": res.entry.name, "run_dir": rd.0, "sample": out.json}));
    } else {
        print!("{}", out.text);
    }
    Ok(())
}
