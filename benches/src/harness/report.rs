//! The benchmark report (`--json PATH`): the machine, the settings, every model measured, the
//! baseline against the pipeline's best model, the techniques applied, the improvements and
//! the events, plus the generation track. [`Report::to_json`] writes it and
//! [`crate::harness::validate::validate_report`] checks one; the schema is documented in
//! `benches/README.md` ("The report").

use serde_json::{json, Map, Value};

use crate::harness::compare::ModelMetrics;
use crate::harness::events::EventResult;
use crate::harness::stats::Summary;
use crate::harness::system::SystemInfo;

/// The value of the report's `schema` field.
pub const REPORT_SCHEMA: &str = "tinytorch-benchmark-report/1";

/// How the models were timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchmarkSettings {
    /// Untimed runs before each measurement.
    pub warmup: usize,
    /// Timed runs per measurement (the most, when a time budget cut it short).
    pub runs: usize,
    /// The large batch size.
    pub batch_size: usize,
}

/// Text generation timed with and without the KV cache, on equal work.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationMetrics {
    /// What generated (e.g. `gpt 2x64`).
    pub model: String,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated per run.
    pub new_tokens: usize,
    /// Milliseconds per run without the cache (a full forward pass per token).
    pub uncached_ms: Summary,
    /// Milliseconds per run with the KV cache.
    pub cached_ms: Summary,
    /// Whether both produced exactly the same tokens (greedy decoding).
    pub identical: bool,
    /// Further ways of generating (int8, batched), each against its own reference on equal work.
    pub variants: Vec<GenerationVariant>,
    /// Held-out loss (nats per token) of the `f32` model and of its int8 copy, when measured.
    pub val_loss: Option<(f64, f64)>,
}

/// One further way of generating, timed against a reference doing the same work.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationVariant {
    /// What was done (e.g. `int8 + KV cache`, `8 prompts batched`).
    pub name: String,
    /// The reference it is compared with (e.g. `fp32 + KV cache`, `8 prompts one by one`).
    pub reference: String,
    /// New tokens per run, over every prompt.
    pub new_tokens: usize,
    /// Milliseconds per run of this way.
    pub ms: Summary,
    /// Milliseconds per run of the reference.
    pub reference_ms: Summary,
    /// Whether the tokens equal the reference's where they must (`None`: not required, e.g. int8).
    pub identical: Option<bool>,
}

impl GenerationVariant {
    /// New tokens per second.
    pub fn tokens_per_s(&self) -> f64 {
        self.new_tokens as f64 / (self.ms.mean / 1e3)
    }

    /// How much faster than the reference.
    pub fn speedup(&self) -> f64 {
        self.reference_ms.mean / self.ms.mean
    }

    /// The report's object for this variant.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "reference": self.reference,
            "new_tokens": self.new_tokens,
            "ms": self.ms.to_json(),
            "reference_ms": self.reference_ms.to_json(),
            "tokens_per_s": self.tokens_per_s(),
            "speedup": self.speedup(),
            "identical": self.identical,
        })
    }
}

impl GenerationMetrics {
    /// New tokens per second without the cache.
    pub fn uncached_tokens_per_s(&self) -> f64 {
        self.new_tokens as f64 / (self.uncached_ms.mean / 1e3)
    }

    /// New tokens per second with the cache.
    pub fn cached_tokens_per_s(&self) -> f64 {
        self.new_tokens as f64 / (self.cached_ms.mean / 1e3)
    }

    /// How much faster the cache makes generation.
    pub fn speedup(&self) -> f64 {
        self.uncached_ms.mean / self.cached_ms.mean
    }

    /// The report's `generation` object.
    pub fn to_json(&self) -> Value {
        json!({
            "model": self.model,
            "prompt_tokens": self.prompt_tokens,
            "new_tokens": self.new_tokens,
            "uncached_ms": self.uncached_ms.to_json(),
            "cached_ms": self.cached_ms.to_json(),
            "uncached_tokens_per_s": self.uncached_tokens_per_s(),
            "cached_tokens_per_s": self.cached_tokens_per_s(),
            "speedup": self.speedup(),
            "identical": self.identical,
            "variants": self.variants.iter().map(GenerationVariant::to_json).collect::<Vec<_>>(),
            "val_loss_fp32": self.val_loss.map(|v| v.0),
            "val_loss_int8": self.val_loss.map(|v| v.1),
        })
    }
}

