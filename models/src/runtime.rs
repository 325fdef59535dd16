//! Process-level tuning for training binaries.
//!
//! Training allocates and frees the same large activation buffers (hundreds of KB) every step.
//! glibc's malloc serves such sizes with `mmap` and, after a free, may return the pages to the
//! operating system, so the next step faults every page back in: measured here, a softmax
//! forward+backward on (12, 4, 64, 64) took about 680 µs that way against 130 µs with the pages
//! kept. [`tune_allocator`] raises the mmap and trim thresholds once at start-up so freed
//! buffers are reused. It only changes performance, never results.

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
/// Graphs are built and freed inside `work` (autograd's variables do not cross threads), so
/// `work` creates its model itself and returns only plain results.
pub fn on_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    // `scope` called from outside the pool runs its body on a worker of the global pool.
    rayon::scope(|_| work())
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
}
