//! `dlhist sample unet`: the predicted masks as a PNG beside the input and the true mask, its
//! path printed, and JSON with the path and each canvas's IoU. An option unet does not take is
//! refused with the list of those it takes.

mod common;

use common::Sandbox;

/// The PNG signature (the first 8 bytes of every PNG file, PNG spec §5.2).
const PNG_MAGIC: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

#[test]
fn sample_of_unet_writes_a_png_of_input_truth_and_prediction_and_reports_per_image_iou() {
    let sb = Sandbox::new();
    let dir = sb.path("run");
    sb.train_smoke("unet", &dir, &[]);

    // text: the path of a PNG under the run's samples/, one line per canvas
    let out = sb.run(&["sample", dir.to_str().unwrap(), "--n", "3"]);
    out.ok();
    let path = out.stdout.lines().find_map(|l| l.strip_prefix("wrote ")).expect("the PNG's path").to_string();
    assert!(path.ends_with(".png") && path.contains("samples"), "{path}");
    let png = std::fs::read(&path).unwrap();
    assert_eq!(png[..8], PNG_MAGIC);
    assert_eq!(out.stdout.matches("mean IoU").count(), 3, "{}", out.stdout);
    // three 64x64 panels at 3x with 8-pixel gutters: 3·192 + 4·8 = 608 wide (IHDR width, bytes 16..20);
    // three rows of them, 3·(192 + 8) + 8 high, then a caption and the key of the mask colours
    assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 608);
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    let masks = 3 * (192 + 8) + 8;
    assert!(height > masks + 40 && height < masks + 120, "{height}");

    // --json and --out FILE.png: the picture goes there and the JSON names it
    let target = sb.path("masks.png");
    let j = sb.run(&["--json", "sample", dir.to_str().unwrap(), "--n", "2", "--out", target.to_str().unwrap()]);
    j.ok();
    let v = j.json();
    assert_eq!(v["pictures"][0].as_str().unwrap(), target.to_str().unwrap());
    assert_eq!(std::fs::read(&target).unwrap()[..8], PNG_MAGIC);
    let images = v["sample"]["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    for im in images {
        let iou = im["miou"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&iou), "{im}");
    }
    // without --n: the default number of canvases, not one
    let out = sb.run(&["sample", dir.to_str().unwrap()]);
    assert_eq!(out.stdout.matches("mean IoU").count(), 4, "{}", out.stdout);
    let out = sb.run(&["sample", dir.to_str().unwrap(), "--prompt", "7"]);
    assert_eq!(out.code, 2);
    out.stderr_says(&["`unet` does not take --prompt", "unet takes --n, --seed"]);
    let out = sb.run(&["sample", dir.to_str().unwrap(), "--n", "0"]);
    assert_eq!(out.code, 2);
    out.stderr_says(&["positive number"]);
}
