//! A run's [`Recipe`]: the model's size and the optimisation settings. Named datasets have
//! measured recipes (nanoGPT's Shakespeare config, the course's TinyStories config, a swept
//! TinyTalks config, a small one for the embedded language); a user's own text gets one chosen
//! from its size ([`recipe_for_size`]), printed so the choice is visible. Flags override either.

use models::gpt::{Gelu, GptConfig};
use optim::schedule::WarmupCosine;

use super::BoxResult;

/// Model size and optimisation settings of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub block_size: usize,
    pub batch_size: usize,
    pub dropout: f32,
    pub weight_decay: f64,
    /// Linear layers and LayerNorms with biases (nanoGPT's Shakespeare config has none).
    pub bias: bool,
    /// The output head shares the token embedding's matrix.
    pub tie_weights: bool,
    pub lr: f64,
    pub min_lr: f64,
    pub warmup: u64,
    pub steps: usize,
    pub eval_every: usize,
    pub eval_batches: usize,
}

/// The small model of the embedded language (also the smallest size for a user's text).
fn small() -> Recipe {
    Recipe {
        n_layer: 2,
        n_head: 4,
        n_embd: 64,
        block_size: 64,
        batch_size: 16,
        dropout: 0.0,
        weight_decay: 0.1,
        bias: true,
        tie_weights: false,
        lr: 3e-3,
        min_lr: 3e-4,
        warmup: 100,
        steps: 2500,
        eval_every: 250,
        eval_batches: 10,
    }
}

/// nanoGPT's CPU config for character-level Shakespeare.
fn shakespeare() -> Recipe {
    Recipe {
        n_layer: 4,
        n_head: 4,
        n_embd: 128,
        block_size: 64,
        batch_size: 12,
        dropout: 0.0,
        weight_decay: 0.1,
        bias: false,
        tie_weights: true,
        lr: 1e-3,
        min_lr: 1e-4,
        warmup: 100,
        steps: 2000,
        eval_every: 250,
        eval_batches: 40,
    }
}

/// The recipe of a named corpus (`embedded`, `shakespeare`, `tinystories`, `tinytalks`);
/// `quick` shortens the run for tests and a first look.
pub fn recipe(dataset: &str, quick: bool) -> Recipe {
    let mut r = match dataset {
        "shakespeare" => shakespeare(),
        // The original course's TinyStories config.
        "tinystories" => Recipe {
            n_layer: 6,
            n_head: 8,
            n_embd: 256,
            block_size: 128,
            batch_size: 32,
            dropout: 0.1,
            bias: true,
            tie_weights: false,
            steps: 3000,
            eval_batches: 20,
            ..shakespeare()
        },
        // 12 KB of training text: depth helps and width does not, dropout 0.25 keeps
        // validation loss from turning up, and small batches (more, noisier steps on the same
        // tokens) generalise better (swept: 2-12 layers, 64-128 wide, dropout 0-0.35, batches
        // 4-32, tied head, blocks 64-128; see README.md).
        "tinytalks" => Recipe {
            n_layer: 8,
            n_head: 4,
            n_embd: 64,
            block_size: 64,
            batch_size: 8,
            dropout: 0.25,
            bias: true,
            tie_weights: false,
            lr: 2e-3,
            min_lr: 2e-4,
            steps: 3000,
            eval_every: 300,
            eval_batches: 20,
            ..shakespeare()
        },
        _ => small(),
    };
    if quick {
        r.steps = match dataset {
            "shakespeare" | "tinytalks" => 300,
            "tinystories" => 100,
            _ => 200,
        };
        r.eval_every = r.steps / 3;
        r.eval_batches = r.eval_batches.min(10);
    }
    r
}

/// The recipe for a user's text of `chars` training characters: the embedded language's small
/// model below 100,000 characters, nanoGPT's Shakespeare config (4 x 4 x 128) up to 3 million,
/// and 6 layers x 6 heads x 192 above. Returns the recipe and a sentence saying why.
pub fn recipe_for_size(chars: usize, quick: bool) -> (Recipe, String) {
    // HINT: bigger corpora can feed bigger models before they memorise: pick a size class by
    // HINT: the number of training characters and say which rule chose it.
    // BEGIN SOLUTION
    let (mut r, why) = if chars < 100_000 {
        (
            Recipe {
                steps: 1000,
                ..small()
            },
            "under 100,000 characters: the small model",
        )
    } else if chars < 3_000_000 {
        (
            shakespeare(),
            "100,000 to 3 million characters: nanoGPT's Shakespeare size",
        )
    } else {
        (
            Recipe {
                n_layer: 6,
                n_head: 6,
                n_embd: 192,
                block_size: 128,
                batch_size: 16,
                steps: 3000,
                ..shakespeare()
            },
            "over 3 million characters: 6 layers x 6 heads x 192",
        )
    };
    // END SOLUTION
    if quick {
        r.steps = 200;
        r.eval_every = r.steps / 3;
        r.eval_batches = r.eval_batches.min(10);
    }
    (r, why.to_string())
}

/// Linear warmup then cosine decay over the recipe's steps. A run shorter than the recipe's
/// warmup (`--steps 3`) warms up for a tenth of its steps instead.
pub fn schedule_for(recipe: &Recipe) -> BoxResult<WarmupCosine> {
    let steps = recipe.steps as u64;
    let warmup = if recipe.warmup < steps {
        recipe.warmup
    } else {
        steps / 10
    };
    Ok(WarmupCosine::new(recipe.lr, warmup, steps, recipe.min_lr)?)
}

/// The GPT a recipe describes over `vocab_size` tokens.
pub fn config_for(recipe: &Recipe, vocab_size: usize) -> GptConfig {
    GptConfig {
        vocab_size,
        block_size: recipe.block_size,
        n_layer: recipe.n_layer,
        n_head: recipe.n_head,
        n_embd: recipe.n_embd,
        dropout: recipe.dropout,
        bias: recipe.bias,
        tie_weights: recipe.tie_weights,
        gelu: Gelu::Exact,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_follow_the_corpus() {
        assert_eq!(recipe_for_size(5_000, false).0.n_embd, 64);
        assert_eq!(recipe_for_size(1_000_000, false).0, shakespeare());
        assert_eq!(recipe_for_size(5_000_000, false).0.n_layer, 6);
        assert_eq!(recipe_for_size(5_000, true).0.steps, 200);
        assert_eq!(recipe("embedded", false), small());
    }
}
