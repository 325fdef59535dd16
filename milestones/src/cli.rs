//! The small command line every milestone shares: `--data-dir`, `--dataset`, `--epochs`,
//! `--steps`, `--seed`, `--json PATH`, `--plot PATH`, `--quick`, `--threads N`.

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
    /// Worker threads for the parallel kernels (default: all cores; at most 4 per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// A flag value a milestone refuses before any work starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError(pub String);

impl std::fmt::Display for ArgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

/// The common flags a milestone may declare it does not use (seed and quick apply everywhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    /// `--data-dir`
    DataDir,
    /// `--dataset`
    Dataset,
    /// `--epochs`
    Epochs,
    /// `--steps`
    Steps,
    /// `--json`
    Json,
    /// `--plot`
    Plot,
}

impl Flag {
    /// The flag as typed.
    pub fn name(self) -> &'static str {
        match self {
            Flag::DataDir => "--data-dir",
            Flag::Dataset => "--dataset",
            Flag::Epochs => "--epochs",
            Flag::Steps => "--steps",
            Flag::Json => "--json",
            Flag::Plot => "--plot",
        }
    }
}

impl CommonArgs {
    fn is_set(&self, flag: Flag) -> bool {
        match flag {
            Flag::DataDir => self.data_dir.is_some(),
            Flag::Dataset => self.dataset.is_some(),
            Flag::Epochs => self.epochs.is_some(),
            Flag::Steps => self.steps.is_some(),
            Flag::Json => self.json.is_some(),
            Flag::Plot => self.plot.is_some(),
        }
    }

    /// Check the common flags before any work starts: every flag in `unused` that was given is
    /// refused by name (a flag silently ignored is a wrong answer to the question the user asked),
    /// `--epochs` and `--steps` must be at least 1, and the `--json` and `--plot` paths must be
    /// writable (so a long run does not fail at its very end).
    pub fn validate(&self, milestone: &str, unused: &[Flag]) -> Result<(), ArgError> {
        for &flag in unused {
            if self.is_set(flag) {
                return Err(ArgError(format!(
                    "{milestone} does not use {} (remove it)",
                    flag.name()
                )));
            }
        }
        if let Some(n) = self.epochs {
            at_least("--epochs", n, 1)?;
        }
        if let Some(n) = self.steps {
            at_least("--steps", n, 1)?;
        }
        if let Some(p) = &self.json {
            check_writable("--json", p)?;
        }
        if let Some(p) = &self.plot {
            check_writable("--plot", p)?;
        }
        Ok(())
    }
}

/// The most threads `--threads` accepts per core: beyond that, threads only add switching.
pub const MAX_THREADS_PER_CORE: usize = 4;

/// The cores this process may use (1 when the system cannot tell).
pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl CommonArgs {
    /// Apply `--threads` (see [`build_thread_pool`]); returns the threads in use. Call it first,
    /// before any parallel work.
    pub fn init_threads(&self) -> Result<usize, ArgError> {
        build_thread_pool(self.threads)
    }
}

/// Build rayon's global pool, which every parallel kernel uses, with `requested` threads, and
/// return the number in use. `None` keeps rayon's default (all cores, or `RAYON_NUM_THREADS`).
/// 0 and more than [`MAX_THREADS_PER_CORE`] times the cores are refused naming the flag, and so
/// is a pool that already runs a different number of threads (the global pool is built once).
pub fn build_thread_pool(requested: Option<usize>) -> Result<usize, ArgError> {
    let Some(n) = requested else {
        // rayon's default size, with the project's worker stack (see `models::runtime::on_pool`);
        // a pool built earlier is kept as it is.
        let _ = models::runtime::build_global_pool(0);
        return Ok(rayon::current_num_threads());
    };
    let cores = available_cores();
    let max = cores * MAX_THREADS_PER_CORE;
    if n == 0 || n > max {
        return Err(ArgError(format!(
            "--threads {n} is out of range: it must be between 1 and {max} \
             ({MAX_THREADS_PER_CORE} per core, {cores} cores here)"
        )));
    }
    match models::runtime::build_global_pool(n) {
        Ok(()) => Ok(n),
        Err(_) if rayon::current_num_threads() == n => Ok(n),
        Err(e) => Err(ArgError(format!(
            "--threads {n}: the thread pool already runs {} threads ({e})",
            rayon::current_num_threads()
        ))),
    }
}

/// Run a milestone's work on a worker of the thread pool ([`models::runtime::on_pool`]: the
/// sequential ops between parallel kernels stay on a worker, so each kernel wakes fewer
/// threads); an error comes back as its message. Call it after [`CommonArgs::init_threads`].
pub fn run_on_pool<T: Send>(
    work: impl FnOnce() -> Result<T, Box<dyn std::error::Error>> + Send,
) -> Result<T, Box<dyn std::error::Error>> {
    models::runtime::on_pool(|| work().map_err(|e| e.to_string())).map_err(Into::into)
}

/// A milestone's `main`: build the pool for `--threads` (`threads`, see [`build_thread_pool`]),
/// then run `work` on one of its workers ([`run_on_pool`]). `work` may check `--threads` again
/// through [`CommonArgs::init_threads`]: the pool it finds has the same size.
pub fn run_with_threads<T: Send>(
    threads: Option<usize>,
    work: impl FnOnce() -> Result<T, Box<dyn std::error::Error>> + Send,
) -> Result<T, Box<dyn std::error::Error>> {
    build_thread_pool(threads)?;
    run_on_pool(work)
}

