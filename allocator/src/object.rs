//! What an object is to the collector: its kind and the `ObjectInfo` the
//! object map answers with.

/// How the collector treats an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// `Gc<T>` objects: reclaimed by `sweep` when unmarked; scanned conservatively.
    Managed,
    /// Pointer-free Gc objects (`Gc<str>`, `Gc<[u8]>`): reclaimed like Managed;
    /// the collector does not scan their contents.
    ManagedNoScan,
    /// `GcAllocator` blocks (Box, Vec, ...): never reclaimed by sweep, only by
    /// `free`; the collector scans them as roots.
    Manual,
}

/// What [`mark_object_at`](crate::mark_object_at) found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkAttempt {
    /// The address is not inside an allocated object.
    NotAnObject,
    /// It is inside the object at this base, which was already marked.
    AlreadyMarked(usize),
    /// It is inside this object, which was unmarked and is now marked.
    NewlyMarked(ObjectInfo),
}

/// Number of object kinds (spans and thread caches are segregated by kind).
pub(crate) const KINDS: usize = 3;

impl ObjectKind {
    /// Dense index of the kind (0..KINDS).
    #[inline(always)]
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Inverse of [`ObjectKind::index`].
    #[inline(always)]
    pub(crate) fn from_index(i: u8) -> ObjectKind {
        match i {
            0 => ObjectKind::Managed,
            1 => ObjectKind::ManagedNoScan,
            _ => ObjectKind::Manual,
        }
    }

    /// True for the kinds `sweep` may reclaim.
    pub(crate) fn is_swept(self) -> bool {
        self != ObjectKind::Manual
    }
}

/// An allocated object as the object map reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Address of the object's first byte.
    pub base: usize,
    /// Usable size of its slot in bytes (>= the requested size).
    pub size: usize,
    /// Its kind.
    pub kind: ObjectKind,
}
