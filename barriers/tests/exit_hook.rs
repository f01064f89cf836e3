//! The exit hook runs on a registered thread as it exits, before the thread
//! is unregistered, and exiting threads leave the registry. Unregistered
//! threads do not run it. Process-global hook: one test.

use std::sync::atomic::{AtomicUsize, Ordering};

static HOOK_CALLS: AtomicUsize = AtomicUsize::new(0);
static COUNT_SEEN_IN_HOOK: AtomicUsize = AtomicUsize::new(0);

fn hook() {
    HOOK_CALLS.fetch_add(1, Ordering::SeqCst);
    COUNT_SEEN_IN_HOOK.fetch_max(oohgc_barriers::registered_thread_count(), Ordering::SeqCst);
}

#[test]
fn exit_hook_runs_before_unregistering() {
    oohgc_barriers::set_thread_exit_hook(hook);
    let base = oohgc_barriers::registered_thread_count();
    std::thread::spawn(|| {
        oohgc_barriers::register_current_thread();
        oohgc_barriers::register_current_thread(); // idempotent
    })
    .join()
    .unwrap();
    assert_eq!(
        HOOK_CALLS.load(Ordering::SeqCst),
        1,
        "hook not run exactly once"
    );
    assert_eq!(
        COUNT_SEEN_IN_HOOK.load(Ordering::SeqCst),
        base + 1,
        "the thread was unregistered before its hook ran"
    );
    assert_eq!(
        oohgc_barriers::registered_thread_count(),
        base,
        "exited thread still registered"
    );

    std::thread::spawn(|| {}).join().unwrap();
    assert_eq!(
        HOOK_CALLS.load(Ordering::SeqCst),
        1,
        "hook ran on a thread that never registered"
    );

    std::thread::spawn(|| {
        oohgc_barriers::register_current_thread();
        oohgc_barriers::unregister_current_thread();
    })
    .join()
    .unwrap();
    assert_eq!(
        HOOK_CALLS.load(Ordering::SeqCst),
        1,
        "hook ran after explicit unregistration"
    );

    std::thread::spawn(move || {
        oohgc_barriers::exclude_current_thread();
        assert_eq!(
            oohgc_barriers::registered_thread_count(),
            base,
            "excluded threads are not counted"
        );
    })
    .join()
    .unwrap();
    assert_eq!(oohgc_barriers::registered_thread_count(), base);
}
