//! PML model benchmark: `cargo bench -p oohgc-dirty --bench pml`.
//!
//! For `epml` and `spml` over both engines, with `pagemap-scan` as the
//! baseline measured in the same run, over one range (default 256 MiB):
//! the cost of a first write to a clean page, the harvest cost at
//! 0/1/10/100% of pages written (each with the model's modelled hardware
//! time beside the measured time) and the next cycle's arm; then a range sweep (16 MiB..1 GiB) of
//! SPML's harvest, whose reverse map grows with the tracked range; and the
//! self-signal round trip used as the guest-interrupt unit cost.
//!
//! Environment: `OOHGC_PML_BENCH_MIB` (range, default 256),
//! `OOHGC_PML_BENCH_REPS` (repetitions, median reported, default 3),
//! `OOHGC_PML_BENCH_SWEEP_MIB` (comma list, default 16,64,256,1024),
//! `OOHGC_PML_BENCH_SYNC_WRITES` (first writes timed under the sync
//! engine, default 4096: each one is a trap to a handler thread),
//! `OOHGC_PML_BENCH_SKIP_SYNC=1` (leave the sync engines out).

use oohgc_dirty::pml::cost::{modelled_ns, EventCounts};
use oohgc_dirty::pml::{Engine, Mode, PmlConfig, PmlSource};
use oohgc_dirty::{DirtySource, PageRange, PAGE_SIZE};
use std::time::Instant;

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?}: expected a whole number")),
        Err(_) => default,
    }
}

struct Region {
    base: usize,
    pages: usize,
}

