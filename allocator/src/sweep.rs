//! Sweeping: reclaim every allocated Managed/ManagedNoScan object that is
//! unmarked (Manual objects never), give entirely dead detached spans and
//! dead large objects back to the page pool, and return pages that stayed
//! pooled for two sweeps to the OS.
//!
//! Works with the world stopped (threads stopped mid-alloc/free) and
//! concurrently with mutators (who must then allocate black): the sweep
//! clears allocation bytes with a compare-exchange and hands freed small
//! slots to the span's owner through `thread_free`, never touching owner-only
//! fields. The heap lock is held only while a span goes back to the pool, so
//! a long sweep does not stall other threads' slow paths; sweeps are
//! serialised by a lock of their own. Blocks owned by a thread cache that become empty are retired by
//! their owner at its next refill of that class or when its cache is flushed;
//! detached (FULL) spans whose objects all die are claimed here directly.

use crate::heap::{is_initialized, layout};
use crate::large::sweep_free_large;
use crate::lock::{with_heap_lock, RawLock};
use crate::object_map::for_each_span;
use crate::page_pool;
use crate::span::{SpanMeta, SpanView, SPAN_LARGE};
use crate::thread_cache::{claim, claimable, push_chain_announced};
use core::sync::atomic::Ordering;

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default)]
pub struct SweepStats {
    /// Objects reclaimed.
    pub objects_freed: usize,
    /// Their slot sizes, summed.
    pub bytes_freed: usize,
    /// Slot bytes of the objects that stay: marked Managed/ManagedNoScan and all Manual.
    pub live_bytes: usize,
    /// Spans (small spans and large objects) that went back to the page pool.
    pub blocks_emptied: usize,
    /// Bytes given back to the OS (MADV_DONTNEED) at the end of this sweep.
    pub bytes_returned_to_os: usize,
}

/// Serialises sweeps (the heap lock is taken only around pool updates, so a
/// long sweep does not stall allocating threads' slow paths).
static SWEEP_LOCK: RawLock = RawLock::new();

/// Wait for a running sweep and hold sweeps off until
/// [`fork_release_sweeps`]: a `fork()` child must not inherit the sweep
/// lock held by a thread that does not exist there. A sweep may run while
/// the collector holds its pause locks, so take this after those and before
/// the heap lock.
pub fn fork_acquire_sweeps() {
    SWEEP_LOCK.lock();
}

/// Undo [`fork_acquire_sweeps`] (parent and child: the forking thread owns
/// the lock in both).
pub fn fork_release_sweeps() {
    SWEEP_LOCK.unlock();
}

/// Reclaims every unmarked Managed/ManagedNoScan object.
pub fn sweep() -> SweepStats {
    let mut st = SweepStats::default();
    if !is_initialized() {
        return st;
    }
    SWEEP_LOCK.lock();
    let l = layout();
    for_each_span(0, usize::MAX, &mut |span, v, gen| {
        if v.state == SPAN_LARGE {
            if l.alloc_byte(v.head, 0).load(Ordering::Acquire) != 1 {
                return;
            }
            let marked = l.mark_byte(v.head, 0).load(Ordering::Acquire) != 0;
            if !v.kind.is_swept() || marked {
                st.live_bytes += v.obj_size;
            } else {
                let freed = with_heap_lock(|| {
                    if span.unchanged(gen) {
                        sweep_free_large(span, v.head)
                    } else {
                        0
                    }
                });
                if freed > 0 {
                    st.objects_freed += 1;
                    st.bytes_freed += freed;
                    st.blocks_emptied += 1;
                }
            }
        } else {
            sweep_small(span, &v, &mut st);
        }
    });
    st.bytes_returned_to_os = with_heap_lock(page_pool::end_sweep_and_return_old_pages);
    SWEEP_LOCK.unlock();
    st
}

fn sweep_small(span: &'static SpanMeta, v: &SpanView, st: &mut SweepStats) {
    let l = layout();
    let mut allocated = 0;
    let mut dead = 0;
    for w in 0..v.slots.div_ceil(8) {
        // Allocation bytes first (Acquire): a slot allocated black is seen marked.
        let a = l.alloc_word(v.head, w).load(Ordering::Acquire);
        if a == 0 {
            continue;
        }
        let m = l.mark_word(v.head, w).load(Ordering::Relaxed);
        allocated += a.count_ones() as usize;
        if v.kind.is_swept() {
            // bytes are 0 or 1: allocated and unmarked = a & !m
            dead += (a & !m).count_ones() as usize;
        }
    }
    st.live_bytes += (allocated - dead) * v.obj_size;
    if dead == 0 {
        return;
    }
    let claimed = dead == allocated
        && with_heap_lock(|| {
            if !(claimable(span) && claim(span)) {
                return false;
            }
            // The owner has let go of the span and every object in it is dead.
            for slot in 0..v.slots {
                l.alloc_byte(v.head, slot).store(0, Ordering::Release);
            }
            span.release();
            true
        });
    if claimed {
        st.objects_freed += dead;
        st.bytes_freed += dead * v.obj_size;
        st.blocks_emptied += 1;
        return;
    }
    // Freed slots are chained locally and handed to the owner in one push.
    // The free is announced (in_progress) before any allocation byte is
    // cleared, so the owner cannot retire the span under us.
    span.in_progress.fetch_add(1, Ordering::SeqCst);
    let mut first: *mut u8 = core::ptr::null_mut();
    let mut last: *mut u8 = core::ptr::null_mut();
    for w in 0..v.slots.div_ceil(8) {
        let a = l.alloc_word(v.head, w).load(Ordering::Acquire);
        if a & !l.mark_word(v.head, w).load(Ordering::Relaxed) == 0 {
            continue;
        }
        for slot in 8 * w..(8 * w + 8).min(v.slots) {
            let a = l.alloc_byte(v.head, slot);
            if a.load(Ordering::Acquire) == 1
                && l.mark_byte(v.head, slot).load(Ordering::Relaxed) == 0
                && a.compare_exchange(1, 0, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                let p = v.slot_addr(slot) as *mut u8;
                // SAFETY: we cleared the slot's allocation byte: it is free and ours.
                unsafe { *(p as *mut *mut u8) = first };
                first = p;
                if last.is_null() {
                    last = p;
                }
                st.objects_freed += 1;
                st.bytes_freed += v.obj_size;
            }
        }
    }
    if !first.is_null() {
        // SAFETY: the chain holds slots of this small span whose allocation bytes
        // we cleared after announcing the free.
        unsafe { push_chain_announced(span, first, last) };
    }
    span.in_progress.fetch_sub(1, Ordering::Release);
}
