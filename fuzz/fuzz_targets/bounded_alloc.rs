//! A global allocator for the fuzz targets that aborts on any single allocation above
//! [`LIMIT`]: the inputs are at most a few hundred KB, so a larger request is memory out of
//! proportion to what the input describes (a size field trusted before it is checked). An
//! abort is a crash libFuzzer records with its input, with or without a sanitizer (the
//! sanitizer's own `-malloc_limit_mb` needs one).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;

/// The largest single allocation a fuzzed input may cause.
pub const LIMIT: usize = 256 << 20;

/// [`System`] with a per-allocation ceiling.
pub struct Bounded;

fn refuse(size: usize) -> ! {
    // stderr is unbuffered: writing a fixed message does not allocate.
    let _ = std::io::stderr().write_all(b"bounded_alloc: one allocation above the 256 MiB limit\n");
    let _ = size;
    std::process::abort()
}

unsafe impl GlobalAlloc for Bounded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > LIMIT {
            refuse(layout.size());
        }
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > LIMIT {
            refuse(layout.size());
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > LIMIT {
            refuse(new_size);
        }
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}
