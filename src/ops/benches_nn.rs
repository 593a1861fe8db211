//! Benches of the fused ops that live beside their layer in src/nn/ (the layer's file owns the
//! op and its tests; its bench is listed here with the others for `dlhist bench --ops`).

use super::OpBench;
use crate::nn::skipgram::{skipgram_scores, skipgram_scores_ref};
use candle_core::{Device, Result, Tensor, Var};

/// The skip-gram scores at word2vec's shape: batch 4,096 pairs, 1 context + 5 noise words,
/// D = 100, a vocabulary of 10,000; forward + backward of Σ s ⊙ r into both tables.
pub fn skipgram() -> Result<Vec<OpBench>> {
    let (b, k, v, d) = (4096, 6, 10_000, 100);
    let mut rng = crate::rng::Rng::new(17);
    let dev = Device::Cpu;
    let mut randn = |n: usize| (0..n).map(|_| rng.normal() as f32).collect::<Vec<f32>>();
    let w_in = Var::from_tensor(&Tensor::from_vec(randn(v * d), (v, d), &dev)?)?.as_tensor().clone();
    let w_out = Var::from_tensor(&Tensor::from_vec(randn(v * d), (v, d), &dev)?)?.as_tensor().clone();
    let r = Tensor::from_vec(randn(b * k), (b, k), &dev)?;
    let centers: Vec<u32> = (0..b).map(|_| rng.below(v) as u32).collect();
    let ids: Vec<u32> = (0..b * k).map(|_| rng.below(v) as u32).collect();
    let (centers, ids) = (Tensor::from_vec(centers, b, &dev)?, Tensor::from_vec(ids, (b, k), &dev)?);
    type Scores = fn(&Tensor, &Tensor, &Tensor, &Tensor) -> Result<Tensor>;
    let run = move |f: Scores| {
        let (w_in, w_out, centers, ids, r) = (w_in.clone(), w_out.clone(), centers.clone(), ids.clone(), r.clone());
        move || -> Result<()> { (f(&w_in, &w_out, &centers, &ids)? * &r)?.sum_all()?.backward().map(|_| ()) }
    };
    Ok(vec![OpBench {
        name: "skipgram_scores",
        shape: format!("pairs {b}, {k} words each, tables [{v}, {d}]"),
        fused: Box::new(run(skipgram_scores)),
        reference: Box::new(run(skipgram_scores_ref)),
    }])
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The modules (file stem, or folder for a mod.rs) under `dir` that implement a candle op.
    fn op_modules(dir: &Path) -> Vec<String> {
        let mut out = vec![];
        for f in std::fs::read_dir(dir).unwrap() {
            let p = f.unwrap().path();
            let (file, name) = if p.is_dir() {
                (p.join("mod.rs"), p.file_name().unwrap().to_string_lossy().to_string())
            } else {
                (p.clone(), p.file_stem().unwrap().to_string_lossy().to_string())
            };
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            // a line `impl CustomOpN for …` or `impl InplaceOpN for …` (not a mention in text)
            let is_op = text.lines().map(str::trim_start).any(|l| {
                l.starts_with("impl")
                    && (1..=3)
                        .any(|n| l.contains(&format!("CustomOp{n} for")) || l.contains(&format!("InplaceOp{n} for")))
            });
            // the CUDA launchers implement the same ops' GPU side
            if is_op && name != "cuda" {
                out.push(name);
            }
        }
        out.sort();
        out
    }

    /// Every fused op (every module of src/ops/ or src/nn/ that implements a candle op) is
    /// benched by `all_benches`: `ops::X` by `X::benches()`, `nn::X` by `benches_nn::X()`; and
    /// the list is not empty and names each bench (op and shape) once.
    #[test]
    fn every_fused_op_is_benched() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mod_rs = std::fs::read_to_string(src.join("ops/mod.rs")).unwrap();
        let start = mod_rs.find("pub fn all_benches").unwrap();
        let body = &mod_rs[start..start + mod_rs[start..].find("Ok(out)").unwrap()];
        let (ops, nn) = (op_modules(&src.join("ops")), op_modules(&src.join("nn")));
        assert!(ops.len() >= 10 && nn.contains(&"skipgram".to_string()), "ops {ops:?}, nn {nn:?}");
        let missing: Vec<String> = ops
            .iter()
            .filter(|m| !body.contains(&format!("{m}::benches()")))
            .chain(nn.iter().filter(|m| !body.contains(&format!("benches_nn::{m}()"))))
            .cloned()
            .collect();
        assert!(missing.is_empty(), "fused ops without a bench in ops::all_benches: {missing:?}");
        let names: Vec<(&str, String)> =
            super::super::all_benches().unwrap().iter().map(|b| (b.name, b.shape.clone())).collect();
        let unique: std::collections::BTreeSet<&(&str, String)> = names.iter().collect();
        assert!(names.len() >= ops.len() + nn.len() && unique.len() == names.len(), "{names:?}");
    }
}
