//! Checks and streaming for the text-generation milestone: a prompt whose characters the model
//! has never seen is refused naming them (instead of being dropped silently), a corpus must hold
//! text (and a start character for samples), and generated text is printed as it is produced.

use std::io::Write;

use data::CharTokenizer;
use models::checkpoint::TokenizerSpec;
use models::gpt::Gpt;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Refuse a prompt holding characters outside a character vocabulary, naming each (with its
/// code point) and how many characters the vocabulary has.
pub fn check_prompt_chars(vocab: &CharTokenizer, prompt: &str) -> Result<(), String> {
    let mut unknown: Vec<char> = prompt
        .chars()
        .filter(|&c| vocab.id_of(c).is_none())
        .collect();
    unknown.dedup();
    unknown.sort_unstable();
    unknown.dedup();
    if unknown.is_empty() {
        return Ok(());
    }
    let named: Vec<String> = unknown
        .iter()
        .map(|c| format!("{c:?} (U+{:04X})", *c as u32))
        .collect();
    let sample: String = vocab.chars().iter().take(80).collect();
    Err(format!(
        "the prompt has characters the model never saw in training: {}; its vocabulary holds {} characters: {sample:?}",
        named.join(", "),
        vocab.chars().len()
    ))
}

/// The ids of `prompt` under the checkpoint's tokenizer, refusing characters a character
/// vocabulary lacks (BPE encodes any text). An empty prompt starts from [`start_text`] (a
/// newline for BPE).
pub fn encode_prompt(tok: &TokenizerSpec, prompt: &str) -> BoxResult<Vec<usize>> {
    if let TokenizerSpec::Char(vocab) = tok {
        check_prompt_chars(vocab, prompt)?;
        if prompt.is_empty() {
            return Ok(tok.encode(&start_text(vocab))?);
        }
    }
    if prompt.is_empty() {
        // Byte-level BPE encodes any text: start from a newline like the char models.
        return Ok(tok.encode("\n")?);
    }
    Ok(tok.encode(prompt)?)
}

/// The text samples start from: a newline when the vocabulary has one, else its first
/// character (a corpus with no newline still samples).
pub fn start_text(vocab: &CharTokenizer) -> String {
    if vocab.id_of('\n').is_some() {
        "\n".to_string()
    } else {
        vocab
            .chars()
            .first()
            .map(|c| c.to_string())
            .unwrap_or_default()
    }
}

/// Refuse an empty corpus before a model is built for it, naming the corpus.
pub fn check_corpus(name: &str, train: &str) -> Result<(), String> {
    if train.trim().is_empty() {
        return Err(format!(
            "the {name} corpus holds no training text (is the file empty?)"
        ));
    }
    Ok(())
}

/// Generate `max_new_tokens` after `prompt` and write the text to `out` token by token as it is
/// produced (BPE tokens that end inside a multi-byte character are held until it completes).
/// Returns every id, prompt included.
#[allow(clippy::too_many_arguments)]
pub fn stream_text(
    gpt: &Gpt,
    tok: &TokenizerSpec,
    prompt: &[usize],
    max_new_tokens: usize,
    temperature: f32,
    top_k: Option<usize>,
    seed: u64,
    out: &mut dyn Write,
) -> BoxResult<Vec<usize>> {
    let mut pending: Vec<usize> = Vec::new();
    let mut failure: Option<Box<dyn std::error::Error>> = None;
    let ids = gpt.generate_stream(prompt, max_new_tokens, temperature, top_k, seed, |id| {
        pending.push(id);
        match tok.decode(&pending) {
            Ok(text) if !text.ends_with('\u{fffd}') || pending.len() >= 4 => {
                pending.clear();
                if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                    failure = Some(e.into());
                    return false;
                }
                true
            }
            Ok(_) => true,
            Err(e) => {
                failure = Some(e.into());
                false
            }
        }
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    if !pending.is_empty() {
        out.write_all(tok.decode(&pending)?.as_bytes())?;
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use data::UnknownPolicy;
    use models::gpt::{Gelu, GptConfig};
    use nn::Module;

    #[test]
    fn unknown_prompt_chars_are_named() {
        let vocab = CharTokenizer::from_corpus("the cat sat.\n", UnknownPolicy::Skip);
        assert!(check_prompt_chars(&vocab, "the cat").is_ok());
        let e = check_prompt_chars(&vocab, "The 🦀 cat").unwrap_err();
        assert!(e.contains("'T' (U+0054)") && e.contains("U+1F980"), "{e}");
        let tok = TokenizerSpec::Char(vocab);
        assert!(encode_prompt(&tok, "Tea").is_err());
        assert_eq!(encode_prompt(&tok, "").unwrap().len(), 1);
    }

    #[test]
    fn corpus_without_newline_has_a_start_and_empty_corpus_is_named() {
        let vocab = CharTokenizer::from_corpus("abcabc", UnknownPolicy::Skip);
        assert_eq!(start_text(&vocab), "a");
        let e = check_corpus("shakespeare", "  \n").unwrap_err();
        assert!(
            e.contains("the shakespeare corpus holds no training text"),
            "{e}"
        );
    }

    #[test]
    fn streamed_text_equals_the_generated_text() {
        let vocab = CharTokenizer::from_corpus("abcdefgh\n", UnknownPolicy::Error);
        let mut gpt = Gpt::new(
            GptConfig {
                vocab_size: vocab.chars().len(),
                block_size: 8,
                n_layer: 1,
                n_head: 1,
                n_embd: 8,
                dropout: 0.0,
                bias: false,
                tie_weights: true,
                gelu: Gelu::Exact,
            },
            1,
        )
        .unwrap();
        gpt.eval();
        let tok = TokenizerSpec::Char(vocab);
        let prompt = encode_prompt(&tok, "ab").unwrap();
        let mut out = Vec::new();
        let ids = stream_text(&gpt, &tok, &prompt, 12, 1.0, None, 5, &mut out).unwrap();
        let whole = gpt.generate(&prompt, 12, 1.0, None, 5).unwrap();
        assert_eq!(ids, whole);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            tok.decode(&whole[prompt.len()..]).unwrap()
        );
    }
}
