//! What word vectors are judged by: nearest neighbours by cosine, and the analogy test of
//! Mikolov, Chen, Corrado & Dean 2013 answered by vector arithmetic (3CosAdd).

use crate::data::analogy::Questions;
use crate::data::words::WordVocab;
use candle_core::{Device, Result, Tensor};

/// The rows of `e` (V, D) scaled to unit length; all-zero rows stay zero.
pub fn unit_rows(e: &[f32], d: usize) -> Vec<f32> {
    let mut u = e.to_vec();
    for row in u.chunks_exact_mut(d) {
        let n = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        if n > 0.0 {
            row.iter_mut().for_each(|x| *x /= n);
        }
    }
    u
}

/// Σ sign · unit[id] over `terms` (e.g. king − man + woman as [(1, king), (−1, man), (1, woman)]).
pub fn combine(unit: &[f32], d: usize, terms: &[(f32, u32)]) -> Vec<f32> {
    let mut q = vec![0f32; d];
    for &(s, id) in terms {
        for (a, x) in q.iter_mut().zip(&unit[id as usize * d..][..d]) {
            *a += s * x;
        }
    }
    q
}

/// The `k` rows most similar to `query` by cosine (rows of `unit` have unit length), most similar
/// first, leaving out the ids in `exclude`.
pub fn nearest(unit: &[f32], d: usize, query: &[f32], exclude: &[u32], k: usize) -> Vec<(u32, f32)> {
    let qn = query.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    let mut scored: Vec<(u32, f32)> = unit
        .chunks_exact(d)
        .enumerate()
        .filter(|(i, _)| !exclude.contains(&(*i as u32)))
        .map(|(i, row)| (i as u32, row.iter().zip(query).map(|(a, b)| a * b).sum::<f32>() / qn))
        .collect();
    scored.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(k);
    scored
}

/// 3CosAdd (Mikolov et al. 2013a; the name is Levy & Goldberg's 2014): the answer to
/// a : b :: c : ? is the word x ∉ {a, b, c} most similar by cosine to b − a + c (unit vectors).
/// The question words are excluded, as in the paper's evaluation, since b − a + c is usually
/// nearest to b or c themselves.
pub fn analogy(unit: &[f32], d: usize, [a, b, c]: [u32; 3], k: usize) -> Vec<(u32, f32)> {
    nearest(unit, d, &combine(unit, d, &[(-1.0, a), (1.0, b), (1.0, c)]), &[a, b, c], k)
}

/// Analogy accuracy over the questions whose four words are all in the vocabulary.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnalogyScore {
    /// all questions, and those in the vocabulary
    pub total: usize,
    pub asked: usize,
    pub correct: usize,
    /// (asked, correct) of the semantic and syntactic sections
    pub semantic: (usize, usize),
    pub syntactic: (usize, usize),
}

impl AnalogyScore {
    pub fn acc(&self) -> f64 {
        ratio(self.correct, self.asked)
    }
    pub fn coverage(&self) -> f64 {
        ratio(self.asked, self.total)
    }
}

pub fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Questions answered per matrix product: (CHUNK, D) × (D, V) scores at a time.
const CHUNK: usize = 256;

/// Scores every in-vocabulary question with 3CosAdd (see [`analogy`]); the same answers, many
/// questions per matrix product.
pub fn score(unit: &[f32], d: usize, vocab: &WordVocab, qs: &Questions) -> Result<AnalogyScore> {
    let v = vocab.len();
    let mut s = AnalogyScore { total: qs.items.len(), ..Default::default() };
    let asked: Vec<([u32; 4], bool)> = qs
        .items
        .iter()
        .filter_map(|q| {
            let ids: Option<Vec<u32>> = q.words.iter().map(|w| vocab.id(w)).collect();
            Some((ids?.try_into().ok()?, qs.is_semantic(q)))
        })
        .collect();
    let table = Tensor::from_slice(unit, (v, d), &Device::Cpu)?.t()?; // (D, V)
    for chunk in asked.chunks(CHUNK) {
        let q: Vec<f32> =
            chunk.iter().flat_map(|([a, b, c, _], _)| combine(unit, d, &[(-1.0, *a), (1.0, *b), (1.0, *c)])).collect();
        let sims = Tensor::from_vec(q, (chunk.len(), d), &Device::Cpu)?.matmul(&table)?; // (n, V)
        let sims = sims.flatten_all()?.to_vec1::<f32>()?;
        for (([a, b, c, want], sem), row) in chunk.iter().zip(sims.chunks_exact(v)) {
            let best = (0..v as u32)
                .filter(|i| ![*a, *b, *c].contains(i))
                .max_by(|&x, &y| row[x as usize].total_cmp(&row[y as usize]).then(y.cmp(&x)));
            let hit = best == Some(*want);
            s.asked += 1;
            s.correct += hit as usize;
            let part = if *sem { &mut s.semantic } else { &mut s.syntactic };
            part.0 += 1;
            part.1 += hit as usize;
        }
    }
    Ok(s)
}

