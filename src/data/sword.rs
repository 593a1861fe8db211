//! SWORD zText Bible modules, read without libsword (the format is below), and the
//! cleaning of their OSIS markup into plain text.
//!
//! A testament `t` (`ot` or `nt`) of a module folder is three files:
//! - `t.bzs`: 12-byte little-endian records `(offset u32, size u32, uncompressed_size u32)`, one
//!   per zlib-compressed block of `t.bzz`;
//! - `t.bzv`: 10-byte little-endian records `(block u32, offset u32, size u16)`, one per verse slot
//!   of the versification; a slot's text is `inflate(block)[offset .. offset + size]`.
//!
//! Slots include empty ones (testament, book and chapter headings), so two modules with the
//! same versification align slot by slot.

use crate::error::DlError;
use flate2::read::ZlibDecoder;
use std::io::Read;
use std::path::Path;

fn bad(path: &Path, message: String) -> DlError {
    DlError::Data(format!(
        "{} is not a valid SWORD zText file: {message}. Re-fetch it with `make data`",
        path.display()
    ))
}

fn read_file(path: &Path) -> Result<Vec<u8>, DlError> {
    std::fs::read(path).map_err(|e| DlError::Data(format!("cannot read {}: {e}. Run `make data`", path.display())))
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(b[i..i + 4].try_into().unwrap())
}

/// The raw OSIS text of every verse slot of testament `t` in `module_dir`, in slot order
/// (empty strings for empty slots).
pub fn read_testament(module_dir: &Path, t: &str) -> Result<Vec<String>, DlError> {
    let (bzs_path, bzv_path, bzz_path) =
        (module_dir.join(format!("{t}.bzs")), module_dir.join(format!("{t}.bzv")), module_dir.join(format!("{t}.bzz")));
    let (bzs, bzv, bzz) = (read_file(&bzs_path)?, read_file(&bzv_path)?, read_file(&bzz_path)?);
    if bzs.len() % 12 != 0 {
        return Err(bad(&bzs_path, format!("length {} is not a multiple of 12", bzs.len())));
    }
    if bzv.len() % 10 != 0 {
        return Err(bad(&bzv_path, format!("length {} is not a multiple of 10", bzv.len())));
    }
    // Inflate every block once: a testament is a few dozen blocks of < 1 MB.
    let mut blocks = Vec::with_capacity(bzs.len() / 12);
    for (k, rec) in bzs.chunks_exact(12).enumerate() {
        let (off, size, usize_) = (u32_at(rec, 0) as usize, u32_at(rec, 4) as usize, u32_at(rec, 8) as usize);
        let raw = bzz.get(off..off + size).ok_or_else(|| {
            bad(&bzz_path, format!("block {k} at {off}+{size} lies past the end ({} bytes)", bzz.len()))
        })?;
        let mut out = Vec::with_capacity(usize_);
        ZlibDecoder::new(raw)
            .read_to_end(&mut out)
            .map_err(|e| bad(&bzz_path, format!("block {k} does not inflate: {e}")))?;
        if out.len() != usize_ {
            return Err(bad(&bzz_path, format!("block {k} inflates to {} bytes, index says {usize_}", out.len())));
        }
        blocks.push(out);
    }
    let mut verses = Vec::with_capacity(bzv.len() / 10);
    for (i, rec) in bzv.chunks_exact(10).enumerate() {
        let (block, off, size) =
            (u32_at(rec, 0) as usize, u32_at(rec, 4) as usize, u16::from_le_bytes([rec[8], rec[9]]) as usize);
        if size == 0 {
            verses.push(String::new());
            continue;
        }
        let bytes = blocks.get(block).and_then(|b| b.get(off..off + size)).ok_or_else(|| {
            bad(&bzv_path, format!("slot {i} points at block {block} {off}+{size}, outside the data"))
        })?;
        let text = std::str::from_utf8(bytes).map_err(|e| bad(&bzz_path, format!("slot {i} is not UTF-8: {e}")))?;
        verses.push(text.to_string());
    }
    Ok(verses)
}

