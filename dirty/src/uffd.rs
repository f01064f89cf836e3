//! The `uffd` source: synchronous userfaultfd write-protect with a
//! fault-handler thread.
//!
//! Every first write to a protected page stops the writer; the kernel
//! queues a message on the userfaultfd; the handler thread records the page
//! in an exact bitmap, tells the fault observer (if any), removes the
//! protection of that one page and wakes the writer. That is a cross-CPU
//! wake-up per first write (~48 us on the project's VM, ~6 us on one CPU).
//!
//! The fault observer ([`UffdSource::with_fault_observer`]) sees every
//! first write to a tracked page, in the order the kernel queued the
//! faults, before the writer is woken. (The PML model's `sync` engine
//! does not build on this source: it shares the userfaultfd handle and
//! the fault-serving loop of `uffd_sys.rs` and keeps its own per-fault
//! step, which must log into the model under the model's lock.)
//!
//! A harvest holds the lock the handler thread takes only while it drains
//! the bitmaps and re-protects; it calls its `sink` afterwards, so the sink
//! may write tracked memory.
//!
//! Kernel writes: when the process may handle kernel-mode faults (root or
//! `vm.unprivileged_userfaultfd=1`), a `read(2)` into a protected page
//! blocks in the kernel until the handler thread resolves the fault, then
//! succeeds and the page is reported. With `UFFD_USER_MODE_ONLY` (the
//! fallback for unprivileged processes) the same `read(2)` fails with
//! `EFAULT` instead, as an unpinned buffer does under `mprotect` (the
//! `mprotect` pins, `mprotect::KernelWrite`, do not apply to this source).
//!
//! Owns: `UffdSource`: the bitmaps, the handler thread's per-fault closure,
//! the fault observer. Must not touch: the userfaultfd calls and the fault-
//! serving loop themselves (`uffd_sys.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use linux_raw_sys::general as uapi;

use crate::bitmap::PageBitmap;
use crate::counters::{add_elapsed, bump, AtomicCounters};
use crate::ranges::TrackedRanges;
use crate::raw_vec::RawVec;
use crate::uffd_sys::{StopFd, Uffd};
use crate::{Counters, DirtyError, DirtySource, PageRange, PAGE_SIZE};

const NAME: &str = "uffd";

/// A function called on the handler thread for each first write to a
/// tracked page: `(page_addr, ctx)`. It runs with the source's lock held,
/// must not allocate through the global allocator, block, or call back
/// into the source.
pub type FaultObserver = fn(page_addr: usize, ctx: usize);

struct State {
    /// Each tracked range with its dirty bitmap (freed at untrack / drop,
    /// under the lock the handler thread takes).
    ranges: TrackedRanges<PageBitmap>,
    armed: bool,
}

struct Shared {
    uffd: Uffd,
    state: Mutex<State>,
    counters: AtomicCounters,
    observer: Option<(FaultObserver, usize)>,
    /// Set by the handler thread once it runs its own code (see `build`).
    started: AtomicBool,
    /// Polled by the handler thread besides the userfaultfd, to stop.
    stop_fd: StopFd,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One write-protect fault at `addr` (handler thread).
    fn on_fault(&self, addr: usize) {
        let page = addr & !(PAGE_SIZE - 1);
        let one = PageRange {
            start: page,
            len: PAGE_SIZE,
        };
        let state = self.lock();
        if let Some((r, bitmap)) = state.ranges.find(page) {
            // Record before unprotecting, both under the lock a harvest
            // holds: the harvest can never clear the bit between them.
            if bitmap.set((page - r.start) / PAGE_SIZE) {
                bump(&self.counters.write_traps, 1);
                if let Some((observer, ctx)) = self.observer {
                    observer(page, ctx);
                }
            }
        }
        // Unprotect and wake (the range may just have been untracked: then
        // the unregister already woke the writer and this fails harmlessly).
        if self.uffd.write_protect(one, false).is_err() {
            self.uffd.wake(one);
        }
        drop(state);
    }
}

/// Whether a synchronous write-protect userfaultfd can be opened here
/// (without starting a handler thread).
pub fn probe() -> Result<(), DirtyError> {
    Uffd::open(NAME, uapi::UFFD_FEATURE_WP_UNPOPULATED as u64).map(drop)
}

/// The `uffd` [`DirtySource`].
pub struct UffdSource {
    shared: Arc<Shared>,
    handler: Option<JoinHandle<()>>,
    /// The runs drained by a harvest, reported after the lock is released.
    runs: Mutex<RawVec<PageRange>>,
}

impl UffdSource {
    /// Open the source and start its handler thread.
    pub fn open() -> Result<UffdSource, DirtyError> {
        Self::build(None)
    }

    /// Open with a fault observer, called on the handler thread for each
    /// first write to a tracked page, in exact fault order, before the
    /// writer is woken. See [`FaultObserver`] for what it may do.
    pub fn with_fault_observer(
        observer: FaultObserver,
        ctx: usize,
    ) -> Result<UffdSource, DirtyError> {
        Self::build(Some((observer, ctx)))
    }

