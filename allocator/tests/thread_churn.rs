//! Many short-lived threads, each keeping a few objects alive: exited
//! threads' caches are adopted by new threads, so the heap does not grow with
//! the number of threads.

use oohgc_allocator::*;

#[test]
fn exited_thread_caches_are_reused() {
    let mut kept: Vec<(usize, usize)> = Vec::new();
    for t in 0..300usize {
        let handle = std::thread::spawn(move || {
            let mut mine = Vec::new();
            let mut keep = Vec::new();
            for i in 0..300usize {
                let len = 16 + (i * 131 + t * 7) % 2000;
                let kind = if i % 2 == 0 {
                    ObjectKind::Manual
                } else {
                    ObjectKind::ManagedNoScan
                };
                let p = alloc(len, 16, kind);
                assert!(!p.is_null());
                // SAFETY: fresh object of len bytes.
                unsafe { std::ptr::write_bytes(p, (t % 251) as u8, len) };
                if i % 60 == 0 {
                    keep.push((p as usize, len));
                } else {
                    mine.push(p);
                }
            }
            for p in mine {
                // SAFETY: allocated above, freed once.
                unsafe { free(p) };
            }
            keep
        });
        kept.extend(handle.join().unwrap());
    }
    let st = stats();
    // 300 threads x 12+ size classes x 64 KiB would be > 200 MiB without reuse.
    assert!(
        st.committed < 48 << 20,
        "heap grew with the thread count: {st:?}"
    );
    for (i, &(p, len)) in kept.iter().enumerate() {
        let t = i / 5;
        // SAFETY: kept objects are live.
        assert!(
            unsafe { (0..len).all(|k| *(p as *const u8).add(k) == (t % 251) as u8) },
            "kept object {i} damaged"
        );
        // SAFETY: freed once, from a thread that does not own it (remote free).
        unsafe { free(p as *mut u8) };
    }
}
