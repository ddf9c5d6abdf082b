//! What the per-target index costs in memory per object, counted by a global allocator
//! (live bytes): 64-byte single values, one dkey and one akey each, as `daos_bench io` writes
//! them. This file holds one test so nothing else allocates meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use daos_engine::store::{SimMedia, Store};

struct Live;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only a counter is kept.
unsafe impl GlobalAlloc for Live {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's layout is passed on as it is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as `dealloc` and `alloc`.
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static GLOBAL: Live = Live;

/// The bound README.md states (index bytes per 64-byte object under one dkey/akey).
const BYTES_PER_OBJECT_MAX: isize = 1_600;

#[test]
fn the_index_costs_a_bounded_number_of_bytes_per_object_and_is_freed_with_its_store() {
    const N: isize = 20_000;
    let before_media = LIVE.load(Ordering::Relaxed);
    let mut s = Store::open(SimMedia::new(32 << 20), SimMedia::new(1 << 20)).expect("open");
    let base = LIVE.load(Ordering::Relaxed);
    let value = [7u8; 64];
    for oid in 0..N as u128 {
        s.update(5, oid + 1, b"dkey0", b"akey0", &value)
            .expect("update");
    }
    let per_object = (LIVE.load(Ordering::Relaxed) - base) / N;
    println!("index: {per_object} bytes per 64-byte object");
    assert!(
        per_object <= BYTES_PER_OBJECT_MAX,
        "{per_object} bytes per object (bound {BYTES_PER_OBJECT_MAX})"
    );
    assert!(per_object > 0);
    drop(s);
    let left = LIVE.load(Ordering::Relaxed) - before_media;
    assert!(
        left < 64 << 10,
        "{left} bytes left after the store was dropped"
    );
}
