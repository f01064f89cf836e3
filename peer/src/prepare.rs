//! Getting a pinned crate's published source and turning a copy of it into
//! a standalone workspace whose test crates run on oohgc.
//!
//! Fetching: a scratch package under `target/peer/fetch/` depends on
//! `name = "=version"`; `cargo metadata` there makes cargo download and
//! unpack it into `$CARGO_HOME/registry/src/*/name-version` (also for a
//! package without a library, such as ripgrep, which cargo then ignores as
//! a dependency but has unpacked).
//!
//! Preparing: the package is copied to `target/peer/src/name-version`, and
//! - its `Cargo.toml` gets `[workspace]` (standalone, whatever directory it
//!   sits in), an optional dependency on `oohgc-peer-hook` behind a feature
//!   `oohgc-peer`, and a `peer` profile (see [`PROFILE`]);
//! - every test crate root (the library, each `[[test]]`, each `[[bin]]`:
//!   integration tests run the binaries) gets [`injection`] *appended*:
//!   items may stand anywhere in a module, while a prepended item would
//!   have to be placed after the file's inner attributes and `//!` docs.
//!   The library's copy is also under `cfg(test)`, so that the library
//!   linked into the integration tests and binaries declares no allocator
//!   of its own.
//!
//! The feature lets one copy build twice into one target directory: plain
//! (the baseline, without oohgc) and with oohgc; dependencies are shared.
//! A stamp file keeps a prepared copy (and its file times, so builds stay
//! cached) until the harness's injection or the repository path changes.

use crate::cargo::{cargo, network_failure};
use crate::suites::Suite;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

/// Bumped whenever what [`prepare`] writes changes.
const INJECTION_VERSION: u32 = 2;

/// The cargo profile the suites build with: `dev` (debug assertions and
/// overflow checks stay, as under `cargo test`) at opt-level 1 with line
/// tables only — cheaper to build than the optimised profiles, while the
/// unoptimised code of opt-level 0 is slowest in exactly the dependencies
/// (regex, tokio) the suites spend their time in. The collector itself is
/// built at opt-level 3: a verifier run re-marks the heap after every cycle.
pub const PROFILE: &str = "\
[profile.peer]
inherits = \"dev\"
opt-level = 1
debug = \"line-tables-only\"
incremental = false

[profile.peer.package.oohgc]
opt-level = 3

[profile.peer.package.oohgc-allocator]
opt-level = 3

[profile.peer.package.oohgc-dirty]
opt-level = 3

[profile.peer.package.oohgc-barriers]
opt-level = 3
";

/// The feature that turns the injected allocator on.
pub const FEATURE: &str = "oohgc-peer";

/// What kind of crate root a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootKind {
    /// The library: its unit tests only (`cfg(test)`).
    Lib,
    /// An integration test or a binary: always.
    TestOrBin,
}

/// The text appended to a crate root. From edition 2018 on the hook is
/// named by an absolute path (it is in the extern prelude, also for a
/// `no_std` library's tests), which no lint objects to; edition 2015 needs
/// an `extern crate`.
pub fn injection(kind: RootKind, edition_2015: bool) -> String {
    let cfg = match kind {
        RootKind::Lib => format!("all(test, feature = \"{FEATURE}\")"),
        RootKind::TestOrBin => format!("feature = \"{FEATURE}\""),
    };
    let (extern_crate, path) = if edition_2015 {
        (
            format!(
                "#[cfg({cfg})]\n#[allow(unused_extern_crates)]\nextern crate oohgc_peer_hook;\n"
            ),
            "oohgc_peer_hook",
        )
    } else {
        (String::new(), "::oohgc_peer_hook")
    };
    format!(
        "\n// ---- appended by oohgc-peer (the oohgc peer-suite harness); not part of this crate ----\n\
         {extern_crate}\
         #[cfg({cfg})]\n\
         #[global_allocator]\n\
         static OOHGC_PEER: {path}::oohgc::GcAllocator = {path}::oohgc::GcAllocator;\n"
    )
}

/// `source` with the injection appended (a final newline added first, so
/// that a trailing `//` comment does not swallow it).
pub fn inject(source: &str, kind: RootKind, edition_2015: bool) -> String {
    let mut s = source.to_string();
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s.push_str(&injection(kind, edition_2015));
    s
}

/// Whether `source` declares a global allocator already.
pub fn declares_allocator(source: &str) -> bool {
    source.contains("#[global_allocator]")
}

