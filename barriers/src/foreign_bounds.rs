//! Cached mappings of threads that never registered.
//!
//! The stack of such a thread is found as the `/proc/self/maps` mapping that
//! contains its suspended stack pointer, and its TLS (when outside the stack,
//! as for the main thread) as the mapping around its thread pointer. Reading
//! `/proc/self/maps` costs tens of microseconds per stop, so the result is
//! kept per thread, keyed by thread id *and* thread pointer, and reused while
//! the stack pointer is still inside the cached stack mapping. Only the
//! thread holding the world lock uses the cache.

use core::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use crate::memory_map::Range;
use crate::raw_table::{RawTable, ZeroValid};

/// Cached entries (a direct-mapped cache indexed by thread id).
const ENTRIES: usize = 256;

/// The mappings of one thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ThreadMappings {
    /// The mapping that contains its stack.
    pub stack: Range,
    /// The mapping that contains its thread pointer, if known.
    pub tls: Option<Range>,
}

struct Entry {
    tid: AtomicI32,
    thread_pointer: AtomicUsize,
    stack_start: AtomicUsize,
    stack_end: AtomicUsize,
    tls_start: AtomicUsize,
    tls_end: AtomicUsize,
}

// SAFETY: atomics only; tid 0 marks an empty entry.
unsafe impl ZeroValid for Entry {}

static CACHE: RawTable<Entry> = RawTable::new(ENTRIES);

fn entry(tid: i32) -> &'static Entry {
    &CACHE.entries()[tid.unsigned_abs() as usize % ENTRIES]
}

/// The cached mappings of `tid`, if they still describe it: same thread
/// pointer, and `sp` inside the cached stack mapping.
pub(crate) fn lookup(tid: i32, thread_pointer: usize, sp: usize) -> Option<ThreadMappings> {
    let e = entry(tid);
    if e.tid.load(Ordering::Relaxed) != tid
        || e.thread_pointer.load(Ordering::Relaxed) != thread_pointer
    {
        return None;
    }
    let stack = Range {
        start: e.stack_start.load(Ordering::Relaxed),
        end: e.stack_end.load(Ordering::Relaxed),
    };
    if !stack.contains(sp) {
        return None;
    }
    let tls = Range {
        start: e.tls_start.load(Ordering::Relaxed),
        end: e.tls_end.load(Ordering::Relaxed),
    };
    Some(ThreadMappings {
        stack,
        tls: (!tls.is_empty()).then_some(tls),
    })
}

/// Remembers the mappings of `tid`.
pub(crate) fn store(tid: i32, thread_pointer: usize, mappings: ThreadMappings) {
    let e = entry(tid);
    e.tid.store(tid, Ordering::Relaxed);
    e.thread_pointer.store(thread_pointer, Ordering::Relaxed);
    e.stack_start.store(mappings.stack.start, Ordering::Relaxed);
    e.stack_end.store(mappings.stack.end, Ordering::Relaxed);
    let tls = mappings.tls.unwrap_or_default();
    e.tls_start.store(tls.start, Ordering::Relaxed);
    e.tls_end.store(tls.end, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_only_for_same_thread_pointer_and_stack() {
        let mappings = ThreadMappings {
            stack: Range {
                start: 0x1000,
                end: 0x9000,
            },
            tls: Some(Range {
                start: 0xa000,
                end: 0xb000,
            }),
        };
        store(77, 0x8f00, mappings);
        assert_eq!(lookup(77, 0x8f00, 0x2000), Some(mappings));
        assert_eq!(
            lookup(77, 0x8f00, 0x9000),
            None,
            "sp outside the stack mapping"
        );
        assert_eq!(lookup(77, 0x7f00, 0x2000), None, "another thread pointer");
        assert_eq!(
            lookup(77 + ENTRIES as i32, 0x8f00, 0x2000),
            None,
            "another tid"
        );
        store(
            78,
            1,
            ThreadMappings {
                stack: mappings.stack,
                tls: None,
            },
        );
        assert_eq!(lookup(78, 1, 0x1000).unwrap().tls, None);
    }
}
