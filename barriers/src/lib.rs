//! Mutator coordination for oohgc: the thread registry, signal-based
//! stop-the-world with register spill and stack/TLS bounds of every thread,
//! and blocking regions. It knows nothing about the heap.
//!
//! Model: bdwgc's `pthread_stop_world.c` (suspend with `SIGPWR`, restart with
//! `SIGXCPU`, acknowledgement handshake, stop epoch, signal re-sending). In
//! addition, threads that never registered are found in `/proc/self/task`
//! and stopped too, since a thread that never allocated may still hold a
//! pointer on its stack or in a `thread_local!`.
//!
//! Nothing on the registration and stop paths allocates through the global
//! allocator (which is the GC heap): tables live in raw `mmap` memory, the
//! per-thread state in const `thread_local!`s without destructors, and thread
//! exit is observed with `pthread_key_create`.
//!
//! Platform: Linux on x86-64 (the thread pointer, register spill and stack
//! pointer reads are x86-64 assembly). Rust's SIGSEGV/SIGBUS stack-overflow
//! handler is left alone: this crate installs nothing for those signals.
//!
//! Limits, stated rather than hidden: a thread that exits without running
//! pthread key destructors (raw `exit` syscall) leaves a stale registry slot;
//! a thread interrupted while running on an alternate signal stack reports
//! that stack's mapping; TLS of modules loaded with `dlopen` (dynamic TLS)
//! is in memory from glibc's malloc and is not reported; `fork()` while
//! holding a `StoppedWorld` is not supported; the suspend handler touches a
//! const `thread_local!`, which is async-signal-safe when this crate is
//! linked into the executable (static TLS) but not from a `dlopen`ed
//! library (the first access may allocate).
//!
//! Rules for the collector: one stop at a time (`stop_world` holds an
//! internal lock until the `StoppedWorld` is dropped; calling it again on the
//! same thread while holding one deadlocks). While the world is stopped, do
//! not call anything that takes a lock a stopped thread may hold: glibc's
//! `malloc`, `dl_iterate_phdr` (the loader lock), stdio; this crate's stop
//! path itself only makes system calls.

#![warn(missing_docs)]

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
compile_error!("oohgc-barriers supports Linux on x86-64 only (thread pointer and register spill are x86-64 assembly)");

mod blocking;
mod current;
mod error;
mod foreign_bounds;
mod handler;
mod memory_map;
mod raw_table;
mod registry;
mod signals;
mod stop;
mod stop_table;
mod sys;
mod task_list;
mod world_lock;

pub use blocking::{enter_blocking, outside_blocking_region, BlockingGuard};
pub use current::current_thread_roots;
pub use error::{BarrierError, ShortText, SignalRole};
pub use handler::{current_thread_suspend_signals, current_thread_suspensions};
pub use registry::{
    exclude_current_thread, register_current_thread, registered_thread_count, set_thread_exit_hook,
    unregister_current_thread, MAX_REGISTERED_THREADS, MAX_TLS_RANGES,
};
pub use signals::{current_config, init, is_initialized, parse_signal, SignalConfig};
pub use stop::{
    set_ack_spin_ns, stop_world, threads_given_up, StopStats, StoppedWorld, ThreadRoots,
    DEFAULT_ACK_SPIN_NS, EARLY_GIVE_UP_LOOKS, FIRST_RESEND_AFTER_NS, MAX_RESEND_INTERVAL_NS,
    REGISTERED_WARN_AFTER_NS, UNREGISTERED_GIVE_UP_NS,
};
pub use stop_table::MAX_STOPPED_THREADS;

/// Lists the thread ids of this process from `/proc/self/task` without
/// allocating; returns how many were found (0 if procfs is unavailable).
/// Exposed for the benchmark of the listing cost.
pub fn count_process_threads() -> usize {
    let mut count = 0;
    task_list::for_each_thread_id(|_| count += 1);
    count
}
