//! `Gc<T>`: a pointer to a collected object. No `Trace` derive, no root
//! registration: the collector finds `Gc` pointers conservatively wherever
//! they are — stacks, registers, statics, thread-locals, `Box`/`Vec`
//! contents (through `GcAllocator`) and other `Gc` objects.

use crate::runtime;
use oohgc_allocator::ObjectKind;
use std::alloc::Layout;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;

/// A garbage-collected pointer. `Copy`, pointer-sized for sized `T`, and
/// `Send + Sync` exactly when `T` is.
///
/// The object lives as long as any word the collector scans points into it
/// (interior pointers count). Values whose type needs dropping are dropped
/// on the finalizer thread after they become unreachable (see
/// [`Gc::new`] and [`Gc::new_local`]).
pub struct Gc<T: ?Sized + 'static> {
    ptr: NonNull<T>,
    _marker: PhantomData<T>,
}

impl<T: ?Sized + 'static> Clone for Gc<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: ?Sized + 'static> Copy for Gc<T> {}

// SAFETY: a Gc<T> gives shared access to T from any thread holding it.
unsafe impl<T: ?Sized + Send + Sync + 'static> Send for Gc<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send + Sync + 'static> Sync for Gc<T> {}

/// Types with no pointers inside: `Gc` slices of them are not scanned.
///
/// # Safety
/// Implement only for types whose values never contain a pointer to a
/// collected object.
pub unsafe trait NoPointers: Copy + 'static {}
macro_rules! no_pointers {
    ($($t:ty),*) => { $(
        // SAFETY: a primitive number, bool or char holds no pointer.
        unsafe impl NoPointers for $t {}
    )* };
}
no_pointers!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128, f32, f64, bool, char);

/// Allocate `layout` in the collected heap, aborting through
/// `handle_alloc_error` on failure.
fn alloc_collected(layout: Layout, kind: ObjectKind) -> *mut u8 {
    runtime::ensure_heap();
    if !runtime::is_plain_mutator() {
        runtime::admit_gc_allocation();
    }
    let p = oohgc_allocator::alloc(layout.size(), layout.align(), kind);
    if p.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    p
}

/// Under the `card` source, a new object's initialising stores are pointer
/// stores like any other: mark its cards (a no-op for other sources).
#[inline]
fn card_mark_new(base: usize, size: usize) {
    let mut page = base & !(oohgc_dirty::PAGE_SIZE - 1);
    while page < base + size.max(1) {
        oohgc_dirty::card::write_barrier(page.max(base));
        page += oohgc_dirty::PAGE_SIZE;
    }
}

unsafe fn drop_glue<T>(p: *mut u8) {
    // SAFETY: the caller passes an object holding an initialised T that is
    // dropped exactly once.
    unsafe { std::ptr::drop_in_place(p as *mut T) }
}

impl<T: 'static> Gc<T> {
    /// Move `value` into the collected heap.
    ///
    /// If `T` needs dropping, its `Drop` runs on the finalizer thread once
    /// the object is unreachable. That is right for every `T` whose drop
    /// may run on another thread (`T: Send`, and most others: dropping a
    /// `Vec`, a `String`, a `RefCell` of them). A `T` whose `Drop` must run
    /// on its own thread — one that holds an `Rc` also held elsewhere, a
    /// `MutexGuard`, or touches thread-locals — must use [`Gc::new_local`].
    pub fn new(value: T) -> Gc<T> {
        Self::new_with(value, false)
    }

    /// As [`Gc::new`], but `T`'s `Drop` runs only on the calling thread,
    /// when it calls [`crate::run_finalizers`]. For types that are not
    /// `Send`.
    pub fn new_local(value: T) -> Gc<T> {
        Self::new_with(value, true)
    }

    fn new_with(value: T, local: bool) -> Gc<T> {
        let p = alloc_collected(Layout::new::<T>(), ObjectKind::Managed) as *mut T;
        // SAFETY: p is a fresh, aligned, zeroed allocation big enough for T.
        unsafe { p.write(value) };
        card_mark_new(p as usize, std::mem::size_of::<T>());
        if std::mem::needs_drop::<T>() {
            crate::finalize::register(p as usize, drop_glue::<T>, local);
        }
        // SAFETY: p is non-null (alloc_collected never returns null).
        let ptr = unsafe { NonNull::new_unchecked(p) };
        Gc {
            ptr,
            _marker: PhantomData,
        }
    }

    /// A weak reference to this object.
    pub fn downgrade(this: &Gc<T>) -> crate::GcWeak<T> {
        crate::GcWeak::new(*this)
    }
}

