//! A heap started with a small `max_heap`: allocation past it returns null,
//! the out-of-memory hook is consulted, and after a sweep allocation succeeds
//! again. Also: the chunk hook sees every committed range before it is used.

use oohgc_allocator::*;
use std::sync::atomic::{AtomicUsize, Ordering};

const LIMIT: usize = 8 << 20;

static OOM_CALLS: AtomicUsize = AtomicUsize::new(0);
static CHUNK_BYTES: AtomicUsize = AtomicUsize::new(0);
static CHUNK_END: AtomicUsize = AtomicUsize::new(0);
static BUDGET_CALLS: AtomicUsize = AtomicUsize::new(0);

fn on_oom(_bytes: usize) -> bool {
    OOM_CALLS.fetch_add(1, Ordering::SeqCst);
    false
}

fn on_budget() {
    BUDGET_CALLS.fetch_add(1, Ordering::SeqCst);
}

static HOOKED: std::sync::Mutex<Vec<(usize, usize)>> = std::sync::Mutex::new(Vec::new());

fn on_chunk(start: usize, len: usize) {
    assert_eq!(start % PAGE_SIZE, 0);
    CHUNK_BYTES.fetch_add(len, Ordering::SeqCst);
    CHUNK_END.fetch_max(start + len, Ordering::SeqCst);
    HOOKED.lock().unwrap().push((start, len));
}

#[test]
fn small_heap_limit() {
    assert_eq!(
        init(HeapConfig {
            max_heap: MIN_HEAP - 1,
            reserve: 1 << 30
        }),
        Err(HeapError::MaxHeapTooSmall {
            max_heap: MIN_HEAP - 1
        })
    );
    assert!(
        !is_initialized(),
        "a refused config must not start the heap"
    );
    set_chunk_hook(on_chunk);
    set_hooks(Hooks {
        budget_exceeded: on_budget,
        out_of_memory: on_oom,
    });
    set_budget(1 << 20);
    init(HeapConfig {
        max_heap: LIMIT,
        reserve: 1 << 30,
    })
    .unwrap();
    assert_eq!(
        init(HeapConfig::default()),
        Err(HeapError::AlreadyInitialized)
    );
    assert_eq!(heap_bounds().1 - heap_bounds().0, 1 << 30);

    let mut objs = Vec::new();
    loop {
        let p = alloc(1000, 16, ObjectKind::Managed);
        if p.is_null() {
            break;
        }
        assert!(
            p as usize + 1000 <= CHUNK_END.load(Ordering::SeqCst),
            "object outside hooked chunks"
        );
        objs.push(p);
        assert!(objs.len() < LIMIT / 1000, "allocated past the limit");
    }
    assert!(
        objs.len() * 1024 > LIMIT / 2,
        "stopped early at {} objects",
        objs.len()
    );
    assert!(
        OOM_CALLS.load(Ordering::SeqCst) >= 1,
        "out-of-memory hook not called"
    );
    assert!(
        BUDGET_CALLS.load(Ordering::SeqCst) == 1,
        "budget hook must fire exactly once"
    );
    assert!(allocated_since_reset() >= 1 << 20);
    let st = stats();
    assert!(
        st.committed <= LIMIT && st.committed > LIMIT - (1 << 20),
        "{st:?}"
    );
    assert!(CHUNK_BYTES.load(Ordering::SeqCst) <= LIMIT);
    assert!(
        alloc(2 << 20, 16, ObjectKind::Manual).is_null(),
        "large object past the limit"
    );

    // Nothing is marked: a sweep frees everything and allocation works again.
    clear_marks();
    let s = sweep();
    assert_eq!(s.objects_freed, objs.len());
    let p = alloc(2 << 20, 16, ObjectKind::Manual);
    assert!(
        !p.is_null(),
        "allocation fails after the sweep freed memory"
    );
    unsafe { free(p) };
    let again: Vec<*mut u8> = (0..1000)
        .map(|_| alloc(1000, 16, ObjectKind::Managed))
        .collect();
    assert!(again.iter().all(|p| !p.is_null()));

    reset_allocation_counter();
    assert!(allocated_since_reset() < 1 << 20);

    // for_each_chunk reports exactly the hooked chunks.
    let mut chunks = Vec::new();
    for_each_chunk(&mut |s, l| chunks.push((s, l)));
    assert_eq!(chunks, *HOOKED.lock().unwrap());
    assert!(chunks.len() >= 2, "{chunks:?}");
    assert_eq!(chunks[0].0, heap_bounds().0);
    for w in chunks.windows(2) {
        assert_eq!(
            w[0].0 + w[0].1,
            w[1].0,
            "chunks are contiguous and disjoint"
        );
    }
}
