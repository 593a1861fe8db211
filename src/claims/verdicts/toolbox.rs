//! Section 2: regularisation, optimizers, normalisation, activations, layernorm, the depth study.

use crate::claims::fake::{both, by_name, fails, run, set, Fake};

/// `with` and `without`'s test accuracy and one more metric `key`.
fn pair(with: &'static str, without: &'static str, key: &'static str, a: (f64, f64), b: (f64, f64)) -> Fake {
    let r = move |(acc, k): (f64, f64)| run("mnist", &[("test_acc", acc), (key, k)]);
    by_name(vec![(with, r(a)), (without, r(b))])
}

#[test]
fn weight_decay_lowers_the_test_error_and_the_weight_norm() {
    let wd = |a, b| pair("weight-decay", "no-decay", "val_weight_norm", a, b);
    for name in ["weight-decay", "no-decay"] {
        // equal errors are not lower
        both(name, wd((0.951, 1.0), (0.95, 2.0)), wd((0.95, 1.0), (0.95, 2.0)));
        fails(name, vec![wd((0.96, 2.0), (0.95, 2.0))]);
    }
}

#[test]
fn dropout_raises_test_accuracy_and_narrows_the_gap() {
    // (test_acc, fit accuracy on training images)
    let dr = |a, b| pair("dropout", "no-dropout", "val_fit_acc", a, b);
    for name in ["dropout", "no-dropout"] {
        both(name, dr((0.951, 0.97), (0.95, 1.0)), dr((0.95, 0.97), (0.95, 1.0)));
        // higher, but with a wider train–test gap
        fails(name, vec![dr((0.951, 1.1), (0.95, 1.0))]);
    }
}

/// The optimizer study: mlp train losses of sgd, momentum and adam, and the lstm char-LM's with
/// sgd and adam.
fn optim(sgd: f64, momentum: f64, adam: f64, lm_sgd: f64, lm_adam: f64) -> Fake {
    Fake::new(move |name, sets| {
        let loss = match (name, set(sets, "train.optimizer")) {
            ("lstm", Some("sgd")) => lm_sgd,
            ("lstm", Some("adam")) => lm_adam,
            ("sgd", None) => sgd,
            ("momentum", None) => momentum,
            ("adam", None) => adam,
            other => panic!("unexpected run {other:?}"),
        };
        run("mnist", &[("train_loss", loss)])
    })
}

#[test]
fn the_optimizers_order_by_training_loss() {
    both("momentum", optim(1.0, 0.999, 2.0, 2.0, 1.0), optim(1.0, 1.0, 0.5, 2.0, 1.0));
    both("adam", optim(1.0, 2.0, 0.999, 2.0, 1.999), optim(1.0, 2.0, 1.0, 2.0, 1.0));
    fails("adam", vec![optim(1.0, 2.0, 0.5, 2.0, 2.0)]);
    both("sgd", optim(1.0, 2.0, 0.999, 2.0, 1.999), optim(1.0, 1.0, 2.0, 2.0, 1.0));
    fails("sgd", vec![optim(1.0, 2.0, 0.5, 1.0, 1.0)]);
}

/// batchnorm and no-norm reach 97% val accuracy at updates `b` and `n` (None: never, in 1,000).
fn race(b: Option<usize>, n: Option<usize>) -> Fake {
    let curve = |at: Option<usize>| {
        let pts: Vec<(usize, f64)> =
            (0..=1000).step_by(1).map(|t| (t, if at.is_some_and(|a| t >= a) { 0.97 } else { 0.96 })).collect();
        run("mnist", &[]).steps(1000).curve("acc", &pts)
    };
    by_name(vec![("batchnorm", curve(b)), ("no-norm", curve(n))])
}

#[test]
fn batchnorm_reaches_97_percent_in_at_most_half_the_updates() {
    for name in ["batchnorm", "no-norm"] {
        both(name, race(Some(50), Some(100)), race(Some(51), Some(100)));
        // no-norm never arriving counts as 1,001 updates; batchnorm never arriving fails
        both(name, race(Some(500), None), race(None, None));
    }
}

#[test]
fn sigmoid_stalls_and_tanh_trains_lower() {
    let act = |sig: f64, tanh: f64| {
        let r = |l: f64| run("mnist", &[("train_loss", l), ("val_acc", 0.1)]);
        by_name(vec![("sigmoid", r(sig)), ("tanh", r(tanh))])
    };
    both("sigmoid", act(2.0, 1.0), act(1.999, 1.0));
    both("tanh", act(2.0, 1.999), act(2.0, 2.0));
}

#[test]
fn relu_is_sparse_and_trains_and_gelu_trains_no_worse() {
    let relu = |zeros: f64, acc: f64| {
        by_name(vec![("relu", run("mnist", &[("val_zero_frac", zeros), ("val_acc", acc), ("train_loss", 0.5)]))])
    };
    both("relu", relu(0.5, 0.9), relu(0.499, 0.9));
    fails("relu", vec![relu(0.9, 0.899)]);
    let gelu = |g: f64| {
        by_name(vec![("gelu", run("mnist", &[("train_loss", g)])), ("relu", run("mnist", &[("train_loss", 0.5)]))])
    };
    // equal losses pass ("no worse")
    both("gelu", gelu(0.5), gelu(0.5001));
}

#[test]
fn layernorm_beats_batchnorm_at_batch_2() {
    let ln = |l: f64, b: f64| {
        Fake::new(move |_, sets| {
            let v = if set(sets, "model.norm") == Some("batch") { b } else { l };
            run("shakespeare", &[("val_loss", v), ("train_loss", v)])
        })
    };
    both("layernorm", ln(1.999, 2.0), ln(2.0, 2.0));
}

/// The depth study: final train losses of plain-20, plain-56 and residual-56.
fn depth(p20: f64, p56: f64, r56: f64) -> Fake {
    Fake::new(move |name, sets| {
        let l = match (name, set(sets, "model.depth")) {
            ("plain", Some("20")) => p20,
            ("plain", Some("56")) => p56,
            ("residual", Some("56")) => r56,
            other => panic!("unexpected run {other:?}"),
        };
        run("cifar", &[("train_loss", l)])
    })
}

#[test]
fn deeper_plain_nets_train_worse_and_shortcuts_fix_it() {
    both("plain", depth(1.0, 1.001, 0.5), depth(1.0, 1.0, 0.5));
    both("residual", depth(1.0, 1.5, 0.999), depth(1.0, 1.5, 1.0));
    // without the degradation there is nothing to fix
    fails("residual", vec![depth(1.0, 0.9, 0.5)]);
}
