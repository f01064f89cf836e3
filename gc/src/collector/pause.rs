//! What every pause that ends marking does, written once for every cycle
//! kind: the locks it takes before the world stops ([`PauseLocks`]), and
//! the close of marking ([`close_marking`]) in the one order that lets the
//! verifier see everything — complete marking from the roots (the
//! finalization queue), verify, and only then process unreachable objects
//! (weak references, finalizers).

use super::ns;
use crate::mark::{HeapMarks, Marker};
use crate::roots::{LibrariesGuard, Ranges};
use crate::stats::CycleStats;
use crate::{finalize, runtime, verify, weak};
use oohgc_allocator as heap;
use oohgc_dirty::raw_vec::RawVec;
use std::sync::MutexGuard;
use std::time::Instant;

/// The locks a pause holds, taken before the world stops so that no
/// stopped thread can hold one, in the one order every path respects:
/// libraries (the caller took it to list the segments), tracking (a mutator
/// tracking a new chunk holds the dirty source's lock), finalization, weak
/// references, heap. Fields drop in the reverse order of taking.
pub(super) struct PauseLocks {
    heap: Option<heap::HeapGuard>,
    pub(super) weak: MutexGuard<'static, weak::Table>,
    pub(super) fin: finalize::FinalizeGuard,
    _tracking: MutexGuard<'static, RawVec<(usize, usize)>>,
    _libraries: LibrariesGuard,
}

impl PauseLocks {
    /// Take the pause's locks after `libraries`.
    pub(super) fn take(libraries: LibrariesGuard) -> PauseLocks {
        let tracking = runtime::lock_tracking();
        let fin = finalize::lock_table();
        let weak = weak::lock_table();
        let heap = heap::lock();
        PauseLocks {
            heap: Some(heap),
            weak,
            fin,
            _tracking: tracking,
            _libraries: libraries,
        }
    }

    /// Let the heap lock go early (a sweep in the pause takes it per span).
    pub(super) fn release_heap(&mut self) {
        self.heap = None;
    }
}

/// The close of marking in a pause, after the roots: see the module doc.
/// `dirty` is the final dirty set (empty for stop-the-world), for the
/// verifier's report. Records the verify time apart (it is not pause time).
pub(super) fn close_marking(
    m: &mut Marker<'_, HeapMarks<'_>>,
    locks: &mut PauseLocks,
    world: &oohgc_barriers::StoppedWorld,
    statics: &Ranges,
    dirty: &RawVec<(usize, usize)>,
    verify_on: bool,
    cs: &mut CycleStats,
) {
    complete_marking(m, &locks.fin);
    if verify_on {
        // A second, independent full mark: catches roots or objects the
        // cycle missed (a lost write, a thread not stopped, a racing
        // allocation), before anything can rescue them.
        let v0 = Instant::now();
        verify::verify_marks(m.stack_mut(), world, &locks.fin, statics, dirty, cs.cycle);
        cs.verify_ns = ns(v0.elapsed());
    }
    process_unreachable(m, &mut locks.fin, &mut locks.weak, cs);
}

/// The end of marking from roots inside a pause: mark what waits in the
/// finalization queue (it is a root until its finalizer ran) and trace.
/// After this, every object reachable from a root is marked — unless the
/// cycle lost a write, which is what the verifier checks *here*, before
/// [`process_unreachable`]: that step marks the subgraphs of unreachable
/// finalizable objects and queues them, so a reachable object the cycle
/// missed would be rescued into the finalization queue (and finalized while
/// in use) and look marked to a verifier that ran later.
fn complete_marking(m: &mut Marker<'_, HeapMarks<'_>>, fin: &finalize::FinalizeGuard) {
    finalize::mark_pending(fin, m);
    m.drain();
}

/// After [`complete_marking`] (and the verifier): clear weak references to
/// unmarked objects, queue ready finalizers (and trace what they
/// reference), record the counts.
fn process_unreachable(
    m: &mut Marker<'_, HeapMarks<'_>>,
    fin: &mut finalize::FinalizeGuard,
    weak_guard: &mut MutexGuard<'static, weak::Table>,
    cs: &mut CycleStats,
) {
    cs.weak_cleared = weak::clear_unreachable(weak_guard, m);
    cs.finalizers_queued = finalize::queue_unreachable(fin, m);
    m.drain();
    cs.objects_marked = m.counts.objects;
    cs.bytes_marked = m.counts.bytes;
}
