//! `dlhist sample NAME|RUN_DIR`: what a trained model produces. The milestone returns text and
//! pictures; this writes them (the text to stdout and the run's samples/, each picture as a PNG).

use super::common::{self, print_json};
use crate::error::DlError;
use crate::experiment::{Progress, SampleOpt, SampleRequest, SampleVariant};
use crate::rng::Rng;
use std::path::{Path, PathBuf};

/// Show what a trained run produces: predictions, generated text or images
#[derive(clap::Args, Debug)]
// TARGET is required unless --run names the run (clap would print it as optional, `[TARGET]`),
// so the usage shows both ways to call it
#[command(
    override_usage = "dlhist sample [OPTIONS] <TARGET>\n       dlhist sample [OPTIONS] [NAME] --run <ID|DIR>",
    after_help = "Each milestone takes the options that mean something for it; passing another is an error that lists them.

Examples:
  dlhist sample mlp --n 4                 # predictions on 4 test digits, drawn in ASCII
  dlhist sample backprop                  # the truth table the net learned
  dlhist sample lstm --prompt \"Call me\" --n 400 --temperature 0.8
  dlhist sample unet --out masks.png      # input | true mask | predicted mask
  dlhist sample mlp --run 20261129-101500-42
  dlhist sample checkpoints/mlp/RUN --seed 3

A name picks that milestone's newest finished run of the preset's config (else the newest finished run of another budget or config, else a smoke run), from `train`, `compare` or `replay --keep`, and says which. `dlhist runs NAME` lists them."
)]
pub struct Args {
    /// a milestone name (its newest finished run) or a run directory
    #[arg(required_unless_present = "run")]
    pub target: Option<String>,
    /// the run: an id from `dlhist runs` (or its last part) or a run directory
    #[arg(long, visible_alias = "run-dir", value_name = "ID|DIR")]
    pub run: Option<String>,
    /// how many samples: images, characters of text, sequences… (default: the milestone's)
    #[arg(long, value_parser = positive, allow_hyphen_values = true)]
    pub n: Option<usize>,
    /// seed for what is picked or drawn (default 0)
    #[arg(long)]
    pub seed: Option<u64>,
    /// sampling steps (diffusion: denoising steps)
    #[arg(long, value_parser = positive, allow_hyphen_values = true)]
    pub steps: Option<usize>,
    /// text to start from or to condition on (text, translation and text-to-image milestones)
    #[arg(long)]
    pub prompt: Option<String>,
    /// sampling temperature, > 0 (default 1)
    #[arg(long)]
    pub temperature: Option<f64>,
    /// sample only among the K most likely tokens (1 = greedy)
    #[arg(long, value_name = "K", value_parser = positive, allow_hyphen_values = true)]
    pub top_k: Option<usize>,
    /// an input image, a PNG file (e.g. to caption or rank)
    #[arg(long, value_name = "FILE")]
    pub image: Option<PathBuf>,
    /// which sampler, e.g. ddpm or ddim (diffusion)
    #[arg(long)]
    pub sampler: Option<String>,
    /// classifier-free guidance scale (conditional diffusion)
    #[arg(long)]
    pub guidance: Option<f64>,
    /// also write the trajectory, frame by frame, as an animated PNG
    #[arg(long)]
    pub frames: bool,
    /// walk between samples (a VAE's latent interpolation)
    #[arg(long)]
    pub interpolate: bool,
    /// write the text here (it is always saved under the run's samples/); a FILE ending in .png
    /// receives the picture instead (with several, the first goes to FILE and the others to
    /// FILE-NAME.png)
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// cpu, auto (the GPU when there is one), cuda or cuda:N (cuda needs a build with --features cuda)
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// What a reader of the samples or metrics must know about the data: the fallback notice (the
/// built-in set stands in for one that is not fetched), and a run trained on other data than is
/// loaded now (it trained on the fallback, and the set was fetched since).
pub fn data_note(exp: &dyn crate::experiment::Experiment, rd: &crate::engine::runner::RunDir) -> Option<String> {
    let now = exp.data_name();
    let mismatch = rd
        .data_used()
        .filter(|used| *used != now)
        .map(|used| format!("note: this run trained on {used}; it is shown on {now}, what its config loads now"));
    let lines: Vec<String> = exp.data_notice().into_iter().chain(mismatch).collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// clap parser for counts: a positive integer, with an error that says so.
pub fn positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<i64>() {
        Ok(v) if v > 0 => Ok(v as usize),
        Ok(v) => Err(format!("takes a positive number, got {v}")),
        Err(_) => Err(format!("takes a positive whole number, got `{s}`")),
    }
}

/// A progress bar on stderr (only on a terminal, and not with --json) that the sampler moves
/// through `SampleRequest::progress`.
fn progress_bar(show: bool) -> (indicatif::ProgressBar, Progress) {
    use std::io::IsTerminal;
    if !show || !std::io::stderr().is_terminal() {
        return (indicatif::ProgressBar::hidden(), Progress::default());
    }
    let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} ({eta} left)")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix("sampling");
    let b = bar.clone();
    (
        bar,
        Progress::new(move |done, total| {
            b.set_length(total as u64);
            b.set_position(done as u64);
        }),
    )
}

