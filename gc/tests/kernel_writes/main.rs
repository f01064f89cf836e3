//! System calls that write into collected memory while cycles run: `read`,
//! `pread`, `readv`, `recv` (Unix datagram, UDP and TCP on loopback) and
//! `epoll_wait`, into `Vec`s of the global allocator, `Gc::from_slice_noscan`
//! slices and `oohgc::alloc_noscan` blocks, with a background thread churning
//! allocation and cycles running back to back.
//!
//! Every call must succeed and deliver every byte under every dirty source.
//! Under `mprotect` the heap's pages are read-only between a cycle's arm and
//! the page's first write, and the kernel raises no fault for its own
//! writes: without the kernel-write pins (`oohgc_dirty::mprotect::KernelWrite`,
//! taken by the interposed C library functions) these calls fail with
//! `EFAULT` ("Bad address"). Also: the other interposed calls (recvmsg,
//! recvfrom, poll, getrandom, `syscall()`, ...), and waits whose signal mask
//! blocks everything (`ppoll`, `epoll_pwait`, `syscall(SYS_ppoll)`), which
//! must not hold up a collection (module `other_calls`).

#[path = "../common/mod.rs"]
mod common;
mod other_calls;

use common::{churn, run_in_child};
use oohgc::Gc;
use std::io::{IoSliceMut, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

#[global_allocator]
static GC: oohgc::GcAllocator = oohgc::GcAllocator;

/// Rounds per test: enough for many cycles to arm and harvest between calls.
const ROUNDS: usize = 300;

fn setup() {
    let mut cfg = oohgc::Config::from_env().unwrap().verify(true);
    if std::env::var_os("OOHGC_INITIAL_HEAP").is_none() {
        cfg = cfg.initial_heap(256 << 10);
    }
    cfg.apply().unwrap();
    oohgc::init().unwrap();
}

/// Cycles back to back plus allocation churn, until the handle is dropped.
struct Background {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Background {
    fn start() -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let driver = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    if oohgc::start_cycle() {
                        oohgc::wait_for_cycles(1);
                    } else {
                        oohgc::collect();
                    }
                }
            })
        };
        let churner = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    churn(1);
                }
            })
        };
        Background {
            stop,
            threads: vec![driver, churner],
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
    }
}

/// Bytes that differ per round and per position.
fn pattern(round: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ round.wrapping_mul(7) ^ (i >> 8)) as u8)
        .collect()
}

/// A temporary file holding `data` (removed on drop).
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(tag: &str, data: &[u8]) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("oohgc-kernel-writes-{}-{tag}", std::process::id()));
        std::fs::write(&path, data).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A heap buffer of one of the three kinds the collector hands out.
enum HeapBuf {
    Vec(Vec<u8>),
    NoScanSlice(Gc<[u8]>),
    NoScanBlock(std::ptr::NonNull<u8>, usize),
}

impl HeapBuf {
    fn new(kind: usize, len: usize) -> HeapBuf {
        match kind % 3 {
            0 => HeapBuf::Vec(vec![0u8; len]),
            1 => HeapBuf::NoScanSlice(Gc::from_slice_noscan(&vec![0u8; len])),
            _ => {
                let layout = std::alloc::Layout::from_size_align(len, 16).unwrap();
                HeapBuf::NoScanBlock(oohgc::alloc_noscan(layout), len)
            }
        }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        match self {
            HeapBuf::Vec(v) => v,
            // SAFETY: the slice is alive (held by this Gc), this test is its
            // only user, and the collector never writes into objects.
            HeapBuf::NoScanSlice(g) => unsafe {
                std::slice::from_raw_parts_mut(Gc::as_ptr(g) as *const u8 as *mut u8, g.len())
            },
            // SAFETY: as above; the block stays alive because this enum
            // (on the stack) holds its address.
            HeapBuf::NoScanBlock(p, len) => unsafe {
                std::slice::from_raw_parts_mut(p.as_ptr(), *len)
            },
        }
    }
}

/// Every other round, let a cycle arm and harvest after the buffers were
/// allocated, so that under `mprotect` their pages are read-only again.
fn settle(round: usize) {
    if round.is_multiple_of(2) {
        oohgc::wait_for_cycles(1);
    }
}

/// Sizes that cover part of a page, page-crossing and several pages.
fn size_for(round: usize) -> usize {
    [100, 4096, 5000, 3 * 4096 + 17, 20_000][round % 5]
}