/// The published (normalized) manifest made a standalone workspace with
/// the hook behind [`FEATURE`] and the `peer` profile.
pub fn edit_manifest(manifest: &str, hook_path: &Path) -> Result<String, String> {
    let has_header = |h: &str| manifest.lines().any(|l| l.trim() == h);
    if has_header("[dependencies.oohgc-peer-hook]") || has_header("[profile.peer]") {
        return Err("the manifest already has oohgc-peer's tables".into());
    }
    let feature_line = format!("{FEATURE} = [\"dep:oohgc-peer-hook\"]");
    let mut out = String::new();
    let mut added_feature = false;
    for line in manifest.lines() {
        out.push_str(line);
        out.push('\n');
        if line.trim() == "[features]" {
            out.push_str(&feature_line);
            out.push('\n');
            added_feature = true;
        }
    }
    if !has_header("[workspace]") {
        out.push_str("\n[workspace]\n");
    }
    if !added_feature {
        out.push_str(&format!("\n[features]\n{feature_line}\n"));
    }
    let hook = hook_path
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    out.push_str(&format!(
        "\n[dependencies.oohgc-peer-hook]\npath = \"{hook}\"\noptional = true\n\n{PROFILE}"
    ));
    Ok(out)
}

/// A prepared package.
#[derive(Debug)]
pub struct Prepared {
    /// The copy's root directory.
    pub dir: PathBuf,
    /// Crate roots that got the allocator, relative to `dir`.
    pub injected: Vec<String>,
    /// Crate roots left without it, with why (relative to `dir`).
    pub skipped: Vec<(String, String)>,
}

/// Why preparing stopped.
#[derive(Debug)]
pub enum PrepareError {
    /// crates.io could not be reached (the suite is skipped with a note).
    Network(String),
    /// Anything else (a failure).
    Failed(String),
}

fn failed(context: &str, e: impl std::fmt::Display) -> PrepareError {
    PrepareError::Failed(format!("{context}: {e}"))
}

/// The unpacked published source of `suite`, downloading it if needed.
pub fn fetch(suite: &Suite, work: &Path) -> Result<PathBuf, PrepareError> {
    if let Some(dir) = find_unpacked(suite) {
        return Ok(dir);
    }
    let scratch = work.join("fetch").join(suite.dir_name());
    fs::create_dir_all(scratch.join("src")).map_err(|e| failed("fetch dir", e))?;
    let manifest = format!(
        "[package]\nname = \"oohgc-peer-fetch\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
         [workspace]\n\n[dependencies]\n{} = \"={}\"\n",
        suite.name, suite.version
    );
    fs::write(scratch.join("Cargo.toml"), manifest).map_err(|e| failed("fetch manifest", e))?;
    fs::write(scratch.join("src/lib.rs"), "").map_err(|e| failed("fetch lib", e))?;
    let out = cargo(&scratch, &["metadata", "--format-version", "1"], &[])
        .map_err(|e| failed("cargo metadata", e))?;
    if !out.success {
        return Err(if network_failure(&out.stderr) {
            PrepareError::Network(last_line(&out.stderr))
        } else {
            PrepareError::Failed(format!("cargo metadata: {}", last_line(&out.stderr)))
        });
    }
    find_unpacked(suite).ok_or_else(|| {
        PrepareError::Failed(format!(
            "cargo fetched {} but its source is not under $CARGO_HOME/registry/src",
            suite.dir_name()
        ))
    })
}

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"))
}

fn find_unpacked(suite: &Suite) -> Option<PathBuf> {
    let src = cargo_home().join("registry").join("src");
    let mut dirs: Vec<PathBuf> = fs::read_dir(src)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    // crates.io's index directory first.
    dirs.sort_by_key(|d| {
        !d.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("index.crates.io-"))
    });
    dirs.into_iter()
        .map(|d| d.join(suite.dir_name()))
        .find(|d| d.join("Cargo.toml").is_file() && d.join(".cargo-ok").is_file())
}

