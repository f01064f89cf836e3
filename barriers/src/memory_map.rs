//! Address-space facts: the calling thread's stack bounds
//! (`pthread_getattr_np`), and which mapping of `/proc/self/maps` contains a
//! given address (for threads that never registered, and for the main
//! thread's static TLS block, which glibc keeps in a small mapping of its
//! own). `/proc/self/maps` is streamed through a stack buffer with raw
//! `read(2)`: nothing here allocates through the global allocator.

use crate::sys;

/// A half-open address range `[start, end)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Range {
    /// First address.
    pub start: usize,
    /// One past the last address.
    pub end: usize,
}

impl Range {
    /// Whether `addr` lies in the range.
    pub fn contains(&self, addr: usize) -> bool {
        self.start <= addr && addr < self.end
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }
}

/// How far below the thread pointer a static TLS block is assumed to reach at
/// most (glibc: the sum of the initial modules' TLS segments plus a surplus
/// of a few KiB). Bounds the scan when the TLS mapping merged with neighbours.
pub const MAX_STATIC_TLS_BELOW_THREAD_POINTER: usize = 1 << 20;

/// How far above the thread pointer the thread control block (glibc's
/// `struct pthread`, ~2.3 KiB on x86-64) is assumed to reach at most.
pub const MAX_TCB_ABOVE_THREAD_POINTER: usize = 16 << 10;

/// The calling thread's stack mapping as `pthread_getattr_np` reports it:
/// `end` is the stack base (for glibc spawned threads, the top of the mapping,
/// static TLS and TCB included; for the main thread, the top of `[stack]`).
pub fn current_stack_bounds() -> Range {
    // SAFETY: an all-zero pthread_attr_t is a valid out-value for
    // pthread_getattr_np, which initialises it.
    let mut attr: libc::pthread_attr_t = unsafe { core::mem::zeroed() };
    // SAFETY: pthread_self() is the calling thread; `attr` is a valid out-pointer.
    let rc = unsafe { libc::pthread_getattr_np(libc::pthread_self(), &mut attr) };
    if rc != 0 {
        return fallback_stack_bounds();
    }
    let mut addr: *mut libc::c_void = core::ptr::null_mut();
    let mut size: libc::size_t = 0;
    // SAFETY: `attr` was initialised by pthread_getattr_np; out-pointers valid.
    let rc = unsafe { libc::pthread_attr_getstack(&attr, &mut addr, &mut size) };
    // SAFETY: `attr` was initialised by pthread_getattr_np and is not used again.
    unsafe { libc::pthread_attr_destroy(&mut attr) };
    if rc != 0 || addr.is_null() {
        return fallback_stack_bounds();
    }
    Range {
        start: addr as usize,
        end: addr as usize + size,
    }
}

/// Stack bounds from `/proc/self/maps` when pthread cannot tell: the mapping
/// that contains the current stack pointer.
fn fallback_stack_bounds() -> Range {
    let sp = sys::stack_pointer();
    let mut queries = [MappingQuery::new(sp)];
    find_mappings(&mut queries);
    queries[0].found.unwrap_or(Range { start: sp, end: sp })
}

/// The static TLS block (and TCB) around `thread_pointer`, clipped to the
/// mapping that contains it. `None` if no mapping contains it.
pub fn static_tls_range(thread_pointer: usize) -> Option<Range> {
    let mut queries = [MappingQuery::new(thread_pointer)];
    find_mappings(&mut queries);
    queries[0]
        .found
        .map(|mapping| tls_window(thread_pointer, mapping))
}

/// Clips `mapping` to the window where a static TLS block and TCB around
/// `thread_pointer` can be.
pub fn tls_window(thread_pointer: usize, mapping: Range) -> Range {
    Range {
        start: mapping
            .start
            .max(thread_pointer.saturating_sub(MAX_STATIC_TLS_BELOW_THREAD_POINTER)),
        end: mapping
            .end
            .min(thread_pointer.saturating_add(MAX_TCB_ABOVE_THREAD_POINTER)),
    }
}

/// One address to look up, and the mapping found for it.
#[derive(Clone, Copy, Debug)]
pub struct MappingQuery {
    /// The address.
    pub addr: usize,
    /// The mapping that contains it, if any.
    pub found: Option<Range>,
}

impl MappingQuery {
    /// A query for `addr`.
    pub const fn new(addr: usize) -> Self {
        Self { addr, found: None }
    }
}

/// Resolves every query with one pass over `/proc/self/maps`. Queries whose
/// address is in no mapping (or if the file cannot be read) stay `None`.
pub fn find_mappings(queries: &mut [MappingQuery]) {
    let Some(fd) = sys::open_readonly(c"/proc/self/maps", false) else {
        return;
    };
    let mut buf = [0u8; 4096];
    // Parser state: the "start-end" field of the current line.
    let mut field = [0u8; 40];
    let mut field_len = 0usize;
    let mut in_first_field = true;
    'read: while let Some(n) = sys::read(fd, &mut buf) {
        if n == 0 {
            break;
        }
        for &byte in &buf[..n] {
            if byte == b'\n' {
                in_first_field = true;
                field_len = 0;
                continue;
            }
            if !in_first_field {
                continue;
            }
            if byte == b' ' {
                in_first_field = false;
                if let Some(range) = parse_range(&field[..field_len]) {
                    for query in queries.iter_mut() {
                        if query.found.is_none() && range.contains(query.addr) {
                            query.found = Some(range);
                        }
                    }
                    if queries.iter().all(|q| q.found.is_some()) {
                        break 'read;
                    }
                }
                continue;
            }
            if field_len < field.len() {
                field[field_len] = byte;
                field_len += 1;
            }
        }
    }
    sys::close(fd);
}

fn parse_range(field: &[u8]) -> Option<Range> {
    let dash = field.iter().position(|&b| b == b'-')?;
    Some(Range {
        start: sys::parse_hex(&field[..dash])?,
        end: sys::parse_hex(&field[dash + 1..])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_lies_in_the_reported_stack_and_its_mapping() {
        let local = 5usize;
        let address = &local as *const usize as usize;
        let stack = current_stack_bounds();
        assert!(stack.contains(address), "{stack:x?} misses {address:#x}");
        let mut queries = [MappingQuery::new(address), MappingQuery::new(1)];
        find_mappings(&mut queries);
        let mapping = queries[0].found.expect("the stack is mapped");
        assert!(mapping.contains(address));
        assert_eq!(queries[1].found, None, "address 1 is never mapped");
        std::hint::black_box(&local);
    }

    #[test]
    fn tls_window_is_clipped_to_mapping_and_limits() {
        let tp = 0x10_0000_0000;
        let mapping = Range {
            start: tp - 0x3000,
            end: tp + 0x1000,
        };
        assert_eq!(tls_window(tp, mapping), mapping);
        let huge = Range {
            start: 0x1000,
            end: usize::MAX,
        };
        let window = tls_window(tp, huge);
        assert_eq!(window.start, tp - MAX_STATIC_TLS_BELOW_THREAD_POINTER);
        assert_eq!(window.end, tp + MAX_TCB_ABOVE_THREAD_POINTER);
    }
}
