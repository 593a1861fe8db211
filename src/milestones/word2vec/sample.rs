//! `dlhist sample word2vec`: `--prompt "king - man + woman"` answers by vector arithmetic,
//! `--prompt liberty` lists nearest neighbours, no prompt shows the probe words' neighbours
//! (and the phrases found, for phrase2vec). `--n` is the number of answers.

use super::eval::{combine, nearest, parse_expression};
use super::Word2Vec;
use crate::error::DlError;
use crate::experiment::{SampleOut, SampleRequest};

/// One answer list as text lines and JSON.
fn block(w: &Word2Vec, title: &str, top: &[(u32, f32)]) -> (String, serde_json::Value) {
    let words = &w.corpus.vocab.words;
    let mut text = format!("{title}\n");
    for (id, cos) in top {
        text.push_str(&format!("  {:<24} {cos:.3}\n", words[*id as usize]));
    }
    let items: Vec<_> =
        top.iter().map(|(id, c)| serde_json::json!({"word": words[*id as usize], "cosine": c})).collect();
    (text, serde_json::json!({"query": title, "answers": items}))
}

pub fn sample(w: &mut Word2Vec, req: &SampleRequest) -> anyhow::Result<SampleOut> {
    let (d, k) = (w.cfg.model.dim, req.n_at_most(10, 50, "that many nearest words are listed per query"));
    let unit = w.unit_vectors()?;
    let mut blocks = vec![];
    match req.prompt.as_deref() {
        Some(p) => {
            let terms = parse_expression(p);
            if terms.is_empty() {
                return Err(DlError::Usage(format!(
                    "the prompt {p:?} has no words; try --prompt liberty or --prompt \"king - man + woman\""
                ))
                .into());
            }
            let mut ids = vec![];
            for (s, word) in &terms {
                ids.push((*s, w.corpus.vocab.require(word)?));
            }
            let exclude: Vec<u32> = ids.iter().map(|t| t.1).collect();
            let top = nearest(&unit, d, &combine(&unit, d, &ids), &exclude, k);
            let title = if terms.len() == 1 {
                format!("nearest to {} (cosine):", terms[0].1)
            } else {
                let expr: Vec<String> =
                    terms.iter().enumerate().map(|(i, (s, t))| format!("{}{t}", sign(i, *s))).collect();
                format!("{} ≈ (3CosAdd, cosine):", expr.join(" "))
            };
            blocks.push(block(w, &title, &top));
        }
        None => {
            for p in &w.cfg.data.probes {
                if let Some(id) = w.corpus.vocab.id(p) {
                    let top = nearest(&unit, d, &unit[id as usize * d..][..d], &[id], k);
                    blocks.push(block(w, &format!("nearest to {p} (cosine):"), &top));
                }
            }
            if !w.corpus.phrases.is_empty() {
                let shown: Vec<&str> = w.corpus.phrases.iter().take(20).map(String::as_str).collect();
                let text = format!("{} phrases found, most frequent: {}\n", w.corpus.phrases.len(), shown.join(" "));
                blocks.push((text, serde_json::json!({"phrases": shown})));
            }
        }
    }
    let text = blocks.iter().map(|b| b.0.as_str()).collect::<Vec<_>>().join("");
    let json =
        serde_json::json!({"data": w.corpus.name, "results": blocks.into_iter().map(|b| b.1).collect::<Vec<_>>()});
    Ok(SampleOut::new(text, json))
}

fn sign(i: usize, s: f32) -> &'static str {
    match (i, s < 0.0) {
        (0, false) => "",
        (_, false) => "+ ",
        (_, true) => "- ",
    }
}

#[cfg(test)]
mod tests {
    use super::super::{defaults, Word2Vec};
    use super::sample;
    use crate::experiment::SampleRequest;
    use candle_core::Device;

    /// An untrained model on moby: the arithmetic answers with n words other than the question's;
    /// an unknown word is an error that names it and the closest known word.
    #[test]
    fn prompts_answer_or_name_the_unknown_word() {
        let mut c = defaults();
        c.data.text = "moby".into();
        c.model.dim = 8;
        let mut w = Word2Vec::new(c, &Device::Cpu).unwrap();
        let req = |p: &str| SampleRequest {
            n: Some(3),
            prompt: Some(p.into()),
            temperature: Some(1.0),
            ..Default::default()
        };
        let out = sample(&mut w, &req("King - man + woman")).unwrap();
        assert!(out.text.starts_with("king - man + woman ≈") && out.text.lines().count() == 4, "{}", out.text);
        let answers = out.json["results"][0]["answers"].as_array().unwrap().clone();
        assert!(answers.iter().all(|a| !["king", "man", "woman"].contains(&a["word"].as_str().unwrap())));
        let err = sample(&mut w, &req("king - man + womann")).err().expect("an unknown word is an error").to_string();
        assert!(err.contains("`womann`") && err.contains("did you mean `woman`"), "{err}");
        assert!(sample(&mut w, &req(" - ")).is_err());
        let out = sample(&mut w, &req("whale")).unwrap();
        assert!(out.text.starts_with("nearest to whale"), "{}", out.text);
    }
}
