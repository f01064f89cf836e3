//! The image file: constants, the header, page records and the trailer,
//! encoded and decoded. The layout is documented in the crate's FORMAT
//! section; this module is its only implementation.

use crate::error::CheckpointError;
use oohgc_dirty::{PageRange, PAGE_SIZE};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// First eight bytes of every image.
pub const MAGIC: &[u8; 8] = b"OOHGCCKP";
/// First eight bytes of the trailer.
pub const END_MAGIC: &[u8; 8] = b"OOHGCEND";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Header flag: the image holds every page of every range (no parent).
pub const FLAG_FULL: u32 = 1;
/// Record kind: the page's bytes follow.
pub const KIND_DATA: u32 = 0;
/// Record kind: the page is all zeroes (no bytes follow).
pub const KIND_ZERO: u32 = 1;
/// Bytes of a page record before its data.
pub const RECORD_HEADER: usize = 16;
/// Bytes of the trailer.
pub const TRAILER: usize = 24;
/// Bytes of the fixed part of the header.
pub const FIXED_HEADER: usize = 80;
/// The image's file name inside its directory.
pub const IMAGE_FILE: &str = "image";
/// The name it is written under before the rename.
pub const TEMP_FILE: &str = "image.tmp";
/// Longest parent path accepted (a corrupt length must not allocate GiBs).
pub const MAX_PARENT_PATH: u32 = 64 * 1024;
/// Most ranges accepted in one header.
pub const MAX_RANGES: u32 = 1 << 20;

/// An image's identity, as a child's parent link names it.
pub type ImageId = [u8; 16];

/// The header of one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Whether every page of every range is in this image.
    pub full: bool,
    /// 1 for the first dump.
    pub generation: u64,
    /// This image's random id.
    pub id: ImageId,
    /// The parent's id (zero when full).
    pub parent_id: ImageId,
    /// The ranges tracked at dump time, ascending.
    pub ranges: Vec<PageRange>,
    /// Page records that follow.
    pub page_count: u64,
    /// The parent's directory (absolute; `None` when full).
    pub parent: Option<PathBuf>,
}

