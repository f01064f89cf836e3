//! The `bdwgc` backend: the Boehm-Demers-Weiser collector through FFI.
//!
//! Compiled only when build.rs found libgc (`cfg(have_bdwgc)`); otherwise
//! [`BdwgcHeap::open`] explains how to add it. Two modes: stop-the-world
//! (`bdwgc`) and incremental (`bdwgc-incr`, `GC_enable_incremental`).
//! Pauses are timed through `GC_set_on_collection_event`: from
//! `GC_EVENT_PRE_STOP_WORLD` to `GC_EVENT_POST_START_WORLD`, the span in
//! which every mutator thread is stopped.

use crate::heap::{CollectorFigures, Heap, NodeRef, RefArray};
use crate::stall::StallMeter;
use std::ptr::NonNull;

/// What to tell a user whose build has no bdwgc.
pub const NOT_BUILT: &str =
    "bdwgc not built in (libgc not found at build time): `apt-get install libgc-dev`, then rebuild";

/// Whether this build has the bdwgc backend.
pub fn available() -> bool {
    cfg!(have_bdwgc)
}

#[cfg(have_bdwgc)]
mod ffi {
    //! The few libgc entry points the backend calls (gc.h, bdwgc 8.x).
    use std::os::raw::{c_int, c_void};

    /// `GC_EVENT_PRE_STOP_WORLD` in `GC_EventType`.
    pub const GC_EVENT_PRE_STOP_WORLD: c_int = 6;
    /// `GC_EVENT_POST_START_WORLD` in `GC_EventType`.
    pub const GC_EVENT_POST_START_WORLD: c_int = 9;

    #[link(name = "gc")]
    extern "C" {
        pub fn GC_init();
        pub fn GC_malloc(bytes: usize) -> *mut c_void;
        pub fn GC_malloc_atomic(bytes: usize) -> *mut c_void;
        pub fn GC_gcollect();
        pub fn GC_do_blocking(
            f: extern "C" fn(*mut c_void) -> *mut c_void,
            client_data: *mut c_void,
        ) -> *mut c_void;
        pub fn GC_enable_incremental();
        pub fn GC_is_incremental_mode() -> c_int;
        pub fn GC_get_gc_no() -> usize;
        pub fn GC_get_heap_size() -> usize;
        pub fn GC_set_on_collection_event(f: Option<extern "C" fn(c_int)>);
    }
}

#[cfg(have_bdwgc)]
mod pauses {
    //! Pause timestamps recorded from bdwgc's collection-event callback,
    //! into fixed static storage (the callback runs with the GC lock held).
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::time::Instant;

    /// Pauses kept individually; later ones still count in the totals.
    const CAPACITY: usize = 1 << 16;
    static LOG: [AtomicU64; CAPACITY] = [const { AtomicU64::new(0) }; CAPACITY];
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    static TOTAL_NS: AtomicU64 = AtomicU64::new(0);
    static STOP_START_NS: AtomicU64 = AtomicU64::new(0);
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

    fn now_ns() -> u64 {
        EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }

    /// The callback given to `GC_set_on_collection_event`.
    pub extern "C" fn on_event(event: std::os::raw::c_int) {
        if event == super::ffi::GC_EVENT_PRE_STOP_WORLD {
            STOP_START_NS.store(now_ns(), Ordering::Relaxed);
        } else if event == super::ffi::GC_EVENT_POST_START_WORLD {
            let pause = now_ns().saturating_sub(STOP_START_NS.load(Ordering::Relaxed));
            let i = COUNT.fetch_add(1, Ordering::Relaxed);
            if i < CAPACITY {
                LOG[i].store(pause, Ordering::Relaxed);
            }
            TOTAL_NS.fetch_add(pause, Ordering::Relaxed);
        }
    }

    /// Every recorded pause and the total, nanoseconds.
    pub fn snapshot() -> (Vec<u64>, u64) {
        let n = COUNT.load(Ordering::Relaxed).min(CAPACITY);
        let log = LOG[..n].iter().map(|p| p.load(Ordering::Relaxed)).collect();
        (log, TOTAL_NS.load(Ordering::Relaxed))
    }

    /// Start the clock the timestamps are taken from.
    pub fn start_clock() {
        let _ = now_ns();
    }
}

/// The bdwgc collector as a [`Heap`].
#[derive(Debug)]
pub struct BdwgcHeap {
    incremental: bool,
    meter: StallMeter,
}

