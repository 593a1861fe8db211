//! Catalogue section 3, the mixture-of-experts study.

use super::{preset, smoke, Claim, Entry};
use crate::milestones::moe;

const MOE_INFO: &str = "A mixture of experts (Jacobs, Jordan, Nowlan & Hinton 1991) lets a gate choose which of several sub-networks handles each input. Shazeer et al. (2017) made it sparse: the gate keeps only the top k of E scores per token, G(x) = softmax(top_k(x·W_g)), so the layer can hold many experts' parameters while each token pays for k of them; an importance loss w·CV(Σ_x G(x))² keeps the gate from sending everything to a few experts, which would then train fastest and win ever more tokens. Here: a char-LM (embedding 32, an LSTM of 128 cells) followed by y = h + FFN(h) and a softmax head. In `moe` the FFN is a top-2-of-8 mixture of 128-unit ReLU experts with balance weight 0.1; in `dense` one 256-unit MLP, which costs the same multiply-adds per character (2 experts' worth; the gate's 128·8 aside) with a quarter of the FFN parameters. Both train 1,500 updates of 32 windows of 64 characters (Adam lr 3e-3, clipping 1) on shakespeare (moby when not fetched). The claim: moe reaches a lower validation loss than dense, and with balancing no expert gets more than twice an even share of the routed tokens (measured on the first validation batch); the claim also trains moe without balancing (balance 0) and reports its load beside. Measured on shakespeare: val loss moe 1.630 vs dense 1.668; busiest/idlest expert 1.22x/0.80x an even share with balancing, 2.74x/0.08x without (val loss 1.633: at this size the unbalanced gate costs little loss, but two experts then carry most of the tokens).";

pub fn entries() -> Vec<Entry> {
    vec![
        Entry {
            name: "moe",
            year: 2017,
            paper: "Shazeer, Mirhoseini, Maziarz, Davis, Le, Hinton & Dean, Outrageously large neural networks: the sparsely-gated mixture-of-experts layer, ICLR 2017",
            study: "moe",
            family: &moe::FAMILY,
            summary: "a top-2-of-8 MoE lowers char-LM loss at equal compute; balancing keeps expert load even",
            info: MOE_INFO,
            preset: preset!("moe"),
            smoke: smoke!("moe"),
            claim: Some(Claim { text: "MoE reaches a lower val loss than a dense layer of equal compute, with even expert load", metric: "val_loss(moe) − val_loss(dense)" }),
        },
        Entry {
            name: "dense",
            year: 2017,
            paper: "Shazeer et al., ICLR 2017 (the dense baseline at equal multiply-adds per token)",
            study: "moe",
            family: &moe::FAMILY,
            summary: "the dense layer of equal compute trails the MoE",
            info: MOE_INFO,
            preset: preset!("dense"),
            smoke: smoke!("dense"),
            claim: Some(Claim { text: "a dense layer of equal compute reaches a higher val loss than the MoE", metric: "val_loss(dense) − val_loss(moe)" }),
        },
    ]
}
