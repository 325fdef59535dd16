//! The tokenizer stored with a model ([`TokenizerSpec`]): none, a character vocabulary or BPE
//! merges, so a checkpoint alone can turn text into ids and back.

use std::collections::BTreeMap;
use std::path::Path;

use data::{BpeTokenizer, CharTokenizer, Tokenizer};

use crate::error::{ModelError, Result};

/// The tokenizer stored with a model, so a checkpoint alone can turn text into ids and back.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum TokenizerSpec {
    /// No tokenizer (ids only).
    #[default]
    None,
    /// One token per character; the vocabulary is stored in id order.
    Char(CharTokenizer),
    /// Byte-level BPE; its merges are stored.
    Bpe(BpeTokenizer),
}

impl TokenizerSpec {
    /// `"char"`, `"bpe"` or `"none"` (the `tokenizer_kind` metadata).
    pub fn kind(&self) -> &'static str {
        match self {
            TokenizerSpec::None => "none",
            TokenizerSpec::Char(_) => "char",
            TokenizerSpec::Bpe(_) => "bpe",
        }
    }

    /// The number of ids the tokenizer produces, if there is one.
    pub fn vocab_size(&self) -> Option<usize> {
        match self {
            TokenizerSpec::None => None,
            TokenizerSpec::Char(t) => Some(t.vocab_size()),
            TokenizerSpec::Bpe(t) => Some(t.vocab_size()),
        }
    }

    /// The ids of `text`.
    pub fn encode(&self, text: &str) -> Result<Vec<usize>> {
        match self {
            TokenizerSpec::None => Err(ModelError::Invalid {
                op: "TokenizerSpec::encode",
                reason: "this checkpoint stores no tokenizer".to_string(),
            }),
            TokenizerSpec::Char(t) => Ok(t.encode(text)?),
            TokenizerSpec::Bpe(t) => Ok(t.encode(text)?),
        }
    }

    /// The text of `ids`.
    pub fn decode(&self, ids: &[usize]) -> Result<String> {
        match self {
            TokenizerSpec::None => Err(ModelError::Invalid {
                op: "TokenizerSpec::decode",
                reason: "this checkpoint stores no tokenizer".to_string(),
            }),
            TokenizerSpec::Char(t) => Ok(t.decode(ids)?),
            TokenizerSpec::Bpe(t) => Ok(t.decode(ids)?),
        }
    }

    /// The serialized tokenizer (`None` for no tokenizer).
    pub(crate) fn serialized(&self) -> Option<String> {
        match self {
            TokenizerSpec::None => None,
            TokenizerSpec::Char(t) => Some(t.to_json()),
            TokenizerSpec::Bpe(t) => Some(t.to_text()),
        }
    }

    /// Parse the tokenizer metadata of a checkpoint.
    pub(crate) fn from_metadata(
        meta: &BTreeMap<String, String>,
        path: &Path,
    ) -> std::result::Result<TokenizerSpec, String> {
        let kind = meta
            .get("tokenizer_kind")
            .map(String::as_str)
            .unwrap_or("none");
        let text = meta.get("tokenizer");
        match (kind, text) {
            ("none", _) => Ok(TokenizerSpec::None),
            ("char", Some(text)) => CharTokenizer::from_json(text, path)
                .map(TokenizerSpec::Char)
                .map_err(|e| format!("metadata `tokenizer` (char): {e}")),
            ("bpe", Some(text)) => BpeTokenizer::from_text(text, path)
                .map(TokenizerSpec::Bpe)
                .map_err(|e| format!("metadata `tokenizer` (bpe): {e}")),
            ("char" | "bpe", None) => Err(format!(
                "metadata `tokenizer_kind` is {kind:?} but there is no `tokenizer`"
            )),
            (other, _) => Err(format!(
                "metadata `tokenizer_kind` must be \"char\", \"bpe\" or \"none\", got {other:?}"
            )),
        }
    }
}

impl From<CharTokenizer> for TokenizerSpec {
    fn from(t: CharTokenizer) -> Self {
        TokenizerSpec::Char(t)
    }
}

impl From<BpeTokenizer> for TokenizerSpec {
    fn from(t: BpeTokenizer) -> Self {
        TokenizerSpec::Bpe(t)
    }
}
