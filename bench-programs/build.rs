//! Build script: probes for bdwgc (libgc) when the `bdwgc` feature is on.
//!
//! Found: links `-lgc` and sets `cfg(have_bdwgc)`, which compiles the FFI
//! backend. Absent: the crate builds without it, and the runner skips the
//! bdwgc rows with one line saying how to add them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Directories where distributions put `libgc.so`.
const LIBGC_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
];

fn main() {
    println!("cargo::rustc-check-cfg=cfg(have_bdwgc)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=OOHGC_BENCH_LIBGC_DIR");
    for dir in LIBGC_DIRS {
        println!("cargo::rerun-if-changed={dir}/libgc.so");
    }
    if std::env::var_os("CARGO_FEATURE_BDWGC").is_none() {
        return;
    }
    match find_libgc() {
        Some(dir) => {
            println!("cargo::rustc-link-search=native={}", dir.display());
            println!("cargo::rustc-link-lib=dylib=gc");
            println!("cargo::rustc-cfg=have_bdwgc");
        }
        None => println!(
            "cargo::warning=libgc (bdwgc) not found: the bdwgc rows will be skipped; \
             `apt-get install libgc-dev` and rebuild to add them"
        ),
    }
}

/// The directory holding `libgc.so`: `$OOHGC_BENCH_LIBGC_DIR`, then
/// `pkg-config --variable=libdir bdw-gc`, then the usual directories.
fn find_libgc() -> Option<PathBuf> {
    let has_lib = |dir: &Path| dir.join("libgc.so").exists();
    if let Some(dir) = std::env::var_os("OOHGC_BENCH_LIBGC_DIR") {
        let dir = PathBuf::from(dir);
        if has_lib(&dir) {
            return Some(dir);
        }
    }
    if let Ok(out) = Command::new("pkg-config")
        .args(["--variable=libdir", "bdw-gc"])
        .output()
    {
        if out.status.success() {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if has_lib(&dir) {
                return Some(dir);
            }
        }
    }
    LIBGC_DIRS
        .iter()
        .map(PathBuf::from)
        .find(|dir| has_lib(dir))
}
