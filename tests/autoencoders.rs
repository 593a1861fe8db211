//! `dlhist sample vae` and `dlhist sample vq-vae` on smoke runs: the PNGs are decoded and their
//! sizes and pixels checked (the grid's layout, grey values in range, binary test images at the
//! ends of each latent walk), the JSON carries per-image numbers and code grids, and bad input
//! (`--n 0`, an option the milestone does not take, no run yet) is refused with a clear error.

mod common;

use common::Sandbox;
use std::path::Path;

/// (width, height, grey bytes) of an 8-bit greyscale PNG.
fn decode(path: &Path) -> (usize, usize, Vec<u8>) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    assert_eq!(info.color_type, png::ColorType::Grayscale, "{}", path.display());
    (info.width as usize, info.height as usize, buf)
}

/// The 28x28 panel at grid cell (col, row) of a grid with 2-pixel gutters, drawn at 2x.
fn cell(png: &(usize, usize, Vec<u8>), col: usize, row: usize) -> Vec<u8> {
    let (w, _, px) = png;
    let (x0, y0) = (2 * (2 + col * 30), 2 * (2 + row * 30));
    (0..56).flat_map(|y| px[(y0 + y) * w + x0..(y0 + y) * w + x0 + 56].to_vec()).collect()
}

/// Side of a grid of `n` 28x28 cells with 2-pixel gutters, at 2x.
fn side(n: usize) -> usize {
    2 * (n * 30 + 2)
}

#[test]
fn sample_vae_draws_prior_samples_reconstructions_and_latent_walks() {
    let sb = Sandbox::new();
    let dir = sb.path("vae");
    sb.train_smoke("vae", &dir, &[]);
    let d = dir.to_str().unwrap();
    // its test metrics include the FD of its samples, on the same lenet features as gan's
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let fd = summary["final"]["test_fd"].as_f64().expect("vae reports test_fd");
    assert!(fd.is_finite() && fd > 0.0, "FD of 40-step samples against real digits: {fd}");
    // the lenet it needed for the FD is trained once and found again by the next run
    sb.train_smoke("vae", &sb.path("vae2"), &[]);
    let lenets = common::files_named(&sb.runs.join("lenet"), "summary.json");
    assert_eq!(lenets.len(), 1, "the FD's lenet was trained again: {lenets:?}");

    // the prior grid (64 samples: 8x8) and 8 test images above their reconstructions
    let out = sb.path("v.png");
    let j = sb.run(&["--json", "sample", d, "--out", out.to_str().unwrap()]);
    j.ok();
    let v = j.json();
    assert_eq!(v["sample"]["kind"], "prior");
    let pics: Vec<&str> = v["pictures"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(pics.len(), 2, "{v}");
    // the first picture, the prior grid, takes the name asked for; the other gets a suffix
    assert!(pics[0].ends_with("/v.png"), "{pics:?}");
    let grid = decode(Path::new(pics[0]));
    assert_eq!((grid.0, grid.1), (side(8), side(8)));
    let gutter = grid.2[0];
    assert_eq!(gutter, 128, "the grey background");
    let first = cell(&grid, 0, 0);
    assert!(first.iter().any(|&b| b != first[0]), "a sample is not one flat colour");
    let rec = decode(Path::new(pics.iter().find(|p| p.ends_with("-reconstructions.png")).unwrap()));
    assert_eq!((rec.0, rec.1), (side(8), side(2)));
    for c in 0..8 {
        assert!(cell(&rec, c, 0).iter().all(|&b| b == 0 || b == 255), "top row: binarised test images");
    }
    let items = v["sample"]["reconstructions"].as_array().unwrap();
    assert_eq!(items.len(), 8);
    assert!(items.iter().all(|i| i["neg_elbo"].as_f64().unwrap() > 0.0), "{v}");

    // --interpolate: 3 walks of 10 points between two binarised test images
    let out = sb.path("w.png");
    let t = sb.run(&["sample", d, "--interpolate", "--n", "3", "--out", out.to_str().unwrap()]);
    t.ok();
    assert_eq!(t.stdout.matches(" -> ").count(), 3, "{}", t.stdout);
    let walk = decode(&out);
    assert_eq!((walk.0, walk.1), (side(12), side(3)));
    for row in 0..3 {
        for col in [0, 11] {
            assert!(cell(&walk, col, row).iter().all(|&b| b == 0 || b == 255), "walk ends are test images");
        }
        let mid = cell(&walk, 5, row);
        assert!(mid.iter().any(|&b| b != 0 && b != 255), "decodings are grey probabilities");
    }

    // bad input: a count of 0, an option vae does not take, a milestone with no run yet
    let o = sb.run(&["sample", d, "--n", "0"]);
    assert_eq!(o.code, 2);
    o.stderr_says(&["positive number"]);
    let o = sb.run(&["sample", d, "--prompt", "a 7"]);
    assert_eq!(o.code, 2);
    o.stderr_says(&["`vae` does not take --prompt", "vae takes --n, --seed, --interpolate"]);
    let o = sb.run(&["sample", "vq-vae"]);
    assert_eq!(o.code, 1);
    o.stderr_says(&["no finished `vq-vae` run", "dlhist train vq-vae"]);
}

#[test]
fn sample_vq_vae_shows_test_images_above_their_reconstructions_with_their_codes() {
    let sb = Sandbox::new();
    let dir = sb.path("vq");
    sb.train_smoke("vq-vae", &dir, &[]);
    let d = dir.to_str().unwrap();
    let out = sb.path("q.png");
    let j = sb.run(&["--json", "sample", d, "--n", "10", "--out", out.to_str().unwrap()]);
    j.ok();
    let v = j.json();
    let png = decode(&out);
    // rows of 8: 8 originals, their reconstructions, then 2 more of each (the rest grey)
    assert_eq!((png.0, png.1), (side(8), side(4)));
    assert!(cell(&png, 1, 2).iter().any(|&b| b != 128), "the third row holds images");
    assert!(cell(&png, 3, 2).iter().all(|&b| b == 128), "an empty cell is background");
    let items = v["sample"]["images"].as_array().unwrap();
    assert_eq!(items.len(), 10);
    for im in items {
        let grid = im["codes"].as_array().unwrap();
        assert_eq!(grid.len(), 7);
        assert!(grid.iter().all(|r| r.as_array().unwrap().len() == 7));
        assert!(grid.iter().flat_map(|r| r.as_array().unwrap()).all(|c| c.as_u64().unwrap() < 128));
        assert!((0.0..=1.0).contains(&im["mse"].as_f64().unwrap()), "{im}");
    }
    let o = sb.run(&["sample", d, "--interpolate"]);
    assert_eq!(o.code, 2);
    o.stderr_says(&["`vq-vae` does not take --interpolate", "vq-vae takes --n, --seed"]);
}
