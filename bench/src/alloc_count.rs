//! Counts heap allocations, so a benchmark can report allocations per operation (the hot path
//! should show 0). `daos_bench` installs [`CountingAlloc`] as its global allocator; a program
//! that does not sees [`allocations`] return `None`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static COUNT: AtomicU64 = AtomicU64::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    // A const-initialised Cell has no destructor, so touching it never allocates or registers
    // anything: safe to use from inside the allocator.
    static THREAD_COUNT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn count() {
    COUNT.fetch_add(1, Ordering::Relaxed);
    // During thread teardown the slot may be gone; then the allocation is only counted
    // process-wide.
    let _ = THREAD_COUNT.try_with(|c| c.set(c.get() + 1));
}

/// The system allocator, counting every allocation and reallocation.
pub struct CountingAlloc;

impl CountingAlloc {
    /// Call from `main` of a binary that made this its `#[global_allocator]`.
    pub fn mark_installed() {
        INSTALLED.store(true, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees hold; the counter is a relaxed atomic that never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded with the caller's layout, which the caller guarantees is valid.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`, as the caller
        // guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocations so far in this process, if the counting allocator is installed.
pub fn allocations() -> Option<u64> {
    INSTALLED
        .load(Ordering::Relaxed)
        .then(|| COUNT.load(Ordering::Relaxed))
}

/// Allocations so far by the calling thread, if the counting allocator is installed.
pub fn thread_allocations() -> Option<u64> {
    INSTALLED
        .load(Ordering::Relaxed)
        .then(|| THREAD_COUNT.try_with(|c| c.get()).unwrap_or(0))
}

/// Allocations per operation between two readings of [`allocations`].
pub fn per_op(before: Option<u64>, after: Option<u64>, ops: u64) -> Option<f64> {
    match (before, after) {
        (Some(b), Some(a)) if ops > 0 => Some(a.saturating_sub(b) as f64 / ops as f64),
        _ => None,
    }
}
