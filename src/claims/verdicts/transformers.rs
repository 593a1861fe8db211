//! Section 4, transformers: gpt and its size ladder, lora, the encoder–decoder, the encoders.

use crate::claims::fake::{both, by_name, fails, run, set, Fake};
use crate::claims::transformers::{TIME_FRACTION, TORCH_S, TORCH_VAL, VAL_NOISE};
use crate::data::provenance::FOUR_TEXTS;

#[test]
fn gpt_matches_pytorchs_loss_in_half_its_time() {
    let (val, secs) = (TORCH_VAL + VAL_NOISE, TORCH_S * TIME_FRACTION);
    let gpt = |v: f64, s: f64| by_name(vec![("gpt", run("shakespeare", &[("val_loss", v)]).wall(s))]);
    both("gpt", gpt(val, secs), gpt(val + 1e-3, secs));
    fails("gpt", vec![gpt(val, secs + 0.1)]);
}

#[test]
fn the_ladders_loss_falls_with_size() {
    let ladder = |m: f64| {
        let r = |p: usize, l: f64| run("shakespeare", &[("val_loss", l)]).params(p);
        by_name(vec![("gpt-xs", r(10_000, 2.0)), ("gpt-s", r(100_000, 1.9)), ("gpt-m", r(1_000_000, m))])
    };
    // the reported value is the exponent: a ladder whose loss rises overall has one ≤ 0
    both("gpt-xs", ladder(1.899), ladder(2.2));
    // the largest must end below the middle one, not level with it, whatever the exponent
    fails("gpt-xs", vec![ladder(1.9)]);
}

/// The gpt base on shakespeare; lora and full fine-tuning on sotu with their val loss and
/// trainable parameters.
fn lora(lv: f64, lora_params: usize) -> Fake {
    Fake::new(move |name, sets| match name {
        "gpt" => run("shakespeare", &[("val_loss", 1.9)]),
        _ => {
            assert!(set(sets, "train.init_from").is_some_and(|d| d.ends_with("-gpt")), "{sets:?}");
            let (v, p) = if name == "lora" { (lv, lora_params) } else { (1.0, 1000) };
            run("sotu", &[("val_loss", v)]).params(p)
        }
    })
}

#[test]
fn lora_reaches_full_fine_tunings_loss_with_under_2_percent_of_its_parameters() {
    both("lora", lora(1.05, 19), lora(1.0501, 19));
    fails("lora", vec![lora(1.0, 20)]);
}

/// transformer and attention: test BLEU and update time in ms (10 updates per epoch).
fn encdec(bt: f64, ms_t: f64) -> Fake {
    let r =
        |b: f64, ms: f64| run("verses", &[("test_bleu", b), ("test_bleu_long", b), ("val_loss", 3.0)]).update_ms(ms);
    by_name(vec![("transformer", r(bt, ms_t)), ("attention", r(10.0, 50.0))])
}

#[test]
fn the_transformer_scores_higher_bleu_and_trains_an_epoch_faster() {
    let gain = crate::claims::encdec::BLEU_GAIN;
    both("transformer", encdec(10.0 + gain, 49.9), encdec(10.0 + gain - 1e-3, 49.9));
    fails("transformer", vec![encdec(20.0, 50.0)]);
}

/// The encoders' provenance task: test accuracy of fine-tuning `name` from its pretraining
/// (`pre`), from scratch (`scratch`), for bert and roberta.
fn texts(bert: f64, scratch: f64, roberta: f64) -> Fake {
    Fake::new(move |name, sets| {
        if name.ends_with("-pretrain") {
            return run(FOUR_TEXTS, &[("val_mlm_loss", 5.0), ("val_mlm_acc", 0.1), ("val_nsp_acc", 0.6)]);
        }
        let init = set(sets, "train.init_from").expect("an init_from");
        let acc = match (name, init) {
            ("bert", "") => scratch,
            ("bert", d) if d.ends_with("-bert-pretrain") => bert,
            ("roberta", d) if d.ends_with("-roberta-pretrain") => roberta,
            other => panic!("unexpected run {other:?}"),
        };
        run(FOUR_TEXTS, &[("test_acc", acc)])
    })
}

#[test]
fn pretraining_beats_scratch_by_the_margin_and_roberta_reaches_bert() {
    let gain = crate::claims::encoders::PRETRAIN_GAIN;
    both("bert", texts(0.9, 0.9 - gain - 1e-3, 0.9), texts(0.9, 0.9 - gain + 1e-3, 0.9));
    both("roberta", texts(0.9, 0.5, 0.9), texts(0.9, 0.5, 0.899));
}

/// lenet and vit at 1,000 images and at all: (lenet, vit) test accuracy at each.
fn vit(small: (f64, f64), large: (f64, f64)) -> Fake {
    Fake::new(move |name, sets| {
        let (l, v) = if set(sets, "data.train_size") == Some("1000") { small } else { large };
        run("mnist", &[("test_acc", if name == "lenet" { l } else { v })])
    })
}

#[test]
fn vit_trails_lenet_with_little_data_and_closes_half_the_gap_with_all() {
    // small gap 0.04: the large gap may be at most 0.02
    both("vit", vit((0.94, 0.90), (0.99, 0.971)), vit((0.94, 0.90), (0.99, 0.969)));
    fails("vit", vec![vit((0.94, 0.911), (0.99, 0.99))]);
}
