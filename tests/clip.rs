//! `clip` end to end on its smoke preset (the sandbox has no fetched data: captioned digits8
//! stand in, without the emoji set): sampling ranks captions for an image and images for a
//! prompt, and bad input gets errors that say what to do.

mod common;

use common::Sandbox;

#[test]
fn clip_ranks_captions_for_an_image_and_held_out_images_for_a_prompt() {
    let sb = Sandbox::new();
    let dir = sb.path("clip");
    sb.train_smoke("clip", &dir, &[]);
    let d = dir.to_str().unwrap();

    // no option: held-out images with the captions ranked first, and a strip of them
    let strip = sb.path("held-out.png");
    let out = sb.run(&["sample", d, "--n", "3", "--out", strip.to_str().unwrap()]);
    out.ok();
    assert!(out.stdout.contains("held-out images"), "{}", out.stdout);
    assert_eq!(out.stdout.matches("test digit").count(), 3, "{}", out.stdout);

    // --image: the strip itself is an image; captions come back best first
    let v = sb.run(&["--json", "sample", d, "--image", strip.to_str().unwrap(), "--n", "4"]).json();
    let ranked = v["sample"]["ranked"].as_array().expect("ranked captions");
    assert_eq!(ranked.len(), 4);
    let scores: Vec<f64> = ranked.iter().map(|r| r["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "best first: {scores:?}");
    assert!(ranked.iter().all(|r| r["caption"].as_str().unwrap().starts_with("a handwritten ")), "{ranked:?}");

    // --prompt: held-out images ranked for a caption, drawn as a strip
    let ranked_png = sb.path("ranked.png");
    let out = sb.run(&["sample", d, "--prompt", "a handwritten 7", "--n", "5", "--out", ranked_png.to_str().unwrap()]);
    out.ok();
    assert_eq!(out.stdout.matches("test digit").count(), 5, "{}", out.stdout);
    let bytes = std::fs::read(&ranked_png).expect("the ranked strip is written");
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
}

#[test]
fn clip_names_unknown_prompt_words_and_refuses_a_file_that_is_not_a_png() {
    let sb = Sandbox::new();
    let dir = sb.path("clip");
    sb.train_smoke("clip", &dir, &[]);
    let d = dir.to_str().unwrap();
    sb.run(&["sample", d, "--prompt", "a zebra unicorn"]).expect_code(2).stderr_says(&["zebra, unicorn", "e.g."]);
    let not_png = sb.path("notes.png");
    std::fs::write(&not_png, "just text").unwrap();
    sb.run(&["sample", d, "--image", not_png.to_str().unwrap()]).expect_code(2).stderr_says(&["not a PNG"]);
}

#[test]
fn clip_without_a_run_says_which_command_makes_one() {
    let sb = Sandbox::new();
    sb.run(&["sample", "clip", "--prompt", "a red heart"]).expect_code(1).stderr_says(&["dlhist train clip"]);
}
