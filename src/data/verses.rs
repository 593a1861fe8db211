//! The English–Spanish verse pairs of the translation milestones: the KJV (engKJV2006eb) and
//! the Reina-Valera 1909 (spaRV1909eb) SWORD modules, aligned verse by verse (both use the KJV
//! versification), plus the tokenizer, the length filter and the fixed train/val/test split.

use super::catalog::fetched_dir;
use super::sword::{clean_osis, read_testament};
use crate::error::DlError;
use crate::rng::Rng;
use std::path::Path;

pub const ENGLISH: &str = "engKJV2006eb";
pub const SPANISH: &str = "spaRV1909eb";
pub const TESTAMENTS: [&str; 2] = ["ot", "nt"];
/// Pairs with both sides non-empty in the fetched modules (measured).
pub const FULL_PAIRS: usize = 31_084;

/// (english, spanish), plain text.
pub type Pair = (String, String);

/// All aligned pairs from the fetched modules, Genesis to Revelation.
pub fn load() -> Result<Vec<Pair>, DlError> {
    load_from(&fetched_dir().join("verses"))
}

/// All aligned pairs from `dir/{ENGLISH,SPANISH}/{ot,nt}.{bzs,bzv,bzz}`, in slot order; a slot
/// is kept when both cleaned sides are non-empty.
pub fn load_from(dir: &Path) -> Result<Vec<Pair>, DlError> {
    let mut pairs = Vec::new();
    for t in TESTAMENTS {
        let en = read_testament(&dir.join(ENGLISH), t)?;
        let es = read_testament(&dir.join(SPANISH), t)?;
        if en.len() != es.len() {
            return Err(DlError::Data(format!(
                "{t}: {ENGLISH} has {} verse slots but {SPANISH} has {}; both must use the KJV versification. \
                 Re-fetch them with `make data`",
                en.len(),
                es.len()
            )));
        }
        for (a, b) in en.iter().zip(&es) {
            let (a, b) = (clean_osis(a), clean_osis(b));
            if !a.is_empty() && !b.is_empty() {
                pairs.push((a, b));
            }
        }
    }
    Ok(pairs)
}

/// Tokens for translation: lowercased, a word is a run of letters/digits (accents kept, `é` is a
/// letter), every other non-space character is a token of its own (`¿`, `,`, `'`).
/// "¿Quién es?" -> ["¿", "quién", "es", "?"].
pub fn tokenize(s: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in s.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            tokens.push(std::mem::take(&mut word));
        }
        if !c.is_whitespace() {
            tokens.push(c.to_string());
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    tokens
}

/// Pairs whose both sides have at most `max_words` whitespace-separated words. With the full
/// data, 16 keeps 6,631 pairs (the English side alone would keep 7,134) and 12 keeps 2,302.
pub fn filter_by_length(pairs: Vec<Pair>, max_words: usize) -> Vec<Pair> {
    let short = |s: &str| s.split_whitespace().count() <= max_words;
    pairs.into_iter().filter(|(a, b)| short(a) && short(b)).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Train,
    Val,
    Test,
}

/// Which part a pair belongs to: 90% train, 5% val, 5% test, decided by a hash of the English
/// text alone. So a verse stays in its part whatever the length filter or the run's seed, and
/// verses with identical English (repeated refrains) never straddle train and test.
pub fn part_of(english: &str) -> Part {
    match Rng::derive(0x007e_55e5, english, 0).below(100) {
        0..=4 => Part::Test,
        5..=9 => Part::Val,
        _ => Part::Train,
    }
}

pub struct VerseSplits {
    pub train: Vec<Pair>,
    pub val: Vec<Pair>,
    pub test: Vec<Pair>,
}