impl Region {
    fn new(pages: usize) -> Region {
        let len = pages * PAGE_SIZE;
        // SAFETY: a fresh anonymous mapping owned by the Region.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap of {len} bytes");
        // SAFETY: advice on our own mapping: 4 KiB pages, like the model.
        unsafe { libc::madvise(p, len, libc::MADV_NOHUGEPAGE) };
        let r = Region {
            base: p as usize,
            pages,
        };
        r.write_every(1);
        r
    }
    fn range(&self) -> PageRange {
        PageRange::new(self.base, self.pages * PAGE_SIZE).unwrap()
    }
    fn write(&self, page: usize) {
        // SAFETY: page < pages, inside the mapping.
        unsafe { ((self.base + page * PAGE_SIZE) as *mut u8).write_volatile(page as u8) };
    }
    /// Write every `step`-th page.
    fn write_every(&self, step: usize) {
        let mut p = 0;
        while p < self.pages {
            self.write(p);
            p += step;
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: our own mapping.
        unsafe { libc::munmap(self.base as *mut _, self.pages * PAGE_SIZE) };
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Subject {
    PagemapScan,
    Pml(Mode, Engine),
}

impl Subject {
    fn label(self) -> String {
        match self {
            Subject::PagemapScan => "pagemap-scan".into(),
            Subject::Pml(m, e) => format!("{}({})", m.name(), e.name()),
        }
    }
}

enum Opened {
    Kernel(Box<dyn DirtySource>),
    Pml(PmlSource),
}

impl Opened {
    fn open(s: Subject) -> Opened {
        match s {
            Subject::PagemapScan => {
                Opened::Kernel(oohgc_dirty::open("pagemap-scan").expect("pagemap-scan"))
            }
            Subject::Pml(m, e) => {
                Opened::Pml(PmlSource::open(m, e, PmlConfig::default()).expect("pml source"))
            }
        }
    }
    fn src(&self) -> &dyn DirtySource {
        match self {
            Opened::Kernel(b) => &**b,
            Opened::Pml(p) => p,
        }
    }
    fn counts(&self) -> EventCounts {
        match self {
            Opened::Kernel(_) => EventCounts::default(),
            Opened::Pml(p) => p.event_counts(),
        }
    }
    fn modelled(&self, delta: &EventCounts) -> Option<u64> {
        match self {
            Opened::Kernel(_) => None,
            Opened::Pml(p) => Some(modelled_ns(p.mode(), delta).iter().sum()),
        }
    }
}

fn harvest_all(src: &dyn DirtySource) -> usize {
    let mut n = 0;
    src.harvest(&mut |r| n += r.pages()).unwrap();
    n
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// (measured ns, modelled ns) per first write, medians over `reps`.
fn first_write(
    subject: Subject,
    region: &Region,
    reps: usize,
    sync_writes: usize,
) -> (f64, Option<f64>) {
    let mut measured = Vec::new();
    let mut modelled = Vec::new();
    for _ in 0..reps {
        let o = Opened::open(subject);
        let src = o.src();
        src.track(region.range()).unwrap();
        src.arm().unwrap();
        harvest_all(src);
        let n = match subject {
            Subject::Pml(_, Engine::Sync) => sync_writes.min(region.pages),
            _ => region.pages,
        };
        let before = o.counts();
        let t0 = Instant::now();
        for p in 0..n {
            region.write(p);
        }
        let ns = t0.elapsed().as_nanos() as f64;
        // The async engines log at the next flush point: include it in the
        // modelled events (its measured time belongs to the harvest rows).
        assert_eq!(harvest_all(src), n);
        let delta = o.counts().since(&before);
        measured.push(ns / n as f64);
        if let Some(m) = o.modelled(&delta) {
            modelled.push(m as f64 / n as f64);
        }
        src.untrack(region.range()).unwrap();
    }
    let modelled = if modelled.is_empty() {
        None
    } else {
        Some(median(modelled))
    };
    (median(measured), modelled)
}

/// Write `percent`% of the region's pages, evenly spread; returns how many.
fn write_percent(region: &Region, percent: usize) -> usize {
    match 100usize.checked_div(percent) {
        None => 0,
        Some(step) => {
            region.write_every(step);
            region.pages.div_ceil(step)
        }
    }
}

/// Per subject, (measured harvest ns, modelled ns for the epoch) with
/// `percent` written: medians over `reps`, the subjects interleaved within
/// each repetition so that they see the same machine load. Each
/// repetition opens a fresh source and warms it with two harvests of the
/// same pattern before the timed one.
fn harvest_costs(
    subjects: &[Subject],
    region: &Region,
    percent: usize,
    reps: usize,
) -> Vec<(f64, Option<f64>, f64)> {
    let mut measured = vec![Vec::new(); subjects.len()];
    let mut arm = vec![Vec::new(); subjects.len()];
    let mut modelled = vec![Vec::new(); subjects.len()];
    for _ in 0..reps {
        for (k, &subject) in subjects.iter().enumerate() {
            let o = Opened::open(subject);
            let src = o.src();
            src.track(region.range()).unwrap();
            src.arm().unwrap();
            // Two warm-up epochs: the model's report and log buffers (which
            // alternate) both reach their steady-state size.
            for _ in 0..2 {
                write_percent(region, percent);
                harvest_all(src);
            }
            let before = o.counts();
            let written = write_percent(region, percent);
            let t0 = Instant::now();
            let n = harvest_all(src);
            measured[k].push(t0.elapsed().as_nanos() as f64);
            assert!(
                n >= written,
                "{}: harvest reported {n} of {written} written pages",
                subject.label()
            );
            if let Some(m) = o.modelled(&o.counts().since(&before)) {
                modelled[k].push(m as f64);
            }
            // The next cycle: disarm, the program writes, arm again.
            src.disarm().unwrap();
            write_percent(region, percent);
            let t0 = Instant::now();
            src.arm().unwrap();
            arm[k].push(t0.elapsed().as_nanos() as f64);
            src.untrack(region.range()).unwrap();
        }
    }
    measured
        .into_iter()
        .zip(modelled)
        .zip(arm)
        .map(|((m, model), a)| {
            (
                median(m),
                (!model.is_empty()).then(|| median(model)),
                median(a),
            )
        })
        .collect()
}

static SIGNALS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Median round trip of a signal a thread raises and handles itself.
fn self_signal_ns() -> f64 {
    // SAFETY: installs a handler that only bumps an atomic.
    unsafe { libc::signal(libc::SIGUSR2, on_signal as *const () as libc::sighandler_t) };
    let mut runs = Vec::new();
    for _ in 0..7 {
        let n = 20_000;
        let t0 = Instant::now();
        for _ in 0..n {
            // SAFETY: raising a signal whose handler is installed above.
            unsafe { libc::raise(libc::SIGUSR2) };
        }
        runs.push(t0.elapsed().as_nanos() as f64 / n as f64);
    }
    median(runs)
}

fn show(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} us", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn show_opt(ns: Option<f64>) -> String {
    ns.map(show).unwrap_or_else(|| "-".into())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` probes harnesses
    }
    let mib = env_usize("OOHGC_PML_BENCH_MIB", 256);
    let reps = env_usize("OOHGC_PML_BENCH_REPS", 3).max(1);
    let sync_writes = env_usize("OOHGC_PML_BENCH_SYNC_WRITES", 4096).max(1);
    let sweep: Vec<usize> = std::env::var("OOHGC_PML_BENCH_SWEEP_MIB")
        .unwrap_or_else(|_| "16,64,256,1024".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("OOHGC_PML_BENCH_SWEEP_MIB: comma-separated MiB sizes")
        })
        .collect();
    let mut subjects = vec![
        Subject::PagemapScan,
        Subject::Pml(Mode::Epml, Engine::Async),
        Subject::Pml(Mode::Spml, Engine::Async),
        Subject::Pml(Mode::Epml, Engine::Sync),
        Subject::Pml(Mode::Spml, Engine::Sync),
    ];
    if env_usize("OOHGC_PML_BENCH_SKIP_SYNC", 0) != 0 {
        subjects.retain(|s| !matches!(s, Subject::Pml(_, Engine::Sync)));
    }
    println!("PML model benchmark: {mib} MiB range, median of {reps}; MEASURED = wall time of the software model on this machine,");
    println!("MODELLED = estimated hardware time from the unit-cost table (oohgc_dirty::pml::cost), never a measurement.\n");

    let region = Region::new(mib * 1024 * 1024 / PAGE_SIZE);
    let t0 = Instant::now();
    region.write_every(1);
    let plain = t0.elapsed().as_nanos() as f64 / region.pages as f64;
    println!(
        "plain write to a resident page (untracked): {}",
        show(plain)
    );
    println!(
        "self-signal round trip (guest-interrupt unit cost): {}\n",
        show(self_signal_ns())
    );

    println!("first write to a clean page (sync engines: first {sync_writes} pages)");
    println!(
        "{:<16} {:>14} {:>22}",
        "source", "measured", "modelled (hardware)"
    );
    let mut first = Vec::new();
    for &s in &subjects {
        let (m, model) = first_write(s, &region, reps, sync_writes);
        println!("{:<16} {:>14} {:>22}", s.label(), show(m), show_opt(model));
        first.push((s, m));
    }

    let percents = [0, 1, 10, 100];
    println!("\nharvest (scan + re-arm + report) with x% of pages written");
    print!("{:<16}", "source");
    for p in percents {
        print!(
            " {:>11} {:>11}",
            format!("{p}% meas"),
            format!("{p}% model")
        );
    }
    println!();
    let by_percent: Vec<Vec<(f64, Option<f64>, f64)>> = percents
        .iter()
        .map(|&p| harvest_costs(&subjects, &region, p, reps))
        .collect();
    let mut harvest = Vec::new();
    for (k, &s) in subjects.iter().enumerate() {
        print!("{:<16}", s.label());
        let mut row = Vec::new();
        for cells in &by_percent {
            let (m, model, _) = cells[k];
            print!(" {:>11} {:>11}", show(m), show_opt(model));
            row.push(m);
        }
        println!();
        harvest.push((s, row));
    }
    println!("\narm (measured) after a cycle in which x% of pages were written");
    print!("{:<16}", "source");
    for p in percents {
        print!(" {:>11}", format!("{p}%"));
    }
    println!();
    for (k, &s) in subjects.iter().enumerate() {
        print!("{:<16}", s.label());
        for cells in &by_percent {
            print!(" {:>11}", show(cells[k].2));
        }
        println!();
    }
    let base = &harvest[0].1;
    println!("\nratios against pagemap-scan (measured, same run):");
    for (s, row) in &harvest[1..] {
        let r: Vec<String> = row
            .iter()
            .zip(base)
            .map(|(a, b)| format!("{:.2}x", a / b))
            .collect();
        println!(
            "  {:<16} harvest at 0/1/10/100%: {}",
            s.label(),
            r.join(" / ")
        );
    }
    for (s, m) in &first[1..] {
        println!("  {:<16} first write: {:.2}x", s.label(), m / first[0].1);
    }
    let epml = &harvest[1].1;
    let worst = epml
        .iter()
        .zip(base)
        .map(|(a, b)| a / b)
        .fold(0.0, f64::max);
    println!(
        "  epml(async)/pagemap-scan worst harvest ratio {worst:.2}x (target <= 1.2x): {}",
        if worst <= 1.2 { "met" } else { "NOT met" }
    );
    drop(region);

    println!("\nSPML reverse map vs tracked range (async engine, 1% written, harvest):");
    println!(
        "{:>9} {:>14} {:>18} {:>20} {:>14}",
        "range", "measured", "measured/page", "modelled (hardware)", "epml measured"
    );
    for mib in sweep {
        let region = Region::new(mib * 1024 * 1024 / PAGE_SIZE);
        let cells = harvest_costs(
            &[
                Subject::Pml(Mode::Spml, Engine::Async),
                Subject::Pml(Mode::Epml, Engine::Async),
            ],
            &region,
            1,
            reps,
        );
        let ((spml, model, _), (epml, _, _)) = (cells[0], cells[1]);
        println!(
            "{:>6} MiB {:>14} {:>18} {:>20} {:>14}",
            mib,
            show(spml),
            show(spml / region.pages as f64),
            show_opt(model),
            show(epml)
        );
    }
}
