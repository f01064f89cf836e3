//! Root discovery: static data segments, user-registered ranges, and the
//! scanning of threads (through `oohgc-barriers`).
//!
//! Static roots are the writable `PT_LOAD` segments of the executable and of
//! every loaded library, found with `dl_iterate_phdr` and re-read at every
//! cycle (libraries come and go), minus their `PT_GNU_RELRO` part (read-only
//! after relocation). `dl_iterate_phdr` takes the loader's lock, so the list
//! is made *before* the world is stopped: a stopped thread may hold that lock.
//! All storage is raw mmap ([`RawVec`]); nothing here allocates from the heap.
//!
//! **Libraries loaded and unloaded during a cycle.** `dlopen`/`dlclose`
//! (interposed: `interpose::dl`) run under the *libraries lock*
//! ([`lock_libraries`]) and bump a generation. The collector holds that lock
//! while it lists the segments and scans them, concurrently or in a pause
//! (taken before the world stops, so no stopped thread holds it), and
//! before a pause lists the segments again if the generation moved since its
//! list. So no segment it scans is unmapped under it, and a library loaded
//! mid-cycle is scanned entirely in that cycle's final pause. The lock is
//! re-entrant per thread: a library constructor that allocates may start a
//! stop-the-world collection on its own thread.

use crate::mark::{MarkSet, Marker};
use oohgc_dirty::raw_vec::RawVec;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Address ranges `[start, end)` to scan.
pub(crate) type Ranges = RawVec<(usize, usize)>;

/// Ranges registered by the program with [`crate::add_roots`].
static USER_ROOTS: Mutex<Ranges> = Mutex::new(RawVec::new());

/// The user-roots lock, held across `fork()`.
pub(crate) type RootsGuard = std::sync::MutexGuard<'static, Ranges>;