/// Copies `src` to `work/src/name-version` and prepares it (or keeps the
/// copy prepared earlier with the same stamp).
pub fn prepare(
    suite: &Suite,
    src: &Path,
    work: &Path,
    hook: &Path,
) -> Result<Prepared, PrepareError> {
    let dir = work.join("src").join(suite.dir_name());
    let stamp = format!(
        "oohgc-peer injection v{INJECTION_VERSION}\nhook {}\nsource {}\nanyway {:?}\n",
        hook.display(),
        src.display(),
        suite
            .inject_anyway
            .iter()
            .map(|i| i.path)
            .collect::<Vec<_>>()
    );
    let stamp_path = dir.join(".oohgc-peer-stamp");
    let notes_path = dir.join(".oohgc-peer-notes");
    if fs::read_to_string(&stamp_path).ok().as_deref() == Some(stamp.as_str()) {
        if let Ok(notes) = fs::read_to_string(&notes_path) {
            return Ok(parse_notes(&dir, &notes));
        }
    }
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| failed("removing the old copy", e))?;
    }
    copy_tree(src, &dir).map_err(|e| failed("copying the package", e))?;
    let manifest_path = dir.join("Cargo.toml");
    let manifest =
        fs::read_to_string(&manifest_path).map_err(|e| failed("reading Cargo.toml", e))?;
    let edited = edit_manifest(&manifest, hook).map_err(|e| failed("Cargo.toml", e))?;
    fs::write(&manifest_path, edited).map_err(|e| failed("writing Cargo.toml", e))?;

    let roots = crate_roots(&dir)?;
    let mut prepared = Prepared {
        dir: dir.clone(),
        injected: Vec::new(),
        skipped: Vec::new(),
    };
    for Root {
        rel,
        kind,
        edition_2015,
    } in roots
    {
        let path = dir.join(&rel);
        let text = fs::read_to_string(&path).map_err(|e| failed(&rel, e))?;
        if declares_allocator(&text) && !suite.inject_anyway.iter().any(|i| i.path == rel) {
            prepared.skipped.push((
                rel,
                "declares its own #[global_allocator]: not run under oohgc".into(),
            ));
            continue;
        }
        fs::write(&path, inject(&text, kind, edition_2015)).map_err(|e| failed(&rel, e))?;
        prepared.injected.push(rel);
    }
    fs::write(&notes_path, notes_text(&prepared)).map_err(|e| failed("notes", e))?;
    fs::write(&stamp_path, stamp).map_err(|e| failed("stamp", e))?;
    Ok(prepared)
}

fn notes_text(p: &Prepared) -> String {
    let mut s = String::new();
    for r in &p.injected {
        s.push_str(&format!("injected\t{r}\n"));
    }
    for (r, why) in &p.skipped {
        s.push_str(&format!("skipped\t{r}\t{why}\n"));
    }
    s
}

fn parse_notes(dir: &Path, notes: &str) -> Prepared {
    let mut p = Prepared {
        dir: dir.to_path_buf(),
        injected: Vec::new(),
        skipped: Vec::new(),
    };
    for line in notes.lines() {
        let mut f = line.split('\t');
        match (f.next(), f.next(), f.next()) {
            (Some("injected"), Some(r), _) => p.injected.push(r.to_string()),
            (Some("skipped"), Some(r), Some(why)) => {
                p.skipped.push((r.to_string(), why.to_string()))
            }
            _ => {}
        }
    }
    p
}

/// The package's crate roots that run as tests or are run by them,
/// relative to `dir`, from `cargo metadata --no-deps`.
fn crate_roots(dir: &Path) -> Result<Vec<Root>, PrepareError> {
    let out = cargo(
        dir,
        &["metadata", "--no-deps", "--format-version", "1"],
        &[],
    )
    .map_err(|e| failed("cargo metadata", e))?;
    if !out.success {
        return Err(PrepareError::Failed(format!(
            "cargo metadata of the prepared copy: {}",
            last_line(&out.stderr)
        )));
    }
    let meta: Value =
        serde_json::from_str(&out.stdout).map_err(|e| failed("cargo metadata JSON", e))?;
    roots_from_metadata(&meta, dir).map_err(PrepareError::Failed)
}

/// A crate root to inject into.
#[derive(Debug, PartialEq, Eq)]
pub struct Root {
    /// Path relative to the package.
    pub rel: String,
    /// Library or not.
    pub kind: RootKind,
    /// Edition 2015 (no absolute paths to extern crates).
    pub edition_2015: bool,
}

