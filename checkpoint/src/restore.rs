//! Opening, verifying and restoring an image chain.
//!
//! [`Image::open`] reads the image in a directory and every parent it links
//! to, down to a full image, and verifies all of it (crate doc, FORMAT)
//! before anything is written to memory. [`Image::restore`] writes every
//! page of the image's ranges back to the addresses it was dumped from;
//! [`Image::restore_to`] writes them elsewhere (a fresh mapping, say).
//! Page bytes go through a private buffer, never straight from `read(2)`
//! into the destination, so restoring into memory a write-protecting source
//! tracks (`mprotect`, whose protected pages make kernel writes fail) works.

use crate::error::CheckpointError;
use crate::format::{
    self, decode_record, id_hex, record_crc, Header, END_MAGIC, IMAGE_FILE, KIND_DATA, KIND_ZERO,
    RECORD_HEADER, TRAILER,
};
use crate::pages;
use oohgc_dirty::{PageRange, PAGE_SIZE};
use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where the newest copy of one page is.
#[derive(Clone, Copy, Debug)]
struct Loc {
    /// Index into the chain (0 = the image opened).
    file: u32,
    kind: u32,
    crc: u32,
    /// Offset of the page's bytes in the file (kind data).
    offset: u64,
}

/// One verified image file of a chain.
struct ChainFile {
    path: PathBuf,
    header: Header,
}

/// A verified image chain, ready to restore.
pub struct Image {
    chain: Vec<ChainFile>,
    /// Per page of the target's ranges, in order: its newest copy.
    index: Vec<Loc>,
}

/// What a restore wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// The generation restored.
    pub generation: u64,
    /// Images read (the one named and its parents).
    pub images: usize,
    /// Pages restored.
    pub pages: u64,
    /// Pages whose bytes were copied from an image.
    pub data_pages: u64,
    /// All-zero pages that had to be cleared (destination pages already
    /// zero are left untouched, so an untouched mapping stays unpopulated).
    pub zero_pages_cleared: u64,
    /// Wall time, nanoseconds.
    pub ns: u64,
}

impl Image {
    /// Open the image in `dir` and its parents, verifying every byte.
    pub fn open(dir: impl AsRef<Path>) -> Result<Image, CheckpointError> {
        let path = dir.as_ref().join(IMAGE_FILE);
        let mut chain: Vec<ChainFile> = Vec::new();
        let mut index: Vec<Option<Loc>> = Vec::new();
        let mut bases: Vec<usize> = Vec::new();
        let mut targets: Vec<PageRange> = Vec::new();
        let mut next = Some(path);
        while let Some(path) = next.take() {
            let expect = chain
                .last()
                .map(|c| (c.header.parent_id, c.header.generation - 1, c.path.clone()));
            let file_no = chain.len() as u32;
            let (header, records) = verify_file(&path, expect.as_ref())?;
            if chain.is_empty() {
                let mut total = 0;
                for r in &header.ranges {
                    bases.push(total);
                    total += r.pages();
                }
                targets = header.ranges.clone();
                index = vec![None; total];
            }
            for (addr, loc) in records {
                if let Some(slot) = slot_of(&targets, &bases, addr) {
                    if index[slot].is_none() {
                        index[slot] = Some(Loc {
                            file: file_no,
                            ..loc
                        });
                    }
                }
            }
            next = header.parent.as_ref().map(|p| p.join(IMAGE_FILE));
            chain.push(ChainFile { path, header });
        }
        let mut full_index = Vec::with_capacity(index.len());
        for (slot, loc) in index.into_iter().enumerate() {
            match loc {
                Some(l) => full_index.push(l),
                None => {
                    let ri = bases.partition_point(|b| *b <= slot) - 1;
                    let addr = targets[ri].start + (slot - bases[ri]) * PAGE_SIZE;
                    return Err(CheckpointError::corrupt(
                        &chain[0].path,
                        format!(
                            "page at {addr:#x} (range {:#x}..{:#x}) is in no image of the chain {}",
                            targets[ri].start,
                            targets[ri].end(),
                            chain
                                .iter()
                                .map(|c| c.path.display().to_string())
                                .collect::<Vec<_>>()
                                .join(" <- ")
                        ),
                    ));
                }
            }
        }
        Ok(Image {
            chain,
            index: full_index,
        })
    }

    /// The generation of the image opened.
    pub fn generation(&self) -> u64 {
        self.chain[0].header.generation
    }

    /// The ranges it restores.
    pub fn ranges(&self) -> &[PageRange] {
        &self.chain[0].header.ranges
    }

