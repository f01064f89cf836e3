//! The collector's own tables (mark stack, verifier bitmap, marked-base
//! cache, allocation-site tables) come straight from `mmap`: never from
//! `GcAllocator` (that would recurse into the heap), never scanned as roots.

/// Zero-filled memory of `bytes`, backed lazily (`MAP_NORESERVE`: only the
/// pages touched cost memory). None if the kernel refuses the mapping.
pub(crate) fn map_noreserve(bytes: usize) -> Option<*mut u8> {
    // SAFETY: an anonymous private mapping of our own; it aliases nothing.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    (p != libc::MAP_FAILED).then_some(p.cast())
}

/// Give back a mapping made by [`map_noreserve`].
///
/// # Safety
/// `p` and `bytes` are a mapping [`map_noreserve`] returned, not used after
/// this call.
pub(crate) unsafe fn unmap(p: *mut u8, bytes: usize) {
    // SAFETY: per the contract, our own mapping, no longer used.
    unsafe { libc::munmap(p.cast(), bytes) };
}
