//! The catalogue: every runnable name, its paper, its study, its claim, and its presets.
//! Presets are compiled in (experiments/NAME.toml and experiments/smoke/NAME.toml), so the
//! binary runs from any directory.

use crate::error::{closest, DlError};
use crate::milestones::{activations, backprop, lenet, mlp, normalization, optimizers, regularize, Claim, Family};

pub struct Entry {
    pub name: &'static str,
    pub year: u16,
    pub paper: &'static str,
    /// variants of one study can be compared side by side
    pub study: &'static str,
    pub family: &'static Family,
    /// one line: what the claim says
    pub summary: &'static str,
    /// the idea in a paragraph, and why the claim is measured the way it is
    pub info: &'static str,
    /// experiments/NAME.toml: what differs from the family defaults (the full budget)
    pub preset: &'static str,
    /// experiments/smoke/NAME.toml: on top of the preset, a seconds-long budget
    pub smoke: &'static str,
    pub claim: Option<Claim>,
}

macro_rules! presets {
    ($name:literal) => {
        (
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/", $name, ".toml")),
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/smoke/", $name, ".toml")),
        )
    };
}

const WD_INFO: &str = "Weight decay adds λ·‖w‖²/2 to the loss, so every step also shrinks each weight toward zero. Krogh & Hertz (1991) showed that it suppresses the irrelevant components of the weight vector and part of the effect of noise in the targets, improving generalisation. The study trains the 784-512-256-10 mlp on only 1,000 MNIST digits for 200 epochs (SGD + momentum, lr 0.05), far past a perfect fit of the training set, with λ = 0.005 (`weight-decay`) or 0 (`no-decay`). The claim: decay gives a lower test error and a smaller weight norm ‖W‖ (all weight matrices together), averaged over three seeds because one run's test error moves by a few tenths of a percent. Measured: 10.3% vs 11.1% test error and ‖W‖ 8.4 vs 20.1 on one seed.";

const DROPOUT_INFO: &str = "Dropout (Srivastava, Hinton, Krizhevsky, Sutskever & Salakhutdinov 2014) drops each hidden unit with probability p at every training step and scales the rest by 1/(1−p), so no unit can rely on particular others: it trains an ensemble of thinned networks that share weights, and evaluation uses the full net. The study trains a wide MLP (784-1024-1024-10, Adam) on 2,000 MNIST digits with p = 0.5 (`dropout`) or 0 (`no-dropout`). The claim: dropout raises test accuracy and narrows the train–test gap (accuracy on 2,000 training images minus test accuracy, both in eval mode), averaged over three seeds. Measured on one seed: 93.2% vs 92.8% test accuracy, gap 6.7 vs 7.2 points.";

const OPT_INFO: &str = "The same mlp on MNIST for 1,000 updates of 128 images with three optimizers at their usual learning rates: plain SGD (lr 0.05), SGD with momentum 0.9 (lr 0.05; Polyak 1964, Sutskever et al. 2013), and Adam (lr 1e-3; Kingma & Ba 2014), which scales each weight's step by running estimates of its gradient's first and second moments. The claims compare the mean training loss over the last stretch of updates. Measured: sgd 0.297, momentum 0.081, adam 0.069. The issue also asks for the char-LM task; that comes with the sequence milestones.";

const BN_INFO: &str = "Batch normalisation (Ioffe & Szegedy 2015) normalises each channel by the mean and variance of the current mini-batch, then rescales it with a learned gain and bias; at evaluation it uses running averages of those statistics (saved in checkpoints). It keeps each layer's input distribution steady while the layers below change, which lets the network train at learning rates that would otherwise stall or diverge. The study trains LeNet-5 with batch norm after each convolution (`batchnorm`) or without (`no-norm`) with SGD + momentum 0.9 at lr 0.1, and counts the updates until the validation accuracy first reaches 97% (evaluated every 50 updates). The claim: batch norm gets there in at most half the updates. Measured: 250 vs 550 updates (ratio 0.45; with a cosine schedule it was 250 vs 650); at lr 0.3 neither reached 97% in 1,500 updates (batch norm 94.6%, no-norm diverged to chance). The composed batch-norm layer makes each step about 6x slower than the plain net (no fused op yet).";

