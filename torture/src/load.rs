//! The load torture: many mutator threads on few cores against back-to-back
//! collection cycles with the verifier on.
//!
//! A shared graph of checksummed [`Node`]s hangs off a table of root slots.
//! Each of `threads` worker threads runs a random number of operations and
//! then starts its own replacement and exits (so threads are born and die
//! while the world is being stopped). The operations:
//!
//! * old -> old pointer stores (an edge of a reachable node is rewired to
//!   another reachable node);
//! * old -> new stores (a fresh node, reachable only through that store);
//! * root replacement (a whole subgraph may become garbage);
//! * pointers moved heap -> stack -> `Vec` -> heap;
//! * traversals that verify every node's checksum on the way;
//! * short-lived garbage (`Gc` arrays with a checksum word, `Box`, `String`).
//!
//! A lost object (freed while reachable) is caught two ways: the verifier
//! (`Config::verify`) re-marks after each concurrent cycle and aborts the
//! process with "VERIFY FAILED"; and memory reused after a wrong free no
//! longer matches its checksum, which readers count as a checksum failure.

use crate::rng::{mix, Rng};
use oohgc::Gc;
use std::fmt;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Settings of one load-torture run.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// Worker threads alive at once.
    pub threads: usize,
    /// How long the workers run.
    pub seconds: f64,
    /// Root slots of the shared graph.
    pub roots: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Whether workers exit after a random number of operations and start
    /// a successor (`true`), or run until the end (`false`: no thread churn,
    /// to tell thread-exit problems from the rest).
    pub replace_threads: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            threads: 64,
            seconds: 3.0,
            roots: 4096,
            seed: 1,
            replace_threads: true,
        }
    }
}

/// What one run did; `Display` prints the one-line summary.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// Dirty source in use.
    pub source: &'static str,
    /// Whether the verifier was on.
    pub verify: bool,
    /// Worker threads kept running (each exiting one starts its successor).
    pub threads_held: usize,
    /// Most worker threads alive at once (successors overlap the exiting
    /// thread, and exiting threads can be held up by a stop-the-world).
    pub peak_threads_alive: usize,
    /// Worker threads created over the run.
    pub threads_created: u64,
    /// Wall time from the first worker to the last one's exit.
    pub duration: Duration,
    /// Cycles completed (`stats().cycles`).
    pub cycles: u64,
    /// Of which concurrent (`stats().concurrent_cycles`).
    pub concurrent_cycles: u64,
    /// Collected objects allocated by the workers.
    pub objects_allocated: u64,
    /// Objects whose contents no longer matched their checksum.
    pub checksum_failures: u64,
    /// Workers that had not exited 30 s after the stop request.
    pub stuck_threads: usize,
    /// Workers that could not be created (the OS refused).
    pub spawn_failures: u64,
    /// Longest pause (`stats().max_pause_ns`).
    pub max_pause_ns: u64,
}

impl LoadReport {
    /// Whether the run found no failure: no checksum failure, no stuck or
    /// missing thread, and at least one completed cycle. (A lost object
    /// aborts the process in the verifier before a report exists.)
    pub fn passed(&self) -> bool {
        self.checksum_failures == 0
            && self.stuck_threads == 0
            && self.spawn_failures == 0
            && self.cycles > 0
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "torture: source={} verify={} threads_held={} threads_created={} duration={:.2}s \
             peak_alive={} cycles={} concurrent_cycles={} objects_allocated={} lost_objects=0 \
             checksum_failures={} stuck_threads={} spawn_failures={} max_pause_ms={:.3} result={}",
            self.source,
            if self.verify { "on" } else { "off" },
            self.threads_held,
            self.threads_created,
            self.duration.as_secs_f64(),
            self.peak_threads_alive,
            self.cycles,
            self.concurrent_cycles,
            self.objects_allocated,
            self.checksum_failures,
            self.stuck_threads,
            self.spawn_failures,
            self.max_pause_ns as f64 / 1e6,
            if self.passed() { "PASS" } else { "FAIL" }
        )
    }
}

