//! `backprop` and `perceptron`: Rumelhart, Hinton & Williams (1986). Sigmoid units trained by
//! full-batch gradient descent with momentum on the sum of squared errors, as in the paper
//! (Δw(t) = −ε·∂E/∂w + α·Δw(t−1)), on its tasks: XOR, the 8-3-8 encoder and 6-bit symmetry.
//! With a hidden layer the net learns XOR and symmetry; without one (a perceptron) it cannot
//! learn XOR, which is not linearly separable (at most 3 of 4 patterns right).

use super::{from_table, to_table, Family};
use crate::config::OptimKind;
use crate::config::TrainConfig;
use crate::data::paper_tasks::{self, Task};
use crate::error::DlError;
use crate::experiment::{Experiment, Metrics, SampleOpt, SampleOut, SampleRequest, Split, TrainOut};
use crate::nn::activation::Activation;
use crate::nn::linear::InitKind;
use crate::nn::mlp::Mlp;
use crate::params::Params;
use crate::rng::Rng;
use candle_core::{Device, Result, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct DataCfg {
    /// xor | encoder | symmetry
    pub task: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ModelCfg {
    /// units in the hidden layer; 0 = no hidden layer (a perceptron)
    pub hidden: usize,
}

pub type Config = super::Config<DataCfg, ModelCfg>;

pub fn defaults() -> Config {
    Config {
        // the paper's XOR run: ε = 0.5, α = 0.9, one update per sweep through all patterns
        train: TrainConfig {
            steps: 2000,
            optimizer: OptimKind::Momentum,
            lr: 0.5,
            momentum: 0.9,
            log_every: 50,
            eval_every: 500,
            ckpt_every: 0,
            ..Default::default()
        },
        data: DataCfg { task: "xor".into() },
        model: ModelCfg { hidden: 2 },
    }
}

pub struct Backprop {
    net: Mlp,
    params: Params,
    task: Task,
    x: Tensor, // (P, n_in)
    t: Tensor, // (P, n_out)
}

impl Backprop {
    /// Sigmoid outputs (P, n_out).
    fn outputs(&self) -> Result<Tensor> {
        candle_nn::ops::sigmoid(&self.net.forward(&self.x)?)
    }
}

fn build(c: &Config, device: &Device) -> anyhow::Result<Box<dyn Experiment>> {
    let task = paper_tasks::by_name(&c.data.task).ok_or_else(|| DlError::BadValue {
        context: "data.task".into(),
        message: format!("unknown task `{}`; choose xor, encoder or symmetry", c.data.task),
    })?;
    let params = Params::new(c.train.seed);
    let mut dims = vec![task.n_in()];
    if c.model.hidden > 0 {
        dims.push(c.model.hidden);
    }
    dims.push(task.n_out());
    let net = Mlp::new(&dims, Activation::Sigmoid, InitKind::Default, params.vb(device))?;
    let flat = |rows: &[Vec<f32>]| rows.iter().flatten().copied().collect::<Vec<f32>>();
    let x = Tensor::from_vec(flat(&task.inputs), (task.inputs.len(), task.n_in()), device)?;
    let t = Tensor::from_vec(flat(&task.targets), (task.targets.len(), task.n_out()), device)?;
    Ok(Box::new(Backprop { net, params, task, x, t }))
}

impl Experiment for Backprop {
    fn params(&self) -> &Params {
        &self.params
    }

    fn steps_per_epoch(&self) -> usize {
        1 // one full sweep through the patterns per update
    }

    fn train_loss(&mut self, _step: usize, _rng: &mut Rng) -> Result<TrainOut> {
        // E = ½ Σ_patterns Σ_outputs (y − d)², the paper's error measure
        let loss = ((self.outputs()? - &self.t)?.sqr()?.sum_all()? * 0.5)?;
        Ok(TrainOut { loss, metrics: Metrics::new() })
    }

    /// The task has no held-out set: the question is whether the mapping is learned. A pattern
    /// counts as correct when every output is on the right side of 0.5.
    fn evaluate(&mut self, _split: Split) -> Result<Metrics> {
        let y = self.outputs()?;
        let loss = ((&y - &self.t)?.sqr()?.sum_all()? * 0.5)?.to_scalar::<f32>()? as f64;
        let (y, t) = (y.to_vec2::<f32>()?, self.t.to_vec2::<f32>()?);
        let right =
            y.iter().zip(&t).filter(|(a, b)| a.iter().zip(b.iter()).all(|(p, q)| (*p > 0.5) == (*q > 0.5))).count();
        Ok(Metrics::from([("loss".to_string(), loss), ("acc".to_string(), right as f64 / t.len() as f64)]))
    }

    fn sample_options(&self) -> &'static [SampleOpt] {
        &[SampleOpt::N]
    }

    fn sample(&mut self, req: &SampleRequest, _rng: &mut Rng) -> anyhow::Result<SampleOut> {
        let y = self.outputs()?.to_vec2::<f32>()?;
        let n = req.n_at_most(y.len(), y.len(), "the truth table has that many rows");
        let bits = |v: &[f32], dp: bool| {
            v.iter().map(|x| if dp { format!("{x:.2}") } else { format!("{x:.0}") }).collect::<Vec<_>>().join(" ")
        };
        let mut text = format!("{} (input -> output, target):\n", self.task.name);
        let mut rows = vec![];
        for (i, yi) in y.iter().enumerate().take(n) {
            let ok = yi.iter().zip(&self.task.targets[i]).all(|(p, q)| (*p > 0.5) == (*q > 0.5));
            text.push_str(&format!(
                "  {}  ->  {}   ({}) {}\n",
                bits(&self.task.inputs[i], false),
                bits(yi, true),
                bits(&self.task.targets[i], false),
                if ok { "ok" } else { "WRONG" }
            ));
            rows.push(serde_json::json!({"input": self.task.inputs[i], "output": yi, "target": self.task.targets[i], "correct": ok}));
        }
        Ok(SampleOut::new(text, serde_json::json!({"task": self.task.name, "patterns": rows})))
    }

    fn data_name(&self) -> String {
        self.task.name.to_string()
    }
}

pub static FAMILY: Family =
    Family { id: "backprop", defaults: || to_table(&defaults()), build: |t, d| build(&from_table::<Config>(t)?, d) };
