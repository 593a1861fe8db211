//! `dalle` end to end on its smoke preset (no fetched data: digits8 stand in): training makes
//! the vq-vae, lenet and clip runs it needs, once; sampling draws a grid for a prompt, says what
//! the judge reads, repeats with a seed, and names the words it does not know.

mod common;

use common::{files_named, Sandbox};

#[test]
fn dalle_trains_its_three_needed_runs_once_and_draws_a_grid_for_a_prompt() {
    let sb = Sandbox::new();
    let dir = sb.path("dalle");
    sb.train_smoke("dalle", &dir, &[]);
    let mut names: Vec<String> = files_named(&sb.runs, "summary.json")
        .iter()
        .map(|p| {
            let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
            v["name"].as_str().unwrap().to_string()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["clip", "lenet", "vq-vae"], "each needed run once");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    for k in ["test_acc", "test_acc_rerank", "test_loss"] {
        assert!(s["final"][k].as_f64().is_some_and(f64::is_finite), "{k}: {s}");
    }

    let d = dir.to_str().unwrap();
    let grid = sb.path("threes.png");
    let args = ["--json", "sample", d, "--prompt", "a handwritten 3", "--n", "4", "--seed", "9"];
    let v = sb.run(&[&args[..], &["--out", grid.to_str().unwrap()]].concat()).json();
    assert_eq!(v["sample"]["rerank"], 2, "best of 2 by CLIP: {v}");
    let judged = v["sample"]["judge"].as_array().expect("the judge's labels");
    assert_eq!(judged.len(), 4);
    assert!(judged.iter().all(|l| l.as_u64().is_some_and(|l| l < 10)), "{judged:?}");
    let png = dlhist::report::png::read_png(&grid).expect("a PNG grid");
    assert_eq!((png.width, png.height), (62, 62), "2x2 images of 28 pixels, 2 apart and around");
    let again = sb.run(&[&args[..], &["--out", sb.path("again.png").to_str().unwrap()]].concat()).json();
    assert_eq!(v["sample"]["judge"], again["sample"]["judge"], "a fixed seed draws the same images");

    sb.run(&["sample", d, "--prompt", "a handwritten zebra"])
        .expect_code(2)
        .stderr_says(&["zebra", "It knows: a handwritten"]);
}

#[test]
fn dalle2_draws_through_its_prior_and_decoder_and_guidance_changes_the_draws() {
    let sb = Sandbox::new();
    let dir = sb.path("dalle2");
    sb.train_smoke("dalle2", &dir, &[]);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    for k in ["test_acc", "test_prior_cos", "test_loss"] {
        assert!(s["final"][k].as_f64().is_some_and(f64::is_finite), "{k}: {s}");
    }
    let d = dir.to_str().unwrap();
    let draw = |w: &str, out: &str| {
        let args = ["--json", "sample", d, "--prompt", "a handwritten 3", "--n", "4", "--seed", "2", "--guidance", w];
        sb.run(&[&args[..], &["--out", sb.path(out).to_str().unwrap()]].concat()).json()
    };
    let (a, b) = (draw("3", "a.png"), draw("0", "b.png"));
    assert_eq!(a["sample"]["judge"].as_array().map(Vec::len), Some(4), "{a}");
    assert_eq!((a["sample"]["guidance"].as_f64(), b["sample"]["guidance"].as_f64()), (Some(3.0), Some(0.0)));
    let (pa, pb) = (std::fs::read(sb.path("a.png")).unwrap(), std::fs::read(sb.path("b.png")).unwrap());
    assert!(pa.starts_with(b"\x89PNG") && pa != pb, "guidance 3 and 0 draw different images from the same noise");
    sb.run(&["sample", d, "--prompt", "a handwritten zebra"]).expect_code(2).stderr_says(&["zebra"]);
}
