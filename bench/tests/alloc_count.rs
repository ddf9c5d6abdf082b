//! The counting allocator counts: with it installed, a heap allocation moves the counter, and
//! code that allocates nothing leaves it alone.

use daos_bench::alloc_count::{CountingAlloc, allocations, per_op};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[test]
fn counts_allocations() {
    assert_eq!(per_op(None, Some(5), 1), None, "not installed yet");
    CountingAlloc::mark_installed();
    let before = allocations().expect("installed");
    let v: Vec<u64> = std::hint::black_box(Vec::with_capacity(100));
    let after = allocations().expect("installed");
    assert!(after > before, "an allocation was not counted");
    drop(v);
    assert_eq!(per_op(Some(10), Some(30), 4), Some(5.0));
    assert_eq!(per_op(Some(10), Some(30), 0), None);
}