/// The improvements of the best model over the baseline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Improvements {
    /// Baseline batch-1 latency over the best model's (mean).
    pub speedup: f64,
    /// Baseline checkpoint size over the best model's.
    pub compression_ratio: f64,
    /// Best model's accuracy minus the baseline's (fractions; 0.01 is one point).
    pub accuracy_delta: f64,
}

impl Improvements {
    /// Compare `optimized` with `baseline`.
    pub fn between(baseline: &ModelMetrics, optimized: &ModelMetrics) -> Improvements {
        Improvements {
            speedup: baseline.latency_b1_ms.mean / optimized.latency_b1_ms.mean,
            compression_ratio: baseline.size_bytes as f64 / optimized.size_bytes as f64,
            accuracy_delta: optimized.accuracy - baseline.accuracy,
        }
    }
}

/// A whole benchmark run.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The binary that ran (e.g. `mlperf-2018`).
    pub milestone: String,
    /// The dataset the accuracies were measured on (held-out split).
    pub dataset: String,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
    /// Parameters of the baseline.
    pub params: usize,
    /// The machine.
    pub system: SystemInfo,
    /// How models were timed.
    pub settings: BenchmarkSettings,
    /// Every model measured.
    pub variants: Vec<ModelMetrics>,
    /// Index of the baseline in `variants`.
    pub baseline: usize,
    /// Index of the pipeline's best model in `variants`.
    pub optimized: usize,
    /// The techniques behind the variants (each once, in order).
    pub techniques: Vec<String>,
    /// The events and which the best model qualifies for.
    pub events: Vec<EventResult>,
    /// The generation track, when it ran.
    pub generation: Option<GenerationMetrics>,
}

impl Report {
    /// The baseline's metrics.
    pub fn baseline(&self) -> &ModelMetrics {
        &self.variants[self.baseline]
    }

    /// The best model's metrics.
    pub fn optimized(&self) -> &ModelMetrics {
        &self.variants[self.optimized]
    }

    /// Best model against baseline.
    pub fn improvements(&self) -> Improvements {
        Improvements::between(self.baseline(), self.optimized())
    }

    /// The flat `metrics` object every milestone report has (numbers only).
    pub fn metrics(&self) -> Map<String, Value> {
        let imp = self.improvements();
        let mut m = Map::new();
        m.insert("baseline_accuracy".into(), json!(self.baseline().accuracy));
        m.insert(
            "optimized_accuracy".into(),
            json!(self.optimized().accuracy),
        );
        m.insert(
            "baseline_latency_b1_ms".into(),
            json!(self.baseline().latency_b1_ms.mean),
        );
        m.insert(
            "optimized_latency_b1_ms".into(),
            json!(self.optimized().latency_b1_ms.mean),
        );
        m.insert("speedup".into(), json!(imp.speedup));
        m.insert("compression_ratio".into(), json!(imp.compression_ratio));
        m.insert("accuracy_delta".into(), json!(imp.accuracy_delta));
        if let Some(g) = &self.generation {
            m.insert("kv_cache_speedup".into(), json!(g.speedup()));
            m.insert("cached_tokens_per_s".into(), json!(g.cached_tokens_per_s()));
        }
        m
    }

    /// The report as JSON (the file `--json` writes).
    pub fn to_json(&self) -> Value {
        let imp = self.improvements();
        json!({
            "schema": REPORT_SCHEMA,
            "milestone": self.milestone,
            "dataset": self.dataset,
            "seconds": self.seconds,
            "params": self.params,
            "metrics": self.metrics(),
            "system": self.system.to_json(),
            "benchmark": {
                "warmup": self.settings.warmup,
                "runs": self.settings.runs,
                "batch_size": self.settings.batch_size,
            },
            "baseline": self.baseline().to_json(),
            "optimized": self.optimized().to_json(),
            "variants": self.variants.iter().map(ModelMetrics::to_json).collect::<Vec<_>>(),
            "techniques": self.techniques,
            "improvements": {
                "speedup": imp.speedup,
                "compression_ratio": imp.compression_ratio,
                "accuracy_delta": imp.accuracy_delta,
            },
            "events": self.events.iter().map(EventResult::to_json).collect::<Vec<_>>(),
            "generation": self.generation.as_ref().map(GenerationMetrics::to_json),
        })
    }
}