/// Elements dropped with their content: footnotes and headings are not part of the verse.
const DROP_WITH_CONTENT: &[&str] = &["note", "title"];
/// Elements that separate words (line, paragraph, poetry structure); every other tag is inline
/// (`<w>`, `<transChange>` can split a word: `give</w>n`), so it is removed without a space.
const BLOCK: &[&str] = &["l", "lb", "lg", "p", "div", "chapter", "milestone", "br"];

/// Plain text of OSIS markup: `<note>`/`<title>` elements dropped with their content, other
/// tags dropped keeping their text, entities unescaped, whitespace folded to single spaces.
pub fn clean_osis(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut skip = 0usize; // depth inside dropped elements
    let mut rest = s;
    while let Some(lt) = rest.find('<') {
        if skip == 0 {
            out.push_str(&rest[..lt]);
        }
        let Some(gt) = rest[lt..].find('>') else {
            // an unterminated `<`: keep it as text rather than lose the rest of the verse
            if skip == 0 {
                out.push_str(&rest[lt..]);
            }
            rest = "";
            break;
        };
        let tag = &rest[lt + 1..lt + gt];
        rest = &rest[lt + gt + 1..];
        let closing = tag.starts_with('/');
        let self_closing = tag.ends_with('/');
        let name: String = tag.trim_start_matches('/').chars().take_while(|c| c.is_alphanumeric()).collect();
        if DROP_WITH_CONTENT.contains(&name.as_str()) && !self_closing {
            if closing {
                skip = skip.saturating_sub(1);
            } else {
                skip += 1;
            }
        } else if skip == 0 && BLOCK.contains(&name.as_str()) {
            out.push(' ');
        }
    }
    if skip == 0 {
        out.push_str(rest);
    }
    unescape(&out).split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Replaces `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;`, `&nbsp;` and numeric `&#N;`/`&#xH;`
/// references; anything else that starts with `&` is kept as written.
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').filter(|&semi| semi <= 10).and_then(|semi| {
            let c = match &rest[1..semi] {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                e if e.starts_with("#x") || e.starts_with("#X") => {
                    u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32)
                }
                e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
                _ => None,
            };
            c.map(|c| (c, semi))
        });
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_real_looking_osis_markup() {
        // Gen 1:4 of the KJV module, abridged: strong's-number words, an added word, a footnote.
        let kjv = "And <w lemma=\"strong:H0430\">God</w> <w lemma=\"strong:H7200\">saw</w> the light, \
                   <transChange type=\"added\">it was</transChange> good.<note placement=\"foot\">\
                   <reference type=\"annotateRef\">1.4 </reference>the light from…: Heb. between</note> ";
        assert_eq!(clean_osis(kjv), "And God saw the light, it was good.");
        // preverse heading, paragraph milestones and a title with its text
        let heading = "<div type=\"x-milestone\" subType=\"x-preverse\" sID=\"pv1\"/><div sID=\"gen4\" type=\"x-p\"/>\
                       <title type=\"psalm\">A Psalm of <w>David</w>.</title> <div eID=\"pv1\"/>And \
                       <divineName><w>LORD</w></divineName> said";
        assert_eq!(clean_osis(heading), "And LORD said");
        // a word split by inline tags stays one word; a line break separates words
        assert_eq!(clean_osis("<w>shall more be give</w>n.<lb/>Next<l>line</l>"), "shall more be given. Next line");
        // Spanish accents and inverted punctuation survive; entities are unescaped
        assert_eq!(
            clean_osis("¿<w>Quién</w> como tú, &amp; &#233;l &#xe9;l&nbsp;&lt;x&gt; &bogus;"),
            "¿Quién como tú, & él él <x> &bogus;"
        );
        // nested notes and self-closing titles
        assert_eq!(clean_osis("a<note>b<note>c</note>d</note> e<title/> f"), "a e f");
        assert_eq!(clean_osis("  \n "), "");
    }
}