/// Take the user-roots lock (for `fork`).
pub(crate) fn lock_user_roots() -> RootsGuard {
    USER_ROOTS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Register `[start, end)` as a root range: every word in it is scanned at
/// every collection until [`remove_roots`] is called with the same start.
/// Use it for memory the collector cannot see otherwise (an `mmap` of your
/// own, a buffer of a C library) that holds `Gc` pointers.
pub fn add_roots(start: *const u8, end: *const u8) {
    let (s, e) = (start as usize, end as usize);
    assert!(s <= e, "add_roots: start {s:#x} is above end {e:#x}");
    USER_ROOTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((s, e));
}

/// Remove a range registered with [`add_roots`] (by its start); returns
/// whether one was found.
pub fn remove_roots(start: *const u8) -> bool {
    let mut roots = USER_ROOTS.lock().unwrap_or_else(|p| p.into_inner());
    match roots.iter().position(|&(s, _)| s == start as usize) {
        Some(i) => {
            roots.swap_remove(i);
            true
        }
        None => false,
    }
}

/// Serialises `dlopen`/`dlclose` with the collector's use of the segment list.
static LIBRARIES: Mutex<()> = Mutex::new(());
/// Bumped by every `dlopen`/`dlclose` (under [`LIBRARIES`]).
static LIBRARIES_GENERATION: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// How deep this thread holds [`LIBRARIES`] (it is re-entrant).
    static LIBRARIES_DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// The libraries lock, held; released on drop (on the same thread).
pub(crate) struct LibrariesGuard {
    _outermost: Option<MutexGuard<'static, ()>>,
    _not_send: std::marker::PhantomData<*mut ()>,
}

impl Drop for LibrariesGuard {
    fn drop(&mut self) {
        LIBRARIES_DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Take the libraries lock (see the module doc); re-entrant.
pub(crate) fn lock_libraries() -> LibrariesGuard {
    let outermost = LIBRARIES_DEPTH.with(|d| {
        let depth = d.get();
        d.set(depth + 1);
        depth == 0
    });
    LibrariesGuard {
        _outermost: outermost.then(|| LIBRARIES.lock().unwrap_or_else(|p| p.into_inner())),
        _not_send: std::marker::PhantomData,
    }
}

/// Whether this thread is inside `dlopen`/`dlclose` or otherwise holds the
/// libraries lock (it must then never wait for a cycle: the cycle may wait
/// for the lock).
pub(crate) fn this_thread_holds_libraries_lock() -> bool {
    LIBRARIES_DEPTH.with(|d| d.get() > 0)
}

/// Record that the set of loaded objects changed (caller holds the lock).
pub(crate) fn libraries_changed() {
    LIBRARIES_GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// The segment list of the loaded objects, made again only if a library
/// was loaded or unloaded since `out` was made (its generation is in
/// `generation`). The caller holds the libraries lock.
pub(crate) fn refresh_static_segments(
    _held: &LibrariesGuard,
    out: &mut Ranges,
    generation: &mut u64,
) {
    let now = LIBRARIES_GENERATION.load(Ordering::Acquire);
    if now != *generation {
        static_segments(out);
        *generation = now;
    }
}

/// Make the segment list afresh; returns its generation. The caller holds
/// the libraries lock.
pub(crate) fn list_static_segments(_held: &LibrariesGuard, out: &mut Ranges) -> u64 {
    let now = LIBRARIES_GENERATION.load(Ordering::Acquire);
    static_segments(out);
    now
}

/// Collect the writable, non-RELRO `PT_LOAD` ranges of every loaded object.
fn static_segments(out: &mut Ranges) {
    out.clear();
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: called by dl_iterate_phdr with a valid info; `data` is the
        // `&mut Ranges` passed below.
        let (info, out) = unsafe { (&*info, &mut *(data as *mut Ranges)) };
        if info.dlpi_phdr.is_null() {
            return 0;
        }
        // SAFETY: dlpi_phdr points at dlpi_phnum program headers.
        let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        let base = info.dlpi_addr as usize;
        let relro = phdrs
            .iter()
            .find(|p| p.p_type == libc::PT_GNU_RELRO)
            .map(|p| {
                (
                    base + p.p_vaddr as usize,
                    base + (p.p_vaddr + p.p_memsz) as usize,
                )
            });
        for p in phdrs {
            if p.p_type != libc::PT_LOAD || p.p_flags & libc::PF_W == 0 {
                continue;
            }
            let start = base + p.p_vaddr as usize;
            let end = start + p.p_memsz as usize;
            match relro {
                Some((rs, re)) if rs < end && re > start => {
                    if start < rs {
                        out.push((start, rs));
                    }
                    if re < end {
                        out.push((re, end));
                    }
                }
                _ => out.push((start, end)),
            }
        }
        0
    }
    // SAFETY: `each` only reads the headers and pushes to `out`.
    unsafe { libc::dl_iterate_phdr(Some(each), out as *mut Ranges as *mut libc::c_void) };
}

/// Scan static segments, user roots and `extra` ranges.
pub(crate) fn scan_global_roots<M: MarkSet>(marker: &mut Marker<'_, M>, statics: &Ranges) {
    for &(s, e) in statics.iter() {
        marker.scan_range(s, e);
    }
    let user = USER_ROOTS.lock().unwrap_or_else(|p| p.into_inner());
    for &(s, e) in user.iter() {
        marker.scan_range(s, e);
    }
}

/// Scan every `GcAllocator` block: they are roots until freed.
pub(crate) fn mark_manual_objects<M: MarkSet>(marker: &mut Marker<'_, M>) {
    oohgc_allocator::for_each_object(Some(oohgc_allocator::ObjectKind::Manual), &mut |o| {
        marker.mark_object(o);
    });
}

/// A copy of the words of the calling thread's own roots as the last
/// [`scan_threads`] on a mutator scanned them (raw mmap, never scanned as a
/// root itself): what [`rescan_threads_for_verifier`] reads.
static OWN_ROOTS_COPY: Mutex<RawVec<usize>> = Mutex::new(RawVec::new());

/// Scan every stopped thread's stack (registers included) and TLS, and the
/// calling thread's own if it is a mutator (keeping a copy of those words
/// for the verifier).
pub(crate) fn scan_threads<M: MarkSet>(
    marker: &mut Marker<'_, M>,
    world: &oohgc_barriers::StoppedWorld,
) {
    scan_stopped_threads(marker, world);
    if crate::runtime::current_thread_is_mutator() {
        let mut copy = OWN_ROOTS_COPY.lock().unwrap_or_else(|p| p.into_inner());
        copy.clear();
        oohgc_barriers::current_thread_roots(&mut |s, e| {
            marker.scan_range(s, e);
            let mut a = s.next_multiple_of(std::mem::size_of::<usize>());
            while a + std::mem::size_of::<usize>() <= e {
                // SAFETY: an aligned word of this thread's own stack or TLS,
                // which current_thread_roots reports as mapped.
                copy.push(unsafe { std::ptr::read_volatile(a as *const usize) });
                a += std::mem::size_of::<usize>();
            }
        });
    }
}

/// The same thread roots again, in the same pause, for the verifier: the
/// stopped threads as they are, and the calling thread's own as
/// [`scan_threads`] saw them (its copy). Scanning the own stack afresh
/// would read the collector's frames that have grown below it since, and
/// stale pointers earlier calls left there were never roots of the cycle
/// being checked (seen as a false "lost object": a garbage object that a
/// dead frame pointed to).
pub(crate) fn rescan_threads_for_verifier<M: MarkSet>(
    marker: &mut Marker<'_, M>,
    world: &oohgc_barriers::StoppedWorld,
) {
    scan_stopped_threads(marker, world);
    if crate::runtime::current_thread_is_mutator() {
        let copy = OWN_ROOTS_COPY.lock().unwrap_or_else(|p| p.into_inner());
        let words = copy.as_slice();
        let start = words.as_ptr() as usize;
        marker.scan_range(start, start + std::mem::size_of_val(words));
    }
}

fn scan_stopped_threads<M: MarkSet>(
    marker: &mut Marker<'_, M>,
    world: &oohgc_barriers::StoppedWorld,
) {
    world.for_each_thread(&mut |t| {
        marker.scan_thread_range(t.stack.0, t.stack.1);
        for &(s, e) in t.tls {
            marker.scan_thread_range(s, e);
        }
    });
}