impl Header {
    /// The encoded header, its checksum included.
    pub fn encode(&self) -> Vec<u8> {
        let parent = self
            .parent
            .as_ref()
            .map(|p| p.as_os_str().as_encoded_bytes().to_vec())
            .unwrap_or_default();
        let mut b = Vec::with_capacity(FIXED_HEADER + self.ranges.len() * 16 + parent.len() + 4);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&(if self.full { FLAG_FULL } else { 0 }).to_le_bytes());
        b.extend_from_slice(&self.generation.to_le_bytes());
        b.extend_from_slice(&self.id);
        b.extend_from_slice(&self.parent_id);
        b.extend_from_slice(&(PAGE_SIZE as u32).to_le_bytes());
        b.extend_from_slice(&(self.ranges.len() as u32).to_le_bytes());
        b.extend_from_slice(&self.page_count.to_le_bytes());
        b.extend_from_slice(&(parent.len() as u32).to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        for r in &self.ranges {
            b.extend_from_slice(&(r.start as u64).to_le_bytes());
            b.extend_from_slice(&(r.len as u64).to_le_bytes());
        }
        b.extend_from_slice(&parent);
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Read and check a header from `r` (the image at `path`); returns it
    /// and its encoded length.
    pub fn decode(r: &mut impl Read, path: &Path) -> Result<(Header, u64), CheckpointError> {
        let bad = |what: String| CheckpointError::corrupt(path, what);
        let mut fixed = [0u8; FIXED_HEADER];
        read_exact(r, &mut fixed, path, "the header")?;
        if &fixed[0..8] != MAGIC {
            return Err(bad(format!(
                "not an oohgc checkpoint image (magic {:02x?}, expected {:?})",
                &fixed[0..8],
                std::str::from_utf8(MAGIC).unwrap_or("")
            )));
        }
        let version = u32_at(&fixed, 8);
        if version != VERSION {
            return Err(bad(format!(
                "format version {version}; this build reads version {VERSION} only"
            )));
        }
        let flags = u32_at(&fixed, 12);
        if flags & !FLAG_FULL != 0 {
            return Err(bad(format!("unknown header flags {flags:#x}")));
        }
        let page_size = u32_at(&fixed, 56);
        if page_size as usize != PAGE_SIZE {
            return Err(bad(format!(
                "page size {page_size}; this build uses {PAGE_SIZE}"
            )));
        }
        let range_count = u32_at(&fixed, 60);
        let path_len = u32_at(&fixed, 72);
        if range_count > MAX_RANGES || path_len > MAX_PARENT_PATH {
            return Err(bad(format!(
                "header claims {range_count} ranges and a {path_len}-byte parent path \
                 (at most {MAX_RANGES} and {MAX_PARENT_PATH})"
            )));
        }
        let mut rest = vec![0u8; range_count as usize * 16 + path_len as usize + 4];
        read_exact(r, &mut rest, path, "the header's ranges")?;
        let body_len = rest.len() - 4;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&fixed);
        hasher.update(&rest[..body_len]);
        let stored = u32_at(&rest, body_len);
        let computed = hasher.finalize();
        if stored != computed {
            return Err(bad(format!(
                "header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            )));
        }
        let mut ranges = Vec::with_capacity(range_count as usize);
        for i in 0..range_count as usize {
            let start = u64_at(&rest, i * 16) as usize;
            let len = u64_at(&rest, i * 16 + 8) as usize;
            let range = PageRange::new(start, len)
                .map_err(|e| bad(format!("range {i} of the header: {e}")))?;
            if let Some(prev) = ranges.last() {
                let prev: &PageRange = prev;
                if prev.end() > range.start {
                    return Err(bad(format!(
                        "range {i} of the header overlaps or precedes range {}",
                        i - 1
                    )));
                }
            }
            ranges.push(range);
        }
        let full = flags & FLAG_FULL != 0;
        let parent_bytes = &rest[range_count as usize * 16..body_len];
        let parent = if parent_bytes.is_empty() {
            None
        } else {
            let s = std::str::from_utf8(parent_bytes)
                .map_err(|_| bad("the parent path is not UTF-8".into()))?;
            Some(PathBuf::from(s))
        };
        if full != parent.is_none() {
            return Err(bad(format!(
                "header says {} but {} a parent path",
                if full { "full" } else { "incremental" },
                if parent.is_some() { "has" } else { "has no" }
            )));
        }
        let header = Header {
            full,
            generation: u64_at(&fixed, 16),
            id: fixed[24..40].try_into().expect("16 bytes"),
            parent_id: fixed[40..56].try_into().expect("16 bytes"),
            ranges,
            page_count: u64_at(&fixed, 64),
            parent,
        };
        Ok((header, (FIXED_HEADER + rest.len()) as u64))
    }

    /// The exact length of an image with this header (encoded `header_len`
    /// bytes) and `data_pages` pages of kind data.
    pub fn file_len(&self, header_len: u64, data_pages: u64) -> u64 {
        header_len
            + self.page_count * RECORD_HEADER as u64
            + data_pages * PAGE_SIZE as u64
            + TRAILER as u64
    }
}

/// The checksum of one page record.
pub fn record_crc(addr: u64, kind: u32, data: Option<&[u8]>) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&addr.to_le_bytes());
    h.update(&kind.to_le_bytes());
    if let Some(d) = data {
        h.update(d);
    }
    h.finalize()
}

/// The encoded record header.
pub fn encode_record(addr: u64, kind: u32, crc: u32) -> [u8; RECORD_HEADER] {
    let mut b = [0u8; RECORD_HEADER];
    b[0..8].copy_from_slice(&addr.to_le_bytes());
    b[8..12].copy_from_slice(&kind.to_le_bytes());
    b[12..16].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decode a record header into (address, kind, crc).
pub fn decode_record(b: &[u8; RECORD_HEADER]) -> (u64, u32, u32) {
    (u64_at(b, 0), u32_at(b, 8), u32_at(b, 12))
}

/// Writes an image's page records and trailer, keeping the trailer's
/// running checksum.
pub struct RecordWriter<W: Write> {
    out: W,
    pages: u64,
    headers: crc32fast::Hasher,
    bytes: u64,
}

impl<W: Write> RecordWriter<W> {
    /// Start writing records after a header already written to `out`.
    pub fn new(out: W, header_len: u64) -> RecordWriter<W> {
        RecordWriter {
            out,
            pages: 0,
            headers: crc32fast::Hasher::new(),
            bytes: header_len,
        }
    }
    /// One page: `data` of `PAGE_SIZE` bytes, or `None` for a zero page.
    pub fn page(&mut self, addr: usize, data: Option<&[u8]>) -> std::io::Result<()> {
        let kind = if data.is_some() { KIND_DATA } else { KIND_ZERO };
        let rec = encode_record(addr as u64, kind, record_crc(addr as u64, kind, data));
        self.headers.update(&rec);
        self.out.write_all(&rec)?;
        self.bytes += RECORD_HEADER as u64;
        if let Some(d) = data {
            debug_assert_eq!(d.len(), PAGE_SIZE);
            self.out.write_all(d)?;
            self.bytes += PAGE_SIZE as u64;
        }
        self.pages += 1;
        Ok(())
    }
    /// Write the trailer; returns the output and the image's length.
    pub fn finish(mut self) -> std::io::Result<(W, u64)> {
        let mut t = [0u8; TRAILER];
        t[0..8].copy_from_slice(END_MAGIC);
        t[8..16].copy_from_slice(&self.pages.to_le_bytes());
        t[16..20].copy_from_slice(&self.headers.finalize().to_le_bytes());
        self.out.write_all(&t)?;
        Ok((self.out, self.bytes + TRAILER as u64))
    }
}

/// Read exactly `buf.len()` bytes, or say the file is truncated in `what`.
pub fn read_exact(
    r: &mut impl Read,
    buf: &mut [u8],
    path: &Path,
    what: &str,
) -> Result<(), CheckpointError> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            CheckpointError::corrupt(path, format!("truncated in {what}"))
        } else {
            CheckpointError::io(path, "read", e)
        }
    })
}