    fn build(observer: Option<(FaultObserver, usize)>) -> Result<UffdSource, DirtyError> {
        // WP_UNPOPULATED: write-protecting a never-touched page installs a
        // marker, so its first write faults too (otherwise it would be a
        // plain missing-page fault we never hear of: a false negative).
        let uffd = Uffd::open(NAME, uapi::UFFD_FEATURE_WP_UNPOPULATED as u64)?;
        let stop_fd = StopFd::new()?;
        let shared = Arc::new(Shared {
            uffd,
            state: Mutex::new(State {
                ranges: TrackedRanges::new(),
                armed: false,
            }),
            counters: AtomicCounters::default(),
            observer,
            started: AtomicBool::new(false),
            stop_fd,
        });
        let thread_shared = Arc::clone(&shared);
        let handler = std::thread::Builder::new()
            .name("oohgc-uffd".into())
            .spawn(move || {
                thread_shared.started.store(true, Ordering::Release);
                handler_loop(&thread_shared)
            })
            .map_err(|e| DirtyError::Os {
                op: "spawn the userfaultfd handler thread",
                errno: e.raw_os_error().unwrap_or(0),
            })?;
        // Wait until the handler runs its own code: the thread start frees
        // memory through the global allocator, which may be tracked memory
        // (a garbage collector's heap). Had a range been write-protected
        // before that, the handler would fault on its own write and
        // deadlock. From here on it writes only its stack and our mmap.
        while !shared.started.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        Ok(UffdSource {
            shared,
            handler: Some(handler),
            runs: Mutex::new(RawVec::new()),
        })
    }

    /// Whether the userfaultfd is user-mode only (then kernel writes into
    /// protected pages fail with EFAULT instead of being tracked).
    pub fn user_mode_only(&self) -> bool {
        self.shared.uffd.user_mode_only()
    }
}

/// The handler thread: poll, read fault messages into a stack buffer,
/// resolve each. Allocates nothing.
fn handler_loop(shared: &Shared) {
    crate::service_thread::announce_current_thread();
    shared
        .uffd
        .serve_wp_faults(&shared.stop_fd, &mut |addr| shared.on_fault(addr));
}

impl Drop for UffdSource {
    fn drop(&mut self) {
        self.shared.stop_fd.signal();
        if let Some(h) = self.handler.take() {
            let _ = h.join();
        }
        let mut state = self.shared.lock();
        while let Some((r, bitmap)) = state.ranges.pop() {
            let _ = self.shared.uffd.unregister(r);
            // SAFETY: the handler thread has stopped; nothing else holds it.
            unsafe { bitmap.free() };
        }
    }
}

impl DirtySource for UffdSource {
    fn name(&self) -> &'static str {
        NAME
    }

    fn track(&self, range: PageRange) -> Result<(), DirtyError> {
        let mut state = self.shared.lock();
        state.ranges.check_disjoint(range)?;
        self.shared.uffd.register_wp(range)?;
        // New pages are dirty until the next arm or harvest (which protects them).
        state
            .ranges
            .insert(range, PageBitmap::new(range.pages(), true));
        Ok(())
    }

    fn untrack(&self, range: PageRange) -> Result<(), DirtyError> {
        let mut state = self.shared.lock();
        let i = state.ranges.position(range)?;
        self.shared.uffd.unregister(range)?;
        let (_, bitmap) = state.ranges.remove_at(i);
        // SAFETY: removed under the lock the handler takes: no other user.
        unsafe { bitmap.free() };
        Ok(())
    }

    fn arm(&self) -> Result<(), DirtyError> {
        let t = Instant::now();
        let mut state = self.shared.lock();
        for (r, bitmap) in state.ranges.iter() {
            bitmap.clear_all();
            self.shared.uffd.write_protect(*r, true)?;
        }
        state.armed = true;
        add_elapsed(&self.shared.counters.arm_ns, t);
        Ok(())
    }

    fn harvest(&self, sink: &mut dyn FnMut(PageRange)) -> Result<(), DirtyError> {
        let t = Instant::now();
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        runs.clear();
        let mut first_error = None;
        let state = self.shared.lock();
        for (r, bitmap) in state.ranges.iter() {
            bitmap.drain_runs(r.start, &mut |run| {
                runs.push(run);
                if let Err(e) = self.shared.uffd.write_protect(run, true) {
                    // Could not re-arm: keep the pages dirty (no false negative).
                    for p in 0..run.pages() {
                        bitmap.set((run.start - r.start) / PAGE_SIZE + p);
                    }
                    first_error.get_or_insert(e);
                }
            });
        }
        // The handler thread may run again; the sink is called without the
        // lock, so it may even write tracked memory.
        drop(state);
        let mut pages = 0u64;
        for run in runs.iter() {
            pages += run.pages() as u64;
            sink(*run);
        }
        drop(runs);
        self.shared.counters.record_harvest(pages, t);
        first_error.map_or(Ok(()), Err)
    }

    fn discarded(&self, range: PageRange) -> Result<(), DirtyError> {
        // MADV_DONTNEED zaps anonymous pages together with their
        // write-protection: a later write would not fault. Count the pages
        // dirty; the next harvest reports them and write-protects them again
        // (unpopulated pages get markers, WP_UNPOPULATED).
        let state = self.shared.lock();
        for (r, bitmap) in state.ranges.iter() {
            let start = r.start.max(range.start);
            let end = r.end().min(range.end());
            let mut page = start;
            while page < end {
                bitmap.set((page - r.start) / PAGE_SIZE);
                page += PAGE_SIZE;
            }
        }
        Ok(())
    }

    fn disarm(&self) -> Result<(), DirtyError> {
        let mut state = self.shared.lock();
        for (r, _) in state.ranges.iter() {
            self.shared.uffd.write_protect(*r, false)?;
        }
        state.armed = false;
        Ok(())
    }

    fn counters(&self) -> Counters {
        self.shared.counters.snapshot()
    }

    fn for_each_counter(&self, f: &mut dyn FnMut(&'static str, u64)) {
        // Read under the lock, report after: `f` may allocate, and an
        // allocation may write a tracked page, whose fault needs this lock.
        let state = self.shared.lock();
        let (pages, armed) = (state.ranges.total_pages(), state.armed as u64);
        drop(state);
        f("tracked_pages", pages);
        f("armed", armed);
        f("user_mode_only", self.shared.uffd.user_mode_only() as u64);
    }
}