const ACT_INFO: &str = "A 10-layer MLP (9 hidden layers of 128) trained on mnist with plain SGD + momentum (lr 0.01, 0.9) and He initialisation, identical but for its activation. Glorot & Bengio (2010) showed that deep nets of saturating sigmoid units stall: the top hidden layer saturates at 0 and gradients vanish through the layers below (σ' ≤ 1/4). Glorot, Bordes & Bengio (2011) showed that rectifiers train deep nets without pre-training and give sparse representations (many exact zeros). Hendrycks & Gimpel (2016) proposed GELU, x·Φ(x), a smooth rectifier that matched or beat ReLU. The claims compare the mean training loss over the last stretch of the same number of updates, and the fraction of hidden activations that are exactly zero on 1,000 validation images; the gelu-vs-relu claim averages three seeds, since one run's noise (about 2%) is as large as the difference.";

pub fn entries() -> &'static [Entry] {
    static ENTRIES: std::sync::OnceLock<Vec<Entry>> = std::sync::OnceLock::new();
    ENTRIES.get_or_init(|| {
        let (perceptron_p, perceptron_s) = presets!("perceptron");
        let (backprop_p, backprop_s) = presets!("backprop");
        let (mlp_p, mlp_s) = presets!("mlp");
        let (lenet_p, lenet_s) = presets!("lenet");
        let (wd_p, wd_s) = presets!("weight-decay");
        let (nd_p, nd_s) = presets!("no-decay");
        let (do_p, do_s) = presets!("dropout");
        let (ndo_p, ndo_s) = presets!("no-dropout");
        let (sgd_p, sgd_s) = presets!("sgd");
        let (mom_p, mom_s) = presets!("momentum");
        let (adam_p, adam_s) = presets!("adam");
        let (bn_p, bn_s) = presets!("batchnorm");
        let (nn_p, nn_s) = presets!("no-norm");
        let (sig_p, sig_s) = presets!("sigmoid");
        let (tanh_p, tanh_s) = presets!("tanh");
        let (relu_p, relu_s) = presets!("relu");
        let (gelu_p, gelu_s) = presets!("gelu");
        vec![
            Entry {
                name: "perceptron",
                year: 1986,
                paper: "Rumelhart, Hinton & Williams 1986 (the perceptron's limit: Minsky & Papert 1969)",
                study: "paper-tasks",
                family: &backprop::FAMILY,
                summary: "no hidden layer cannot learn XOR (acc ≤ 75%)",
                info: "A single layer of sigmoid units, trained by the same gradient descent as `backprop`, but with no hidden layer. XOR is not linearly separable, so one layer can get at most 3 of its 4 patterns right however long it trains (Minsky & Papert 1969). This is the failure that backprop through hidden layers fixed. The claim trains on XOR and measures the fraction of patterns whose output is on the right side of 0.5.",
                preset: perceptron_p,
                smoke: perceptron_s,
                claim: Some(Claim { text: "without a hidden layer, XOR cannot be learned", metric: "xor_acc", check: backprop::claim_perceptron }),
            },
            Entry {
                name: "backprop",
                year: 1986,
                paper: "Rumelhart, Hinton & Williams, Learning representations by back-propagating errors, Nature 1986",
                study: "paper-tasks",
                family: &backprop::FAMILY,
                summary: "a hidden layer trained by backprop solves XOR and symmetry (from ≥ 1/4 of random starts)",
                info: "Back-propagation computes the gradient of the error with respect to every weight by the chain rule, layer by layer from the output back, so hidden units can learn features no one designed. The paper's tasks are small and exact: XOR (2-2-1), the 8-3-8 encoder, and 6-bit mirror symmetry (6-2-1). We train sigmoid nets on all patterns with the paper's rule (learning rate 0.5, momentum 0.9, squared error). The claim: with a hidden layer, backprop reaches an exact solution (every pattern right) of both XOR and symmetry from at least a quarter of 8 random starts; the rest sit in local minima, as the paper also observed. Measured: XOR 7 of 8, symmetry about half. Select a task with --set data.task=encoder.",
                preset: backprop_p,
                smoke: backprop_s,
                claim: Some(Claim { text: "a hidden layer trained by backprop solves XOR and symmetry", metric: "min(xor_acc, symmetry_acc)", check: backprop::claim_backprop }),
            },
            Entry {
                name: "mlp",
                year: 1986,
                paper: "backprop at scale: a 784-512-256-10 MLP on MNIST (cf. LeCun et al. 1998's MLP baselines)",
                study: "mnist",
                family: &mlp::FAMILY,
                summary: "two hidden layers reach ≥ 98% test accuracy on MNIST",
                info: "The same algorithm as `backprop`, at the scale of real data: 784 pixels in, two ReLU hidden layers of 512 and 256 units, 10 classes out, softmax cross-entropy, Adam. LeCun et al. (1998) report 1.5-3% test error for 2-3 layer MLPs on MNIST; with ReLU and Adam a few epochs reach about 98%. The claim trains for 3,000 updates of 128 images (6.4 epochs) and measures test accuracy on the 10,000 MNIST test images. Without `make data` it trains on the built-in 8x8 digits (1,797 images) instead, where the number is not the paper's.",
                preset: mlp_p,
                smoke: mlp_s,
                claim: Some(Claim { text: "an MLP with two hidden layers reaches ≥ 98% test accuracy on MNIST", metric: "test_acc", check: mlp::claim }),
            },
            Entry {
                name: "lenet",
                year: 1998,
                paper: "LeCun, Bottou, Bengio & Haffner, Gradient-based learning applied to document recognition, Proc. IEEE 1998",
                study: "mnist",
                family: &lenet::FAMILY,
                summary: "LeNet-5 reaches ≥ 99.0% on MNIST with far fewer parameters than the mlp",
                info: "A convolutional network learns small filters (5x5) that it applies at every position of the image, so it needs far fewer parameters than a fully connected net and builds in the fact that a stroke means the same thing anywhere. LeNet-5: conv 1→6 5x5, pool 2, conv 6→16 5x5, pool 2, then 256→120→84→10 (ReLU and max-pooling, as is usual today, in place of the paper's scaled tanh and average pooling). LeCun et al. (1998) report 0.95% test error (99.05%) for LeNet-5 on MNIST without distortions. The claim trains 6,000 updates of 64 images (6.4 epochs, Adam) and measures test accuracy on the 10,000 MNIST test images, and checks that the net has fewer parameters than `mlp` (about 44k against 536k). Without `make data` it trains on the built-in 8x8 digits resampled to 28x28, where the number is not the paper's.",
                preset: lenet_p,
                smoke: lenet_s,
                claim: Some(Claim { text: "LeNet-5 reaches ≥ 99.0% MNIST test accuracy with fewer parameters than the mlp", metric: "test_acc", check: lenet::claim }),
            },
            Entry {
                name: "weight-decay",
                year: 1991,
                paper: "Krogh & Hertz, A simple weight decay can improve generalization, NIPS 1991",
                study: "weight-decay",
                family: &mlp::FAMILY,
                summary: "decay lowers test error and the weight norm (1,000 digits, long training)",
                info: WD_INFO,
                preset: wd_p,
                smoke: wd_s,
                claim: Some(Claim { text: "weight decay lowers the test error and the weight norm", metric: "test_error", check: regularize::claim_weight_decay }),
            },
            Entry {
                name: "no-decay",
                year: 1991,
                paper: "Krogh & Hertz, NIPS 1991 (the baseline without decay)",
                study: "weight-decay",
                family: &mlp::FAMILY,
                summary: "without decay: higher test error, larger weights",
                info: WD_INFO,
                preset: nd_p,
                smoke: nd_s,
                claim: Some(Claim { text: "without decay the test error and the weight norm are higher", metric: "test_error", check: regularize::claim_no_decay }),
            },
            Entry {
                name: "dropout",
                year: 2014,
                paper: "Srivastava, Hinton, Krizhevsky, Sutskever & Salakhutdinov, Dropout, JMLR 2014",
                study: "dropout",
                family: &mlp::FAMILY,
                summary: "dropout narrows the train–test gap and raises test accuracy",
                info: DROPOUT_INFO,
                preset: do_p,
                smoke: do_s,
                claim: Some(Claim { text: "dropout raises test accuracy and narrows the train–test gap", metric: "test_acc", check: regularize::claim_dropout }),
            },
            Entry {
                name: "no-dropout",
                year: 2014,
                paper: "Srivastava et al., JMLR 2014 (the baseline without dropout)",
                study: "dropout",
                family: &mlp::FAMILY,
                summary: "without dropout: lower test accuracy, wider gap",
                info: DROPOUT_INFO,
                preset: ndo_p,
                smoke: ndo_s,
                claim: Some(Claim { text: "without dropout test accuracy is lower and the gap wider", metric: "test_acc", check: regularize::claim_no_dropout }),
            },
            Entry {
                name: "sgd",
                year: 1951,
                paper: "Robbins & Monro, A stochastic approximation method, 1951",
                study: "optimizers",
                family: &mlp::FAMILY,
                summary: "plain SGD trails momentum and Adam in the same steps",
                info: OPT_INFO,
                preset: sgd_p,
                smoke: sgd_s,
                claim: Some(Claim { text: "plain SGD ends with a higher loss than momentum and Adam", metric: "train_loss", check: optimizers::claim_sgd }),
            },
            Entry {
                name: "momentum",
                year: 1964,
                paper: "Polyak 1964; Sutskever, Martens, Dahl & Hinton, On the importance of initialization and momentum, ICML 2013",
                study: "optimizers",
                family: &mlp::FAMILY,
                summary: "momentum reaches a lower loss than plain SGD",
                info: OPT_INFO,
                preset: mom_p,
                smoke: mom_s,
                claim: Some(Claim { text: "momentum reaches a lower training loss than SGD", metric: "train_loss", check: optimizers::claim_momentum }),
            },
            Entry {
                name: "adam",
                year: 2014,
                paper: "Kingma & Ba, Adam: A method for stochastic optimization, ICLR 2015 (arXiv 2014)",
                study: "optimizers",
                family: &mlp::FAMILY,
                summary: "adam reaches a lower loss than sgd in the same steps",
                info: OPT_INFO,
                preset: adam_p,
                smoke: adam_s,
                claim: Some(Claim { text: "Adam reaches a lower training loss than SGD in the same steps", metric: "train_loss", check: optimizers::claim_adam }),
            },
            Entry {
                name: "batchnorm",
                year: 2015,
                paper: "Ioffe & Szegedy, Batch normalization: accelerating deep network training by reducing internal covariate shift, ICML 2015",
                study: "batchnorm",
                family: &lenet::FAMILY,
                summary: "batchnorm reaches 97% val accuracy in at most half the steps at a high lr",
                info: BN_INFO,
                preset: bn_p,
                smoke: bn_s,
                claim: Some(Claim { text: "batch norm reaches 97% validation accuracy in at most half the updates", metric: "steps_to_97", check: normalization::claim_batchnorm }),
            },
            Entry {
                name: "no-norm",
                year: 2015,
                paper: "Ioffe & Szegedy, ICML 2015 (the baseline without normalisation)",
                study: "batchnorm",
                family: &lenet::FAMILY,
                summary: "without batchnorm: at least twice the steps to 97%",
                info: BN_INFO,
                preset: nn_p,
                smoke: nn_s,
                claim: Some(Claim { text: "without batch norm it takes at least twice the updates to reach 97%", metric: "steps_to_97", check: normalization::claim_no_norm }),
            },
            Entry {
                name: "sigmoid",
                year: 2010,
                paper: "Glorot & Bengio, Understanding the difficulty of training deep feedforward neural networks, AISTATS 2010",
                study: "activations",
                family: &activations::FAMILY,
                summary: "a 10-layer sigmoid MLP stalls (train loss stays > 2.0; chance 2.30)",
                info: ACT_INFO,
                preset: sig_p,
                smoke: sig_s,
                claim: Some(Claim { text: "a deep sigmoid net stalls near chance loss", metric: "train_loss", check: activations::claim_sigmoid }),
            },
            Entry {
                name: "tanh",
                year: 2010,
                paper: "Glorot & Bengio, AISTATS 2010 (LeCun et al. 1998, Efficient BackProp, on tanh vs sigmoid)",
                study: "activations",
                family: &activations::FAMILY,
                summary: "tanh (zero-centred) trains where sigmoid stalls",
                info: ACT_INFO,
                preset: tanh_p,
                smoke: tanh_s,
                claim: Some(Claim { text: "tanh trains where sigmoid stalls", metric: "train_loss", check: activations::claim_tanh }),
            },
            Entry {
                name: "relu",
                year: 2011,
                paper: "Glorot, Bordes & Bengio, Deep sparse rectifier neural networks, AISTATS 2011",
                study: "activations",
                family: &activations::FAMILY,
                summary: "relu trains the deep net with sparse (≥ 50% zero) activations",
                info: ACT_INFO,
                preset: relu_p,
                smoke: relu_s,
                claim: Some(Claim { text: "relu trains a deep net and its activations are sparse", metric: "zero_frac", check: activations::claim_relu }),
            },
            Entry {
                name: "gelu",
                year: 2016,
                paper: "Hendrycks & Gimpel, Gaussian Error Linear Units (GELUs), 2016",
                study: "activations",
                family: &activations::FAMILY,
                summary: "gelu trains at least as well as relu",
                info: ACT_INFO,
                preset: gelu_p,
                smoke: gelu_s,
                claim: Some(Claim { text: "gelu reaches a training loss ≤ relu's", metric: "train_loss", check: activations::claim_gelu }),
            },
        ]
    })
}

pub fn names() -> Vec<&'static str> {
    entries().iter().map(|e| e.name).collect()
}

pub fn get(name: &str) -> Result<&'static Entry, DlError> {
    entries().iter().find(|e| e.name == name).ok_or_else(|| DlError::UnknownName {
        what: "milestone",
        name: name.to_string(),
        suggestion: closest(name, names()),
        hint: "Run `dlhist list` to see every milestone".into(),
    })
}