/// Little-endian u32 at `at`.
pub fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Little-endian u64 at `at`.
pub fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Sixteen random bytes from the kernel.
pub fn random_id() -> Result<ImageId, CheckpointError> {
    let mut id = [0u8; 16];
    // SAFETY: getrandom writes at most `id.len()` bytes into `id`.
    let n = unsafe { libc::getrandom(id.as_mut_ptr() as *mut libc::c_void, id.len(), 0) };
    if n != id.len() as isize {
        return Err(CheckpointError::io(
            "getrandom",
            "read an image id from",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(id)
}

/// An id as hex, for messages.
pub fn id_hex(id: &ImageId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(full: bool) -> Header {
        Header {
            full,
            generation: 3,
            id: [7; 16],
            parent_id: if full { [0; 16] } else { [9; 16] },
            ranges: vec![
                PageRange::new(0x10000, 0x3000).unwrap(),
                PageRange::new(0x20000, 0x1000).unwrap(),
            ],
            page_count: 4,
            parent: (!full).then(|| PathBuf::from("/tmp/gen2")),
        }
    }

    #[test]
    fn header_round_trips_and_damage_is_named() {
        for full in [true, false] {
            let h = header(full);
            let bytes = h.encode();
            let (back, len) = Header::decode(&mut &bytes[..], Path::new("x")).unwrap();
            assert_eq!(back, h);
            assert_eq!(len, bytes.len() as u64);
        }
        let mut bytes = header(false).encode();
        bytes[20] ^= 1;
        let e = Header::decode(&mut &bytes[..], Path::new("img")).unwrap_err();
        assert!(e.to_string().contains("header checksum mismatch"), "{e}");
        let bytes = header(false).encode();
        let e = Header::decode(&mut &bytes[..50], Path::new("img")).unwrap_err();
        assert!(e.to_string().contains("truncated in the header"), "{e}");
        let mut bytes = header(true).encode();
        bytes[8] = 2;
        let e = Header::decode(&mut &bytes[..], Path::new("img")).unwrap_err();
        assert!(e.to_string().contains("format version 2"), "{e}");
    }

    #[test]
    fn record_crc_covers_address_kind_and_data() {
        let page = vec![5u8; PAGE_SIZE];
        let a = record_crc(0x1000, KIND_DATA, Some(&page));
        assert_ne!(a, record_crc(0x2000, KIND_DATA, Some(&page)));
        assert_ne!(
            record_crc(0x1000, KIND_ZERO, None),
            record_crc(0x1000, KIND_DATA, None)
        );
        let mut other = page.clone();
        other[100] = 6;
        assert_ne!(a, record_crc(0x1000, KIND_DATA, Some(&other)));
        let rec = encode_record(0x1000, KIND_DATA, a);
        assert_eq!(decode_record(&rec), (0x1000, KIND_DATA, a));
    }
}
