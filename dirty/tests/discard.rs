//! A page whose contents were discarded (`MADV_DONTNEED`, as a heap does
//! when it returns memory to the OS) and then written again is reported:
//! a discard must not silently drop a page's write tracking. Checked for
//! every source that tracks real writes, in every phase (armed, after a
//! harvest, a populated and a never-touched page), with the discard told
//! to the source through `DirtySource::discarded` as the contract asks.

mod common;

use common::{harvest_pages, Mapping};
use oohgc_dirty::DirtySource;

fn discard(s: &dyn DirtySource, addr: usize) {
    // SAFETY: dropping the contents of one page of a mapping we own.
    assert_eq!(
        unsafe { libc::madvise(addr as *mut _, 4096, libc::MADV_DONTNEED) },
        0
    );
    s.discarded(oohgc_dirty::PageRange::new(addr, 4096).unwrap())
        .unwrap();
}

fn check(name: &str) {
    check_with(name, oohgc_dirty::pml::Engine::Async);
}

fn check_with(name: &str, engine: oohgc_dirty::pml::Engine) {
    let opts = oohgc_dirty::OpenOptions { pml_engine: engine };
    let s: Box<dyn DirtySource> = oohgc_dirty::open_with(name, &opts).unwrap();
    let m = Mapping::new(8);
    m.write(1, 1);
    m.write(2, 1);
    s.track(m.range).unwrap();
    s.arm().unwrap();
    let _ = harvest_pages(&*s);
    // Discard a populated page and a never-written one, harvest, then write.
    discard(&*s, m.page(2));
    discard(&*s, m.page(5));
    let _ = harvest_pages(&*s);
    m.write(2, 7);
    m.write(5, 7);
    let got = harvest_pages(&*s);
    assert!(
        got.contains(&m.page(2)),
        "{name}: a write after MADV_DONTNEED of a populated page was missed"
    );
    assert!(
        got.contains(&m.page(5)),
        "{name}: a write after MADV_DONTNEED of an empty page was missed"
    );
    // And once more after a re-arm.
    s.arm().unwrap();
    discard(&*s, m.page(2));
    m.write(2, 9);
    let got = harvest_pages(&*s);
    assert!(
        got.contains(&m.page(2)),
        "{name}: a write after discard in a fresh epoch was missed"
    );
}

#[test]
fn pagemap_scan_tracks_writes_after_a_discard() {
    check("pagemap-scan");
}

#[test]
fn uffd_tracks_writes_after_a_discard() {
    check("uffd");
}

#[test]
fn mprotect_tracks_writes_after_a_discard() {
    check("mprotect");
}

#[test]
fn epml_tracks_writes_after_a_discard() {
    check("epml");
}

#[test]
fn spml_tracks_writes_after_a_discard() {
    check("spml");
}

#[test]
fn epml_sync_engine_tracks_writes_after_a_discard() {
    check_with("epml", oohgc_dirty::pml::Engine::Sync);
}

#[test]
fn spml_sync_engine_tracks_writes_after_a_discard() {
    check_with("spml", oohgc_dirty::pml::Engine::Sync);
}
