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
//!
//! With `OOHGC_LEAK_BACKTRACES=1` as well, every `GcAllocator` block's
//! allocation stack is recorded (`alloc_sites`) and each leak line is
//! followed by up to [`REPORT_FRAMES`] lines `at <function> (<file>:<line>)`,
//! innermost first, starting at the first frame outside the allocator
//! machinery (oohgc, `__rust_alloc`, `alloc::`, `std::alloc`); a frame that
//! cannot be resolved shows its raw address. The sites are read and
//! symbolized after the world has restarted (`symbolize`), never inside the
//! pause. Without backtraces the summary says how to turn them on. The
//! summary line is always last.

use crate::mark::{MarkStack, Marker};
use crate::roots;
use crate::symbolize::ResolvedFrame;
use crate::verify::VisitBitmap;
use oohgc_allocator::{self as heap, ObjectKind};
use oohgc_dirty::raw_vec::RawVec;
use std::sync::Mutex;

/// Frames printed under each leak, after the allocator's own are skipped.
pub(crate) const REPORT_FRAMES: usize = 16;

/// Blocks already reported (so each leak is reported once).
static REPORTED: Mutex<RawVec<usize>> = Mutex::new(RawVec::new());

/// Run the leak analysis for cycle `cycle` and print the report.
pub(crate) fn report_cycle(cycle: u64) {
    let mut stack = MarkStack::with_capacity(1 << 20);
    let mut statics = RawVec::new();
    let libraries = roots::lock_libraries();
    roots::list_static_segments(&libraries, &mut statics);
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
    drop(libraries);
    let backtraces = crate::alloc_sites::capturing();
    let symbolizer = (backtraces && !leaks.is_empty())
        .then(|| crate::runtime::with_system_allocator(crate::symbolize::Symbolizer::new));
    let mut reported = REPORTED.lock().unwrap_or_else(|p| p.into_inner());
    let mut bytes = 0usize;
    for &(base, size) in leaks.iter() {
        bytes += size;
        crate::util::eprint_line(format_args!(
            "oohgc: leak: {size} bytes at {base:#x} (a GcAllocator block no live object points to, never freed)"
        ));
        if let Some(sym) = symbolizer.as_ref() {
            print_site(sym, crate::alloc_sites::site_of(base));
        }
        if let Err(i) = reported.binary_search(&base) {
            reported.push(base);
            reported.as_mut_slice()[i..].rotate_right(1);
        }
    }
    let hint = if backtraces || leaks.is_empty() {
        ""
    } else {
        " (set OOHGC_LEAK_BACKTRACES=1 to see where each was allocated)"
    };
    if let Some(sym) = symbolizer {
        crate::runtime::with_system_allocator(|| drop(sym));
    }
    crate::util::eprint_line(format_args!(
        "oohgc: leak summary (cycle {cycle}): {} new leaked block(s), {bytes} bytes{hint}",
        leaks.len()
    ));
}

/// Print the allocation stack of site `site` under its leak line.
fn print_site(sym: &crate::symbolize::Symbolizer, site: u32) {
    use crate::alloc_sites::{frames_of, NO_SITE, SITE_TABLE_FULL};
    let Some(frames) = frames_of(site) else {
        let why = match site {
            NO_SITE => "allocated before backtraces were turned on",
            SITE_TABLE_FULL => "the table of distinct allocation stacks is full",
            _ => "unknown site",
        };
        crate::util::eprint_line(format_args!(
            "oohgc:     (allocation site not recorded: {why})"
        ));
        return;
    };
    crate::runtime::with_system_allocator(|| {
        let resolved: Vec<(usize, Vec<ResolvedFrame>)> = frames
            .iter()
            .take_while(|&&ip| ip != 0)
            .map(|&ip| (ip, sym.resolve(ip)))
            .collect();
        if resolved.iter().all(|(_, r)| r.is_empty()) {
            // No symbols at all (a stripped binary): every address, raw.
            for (ip, _) in resolved.iter().take(REPORT_FRAMES) {
                print_raw(sym, *ip);
            }
            return;
        }
        // Skip the allocator's own frames that lead the stack, then print
        // up to REPORT_FRAMES. The first frame is always the allocator's
        // entry point: if it has no symbol (the program is stripped), the
        // machinery cannot be told apart and nothing is skipped.
        let skip_machinery = !resolved[0].1.is_empty();
        let shown = resolved
            .iter()
            .flat_map(|(ip, r)| {
                let raw = r.is_empty().then_some((*ip, None));
                raw.into_iter().chain(r.iter().map(|f| (*ip, Some(f))))
            })
            .skip_while(|(_, f)| {
                skip_machinery
                    && f.is_none_or(|f| is_allocator_machinery(f.function.as_deref().unwrap_or("")))
            })
            .take(REPORT_FRAMES);
        let mut printed = 0usize;
        for (ip, f) in shown {
            printed += 1;
            let Some(f) = f else {
                print_raw(sym, ip);
                continue;
            };
            let name = f.function.as_deref().unwrap_or("<unknown function>");
            match (&f.file, f.line) {
                (Some(file), Some(line)) => {
                    crate::util::eprint_line(format_args!("oohgc:     at {name} ({file}:{line})"))
                }
                (Some(file), None) => {
                    crate::util::eprint_line(format_args!("oohgc:     at {name} ({file})"))
                }
                _ => crate::util::eprint_line(format_args!("oohgc:     at {name} ({ip:#x})")),
            }
        }
        if printed == 0 {
            crate::util::eprint_line(format_args!(
                "oohgc:     (every recorded frame is inside the allocator: \
                 raise OOHGC_LEAK_BACKTRACE_DEPTH, now {})",
                crate::runtime::config().leak_backtrace_depth
            ));
        }
    });
}

/// A frame without a symbol: its address, and its object and offset there.
fn print_raw(sym: &crate::symbolize::Symbolizer, ip: usize) {
    match sym.object_offset(ip) {
        Some((object, offset)) => crate::util::eprint_line(format_args!(
            "oohgc:     at {ip:#x} (no symbol: {}+{offset:#x})",
            object.display()
        )),
        None => crate::util::eprint_line(format_args!("oohgc:     at {ip:#x} (no symbol)")),
    }
}

/// Whether a frame belongs to the allocation machinery above the program's
/// own call (skipped while it leads the stack).
/// A trait method (`<T as alloc::…>::f`) counts by the trait's path.
fn is_allocator_machinery(name: &str) -> bool {
    const PREFIXES: [&str; 9] = [
        "oohgc::",
        "__rustc::",
        "__rust_",
        "__rdl_",
        "__rg_",
        "_Unwind_",
        "alloc::",
        "std::alloc::",
        "core::alloc::",
    ];
    let machinery = |path: &str| PREFIXES.iter().any(|p| path.starts_with(p));
    match name.strip_prefix('<') {
        None => machinery(name),
        Some(inner) => {
            machinery(inner)
                || inner
                    .split_once(" as ")
                    .is_some_and(|(_, of_trait)| machinery(of_trait))
        }
    }
}
