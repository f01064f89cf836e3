//! Return addresses to `function (file:line)` for leak reports, with the
//! `addr2line` crate (gimli-rs, the DWARF reader the Rust standard library
//! itself uses for backtraces).
//!
//! Runs only in the leak report, after the world has restarted and under
//! `runtime::with_system_allocator` (parsing debug information allocates a
//! lot; none of it belongs in the collected heap). The `backtrace` crate's
//! `resolve` would do the same job but behind its process-wide lock, which
//! the program may hold itself (it uses the same crate) while its
//! allocation waits for the cycle that is printing this report: a deadlock.
//! The loaders here are the collector's own, behind a lock only the report
//! takes.
//!
//! Each address is mapped to its loaded object with `dl_iterate_phdr`
//! (object path and load bias), and the object's debug information is
//! loaded once and kept for later reports. Frames the debug information
//! does not cover fall back to the symbol table; an address neither covers
//! is printed raw.

use addr2line::Loader;
use std::borrow::Cow;
use std::ffi::CStr;
use std::path::PathBuf;
use std::sync::Mutex;

/// One frame of a resolved address (an inlined call gives several).
pub(crate) struct ResolvedFrame {
    /// Demangled function name, without the hash suffix.
    pub function: Option<String>,
    /// Source file.
    pub file: Option<String>,
    /// Source line.
    pub line: Option<u32>,
}

/// A loaded object's executable range and where it came from.
struct Module {
    start: usize,
    end: usize,
    bias: usize,
    /// Where the debug information is read from.
    path: PathBuf,
    /// The object's file, for raw addresses (`object+offset`).
    shown: PathBuf,
}

/// Debug information loaded so far: `None` for an object that has none
/// readable (the vDSO, a deleted file), so it is not retried.
static LOADERS: Mutex<Vec<(PathBuf, Option<Loader>)>> = Mutex::new(Vec::new());

/// Resolves addresses against the objects loaded when it was made.
pub(crate) struct Symbolizer {
    modules: Vec<Module>,
}

impl Symbolizer {
    /// Snapshot the loaded objects (takes the loader's lock briefly).
    pub(crate) fn new() -> Symbolizer {
        let mut modules: Vec<Module> = Vec::new();
        // SAFETY: `collect_module` only reads the info it is given and
        // pushes into the Vec passed as `data`, which outlives the call.
        unsafe {
            libc::dl_iterate_phdr(
                Some(collect_module),
                (&mut modules as *mut Vec<Module>).cast(),
            )
        };
        Symbolizer { modules }
    }

    /// `(object file, offset in it)` of return address `ip`, for a frame
    /// without symbols (`addr2line -e <object> <offset>` resolves it later
    /// against an unstripped copy).
    pub(crate) fn object_offset(&self, ip: usize) -> Option<(&std::path::Path, usize)> {
        let pc = ip.saturating_sub(1);
        let m = self.modules.iter().find(|m| m.start <= pc && pc < m.end)?;
        Some((m.shown.as_path(), pc - m.bias))
    }

    /// The frames of return address `ip`, innermost (inlined) first; empty
    /// if nothing is known about it.
    pub(crate) fn resolve(&self, ip: usize) -> Vec<ResolvedFrame> {
        let mut out = Vec::new();
        // A return address points after the call; look inside the call.
        let pc = ip.saturating_sub(1);
        let Some(m) = self.modules.iter().find(|m| m.start <= pc && pc < m.end) else {
            return out;
        };
        let probe = (pc - m.bias) as u64;
        let mut loaders = LOADERS.lock().unwrap_or_else(|p| p.into_inner());
        let i = match loaders.iter().position(|(p, _)| *p == m.path) {
            Some(i) => i,
            None => {
                loaders.push((m.path.clone(), Loader::new(&m.path).ok()));
                loaders.len() - 1
            }
        };
        let Some(loader) = loaders[i].1.as_ref() else {
            return out;
        };
        if let Ok(mut frames) = loader.find_frames(probe) {
            while let Ok(Some(f)) = frames.next() {
                out.push(ResolvedFrame {
                    function: f
                        .function
                        .as_ref()
                        .and_then(|n| n.demangle().ok())
                        .map(Cow::into_owned),
                    file: f.location.as_ref().and_then(|l| l.file).map(str::to_owned),
                    line: f.location.as_ref().and_then(|l| l.line),
                });
            }
        }
        if out.iter().all(|f| f.function.is_none()) {
            if let Some(name) = loader.find_symbol(probe) {
                let name = addr2line::demangle_auto(Cow::Borrowed(name), None).into_owned();
                match out.first_mut() {
                    Some(f) => f.function = Some(name),
                    None => out.push(ResolvedFrame {
                        function: Some(name),
                        file: None,
                        line: None,
                    }),
                }
            }
        }
        out
    }
}

/// `dl_iterate_phdr` callback: record the object's executable segments.
unsafe extern "C" fn collect_module(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: dl_iterate_phdr passes a valid info; data is our Vec.
    let (info, modules) = unsafe { (&*info, &mut *data.cast::<Vec<Module>>()) };
    let path = if info.dlpi_name.is_null() {
        None
    } else {
        // SAFETY: a NUL-terminated name owned by the loader.
        let name = unsafe { CStr::from_ptr(info.dlpi_name) };
        (!name.is_empty()).then(|| PathBuf::from(name.to_string_lossy().into_owned()))
    };
    // The main program has an empty name; its debug information is read
    // through /proc/self/exe, which still opens it if the file was replaced.
    let shown = path
        .clone()
        .or_else(|| std::fs::read_link("/proc/self/exe").ok())
        .unwrap_or_else(|| PathBuf::from("/proc/self/exe"));
    let path = path.unwrap_or_else(|| PathBuf::from("/proc/self/exe"));
    let bias = info.dlpi_addr as usize;
    for k in 0..info.dlpi_phnum as usize {
        // SAFETY: k < dlpi_phnum, inside the program header table.
        let ph = unsafe { &*info.dlpi_phdr.add(k) };
        if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_X != 0 {
            let start = bias + ph.p_vaddr as usize;
            modules.push(Module {
                start,
                end: start + ph.p_memsz as usize,
                bias,
                path: path.clone(),
                shown: shown.clone(),
            });
        }
    }
    0
}