impl Gc<crate::weak::WeakCell> {
    /// Allocate a weak cell in a pointer-free object (its target is hidden
    /// from the collector on purpose).
    pub(crate) fn new_noscan_cell(cell: crate::weak::WeakCell) -> Self {
        let layout = Layout::new::<crate::weak::WeakCell>();
        let p = alloc_collected(layout, ObjectKind::ManagedNoScan) as *mut crate::weak::WeakCell;
        // SAFETY: fresh allocation of the right layout.
        unsafe { p.write(cell) };
        // SAFETY: non-null, see alloc_collected.
        Gc {
            ptr: unsafe { NonNull::new_unchecked(p) },
            _marker: PhantomData,
        }
    }
}

impl<T: ?Sized + 'static> Gc<T> {
    /// Whether two `Gc`s point to the same object.
    pub fn ptr_eq(a: &Gc<T>, b: &Gc<T>) -> bool {
        std::ptr::addr_eq(a.ptr.as_ptr(), b.ptr.as_ptr())
    }

    /// The object's address.
    pub fn as_ptr(this: &Gc<T>) -> *const T {
        this.ptr.as_ptr()
    }

    /// Rebuild a `Gc` from [`Gc::as_ptr`].
    ///
    /// # Safety
    /// `ptr` must come from `Gc::as_ptr` of a `Gc<T>` whose object is still
    /// alive (reachable, or kept alive by this very call's caller).
    pub unsafe fn from_raw(ptr: *const T) -> Gc<T> {
        Gc {
            // SAFETY: the caller guarantees ptr came from a Gc.
            ptr: unsafe { NonNull::new_unchecked(ptr as *mut T) },
            _marker: PhantomData,
        }
    }
}

impl<T: Copy + 'static> Gc<[T]> {
    /// A collected copy of `items` (scanned conservatively: it may hold
    /// `Gc` pointers).
    pub fn from_slice(items: &[T]) -> Gc<[T]> {
        Self::copy_slice(items, ObjectKind::Managed)
    }

    fn copy_slice(items: &[T], kind: ObjectKind) -> Gc<[T]> {
        let layout = Layout::array::<T>(items.len()).unwrap_or_else(|_| {
            panic!(
                "Gc::from_slice: {} elements overflow the address space",
                items.len()
            )
        });
        let p = alloc_collected(layout, kind) as *mut T;
        // SAFETY: p has room for items.len() T's; T: Copy, so a bitwise
        // copy is a valid copy.
        unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), p, items.len()) };
        card_mark_new(p as usize, std::mem::size_of_val(items));
        let slice = std::ptr::slice_from_raw_parts_mut(p, items.len());
        Gc {
            // SAFETY: p is non-null.
            ptr: unsafe { NonNull::new_unchecked(slice) },
            _marker: PhantomData,
        }
    }
}

impl<T: NoPointers> Gc<[T]> {
    /// A collected copy of pointer-free `items`; the collector never scans
    /// its contents (faster marking, no false retention).
    pub fn from_slice_noscan(items: &[T]) -> Gc<[T]> {
        Self::copy_slice(items, ObjectKind::ManagedNoScan)
    }
}

/// Zeroed collected memory for `layout` whose contents the collector never
/// scans: bdwgc's `GC_MALLOC_ATOMIC`, for large pointer-free buffers (numeric
/// arrays, byte buffers) that a program fills in place.
///
/// The block lives while any scanned word points into it (as a `Gc` does)
/// and is reclaimed after that; there is no free call. A pointer stored
/// *inside* it does not keep anything alive. Aborts through
/// `handle_alloc_error` when the heap is exhausted, as `Gc::new` does.
pub fn alloc_noscan(layout: Layout) -> NonNull<u8> {
    let p = alloc_collected(layout, ObjectKind::ManagedNoScan);
    // SAFETY: alloc_collected never returns null.
    unsafe { NonNull::new_unchecked(p) }
}

impl From<&str> for Gc<str> {
    fn from(s: &str) -> Gc<str> {
        let bytes = Gc::<[u8]>::from_slice_noscan(s.as_bytes());
        let p = Gc::as_ptr(&bytes) as *const str;
        // SAFETY: the bytes are a copy of a valid str.
        unsafe { Gc::from_raw(p) }
    }
}

impl<T: ?Sized + 'static> Deref for Gc<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a Gc keeps its object alive while it is reachable, and a
        // `&Gc` on the stack is reachable.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: ?Sized + 'static> AsRef<T> for Gc<T> {
    fn as_ref(&self) -> &T {
        self
    }
}

impl<T: ?Sized + fmt::Debug + 'static> fmt::Debug for Gc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display + 'static> fmt::Display for Gc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug + 'static> fmt::Pointer for Gc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Pointer::fmt(&self.ptr, f)
    }
}

impl<T: ?Sized + PartialEq + 'static> PartialEq for Gc<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}
impl<T: ?Sized + Eq + 'static> Eq for Gc<T> {}

impl<T: ?Sized + std::hash::Hash + 'static> std::hash::Hash for Gc<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}
