//! The word-analogy questions of Mikolov, Chen, Corrado & Dean 2013 (questions-words.txt,
//! fetched by `make data` into analogy/): 19,544 lines `a b c d` meaning "a is to b as c is to
//! d", in 14 sections headed `: name`. The first five (capitals, currency, city-in-state,
//! family) are the paper's semantic questions; the `gram*` sections are its syntactic ones.

use super::catalog::{fetched_dir, present};
use crate::error::DlError;

/// One question a : b :: c : d, lowercased, with the index of its section.
#[derive(Clone, Debug, PartialEq)]
pub struct Question {
    pub words: [String; 4],
    pub section: usize,
}

#[derive(Clone, Debug, Default)]
pub struct Questions {
    /// section names, e.g. "capital-common-countries", "gram1-adjective-to-adverb"
    pub sections: Vec<String>,
    pub items: Vec<Question>,
}

impl Questions {
    /// Mikolov's split: sections named `gram…` are syntactic, the rest semantic.
    pub fn is_semantic(&self, q: &Question) -> bool {
        !self.sections[q.section].starts_with("gram")
    }
}

/// Parses the questions-words format; `origin` names the source in errors.
pub fn parse(text: &str, origin: &str) -> Result<Questions, DlError> {
    let mut qs = Questions::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix(':') {
            qs.sections.push(name.trim().to_string());
            continue;
        }
        let w: Vec<String> = line.split_whitespace().map(str::to_lowercase).collect();
        let bad = |message: String| DlError::Malformed { what: "analogy questions", path: origin.into(), message };
        if qs.sections.is_empty() {
            return Err(bad(format!("line {}: a question before the first `: section` line", n + 1)));
        }
        let words: [String; 4] =
            w.try_into().map_err(|w: Vec<String>| bad(format!("line {}: {} words, expected 4", n + 1, w.len())))?;
        qs.items.push(Question { words, section: qs.sections.len() - 1 });
    }
    Ok(qs)
}

/// The fetched questions, or `None` when `make data` has not fetched them.
pub fn load() -> Result<Option<Questions>, DlError> {
    if !present("analogy") {
        return Ok(None);
    }
    let path = fetched_dir().join("analogy/questions-words.txt");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| DlError::Data(format!("cannot read {}: {e}. Re-fetch it with `make data`", path.display())))?;
    parse(&text, &path.display().to_string()).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_and_lowercases() {
        let q = parse(": capital-common-countries\nAthens Greece Baghdad Iraq\n\n: gram2-opposite\nacceptable unacceptable aware unaware\n", "t").unwrap();
        assert_eq!(q.sections, ["capital-common-countries", "gram2-opposite"]);
        assert_eq!(q.items[0].words, ["athens", "greece", "baghdad", "iraq"]);
        assert!(q.is_semantic(&q.items[0]) && !q.is_semantic(&q.items[1]));
        assert!(parse("a b c d\n", "t").unwrap_err().to_string().contains("before the first"));
        assert!(parse(": s\na b c\n", "t").unwrap_err().to_string().contains("3 words"));
    }

    /// The fetched file, when present: Mikolov et al. 2013 report 8,869 semantic and 10,675
    /// syntactic questions in 14 sections.
    #[test]
    fn fetched_file_has_the_papers_counts() {
        let Some(q) = load().unwrap() else { return };
        assert_eq!(q.sections.len(), 14);
        let sem = q.items.iter().filter(|x| q.is_semantic(x)).count();
        assert_eq!((sem, q.items.len() - sem), (8869, 10675));
    }
}
