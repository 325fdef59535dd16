//! `Benchmark`: time a closure honestly. Warm-up runs first (caches, allocator, thread pool,
//! lazy initialisation), then timed runs until a count or a time budget is reached, each
//! result kept alive with `black_box` so the compiler cannot skip the work. The timings are
//! summarised by [`Summary`]; with a batch size they become latency per sample and throughput,
//! and the process's peak resident memory during the timed runs is read as well.

use std::fmt::Display;
use std::hint::black_box;
use std::time::{Duration, Instant};

use crate::harness::error::{HarnessError, Result};
use crate::harness::memory::{PeakMemory, PeakTracker};
use crate::harness::stats::Summary;

/// Fewest timed runs a benchmark makes, whatever its budget (a spread needs two; three give a
/// median that is not a mean).
pub const MIN_RUNS: usize = 3;

/// How to time a piece of work.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Benchmark {
    /// Untimed runs first.
    pub warmup: usize,
    /// Timed runs (the most, when a budget is set).
    pub runs: usize,
    /// Stop timing once this much time has been spent (after at least [`MIN_RUNS`] runs).
    pub budget: Option<Duration>,
    /// Samples processed by one run (1 for a single inference).
    pub batch_size: usize,
}

impl Benchmark {
    /// `runs` timed runs after 3 warm-up runs, batch size 1, no time budget.
    pub fn new(runs: usize) -> Benchmark {
        Benchmark {
            warmup: 3,
            runs,
            budget: None,
            batch_size: 1,
        }
    }

    /// Set the number of untimed warm-up runs.
    pub fn warmup(mut self, warmup: usize) -> Benchmark {
        self.warmup = warmup;
        self
    }

    /// Stop once `budget` has been spent timing (still at least [`MIN_RUNS`] runs).
    pub fn budget(mut self, budget: Duration) -> Benchmark {
        self.budget = Some(budget);
        self
    }

    /// Samples per run, for latency per sample and throughput.
    pub fn batch_size(mut self, batch_size: usize) -> Benchmark {
        self.batch_size = batch_size;
        self
    }

    fn check(&self) -> Result<()> {
        if self.runs < MIN_RUNS {
            return Err(HarnessError::InvalidSetting {
                name: "runs",
                reason: format!("at least {MIN_RUNS} timed runs, got {}", self.runs),
            });
        }
        if self.batch_size == 0 {
            return Err(HarnessError::InvalidSetting {
                name: "batch_size",
                reason: "a run processes at least one sample".into(),
            });
        }
        Ok(())
    }

    /// Run `work` `warmup` times untimed, then time it `runs` times (or until the budget is
    /// spent). The first error of `work` stops the benchmark and is returned.
    pub fn run<T, E: Display>(
        &self,
        mut work: impl FnMut() -> std::result::Result<T, E>,
    ) -> Result<Measurement> {
        self.check()?;
        let failed = |e: E| HarnessError::Workload(e.to_string());
        for _ in 0..self.warmup {
            black_box(work().map_err(failed)?);
        }
        let tracker = PeakTracker::start();
        let mut seconds = Vec::with_capacity(self.runs);
        let started = Instant::now();
        while seconds.len() < self.runs {
            let t = Instant::now();
            let out = work().map_err(failed)?;
            seconds.push(t.elapsed().as_secs_f64());
            black_box(out);
            if let Some(budget) = self.budget {
                if seconds.len() >= MIN_RUNS && started.elapsed() >= budget {
                    break;
                }
            }
        }
        Ok(Measurement {
            seconds: Summary::from_samples(&seconds)?,
            batch_size: self.batch_size,
            peak_memory: tracker.finish(),
        })
    }
}

/// What a benchmark measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measurement {
    /// Seconds per run.
    pub seconds: Summary,
    /// Samples per run.
    pub batch_size: usize,
    /// Peak resident memory of the process during the timed runs.
    pub peak_memory: PeakMemory,
}

impl Measurement {
    /// Milliseconds per run (the whole batch).
    pub fn millis(&self) -> Summary {
        self.seconds.scaled(1e3)
    }

    /// Mean seconds per sample: the run's mean time divided by the batch size.
    pub fn latency_per_sample(&self) -> f64 {
        self.seconds.mean / self.batch_size as f64
    }

    /// Samples per second at the mean run time.
    pub fn throughput(&self) -> f64 {
        self.batch_size as f64 / self.seconds.mean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_runs_and_derives_throughput() {
        let mut calls = 0;
        let m = Benchmark::new(5)
            .warmup(2)
            .batch_size(10)
            .run(|| {
                calls += 1;
                std::thread::sleep(Duration::from_millis(2));
                Ok::<_, String>(calls)
            })
            .unwrap();
        assert_eq!(calls, 7, "2 warm-up runs and 5 timed runs");
        assert_eq!(m.seconds.n, 5);
        assert!(m.seconds.min >= 0.002, "{:?}", m.seconds);
        assert!((m.throughput() - 10.0 / m.seconds.mean).abs() < 1e-9);
        assert!((m.latency_per_sample() - m.seconds.mean / 10.0).abs() < 1e-12);
        assert!((m.millis().mean - 1e3 * m.seconds.mean).abs() < 1e-9);
    }

    #[test]
    fn budget_stops_early_but_not_before_min_runs() {
        let m = Benchmark::new(1000)
            .warmup(0)
            .budget(Duration::from_millis(1))
            .run(|| {
                std::thread::sleep(Duration::from_millis(2));
                Ok::<_, String>(())
            })
            .unwrap();
        assert_eq!(m.seconds.n, MIN_RUNS);
    }

    #[test]
    fn bad_settings_and_failing_work_are_errors() {
        let err = Benchmark::new(1).run(|| Ok::<_, String>(())).unwrap_err();
        assert!(err.to_string().contains("runs"), "{err}");
        let err = Benchmark::new(3)
            .batch_size(0)
            .run(|| Ok::<_, String>(()))
            .unwrap_err();
        assert!(err.to_string().contains("batch_size"), "{err}");
        let err = Benchmark::new(3)
            .run(|| Err::<(), _>("shape mismatch"))
            .unwrap_err();
        assert_eq!(err, HarnessError::Workload("shape mismatch".into()));
    }
}
