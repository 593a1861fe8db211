//! Catalogue section 1, continued: the claims of the CNNs, `cnn` (LeCun et al. 1989) and
//! `alexnet`/`alexnet-tanh` (Krizhevsky et al. 2012, Figure 1: the number of updates until the
//! error on 2,000 training images first falls to a level read from the tanh run).

use super::{first_eval_step, heldout_evals, metric, val_lines, ClaimCtx, Verdict};
use crate::engine::runner::Summary;
use crate::milestones::mlp;

/// Calibrated from `dlhist replay cnn` (see the registry entry): the threshold sits below the
/// measured accuracy by about the spread between seeds.
const MIN_ACC: f64 = 0.975;
/// "far fewer parameters": at most this fraction of the mlp's.
const MAX_PARAM_FRACTION: f64 = 0.02;

pub fn claim_cnn(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let s = ctx.run("cnn", &[])?;
    let acc = metric(&s, "test_acc")?;
    let mlp_params = mlp::mnist_param_count();
    let fraction = s.params as f64 / mlp_params as f64;
    Ok(Verdict {
        value: acc,
        threshold: MIN_ACC,
        pass: acc >= MIN_ACC && fraction <= MAX_PARAM_FRACTION,
        detail: format!(
            "test accuracy {:.2}% on {} at 16x16 after {} steps, with {} parameters ({:.1}% of the mlp's {}; needs ≤ {:.0}%)",
            acc * 100.0,
            s.data,
            s.steps,
            s.params,
            fraction * 100.0,
            mlp_params,
            MAX_PARAM_FRACTION * 100.0
        ),
    })
}

/// The claim: tanh needs at least this many times ReLU's updates (the paper: 6x).
pub const MIN_SPEEDUP: f64 = 2.0;

/// Figure 1's experiment (Krizhevsky et al. 2012): a four-layer net (three convolutions and the
/// output layer) with no regularisation of any kind, evaluated every 25 updates.
const FIGURE1: [(&str, &str); 6] = [
    ("model.channels", "[32, 32, 64]"),
    ("model.hidden", "[]"),
    ("model.dropout", "0"),
    ("data.augment.pad", "0"),
    ("data.augment.flip", "false"),
    ("train.eval_every", "25"),
];
/// Each net's learning rate is chosen to train fastest, from these.
const RATES: [&str; 2] = ["0.01", "0.03"];
/// The level: tanh's training error (at the first rate) at this fraction of its budget.
const LEVEL_AT: f64 = 0.5;

/// Figure 1's run of `name` at learning rate `lr`.
fn figure1(ctx: &mut dyn ClaimCtx, name: &str, lr: &str) -> anyhow::Result<Summary> {
    let mut sets = FIGURE1.to_vec();
    sets.push(("train.lr", lr));
    // the claim reads only the training error
    sets.push(heldout_evals(ctx));
    ctx.run(name, &sets)
}

/// The training error of the run's evaluation at `step` (the last one at or before it).
fn fit_error_at(s: &Summary, step: usize) -> anyhow::Result<f64> {
    let mut err = None;
    for v in val_lines(s)? {
        if v["step"].as_u64().is_some_and(|t| t as usize <= step) {
            err = v["fit_acc"].as_f64().map(|a| 1.0 - a).or(err);
        }
    }
    err.ok_or_else(|| anyhow::anyhow!("run {} logged no training error by update {step}", s.name))
}

/// (updates to reach `level` or None, lr) of `name` at its faster rate.
fn fastest(ctx: &mut dyn ClaimCtx, name: &str, level: f64) -> anyhow::Result<(Option<usize>, &'static str, usize)> {
    let mut best: Option<(Option<usize>, &'static str, usize)> = None;
    for lr in RATES {
        let s = figure1(ctx, name, lr)?;
        let reached = first_eval_step(&s, "fit_acc", |a| 1.0 - a <= level)?;
        let key = |r: Option<usize>| r.unwrap_or(usize::MAX);
        if best.as_ref().is_none_or(|b| key(reached) < key(b.0)) {
            best = Some((reached, lr, s.steps));
        }
    }
    Ok(best.expect("two rates"))
}

pub fn claim_alexnet(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    let tanh = figure1(ctx, "alexnet-tanh", RATES[0])?;
    let at = (tanh.steps as f64 * LEVEL_AT) as usize;
    let level = fit_error_at(&tanh, at)?;
    let (sr, lr_r, budget) = fastest(ctx, "alexnet", level)?;
    let (st, lr_t, _) = fastest(ctx, "alexnet-tanh", level)?;
    // a run that never gets there counts as its budget plus one (a lower bound on its steps)
    let (vr, vt) = (sr.unwrap_or(budget + 1) as f64, st.unwrap_or(budget + 1) as f64);
    let speedup = vt / vr;
    let show = |s: Option<usize>| s.map_or("never (within the budget)".to_string(), |x| format!("{x} updates"));
    Ok(Verdict {
        value: speedup,
        threshold: MIN_SPEEDUP,
        pass: sr.is_some() && speedup >= MIN_SPEEDUP,
        detail: format!(
            "Figure 1's 4-layer net, no regularisation, on {}: level {:.1}% training error (tanh's at update {at}); relu (lr {lr_r}) after {}, tanh (lr {lr_t}) after {} ({speedup:.2}x; claim: ≥ {MIN_SPEEDUP}x, paper 6x)",
            tanh.data,
            level * 100.0,
            show(sr),
            show(st)
        ),
    })
}

/// `alexnet-tanh`'s own claim is the same race, seen from the slow side.
pub fn claim_alexnet_tanh(ctx: &mut dyn ClaimCtx) -> anyhow::Result<Verdict> {
    claim_alexnet(ctx)
}
