//! The small command line every milestone shares: `--data-dir`, `--dataset`, `--epochs`,
//! `--steps`, `--seed`, `--json PATH`, `--plot PATH`, `--quick`.

use std::path::PathBuf;

use clap::Args;

/// Flags common to every milestone binary (flattened into each binary's own parser).
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// Directory holding the datasets (default: $TINYTORCH_DATA, then ./data).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Which dataset to train on (each milestone lists its choices).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Number of passes over the training set (overrides the milestone's default).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Number of optimizer steps (for milestones that count steps rather than epochs).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Seed for every random choice (weights, shuffling, sampling).
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    /// Write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Draw the training curves as an SVG file.
    #[arg(long, value_name = "PATH")]
    pub plot: Option<PathBuf>,
    /// A short run (for tests and a first look): fewer epochs or steps, smaller data.
    #[arg(long)]
    pub quick: bool,
}
