//! The collection trigger: allocation counting, the budget, and the hooks
//! through which the heap calls the collector. Policy lives in the collector.

use crate::lock::HEAP_LOCK;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Callbacks into the collector.
#[derive(Clone, Copy, Debug)]
pub struct Hooks {
    /// Called once when allocation since the last reset passes the budget (from
    /// the allocating thread's slow path, with no allocator lock held).
    pub budget_exceeded: fn(),
    /// Called when an allocation of `bytes_needed` cannot be satisfied within
    /// `max_heap`; the collector may collect. Returning true retries once.
    pub out_of_memory: fn(bytes_needed: usize) -> bool,
}

static BUDGET_HOOK: AtomicUsize = AtomicUsize::new(0);
static OOM_HOOK: AtomicUsize = AtomicUsize::new(0);
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static BUDGET: AtomicUsize = AtomicUsize::new(usize::MAX);
static FIRED: AtomicBool = AtomicBool::new(false);

/// Installs the collector's hooks.
pub fn set_hooks(hooks: Hooks) {
    BUDGET_HOOK.store(hooks.budget_exceeded as usize, Ordering::Release);
    OOM_HOOK.store(hooks.out_of_memory as usize, Ordering::Release);
}

/// After `bytes` allocated since the last reset, `hooks.budget_exceeded` is called
/// (once, until [`reset_allocation_counter`] or the next `set_budget`: either
/// re-arms it). Counting is per thread and folded into the global count on
/// slow paths, so the call may come late by up to one span per size class and
/// thread.
pub fn set_budget(bytes: usize) {
    BUDGET.store(bytes, Ordering::Release);
    FIRED.store(false, Ordering::Release);
}

/// Starts a new budget period.
pub fn reset_allocation_counter() {
    crate::thread_cache::flush_allocation_count();
    ALLOCATED.store(0, Ordering::Release);
    FIRED.store(false, Ordering::Release);
}

/// Bytes allocated since the last reset (slot sizes; other threads' counts
/// are included once they pass a slow path).
pub fn allocated_since_reset() -> usize {
    ALLOCATED.load(Ordering::Acquire) + crate::thread_cache::unflushed_allocation_count()
}

pub(crate) fn note_allocated(bytes: usize) {
    ALLOCATED.fetch_add(bytes, Ordering::Relaxed);
}

/// Calls the budget hook if the budget is exceeded and it was not called yet.
/// Skipped while this thread holds the heap lock.
pub(crate) fn maybe_fire_budget() {
    if ALLOCATED.load(Ordering::Relaxed) < BUDGET.load(Ordering::Relaxed) || HEAP_LOCK.held_by_me()
    {
        return;
    }
    let hook = BUDGET_HOOK.load(Ordering::Acquire);
    if hook != 0 && !FIRED.swap(true, Ordering::AcqRel) {
        // SAFETY: stored from a `fn()` in set_hooks.
        let hook: fn() = unsafe { core::mem::transmute::<usize, fn()>(hook) };
        hook();
    }
}

/// Asks the collector to make room for `bytes`; true = retry the allocation.
pub(crate) fn out_of_memory(bytes: usize) -> bool {
    let hook = OOM_HOOK.load(Ordering::Acquire);
    if hook == 0 || HEAP_LOCK.held_by_me() {
        return false;
    }
    // SAFETY: stored from a `fn(usize) -> bool` in set_hooks.
    let hook: fn(usize) -> bool = unsafe { core::mem::transmute::<usize, fn(usize) -> bool>(hook) };
    hook(bytes)
}
