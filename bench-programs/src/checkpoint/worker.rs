//! The checkpoint worker: one (workload, source) run in its own process,
//! started by the `checkpoint` subcommand as the hidden `checkpoint-worker`;
//! it prints one JSON line ([`RunResult`]).
//!
//! The workload runs on a thread of its own, registered with a
//! [`ThreadFreezer`]; this thread dumps every `--interval-ms` while it runs
//! (the first dump, full, before the workload starts), so every dump stops
//! a running writer. Source `off` runs the same workload with no
//! checkpointer: the baseline.
//!
//! * `kv-paced` — the store filled over `--kv-mib`, then per interval a
//!   batch of updates on `--write-pct` % of its pages (one random record of
//!   each of that many random pages) at the start of the interval, and a
//!   dump in its middle; `--dumps` intervals. The writer's busy time (its
//!   batches, which take every tracking fault) is the slowdown figure.
//! * `kv` — random updates as fast as possible for `--kv-secs`, dumps
//!   every interval while they run; the figure is time per update.
//! * a Phoenix kernel (`histogram`, `matrix-multiply`, ...) — run once at
//!   `--size` on an [`ArenaHeap`] inside the tracked region.
//!
//! Source `track:NAME` tracks the region with source NAME and harvests it
//! every interval (mid-interval for kv-paced), with no freeze, no copy and
//! no image: the cost of tracking alone, which a checkpoint adds its dumps
//! to.

use super::arena::ArenaHeap;
use super::kv::Kv;
use super::region::Region;
use super::Params;
use crate::workloads::{Workload, SEED};
use oohgc_checkpoint::{Checkpointer, DumpReport, ThreadFreezer};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of the hidden `checkpoint-worker` subcommand.
#[derive(clap::Args, Debug, Clone)]
pub struct WorkerArgs {
    /// kv-paced, kv, or a Phoenix kernel.
    #[arg(long)]
    pub workload: String,
    /// A dirty source, or `off` (no checkpointing).
    #[arg(long)]
    pub source: String,
    /// Where images go (a directory of this run's own is made inside).
    #[arg(long)]
    pub dir: PathBuf,
    /// The run's parameters.
    #[command(flatten)]
    pub params: Params,
}

/// One dump, as the worker saw it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DumpFigures {
    /// Whether the image was full.
    pub full: bool,
    /// Writers stopped, ns.
    pub frozen_ns: u64,
    /// The whole dump call, ns.
    pub total_ns: u64,
    /// Harvest (frozen), ns.
    pub harvest_ns: u64,
    /// Copy into staging (frozen), ns.
    pub copy_ns: u64,
    /// Image written after the thaw, ns.
    pub write_ns: u64,
    /// Pages in the image.
    pub pages: u64,
    /// Pages tracked (what a scan covers).
    pub tracked_pages: u64,
    /// Bytes of the image.
    pub image_bytes: u64,
    /// The PML model's estimate of the hardware time of the events this
    /// dump's harvest processed (epml/spml only; modelled, not measured).
    pub modelled_ns: Option<u64>,
}

/// What one worker run measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RunResult {
    /// The workload's name.
    pub workload: String,
    /// The source, or `off`.
    pub source: String,
    /// Wall time of the workload (after its untimed set-up), ns.
    pub run_ns: u64,
    /// kv-paced: time the writer spent in its batches, ns (else = run_ns).
    pub busy_ns: u64,
    /// Units of work done: updates (kv, kv-paced), 1 (a Phoenix kernel).
    pub ops: u64,
    /// Every dump, in order.
    pub dumps: Vec<DumpFigures>,
    /// The workload's checksum (equal across sources).
    pub checksum: u64,
    /// Sum of the PML model's estimated hardware time over the run's
    /// harvests (epml/spml; modelled, not measured), ns.
    pub modelled_total_ns: Option<u64>,
    /// Harvests of a `track:` run.
    pub harvests: u64,
    /// Whether a last dump, taken after the workload ended, restored into
    /// a fresh mapping equals the region byte for byte (`None`: `off`).
    pub restored_ok: Option<bool>,
    /// Why the run failed, if it did.
    pub error: Option<String>,
}

