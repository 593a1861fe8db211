//! Several candle ops have no backward and silently stop gradients. For every
//! milestone in the registry (so entries added later are covered without touching this file),
//! one training loss at its smoke config must give every trainable parameter a gradient that
//! is finite and not all zero.

use candle_core::Device;
use dlhist::cli::common::resolve;
use dlhist::engine::step_rng;
use dlhist::registry::entries;

/// One test only: it sets DLHIST_DATA for this whole process (an empty folder, so milestones
/// whose default data is fetched fall back to the built-in sets, as in CI), and a second test
/// in this binary could race with that.
#[test]
fn every_trainable_parameter_of_every_milestone_receives_a_gradient() {
    let data = tempfile::tempdir().unwrap();
    std::env::set_var("DLHIST_DATA", data.path());

    let mut failures = vec![];
    let mut checked = 0;
    for entry in entries() {
        let res = match resolve(entry, true, &Default::default()) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: smoke config does not resolve: {e}", entry.name));
                continue;
            }
        };
        let mut exp = match res.build(&Device::Cpu) {
            Ok(x) => x,
            Err(e) => {
                failures.push(format!("{}: build failed: {e:#}", entry.name));
                continue;
            }
        };
        let out = exp
            .train_loss(0, &mut step_rng(res.train.seed, 0))
            .unwrap_or_else(|e| panic!("{}: train_loss failed: {e}", entry.name));
        let loss = out.loss.to_scalar::<f32>().unwrap();
        if !loss.is_finite() {
            failures.push(format!("{}: the loss is {loss}", entry.name));
            continue;
        }
        let grads = out.loss.backward().unwrap();
        let params = exp.params().trainable();
        if params.is_empty() {
            failures.push(format!("{}: no trainable parameters", entry.name));
        }
        for (name, var) in params {
            let Some(g) = grads.get(var.as_tensor()) else {
                failures.push(format!(
                    "{}: parameter `{name}` gets no gradient (is an op without backward in its path?)",
                    entry.name
                ));
                continue;
            };
            let g: Vec<f32> = g.to_dtype(candle_core::DType::F32).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            if g.iter().any(|x| !x.is_finite()) {
                failures.push(format!("{}: parameter `{name}` has a non-finite gradient", entry.name));
            } else if g.iter().all(|&x| x == 0.0) {
                failures.push(format!("{}: parameter `{name}` {:?} has an all-zero gradient", entry.name, var.dims()));
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "gradient flow failures:\n  {}", failures.join("\n  "));
    assert!(checked >= entries().len(), "only {checked} parameters checked");
    eprintln!("checked {checked} parameters of {} milestones", entries().len());
}
