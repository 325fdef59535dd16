//! The milestone guide: what each milestone proves, its data and how to get it, the chapters it
//! needs and whether they pass now, the figures to expect (read from the README's milestone table,
//! so they are the measured ones), and a 1957 -> 2018 timeline for the terminal.
//!
//! Whether a milestone is unlocked is always computed here from chapter results the caller just
//! measured (a fresh test run), never from recorded progress: [`Lock`] is built from a map of
//! chapter -> passes-now.

use std::collections::BTreeMap;

use super::{Milestone, MILESTONES};

/// Year and data of a milestone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MilestoneInfo {
    pub year: u16,
    /// What it trains on and how to get it.
    pub data: &'static str,
}

/// The year and data of a milestone (by name).
pub fn info(name: &str) -> MilestoneInfo {
    let (year, data) = match name {
        "perceptron-1957" => (1957, "generated blobs (nothing to download)"),
        "xor-1969" => (1969, "generated noisy XOR (nothing to download)"),
        "mlp-1986" => (
            1986,
            "TinyDigits (8x8 digits; `--data-dir DIR`) or MNIST (`--dataset mnist`, the IDX files in DIR); see data/README.md",
        ),
        "cnn-1998" => (
            1998,
            "TinyDigits or MNIST (`--dataset mnist --data-dir DIR`), CIFAR-10 (`--dataset cifar10`); see data/README.md",
        ),
        "transformer-2017" => (
            2017,
            "a generated mini-language and the reverse/copy/sort tasks (nothing to download); TinyTalks, Shakespeare, TinyStories text in `--data-dir DIR`",
        ),
        "doctor" => (2017, "generated runs, each with a known fault (nothing to download)"),
        "mlperf-2018" => (
            2018,
            "generated 16x16 shapes (nothing to download), or MNIST with `--dataset mnist --data-dir DIR`",
        ),
        _ => (0, "-"),
    };
    MilestoneInfo { year, data }
}

/// A milestone's lock, from chapter results measured just now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// (chapter, passes now) for every chapter the milestone needs, in course order.
    pub needs: Vec<(String, bool)>,
}

impl Lock {
    /// The lock of `m` given `passing` (chapter -> its tests pass in a run made now). A chapter
    /// missing from the map counts as not passing.
    pub fn of(m: &Milestone, passing: &BTreeMap<String, bool>) -> Lock {
        Lock {
            needs: m
                .needs
                .iter()
                .map(|c| (c.to_string(), passing.get(*c).copied().unwrap_or(false)))
                .collect(),
        }
    }

    pub fn unlocked(&self) -> bool {
        self.needs.iter().all(|(_, ok)| *ok)
    }

    /// `unlocked`, or `locked (needs: a, b)` naming the chapters that do not pass.
    pub fn label(&self) -> String {
        if self.unlocked() {
            "unlocked".to_string()
        } else {
            let missing: Vec<&str> = self
                .needs
                .iter()
                .filter(|(_, ok)| !ok)
                .map(|(c, _)| c.as_str())
                .collect();
            format!("locked (needs: {})", missing.join(", "))
        }
    }
}

/// The README milestone-table rows of `name`: `(command, measured result)`.
pub fn expected_figures(readme: &str, name: &str) -> Vec<(String, String)> {
    let needle = format!("--bin {name}");
    readme
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains(&needle))
        .filter_map(|l| {
            let cols: Vec<&str> = l.split(" | ").collect();
            (cols.len() >= 3).then(|| {
                (
                    cols[1].trim().trim_matches('`').to_string(),
                    cols[2].trim().trim_end_matches('|').trim().to_string(),
                )
            })
        })
        .collect()
}

/// The timeline: a 1957 -> 2018 axis with a mark per milestone year, then one line per
/// milestone in year order with its state (from `locks`, by name).
pub fn timeline(locks: &BTreeMap<&str, Lock>, width: usize) -> String {
    let (first, last) = (1957u16, 2018u16);
    let width = width.max(20);
    let col = |y: u16| (usize::from(y - first) * (width - 1)) / usize::from(last - first);
    let mut axis = vec!['-'; width];
    let mut years: Vec<(u16, &Milestone)> =
        MILESTONES.iter().map(|m| (info(m.name).year, m)).collect();
    years.sort_by_key(|(y, _)| *y);
    for (y, m) in &years {
        let unlocked = locks.get(m.name).is_some_and(Lock::unlocked);
        let c = col(*y);
        axis[c] = if unlocked { '*' } else { 'o' };
    }
    let mut out = String::new();
    out.push_str(&format!(
        "{first} {} {last}\n",
        axis.iter().collect::<String>()
    ));
    out.push_str("      (* unlocked, o locked)\n");
    for (y, m) in &years {
        let state = locks
            .get(m.name)
            .map(Lock::label)
            .unwrap_or_else(|| "not checked".into());
        out.push_str(&format!(
            "{y}  {:<17} {:<9} {}\n",
            m.name,
            short(&state),
            m.what
        ));
    }
    out
}

fn short(state: &str) -> &str {
    if state.starts_with("unlocked") {
        "unlocked"
    } else if state.starts_with("locked") {
        "locked"
    } else {
        "?"
    }
}
