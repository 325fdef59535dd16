//! Peak memory of the process, and the bytes a model's parameters take.
//!
//! On Linux the kernel keeps the process's high-water mark of resident memory, `VmHWM` in
//! `/proc/self/status`: the most physical memory the process has held at once (heap, stacks,
//! code, the dataset, every model loaded, not only the code under test). Writing `5` to
//! `/proc/self/clear_refs` resets that mark to the current resident size, so reading it after a
//! run gives the peak *during* the run. Where the reset is not permitted the mark covers the
//! whole life of the process, and where `/proc` does not exist (macOS, Windows) there is no
//! reading at all; [`PeakSource`] says which case a number comes from.

use nn::Module;

/// Where a peak-memory number comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeakSource {
    /// `VmHWM` after resetting it through `/proc/self/clear_refs`: the peak during the run.
    HighWaterMarkSinceReset,
    /// `VmHWM` without a reset (not permitted here): the peak since the process started.
    HighWaterMarkSinceStart,
    /// No `/proc/self/status` (not Linux): no reading.
    Unavailable,
}

impl PeakSource {
    /// The name written in reports.
    pub fn name(self) -> &'static str {
        match self {
            PeakSource::HighWaterMarkSinceReset => "vmhwm-since-reset",
            PeakSource::HighWaterMarkSinceStart => "vmhwm-since-process-start",
            PeakSource::Unavailable => "unavailable",
        }
    }

    /// Every name [`PeakSource::name`] can return.
    pub const NAMES: [&'static str; 3] = [
        "vmhwm-since-reset",
        "vmhwm-since-process-start",
        "unavailable",
    ];
}

/// A peak resident-memory reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeakMemory {
    /// Peak resident bytes (`None` when unavailable).
    pub bytes: Option<u64>,
    /// What the number covers.
    pub source: PeakSource,
}

/// Read a `Vm*` line (in kB) of `/proc/self/status` as bytes.
pub fn read_status_bytes(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_bytes(&status, key)
}

/// The value of `key` (e.g. `VmHWM`) in the text of a `/proc/<pid>/status` file, in bytes.
pub fn parse_status_bytes(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        let mut parts = rest.split_whitespace();
        let value: u64 = parts.next()?.parse().ok()?;
        match parts.next() {
            Some("kB") => Some(value * 1024),
            None => Some(value),
            Some(_) => None,
        }
    })
}

/// Reset the high-water mark to the current resident size; `true` when the kernel accepted.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Tracks the peak resident memory around a piece of work: [`PeakTracker::start`] resets the
/// mark where allowed, [`PeakTracker::finish`] reads it.
#[derive(Clone, Copy, Debug)]
pub struct PeakTracker {
    was_reset: bool,
}

impl PeakTracker {
    /// Start tracking (resets `VmHWM` when permitted).
    pub fn start() -> PeakTracker {
        PeakTracker {
            was_reset: reset_peak(),
        }
    }

    /// The peak since [`PeakTracker::start`] (or since the process started, when the reset
    /// was refused), and which of the two it is.
    pub fn finish(self) -> PeakMemory {
        match read_status_bytes("VmHWM") {
            Some(bytes) => PeakMemory {
                bytes: Some(bytes),
                source: if self.was_reset {
                    PeakSource::HighWaterMarkSinceReset
                } else {
                    PeakSource::HighWaterMarkSinceStart
                },
            },
            None => PeakMemory {
                bytes: None,
                source: PeakSource::Unavailable,
            },
        }
    }
}

/// Bytes of a model's parameters as stored in memory (`f32`: 4 bytes each).
pub fn param_bytes(model: &dyn Module) -> usize {
    model.num_parameters() * std::mem::size_of::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        let status = "Name:\tx\nVmPeak:\t  2000 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_status_bytes(status, "VmHWM"), Some(1234 * 1024));
        assert_eq!(parse_status_bytes(status, "VmRSS"), Some(1000 * 1024));
        assert_eq!(parse_status_bytes(status, "VmSwap"), None);
        // `VmHWMx` is not `VmHWM`.
        assert_eq!(parse_status_bytes("VmHWMx: 5 kB\n", "VmHWM"), None);
    }

    #[test]
    fn peak_covers_an_allocation_on_linux() {
        let tracker = PeakTracker::start();
        let big = vec![1u8; 64 << 20];
        std::hint::black_box(&big);
        let peak = tracker.finish();
        if cfg!(target_os = "linux") {
            let bytes = peak.bytes.expect("VmHWM on Linux");
            assert!(
                bytes >= 64 << 20,
                "peak {bytes} below the 64 MiB just touched"
            );
            assert_ne!(peak.source, PeakSource::Unavailable);
        } else {
            assert_eq!(peak.source, PeakSource::Unavailable);
        }
    }
}
