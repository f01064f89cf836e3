//! Weak references: `GcWeak<T>`, which does not keep its target alive.
//!
//! A weak reference is a small pointer-free heap cell holding the target's
//! address. The collector does not scan pointer-free objects, so the cell
//! does not keep the target alive. Every cell is registered in a table (raw
//! mmap); at the end of marking, inside the pause, each cell whose target
//! was not reached is cleared. Clearing happens before finalizable objects
//! are processed, so a weak reference is never upgraded into an object being
//! finalized, and it happens with the world stopped, so an `upgrade` racing
//! a collection either read the pointer before the pause — then the pointer
//! is in its registers or stack, which the pause scans, and the target
//! survives — or reads the cleared cell afterwards.

use crate::gc_ptr::Gc;
use crate::mark::{MarkSet, Marker};
use oohgc_dirty::raw_vec::RawVec;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The heap cell behind a weak reference.
#[repr(C)]
pub(crate) struct WeakCell {
    target: AtomicUsize,
}

/// Registered cells.
pub(crate) struct Table {
    cells: RawVec<usize>,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    cells: RawVec::new(),
});

/// Taken by the collector before it stops the world.
pub(crate) fn lock_table() -> MutexGuard<'static, Table> {
    TABLE.lock().unwrap_or_else(|p| p.into_inner())
}

/// A weak reference to a `Gc<T>`: [`GcWeak::upgrade`] gives the object back
/// while it is alive and `None` once it has been reclaimed.
pub struct GcWeak<T: 'static> {
    cell: Gc<WeakCell>,
    _marker: PhantomData<Gc<T>>,
}

impl<T: 'static> Clone for GcWeak<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: 'static> Copy for GcWeak<T> {}

// SAFETY: a GcWeak hands out Gc<T>, so it may cross threads exactly when
// Gc<T> may.
unsafe impl<T: Send + Sync + 'static> Send for GcWeak<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync + 'static> Sync for GcWeak<T> {}

impl<T: 'static> GcWeak<T> {
    /// A weak reference to `target`.
    pub fn new(target: Gc<T>) -> GcWeak<T> {
        let cell = Gc::new_noscan_cell(WeakCell {
            target: AtomicUsize::new(Gc::as_ptr(&target) as usize),
        });
        TABLE
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .cells
            .push(Gc::as_ptr(&cell) as usize);
        // `target` is still on this stack here, so it cannot have been
        // reclaimed before the cell was registered.
        std::hint::black_box(&target);
        GcWeak {
            cell,
            _marker: PhantomData,
        }
    }

    /// The target, if it has not been reclaimed.
    pub fn upgrade(&self) -> Option<Gc<T>> {
        let p = self.cell.target.load(Ordering::Acquire);
        if p == 0 {
            return None;
        }
        // SAFETY: a non-zero target is a live object of type T: the
        // collector clears the cell (with the world stopped) before the
        // target can be freed.
        Some(unsafe { Gc::from_raw(p as *const T) })
    }

    /// Whether the target has been reclaimed.
    pub fn is_cleared(&self) -> bool {
        self.cell.target.load(Ordering::Acquire) == 0
    }
}

impl<T: 'static> std::fmt::Debug for GcWeak<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GcWeak({:#x})", self.cell.target.load(Ordering::Relaxed))
    }
}

/// Clear every registered cell whose target is unmarked; drop cells that
/// are themselves garbage. Returns how many were cleared.
pub(crate) fn clear_unreachable<M: MarkSet>(
    table: &mut MutexGuard<'static, Table>,
    m: &Marker<'_, M>,
) -> u64 {
    let cells = &mut table.cells;
    let mut cleared = 0;
    let mut i = 0;
    while i < cells.len() {
        let cell_addr = cells[i];
        if !m.marks().is_marked(cell_addr) {
            cells.swap_remove(i);
            continue;
        }
        // SAFETY: the cell is marked, so it is a live WeakCell.
        let cell = unsafe { &*(cell_addr as *const WeakCell) };
        let t = cell.target.load(Ordering::Acquire);
        let live =
            t != 0 && oohgc_allocator::find_object(t).is_some_and(|o| m.marks().is_marked(o.base));
        if live {
            i += 1;
        } else {
            cell.target.store(0, Ordering::Release);
            cleared += 1;
            cells.swap_remove(i);
        }
    }
    cleared
}