fn request(a: &Args) -> anyhow::Result<SampleRequest> {
    if let Some(t) = a.temperature {
        if !(t > 0.0 && t.is_finite()) {
            return Err(DlError::Usage(format!("--temperature must be positive, got {t}")).into());
        }
    }
    if let Some(g) = a.guidance {
        if !(g >= 0.0 && g.is_finite()) {
            return Err(DlError::Usage(format!("--guidance must be 0 or more, got {g}")).into());
        }
    }
    let image = match &a.image {
        Some(p) => Some(
            crate::report::png::read_png(p).map_err(|e| DlError::Usage(format!("--image {}: {e:#}", p.display())))?,
        ),
        None => None,
    };
    Ok(SampleRequest {
        n: a.n,
        seed: a.seed,
        steps: a.steps,
        prompt: a.prompt.clone(),
        temperature: a.temperature,
        top_k: a.top_k,
        image,
        sampler: a.sampler.clone(),
        guidance: a.guidance,
        frames: a.frames,
        interpolate: a.interpolate,
        progress: Progress::default(),
        notes: Default::default(),
    })
}

/// Refuses options the milestone does not take, naming those it does, and the variant that takes
/// them where there is one, with the commands that train and sample it.
fn check_options(
    name: &str,
    takes: &[SampleOpt],
    variant: Option<SampleVariant>,
    req: &SampleRequest,
) -> Result<(), DlError> {
    if takes.is_empty() {
        return Err(DlError::Usage(format!(
            "`{name}` has nothing to sample; try `dlhist eval {name}` for its metrics"
        )));
    }
    let bad: Vec<SampleOpt> = req.given().into_iter().filter(|o| !takes.contains(o)).collect();
    if bad.is_empty() {
        return Ok(());
    }
    let flags = |os: &[SampleOpt]| os.iter().map(|o| o.flag()).collect::<Vec<_>>().join(", ");
    let there = match variant {
        Some((opts, v, example)) if bad.iter().any(|o| opts.contains(o)) => {
            let about = common::about_time(v);
            format!(
                "; its variant `{v}` takes {}: `dlhist train {v}`{about}, then `dlhist sample {v} {example}`",
                flags(opts)
            )
        }
        _ => String::new(),
    };
    Err(DlError::Usage(format!(
        "`{name}` does not take {}; {name} takes {} (and --out){there}",
        flags(&bad),
        flags(takes)
    )))
}

/// Where picture `name` goes: `--out FILE.png` for the first (main) picture, FILE-NAME.png for
/// the others (`--out grid.png --frames` writes the grid to grid.png, as without --frames, and
/// grid-frames.png, grid-strip.png beside it); else the run's samples/sample-STAMP-NAME.png.
fn picture_path(out: Option<&Path>, samples: &Path, stamp: &str, name: &str, first: bool) -> PathBuf {
    match out {
        Some(p) if first => p.to_path_buf(),
        Some(p) => {
            let stem = p.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
            p.with_file_name(format!("{stem}-{name}.png"))
        }
        None => samples.join(format!("sample-{stamp}-{name}.png")),
    }
}

