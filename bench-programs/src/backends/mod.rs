//! The [`Heap`](crate::heap::Heap) backends: system allocator, bdwgc, oohgc.

pub mod bdwgc;
pub mod malloc;
#[cfg(feature = "oohgc")]
pub mod oohgc;