/// A node of the shared graph. `id` and `payload` never change after
/// construction and `checksum` covers them; `edges` are rewired freely and
/// always hold the address of a reachable `Node`.
pub struct Node {
    id: u64,
    payload: [u64; 3],
    checksum: u64,
    edges: [AtomicUsize; 4],
}

fn node_checksum(id: u64, payload: &[u64; 3]) -> u64 {
    payload
        .iter()
        .fold(mix(id ^ 0x6E6F_6465), |acc, &p| mix(acc ^ p))
}

/// Process-wide state of a run, shared by every worker.
struct Shared {
    roots: Box<[AtomicUsize]>,
    stop: AtomicBool,
    objects: AtomicU64,
    checksum_failures: AtomicU64,
    threads_created: AtomicU64,
    spawn_failures: AtomicU64,
    live_threads: AtomicUsize,
    max_live_threads: AtomicUsize,
    next_id: AtomicU64,
    seed: u64,
    replace_threads: bool,
}

impl Shared {
    fn new_node(&self, rng: &mut Rng, target: usize) -> Gc<Node> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let payload = [rng.next_u64(), rng.next_u64(), rng.next_u64()];
        self.objects.fetch_add(1, Ordering::Relaxed);
        Gc::new(Node {
            id,
            payload,
            checksum: node_checksum(id, &payload),
            edges: [
                AtomicUsize::new(target),
                AtomicUsize::new(target),
                AtomicUsize::new(target),
                AtomicUsize::new(target),
            ],
        })
    }

    /// Whether `n` still holds what it was built with; counts a failure.
    fn check(&self, n: &Node) -> bool {
        if node_checksum(n.id, &n.payload) == n.checksum {
            return true;
        }
        let seen = self.checksum_failures.fetch_add(1, Ordering::Relaxed);
        if seen < 5 {
            eprintln!(
                "torture: CHECKSUM FAILURE at {:p}: id {} payload {:x?} checksum {:#x}",
                n as *const Node, n.id, n.payload, n.checksum
            );
        }
        false
    }

    fn root(&self, i: usize) -> Gc<Node> {
        // SAFETY: root slots always hold the address of a live Node (set
        // at start-up and only ever replaced by fresh nodes).
        unsafe { Gc::from_raw(self.roots[i].load(Ordering::Acquire) as *const Node) }
    }

    fn random_root(&self, rng: &mut Rng) -> Gc<Node> {
        self.root(rng.below(self.roots.len() as u64) as usize)
    }
}

fn edge(n: &Node, i: usize) -> Gc<Node> {
    // SAFETY: edges always hold the address of a Node reachable from the
    // roots (or held by a thread's stack / Vec while it is moved), so the
    // collector keeps it alive.
    unsafe { Gc::from_raw(n.edges[i].load(Ordering::Acquire) as *const Node) }
}

fn addr(n: &Gc<Node>) -> usize {
    Gc::as_ptr(n) as usize
}

/// Short-lived garbage: collected arrays with a checksum word, a `Box` and
/// a `String`, verified before being dropped.
fn garbage(shared: &Shared, rng: &mut Rng) {
    let mut batch: Vec<Gc<[u64; 8]>> = Vec::with_capacity(16);
    for _ in 0..16 {
        let mut a = [0u64; 8];
        for w in a.iter_mut().take(7) {
            *w = rng.next_u64();
        }
        a[7] = a[..7].iter().fold(0, |acc, &w| mix(acc ^ w));
        batch.push(Gc::new(a));
    }
    shared.objects.fetch_add(16, Ordering::Relaxed);
    let text = format!("garbage {}", rng.next_u64());
    let boxed = Box::new([rng.next_u64(); 12]);
    for a in &batch {
        if a[..7].iter().fold(0, |acc, &w| mix(acc ^ w)) != a[7] {
            shared.checksum_failures.fetch_add(1, Ordering::Relaxed);
            eprintln!(
                "torture: CHECKSUM FAILURE in a garbage array {:p}: now {:x?}",
                Gc::as_ptr(a),
                **a
            );
        }
    }
    black_box((text, boxed));
}

