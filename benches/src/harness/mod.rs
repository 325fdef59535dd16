//! The model benchmarking harness (chapter 6, `models`): measure models honestly and compare them.
//!
//! | module | what |
//! |---|---|
//! | [`error`] | `HarnessError`: every failure names the quantity or report field |
//! | [`stats`] | `Summary`: mean, std, median, min, max, p95, 95% CI (Student t) |
//! | [`memory`] | peak resident memory (`VmHWM`, reset via `clear_refs`), parameter bytes |
//! | [`runner`] | `Benchmark`: warm-up, timed runs or a time budget, latency and throughput |
//! | [`pareto`] | the Pareto frontier of accuracy against a cost |
//! | [`compare`] | `ModelMetrics` and the comparison table with the frontiers marked |
//! | [`events`] | latency sprint, memory challenge, accuracy contest, all-around |
//! | [`system`] | `SystemInfo`: CPU, cores, SIMD level, threads, OS, rustc, commit |
//! | [`report`] | `Report`: the JSON written by `--json` |
//! | [`validate`] | `validate_report`: schema and consistency checks |

pub mod compare;
pub mod error;
pub mod events;
pub mod memory;
pub mod pareto;
pub mod report;
pub mod runner;
pub mod stats;
pub mod system;
pub mod validate;

pub use compare::{comparison_table, frontiers, FrontierMarks, ModelMetrics};
pub use error::{HarnessError, Result};
pub use events::{judge, Event, EventResult};
pub use memory::{param_bytes, PeakMemory, PeakSource, PeakTracker};
pub use pareto::pareto_front;
pub use report::{
    BenchmarkSettings, GenerationMetrics, GenerationVariant, Improvements, Report, REPORT_SCHEMA,
};
pub use runner::{Benchmark, Measurement, MIN_RUNS};
pub use stats::{quantile_sorted, t_critical_95, Summary};
pub use system::{simd_level, SystemInfo};
pub use validate::{validate_report, validate_report_file};
