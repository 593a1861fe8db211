//! The generative milestones through the CLI: `sample` of a missing run says which `train`
//! command makes one; a trained diffusion model (smoke preset, digits8) samples an 8x8 grid as a
//! PNG that decodes, with DDPM or DDIM, a trajectory with --frames, and clear errors for bad
//! input; the class-conditional variant takes prompts and refuses unknown words; the GAN
//! samples a grid; `eval` reports FD.

mod common;

use common::Sandbox;
use dlhist::report::png::read_png;

#[test]
fn sampling_without_a_run_names_the_train_command_and_its_duration() {
    let sb = Sandbox::new();
    let out = sb.run(&["sample", "diffusion", "--n", "64"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    out.stderr_says(&["no finished `diffusion` run", "dlhist train diffusion", "(about"]);
    sb.assert_no_complete_run();
}

#[test]
fn a_trained_diffusion_model_samples_a_png_grid_with_either_sampler_and_its_trajectory() {
    let sb = Sandbox::new();
    let dir = sb.path("run");
    sb.train_smoke("diffusion", &dir, &[]);
    let d = dir.to_str().unwrap();
    // the summary has the FD (the lenet it needs was trained once, in the sandbox's runs root)
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert!(s["final"]["test_fd"].as_f64().is_some_and(|f| f.is_finite() && f >= 0.0), "{s}");
    assert_eq!(common::files_named(&sb.runs.join("lenet"), "summary.json").len(), 1);

    // 64 samples of 8x8 digits, drawn 3x with 2-pixel gutters: 8·(24 + 2) + 2 = 210 pixels a side
    let grid = sb.path("grid.png");
    sb.run(&["sample", d, "--n", "64", "--seed", "1", "--out", grid.to_str().unwrap()]).ok();
    let img = read_png(&grid).unwrap();
    assert_eq!((img.width, img.height, img.channels), (210, 210, 1));
    let (lo, hi) = img.data.iter().fold((1f32, 0f32), |(a, b), &v| (a.min(v), b.max(v)));
    assert!(hi - lo > 0.5, "the samples are not blank: {lo}..{hi}");
    // the same seed draws the same grid; DDIM in a few steps works too
    let again = sb.path("again.png");
    sb.run(&["sample", d, "--n", "64", "--seed", "1", "--out", again.to_str().unwrap()]).ok();
    assert_eq!(read_png(&again).unwrap(), img);
    let ddim = sb.path("ddim.png");
    sb.run(&["sample", d, "--n", "4", "--sampler", "ddim", "--steps", "5", "--out", ddim.to_str().unwrap()]).ok();
    assert_eq!(read_png(&ddim).unwrap().width, 2 * 26 + 2);
    // --frames: the grid, an animated PNG of the trajectory and a strip
    let v =
        sb.run(&["--json", "sample", d, "--n", "3", "--frames", "--out", sb.path("t.png").to_str().unwrap()]).json();
    let pics: Vec<&str> = v["pictures"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(
        pics.iter().any(|p| p.ends_with("t-frames.png")) && pics.iter().any(|p| p.ends_with("t-strip.png")),
        "{pics:?}"
    );
    // the grid keeps the name asked for, as without --frames
    assert!(pics[0].ends_with("/t.png"), "{pics:?}");
    assert!(read_png(std::path::Path::new(pics[0])).is_ok(), "{pics:?}");
    let strip = read_png(std::path::Path::new(pics.iter().find(|p| p.ends_with("t-strip.png")).unwrap())).unwrap();
    assert_eq!(strip.height, 3 * 26 + 2, "one row per sample");

    // bad input: clear errors, exit code 2
    for (args, says) in [
        (vec!["--n", "0"], "positive number"),
        (vec!["--steps", "0"], "positive number"),
        (vec!["--sampler", "euler"], "unknown sampler `euler`"),
        (vec!["--prompt", "seven"], "does not take --prompt"),
        (vec!["--image", "Cargo.toml"], "--image Cargo.toml"),
    ] {
        let mut a = vec!["sample", d];
        a.extend(args);
        let out = sb.run(&a);
        assert_eq!(out.code, 2, "{a:?}: {}", out.stderr);
        out.stderr_says(&[says]);
    }
    std::fs::write(sb.path("Cargo.toml"), "not a png").unwrap();
    let out = sb.run(&["sample", d, "--image", "Cargo.toml"]);
    assert_eq!(out.code, 2);

    // eval reports the FD
    let e = sb.run(&["--json", "eval", d]).json();
    assert!(e["metrics"]["test_fd"].as_f64().is_some(), "{e}");
}

#[test]
fn the_guided_variant_draws_the_classes_a_prompt_names_and_refuses_other_words() {
    let sb = Sandbox::new();
    let dir = sb.path("cfg");
    sb.train_smoke("diffusion-cfg", &dir, &[]);
    let d = dir.to_str().unwrap();
    let out = sb.run(&["sample", d, "--prompt", "seven 1", "--guidance", "3", "--n", "4", "--steps", "4"]);
    out.ok();
    assert!(out.stdout.contains("classes seven one in turn, guidance 3"), "{}", out.stdout);
    let out = sb.run(&["sample", d, "--prompt", "banana"]);
    assert_eq!(out.code, 2);
    out.stderr_says(&["unknown word `banana`", "0-9", "seven"]);
    let out = sb.run(&["sample", d, "--guidance", "-1"]);
    assert_eq!(out.code, 2);
}

#[test]
fn the_gan_samples_a_grid() {
    let sb = Sandbox::new();
    let dir = sb.path("gan");
    sb.train_smoke("gan", &dir, &[]);
    let out = sb.path("g.png");
    sb.run(&["sample", dir.to_str().unwrap(), "--n", "16", "--out", out.to_str().unwrap()]).ok();
    let img = read_png(&out).unwrap();
    assert_eq!((img.width, img.height), (4 * 26 + 2, 4 * 26 + 2));
    // validation lines carry the FD (the GAN's validation "loss")
    let m = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert!(m.lines().filter(|l| l.contains("\"split\":\"val\"")).all(|l| l.contains("\"fd\"")), "{m}");
}

#[test]
fn a_gan_slope_outside_0_to_1_is_refused_before_anything_trains() {
    let sb = Sandbox::new();
    for bad in ["-0.2", "1.5"] {
        let out = sb.run(&["train", "gan", "--steps", "1", "--set", &format!("model.slope={bad}")]);
        out.expect_code(2).stderr_says(&["model.slope", "[0, 1]", bad]);
    }
    sb.assert_no_complete_run();
}

#[test]
fn compare_gan_diffusion_reports_the_fd_of_both() {
    let sb = Sandbox::new();
    let out = sb.path("cmp");
    let diffusion = "diffusion:model.channels=[8,16,16]:model.groups=4:model.sample_steps=5";
    let v = sb
        .run(&[
            "--json",
            "compare",
            "gan",
            diffusion,
            "--steps",
            "10",
            "--set",
            "data.dataset=digits8",
            "--set",
            "data.fd_samples=50",
            "--set",
            "data.fd_net=lenet:train.steps=100",
            "--out",
            out.to_str().unwrap(),
        ])
        .json();
    let fds: Vec<f64> = v["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["summary"]["final"]["test_fd"].as_f64().expect("a test FD for each variant"))
        .collect();
    assert_eq!(fds.len(), 2);
    assert!(fds.iter().all(|f| f.is_finite() && *f > 0.0), "{fds:?}");
}