/// "king - man + woman" -> [(1, "king"), (−1, "man"), (1, "woman")]; "liberty" -> [(1, "liberty")].
/// Words are lowercased; a leading term without a sign is added.
pub fn parse_expression(s: &str) -> Vec<(f32, String)> {
    let mut out = vec![];
    let mut sign = 1.0;
    for part in s.replace('+', " + ").replace('-', " - ").split_whitespace() {
        match part {
            "+" => sign = 1.0,
            "-" => sign = -1.0,
            w => {
                out.push((sign, w.to_lowercase()));
                sign = 1.0;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::analogy::parse;

    /// A hand-made embedding with axes (royal, male, female, fruit): king = royal + male,
    /// queen = royal + female, man = male, woman = female, apple = fruit, prince = royal +
    /// 0.1·male (king's nearest neighbour, and the word that tests the exclusion).
    fn toy() -> (Vec<String>, Vec<f32>) {
        let words = ["king", "queen", "man", "woman", "apple", "prince"];
        #[rustfmt::skip]
        let e = vec![
            1.0, 1.0, 0.0, 0.0,
            1.0, 0.0, 1.0, 0.0,
            0.0, 1.0, 0.0, 0.0,
            0.0, 0.0, 1.0, 0.0,
            0.0, 0.0, 0.0, 1.0,
            1.0, 0.1, 0.0, 0.0,
        ];
        (words.iter().map(|w| w.to_string()).collect(), e)
    }

    #[test]
    fn king_minus_man_plus_woman_is_queen() {
        let (_, e) = toy();
        let u = unit_rows(&e, 4);
        let top = analogy(&u, 4, [2, 0, 3], 2); // man : king :: woman : ?
        assert_eq!(top[0].0, 1);
        // b − a + c = (0.71, 0.71 − 1, 1, 0) for unit king, man, woman; cos with queen ≈ 0.97
        assert!(top[0].1 > 0.95 && top[1].1 < top[0].1, "{top:?}");
        // the question words never answer: man : prince :: man : ? is prince itself, excluded
        let top = analogy(&u, 4, [2, 5, 2], 1);
        assert_eq!(top[0].0, 0, "{top:?}");
        let nn = nearest(&u, 4, &combine(&u, 4, &[(1.0, 0)]), &[0], 1);
        assert_eq!(nn[0].0, 5); // king's nearest is prince
    }

    #[test]
    fn batched_score_counts_only_in_vocabulary_questions() {
        let (words, e) = toy();
        let tokens: Vec<&str> = words.iter().map(String::as_str).collect();
        let vocab = WordVocab::build(&tokens, 1); // all count 1: alphabetical ids
        let mut table = vec![0f32; e.len()];
        for (i, w) in words.iter().enumerate() {
            let id = vocab.id(w).unwrap() as usize;
            table[id * 4..][..4].copy_from_slice(&e[i * 4..][..4]);
        }
        let qs = parse(": family\nman king woman queen\nman king woman prince\n: gram1\nman king woman pear\n", "t")
            .unwrap();
        let s = score(&unit_rows(&table, 4), 4, &vocab, &qs).unwrap();
        assert_eq!(s, AnalogyScore { total: 3, asked: 2, correct: 1, semantic: (2, 1), syntactic: (0, 0) });
        assert_eq!((s.acc(), s.coverage()), (0.5, 2.0 / 3.0));
    }

    #[test]
    fn expressions_parse_signs() {
        assert_eq!(
            parse_expression("King - man + woman"),
            [(1.0, "king".into()), (-1.0, "man".into()), (1.0, "woman".into())]
        );
        assert_eq!(parse_expression("paris-france+italy").len(), 3);
        assert_eq!(parse_expression("liberty"), [(1.0, "liberty".to_string())]);
    }
}
