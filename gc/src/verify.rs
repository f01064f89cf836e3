//! The verifier (`OOHGC_VERIFY=1`): after the final pause of a concurrent
//! cycle has finished marking, and with the world still stopped, mark the
//! heap again from scratch into a private bitmap. Any object that this full
//! mark reaches but the concurrent cycle left unmarked would have been freed
//! while live — a lost write. Each is reported with its address, size, page
//! and whether that page was in the harvested dirty set; then the process
//! aborts, loudly.
//!
//! Its private bitmap ([`VisitBitmap`]) also serves the leak reports.

use crate::mark::{MarkSet, MarkStack, Marker};
use crate::roots::{self, Ranges};
use oohgc_allocator::{self as heap, GRANULE};
use oohgc_dirty::raw_vec::RawVec;

/// One bit per heap granule over the whole reservation, in NORESERVE mmap
/// (only the parts the heap uses are ever touched).
pub(crate) struct VisitBitmap {
    words: *mut u64,
    bytes: usize,
    lo: usize,
}

impl VisitBitmap {
    pub(crate) fn new() -> VisitBitmap {
        let (lo, hi) = heap::heap_bounds();
        let bits = (hi - lo) / GRANULE;
        let bytes = (bits.div_ceil(64) * 8).max(4096);
        let Some(p) = crate::raw_memory::map_noreserve(bytes) else {
            crate::util::fatal(format_args!("verifier: cannot map a {bytes}-byte bitmap"));
        };
        VisitBitmap {
            words: p.cast(),
            bytes,
            lo,
        }
    }

    /// Whether the object at `base` was reached.
    pub(crate) fn is_set(&self, base: usize) -> bool {
        let (w, m) = self.index(base);
        // SAFETY: w indexes inside the bitmap (base is inside the heap).
        unsafe { *self.words.add(w) & m != 0 }
    }

    fn index(&self, base: usize) -> (usize, u64) {
        let bit = (base - self.lo) / GRANULE;
        (bit / 64, 1u64 << (bit % 64))
    }
}

impl MarkSet for &mut VisitBitmap {
    fn try_mark(&mut self, base: usize) -> bool {
        let (w, m) = self.index(base);
        // SAFETY: w indexes inside the bitmap (base is inside the heap).
        let word = unsafe { &mut *self.words.add(w) };
        let newly = *word & m == 0;
        *word |= m;
        newly
    }
    fn is_marked(&self, base: usize) -> bool {
        self.is_set(base)
    }
}

impl Drop for VisitBitmap {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping.
        unsafe { crate::raw_memory::unmap(self.words.cast(), self.bytes) };
    }
}

/// Full re-mark with the world stopped; abort on any object the cycle missed.
pub(crate) fn verify_marks(
    stack: &mut MarkStack,
    world: &oohgc_barriers::StoppedWorld,
    fin: &crate::finalize::FinalizeGuard,
    statics: &Ranges,
    dirty: &RawVec<(usize, usize)>,
    cycle: u64,
) {
    let mut bitmap = VisitBitmap::new();
    {
        let mut m = Marker::new(stack, &mut bitmap);
        roots::rescan_threads_for_verifier(&mut m, world);
        roots::scan_global_roots(&mut m, statics);
        roots::mark_manual_objects(&mut m);
        crate::finalize::mark_pending(fin, &mut m);
        m.drain();
    }
    let mut lost = 0usize;
    heap::for_each_object(None, &mut |o| {
        let reached = bitmap.is_set(o.base);
        if reached && !heap::is_marked(o.base) {
            lost += 1;
            if lost <= 20 {
                let page = o.base & !(oohgc_dirty::PAGE_SIZE - 1);
                let was_dirty = dirty.iter().any(|&(s, e)| page >= s && page < e);
                crate::util::eprint_line(format_args!(
                    "oohgc: VERIFY FAILED (cycle {cycle}): live object {:#x} ({} bytes, {:?}) on page {page:#x} \
                     (in the final dirty set: {was_dirty}) was left unmarked by the concurrent cycle",
                    o.base, o.size, o.kind
                ));
            }
        }
    });
    if lost > 0 {
        crate::util::fatal(format_args!(
            "verifier: {lost} live object(s) would have been freed in cycle {cycle}; a write was lost"
        ));
    }
}
