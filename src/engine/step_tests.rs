//! [`train_step`] on a one-weight-vector toy with a gradient worked out by hand: clipping, the
//! norm and loss it reports, the not-finite guard and the groups' bookkeeping. Written to kill
//! the mutants `make mutants` found alive in step.rs (the runner's tests train real models, so a
//! wrong clip scale or norm only moved their numbers a little).

use super::optim::OptimKind;
use super::step::{train_step, Groups, Step, StepOut};
use crate::config::TrainConfig;
use crate::experiment::{Experiment, Group, Metrics, Split, TrainOut, Updater};
use crate::params::Params;
use crate::rng::Rng;
use candle_core::{Device, Result, Tensor, Var};

/// w (2), starting at 0, with loss Σ (w − (3, 4))² (gradient (−6, −8), norm 10, loss 25 at 0),
/// or √w₀ (loss 0, infinite gradient) or a NaN loss. A second weight v (twice the loss) is a
/// group "b" updated after group "a" with `groups` 2; with 1, one declared group "a" holds both
/// and only w is updated; with 0 the milestone declares none. With `updates` 0 it updates nothing.
struct Toy {
    params: Params,
    w: Var,
    v: Var,
    kind: &'static str,
    groups: usize,
    updates: usize,
}

impl Toy {
    fn new(kind: &'static str, groups: usize) -> Self {
        let params = Params::new(0);
        let vb = params.vb(&Device::Cpu);
        for name in ["a.w", "b.v"] {
            vb.get_with_hints(2, name, candle_nn::init::ZERO).unwrap();
        }
        let find = |n: &str| params.trainable().into_iter().find(|(m, _)| m == n).unwrap().1;
        let (w, v) = (find("a.w"), find("b.v"));
        Self { params, w, v, kind, groups, updates: 1 }
    }
    fn loss(&self, x: &Var) -> Result<Tensor> {
        match self.kind {
            "sqrt" => x.as_tensor().narrow(0, 0, 1)?.sqrt()?.sum_all(),
            "nan" => (x.as_tensor().sum_all()? * f64::NAN)?.sum_all(),
            _ => (x.as_tensor() - Tensor::new(&[3f32, 4.], &Device::Cpu)?)?.sqr()?.sum_all(),
        }
    }
}

impl Experiment for Toy {
    fn params(&self) -> &Params {
        &self.params
    }
    fn steps_per_epoch(&self) -> usize {
        1
    }
    fn groups(&self) -> Vec<Group> {
        match self.groups {
            0 => vec![],
            1 => vec![Group { name: "a", prefixes: vec!["a.".into(), "b.".into()] }],
            _ => {
                vec![Group { name: "a", prefixes: vec!["a.".into()] }, Group { name: "b", prefixes: vec!["b.".into()] }]
            }
        }
    }
    fn train_step(&mut self, _step: usize, _rng: &mut Rng, up: &mut dyn Updater) -> Result<()> {
        if self.updates == 0 {
            return Ok(());
        }
        let group = if self.groups > 0 { "a" } else { crate::experiment::ALL };
        if self.kind == "shards" {
            // the square loss in two shards, one coordinate each: shard i is (w_i − (3, 4)_i)²,
            // with a metric of i
            let target = [3f32, 4.];
            let shard = |i: usize| -> Result<TrainOut> {
                let d = (self.w.as_tensor().narrow(0, i, 1)? - target[i] as f64)?;
                Ok(TrainOut { loss: d.sqr()?.sum_all()?, metrics: Metrics::from([("m".to_string(), i as f64)]) })
            };
            let got = up.update_sharded(group, 2, &shard)?;
            assert_eq!(got, 25.0, "update_sharded returns the sum of the shards' losses");
            return Ok(());
        }
        let got = up.update(group, TrainOut { loss: self.loss(&self.w)?, metrics: Metrics::new() })?;
        assert!(self.kind != "square" || got == 25.0, "update returns the batch loss, got {got}");
        if self.groups == 2 {
            up.update("b", TrainOut { loss: (self.loss(&self.v)? * 2.0)?, metrics: Metrics::new() })?;
        }
        Ok(())
    }
    fn evaluate(&mut self, _split: Split) -> Result<Metrics> {
        Ok(Metrics::new())
    }
    fn data_name(&self) -> String {
        "toy".into()
    }
}

/// Plain SGD at lr 1 (so the update is exactly −gradient) with the given clip.
fn sgd(clip: f64) -> TrainConfig {
    TrainConfig { optimizer: OptimKind::Sgd, lr: 1.0, clip_grad_norm: clip, ..Default::default() }
}

/// One step of `exp` under `tc`; the step's outcome and w afterwards.
fn step(exp: &mut Toy, tc: &TrainConfig) -> (Step, Vec<f32>) {
    let mut groups = Groups::new(exp, tc, 10).unwrap();
    let out = train_step(exp, &mut groups, None, tc, 0).unwrap();
    (out, exp.w.as_tensor().to_vec1::<f32>().unwrap())
}