pub fn run(a: Args, json: bool) -> anyhow::Result<()> {
    let mut req = request(&a)?;
    let device = common::device(&a.device)?;
    let (res, rd) = super::pick::pick(a.target.as_deref(), a.run.as_deref())?;
    let mut exp = common::load_trained(&res, &rd, &device)?;
    check_options(res.entry.name, exp.sample_options(), exp.sample_variant(), &req)?;
    let (bar, progress) = progress_bar(!json);
    req.progress = progress;
    let data_note = data_note(exp.as_ref(), &rd);
    let out = {
        let _span = tracing::debug_span!("sample", milestone = res.entry.name).entered();
        // forward passes only: no backward graph (`ops::no_grad`)
        crate::ops::no_grad(|| exp.sample(&req, &mut Rng::derive(req.seed.unwrap_or(0), "sample", 0)))
    };
    bar.finish_and_clear();
    let out = out?;
    // on stderr, so that stdout stays the sample itself (text can be piped on)
    if let Some(n) = &data_note {
        eprintln!("{n}");
    }
    for note in req.notes.take() {
        eprintln!("{note}");
    }
    let text = &out.text;
    let dir = rd.samples();
    let stamp = common::new_run_id();
    let saved = std::fs::create_dir_all(&dir).is_ok();
    let png_out = a.out.as_deref().filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")));
    if let (Some(p), true) = (png_out, out.pictures.is_empty()) {
        return Err(DlError::Usage(format!(
            "{} draws no picture, so there is nothing to write to {}. Leave out --out, or give a .txt path to save the text",
            res.entry.name,
            p.display()
        ))
        .into());
    }
    let mut written = vec![];
    for (i, (name, pic)) in out.pictures.iter().enumerate() {
        let path = picture_path(png_out, &dir, &stamp, name, i == 0);
        crate::report::png::write_png(&path, pic).map_err(|e| DlError::output(&path, format!("{e:#}")))?;
        written.push(path);
    }
    if saved {
        let _ = std::fs::write(dir.join(format!("sample-{stamp}.txt")), text);
    }
    if let Some(p) = a.out.as_ref().filter(|_| png_out.is_none()) {
        std::fs::write(p, text).map_err(|e| DlError::output(p, e.to_string()))?;
    }
    if json {
        print_json(&serde_json::json!({
            "name": res.entry.name, "run_dir": rd.0, "data_notice": data_note, "sample": out.json, "pictures": written,
        }));
    } else {
        print!("{text}");
        for p in &written {
            println!("wrote {}", p.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_option_the_milestone_does_not_take_is_an_error_that_lists_what_it_takes() {
        let req = SampleRequest { prompt: Some("x".into()), n: Some(3), ..Default::default() };
        let e = check_options("mlp", &[SampleOpt::N, SampleOpt::Seed], None, &req).unwrap_err().to_string();
        assert!(e.contains("`mlp` does not take --prompt; mlp takes --n, --seed"), "{e}");
        assert!(check_options("mlp", &[SampleOpt::N, SampleOpt::Prompt], None, &req).is_ok());
        let e = check_options("depth", &[], None, &SampleRequest::default()).unwrap_err().to_string();
        assert!(e.contains("nothing to sample"), "{e}");
    }

    #[test]
    fn a_refused_option_that_a_variant_takes_names_the_variant() {
        let variant: Option<SampleVariant> =
            Some((&[SampleOpt::Prompt, SampleOpt::Guidance], "diffusion-cfg", "--prompt 7"));
        let req = SampleRequest { prompt: Some("7".into()), ..Default::default() };
        let e = check_options("diffusion", &[SampleOpt::N], variant, &req).unwrap_err().to_string();
        assert!(
            e.contains(
                "; its variant `diffusion-cfg` takes --prompt, --guidance: `dlhist train diffusion-cfg` (about "
            ) && e.ends_with("then `dlhist sample diffusion-cfg --prompt 7`"),
            "{e}"
        );
        let frames = SampleRequest { frames: true, ..Default::default() };
        let e = check_options("u", &[SampleOpt::N], variant, &frames).unwrap_err().to_string();
        assert!(!e.contains("variant"), "an option no variant takes names none: {e}");
    }

    #[test]
    fn counts_must_be_positive() {
        assert_eq!(positive("3"), Ok(3));
        assert!(positive("0").unwrap_err().contains("positive"));
        assert!(positive("-5").unwrap_err().contains("positive"));
    }
}
