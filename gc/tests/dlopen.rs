//! Libraries loaded and unloaded while concurrent cycles run: a library
//! whose `static` holds the only pointer to a `Gc` object is `dlopen`ed,
//! handed the pointer, and `dlclose`d again, over and over. The object must
//! survive while the library holds it (its writable segments are roots in
//! the cycle that loaded it), and a cycle must never scan a library that
//! was unloaded under it (a crash).
//!
//! The library is C, compiled by the system's `cc` into the test's
//! temporary directory.

mod common;

use oohgc::Gc;
use std::ffi::CString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[global_allocator]
static GC: oohgc::GcAllocator = oohgc::GcAllocator;

const LIBRARY_SOURCE: &str = r#"
static void *slot;
static unsigned long padding[4096]; /* a data segment of several pages */
void gcslot_set(void *p) { slot = p; padding[0] = (unsigned long)p; }
void *gcslot_take(void) { void *p = slot; slot = 0; padding[0] = 0; return p; }
"#;

fn build_library() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oohgc-dlopen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("gcslot.c");
    let lib = dir.join("libgcslot.so");
    std::fs::write(&src, LIBRARY_SOURCE).unwrap();
    let out = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&lib)
        .arg(&src)
        .output()
        .expect("a C compiler (`cc`) is needed to build the test library");
    assert!(
        out.status.success(),
        "cc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lib
}

struct Library {
    handle: *mut libc::c_void,
    set: unsafe extern "C" fn(*const u8),
    take: unsafe extern "C" fn() -> *const u8,
}

impl Library {
    fn open(path: &CString) -> Library {
        // SAFETY: loading our own small library; symbols looked up by name
        // have the signatures declared in LIBRARY_SOURCE.
        unsafe {
            let handle = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
            assert!(!handle.is_null(), "dlopen failed");
            let set = libc::dlsym(handle, c"gcslot_set".as_ptr());
            let take = libc::dlsym(handle, c"gcslot_take".as_ptr());
            assert!(!set.is_null() && !take.is_null());
            Library {
                handle,
                set: std::mem::transmute::<*mut libc::c_void, unsafe extern "C" fn(*const u8)>(set),
                take: std::mem::transmute::<*mut libc::c_void, unsafe extern "C" fn() -> *const u8>(
                    take,
                ),
            }
        }
    }

    fn close(self) {
        // SAFETY: a handle from dlopen, closed once; nothing of it is used after.
        assert_eq!(unsafe { libc::dlclose(self.handle) }, 0);
    }
}

/// Give the library the only pointer to a fresh object (made in a frame of
/// its own so no copy stays on this stack).
#[inline(never)]
fn hand_over(lib: &Library, seed: u64) {
    let g = Gc::new([seed; 32]);
    // SAFETY: the library stores the pointer in its static.
    unsafe { (lib.set)(Gc::as_ptr(&g).cast()) };
}

#[test]
fn libraries_loaded_and_unloaded_during_cycles() {
    oohgc::Config::from_env()
        .unwrap()
        .verify(true)
        .initial_heap(1 << 20)
        .apply()
        .unwrap();
    oohgc::init().unwrap();
    let path = CString::new(build_library().into_os_string().into_encoded_bytes()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let driver = std::thread::spawn(move || {
        let mut cycles = 0u64;
        while !s2.load(Ordering::Acquire) {
            if oohgc::start_cycle() {
                oohgc::wait_for_cycles(1);
            } else {
                oohgc::collect();
            }
            cycles += 1;
        }
        cycles
    });
    let before = oohgc::stats().cycles;
    for round in 0..300u64 {
        let lib = Library::open(&path);
        hand_over(&lib, round);
        common::clobber_stack();
        // Garbage that reuses freed memory, while cycles run.
        common::churn(2);
        // SAFETY: the library returns the pointer it was handed.
        let p = unsafe { (lib.take)() } as *const [u64; 32];
        // SAFETY: the object must still be alive: the library held it.
        let value = unsafe { *p };
        assert_eq!(
            value, [round; 32],
            "round {round}: the object the library held was freed"
        );
        lib.close();
    }
    stop.store(true, Ordering::Release);
    let cycles = driver.join().unwrap();
    assert!(
        cycles > 10,
        "too few cycles ran beside the libraries: {cycles}"
    );
    assert!(oohgc::stats().cycles > before);
}

/// `dl_iterate_phdr` with a callback that allocates, as
/// `std::backtrace`'s first symbolization does (it pushes every object's
/// name and segments to a `Vec`); 64 KiB per object, so that these
/// allocations are the ones that cross the pacing line.
fn list_libraries_allocating() -> u64 {
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the Vec passed below; `info` is valid here.
        let (names, info) = unsafe { (&mut *(data as *mut Vec<Vec<u64>>), &*info) };
        names.push(vec![info.dlpi_addr; 8192]);
        0
    }
    let mut names: Vec<Vec<u64>> = Vec::new();
    // SAFETY: the callback only reads the info and pushes to `names`.
    unsafe { libc::dl_iterate_phdr(Some(each), &mut names as *mut _ as *mut libc::c_void) };
    names.len() as u64
}

#[test]
fn child_symbolizes_backtraces_during_cycles() {
    if !common::is_child() {
        return; // Run only as the child of `backtraces_during_cycles_do_not_deadlock`.
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    // Threads list the loaded objects the way Rust's backtrace symbolizer
    // does (allocating inside dl_iterate_phdr's callback, with the loader's
    // lock held) while another allocates fast enough that cycles run back
    // to back and pacing applies.
    for i in 0..4 {
        let stop = stop.clone();
        // Three symbolize, one churns.
        threads.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Acquire) {
                if i < 3 {
                    n += list_libraries_allocating();
                } else {
                    common::churn(4);
                    n += 1;
                }
            }
            n
        }));
    }
    std::thread::sleep(std::time::Duration::from_secs(4));
    stop.store(true, Ordering::Release);
    for t in threads {
        assert!(t.join().unwrap() > 0);
    }
    println!("cycles: {}", oohgc::stats().cycles);
}

#[test]
fn backtraces_during_cycles_do_not_deadlock() {
    if common::is_child() {
        return;
    }
    let out = common::run_in_child_for(
        "child_symbolizes_backtraces_during_cycles",
        &[("OOHGC_INITIAL_HEAP", "64K"), ("OOHGC_VERIFY", "1")],
        std::time::Duration::from_secs(90),
    );
    let status = out.status.unwrap_or_else(|| {
        panic!(
            "deadlock: a thread paced inside dl_iterate_phdr while the cycle waited for the loader lock\n{}",
            out.stderr
        )
    });
    assert!(
        status.success(),
        "{status:?}\n{}\n{}",
        out.stdout,
        out.stderr
    );
}
