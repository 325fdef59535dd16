//! What machine a measurement ran on: CPU model, cores, the SIMD level the tensor kernels
//! dispatch to, threads, OS, compiler, crate version and git commit. A number without these is
//! not reproducible: the same code is twice as fast with AVX-512 as without, and a benchmark on
//! a machine that was building at the same time is slower than one on an idle machine.

use std::process::Command;

use serde_json::{json, Value};

/// The machine and build behind a set of measurements.
#[derive(Clone, Debug, PartialEq)]
pub struct SystemInfo {
    /// `model name` of `/proc/cpuinfo` (or the architecture where there is none).
    pub cpu_model: String,
    /// Logical cores the process may use.
    pub cores: usize,
    /// The vector instruction set the tensor kernels run with (see [`simd_level`]).
    pub simd: String,
    /// Threads of the compute pool (rayon).
    pub threads: usize,
    /// Operating system and, on Linux, the kernel release.
    pub os: String,
    /// `rustc --version` of the compiler that built this binary.
    pub rustc: String,
    /// Version of the project's crates.
    pub crate_version: String,
    /// `git rev-parse --short HEAD` of the working directory, when it is a repository.
    pub git_commit: Option<String>,
}

pub use tensor::simd::{simd_level, GEMM_AVX512_BUILT};

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

fn os() -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!(" {}", s.trim()))
        .unwrap_or_default();
    format!(
        "{}{kernel} ({})",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

fn git_commit() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    let commit = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !commit.is_empty()).then_some(commit)
}

impl SystemInfo {
    /// Read everything from the running system.
    pub fn collect() -> SystemInfo {
        SystemInfo {
            cpu_model: cpu_model(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            simd: if GEMM_AVX512_BUILT {
                simd_level().to_string()
            } else {
                format!("{} (AVX2 build: GEMM without AVX-512)", simd_level())
            },
            threads: rayon::current_num_threads(),
            os: os(),
            rustc: env!("TINYTORCH_RUSTC_VERSION").to_string(),
            crate_version: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: git_commit(),
        }
    }

    /// The report's `system` object.
    pub fn to_json(&self) -> Value {
        json!({
            "cpu_model": self.cpu_model,
            "cores": self.cores,
            "simd": self.simd,
            "threads": self.threads,
            "os": self.os,
            "rustc": self.rustc,
            "crate_version": self.crate_version,
            "git_commit": self.git_commit,
        })
    }

    /// One line for the terminal.
    pub fn line(&self) -> String {
        format!(
            "{} | {} cores, {} threads | SIMD {} (int8 GEMM {:?}) | {} | {} | tinytorch {}{}",
            self.cpu_model,
            self.cores,
            self.threads,
            self.simd,
            tensor::gemm_i8::I8Kernel::best(),
            self.os,
            self.rustc,
            self.crate_version,
            self.git_commit
                .as_deref()
                .map(|c| format!(" @ {c}"))
                .unwrap_or_default()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_this_machine() {
        let info = SystemInfo::collect();
        assert!(info.cores >= 1 && info.threads >= 1);
        assert!(info.rustc.starts_with("rustc "), "{}", info.rustc);
        assert_eq!(info.crate_version, env!("CARGO_PKG_VERSION"));
        #[cfg(target_arch = "x86_64")]
        assert!(info.simd.starts_with(simd_level().name()), "{}", info.simd);
        let j = info.to_json();
        assert!(j["cpu_model"].is_string() && j["cores"].is_u64());
    }
}
