//! What a resumable checkpoint must match to be continued: the corpus (a hash of its training
//! and validation text) and every setting that shapes the run (model size, tokenizer,
//! optimisation, steps, seed). Stored in the checkpoint's metadata; `--resume` with anything
//! different is refused, naming each difference, because the result would be neither the old
//! run continued nor a new one.

use std::collections::BTreeMap;

/// The metadata key (under the checkpoint's training state) holding the identity.
pub const IDENTITY_KEY: &str = "run";

/// A run's identity: ordered `(setting, value)` pairs, the corpus hash among them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunIdentity {
    pub settings: BTreeMap<String, String>,
}

impl RunIdentity {
    /// Add a setting.
    pub fn with(mut self, key: &str, value: impl ToString) -> RunIdentity {
        self.settings.insert(key.to_string(), value.to_string());
        self
    }

    /// The identity as the JSON object stored in the checkpoint.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.settings).unwrap_or_default()
    }

    /// Parse [`RunIdentity::to_json`].
    pub fn from_json(text: &str) -> Result<RunIdentity, String> {
        serde_json::from_str(text)
            .map(|settings| RunIdentity { settings })
            .map_err(|e| format!("the stored run settings are not a JSON object of strings: {e}"))
    }

    /// Every setting that differs between the checkpoint's identity (`self`) and `now`, as
    /// `name: X in the checkpoint, Y now` (a setting missing on one side shows as `-`).
    pub fn differences(&self, now: &RunIdentity) -> Vec<String> {
        let mut keys: Vec<&String> = self.settings.keys().chain(now.settings.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter_map(|k| {
                let (a, b) = (self.settings.get(k), now.settings.get(k));
                (a != b).then(|| {
                    let show = |v: Option<&String>| v.map_or("-".to_string(), |s| s.clone());
                    format!("{k}: {} in the checkpoint, {} now", show(a), show(b))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_each_setting() {
        let saved = RunIdentity::default()
            .with("corpus_hash", "ab")
            .with("n_layer", 2);
        let same = RunIdentity::from_json(&saved.to_json()).unwrap();
        assert!(saved.differences(&same).is_empty());
        let now = RunIdentity::default()
            .with("corpus_hash", "cd")
            .with("n_layer", 2)
            .with("tokenizer", "bpe");
        assert_eq!(
            saved.differences(&now),
            vec![
                "corpus_hash: ab in the checkpoint, cd now".to_string(),
                "tokenizer: - in the checkpoint, bpe now".to_string()
            ]
        );
        assert!(RunIdentity::from_json("[1]").is_err());
    }
}
