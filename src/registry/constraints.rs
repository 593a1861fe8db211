//! The history's frame: seven constraints bound what a network can do. Data, compute and
//! energy are hard limits that move slowly; parameters, optimization & regularization,
//! architecture and compute efficiency are levers that get more out of a fixed budget. Each
//! milestone names the constraint(s) it lifted, with one sentence on how. Kept in one table
//! beside the registry (not in each Entry) so the sections stay untouched.

/// One of the seven constraints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Constraint {
    Data,
    Parameters,
    Optimization,
    Architecture,
    Compute,
    Efficiency,
    Energy,
}

/// Whether a constraint is a hard limit or a lever.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    HardLimit,
    Lever,
}

impl Constraint {
    pub const ALL: [Constraint; 7] = [
        Constraint::Data,
        Constraint::Parameters,
        Constraint::Optimization,
        Constraint::Architecture,
        Constraint::Compute,
        Constraint::Efficiency,
        Constraint::Energy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Constraint::Data => "data",
            Constraint::Parameters => "parameters",
            Constraint::Optimization => "optimization & regularization",
            Constraint::Architecture => "architecture",
            Constraint::Compute => "compute",
            Constraint::Efficiency => "compute efficiency",
            Constraint::Energy => "energy",
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            Constraint::Data | Constraint::Compute | Constraint::Energy => Kind::HardLimit,
            _ => Kind::Lever,
        }
    }
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::HardLimit => "hard limit",
            Kind::Lever => "lever",
        }
    }
}

use Constraint::*;