/// Run the worker; the caller prints the result.
pub fn run(args: &WorkerArgs) -> RunResult {
    let mut result = RunResult {
        workload: args.workload.clone(),
        source: args.source.clone(),
        ..RunResult::default()
    };
    let dir = args.dir.join(format!(
        "{}-{}-{}",
        args.workload,
        args.source,
        std::process::id()
    ));
    if let Err(e) = run_in(args, &dir, &mut result) {
        result.error = Some(e);
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The pml model's total modelled time so far, if the source has one.
fn modelled_total(ck: &Checkpointer) -> Option<u64> {
    modelled_of(ck.source())
}

fn modelled_of(source: &dyn oohgc_dirty::DirtySource) -> Option<u64> {
    let mut total = None;
    source.for_each_counter(&mut |name, v| {
        if name == "pml_total_modelled_ns" {
            total = Some(v);
        }
    });
    total
}

/// Dumps into `dir/gN`, deleting the generations a full image made useless.
struct Dumper {
    ck: Checkpointer,
    dir: PathBuf,
    first_live: u64,
    dumps: Vec<DumpFigures>,
}

impl Dumper {
    fn dump(&mut self) -> Result<(), String> {
        let before = modelled_total(&self.ck);
        let g = self.ck.generation() + 1;
        let r: DumpReport = self
            .ck
            .dump(self.dir.join(format!("g{g}")))
            .map_err(|e| e.to_string())?;
        let after = modelled_total(&self.ck);
        if r.full {
            for old in self.first_live..g {
                let _ = std::fs::remove_dir_all(self.dir.join(format!("g{old}")));
            }
            self.first_live = g;
        }
        self.dumps.push(DumpFigures {
            full: r.full,
            frozen_ns: r.frozen_ns,
            total_ns: r.total_ns,
            harvest_ns: r.harvest_ns,
            copy_ns: r.copy_ns,
            write_ns: r.write_ns,
            pages: r.pages,
            tracked_pages: r.tracked_pages,
            image_bytes: r.image_bytes,
            modelled_ns: before.zip(after).map(|(b, a)| a.saturating_sub(b)),
        });
        Ok(())
    }
}

fn run_in(args: &WorkerArgs, dir: &Path, result: &mut RunResult) -> Result<(), String> {
    let p = &args.params;
    let workload = args.workload.as_str();
    let phoenix = if workload == "kv" || workload == "kv-paced" {
        None
    } else {
        Some(Workload::from_name(workload)?)
    };
    let bytes = if phoenix.is_some() {
        p.arena_mib << 20
    } else {
        p.kv_mib << 20
    };
    let region = Arc::new(Region::map(bytes as usize)?);
    let freezer = ThreadFreezer::new()?;
    let registrar = freezer.registrar();
    let track_only = args.source.strip_prefix("track:");
    let tracker = match track_only {
        Some(name) => {
            let src = oohgc_dirty::open(name).map_err(|e| e.to_string())?;
            src.track(region.range()).map_err(|e| e.to_string())?;
            Some(src)
        }
        None => None,
    };
    let mut harvested = 0u64;
    let mut dumper = if args.source == "off" || track_only.is_some() {
        None
    } else {
        let mut ck = Checkpointer::new(args.source.as_str()).map_err(|e| e.to_string())?;
        ck.track(region.range()).map_err(|e| e.to_string())?;
        ck.set_freezer(freezer);
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Some(Dumper {
            ck,
            dir: dir.to_path_buf(),
            first_live: 1,
            dumps: Vec::new(),
        })
    };
    let interval = Duration::from_millis(p.interval_ms);
    let done = Arc::new(AtomicBool::new(false));
    let busy = Arc::new(AtomicU64::new(0));
    let ops = Arc::new(AtomicU64::new(0));
    let checksum = Arc::new(AtomicU64::new(0));
    let start_flag = Arc::new(AtomicBool::new(false));

    // Set-up (untimed): fill the store.
    if phoenix.is_none() {
        Kv::fill(&region, SEED);
    }
    // The first, full dump (or the arm), before the workload starts.
    if let Some(d) = dumper.as_mut() {
        d.dump()?;
    }
    let model_start = tracker.as_ref().and_then(|t| modelled_of(&**t));
    if let Some(t) = &tracker {
        // As a checkpointer's first dump does: arm, then one harvest.
        t.arm().map_err(|e| e.to_string())?;
        t.harvest(&mut |r| harvested += r.pages() as u64)
            .map_err(|e| e.to_string())?;
    }
    let t0 = Instant::now();
    let writer = {
        let (region, done, busy, ops, checksum, start_flag) = (
            region.clone(),
            done.clone(),
            busy.clone(),
            ops.clone(),
            checksum.clone(),
            start_flag.clone(),
        );
        let p = p.clone();
        let workload = workload.to_string();
        std::thread::spawn(move || -> Result<(), String> {
            let _reg = registrar.register_current_thread()?;
            start_flag.store(true, Ordering::Release);
            let sum = match (phoenix, workload.as_str()) {
                (Some(w), _) => {
                    let mut heap = ArenaHeap::new(&region);
                    let c = w.run(&mut heap, p.size, &Default::default());
                    busy.store(t0.elapsed().as_nanos() as u64, Ordering::Release);
                    ops.store(1, Ordering::Release);
                    c
                }
                (None, "kv") => {
                    let mut kv = Kv::attach(&region, SEED ^ 1);
                    let until = Duration::from_secs_f64(p.kv_secs);
                    let mut v = 0u64;
                    while t0.elapsed() < until {
                        for _ in 0..4096 {
                            v += 1;
                            kv.update(v);
                        }
                    }
                    busy.store(t0.elapsed().as_nanos() as u64, Ordering::Release);
                    ops.store(v, Ordering::Release);
                    kv.checksum()
                }
                _ => {
                    let mut kv = Kv::attach(&region, SEED ^ 2);
                    let per_batch = ((kv.pages() as f64) * p.write_pct / 100.0).round() as usize;
                    let mut total = Duration::ZERO;
                    for k in 1..=p.dumps {
                        let tick = t0 + interval * (k as u32 - 1);
                        if let Some(wait) = tick.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        let b = Instant::now();
                        for _ in 0..per_batch {
                            let page = kv.random_page();
                            kv.update_in_page(page, k);
                        }
                        total += b.elapsed();
                    }
                    busy.store(total.as_nanos() as u64, Ordering::Release);
                    ops.store(p.dumps * per_batch as u64, Ordering::Release);
                    kv.checksum()
                }
            };
            checksum.store(sum, Ordering::Release);
            done.store(true, Ordering::Release);
            Ok(())
        })
    };
    while !start_flag.load(Ordering::Acquire) && !writer.is_finished() {
        std::thread::yield_now();
    }
    let paced = workload == "kv-paced";
    let mut k = 0u32;
    let mut dump_error = None;
    loop {
        k += 1;
        // Paced: mid-interval, after the batch; else: every interval.
        let at = if paced {
            t0 + interval * (k - 1) + interval / 2
        } else {
            t0 + interval * k
        };
        let finished = || !paced && done.load(Ordering::Acquire);
        if paced && k as u64 > p.dumps {
            break;
        }
        while Instant::now() < at && !finished() {
            let left = at.saturating_duration_since(Instant::now());
            std::thread::sleep(left.min(Duration::from_micros(500)));
        }
        if finished() {
            break;
        }
        if let Some(d) = dumper.as_mut() {
            if let Err(e) = d.dump() {
                dump_error = Some(e);
                break;
            }
        }
        if let Some(t) = &tracker {
            result.harvests += 1;
            if let Err(e) = t.harvest(&mut |r| harvested += r.pages() as u64) {
                dump_error = Some(e.to_string());
                break;
            }
        }
    }
    if let Some(t) = &tracker {
        result.modelled_total_ns = model_start
            .zip(modelled_of(&**t))
            .map(|(a, b)| b.saturating_sub(a));
    }
    let joined = writer.join();
    result.run_ns = if paced {
        (p.dumps * p.interval_ms) * 1_000_000
    } else {
        busy.load(Ordering::Acquire)
    };
    result.busy_ns = busy.load(Ordering::Acquire);
    result.ops = ops.load(Ordering::Acquire);
    result.checksum = checksum.load(Ordering::Acquire);
    match joined {
        Err(_) => return Err("the workload thread panicked".into()),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(())) => {}
    }
    if let Some(e) = dump_error {
        return Err(format!("dump failed: {e}"));
    }
    if let Some(mut d) = dumper {
        result.dumps = std::mem::take(&mut d.dumps);
        let modelled: Vec<u64> = result
            .dumps
            .iter()
            .skip(1)
            .filter_map(|d| d.modelled_ns)
            .collect();
        result.modelled_total_ns = (!modelled.is_empty()).then(|| modelled.iter().sum());
        result.restored_ok = Some(verify_last_image(&mut d, &region)?);
    }
    Ok(())
}

/// Dump once more (the workload has ended), restore that image chain into
/// a fresh mapping and compare it with the region. Not timed.
fn verify_last_image(d: &mut Dumper, region: &Region) -> Result<bool, String> {
    d.dump()?;
    let dir = d.dir.join(format!("g{}", d.ck.generation()));
    let image = oohgc_checkpoint::Image::open(&dir).map_err(|e| e.to_string())?;
    let fresh = Region::map(region.len())?;
    image
        .restore_to(|_| Some(fresh.ptr() as usize))
        .map_err(|e| e.to_string())?;
    // SAFETY: both mappings are `region.len()` bytes and readable; the
    // workload thread has ended.
    let same = unsafe {
        libc::memcmp(
            fresh.ptr() as *const libc::c_void,
            region.ptr() as *const libc::c_void,
            region.len(),
        ) == 0
    };
    Ok(same)
}
