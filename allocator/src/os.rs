//! Thin wrappers over the system calls the heap needs: anonymous mappings,
//! committing (mprotect), returning memory (madvise), futexes, and a
//! non-allocating fatal-error path.

use core::ptr;

/// Reserves `bytes` of address space (PROT_NONE, MAP_NORESERVE). Returns the
/// base or the errno.
pub(crate) fn reserve(bytes: usize) -> Result<usize, i32> {
    map(bytes, libc::PROT_NONE)
}

/// Maps `bytes` of zeroed read-write memory that is only backed when touched
/// (used for side tables and thread caches).
pub(crate) fn map_metadata(bytes: usize) -> Result<usize, i32> {
    map(bytes, libc::PROT_READ | libc::PROT_WRITE)
}

fn map(bytes: usize, prot: i32) -> Result<usize, i32> {
    // SAFETY: an anonymous private mapping at a kernel-chosen address touches no existing memory.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            bytes,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        Err(errno())
    } else {
        Ok(p as usize)
    }
}

// Side tables get no `MADV_HUGEPAGE` advice. They once did (fewer TLB
// misses on alloc/free), but with the kernel's default THP defrag setting
// (`madvise`) a first touch of an advised 2 MiB region compacts memory
// synchronously: the allocating thread sat in the kernel for 2-8 ms,
// unable to take the collector's suspend signal, and that became the
// longest pause of a concurrent cycle (GCBench, epml: stop-the-world
// requests waiting 3-8 ms, once a run; none in 20 runs without the
// advice, and no measurable change in run time).

/// Makes `[start, start+len)` of the reservation readable and writable.
pub(crate) fn commit(start: usize, len: usize) -> Result<(), i32> {
    // SAFETY: the range lies inside the heap's own PROT_NONE reservation; no Rust object lives there yet.
    let r = unsafe {
        libc::mprotect(
            start as *mut libc::c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// Drops the physical pages of `[start, start+len)`; they read as zero afterwards.
pub(crate) fn discard(start: usize, len: usize) {
    // SAFETY: the range is committed heap memory that holds no live object (pooled pages).
    unsafe {
        libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED);
    }
}

fn errno() -> i32 {
    // SAFETY: __errno_location always returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// Blocks while `*word == expected` (spurious wake-ups allowed).
pub(crate) fn futex_wait(word: &core::sync::atomic::AtomicU32, expected: u32) {
    // SAFETY: FUTEX_WAIT only reads the word, which is a live atomic.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ptr::null::<libc::timespec>(),
        );
    }
}

/// Wakes one thread blocked in [`futex_wait`] on `word`.
pub(crate) fn futex_wake_one(word: &core::sync::atomic::AtomicU32) {
    // SAFETY: FUTEX_WAKE does not touch memory.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        );
    }
}

/// Writes `oohgc-allocator: <msg><addr>` to stderr and aborts, without allocating
/// (this crate is the global allocator, so `panic!` formatting could recurse).
pub(crate) fn fatal(msg: &str, addr: usize) -> ! {
    let mut buf = [0u8; 256];
    let mut n = 0;
    for part in [b"oohgc-allocator: ".as_slice(), msg.as_bytes(), b" 0x"] {
        for &b in part {
            if n < buf.len() - 20 {
                buf[n] = b;
                n += 1;
            }
        }
    }
    for shift in (0..16).rev() {
        let d = (addr >> (shift * 4)) & 0xf;
        buf[n] = b"0123456789abcdef"[d];
        n += 1;
    }
    buf[n] = b'\n';
    n += 1;
    // SAFETY: writing a stack buffer to fd 2, then aborting the process.
    unsafe {
        libc::write(2, buf.as_ptr() as *const libc::c_void, n);
        libc::abort();
    }
}