fn updated(s: Step) -> StepOut {
    match s {
        Step::Updated(out) => out,
        Step::NotFinite { what } => panic!("expected an update, got a not-finite {what}"),
    }
}

#[test]
fn a_norm_above_the_clip_scales_the_gradient_down_to_it() {
    // gradient (−6, −8), norm 10, clipped to 5: w moves by (3, 4)
    let (s, w) = step(&mut Toy::new("square", 0), &sgd(5.0));
    assert_eq!(w, [3.0, 4.0]);
    let u = &updated(s).updates[0];
    assert_eq!((u.loss, u.grad_norm, u.lr), (25.0, 10.0, 1.0), "loss and norm are reported before clipping");
}

#[test]
fn no_clip_or_a_norm_below_it_leaves_the_gradient_alone() {
    for clip in [0.0, 20.0] {
        let (s, w) = step(&mut Toy::new("square", 0), &sgd(clip));
        assert_eq!(w, [6.0, 8.0], "clip {clip}");
        assert_eq!(updated(s).updates[0].grad_norm, 10.0);
    }
}

#[test]
fn a_nan_loss_or_an_infinite_gradient_stops_the_step_and_leaves_the_weights() {
    for (kind, what) in [("nan", "the loss"), ("sqrt", "the gradient norm")] {
        let (s, w) = step(&mut Toy::new(kind, 0), &sgd(0.0));
        match s {
            Step::NotFinite { what: got } => assert_eq!(got, what),
            Step::Updated(_) => panic!("{kind}: the step should have stopped"),
        }
        assert_eq!(w, [0.0, 0.0], "{kind}");
    }
    // with groups, the message names the group
    let (s, _) = step(&mut Toy::new("nan", 2), &sgd(0.0));
    assert!(matches!(s, Step::NotFinite { what } if what == "the loss of group a"));
}

#[test]
fn two_groups_each_update_and_the_step_loss_is_their_sum() {
    let mut exp = Toy::new("square", 2);
    let tc = sgd(0.0);
    let mut groups = Groups::new(&exp, &tc, 10).unwrap();
    assert!(!groups.is_single());
    assert_eq!(groups.t_key("b"), "dlhist.optim_t.b");
    assert!(groups.get("b").is_some() && groups.get("c").is_none());
    let out = updated(train_step(&mut exp, &mut groups, None, &tc, 0).unwrap());
    let names: Vec<&str> = out.updates.iter().map(|u| u.group.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(out.loss(), 25.0 + 50.0);
    assert_eq!(exp.v.as_tensor().to_vec1::<f32>().unwrap(), [12.0, 16.0]);
}

#[test]
fn one_group_has_the_plain_key_and_adam_state_after_a_step() {
    let mut exp = Toy::new("square", 0);
    let tc = TrainConfig { lr: 0.1, ..Default::default() }; // Adam
    let mut groups = Groups::new(&exp, &tc, 10).unwrap();
    assert!(groups.is_single());
    assert_eq!(groups.t_key(crate::experiment::ALL), "dlhist.optim_t");
    train_step(&mut exp, &mut groups, None, &tc, 0).unwrap();
    let names: Vec<String> = groups.state().unwrap().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"optim/a.w/m".to_string()) && names.contains(&"optim/a.w/v".to_string()), "{names:?}");
}

#[test]
fn one_declared_group_is_not_the_single_undeclared_one() {
    let exp = Toy::new("square", 1);
    let groups = Groups::new(&exp, &sgd(0.0), 10).unwrap();
    assert!(!groups.is_single());
    assert_eq!(groups.t_key("a"), "dlhist.optim_t.a");
}

#[test]
fn a_step_without_an_update_is_an_error() {
    let mut exp = Toy::new("square", 0);
    exp.updates = 0;
    let tc = sgd(0.0);
    let mut groups = Groups::new(&exp, &tc, 10).unwrap();
    let err = train_step(&mut exp, &mut groups, None, &tc, 3).err().expect("an error");
    assert!(err.to_string().contains("made no update"), "{err}");
}

#[test]
fn a_sharded_update_sums_the_shards_losses_and_gradients_and_averages_their_metrics() {
    // shard losses 9 and 16, gradients (−6, 0) and (0, −8): the update of the whole loss
    for clip in [0.0, 5.0] {
        let (s, w) = step(&mut Toy::new("shards", 0), &sgd(clip));
        let out = updated(s);
        assert_eq!(w, if clip > 0.0 { [3.0, 4.0] } else { [6.0, 8.0] }, "clip {clip}");
        assert_eq!((out.updates[0].loss, out.updates[0].grad_norm), (25.0, 10.0));
        assert_eq!(out.metrics["m"], 0.5);
    }
}
