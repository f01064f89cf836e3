//! Ranges added and removed between dumps, and a 1 GiB `MAP_NORESERVE`
//! range with 0.1% of its pages written per interval, under every source.

mod common;

use common::{available_sources, pattern, Mapping, Rng, Scratch};
use oohgc_checkpoint::{Checkpointer, Image, PageRange, PAGE_SIZE};
use std::collections::HashMap;
use std::time::Instant;

fn restore_each(image: &Image, mappings: &[(&Mapping, Vec<u8>)]) {
    let fresh: Vec<Mapping> = mappings.iter().map(|(m, _)| Mapping::new(m.len)).collect();
    let rep = image
        .restore_to(|r| {
            mappings
                .iter()
                .position(|(m, _)| m.range() == r)
                .map(|i| fresh[i].addr)
        })
        .unwrap();
    assert_eq!(
        rep.pages as usize,
        mappings.iter().map(|(m, _)| m.pages()).sum::<usize>()
    );
    for (i, (_, copy)) in mappings.iter().enumerate() {
        assert_eq!(fresh[i].first_difference(copy), None, "range {i}");
    }
}

fn ranges_change(source: &str) {
    let (a, b, c) = (
        Mapping::new(64 * PAGE_SIZE),
        Mapping::new(32 * PAGE_SIZE),
        Mapping::new(48 * PAGE_SIZE),
    );
    for (m, seed) in [(&a, 1), (&b, 2), (&c, 3)] {
        for p in 0..m.pages() {
            m.fill_page(p, seed);
        }
    }
    let dir = Scratch::new(source);
    let mut ck = Checkpointer::new(source).unwrap();
    ck.track(a.range()).unwrap();
    ck.track(b.range()).unwrap();
    ck.dump(dir.join("g1")).unwrap();
    let (a1, b1) = (a.snapshot(), b.snapshot());

    // Drop b, add c, write a little of a and c.
    ck.untrack(b.range()).unwrap();
    ck.track(c.range()).unwrap();
    a.fill_page(3, 10);
    c.fill_page(7, 10);
    b.fill_page(0, 10); // untracked now: in no later image
    let r2 = ck.dump(dir.join("g2")).unwrap();
    let mut want = [a.range(), c.range()];
    want.sort();
    assert_eq!(Image::open(dir.join("g2")).unwrap().ranges(), &want[..]);
    assert!(
        r2.pages as usize > c.pages(),
        "c whole, plus a's page: {r2:?}"
    );
    if source != "none" {
        assert!(
            !r2.full && (r2.pages as usize) < c.pages() + a.pages() / 2,
            "{r2:?}"
        );
    }
    let (a2, c2) = (a.snapshot(), c.snapshot());

    // b comes back (new content): the next image holds it whole.
    ck.track(b.range()).unwrap();
    b.fill_page(1, 11);
    a.fill_page(4, 11);
    let r3 = ck.dump(dir.join("g3")).unwrap();
    assert!(r3.pages as usize > b.pages(), "{r3:?}");
    let (a3, b3, c3) = (a.snapshot(), b.snapshot(), c.snapshot());

    restore_each(&Image::open(dir.join("g1")).unwrap(), &[(&a, a1), (&b, b1)]);
    restore_each(&Image::open(dir.join("g2")).unwrap(), &[(&a, a2), (&c, c2)]);
    restore_each(
        &Image::open(dir.join("g3")).unwrap(),
        &[(&a, a3), (&b, b3), (&c, c3)],
    );
}

#[test]
fn ranges_added_and_removed_between_dumps_under_every_source() {
    for source in available_sources() {
        eprintln!("source {source}");
        ranges_change(source);
    }
}

const GIB: usize = 1 << 30;

/// Check a restored 1 GiB mapping against the model: pages in `model`
/// hold `pattern(seed, page, w)`, all others are zero.
fn matches_model(m: &Mapping, model: &HashMap<usize, u64>) -> Result<(), String> {
    let mut expect = vec![0u8; PAGE_SIZE];
    for p in 0..m.pages() {
        // SAFETY: one page of the mapping.
        let actual = unsafe { std::slice::from_raw_parts(m.page_ptr(p) as *const u8, PAGE_SIZE) };
        match model.get(&p) {
            None => {
                if !oohgc_checkpoint::pages::bytes_are_zero(actual) {
                    return Err(format!("page {p} should be zero"));
                }
            }
            Some(seed) => {
                for (w, chunk) in expect.chunks_exact_mut(8).enumerate() {
                    chunk.copy_from_slice(&pattern(*seed, p, w).to_ne_bytes());
                }
                if actual != &expect[..] {
                    return Err(format!("page {p} should hold generation {seed}"));
                }
            }
        }
    }
    Ok(())
}

fn one_gib(source: &str) {
    let t = Instant::now();
    let m = Mapping::new(GIB);
    let dir = Scratch::new(source);
    let mut ck = Checkpointer::new(source).unwrap();
    ck.track(m.range()).unwrap();
    let mut model: HashMap<usize, u64> = HashMap::new();
    let mut models = Vec::new();
    let mut rng = Rng(77);
    let per_interval = m.pages() / 1000;
    for g in 1..=3u64 {
        if g > 1 {
            for _ in 0..per_interval {
                let p = rng.below(m.pages());
                m.fill_page(p, g);
                model.insert(p, g);
            }
        }
        let r = ck.dump(dir.join(&format!("g{g}"))).unwrap();
        eprintln!(
            "  {source} g{g}: {} pages ({} data), frozen {:.2} ms, dump {:.2} ms",
            r.pages,
            r.data_pages,
            r.frozen_ns as f64 / 1e6,
            r.total_ns as f64 / 1e6
        );
        if g > 1 && source != "none" {
            assert!(!r.full, "{r:?}");
            let distinct = model.values().filter(|s| **s == g).count() as u64;
            assert!(
                r.data_pages >= distinct,
                "{source}: {r:?} < {distinct} written"
            );
            assert!(
                r.pages < (m.pages() / 20) as u64,
                "{source}: {} pages in an incremental image after {per_interval} written",
                r.pages
            );
        }
        models.push(model.clone());
    }
    let fresh = Mapping::new(GIB);
    for (i, model) in models.iter().enumerate() {
        let image = Image::open(dir.join(&format!("g{}", i + 1))).unwrap();
        if i > 0 {
            // Wipe what the previous generation restored.
            for p in models[i - 1].keys() {
                // SAFETY: one page of the fresh mapping.
                unsafe { std::ptr::write_bytes(fresh.page_ptr(*p), 0xEE, PAGE_SIZE) };
            }
        }
        image.restore_to(|_| Some(fresh.addr)).unwrap();
        matches_model(&fresh, model)
            .unwrap_or_else(|e| panic!("{source}: generation {}: {e}", i + 1));
    }
    ck.untrack(PageRange::new(m.addr, m.len).unwrap()).unwrap();
    eprintln!("  {source}: {:.1} s", t.elapsed().as_secs_f64());
}

#[test]
fn a_1_gib_noreserve_range_with_a_tenth_of_a_percent_written_per_interval() {
    for source in available_sources() {
        one_gib(source);
    }
}
