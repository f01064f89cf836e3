//! `oohgc-checkpoint`: incremental checkpointing of memory ranges of the
//! calling process, driven by any `oohgc-dirty` source — the OoH paper's
//! second PML client (CRIU's `pre-dump` / `dump --track-mem
//! --prev-images-dir`), beside the collector and independent of it.
//!
//! ```text
//! let mut ck = Checkpointer::new("epml")?;     // or a Box<dyn DirtySource>
//! ck.track(range)?;
//! ck.set_freezer(freezer);                     // how writer threads are stopped
//! ck.dump("gen1")?;                            // full image
//! ...                                          // threads keep running
//! ck.dump("gen2")?;                            // only pages written since gen1
//! ck.restore("gen2")?;                         // gen2 over gen1, newest wins
//! ```
//!
//! * [`Checkpointer`] (module [`checkpointer`]) tracks ranges, dumps and
//!   restores; [`DumpReport`] says what a dump cost (frozen time first).
//! * [`Image`] (module [`restore`]) opens and verifies an image chain and
//!   restores it, into the original addresses or elsewhere.
//! * [`freeze`]: how writers are stopped during a dump — the [`Freezer`]
//!   trait (a freeze/thaw pair the caller supplies), [`ThreadFreezer`]
//!   (stops registered threads with a signal, like a stop-the-world), and
//!   [`NoFreeze`] (the calling thread is the only writer).
//! * [`format`](mod@format): the on-disk image (below); [`staging`]: the private
//!   buffer pages are copied into while writers are stopped; [`pages`]:
//!   per-range page bitmaps and raw page access.
//!
//! # What a dump does, and what "frozen" means
//!
//! 1. Outside the freeze: create the directory, size the staging buffer,
//!    and (first dump only) `arm` the source. Arming before the freeze is
//!    sound: a page written between `arm` and the freeze is copied now
//!    *and* reported again by the next harvest (a false positive, never a
//!    false negative).
//! 2. **Freeze** ([`Freezer::freeze`]): writers stop.
//! 3. `harvest` the source (it re-arms what it reports) into per-range
//!    bitmaps; ranges tracked since the last dump count as wholly written.
//! 4. Copy every reported page into the private staging buffer (all-zero
//!    pages are noted, not copied).
//! 5. **Thaw** ([`Freezer::thaw`]): writers run again.
//! 6. Write the image from the staging buffer (checksums, `fsync`,
//!    `rename`) while the writers run.
//!
//! **Frozen time** ([`DumpReport::frozen_ns`]) is measured from the call to
//! `freeze` to the return of `thaw`: stopping the writers, the harvest and
//! the copy. Copying into a private buffer rather than writing the image
//! while frozen is what keeps it short: the freeze costs one `memcpy` per
//! written page, and checksumming, `write(2)` and `fsync` happen after the
//! thaw. The harvest must be inside the freeze: a page written between a
//! harvest and the copy would otherwise be neither in this image nor in the
//! next harvest's report of the pages after this image. Nothing inside the
//! freeze allocates through the global allocator (a stopped thread may hold
//! its lock): the bitmaps are sized at `track`, the staging buffer before
//! the freeze.
//!
//! If a dump fails after the harvest (a full disk, say), the pages it
//! harvested stay marked and go into the next dump, whose parent is still
//! the last image written: a failed dump loses nothing.
//!
//! # FORMAT
//!
//! One image per directory, in the file `image` (version 1, little-endian
//! throughout). The file is written as `image.tmp`, `fsync`ed, renamed to
//! `image`, and the directory is `fsync`ed: a crash mid-dump leaves at
//! most a stray `image.tmp`, and every earlier image intact.
//!
//! ```text
//! header
//!   0   magic         8 bytes  "OOHGCCKP"
//!   8   version       u32      1
//!   12  flags         u32      bit 0: full (every page of every range is
//!                              in this image; no parent)
//!   16  generation    u64      1 for the first dump of a checkpointer
//!   24  image id      16 bytes random
//!   40  parent id     16 bytes the parent's image id (zero when full)
//!   56  page size     u32      4096
//!   60  range count   u32      R
//!   64  page count    u64      P: page records that follow the header
//!   72  parent path   u32      L: length of the parent's path (0 when full)
//!   76  reserved      u32      0
//!   80  ranges        R x (start u64, length u64), page aligned, ascending
//!   ..  parent path   L bytes  the parent image's directory, absolute
//!   ..  header crc    u32      CRC-32 of every header byte before it
//! P page records, ascending by address
//!   address u64 | kind u32 (0: data, 1: all-zero page) | crc u32
//!   then, for kind 0 only, the page's 4096 bytes
//!   crc = CRC-32 of (address, kind, data): each page carries its own
//!   checksum, so a damaged page is named by address
//! trailer
//!   magic "OOHGCEND" | page count u64 | CRC-32 of all 16-byte record
//!   headers in order | u32 0
//! ```
//!
//! An image holds the ranges tracked when it was dumped and the pages
//! written since its parent (all pages when full). Restoring image N
//! writes every page of N's ranges with its content from the newest image
//! of the chain N, parent(N), ... that holds it; a page that no image of
//! the chain holds is an error. The parent link is checked by id and
//! generation, so a directory replaced by another image is refused, not
//! silently used. Every image of the chain is read and verified (magic,
//! version, header checksum, every page checksum, order, trailer, exact
//! length) before a single byte of memory is written; the messages name
//! the file and the page.

#![warn(missing_docs)]

pub mod checkpointer;
pub mod error;
pub mod format;
pub mod freeze;
pub mod pages;
pub mod restore;
pub mod staging;

pub use checkpointer::{usable_sources, Checkpointer, DumpReport, SourceArg};
pub use error::CheckpointError;
pub use freeze::{
    fn_freezer, Freezer, NoFreeze, ThreadFreezer, ThreadRegistrar, ThreadRegistration,
};
pub use oohgc_dirty::{DirtySource, PageRange, PAGE_SIZE};
pub use restore::{Image, RestoreReport};
