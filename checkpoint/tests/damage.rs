//! Damaged images are refused with a message naming the file and the page,
//! older generations still restore, and a dump that fails or crashes
//! mid-way leaves every earlier image usable and loses no page.

mod common;

use common::{Mapping, Rng, Scratch};
use oohgc_checkpoint::{Checkpointer, Image, PAGE_SIZE};
use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

const PAGES: usize = 256;

/// The source these tests use: the best kernel tracker that opens here.
fn source() -> &'static str {
    ["pagemap-scan", "epml", "uffd", "none"]
        .into_iter()
        .find(|s| Checkpointer::new(*s).is_ok())
        .expect("none always opens")
}

/// Three generations of a mapping; returns (mapping, scratch, copies).
fn three_generations() -> (Mapping, Scratch, Checkpointer, Vec<Vec<u8>>) {
    let m = Mapping::new(PAGES * PAGE_SIZE);
    for p in 0..PAGES {
        m.fill_page(p, 7);
    }
    let dir = Scratch::new("damage");
    let mut ck = Checkpointer::new(source()).unwrap();
    ck.track(m.range()).unwrap();
    let mut rng = Rng(5);
    let mut copies = Vec::new();
    for g in 1..=3 {
        if g > 1 {
            for _ in 0..10 {
                let p = rng.below(PAGES);
                m.fill_page(p, g);
            }
        }
        ck.dump(dir.join(&format!("g{g}"))).unwrap();
        copies.push(m.snapshot());
    }
    (m, dir, ck, copies)
}

fn restores_to(dir: &Path, copy: &[u8]) {
    let image = Image::open(dir).unwrap();
    let fresh = Mapping::new(PAGES * PAGE_SIZE);
    image.restore_to(|_| Some(fresh.addr)).unwrap();
    assert_eq!(fresh.first_difference(copy), None, "{}", dir.display());
}

/// Offset of the data of the first page record of an image.
fn first_data_offset(image: &Path) -> u64 {
    let bytes = std::fs::read(image).unwrap();
    let ranges = u32::from_le_bytes(bytes[60..64].try_into().unwrap()) as u64;
    let path_len = u32::from_le_bytes(bytes[72..76].try_into().unwrap()) as u64;
    80 + ranges * 16 + path_len + 4 + 16
}

#[test]
fn a_corrupted_page_is_named_and_older_generations_still_restore() {
    let (_m, dir, _ck, copies) = three_generations();
    let g2 = dir.join("g2").join("image");
    let at = first_data_offset(&g2) + 1000;
    let mut f = OpenOptions::new().write(true).open(&g2).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[0xFF, 0x00, 0xFF]).unwrap();
    drop(f);
    for broken in ["g2", "g3"] {
        let e = Image::open(dir.join(broken)).err().expect("refused");
        let msg = e.to_string();
        assert!(
            msg.contains(&g2.display().to_string()),
            "names the file: {msg}"
        );
        assert!(msg.contains("page 0 (address 0x"), "names the page: {msg}");
        assert!(msg.contains("checksum mismatch"), "{msg}");
    }
    restores_to(&dir.join("g1"), &copies[0]);
}

#[test]
fn a_truncated_image_is_refused_and_its_parents_still_restore() {
    let (_m, dir, _ck, copies) = three_generations();
    let g3 = dir.join("g3").join("image");
    let len = std::fs::metadata(&g3).unwrap().len();
    let at = first_data_offset(&g3) + 2 * (PAGE_SIZE as u64 + 16) + 100;
    assert!(at < len);
    OpenOptions::new()
        .write(true)
        .open(&g3)
        .unwrap()
        .set_len(at)
        .unwrap();
    let msg = Image::open(dir.join("g3"))
        .err()
        .expect("refused")
        .to_string();
    assert!(msg.contains(&g3.display().to_string()), "{msg}");
    assert!(msg.contains("truncated in page 2 of"), "{msg}");
    restores_to(&dir.join("g2"), &copies[1]);
    restores_to(&dir.join("g1"), &copies[0]);

    // Cut inside the trailer and after it.
    let g2 = dir.join("g2").join("image");
    let len = std::fs::metadata(&g2).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&g2)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let msg = Image::open(dir.join("g2"))
        .err()
        .expect("refused")
        .to_string();
    assert!(msg.contains("truncated in the trailer"), "{msg}");
    OpenOptions::new()
        .write(true)
        .open(&g2)
        .unwrap()
        .set_len(len + 5)
        .unwrap();
    let msg = Image::open(dir.join("g2"))
        .err()
        .expect("refused")
        .to_string();
    assert!(
        msg.contains("trailer does not match") || msg.contains("bytes long"),
        "{msg}"
    );
    restores_to(&dir.join("g1"), &copies[0]);
}

#[test]
fn headers_versions_and_parent_links_are_checked() {
    let (_m, dir, _ck, copies) = three_generations();
    // Another version.
    let g3 = dir.join("g3").join("image");
    let mut bytes = std::fs::read(&g3).unwrap();
    bytes[8] = 9;
    std::fs::write(&g3, &bytes).unwrap();
    let msg = Image::open(dir.join("g3")).err().unwrap().to_string();
    assert!(
        msg.contains("format version 9; this build reads version 1"),
        "{msg}"
    );
    // Not an image at all.
    std::fs::write(&g3, b"hello").unwrap();
    let msg = Image::open(dir.join("g3")).err().unwrap().to_string();
    assert!(msg.contains("truncated in the header"), "{msg}");
    // A parent that is gone, then replaced by another image.
    std::fs::rename(dir.join("g1"), dir.join("moved")).unwrap();
    let msg = Image::open(dir.join("g2")).err().unwrap().to_string();
    assert!(
        msg.contains("its parent image") && msg.contains("g1"),
        "{msg}"
    );
    let m2 = Mapping::new(PAGES * PAGE_SIZE);
    let mut other = Checkpointer::new("none").unwrap();
    other.track(m2.range()).unwrap();
    other.dump(dir.join("g1")).unwrap();
    let msg = Image::open(dir.join("g2")).err().unwrap().to_string();
    assert!(msg.contains("its parent link names image"), "{msg}");
    std::fs::remove_dir_all(dir.join("g1")).unwrap();
    std::fs::rename(dir.join("moved"), dir.join("g1")).unwrap();
    restores_to(&dir.join("g2"), &copies[1]);
}

#[test]
fn a_failed_or_crashed_dump_leaves_earlier_images_and_loses_no_page() {
    let (m, dir, mut ck, copies) = three_generations();
    // A crash mid-dump: a half-written temp file in the next directory.
    std::fs::create_dir_all(dir.join("g4")).unwrap();
    std::fs::write(dir.join("g4").join("image.tmp"), b"OOHGCCKP half").unwrap();
    restores_to(&dir.join("g3"), &copies[2]);
    assert!(Image::open(dir.join("g4")).is_err());

    // A dump that fails after its harvest: the temp name is a directory.
    m.fill_page(17, 99);
    m.fill_page(200, 99);
    std::fs::create_dir_all(dir.join("g5").join("image.tmp")).unwrap();
    let e = ck.dump(dir.join("g5")).unwrap_err();
    assert!(e.to_string().contains("image.tmp"), "{e}");
    restores_to(&dir.join("g3"), &copies[2]);
    // The pages it harvested go into the next image.
    let r = ck.dump(dir.join("g4")).unwrap();
    assert_eq!(r.generation, 4);
    assert!(r.pages >= 2, "{r:?}");
    restores_to(&dir.join("g4"), &m.snapshot());
}
