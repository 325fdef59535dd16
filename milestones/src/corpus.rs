//! The embedded corpus: a small made-up language the project generates itself, so the main job
//! runs on a fresh machine with no download and no foreign text.
//!
//! Every line is one sentence of a fixed grammar:
//!
//! ```text
//! sentence := subject verb object ending "."
//! subject  := determiner adjective? noun     (a singular noun phrase)
//! object   := determiner adjective? noun
//! ending   := "" | " " place | " " time
//! ```
//!
//! The grammar makes learning measurable: a trained model's samples can be *checked*. The success
//! figure is the share of generated lines that are grammatical ([`is_grammatical`]), next to the
//! validation loss. An untrained model scores 0%.

use tensor::TensorRng;

const DETERMINERS: [&str; 4] = ["the", "a", "my", "every"];
const ADJECTIVES: [&str; 8] = [
    "red", "small", "quiet", "clever", "old", "bright", "lazy", "brave",
];
const NOUNS: [&str; 10] = [
    "cat", "robot", "river", "teacher", "garden", "lamp", "fox", "engine", "child", "kettle",
];
const VERBS: [&str; 8] = [
    "sees", "likes", "follows", "paints", "finds", "builds", "carries", "hears",
];
const PLACES: [&str; 5] = [
    "in the park",
    "near the sea",
    "at home",
    "under the bridge",
    "on the hill",
];
const TIMES: [&str; 4] = ["today", "at night", "every morning", "again"];

fn noun_phrase(rng: &mut TensorRng, out: &mut String) {
    out.push_str(DETERMINERS[rng.below(DETERMINERS.len())]);
    out.push(' ');
    if rng.below(2) == 0 {
        out.push_str(ADJECTIVES[rng.below(ADJECTIVES.len())]);
        out.push(' ');
    }
    out.push_str(NOUNS[rng.below(NOUNS.len())]);
}

/// One random grammatical sentence (with its final period, without a newline).
pub fn sentence(rng: &mut TensorRng) -> String {
    let mut s = String::new();
    noun_phrase(rng, &mut s);
    s.push(' ');
    s.push_str(VERBS[rng.below(VERBS.len())]);
    s.push(' ');
    noun_phrase(rng, &mut s);
    match rng.below(3) {
        0 => {}
        1 => {
            s.push(' ');
            s.push_str(PLACES[rng.below(PLACES.len())]);
        }
        _ => {
            s.push(' ');
            s.push_str(TIMES[rng.below(TIMES.len())]);
        }
    }
    s.push('.');
    s
}

/// A corpus of `lines` sentences, one per line, fully determined by `seed`.
pub fn generate(lines: usize, seed: u64) -> String {
    let mut rng = TensorRng::new(seed);
    let mut text = String::with_capacity(lines * 40);
    for _ in 0..lines {
        text.push_str(&sentence(&mut rng));
        text.push('\n');
    }
    text
}

fn take_phrase(words: &[&str], mut i: usize) -> Option<usize> {
    if !DETERMINERS.contains(words.get(i)?) {
        return None;
    }
    i += 1;
    if ADJECTIVES.contains(words.get(i)?) {
        i += 1;
    }
    if !NOUNS.contains(words.get(i)?) {
        return None;
    }
    Some(i + 1)
}

/// Whether `line` is a sentence of the grammar above.
pub fn is_grammatical(line: &str) -> bool {
    let Some(body) = line.strip_suffix('.') else {
        return false;
    };
    let words: Vec<&str> = body.split(' ').collect();
    let Some(i) = take_phrase(&words, 0) else {
        return false;
    };
    if !words.get(i).is_some_and(|w| VERBS.contains(w)) {
        return false;
    }
    let Some(j) = take_phrase(&words, i + 1) else {
        return false;
    };
    let rest = words[j..].join(" ");
    rest.is_empty() || PLACES.contains(&rest.as_str()) || TIMES.contains(&rest.as_str())
}
