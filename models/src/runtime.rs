//! Process-level tuning for training binaries.
//!
//! Training allocates and frees the same large activation buffers (hundreds of KB) every step.
//! glibc's malloc serves such sizes with `mmap` and, after a free, may return the pages to the
//! operating system, so the next step faults every page back in: measured here, a softmax
//! forward+backward on (12, 4, 64, 64) took about 680 µs that way against 130 µs with the pages
//! kept. [`tune_allocator`] raises the mmap and trim thresholds once at start-up so freed
//! buffers are reused. It only changes performance, never results.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Keep freed buffers of up to 64 MiB in the heap for reuse (no-op outside glibc Linux).
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const LIMIT: libc::c_int = 64 << 20;
        // SAFETY: mallopt only adjusts allocator parameters; it is safe to call at any time.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, LIMIT);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 2 * LIMIT);
        }
    }
}

/// Stack size of rayon's worker threads when the project builds the pool: the 8 MiB of a
/// program's main thread, because [`on_pool`] moves a program's main work onto a worker (a
/// spawned thread's default is 2 MiB).
pub const WORKER_STACK_BYTES: usize = 8 << 20;

/// Build rayon's global pool (the one every parallel kernel uses) with `threads` workers, or
/// rayon's default number (all cores, or `RAYON_NUM_THREADS`) for 0, each with a
/// [`WORKER_STACK_BYTES`] stack. Fails when the global pool already exists.
pub fn build_global_pool(threads: usize) -> Result<(), rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .stack_size(WORKER_STACK_BYTES)
        .build_global()
}

/// Run `work` on a worker thread of rayon's global pool, and wait for it.
///
/// Why: a thread outside the pool (a program's main thread) hands each parallel kernel to the
/// pool and sleeps until it is done, so every kernel wakes a sleeping worker, and then the main
/// thread again. Run on a worker, the sequential ops between kernels stay on that worker and a
/// kernel only needs the other workers, which are often still spinning from the last one.
/// Measured on a 2-core Zen 4, AVX-512 build (`benches/README.md`): a 768x128x512 product
/// called 1 ms after the previous one took 1010 us from the main thread and 599 us on a worker
/// (520 and 481 us back to back); a nanogpt-baby training step went from 28.6-33.7 to
/// 27.2-28.4 ms (`train_step` medians, four alternating pairs).
///
/// While `work` runs, the pool's other workers stay ready instead of going to sleep between
/// kernels ([`stay_ready`]): a kernel after a stretch of sequential work no longer waits for a
/// sleeping worker to wake. Measured on the same machine (768x128x512 product after 1 ms of
/// sequential work, medians of 200): 471-476 us against 523-598 without helpers.
///
/// Graphs are built and freed inside `work` (autograd's variables do not cross threads), so
/// `work` creates its model itself and returns only plain results.
pub fn on_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    let done = &AtomicBool::new(false);
    // `scope` called from outside the pool runs its body on a worker of the global pool.
    rayon::scope(|scope| {
        // Set even if `work` panics, so the helpers stop and the scope can end.
        let _stop = StopOnDrop(done);
        let owner = rayon::current_thread_index();
        for _ in 1..rayon::current_num_threads() {
            scope.spawn(move |_| stay_ready(done, owner));
        }
        work()
    })
}

/// Sets the flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// How long a helper finds no work before it naps between checks (evaluation, data loading,
/// printing: stretches where even a yielding loop would only take the core from others).
const IDLE_BEFORE_NAP: Duration = Duration::from_millis(2);

/// A nap's length: about the most a kernel after a long idle stretch waits for the helper (it
/// starts on its own worker meanwhile).
const NAP: Duration = Duration::from_micros(100);

/// A helper worker's loop while [`on_pool`]'s work runs: run any pending pool job (halves of
/// the kernels' joins), else give the core to any other runnable thread and look again, until
/// `done`.
///
/// Why: an idle rayon worker soon goes to sleep, and waking it takes a system call on this
/// side and a scheduler wake-up on its core, which every kernel after a stretch of sequential
/// work paid: on a 2-vCPU Zen 4, a 768x128x512 product called 1 ms after the previous one took
/// about 120 us longer than back to back (`benches/README.md`). The helper stays runnable
/// instead (OpenMP runtimes, PyTorch's threads, wait actively the same way), but yields rather
/// than spins: a busy spin took the core from other processes, measured with the real-data
/// milestone tests (two tests at a time on 2 cores, each starting a training binary):
/// 27.3-29.0 s spinning, 20.3-21.3 yielding, 19.5-21.3 without helpers (two runs each).
fn stay_ready(done: &AtomicBool, owner: Option<usize>) {
    // The worker running the work may pick up its own helper while it waits in a join: it
    // must go back to the work at once (the helper would loop until the work is done).
    if rayon::current_thread_index() == owner {
        return;
    }
    let mut idle_since = Instant::now();
    while !done.load(Ordering::Acquire) {
        if let Some(rayon::Yield::Executed) = rayon::yield_now() {
            idle_since = Instant::now();
        } else if idle_since.elapsed() < IDLE_BEFORE_NAP {
            std::thread::yield_now();
        } else {
            std::thread::sleep(NAP);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The work runs on a worker of the global pool (not on the calling thread), and its
    /// result comes back.
    #[test]
    fn on_pool_runs_the_work_on_a_pool_worker() {
        assert_eq!(
            rayon::current_thread_index(),
            None,
            "a test thread is not a worker"
        );
        let (index, value) = on_pool(|| (rayon::current_thread_index(), 6 * 7));
        assert!(index.is_some(), "ran on a worker");
        assert_eq!(value, 42);
    }

    /// Parallel kernels inside the work still complete (the helpers run their halves), and a
    /// second call works after the first (the helpers of the first have stopped).
    #[test]
    fn parallel_work_inside_on_pool_completes() {
        use rayon::prelude::*;
        for _ in 0..2 {
            let sum: u64 = on_pool(|| (0..100_000u64).into_par_iter().map(|x| x % 7).sum());
            assert_eq!(sum, (0..100_000u64).map(|x| x % 7).sum::<u64>());
        }
    }

    /// A panic in the work reaches the caller instead of leaving the helpers spinning and the
    /// call hanging.
    #[test]
    fn a_panic_in_the_work_reaches_the_caller() {
        let result = std::panic::catch_unwind(|| on_pool(|| panic!("work failed")));
        assert!(result.is_err());
        assert_eq!(on_pool(|| 1 + 1), 2, "the pool still works");
    }

    /// Several threads calling `on_pool` at once all finish: with as many callers as workers,
    /// each worker runs one caller's work and may run another caller's helper, which keeps
    /// running that caller's jobs, so no call waits on a helper forever.
    #[test]
    fn concurrent_callers_all_finish() {
        use rayon::prelude::*;
        let callers = rayon::current_num_threads() + 2;
        let handles: Vec<_> = (0..callers as u64)
            .map(|c| {
                std::thread::spawn(move || {
                    on_pool(|| (0..50_000u64).into_par_iter().map(|x| x * c).sum::<u64>())
                })
            })
            .collect();
        for (c, h) in handles.into_iter().enumerate() {
            let want: u64 = (0..50_000u64).map(|x| x * c as u64).sum();
            assert_eq!(h.join().expect("no panic"), want);
        }
    }
}