impl BdwgcHeap {
    /// Initialise bdwgc (once per process, from the main thread), in
    /// incremental mode when asked. Errors when this build has no bdwgc.
    pub fn open(incremental: bool) -> Result<BdwgcHeap, String> {
        #[cfg(have_bdwgc)]
        {
            pauses::start_clock();
            // SAFETY: called once, from the worker's main thread, before any
            // other libgc call; the callback only touches static atomics.
            unsafe {
                ffi::GC_set_on_collection_event(Some(pauses::on_event));
                if incremental {
                    ffi::GC_enable_incremental();
                }
                ffi::GC_init();
                if incremental && ffi::GC_is_incremental_mode() == 0 {
                    return Err("bdwgc refused incremental mode on this system".into());
                }
            }
            Ok(BdwgcHeap {
                incremental,
                meter: StallMeter::new(),
            })
        }
        #[cfg(not(have_bdwgc))]
        {
            let _ = incremental;
            Err(NOT_BUILT.to_string())
        }
    }

    /// `GC_malloc` or `GC_malloc_atomic` of `bytes`, checked.
    fn raw_alloc(&mut self, bytes: usize, atomic: bool) -> NonNull<u8> {
        self.meter.tick();
        #[cfg(have_bdwgc)]
        {
            // SAFETY: bdwgc was initialised in `open`; both calls only need
            // a size and return zeroed memory or null.
            let ptr = unsafe {
                if atomic {
                    let p = ffi::GC_malloc_atomic(bytes) as *mut u8;
                    if !p.is_null() {
                        // GC_malloc_atomic does not clear; DataBuf promises zeroes.
                        std::ptr::write_bytes(p, 0, bytes);
                    }
                    p
                } else {
                    ffi::GC_malloc(bytes) as *mut u8
                }
            };
            NonNull::new(ptr).unwrap_or_else(|| panic!("GC_malloc({bytes}) failed: out of memory"))
        }
        #[cfg(not(have_bdwgc))]
        {
            let _ = (bytes, atomic);
            unreachable!("a BdwgcHeap cannot be opened without bdwgc")
        }
    }
}

impl Heap for BdwgcHeap {
    fn name(&self) -> &'static str {
        if self.incremental {
            "bdwgc-incr"
        } else {
            "bdwgc"
        }
    }
    fn frees_explicitly(&self) -> bool {
        false
    }
    fn meter(&mut self) -> &mut StallMeter {
        &mut self.meter
    }
    fn alloc_node(&mut self, left: NodeRef, right: NodeRef, value: i64) -> NodeRef {
        let ptr = self.raw_alloc(std::mem::size_of::<crate::heap::Node>(), false);
        let node = ptr.as_ptr() as *mut crate::heap::Node;
        // SAFETY: a fresh, suitably aligned (bdwgc aligns to 16) allocation.
        unsafe { node.write(crate::heap::Node::new(left, right, value)) };
        NodeRef::from_ptr(node)
    }
    fn free_node(&mut self, _node: NodeRef) {}
    fn alloc_refs(&mut self, len: usize) -> RefArray {
        RefArray::from_raw(self.raw_alloc(len.max(1) * 8, false).as_ptr(), len)
    }
    fn free_refs(&mut self, _refs: RefArray) {}
    fn alloc_data_bytes(&mut self, bytes: usize) -> NonNull<u8> {
        self.raw_alloc(bytes, true)
    }
    fn free_data_bytes(&mut self, _ptr: NonNull<u8>, _bytes: usize) {}
    fn idle(&mut self, d: std::time::Duration) {
        #[cfg(have_bdwgc)]
        {
            extern "C" fn sleep_for(nanos: *mut std::os::raw::c_void) -> *mut std::os::raw::c_void {
                std::thread::sleep(std::time::Duration::from_nanos(nanos as u64));
                std::ptr::null_mut()
            }
            // SAFETY: bdwgc is initialised; the callback touches no
            // collected memory (the argument is a number, not a pointer).
            unsafe { ffi::GC_do_blocking(sleep_for, d.as_nanos() as u64 as usize as *mut _) };
        }
        #[cfg(not(have_bdwgc))]
        std::thread::sleep(d);
    }
    fn collect(&mut self) {
        #[cfg(have_bdwgc)]
        // SAFETY: bdwgc was initialised in `open`.
        unsafe {
            ffi::GC_gcollect()
        };
    }
    fn figures(&self) -> CollectorFigures {
        #[cfg(have_bdwgc)]
        {
            let (pauses, total) = pauses::snapshot();
            // SAFETY: plain getters on an initialised collector.
            let (gc_no, heap) = unsafe { (ffi::GC_get_gc_no(), ffi::GC_get_heap_size()) };
            let mut figures = crate::figures::from_pauses(pauses, total);
            figures.collections = gc_no as u64;
            figures.heap_size = heap as u64;
            figures.dirty_source = if self.incremental {
                "bdwgc-vdb".into()
            } else {
                String::new()
            };
            figures
        }
        #[cfg(not(have_bdwgc))]
        CollectorFigures::default()
    }
}
