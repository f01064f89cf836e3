//! `oohgc-allocator`: the oohgc heap.
//!
//! A conservative collector's heap, usable as a global allocator: one large
//! address-space reservation committed in chunks; small objects (16 B ..=
//! 32 KiB) in size-class spans served by per-thread caches with lock-free fast
//! paths; large objects on their own page runs; side tables (page map, span
//! records, allocation bytes, mark bytes) outside the reservation; an O(1)
//! lock-free object map for any address; sweeping and returning long-empty
//! memory to the OS. It knows nothing about roots, stopping threads or dirty
//! tracking: the collector (`oohgc`) drives it.
//!
//! None of the heap's own metadata comes from the global allocator (this crate
//! *is* the global allocator of programs using `oohgc::GcAllocator`).
//!
//! Guarantees and limits:
//! - `alloc` returns zero-filled memory aligned to any power of two up to
//!   [`MAX_ALIGN`] (1 GiB); small objects (<= 32 KiB, align <= 4 KiB) come from
//!   size classes with internal fragmentation < 16 B (<= 128 B requests) or
//!   < 25 % (larger); large objects take their own page run (waste < 4 KiB).
//!   Small slots are zeroed when handed out (inline 16-byte stores up to 256 B).
//! - `find_object`, `try_mark`, `is_marked`, `for_each_object*` and
//!   `for_each_chunk` are lock-free and never allocate; they tolerate threads
//!   stopped anywhere, including inside `alloc`/`free`.
//! - Mark and allocation bits are side-table bytes outside the reservation,
//!   in ordinary pages (no `MADV_HUGEPAGE`: see `os.rs`).
//! - `sweep` returns pages that stayed free through two sweeps to the OS with
//!   `MADV_DONTNEED`; nothing else returns memory. Spans that empty out while
//!   owned by a thread cache go back to the pool when their owner next refills
//!   that size class or flushes its cache (thread exit).
//! - `alloc`/`free`/`realloc` are not async-signal-safe.
//! - Side tables reserve about 1/6 of `HeapConfig::reserve` in address space
//!   (MAP_NORESERVE; only touched parts use memory).
//!
//! Module map: `config` (settings, constants, errors), `heap` (reservation,
//! side tables, init), `size_class`, `span` (span records and their
//! invariants), `page_pool` (free pages, growth, return to the OS),
//! `thread_cache` (fast paths, refill, frees), `large`, `api` (alloc/free/
//! realloc), `object_map` (find_object, enumeration), `mark`, `sweep`,
//! `trigger` (budget and hooks), `stats`, `lock`, `os`.

#![warn(missing_docs)]

mod api;
mod config;
mod heap;
mod large;
mod lock;
mod mark;
mod object;
mod object_map;
mod os;
mod page_pool;
mod size_class;
mod span;
mod stats;
mod sweep;
mod thread_cache;
mod trigger;

pub use api::{alloc, free, realloc, set_checked_free, usable_size};
pub use config::{
    HeapConfig, HeapError, COMMIT_CHUNK, DEFAULT_RESERVE, GRANULE, MAX_ALIGN, MAX_RESERVE,
    MIN_HEAP, PAGE_SIZE,
};
pub use heap::{heap_bounds, heap_extent, init, is_initialized, set_max_heap};
pub use lock::{fork_acquire, fork_release, lock, HeapGuard};
pub use mark::{clear_marks, is_marked, set_allocate_black, try_mark};
pub use object::{MarkAttempt, ObjectInfo, ObjectKind};
pub use object_map::{
    find_object, for_each_marked_scanned_object_in, for_each_object, for_each_object_in,
    mark_object_at, mark_object_at_in_heap, mark_slot,
};
pub use page_pool::{for_each_chunk, set_chunk_hook, set_discard_hook};
pub use size_class::{MAX_SMALL_SIZE, NUM_CLASSES};
pub use stats::{committed_bytes, stats, HeapStats};
pub use sweep::{fork_acquire_sweeps, fork_release_sweeps, sweep, SweepStats};
pub use thread_cache::flush_current_thread_cache;
pub use trigger::{allocated_since_reset, reset_allocation_counter, set_budget, set_hooks, Hooks};
