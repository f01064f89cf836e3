//! Leak reports (`OOHGC_FIND_LEAKS=1`): `GcAllocator` blocks that nothing
//! reachable points to any more but that were never freed — a
//! `mem::forget`, a leaked `Box`, an `Rc` cycle.
//!
//! After each cycle the collector marks the heap again, with the world
//! stopped, from the true roots only (stacks, registers, TLS, statics, user
//! roots, pending finalizers) — *not* treating `GcAllocator` blocks as
//! roots — into a private bitmap. Every manual block left unreached is
//! reported (address, size) once; they are not freed. Blocks only a C
//! library's `malloc` memory points to look leaked too: register such memory
//! with `add_roots`.

use crate::mark::{MarkStack, Marker};
use crate::roots;
use crate::verify::VisitBitmap;
use oohgc_allocator::{self as heap, ObjectKind};
use oohgc_dirty::raw_vec::RawVec;
use std::sync::Mutex;

/// Blocks already reported (so each leak is reported once).
static REPORTED: Mutex<RawVec<usize>> = Mutex::new(RawVec::new());

/// Run the leak analysis for cycle `cycle` and print the report.
pub(crate) fn report_cycle(cycle: u64) {
    let mut stack = MarkStack::with_capacity(1 << 20);
    let mut statics = RawVec::new();
    roots::static_segments(&mut statics);
    let mut visited = VisitBitmap::new();
    let mut leaks: RawVec<(usize, usize)> = RawVec::new();
    {
        let fin = crate::finalize::lock_table();
        let guard = heap::lock();
        let world = oohgc_barriers::stop_world();
        {
            let mut m = Marker::new(&mut stack, &mut visited);
            roots::scan_threads(&mut m, &world);
            roots::scan_global_roots(&mut m, &statics);
            crate::finalize::mark_pending(&fin, &mut m);
            m.drain();
        }
        let reported = REPORTED.lock().unwrap_or_else(|p| p.into_inner());
        heap::for_each_object(Some(ObjectKind::Manual), &mut |o| {
            if !visited.is_set(o.base) && reported.binary_search(&o.base).is_err() {
                leaks.push((o.base, o.size));
            }
        });
        drop(reported);
        drop(world);
        drop(guard);
        drop(fin);
    }
    let mut reported = REPORTED.lock().unwrap_or_else(|p| p.into_inner());
    let mut bytes = 0usize;
    for &(base, size) in leaks.iter() {
        bytes += size;
        crate::runtime::eprint_line(format_args!(
            "oohgc: leak: {size} bytes at {base:#x} (a GcAllocator block no live object points to, never freed)"
        ));
        if let Err(i) = reported.binary_search(&base) {
            reported.push(base);
            reported.as_mut_slice()[i..].rotate_right(1);
        }
    }
    crate::runtime::eprint_line(format_args!(
        "oohgc: leak summary (cycle {cycle}): {} new leaked block(s), {bytes} bytes",
        leaks.len()
    ));
}