    /// Whether the image opened is full (a chain of one).
    pub fn is_full(&self) -> bool {
        self.chain[0].header.full
    }

    /// The image files of the chain, the one opened first.
    pub fn files(&self) -> Vec<&Path> {
        self.chain.iter().map(|c| c.path.as_path()).collect()
    }

    /// Pages the image opened holds itself (not inherited from parents).
    pub fn own_pages(&self) -> u64 {
        self.chain[0].header.page_count
    }

    /// Restore into the addresses the image was dumped from.
    pub fn restore(&self) -> Result<RestoreReport, CheckpointError> {
        self.restore_to(|r| Some(r.start))
    }

    /// Restore each range to the address `dest(range)` gives (`None`:
    /// skip that range). Destinations must be page aligned, mapped and
    /// writable for the range's length.
    pub fn restore_to(
        &self,
        dest: impl Fn(PageRange) -> Option<usize>,
    ) -> Result<RestoreReport, CheckpointError> {
        let t = Instant::now();
        let mut plan = Vec::new();
        for r in self.ranges() {
            if let Some(d) = dest(*r) {
                let target = PageRange::new(d, r.len).map_err(|_| CheckpointError::BadRange {
                    range: *r,
                    what: format!("destination {d:#x} is not page aligned"),
                })?;
                if !pages::is_mapped(target) {
                    return Err(CheckpointError::BadRange {
                        range: *r,
                        what: format!(
                            "destination {:#x}..{:#x} is not wholly mapped",
                            target.start,
                            target.end()
                        ),
                    });
                }
                plan.push(Some(d));
            } else {
                plan.push(None);
            }
        }
        let mut files = Vec::with_capacity(self.chain.len());
        for c in &self.chain {
            files.push(File::open(&c.path).map_err(|e| CheckpointError::io(&c.path, "open", e))?);
        }
        let mut report = RestoreReport {
            generation: self.generation(),
            images: self.chain.len(),
            ..RestoreReport::default()
        };
        let mut buf = vec![0u8; PAGE_SIZE];
        let mut slot = 0usize;
        for (r, d) in self.ranges().iter().zip(&plan) {
            let Some(d) = *d else {
                slot += r.pages();
                continue;
            };
            for p in 0..r.pages() {
                let loc = self.index[slot];
                slot += 1;
                let to = d + p * PAGE_SIZE;
                let addr = (r.start + p * PAGE_SIZE) as u64;
                if loc.kind == KIND_ZERO {
                    // SAFETY: `to` is a page of a destination checked
                    // mapped above; the caller promises it is writable.
                    unsafe {
                        if !pages::page_is_zero(to) {
                            pages::zero_page(to);
                            report.zero_pages_cleared += 1;
                        }
                    }
                } else {
                    let c = &self.chain[loc.file as usize];
                    files[loc.file as usize]
                        .read_exact_at(&mut buf, loc.offset)
                        .map_err(|e| CheckpointError::io(&c.path, "read", e))?;
                    let crc = record_crc(addr, KIND_DATA, Some(&buf));
                    if crc != loc.crc {
                        return Err(CheckpointError::corrupt(
                            &c.path,
                            format!(
                                "page at {addr:#x} changed on disk after verification \
                                 (checksum {crc:#010x}, stored {:#010x}); memory is partly restored",
                                loc.crc
                            ),
                        ));
                    }
                    // SAFETY: `to` is a writable destination page (above);
                    // `buf` is one private page.
                    unsafe { pages::copy_page(buf.as_ptr() as usize, to) };
                    report.data_pages += 1;
                }
                report.pages += 1;
            }
        }
        report.ns = t.elapsed().as_nanos() as u64;
        Ok(report)
    }
}

/// Slot of `addr` among the pages of `targets` (`bases[i]`: first slot of
/// range i), if it lies in one.
fn slot_of(targets: &[PageRange], bases: &[usize], addr: usize) -> Option<usize> {
    let i = targets.partition_point(|r| r.end() <= addr);
    let r = targets.get(i)?;
    r.contains(addr)
        .then(|| bases[i] + (addr - r.start) / PAGE_SIZE)
}