/// name -> the constraints it lifted, each with one sentence on how.
const TABLE: &[(&str, &[(Constraint, &str)])] = &[
    ("perceptron", &[(Optimization, "a learning rule that finds a separating line from examples")]),
    ("backprop", &[(Optimization, "gradients through hidden layers make multi-layer nets trainable")]),
    ("mlp", &[(Parameters, "more hidden units buy accuracy on real digits")]),
    ("lenet", &[(Architecture, "shared convolution weights fit images with few parameters")]),
    ("cnn", &[(Architecture, "stacked convolutions and pooling learn image features")]),
    (
        "alexnet",
        &[
            (Optimization, "ReLU trains deep convnets faster than saturating units"),
            (Compute, "GPU-scale training made large convnets feasible"),
        ],
    ),
    ("alexnet-tanh", &[(Optimization, "the tanh baseline AlexNet's ReLU is measured against")]),
    ("unet", &[(Architecture, "skip connections carry fine detail to the decoder")]),
    ("unet-noskip", &[(Architecture, "the no-skip baseline that shows what skips add")]),
    ("weight-decay", &[(Optimization, "an L2 penalty regularises a model that would overfit")]),
    ("no-decay", &[(Optimization, "the unregularised baseline for weight decay")]),
    ("dropout", &[(Optimization, "dropping units regularises large nets on small data")]),
    ("no-dropout", &[(Optimization, "the baseline dropout is measured against")]),
    ("sgd", &[(Optimization, "plain SGD, the baseline optimizer")]),
    ("momentum", &[(Optimization, "velocity speeds descent along shallow valleys")]),
    ("adam", &[(Optimization, "per-parameter step sizes train with little tuning")]),
    ("batchnorm", &[(Optimization, "normalising activations allows higher learning rates")]),
    ("no-norm", &[(Optimization, "the unnormalised baseline for batch norm")]),
    ("sigmoid", &[(Optimization, "the saturating activation whose gradients vanish")]),
    ("tanh", &[(Optimization, "a zero-centred activation that trains faster than sigmoid")]),
    ("relu", &[(Optimization, "a non-saturating activation keeps gradients alive")]),
    ("gelu", &[(Optimization, "a smooth gate on ReLU used by transformers")]),
    ("layernorm", &[(Optimization, "per-example normalisation stabilises sequence models")]),
    ("plain", &[(Parameters, "depth alone: the plain deep net that degrades")]),
    (
        "residual",
        &[(Architecture, "identity shortcuts let very deep nets train"), (Parameters, "depth becomes usable capacity")],
    ),
    ("rnn", &[(Architecture, "recurrence shares weights across time")]),
    ("lstm", &[(Architecture, "gated cells keep gradients over long spans")]),
    ("lstm-noforget", &[(Architecture, "the LSTM without a forget gate, its baseline")]),
    ("forget-gate", &[(Architecture, "a forget gate lets cells reset on long streams")]),
    (
        "moe",
        &[
            (Efficiency, "sparse experts add parameters without adding FLOPs per token"),
            (Parameters, "capacity grows with the number of experts"),
        ],
    ),
    ("dense", &[(Efficiency, "the dense baseline at equal FLOPs for mixture-of-experts")]),
    (
        "word2vec",
        &[
            (Data, "unlabelled text becomes training signal"),
            (Efficiency, "a shallow model trains on much more text per FLOP"),
        ],
    ),
    ("phrase2vec", &[(Data, "phrases mined from raw text extend the vocabulary")]),
    ("seq2seq", &[(Architecture, "an encoder-decoder maps sequences to sequences")]),
    ("seq2seq-reversed", &[(Optimization, "reversing the source shortens gradient paths")]),
    ("attention", &[(Architecture, "attention removes the fixed-vector bottleneck")]),
    (
        "transformer",
        &[(Architecture, "self-attention replaces recurrence"), (Efficiency, "every position trains in parallel")],
    ),
    ("t5-pretrain", &[(Data, "span corruption turns raw text into supervision")]),
    ("t5", &[(Architecture, "one text-to-text model and one loss for every task")]),
    ("t5-scratch", &[(Data, "the same two tasks without pre-training, its baseline")]),
    ("gpt", &[(Data, "next-token prediction turns raw text into supervision")]),
    ("gpt-3min", &[(Compute, "a recipe sized to a three-minute compute budget")]),
    ("gpt-xs", &[(Parameters, "the smallest rung of the scaling ladder")]),
    ("gpt-s", &[(Parameters, "the middle rung of the scaling ladder")]),
    (
        "gpt-m",
        &[
            (Parameters, "the largest rung of the scaling ladder"),
            (Compute, "loss falls as a power of training compute"),
        ],
    ),
    ("lora", &[(Efficiency, "low-rank adapters fine-tune a small fraction of the weights")]),
    ("full-finetune", &[(Parameters, "the full fine-tuning baseline for LoRA")]),
    ("bert-pretrain", &[(Data, "masked-token pre-training learns from unlabelled text")]),
    ("bert", &[(Data, "pre-trained encoders need few labelled examples")]),
    ("roberta-pretrain", &[(Optimization, "longer, dynamic-mask pre-training recipe")]),
    ("roberta", &[(Optimization, "a better pre-training recipe, same architecture")]),
    (
        "vit",
        &[
            (Data, "without convolution's prior, transformers need more data"),
            (Architecture, "image patches as tokens"),
        ],
    ),
    ("vae", &[(Architecture, "a latent variable model trained by the reparameterisation trick")]),
    ("vq-vae", &[(Architecture, "a discrete codebook latent")]),
    ("vq-vae-plain", &[(Optimization, "the codebook without resets, its baseline")]),
    ("gan", &[(Optimization, "an adversarial game replaces an explicit likelihood")]),
    ("diffusion", &[(Optimization, "denoising score matching gives stable generative training")]),
    ("ddpm", &[(Optimization, "the noise-prediction objective of DDPM")]),
    ("ddpm-cosine", &[(Optimization, "a cosine noise schedule")]),
    ("diffusion-cfg", &[(Architecture, "classifier-free guidance steers samples with a condition")]),
    ("sft", &[(Data, "human demonstrations as supervised data")]),
    ("reward-model", &[(Data, "preference pairs become a learned reward")]),
    ("rlhf", &[(Data, "human preferences become an optimisation target")]),
    ("clip", &[(Data, "captions scraped with images supervise vision")]),
    ("dalle", &[(Data, "image-caption pairs teach text-to-image")]),
    ("dalle2", &[(Architecture, "a prior from CLIP text to image embeddings drives a decoder")]),
];

/// The constraints an entry names (empty for an unknown name).
pub fn of(name: &str) -> &'static [(Constraint, &'static str)] {
    TABLE.iter().find(|(n, _)| *n == name).map(|(_, c)| *c).unwrap_or(&[])
}

/// The constraints of an entry as JSON: `[{constraint, kind, how}]` (for `--json`).
pub fn json(name: &str) -> serde_json::Value {
    let rows: Vec<_> = of(name)
        .iter()
        .map(|(c, how)| serde_json::json!({"constraint": c.name(), "kind": c.kind().name(), "how": how}))
        .collect();
    serde_json::Value::Array(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_names_at_least_one_constraint() {
        for e in crate::registry::entries() {
            assert!(!of(e.name).is_empty(), "{} names no constraint", e.name);
        }
    }

    #[test]
    fn the_table_names_only_known_milestones() {
        let names: Vec<&str> = crate::registry::entries().iter().map(|e| e.name).collect();
        for (n, _) in TABLE {
            assert!(names.contains(n), "table names unknown milestone {n}");
        }
    }

    #[test]
    fn hard_limits_are_data_compute_and_energy() {
        let hard: Vec<_> = Constraint::ALL.into_iter().filter(|c| c.kind() == Kind::HardLimit).collect();
        assert_eq!(hard, vec![Data, Compute, Energy]);
    }
}
