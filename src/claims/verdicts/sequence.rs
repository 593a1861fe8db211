//! Section 3: rnn, lstm, the forget gate, mixture of experts, word vectors, translation.

use crate::claims::fake::{both, by_name, fails, run, set, Fake};

#[test]
fn rnn_ends_at_least_1_5_bits_below_the_unigram_entropy() {
    let rnn = |bpc: f64| by_name(vec![("rnn", run("shakespeare", &[("val_bpc", bpc), ("val_unigram_bpc", 4.0)]))]);
    both("rnn", rnn(2.5), rnn(2.501));
}

/// The adding problem (test MSE of lstm and rnn, the trivial answer's 0.04) and the char-LM
/// (val bpc of lstm and rnn).
fn lstm(l_mse: f64, r_mse: f64, l_bpc: f64, r_bpc: f64) -> Fake {
    Fake::new(move |name, sets| {
        let adding = set(sets, "data.task") == Some("adding");
        let m = match (name, adding) {
            ("lstm", true) => vec![("test_mse", l_mse), ("test_acc", 0.9)],
            ("rnn", true) => vec![("test_mse", r_mse), ("test_acc", 0.1), ("test_base_mse", 0.04)],
            ("lstm", false) => vec![("val_bpc", l_bpc)],
            ("rnn", false) => vec![("val_bpc", r_bpc)],
            other => panic!("unexpected run {other:?}"),
        };
        run(if adding { "adding T=100" } else { "shakespeare" }, &m)
    })
}

#[test]
fn lstm_solves_the_adding_problem_the_rnn_does_not_and_models_text_better() {
    // lstm below 0.004 (strictly), rnn above half the trivial 0.04 (strictly), lower bpc
    both("lstm", lstm(0.0039, 0.0201, 2.0, 2.1), lstm(0.004, 0.0201, 2.0, 2.1));
    fails("lstm", vec![lstm(0.0039, 0.02, 2.0, 2.1), lstm(0.0039, 0.03, 2.1, 2.1)]);
}

/// The forget-gate study, the same string accuracy at each seed: (with the gate, without) and
/// the mean |c| at the end (with, without).
fn forget(f_acc: f64, n_acc: f64, f_c: f64, n_c: f64) -> Fake {
    Fake::new(move |name, sets| {
        assert!(set(sets, "train.seed").is_some(), "the study averages seeds");
        let (acc, c) = if name == "forget-gate" { (f_acc, f_c) } else { (n_acc, n_c) };
        let m = [("test_string_acc", acc), ("test_acc", acc), ("test_cell_abs", c), ("test_stream_len", 1e5)];
        run("reber", &m)
    })
}

#[test]
fn the_forget_gate_solves_the_continual_reber_task_and_its_absence_collapses() {
    // each name reports its own variant's accuracy: the pair of `both` moves that one
    both("forget-gate", forget(0.9, 0.5, 1.0, 9.0), forget(0.899, 0.5, 1.0, 9.0));
    fails("forget-gate", vec![forget(0.9, 0.501, 1.0, 9.0), forget(0.9, 0.5, 9.0, 9.0)]);
    both("lstm-noforget", forget(0.9, 0.5, 1.0, 9.0), forget(0.9, 0.501, 1.0, 9.0));
    fails("lstm-noforget", vec![forget(0.899, 0.5, 1.0, 9.0), forget(0.9, 0.5, 9.0, 9.0)]);
}

/// moe (balanced) and dense val loss, and the balanced run's busiest expert's load.
fn moe(lm: f64, ld: f64, load: f64) -> Fake {
    Fake::new(move |name, sets| {
        let balanced = set(sets, "model.balance") != Some("0");
        let (l, max) = match (name, balanced) {
            ("moe", true) => (lm, load),
            ("moe", false) => (lm, 5.0),
            _ => (ld, 1.0),
        };
        run("shakespeare", &[("val_loss", l), ("val_load_max", max), ("val_load_min", 0.5)])
    })
}

#[test]
fn moe_beats_dense_with_balanced_experts() {
    for name in ["moe", "dense"] {
        let (p, _) = both(name, moe(1.999, 2.0, 2.0), moe(2.0, 2.0, 2.0));
        // each reports its own side of the gap: moe's loss minus dense's, and the reverse
        let gap = if name == "moe" { 1.999 - 2.0 } else { 2.0 - 1.999 };
        assert!(p.value == gap, "`{name}`: {p:?}");
        fails(name, vec![moe(1.5, 2.0, 2.001)]);
    }
}

#[test]
fn word2vec_and_phrase2vec_on_sotu() {
    let w2v = |acc: f64| {
        let m = [
            ("test_acc", acc),
            ("test_random_acc", 0.0),
            ("test_coverage", 0.2),
            ("test_semantic_acc", acc),
            ("test_syntactic_acc", acc),
            ("test_asked", 4000.0),
        ];
        by_name(vec![("word2vec", run("sotu", &m))])
    };
    both("word2vec", w2v(0.04), w2v(0.0399));
    // phrase2vec re-reads its run's config for the phrases' names: the smoke preset's (moby)
    let entry = crate::registry::get("phrase2vec").unwrap();
    let cfg = crate::cli::common::resolve(entry, true, &Default::default()).unwrap().text;
    let p2v = move |n: f64, us: f64| {
        let r = run("sotu", &[("test_phrases", n), ("test_has_united_states", us)]).config(&cfg);
        by_name(vec![("phrase2vec", r)])
    };
    both("phrase2vec", p2v(1000.0, 1.0), p2v(999.0, 1.0));
    fails("phrase2vec", vec![p2v(5000.0, 0.0)]);
}

/// seq2seq, seq2seq-reversed and attention's test BLEU on the verses: overall (long, short).
fn bleu(s2s: f64, rev: f64, att_long: f64, att_short: f64) -> Fake {
    let r = |b: f64, long: f64, short: f64| {
        run("verses", &[("test_bleu", b), ("test_bleu_long", long), ("test_bleu_short", short), ("val_loss", 3.0)])
    };
    by_name(vec![
        ("seq2seq", r(s2s, 2.0, 4.0)),
        ("seq2seq-reversed", r(rev, 3.0, 5.0)),
        ("attention", r(9.0, att_long, att_short)),
    ])
}

#[test]
fn reversing_the_source_and_attention_raise_bleu_by_their_margins() {
    use crate::claims::translate::{LONG_GAIN, REVERSE_GAIN};
    for name in ["seq2seq", "seq2seq-reversed"] {
        // at the margin (the claim's own sum) passes, just below fails
        both(name, bleu(3.0, 3.0 + REVERSE_GAIN, 9.0, 9.0), bleu(3.0, 3.0 + REVERSE_GAIN - 1e-3, 9.0, 9.0));
    }
    // seq2seq keeps 2/4 of its short-source BLEU on long sources; attention must keep as much
    let long = 2.0 + LONG_GAIN;
    both("attention", bleu(3.0, 4.0, long, 2.0 * long), bleu(3.0, 4.0, long - 1e-3, 2.0 * long - 2e-3));
    fails("attention", vec![bleu(3.0, 4.0, long + 1.0, 2.0 * long + 2.1)]);
}
