//! SPML's reverse map: every logged frame maps back to the page that was
//! written, including after pages were unmapped (`MADV_DONTNEED`,
//! munmap + mmap) and mapped again with new frames.

mod common;
use common::map_pages_with;
use oohgc_dirty::pml::cost::Event;
use oohgc_dirty::pml::{Engine, Mode, PmlConfig, PmlSource};
use oohgc_dirty::{DirtySource, PageRange, PAGE_SIZE};

const PAGES: usize = 64;

fn map_at(hint: usize) -> usize {
    let len = PAGES * PAGE_SIZE;
    let flags =
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | if hint != 0 { libc::MAP_FIXED } else { 0 };
    // SAFETY: a fresh anonymous mapping (MAP_FIXED only over the test's own
    // earlier mapping).
    let p = unsafe {
        libc::mmap(
            hint as *mut libc::c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    // SAFETY: advice on our own mapping.
    unsafe { libc::madvise(p, len, libc::MADV_NOHUGEPAGE) };
    for i in 0..PAGES {
        // SAFETY: inside the mapping.
        unsafe { (p as *mut u8).add(i * PAGE_SIZE).write_volatile(1) };
    }
    p as usize
}

fn write(base: usize, page: usize) {
    // SAFETY: a page of the test's mapping.
    unsafe { ((base + page * PAGE_SIZE + 16) as *mut u64).write_volatile(0xABCD) };
}

fn dontneed(base: usize, page: usize) {
    // SAFETY: discards one page of the test's own mapping.
    let r = unsafe {
        libc::madvise(
            (base + page * PAGE_SIZE) as *mut _,
            PAGE_SIZE,
            libc::MADV_DONTNEED,
        )
    };
    assert_eq!(r, 0);
}

fn harvest(src: &PmlSource, base: usize) -> Vec<usize> {
    let mut pages = Vec::new();
    src.harvest(&mut |r: PageRange| {
        for p in 0..r.pages() {
            pages.push((r.start - base) / PAGE_SIZE + p);
        }
    })
    .unwrap();
    pages.sort();
    pages
}

fn counter(src: &PmlSource, name: &str) -> u64 {
    let mut v = None;
    src.for_each_counter(&mut |n, x| {
        if n == name {
            v = Some(x);
        }
    });
    v.unwrap_or_else(|| panic!("no counter {name}"))
}

#[test]
fn frames_map_back_to_written_pages() {
    for engine in [Engine::Async, Engine::Sync] {
        let src = PmlSource::open(Mode::Spml, engine, PmlConfig::default()).unwrap();
        let base = map_at(0);
        let range = PageRange::new(base, PAGES * PAGE_SIZE).unwrap();
        src.track(range).unwrap();
        src.arm().unwrap();

        // Stable frames: the reverse map alone finds the pages, no safety net.
        write(base, 5);
        write(base, 40);
        assert_eq!(harvest(&src, base), vec![5, 40], "{engine:?}");
        assert_eq!(src.event_counts().get(Event::ReverseMapLookups), 2);
        assert_eq!(counter(&src, "pml_spml_pages_with_changed_frame"), 0);
        assert_eq!(counter(&src, "pml_spml_fallbacks"), 0);

        // Written, logged (schedule-out flushes it into the ring with its
        // frame), discarded, written again on a new frame.
        write(base, 10);
        src.schedule_out().unwrap();
        src.schedule_in();
        dontneed(base, 10);
        write(base, 10);
        // Written then discarded (now reads as zeros: a modification).
        write(base, 11);
        dontneed(base, 11);
        // Discarded without a write by the program.
        dontneed(base, 12);
        let fallbacks_before = counter(&src, "pml_spml_fallbacks");
        let got = harvest(&src, base);
        for p in [10, 11, 12] {
            assert!(
                got.contains(&p),
                "{engine:?}: page {p} missing from {got:?}"
            );
        }
        // Page 12 was never written by the program but its frame changed.
        // A logged frame that was freed before the harvest resolves to no
        // page: then (and only then) every tracked page is reported.
        let fell_back = counter(&src, "pml_spml_fallbacks") > fallbacks_before;
        if fell_back {
            assert_eq!(
                got.len(),
                PAGES,
                "{engine:?}: a fallback reports every page"
            );
            assert!(counter(&src, "pml_spml_unresolved_frames") > 0);
        } else {
            assert!(
                got.iter().all(|p| [10, 11, 12].contains(p)),
                "{engine:?}: extra pages {got:?}"
            );
        }

        // After the churn, stable pages resolve exactly again.
        write(base, 11);
        write(base, 30);
        let got = harvest(&src, base);
        assert!(
            got.contains(&11) && got.contains(&30),
            "{engine:?}: {got:?}"
        );

        // munmap + mmap at the same address: untrack, remap, track again.
        src.untrack(range).unwrap();
        // SAFETY: unmapping the test's own mapping, then mapping it again.
        unsafe { libc::munmap(base as *mut _, PAGES * PAGE_SIZE) };
        let again = map_at(base);
        assert_eq!(again, base);
        src.track(range).unwrap();
        assert_eq!(
            harvest(&src, base).len(),
            PAGES,
            "{engine:?}: a re-tracked range starts dirty"
        );
        write(base, 3);
        write(base, 63);
        assert_eq!(harvest(&src, base), vec![3, 63], "{engine:?}: after remap");
        // SAFETY: the test's own mapping.
        unsafe { libc::munmap(base as *mut _, PAGES * PAGE_SIZE) };
    }
}

#[test]
fn pages_touched_first_after_arm_resolve() {
    for engine in [Engine::Async, Engine::Sync] {
        let src = PmlSource::open(Mode::Spml, engine, PmlConfig::default()).unwrap();
        let len = PAGES * PAGE_SIZE;
        // Left untouched: no frames yet.
        let base = map_pages_with(PAGES, false);
        src.track(PageRange::new(base, len).unwrap()).unwrap();
        src.arm().unwrap();
        for page in [0, 1, 17] {
            write(base, page);
        }
        let got = harvest(&src, base);
        assert_eq!(got, vec![0, 1, 17], "{engine:?}");
        assert!(
            src.real_frames(),
            "this machine runs as root: real PFNs are visible"
        );
        // SAFETY: the test's own mapping.
        unsafe { libc::munmap(base as *mut libc::c_void, len) };
    }
}

/// Pages that were only read map the kernel's shared zero page: they must
/// not turn the reverse map into one long probe chain, and a later write
/// (a fresh frame) must still be found.
#[test]
fn read_only_pages_sharing_the_zero_page() {
    let pages = 16384; // 64 MiB
    let len = pages * PAGE_SIZE;
    let base = map_pages_with(pages, false);
    for i in 0..pages {
        // SAFETY: reads inside the mapping (each maps the zero page).
        unsafe { std::ptr::read_volatile((base + i * PAGE_SIZE) as *const u8) };
    }
    let src = PmlSource::open(Mode::Spml, Engine::Async, PmlConfig::default()).unwrap();
    src.track(PageRange::new(base, len).unwrap()).unwrap();
    src.arm().unwrap();
    write(base, 100);
    write(base, 9000);
    let got = harvest(&src, base);
    assert!(got.contains(&100) && got.contains(&9000), "{got:?}");
    // Both written pages left the zero page: reported as frame changes or
    // through the reverse map, nothing else.
    assert_eq!(got.len(), 2, "{got:?}");
    // SAFETY: the test's own mapping.
    unsafe { libc::munmap(base as *mut libc::c_void, len) };
}
