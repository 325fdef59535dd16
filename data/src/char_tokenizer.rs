//! Character-level tokenization: one token per Unicode character of a vocabulary built from a
//! corpus (sorted by code point, so the same corpus always gives the same ids).
//!
//! Characters outside the vocabulary follow an explicit [`UnknownPolicy`]: refuse (`Error`), drop
//! (`Skip`), or map to a reserved `<unk>` id that decodes as U+FFFD (`Replace`).
//!
//! Saved as JSON: `{"format": "tinytorch-char-tokenizer", "version": 1, "unknown": "error",
//! "chars": ["\n", " ", "!", ...]}`, where `chars[i]` is the character of id `i`.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde_json::{json, Value};

use crate::error::{DataError, Result};
use crate::io::read_text;

/// Turns text into token ids and back.
pub trait Tokenizer {
    /// The ids of `text`.
    fn encode(&self, text: &str) -> Result<Vec<usize>>;
    /// The text of `ids` (an id outside the vocabulary is an error).
    fn decode(&self, ids: &[usize]) -> Result<String>;
    /// The number of distinct ids.
    fn vocab_size(&self) -> usize;
}

/// What [`CharTokenizer::encode`] does with a character that is not in the vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnknownPolicy {
    /// Return [`DataError::UnknownChar`] naming the character and its position.
    Error,
    /// Leave the character out.
    Skip,
    /// Encode it as the reserved id [`CharTokenizer::unk_id`] (the last id), decoded as U+FFFD.
    Replace,
}

impl UnknownPolicy {
    fn name(self) -> &'static str {
        match self {
            UnknownPolicy::Error => "error",
            UnknownPolicy::Skip => "skip",
            UnknownPolicy::Replace => "replace",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "error" => Some(UnknownPolicy::Error),
            "skip" => Some(UnknownPolicy::Skip),
            "replace" => Some(UnknownPolicy::Replace),
            _ => None,
        }
    }
}

/// The character decoded for the `<unk>` id.
pub const REPLACEMENT_CHAR: char = '\u{FFFD}';

const FORMAT: &str = "tinytorch-char-tokenizer";

/// One token per character of a fixed vocabulary.
#[derive(Clone, Debug, PartialEq)]
pub struct CharTokenizer {
    chars: Vec<char>,
    index: HashMap<char, usize>,
    unknown: UnknownPolicy,
}

impl CharTokenizer {
    /// The vocabulary of every distinct character of `corpus`, sorted by code point.
    pub fn from_corpus(corpus: &str, unknown: UnknownPolicy) -> Self {
        let set: BTreeSet<char> = corpus.chars().collect();
        CharTokenizer::build(set.into_iter().collect(), unknown)
    }

    /// A vocabulary of exactly `chars`, in this order (id `i` is `chars[i]`); duplicates are an
    /// error.
    pub fn from_chars(chars: &[char], unknown: UnknownPolicy) -> Result<Self> {
        let mut seen = HashMap::new();
        for (i, &c) in chars.iter().enumerate() {
            if let Some(j) = seen.insert(c, i) {
                return Err(DataError::invalid(
                    "CharTokenizer::from_chars",
                    format!("character {c:?} appears twice, at {j} and {i}"),
                ));
            }
        }
        Ok(CharTokenizer::build(chars.to_vec(), unknown))
    }

    fn build(chars: Vec<char>, unknown: UnknownPolicy) -> Self {
        let index = chars.iter().enumerate().map(|(i, &c)| (c, i)).collect();
        CharTokenizer {
            chars,
            index,
            unknown,
        }
    }

    /// The characters, by id.
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// The unknown-character policy.
    pub fn unknown_policy(&self) -> UnknownPolicy {
        self.unknown
    }

    /// The reserved `<unk>` id (one past the last character) under [`UnknownPolicy::Replace`].
    pub fn unk_id(&self) -> Option<usize> {
        (self.unknown == UnknownPolicy::Replace).then_some(self.chars.len())
    }