#[test]
fn read_into_heap_buffers_during_cycles() {
    setup();
    let _bg = Background::start();
    for round in 0..ROUNDS {
        let len = size_for(round);
        let data = pattern(round, len);
        let file = TempFile::new("read", &data);
        // std::fs::read: a Vec sized from the file's metadata, then read(2).
        let got = std::fs::read(&file.0)
            .unwrap_or_else(|e| panic!("round {round}: std::fs::read into a heap Vec: {e}"));
        assert_eq!(got, data, "round {round}: std::fs::read bytes");
        // File::read into each buffer kind, until the file is exhausted.
        let mut buf = HeapBuf::new(round, len);
        settle(round);
        let mut f = std::fs::File::open(&file.0).unwrap();
        let b = buf.as_mut();
        let mut done = 0;
        while done < len {
            let n = f
                .read(&mut b[done..])
                .unwrap_or_else(|e| panic!("round {round}: File::read into a heap buffer: {e}"));
            assert!(n > 0, "round {round}: early end of file");
            done += n;
        }
        assert_eq!(&b[..], &data[..], "round {round}: File::read bytes");
    }
    if oohgc::dirty_source_name() == "mprotect" {
        assert!(
            oohgc_dirty::mprotect::pins_taken() > 0,
            "under mprotect the reads must have gone through the pinning wrappers"
        );
    }
}

#[test]
fn pread_and_readv_into_heap_buffers_during_cycles() {
    setup();
    let _bg = Background::start();
    for round in 0..ROUNDS {
        let len = size_for(round);
        let data = pattern(round, 2 * len);
        let file = TempFile::new("pread", &data);
        let f = std::fs::File::open(&file.0).unwrap();
        let mut buf = HeapBuf::new(round, len);
        let offset = (round * 13) % len;
        let b = buf.as_mut();
        f.read_exact_at(b, offset as u64)
            .unwrap_or_else(|e| panic!("round {round}: pread into a heap buffer: {e}"));
        assert_eq!(b, &data[offset..offset + len], "round {round}: pread bytes");

        let mut first = HeapBuf::new(round + 1, len);
        let mut second = HeapBuf::new(round + 2, len);
        settle(round);
        let mut f = std::fs::File::open(&file.0).unwrap();
        let (a, b) = (first.as_mut(), second.as_mut());
        let mut total = 0;
        while total < 2 * len {
            let (sa, sb) = if total < len {
                (&mut a[total..], &mut b[..])
            } else {
                (&mut a[len..], &mut b[total - len..])
            };
            let n = f
                .read_vectored(&mut [IoSliceMut::new(sa), IoSliceMut::new(sb)])
                .unwrap_or_else(|e| panic!("round {round}: readv into heap buffers: {e}"));
            assert!(n > 0, "round {round}: early end of file");
            total += n;
        }
        assert_eq!(&a[..], &data[..len], "round {round}: readv first buffer");
        assert_eq!(&b[..], &data[len..], "round {round}: readv second buffer");
    }
}

#[test]
fn recv_into_heap_buffers_during_cycles() {
    setup();
    let _bg = Background::start();
    let (ux_a, ux_b) = std::os::unix::net::UnixDatagram::pair().unwrap();
    let udp_rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp_tx.connect(udp_rx.local_addr().unwrap()).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut tcp_tx = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut tcp_rx, _) = listener.accept().unwrap();
    for round in 0..ROUNDS {
        // Datagrams stay below the loopback MTU and the socket buffers.
        let len = size_for(round).min(8000);
        let data = pattern(round, len);

        let mut bufs = [
            HeapBuf::new(round, len),
            HeapBuf::new(round + 1, len),
            HeapBuf::new(round + 2, len),
        ];
        settle(round);
        let [b0, b1, b2] = &mut bufs;

        ux_a.send(&data).unwrap();
        let b = b0.as_mut();
        let n = ux_b
            .recv(b)
            .unwrap_or_else(|e| panic!("round {round}: recv (unix datagram) into the heap: {e}"));
        assert_eq!(n, len, "round {round}: unix datagram length");
        assert_eq!(&b[..], &data[..], "round {round}: unix datagram bytes");

        udp_tx.send(&data).unwrap();
        let b = b1.as_mut();
        let n = udp_rx
            .recv(b)
            .unwrap_or_else(|e| panic!("round {round}: recv (UDP) into the heap: {e}"));
        assert_eq!(n, len, "round {round}: UDP datagram length");
        assert_eq!(&b[..], &data[..], "round {round}: UDP datagram bytes");

        tcp_tx.write_all(&data).unwrap();
        let b = b2.as_mut();
        tcp_rx
            .read_exact(b)
            .unwrap_or_else(|e| panic!("round {round}: recv (TCP) into the heap: {e}"));
        assert_eq!(&b[..], &data[..], "round {round}: TCP bytes");
    }
}

