//! Catalogue section 1, deep neural networks: the paper tasks, the mlp and the CNNs.

use super::{preset, smoke, Claim, Entry};
use crate::milestones::{backprop, lenet, mlp};

pub fn entries() -> Vec<Entry> {
    vec![
    Entry {
        name: "perceptron",
        year: 1986,
        paper: "Rumelhart, Hinton & Williams 1986 (the perceptron's limit: Minsky & Papert 1969)",
        study: "paper-tasks",
        family: &backprop::FAMILY,
        summary: "no hidden layer cannot learn XOR (acc ≤ 75%)",
        info: "A single layer of sigmoid units, trained by the same gradient descent as `backprop`, but with no hidden layer. XOR is not linearly separable, so one layer can get at most 3 of its 4 patterns right however long it trains (Minsky & Papert 1969). This is the failure that backprop through hidden layers fixed. The claim trains on XOR and measures the fraction of patterns whose output is on the right side of 0.5.",
        preset: preset!("perceptron"),
        smoke: smoke!("perceptron"),
        claim: Some(Claim { text: "without a hidden layer, XOR cannot be learned", metric: "xor_acc" }),
    },
    Entry {
        name: "backprop",
        year: 1986,
        paper: "Rumelhart, Hinton & Williams, Learning representations by back-propagating errors, Nature 1986",
        study: "paper-tasks",
        family: &backprop::FAMILY,
        summary: "a hidden layer trained by backprop solves XOR and symmetry (from ≥ 1/4 of random starts)",
        info: "Back-propagation computes the gradient of the error with respect to every weight by the chain rule, layer by layer from the output back, so hidden units can learn features no one designed. The paper's tasks are small and exact: XOR (2-2-1), the 8-3-8 encoder, and 6-bit mirror symmetry (6-2-1). We train sigmoid nets on all patterns with the paper's rule (learning rate 0.5, momentum 0.9, squared error). The claim: with a hidden layer, backprop reaches an exact solution (every pattern right) of both XOR and symmetry from at least a quarter of 8 random starts; the rest sit in local minima, as the paper also observed. Measured: XOR 7 of 8, symmetry about half. Select a task with --set data.task=encoder.",
        preset: preset!("backprop"),
        smoke: smoke!("backprop"),
        claim: Some(Claim { text: "a hidden layer trained by backprop solves XOR and symmetry", metric: "min(xor_acc, symmetry_acc)" }),
    },
    Entry {
        name: "mlp",
        year: 1986,
        paper: "backprop at scale: a 784-512-256-10 MLP on MNIST (cf. LeCun et al. 1998's MLP baselines)",
        study: "mnist",
        family: &mlp::FAMILY,
        summary: "two hidden layers reach ≥ 98% test accuracy on MNIST",
        info: "The same algorithm as `backprop`, at the scale of real data: 784 pixels in, two ReLU hidden layers of 512 and 256 units, 10 classes out, softmax cross-entropy, Adam. LeCun et al. (1998) report 1.5-3% test error for 2-3 layer MLPs on MNIST; with ReLU and Adam a few epochs reach about 98%. The claim trains for 5,000 updates of 128 images (11.6 epochs of the 55,000 training images, learning rate decayed to 0 by a cosine schedule) and measures test accuracy on the 10,000 MNIST test images: 98.29% in the replay (98.32% in an earlier one). Without `make data` it trains on the built-in 8x8 digits (1,797 images) instead, where the number is not the paper's.",
        preset: preset!("mlp"),
        smoke: smoke!("mlp"),
        claim: Some(Claim { text: "an MLP with two hidden layers reaches ≥ 98% test accuracy on MNIST", metric: "test_acc" }),
    },
    Entry {
        name: "lenet",
        year: 1998,
        paper: "LeCun, Bottou, Bengio & Haffner, Gradient-based learning applied to document recognition, Proc. IEEE 1998",
        study: "mnist",
        family: &lenet::FAMILY,
        summary: "LeNet-5 reaches ≥ 99.0% on MNIST with far fewer parameters than the mlp",
        info: "A convolutional network learns small filters (5x5) that it applies at every position of the image, so it needs far fewer parameters than a fully connected net and builds in the fact that a stroke means the same thing anywhere. LeNet-5: conv 1→6 5x5, pool 2, conv 6→16 5x5, pool 2, then 256→120→84→10 (ReLU and max-pooling, as is usual today, in place of the paper's scaled tanh and average pooling). LeCun et al. (1998) report 0.95% test error (99.05%) for LeNet-5 on MNIST without distortions. The claim trains 6,000 updates of 64 images (7.0 epochs of the 55,000 training images, Adam) and measures test accuracy on the 10,000 MNIST test images, and checks that the net has fewer parameters than `mlp` (about 44k against 536k). Without `make data` it trains on the built-in 8x8 digits resampled to 28x28, where the number is not the paper's.",
        preset: preset!("lenet"),
        smoke: smoke!("lenet"),
        claim: Some(Claim { text: "LeNet-5 reaches ≥ 99.0% MNIST test accuracy with fewer parameters than the mlp", metric: "test_acc" }),
    },
    ]
}
