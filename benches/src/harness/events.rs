//! The events of an optimization contest, judged on measured [`ModelMetrics`]:
//!
//! | event | who may enter | who wins |
//! |---|---|---|
//! | latency sprint | accuracy >= baseline - 1 point | lowest batch-1 latency |
//! | memory challenge | accuracy >= baseline - 1 point | smallest checkpoint on disk |
//! | accuracy contest | batch-1 latency < 100 ms and checkpoint <= 10 MB | highest accuracy |
//! | all-around | accuracy >= baseline - 1 point, no slower and no larger than the baseline | largest speedup x compression |
//!
//! The all-around winner is the pipeline's best model (the baseline itself when nothing beats
//! it: it always qualifies, with a score of 1).

use serde_json::{json, Value};

use crate::harness::compare::ModelMetrics;

/// Accuracy a model may lose against the baseline and still enter (one percentage point).
pub const ACCURACY_TOLERANCE: f64 = 0.01;
/// The accuracy contest's latency limit (batch 1), in milliseconds.
pub const CONTEST_LATENCY_MS: f64 = 100.0;
/// The accuracy contest's size limit, in bytes (10 MB).
pub const CONTEST_SIZE_BYTES: u64 = 10_000_000;

/// One event of the contest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Fastest at batch 1 with accuracy within a point of the baseline.
    LatencySprint,
    /// Smallest on disk with accuracy within a point of the baseline.
    MemoryChallenge,
    /// Most accurate under 100 ms and 10 MB.
    AccuracyContest,
    /// Best speedup x compression without losing more than a point, slower or larger.
    AllAround,
}

impl Event {
    /// Every event, in report order.
    pub const ALL: [Event; 4] = [
        Event::LatencySprint,
        Event::MemoryChallenge,
        Event::AccuracyContest,
        Event::AllAround,
    ];

    /// The name written in reports.
    pub fn name(self) -> &'static str {
        match self {
            Event::LatencySprint => "latency_sprint",
            Event::MemoryChallenge => "memory_challenge",
            Event::AccuracyContest => "accuracy_contest",
            Event::AllAround => "all_around",
        }
    }

    /// Whether `model` may enter, judged against `baseline`.
    pub fn qualifies(self, model: &ModelMetrics, baseline: &ModelMetrics) -> bool {
        let floor = model.accuracy >= baseline.accuracy - ACCURACY_TOLERANCE;
        match self {
            Event::LatencySprint | Event::MemoryChallenge => floor,
            Event::AccuracyContest => {
                model.latency_b1_ms.mean < CONTEST_LATENCY_MS
                    && model.size_bytes <= CONTEST_SIZE_BYTES
            }
            Event::AllAround => {
                floor
                    && model.latency_b1_ms.mean <= baseline.latency_b1_ms.mean
                    && model.size_bytes <= baseline.size_bytes
            }
        }
    }

    /// How good an entrant is (higher wins).
    pub fn score(self, model: &ModelMetrics, baseline: &ModelMetrics) -> f64 {
        match self {
            Event::LatencySprint => -model.latency_b1_ms.mean,
            Event::MemoryChallenge => -(model.size_bytes as f64),
            Event::AccuracyContest => model.accuracy,
            Event::AllAround => {
                (baseline.latency_b1_ms.mean / model.latency_b1_ms.mean)
                    * (baseline.size_bytes as f64 / model.size_bytes.max(1) as f64)
            }
        }
    }

    /// Index of the winner among `models` (the first of equal scores), if anyone qualifies.
    pub fn winner(self, models: &[ModelMetrics], baseline: &ModelMetrics) -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        for (i, m) in models.iter().enumerate() {
            if !self.qualifies(m, baseline) {
                continue;
            }
            let s = self.score(m, baseline);
            if best.is_none_or(|(_, b)| s > b) {
                best = Some((i, s));
            }
        }
        best.map(|(i, _)| i)
    }
}

/// The outcome of one event.
#[derive(Clone, Debug, PartialEq)]
pub struct EventResult {
    /// The event.
    pub event: Event,
    /// Name of the winning model, if anyone qualified.
    pub winner: Option<String>,
    /// Whether the pipeline's best model may enter this event.
    pub best_qualifies: bool,
}

impl EventResult {
    /// The result as JSON: `{"event", "winner", "best_qualifies"}`.
    pub fn to_json(&self) -> Value {
        json!({
            "event": self.event.name(),
            "winner": self.winner,
            "best_qualifies": self.best_qualifies,
        })
    }
}

/// Judge every event: the winners, and which events `best` qualifies for.
pub fn judge(
    models: &[ModelMetrics],
    baseline: &ModelMetrics,
    best: &ModelMetrics,
) -> Vec<EventResult> {
    Event::ALL
        .iter()
        .map(|&event| EventResult {
            event,
            winner: event
                .winner(models, baseline)
                .map(|i| models[i].name.clone()),
            best_qualifies: event.qualifies(best, baseline),
        })
        .collect()
}