    /// The id of `c`, if it is in the vocabulary.
    pub fn id_of(&self, c: char) -> Option<usize> {
        self.index.get(&c).copied()
    }

    /// The JSON text of this tokenizer (see the module docs).
    pub fn to_json(&self) -> String {
        let chars: Vec<String> = self.chars.iter().map(|c| c.to_string()).collect();
        let v = json!({
            "format": FORMAT,
            "version": 1,
            "unknown": self.unknown.name(),
            "chars": chars,
        });
        serde_json::to_string_pretty(&v).expect("JSON of strings")
    }

    /// Parse [`to_json`](CharTokenizer::to_json) output; `path` names the source in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let bad = |why: String| DataError::format(path, why);
        let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        if v.get("format").and_then(Value::as_str) != Some(FORMAT) {
            return Err(bad(format!(
                "not a char tokenizer: `format` is not {FORMAT:?}"
            )));
        }
        if v.get("version").and_then(Value::as_u64) != Some(1) {
            return Err(bad("unsupported `version` (expected 1)".to_string()));
        }
        let unknown = v
            .get("unknown")
            .and_then(Value::as_str)
            .and_then(UnknownPolicy::from_name)
            .ok_or_else(|| {
                bad("`unknown` must be \"error\", \"skip\" or \"replace\"".to_string())
            })?;
        let list = v
            .get("chars")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("missing `chars` array".to_string()))?;
        let mut chars = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            let s = item.as_str().unwrap_or("");
            let mut it = s.chars();
            match (it.next(), it.next()) {
                (Some(c), None) => chars.push(c),
                _ => {
                    return Err(bad(format!(
                        "chars[{i}] must be a string of one character, got {item}"
                    )))
                }
            }
        }
        CharTokenizer::from_chars(&chars, unknown).map_err(|e| bad(e.to_string()))
    }

    /// Save as JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_json()).map_err(|e| DataError::io(path, e))
    }

    /// Load a tokenizer saved by [`save`](CharTokenizer::save).
    pub fn load(path: &Path) -> Result<Self> {
        CharTokenizer::from_json(&read_text(path)?, path)
    }
}

impl Tokenizer for CharTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<usize>> {
        // HINT: look each char up in self.index; apply self.unknown when it is missing.
        // BEGIN SOLUTION
        let mut ids = Vec::with_capacity(text.len());
        for (position, c) in text.chars().enumerate() {
            match self.index.get(&c) {
                Some(&id) => ids.push(id),
                None => match self.unknown {
                    UnknownPolicy::Error => {
                        return Err(DataError::UnknownChar {
                            op: "CharTokenizer::encode",
                            ch: c,
                            position,
                        })
                    }
                    UnknownPolicy::Skip => {}
                    UnknownPolicy::Replace => ids.push(self.chars.len()),
                },
            }
        }
        Ok(ids)
        // END SOLUTION
    }

    fn decode(&self, ids: &[usize]) -> Result<String> {
        // HINT: id i is self.chars[i]; the unk id decodes as REPLACEMENT_CHAR; anything else is an
        // HINT: error.
        // BEGIN SOLUTION
        let vocab_size = self.vocab_size();
        let mut text = String::with_capacity(ids.len());
        for (position, &id) in ids.iter().enumerate() {
            match self.chars.get(id) {
                Some(&c) => text.push(c),
                None if Some(id) == self.unk_id() => text.push(REPLACEMENT_CHAR),
                None => {
                    return Err(DataError::UnknownToken {
                        op: "CharTokenizer::decode",
                        id,
                        position,
                        vocab_size,
                    })
                }
            }
        }
        Ok(text)
        // END SOLUTION
    }

    fn vocab_size(&self) -> usize {
        self.chars.len() + usize::from(self.unknown == UnknownPolicy::Replace)
    }
}