/// Splits by `part_of`, keeping the input order within each part.
pub fn split(pairs: Vec<Pair>) -> VerseSplits {
    let mut s = VerseSplits { train: vec![], val: vec![], test: vec![] };
    for p in pairs {
        match part_of(&p.0) {
            Part::Train => s.train.push(p),
            Part::Val => s.val.push(p),
            Part::Test => s.test.push(p),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::catalog;
    use flate2::{write::ZlibEncoder, Compression};
    use std::io::Write;

    /// Writes one testament of a zText module holding `slots`, `per_block` slots per zlib block.
    fn write_testament(dir: &Path, t: &str, slots: &[&str], per_block: usize) {
        std::fs::create_dir_all(dir).unwrap();
        let (mut bzs, mut bzv, mut bzz) = (vec![], vec![], vec![]);
        for (k, chunk) in slots.chunks(per_block).enumerate() {
            let mut block = Vec::new();
            for s in chunk {
                bzv.extend((k as u32).to_le_bytes());
                bzv.extend((block.len() as u32).to_le_bytes());
                bzv.extend((s.len() as u16).to_le_bytes());
                block.extend(s.as_bytes());
            }
            let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
            z.write_all(&block).unwrap();
            let z = z.finish().unwrap();
            for v in [bzz.len(), z.len(), block.len()] {
                bzs.extend((v as u32).to_le_bytes());
            }
            bzz.extend(z);
        }
        for (ext, bytes) in [("bzs", bzs), ("bzv", bzv), ("bzz", bzz)] {
            std::fs::write(dir.join(format!("{t}.{ext}")), bytes).unwrap();
        }
    }

    fn write_modules(root: &Path, en: [&[&str]; 2], es: [&[&str]; 2]) {
        for (i, t) in TESTAMENTS.iter().enumerate() {
            write_testament(&root.join(ENGLISH), t, en[i], 2);
            write_testament(&root.join(SPANISH), t, es[i], 3);
        }
    }

    #[test]
    fn parses_a_synthetic_module_keeping_aligned_non_empty_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let en_ot: &[&str] =
            &["", "<title>Genesis</title>", "In the <w>beginning</w>.", "Only English", "Let there be light"];
        let es_ot: &[&str] = &["", "<title>Génesis</title>", "EN el <w>principio</w>.", "", "Sea la luz<note>n</note>"];
        let (en_nt, es_nt): (&[&str], &[&str]) = (&["", "Jesus wept."], &["", "Y lloró Jesús."]);
        write_modules(dir.path(), [en_ot, en_nt], [es_ot, es_nt]);
        let pairs = load_from(dir.path()).unwrap();
        let want = [
            ("In the beginning.", "EN el principio."),
            ("Let there be light", "Sea la luz"),
            ("Jesus wept.", "Y lloró Jesús."),
        ];
        assert_eq!(pairs, want.map(|(a, b)| (a.to_string(), b.to_string())));
    }

    #[test]
    fn a_missing_corrupt_or_misaligned_module_is_an_error_that_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_from(dir.path()).unwrap_err().to_string();
        assert!(err.contains("make data"), "{err}");
        let a: &[&str] = &["a", "b"];
        write_modules(dir.path(), [a, a], [a, &["a"]]);
        let err = load_from(dir.path()).unwrap_err().to_string();
        assert!(err.contains("versification"), "{err}");
        write_modules(dir.path(), [a, a], [a, a]);
        assert_eq!(load_from(dir.path()).unwrap().len(), 4);
        let bzz = dir.path().join(SPANISH).join("nt.bzz");
        let bytes = std::fs::read(&bzz).unwrap();
        std::fs::write(&bzz, &bytes[..bytes.len() - 3]).unwrap();
        let err = load_from(dir.path()).unwrap_err().to_string();
        assert!(err.contains("nt.bzz") && err.contains("make data"), "{err}");
    }

    #[test]
    fn tokenizer_splits_punctuation_and_keeps_accents() {
        assert_eq!(tokenize("¿Quién como tú, Jehová?"), ["¿", "quién", "como", "tú", ",", "jehová", "?"]);
        assert_eq!(tokenize("The LORD's  hand;\tÉl"), ["the", "lord", "'", "s", "hand", ";", "él"]);
        assert!(tokenize("  ").is_empty());
    }

    #[test]
    fn length_filter_and_split_are_fixed() {
        let p = |a: &str, b: &str| (a.to_string(), b.to_string());
        let pairs = vec![p("a b c", "x y"), p("a b", "x y z w"), p("a", "x")];
        assert_eq!(filter_by_length(pairs.clone(), 3), vec![p("a b c", "x y"), p("a", "x")]);
        // the split depends on the English text only, so filtering does not move a verse
        let many: Vec<Pair> = (0..2000).map(|i| p(&format!("verse {i}"), "v")).collect();
        let s = split(many.clone());
        assert_eq!(s.train.len() + s.val.len() + s.test.len(), 2000);
        assert!(
            (60..140).contains(&s.val.len()) && (60..140).contains(&s.test.len()),
            "{} {}",
            s.val.len(),
            s.test.len()
        );
        let s2 = split(many.into_iter().step_by(2).collect());
        assert!(s2.test.iter().all(|x| s.test.contains(x)));
    }

    #[test]
    fn the_fetched_modules_give_31084_pairs() {
        if !catalog::present("verses") {
            eprintln!("skipped: verses are not in {} (set DLHIST_DATA or run `make data`)", fetched_dir().display());
            return;
        }
        let pairs = load().unwrap();
        assert_eq!(pairs.len(), FULL_PAIRS);
        assert_eq!(pairs[0].0, "In the beginning God created the heaven and the earth.");
        assert_eq!(pairs[0].1, "EN el principio crió Dios los cielos y la tierra.");
        assert!(pairs.iter().all(|(a, b)| !a.contains('<') && !b.contains('<')));
        assert_eq!(filter_by_length(pairs, 16).len(), 6_631);
    }
}
