//! Blocking regions (bdwgc's `GC_do_blocking`): a thread about to block for
//! a long time in a system call announces it, so that stopping the world
//! does not have to interrupt it.
//!
//! On entry the callee-saved registers are spilled into the returned guard
//! (which lives in the caller's frame) and the stack pointer is recorded; the
//! thread is then not signalled by `stop_world`, and its stack
//! `[recorded sp, base)` is reported instead. Code inside the region must not
//! touch collected memory or create new references to it. Leaving the region
//! while the world is stopped waits for the restart.
//!
//! Leaving uses a Dekker handshake with the stopper: the thread clears its
//! flag, then reads the epoch; the stopper makes the epoch odd, then reads the
//! flag (all SeqCst). Either the stopper sees the flag cleared and signals the
//! thread, or the thread sees the stop and waits until the epoch is even.

use core::marker::PhantomData;
use core::sync::atomic::Ordering;

use crate::registry::{self, Slot};
use crate::stop_table::{EPOCH, STOPPER_TID};
use crate::sys::{self, SpilledRegisters};

/// Marks the calling thread as inside a blocking region until dropped.
/// `!Send`: it must be dropped on the thread that created it. Keep it in a
/// local variable (its spilled registers are part of the reported stack).
#[must_use = "the blocking region ends when the guard is dropped"]
pub struct BlockingGuard {
    /// Callee-saved registers at entry: pointers the caller's callers kept in
    /// registers stay visible to a scan of the (not suspended) stack.
    spilled: SpilledRegisters,
    /// The thread's slot, or `None` for a nested region (only the outermost
    /// region records and clears anything).
    slot: Option<&'static Slot>,
    _not_send: PhantomData<*mut ()>,
}

/// Enters a blocking region (registering the thread if needed). While inside,
/// `stop_world` does not signal this thread and reports its stack from the
/// stack pointer recorded here. Nested calls are allowed.
// Inlined into the caller on purpose: the callee-saved registers must be
// spilled, and the stack pointer recorded, in the frame that stays live for
// the whole region. Spilled inside a called function, they would be that
// function's own register values (the caller's are pushed in its prologue,
// in a frame that is dead, and overwritten, once it returns).
#[inline(always)]
pub fn enter_blocking() -> BlockingGuard {
    registry::register_current_thread();
    let slot = registry::current_slot().expect("registered just above");
    let mut guard = BlockingGuard {
        spilled: [0; 6],
        slot: None,
        _not_send: PhantomData,
    };
    if slot.blocking_depth.fetch_add(1, Ordering::Relaxed) > 0 {
        return guard;
    }
    sys::spill_callee_saved(&mut guard.spilled);
    core::hint::black_box(&guard.spilled);
    guard.slot = Some(slot);
    slot.blocking_sp
        .store(sys::stack_pointer(), Ordering::SeqCst);
    slot.in_blocking.store(1, Ordering::SeqCst);
    guard
}

impl Drop for BlockingGuard {
    fn drop(&mut self) {
        core::hint::black_box(&self.spilled);
        let Some(slot) = self.slot else {
            if let Some(slot) = registry::current_slot() {
                slot.blocking_depth.fetch_sub(1, Ordering::Relaxed);
            }
            return;
        };
        if !registry::slot_is_current(slot) {
            // The thread unregistered inside the region: the slot may belong
            // to another thread now, and this thread is no longer marked.
            return;
        }
        slot.blocking_depth.store(0, Ordering::Relaxed);
        leave(slot);
    }
}

/// Clear the thread's blocking flag and, if the world is stopped, wait for
/// the restart (the Dekker handshake of the module doc).
fn leave(slot: &Slot) {
    slot.in_blocking.store(0, Ordering::SeqCst);
    // Threads that are never stopped need not wait: excluded threads, and
    // the thread holding the world stopped (it would wait for itself).
    if slot.is_excluded() || STOPPER_TID.load(Ordering::SeqCst) == sys::gettid() {
        return;
    }
    loop {
        let epoch = EPOCH.load(Ordering::SeqCst);
        if epoch & 1 == 0 {
            return;
        }
        // A stopper may still signal us (if it saw the flag cleared):
        // the handler interrupts this wait and runs as usual.
        sys::futex_wait(&EPOCH, epoch, None);
    }
}

/// Run `f` as an ordinary, stoppable thread although the caller is inside
/// a blocking region (bdwgc's `GC_call_with_gc_active`): the region is left
/// (waiting for the restart if the world is stopped), `f` runs — a stop
/// meanwhile signals this thread like any other — and the region is
/// entered again with the stack pointer and registers recorded at its
/// start, which are still live. For work that must not run beside a
/// stopped world, such as allocating while a pause walks the heap.
pub fn outside_blocking_region<R>(f: impl FnOnce() -> R) -> R {
    let Some(slot) = registry::current_slot() else {
        return f();
    };
    if slot.in_blocking.load(Ordering::Relaxed) == 0 {
        return f();
    }
    leave(slot);
    let r = f();
    slot.in_blocking.store(1, Ordering::SeqCst);
    r
}

impl core::fmt::Debug for BlockingGuard {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BlockingGuard")
            .field("outermost", &self.slot.is_some())
            .finish()
    }
}