/// One worker's life: `ops` random operations, then a final check of what
/// it held.
fn work(shared: &Shared, rng: &mut Rng, ops: u64) {
    let mut held: Vec<Gc<Node>> = Vec::new();
    let mut on_stack: Option<Gc<Node>> = None;
    for _ in 0..ops {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let slot = rng.below(4) as usize;
        match rng.below(100) {
            // An old object now points at another old object.
            0..=24 => {
                let a = shared.random_root(rng);
                let b = if rng.below(2) == 0 {
                    shared.random_root(rng)
                } else {
                    edge(&shared.random_root(rng), slot)
                };
                a.edges[slot].store(addr(&b), Ordering::Release);
            }
            // An old object now points at a brand-new one, reachable only
            // through that store.
            25..=44 => {
                let a = shared.random_root(rng);
                let fresh = shared.new_node(rng, addr(&edge(&a, slot)));
                a.edges[slot].store(addr(&fresh), Ordering::Release);
            }
            // A root slot gets a new node: the old subgraph may die.
            45..=52 => {
                let i = rng.below(shared.roots.len() as u64) as usize;
                let old = shared.root(i);
                let fresh = shared.new_node(rng, addr(&edge(&old, slot)));
                shared.roots[i].store(addr(&fresh), Ordering::Release);
            }
            // Move a pointer: heap -> stack -> Vec -> heap.
            53..=69 => {
                let moved = edge(&shared.random_root(rng), slot);
                if let Some(prev) = on_stack.replace(moved) {
                    held.push(prev);
                }
                if held.len() > 32 {
                    let i = rng.below(held.len() as u64) as usize;
                    let m = held.swap_remove(i);
                    let b = shared.random_root(rng);
                    b.edges[rng.below(4) as usize].store(addr(&m), Ordering::Release);
                }
            }
            // Walk the graph, checking every node met.
            70..=89 => {
                let mut v = shared.random_root(rng);
                for _ in 0..8 {
                    if !shared.check(&v) {
                        break;
                    }
                    v = edge(&v, rng.below(4) as usize);
                }
            }
            _ => garbage(shared, rng),
        }
    }
    for n in held.iter().chain(on_stack.iter()) {
        shared.check(n);
    }
}

/// Start a worker thread (it starts its own replacement when it ends).
fn spawn_worker(shared: Arc<Shared>) {
    let n = shared.threads_created.fetch_add(1, Ordering::Relaxed);
    let live = shared.live_threads.fetch_add(1, Ordering::AcqRel) + 1;
    shared.max_live_threads.fetch_max(live, Ordering::Relaxed);
    let for_thread = shared.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("torture-{n}"))
        .stack_size(256 << 10)
        .spawn(move || {
            let shared = for_thread;
            let mut rng = Rng::new(mix(shared.seed ^ n));
            let ops = if shared.replace_threads {
                200 + rng.below(3000)
            } else {
                u64::MAX
            };
            work(&shared, &mut rng, ops);
            if !shared.stop.load(Ordering::Acquire) {
                spawn_worker(shared.clone());
            }
            shared.live_threads.fetch_sub(1, Ordering::AcqRel);
        });
    if let Err(e) = spawned {
        shared.live_threads.fetch_sub(1, Ordering::AcqRel);
        let prior = shared.spawn_failures.fetch_add(1, Ordering::Relaxed);
        if prior == 0 {
            eprintln!("torture: cannot create a worker thread: {e}");
        }
    }
}

/// Run cycles back to back until `stop` (concurrent where the source
/// allows, stop-the-world otherwise).
fn cycle_driver(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut n = 0;
        while !stop.load(Ordering::Acquire) {
            if oohgc::start_cycle() {
                oohgc::wait_for_cycles(1);
            } else {
                oohgc::collect();
            }
            n += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
        n
    })
}

/// Set by [`configure`], which turns the verifier on.
static VERIFY_ON: AtomicBool = AtomicBool::new(false);