/// Refuse `value` below `min`, naming the flag (instead of clamping it silently).
pub fn at_least(flag: &str, value: usize, min: usize) -> Result<(), ArgError> {
    if value < min {
        return Err(ArgError(format!(
            "{flag} {value} is out of range: it must be at least {min}"
        )));
    }
    Ok(())
}

/// Refuse `value` outside `min..=max`, naming the flag: a size that would exhaust memory is
/// refused up front instead of aborting on an allocation.
pub fn in_range(flag: &str, value: usize, min: usize, max: usize) -> Result<(), ArgError> {
    if !(min..=max).contains(&value) {
        return Err(ArgError(format!(
            "{flag} {value} is out of range: it must be between {min} and {max}"
        )));
    }
    Ok(())
}

/// Refuse a float flag outside `(0, max]` or not finite, naming the flag.
pub fn positive_finite(flag: &str, value: f64, max: f64) -> Result<(), ArgError> {
    if !(value.is_finite() && value > 0.0 && value <= max) {
        return Err(ArgError(format!(
            "{flag} {value} is out of range: it must be a number in (0, {max}]"
        )));
    }
    Ok(())
}

/// Check that an output file can be written, before any work: its folder exists, it is not a
/// folder itself, and a file can be created there (probed with a sibling file, removed at
/// once, so an existing output is left untouched).
pub fn check_writable(flag: &str, path: &std::path::Path) -> Result<(), ArgError> {
    let fail = |why: String| ArgError(format!("{flag} {}: {why}", path.display()));
    if path.is_dir() {
        return Err(fail("is a directory; give a file path".to_string()));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(fail(format!(
            "the folder {} does not exist",
            parent.display()
        )));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| fail("has no file name".to_string()))?;
    let probe = parent.join(format!(".{name}.{}.probe", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
        }
        Err(e) => return Err(fail(format!("cannot be written ({e})"))),
    }
    if path.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| fail(format!("cannot be written ({e})")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// `run_with_threads` refuses a bad `--threads` before the work starts, and runs the work on
    /// a pool worker otherwise.
    #[test]
    fn run_with_threads_checks_the_flag_then_runs_on_a_worker() {
        let mut ran = false;
        let err = run_with_threads(Some(0), || {
            ran = true;
            Ok(())
        })
        .unwrap_err();
        assert!(err.to_string().contains("--threads 0"), "{err}");
        assert!(!ran, "the work must not start");
        let on_worker = run_with_threads(None, || Ok(rayon::current_thread_index().is_some()));
        assert!(on_worker.unwrap(), "the work runs on a pool worker");
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        common: CommonArgs,
    }

    fn parse(args: &[&str]) -> CommonArgs {
        Cli::parse_from(std::iter::once("m").chain(args.iter().copied())).common
    }

    #[test]
    fn unused_zero_and_unwritable_flags_are_refused_by_name() {
        let e = parse(&["--epochs", "3"])
            .validate("xor-1969", &[Flag::Epochs])
            .unwrap_err();
        assert_eq!(e.0, "xor-1969 does not use --epochs (remove it)");
        let e = parse(&["--steps", "0"]).validate("m", &[]).unwrap_err();
        assert!(e.0.contains("--steps 0 is out of range"), "{e}");
        let dir = std::env::temp_dir();
        let e = parse(&["--json", dir.to_str().unwrap()])
            .validate("m", &[])
            .unwrap_err();
        assert!(e.0.contains("is a directory"), "{e}");
        let e = parse(&["--plot", "/nonexistent-folder/x.svg"])
            .validate("m", &[])
            .unwrap_err();
        assert!(e.0.contains("does not exist"), "{e}");
        let ok = dir.join(format!("tt-cli-{}.json", std::process::id()));
        assert!(parse(&["--json", ok.to_str().unwrap(), "--epochs", "1"])
            .validate("m", &[Flag::Steps])
            .is_ok());
        assert!(!ok.exists(), "the probe leaves nothing behind");
        assert!(positive_finite("--lr", 1e39, 10.0).is_err());
        assert!(positive_finite("--lr", f64::NAN, 10.0).is_err());
        assert!(positive_finite("--lr", 0.1, 10.0).is_ok());
        assert!(in_range("--hidden", 5, 1, 4).is_err());
        assert!(in_range("--hidden", 0, 1, 4).is_err());
        assert!(in_range("--hidden", 4, 1, 4).is_ok());
    }

    #[test]
    fn thread_counts_out_of_range_are_refused_before_the_pool_is_built() {
        let e = build_thread_pool(Some(0)).unwrap_err();
        assert!(e.0.starts_with("--threads 0 is out of range"), "{e}");
        let too_many = available_cores() * MAX_THREADS_PER_CORE + 1;
        let e = parse(&["--threads", &too_many.to_string()])
            .init_threads()
            .unwrap_err();
        assert!(
            e.0.contains(&format!("--threads {too_many} is out of range")),
            "{e}"
        );
        assert_eq!(parse(&[]).threads, None, "default: rayon's own count");
    }
}