/// Crate roots from `cargo metadata` JSON.
pub fn roots_from_metadata(meta: &Value, dir: &Path) -> Result<Vec<Root>, String> {
    let pkg = meta["packages"]
        .as_array()
        .and_then(|p| p.first())
        .ok_or("cargo metadata lists no package")?;
    let mut roots = Vec::new();
    for t in pkg["targets"].as_array().ok_or("no targets")? {
        let kinds: Vec<&str> = t["kind"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let kind = if kinds
            .iter()
            .any(|k| matches!(*k, "lib" | "rlib" | "proc-macro"))
        {
            RootKind::Lib
        } else if kinds.iter().any(|k| matches!(*k, "test" | "bin")) {
            RootKind::TestOrBin
        } else {
            continue;
        };
        let src = t["src_path"].as_str().ok_or("target without src_path")?;
        let rel = Path::new(src)
            .strip_prefix(dir)
            .map_err(|_| format!("{src} lies outside the package"))?;
        let rel = rel.display().to_string();
        if !roots.iter().any(|r: &Root| r.rel == rel) {
            roots.push(Root {
                rel,
                kind,
                edition_2015: t["edition"].as_str() == Some("2015"),
            });
        }
    }
    Ok(roots)
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let ty = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if ty.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else if ty.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path())?, &dest)?;
        } else {
            fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injection_is_appended_after_a_trailing_comment() {
        let s = inject(
            "#![no_std]\n//! doc\nfn f() {} // end",
            RootKind::TestOrBin,
            false,
        );
        assert!(s.starts_with("#![no_std]\n//! doc\nfn f() {} // end\n"));
        assert!(s.contains("#[global_allocator]\nstatic OOHGC_PEER"));
        assert!(s.contains("#[cfg(feature = \"oohgc-peer\")]"));
        assert!(!s.contains("all(test"));
        assert!(s.contains("::oohgc_peer_hook::oohgc::GcAllocator = ::oohgc_peer_hook"));
        assert!(!s.contains("extern crate"));
        let lib = inject("pub fn f() {}\n", RootKind::Lib, true);
        assert_eq!(
            lib.matches("#[cfg(all(test, feature = \"oohgc-peer\"))]")
                .count(),
            2
        );
        assert!(lib.contains("extern crate oohgc_peer_hook;\n#[cfg(all(test"));
    }

    #[test]
    fn a_declared_allocator_is_noticed() {
        assert!(declares_allocator("#[global_allocator]\nstatic A: X = X;"));
        assert!(!declares_allocator("use std::alloc::System;"));
    }

    #[test]
    fn the_manifest_gets_a_workspace_the_feature_and_the_profile() {
        let m = "[package]\nname = \"x\"\n\n[features]\ndefault = []\n\n[dependencies.a]\nversion = \"1\"\n";
        let e = edit_manifest(m, Path::new("/r/peer/hook")).unwrap();
        assert!(e.contains("[features]\noohgc-peer = [\"dep:oohgc-peer-hook\"]\ndefault = []"));
        assert!(e.contains("\n[workspace]\n"));
        assert!(
            e.contains("[dependencies.oohgc-peer-hook]\npath = \"/r/peer/hook\"\noptional = true")
        );
        assert!(e.contains("[profile.peer]\ninherits = \"dev\""));
        assert!(edit_manifest(&e, Path::new("/r")).is_err());

        let bare =
            edit_manifest("[package]\nname = \"y\"\n[workspace]\n", Path::new("/h")).unwrap();
        assert_eq!(bare.matches("[workspace]").count(), 1);
        assert!(bare.contains("\n[features]\noohgc-peer = [\"dep:oohgc-peer-hook\"]\n"));
    }

    #[test]
    fn roots_come_from_lib_test_and_bin_targets() {
        let meta = serde_json::json!({"packages": [{"targets": [
            {"kind": ["lib"], "src_path": "/p/src/lib.rs", "edition": "2015"},
            {"kind": ["bin"], "src_path": "/p/crates/core/main.rs"},
            {"kind": ["test"], "src_path": "/p/tests/tests.rs"},
            {"kind": ["example"], "src_path": "/p/examples/e.rs"},
            {"kind": ["custom-build"], "src_path": "/p/build.rs"},
            {"kind": ["bench"], "src_path": "/p/benches/b.rs"}
        ]}]});
        let r = roots_from_metadata(&meta, Path::new("/p")).unwrap();
        let got: Vec<(&str, RootKind, bool)> = r
            .iter()
            .map(|r| (r.rel.as_str(), r.kind, r.edition_2015))
            .collect();
        assert_eq!(
            got,
            vec![
                ("src/lib.rs", RootKind::Lib, true),
                ("crates/core/main.rs", RootKind::TestOrBin, false),
                ("tests/tests.rs", RootKind::TestOrBin, false),
            ]
        );
    }
}