/// Configure the collector for the torture: the verifier on, and a small
/// initial heap (frequent cycles) unless `OOHGC_INITIAL_HEAP` says
/// otherwise. Bad `OOHGC_*` values are returned as errors.
pub fn configure() -> Result<(), String> {
    VERIFY_ON.store(true, Ordering::Release);
    let mut cfg = oohgc::Config::from_env().map_err(|e| e.to_string())?;
    cfg = cfg.verify(true);
    if std::env::var_os("OOHGC_INITIAL_HEAP").is_none() {
        cfg = cfg.initial_heap(1 << 20);
    }
    cfg.apply().map_err(|e| e.to_string())?;
    oohgc::init().map_err(|e| e.to_string())
}

/// Run the load torture (call [`configure`] first). The calling thread
/// builds the graph, then sleeps while workers and the cycle driver run.
pub fn run(opts: LoadOptions) -> LoadReport {
    let mut rng = Rng::new(opts.seed);
    let shared = Arc::new(Shared {
        roots: (0..opts.roots).map(|_| AtomicUsize::new(0)).collect(),
        stop: AtomicBool::new(false),
        objects: AtomicU64::new(0),
        checksum_failures: AtomicU64::new(0),
        threads_created: AtomicU64::new(0),
        spawn_failures: AtomicU64::new(0),
        live_threads: AtomicUsize::new(0),
        max_live_threads: AtomicUsize::new(0),
        next_id: AtomicU64::new(0),
        seed: opts.seed,
        replace_threads: opts.replace_threads,
    });
    // The initial graph: each root node points at the previous one; then
    // random edges between roots.
    let first = shared.new_node(&mut rng, 0);
    for e in &first.edges {
        e.store(addr(&first), Ordering::Relaxed);
    }
    let mut prev = addr(&first);
    for slot in shared.roots.iter() {
        let n = shared.new_node(&mut rng, prev);
        prev = addr(&n);
        slot.store(prev, Ordering::Release);
    }
    for i in 0..opts.roots {
        let n = shared.root(i);
        for e in &n.edges[1..] {
            let j = rng.below(opts.roots as u64) as usize;
            e.store(addr(&shared.root(j)), Ordering::Release);
        }
    }

    let stats_before = oohgc::stats();
    let driver_stop = Arc::new(AtomicBool::new(false));
    let driver = cycle_driver(driver_stop.clone());
    let start = Instant::now();
    for _ in 0..opts.threads {
        spawn_worker(shared.clone());
    }
    let deadline = start + Duration::from_secs_f64(opts.seconds);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    shared.stop.store(true, Ordering::Release);
    let give_up = Instant::now() + Duration::from_secs(30);
    while shared.live_threads.load(Ordering::Acquire) > 0 && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(5));
    }
    let duration = start.elapsed();
    driver_stop.store(true, Ordering::Release);
    driver.join().expect("the cycle driver panicked");
    // A last full check of the graph.
    for i in 0..opts.roots {
        let n = shared.root(i);
        if shared.check(&n) {
            for e in 0..4 {
                shared.check(&edge(&n, e));
            }
        }
    }
    let s = oohgc::stats();
    LoadReport {
        source: oohgc::dirty_source_name(),
        verify: VERIFY_ON.load(Ordering::Acquire),
        threads_held: opts.threads,
        peak_threads_alive: shared.max_live_threads.load(Ordering::Relaxed),
        threads_created: shared.threads_created.load(Ordering::Relaxed),
        duration,
        cycles: s.cycles - stats_before.cycles,
        concurrent_cycles: s.concurrent_cycles - stats_before.concurrent_cycles,
        objects_allocated: shared.objects.load(Ordering::Relaxed),
        checksum_failures: shared.checksum_failures.load(Ordering::Relaxed),
        stuck_threads: shared.live_threads.load(Ordering::Acquire),
        spawn_failures: shared.spawn_failures.load(Ordering::Relaxed),
        max_pause_ns: s.max_pause_ns,
    }
}