#[test]
fn epoll_wait_into_a_heap_event_array_during_cycles() {
    setup();
    let _bg = Background::start();
    // SAFETY: creating an epoll instance.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0);
    let mut pipes = Vec::new();
    for i in 0..8u64 {
        let mut fds = [0i32; 2];
        // SAFETY: pipe with a valid array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 1000 + i,
        };
        // SAFETY: registering our own descriptor with a valid event.
        assert_eq!(
            unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fds[0], &mut ev) },
            0
        );
        pipes.push(fds);
    }
    for round in 0..ROUNDS {
        let ready: Vec<usize> = (0..8)
            .filter(|i| (round >> (i % 4)) & 1 == 1 || *i == round % 8)
            .collect();
        for &i in &ready {
            // SAFETY: writing one byte into our pipe.
            assert_eq!(
                unsafe { libc::write(pipes[i][1], [1u8].as_ptr().cast(), 1) },
                1
            );
        }
        // A fresh heap array each round (some rounds a large one spanning pages).
        let cap = if round % 3 == 0 { 600 } else { 16 };
        let mut events: Vec<libc::epoll_event> = Vec::with_capacity(cap);
        settle(round);
        // SAFETY: the kernel writes at most `cap` events into the array.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), cap as i32, 1000) };
        let err = std::io::Error::last_os_error();
        assert!(n >= 0, "round {round}: epoll_wait into a heap array: {err}");
        // SAFETY: the kernel initialised the first n events.
        unsafe { events.set_len(n as usize) };
        let mut got: Vec<usize> = events.iter().map(|e| (e.u64 - 1000) as usize).collect();
        got.sort_unstable();
        assert_eq!(got, ready, "round {round}: epoll events");
        for &i in &ready {
            let mut b = [0u8; 1];
            // SAFETY: draining one byte into a local.
            assert_eq!(
                unsafe { libc::read(pipes[i][0], b.as_mut_ptr().cast(), 1) },
                1
            );
        }
    }
    for fds in pipes {
        // SAFETY: closing our own descriptors.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
    // SAFETY: closing our epoll descriptor.
    unsafe { libc::close(ep) };
}

#[test]
fn a_read_blocked_across_cycles_completes() {
    setup();
    let _bg = Background::start();
    for round in 0..20usize {
        let mut fds = [0i32; 2];
        // SAFETY: pipe with a valid array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let (rfd, wfd) = (fds[0], fds[1]);
        let len = 3 * 4096;
        let reader = std::thread::spawn(move || {
            let mut buf = HeapBuf::new(round, len);
            let b = buf.as_mut();
            let mut done = 0;
            while done < len {
                // SAFETY: reading into our own heap buffer.
                let n = unsafe { libc::read(rfd, b[done..].as_mut_ptr().cast(), len - done) };
                let err = std::io::Error::last_os_error();
                assert!(n > 0, "round {round}: blocked read(2) into the heap: {err}");
                done += n as usize;
            }
            b.to_vec()
        });
        // Let the reader block and several cycles arm and harvest meanwhile.
        oohgc::wait_for_cycles(2);
        std::thread::sleep(std::time::Duration::from_millis(5));
        let data = pattern(round, len);
        // SAFETY: writing our own bytes into the pipe.
        let n = unsafe { libc::write(wfd, data.as_ptr().cast(), len) };
        assert_eq!(n, len as isize);
        assert_eq!(reader.join().unwrap(), data, "round {round}: bytes");
        // SAFETY: closing our own descriptors.
        unsafe {
            libc::close(rfd);
            libc::close(wfd);
        }
    }
}

/// The same calls in a process whose heap starts tiny (so that buffers land
/// in pages that cycles protect again and again).
#[test]
fn small_initial_heap_in_a_child() {
    if common::is_child() {
        return;
    }
    let out = run_in_child(
        "read_into_heap_buffers_during_cycles",
        &[("OOHGC_INITIAL_HEAP", "64K")],
    );
    common::assert_child_ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "the child ran no test"
    );
}

#[test]
fn child_starts_the_collector() {
    if !common::is_child() {
        return; // Run only as the child of `mprotect_names_what_it_cannot_cover`.
    }
    oohgc::init().unwrap();
    oohgc::collect();
}

/// The classes of kernel writes no wrapper can see are named when
/// `mprotect` starts — on a terminal or with `OOHGC_STATS=1` — and a
/// captured stderr (which programs' tests compare) stays clean otherwise.
#[test]
fn mprotect_names_what_it_cannot_cover() {
    if common::is_child() {
        return;
    }
    let noted = run_in_child(
        "child_starts_the_collector",
        &[("OOHGC_DIRTY", "mprotect"), ("OOHGC_STATS", "1")],
    );
    common::assert_child_ok(&noted);
    let err = String::from_utf8_lossy(&noted.stderr);
    for uncovered in [
        "raw syscall instructions",
        "io_uring",
        "POSIX AIO",
        "process_vm_writev",
        "internal calls",
    ] {
        assert!(
            err.contains(uncovered),
            "the note must name {uncovered:?}:\n{err}"
        );
    }
    let quiet = run_in_child(
        "child_starts_the_collector",
        &[("OOHGC_DIRTY", "mprotect"), ("OOHGC_STATS", "0")],
    );
    common::assert_child_ok(&quiet);
    let err = String::from_utf8_lossy(&quiet.stderr);
    assert!(
        !err.contains("uncovered"),
        "a captured stderr must stay clean:\n{err}"
    );
}