/// Read and verify one image file; returns its header and its records
/// (address, location). `expect`: the (id, generation, child path) the
/// child's parent link promised.
fn verify_file(
    path: &Path,
    expect: Option<&(format::ImageId, u64, PathBuf)>,
) -> Result<(Header, Vec<(usize, Loc)>), CheckpointError> {
    let file = File::open(path).map_err(|e| match &expect {
        Some((_, _, child)) => CheckpointError::corrupt(
            child,
            format!("its parent image {} cannot be opened: {e}", path.display()),
        ),
        None => CheckpointError::io(path, "open", e),
    })?;
    let file_len = file
        .metadata()
        .map_err(|e| CheckpointError::io(path, "stat", e))?
        .len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let (header, header_len) = Header::decode(&mut r, path)?;
    let bad = |what: String| CheckpointError::corrupt(path, what);
    if let Some((id, generation, child)) = expect {
        if header.id != *id || header.generation != *generation {
            return Err(CheckpointError::corrupt(
                child,
                format!(
                    "its parent link names image {} of generation {generation}, but {} holds image {} of generation {}",
                    id_hex(id),
                    path.display(),
                    id_hex(&header.id),
                    header.generation
                ),
            ));
        }
    }
    if !header.full && header.generation <= 1 {
        return Err(bad(format!(
            "incremental image of generation {}: generations of incremental images start at 2",
            header.generation
        )));
    }
    let total_pages: u64 = header.ranges.iter().map(|r| r.pages() as u64).sum();
    if header.page_count > total_pages || (header.full && header.page_count != total_pages) {
        return Err(bad(format!(
            "the header claims {} pages for ranges of {total_pages} pages{}",
            header.page_count,
            if header.full {
                " (a full image holds them all)"
            } else {
                ""
            }
        )));
    }
    let mut offset = header_len;
    let mut prev: Option<u64> = None;
    let mut headers_crc = crc32fast::Hasher::new();
    let mut data = vec![0u8; PAGE_SIZE];
    let mut records = Vec::with_capacity(header.page_count as usize);
    for n in 0..header.page_count {
        let mut rec = [0u8; RECORD_HEADER];
        format::read_exact(
            &mut r,
            &mut rec,
            path,
            &format!("the record of page {n} of {}", header.page_count),
        )?;
        headers_crc.update(&rec);
        let (addr, kind, crc) = decode_record(&rec);
        offset += RECORD_HEADER as u64;
        if prev.is_some_and(|p| addr <= p) {
            return Err(bad(format!(
                "page {n} (address {addr:#x}) is not above the page before it ({:#x})",
                prev.unwrap_or(0)
            )));
        }
        prev = Some(addr);
        let a = addr as usize;
        let in_range = {
            let i = header.ranges.partition_point(|r| r.end() <= a);
            header.ranges.get(i).is_some_and(|r| r.contains(a))
        };
        if !a.is_multiple_of(PAGE_SIZE) || !in_range {
            return Err(bad(format!(
                "page {n} has address {addr:#x}, which is not a page of the image's ranges"
            )));
        }
        let computed = match kind {
            KIND_DATA => {
                format::read_exact(
                    &mut r,
                    &mut data,
                    path,
                    &format!("page {n} of {} (address {addr:#x})", header.page_count),
                )?;
                record_crc(addr, kind, Some(&data))
            }
            KIND_ZERO => record_crc(addr, kind, None),
            other => {
                return Err(bad(format!(
                    "page {n} (address {addr:#x}) has kind {other}; allowed: {KIND_DATA} (data), {KIND_ZERO} (zero)"
                )))
            }
        };
        if computed != crc {
            return Err(bad(format!(
                "page {n} (address {addr:#x}): checksum mismatch (stored {crc:#010x}, computed {computed:#010x})"
            )));
        }
        records.push((
            a,
            Loc {
                file: 0,
                kind,
                crc,
                offset,
            },
        ));
        if kind == KIND_DATA {
            offset += PAGE_SIZE as u64;
        }
    }
    let mut trailer = [0u8; TRAILER];
    format::read_exact(
        &mut r,
        &mut trailer,
        path,
        &format!("the trailer (after page {})", header.page_count),
    )?;
    offset += TRAILER as u64;
    if &trailer[0..8] != END_MAGIC
        || format::u64_at(&trailer, 8) != header.page_count
        || format::u32_at(&trailer, 16) != headers_crc.finalize()
    {
        return Err(bad(format!(
            "the trailer does not match the {} page records before it",
            header.page_count
        )));
    }
    if file_len != offset {
        return Err(bad(format!(
            "{} bytes long, but its records end at byte {offset}",
            file_len
        )));
    }
    let mut extra = [0u8; 1];
    if r.read(&mut extra)
        .map_err(|e| CheckpointError::io(path, "read", e))?
        != 0
    {
        return Err(bad(format!("bytes follow the trailer at byte {offset}")));
    }
    Ok((header, records))
}
