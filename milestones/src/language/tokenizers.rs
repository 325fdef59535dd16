//! `--tokenizer char|bpe`: the vocabulary a model reads, learned from the training split only
//! (the validation text must not shape it). `char` gives one id per distinct character (ids of
//! validation characters never seen in training are skipped); `bpe` is the data crate's
//! byte-level BPE with `--vocab-size` tokens (256 bytes plus learned merges), so any text
//! encodes. Either is saved in the checkpoint, which is what `--load` and `--eval` decode with.

use data::{BpeTokenizer, CharTokenizer, UnknownPolicy};
use models::checkpoint::TokenizerSpec;

use super::BoxResult;

/// The default BPE vocabulary: the 256 bytes and 256 merges.
pub const DEFAULT_BPE_VOCAB: usize = 512;

/// Which tokenizer to learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerChoice {
    /// One token per character.
    Char,
    /// Byte-level BPE with this many tokens.
    Bpe(usize),
}

impl TokenizerChoice {
    /// Parse `--tokenizer` and `--vocab-size` (which only BPE uses).
    pub fn parse(name: &str, vocab_size: Option<usize>) -> Result<TokenizerChoice, String> {
        match (name, vocab_size) {
            ("char", None) => Ok(TokenizerChoice::Char),
            ("char", Some(_)) => Err(
                "--vocab-size applies to --tokenizer bpe (a character vocabulary is the corpus's characters)"
                    .to_string(),
            ),
            ("bpe", n) => {
                let n = n.unwrap_or(DEFAULT_BPE_VOCAB);
                if n <= 256 {
                    return Err(format!(
                        "--vocab-size {n} is out of range: byte-level BPE has 256 byte tokens, so it must be at least 257"
                    ));
                }
                Ok(TokenizerChoice::Bpe(n))
            }
            (other, _) => Err(format!("unknown --tokenizer '{other}': choose char or bpe")),
        }
    }

    /// `char` or `bpe`.
    pub fn name(self) -> &'static str {
        match self {
            TokenizerChoice::Char => "char",
            TokenizerChoice::Bpe(_) => "bpe",
        }
    }

    /// Learn the tokenizer from the training text (BPE stops early, with fewer tokens than asked
    /// for, when no adjacent pair repeats any more).
    pub fn learn(self, train: &str) -> BoxResult<TokenizerSpec> {
        Ok(match self {
            TokenizerChoice::Char => {
                TokenizerSpec::Char(CharTokenizer::from_corpus(train, UnknownPolicy::Skip))
            }
            TokenizerChoice::Bpe(n) => TokenizerSpec::Bpe(BpeTokenizer::train(train, n)?),
        })
    }
}

/// The unit of a tokenizer's ids, for messages: `characters` or `tokens`.
pub fn unit(tok: &TokenizerSpec) -> &'static str {
    match tok {
        TokenizerSpec::Char(_) => "characters",
        _ => "tokens",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_checked_and_bpe_round_trips() {
        assert_eq!(
            TokenizerChoice::parse("char", None),
            Ok(TokenizerChoice::Char)
        );
        assert!(TokenizerChoice::parse("char", Some(300))
            .unwrap_err()
            .contains("--vocab-size applies to --tokenizer bpe"));
        assert!(TokenizerChoice::parse("bpe", Some(256))
            .unwrap_err()
            .contains("at least 257"));
        assert!(TokenizerChoice::parse("word", None)
            .unwrap_err()
            .contains("unknown --tokenizer 'word'"));
        let text = "the cat sat on the mat. the cat sat. ".repeat(20);
        let tok = TokenizerChoice::parse("bpe", Some(270))
            .unwrap()
            .learn(&text)
            .unwrap();
        let ids = tok.encode("the cat é").unwrap();
        assert!(ids.len() < "the cat é".len(), "merges shorten the text");
        assert_eq!(tok.decode(&ids).unwrap(), "the cat é");
        // At most the size asked for: merging stops when no pair repeats.
        let n = tok.vocab_size().unwrap();
        assert!(n > 256 && n <= 270, "{n}");
    }
}
