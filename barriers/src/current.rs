//! The roots of the calling thread itself, for a mutator that runs a
//! collection on its own thread (it cannot suspend itself with a signal).

use crate::registry;
use crate::sys::{self, SpilledRegisters};

/// Spills the callee-saved registers onto the stack, then calls `f` with
/// `[current sp, stack base)` and with each of the caller's static TLS ranges
/// that lie outside the stack (the main thread's separate TLS mapping).
/// The spill stays live in this frame until `f` has returned for every range.
#[inline(never)]
pub fn current_thread_roots(f: &mut dyn FnMut(usize, usize)) {
    let mut spilled: SpilledRegisters = [0; 6];
    sys::spill_callee_saved(&mut spilled);
    core::hint::black_box(&mut spilled);
    let (stack, tls, tls_len) = registry::current_thread_bounds();
    let sp = sys::stack_pointer();
    f(sp, stack.end.max(sp));
    for range in &tls[..tls_len] {
        if !range.is_empty() {
            f(range.start, range.end);
        }
    }
    core::hint::black_box(&spilled);
}
