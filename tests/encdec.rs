//! The encoder–decoder milestone end to end on its smoke preset (the sandbox has no fetched
//! data: the synthetic cipher stands in): `transformer` translates a prompt and writes the
//! cross-attention heatmap.

mod common;

use common::Sandbox;

#[test]
fn transformer_translates_a_prompt_and_writes_the_cross_attention_heatmap() {
    let sb = Sandbox::new();
    let dir = sb.path("tr");
    sb.train_smoke("transformer", &dir, &[]);
    let d = dir.to_str().unwrap();
    let out = sb.run(&["sample", d, "--prompt", "In the beginning"]);
    out.ok();
    for p in ["translation:", "attention %", "cross-attention.png"] {
        assert!(out.stdout.contains(p), "{p}:\n{}", out.stdout);
    }
    let pngs: Vec<_> = std::fs::read_dir(dir.join("samples"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with("cross-attention.png"))
        .collect();
    assert_eq!(pngs.len(), 1, "one heatmap written");
    let v = sb.run(&["--json", "sample", d, "--prompt", "in the beginning"]).json();
    let matrix = v["sample"]["attention"].as_array().expect("a cross-attention matrix");
    assert_eq!(matrix.len(), v["sample"]["translation"].as_array().unwrap().len(), "one row per output word");
    for row in matrix {
        let row: Vec<f64> = row.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert_eq!(row.len(), 3, "one column per source word");
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{row:?}");
    }
}
