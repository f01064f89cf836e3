//! Kernel-write pins of the `mprotect` source (`mprotect::KernelWrite`):
//! a pinned buffer takes kernel writes while arms and harvests run, its
//! pages are reported by every harvest while pinned and once more after,
//! and then they are read-only again.

mod common;

use common::{addrs, harvest_pages, Mapping};
use oohgc_dirty::mprotect::{any_tracked, KernelWrite, MprotectSource};
use oohgc_dirty::{DirtySource, PAGE_SIZE};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A pipe; returns (read end, write end).
fn pipe() -> (i32, i32) {
    let mut fds = [0; 2];
    // SAFETY: pipe(2) into a two-element array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    (fds[0], fds[1])
}

fn write_all(fd: i32, data: &[u8]) {
    // SAFETY: writing our own buffer.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    assert_eq!(n, data.len() as isize);
}

fn close(fd: i32) {
    // SAFETY: closing our own descriptor.
    unsafe { libc::close(fd) };
}

/// `read(2)` exactly `len` bytes into `addr`; Err(errno) on failure.
fn read_exact(fd: i32, addr: usize, len: usize) -> Result<(), i32> {
    let mut done = 0;
    while done < len {
        // SAFETY: reading into memory of our own tracked mapping.
        let n = unsafe { libc::read(fd, (addr + done) as *mut libc::c_void, len - done) };
        if n < 0 {
            return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
        }
        assert!(n > 0, "early end of pipe");
        done += n as usize;
    }
    Ok(())
}

fn bytes_at(addr: usize, len: usize) -> Vec<u8> {
    // SAFETY: reading our own mapping.
    (0..len)
        .map(|i| unsafe { std::ptr::read_volatile((addr + i) as *const u8) })
        .collect()
}

fn armed(pages: usize) -> (MprotectSource, Mapping) {
    let s = MprotectSource::open().unwrap();
    let m = Mapping::new(pages);
    for i in 0..pages {
        m.write(i, 1);
    }
    s.track(m.range).unwrap();
    s.arm().unwrap();
    (s, m)
}

fn current_mask() -> libc::sigset_t {
    // SAFETY: querying this thread's mask into a zeroed set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut set);
        set
    }
}

fn same_mask(a: &libc::sigset_t, b: &libc::sigset_t) -> bool {
    (1..65).all(|sig| {
        // SAFETY: valid sets and signal numbers.
        unsafe { libc::sigismember(a, sig) == libc::sigismember(b, sig) }
    })
}

#[test]
fn a_pinned_page_takes_kernel_writes_and_stays_dirty_while_pinned() {
    let (s, m) = armed(8);
    let (r, w) = pipe();
    // Unpinned, the kernel's write fails (the documented mechanism).
    write_all(w, &[0x11; 64]);
    assert_eq!(read_exact(r, m.page(2) + 100, 64), Err(libc::EFAULT));
    assert!(harvest_pages(&s).is_empty());

    let mask_before = current_mask();
    let pin = KernelWrite::begin(&[(m.page(2) + 100, 64)]);
    assert!(pin.is_pinned());
    assert!(
        same_mask(&mask_before, &current_mask()),
        "pinning must restore the signal mask"
    );
    assert_eq!(read_exact(r, m.page(2) + 100, 64), Ok(()));
    assert_eq!(bytes_at(m.page(2) + 100, 64), vec![0x11; 64]);
    assert_eq!(harvest_pages(&s), addrs(&m, &[2]));
    // Still pinned: every harvest reports it and leaves it writable, and
    // so does an arm.
    assert_eq!(harvest_pages(&s), addrs(&m, &[2]));
    s.arm().unwrap();
    write_all(w, &[0x22; 64]);
    assert_eq!(read_exact(r, m.page(2) + 100, 64), Ok(()));
    assert_eq!(harvest_pages(&s), addrs(&m, &[2]));
    drop(pin);
    // Unpinned: reported once more (writable and dirty), then re-protected.
    assert_eq!(harvest_pages(&s), addrs(&m, &[2]));
    assert!(harvest_pages(&s).is_empty());
    write_all(w, &[0x33; 64]);
    assert_eq!(read_exact(r, m.page(2) + 100, 64), Err(libc::EFAULT));
    close(r);
    close(w);
}

#[test]
fn a_pin_covers_every_tracked_page_of_its_regions() {
    let (s, m) = armed(16);
    let (r, w) = pipe();
    // A region across pages 3..=5, and one in page 9.
    let a = m.page(3) + 4000;
    let a_len = 2 * PAGE_SIZE + 200;
    let b = m.page(9) + 8;
    let pin = KernelWrite::begin(&[(a, a_len), (0, 0), (b, 16)]);
    let data: Vec<u8> = (0..a_len).map(|i| i as u8).collect();
    write_all(w, &data);
    assert_eq!(read_exact(r, a, a_len), Ok(()));
    write_all(w, &[7; 16]);
    assert_eq!(read_exact(r, b, 16), Ok(()));
    assert_eq!(bytes_at(a, a_len), data);
    assert_eq!(harvest_pages(&s), addrs(&m, &[3, 4, 5, 6, 9]));
    // A program write elsewhere is still tracked as usual.
    m.write(12, 5);
    assert_eq!(harvest_pages(&s), addrs(&m, &[3, 4, 5, 6, 9, 12]));
    drop(pin);
    assert_eq!(harvest_pages(&s), addrs(&m, &[3, 4, 5, 6, 9]));
    assert!(harvest_pages(&s).is_empty());
    close(r);
    close(w);
}

#[test]
fn untracked_memory_needs_no_pin() {
    let (_s, _m) = armed(2);
    assert!(any_tracked());
    let mut local = [0u8; 64];
    let pin = KernelWrite::begin(&[(local.as_mut_ptr() as usize, local.len())]);
    assert!(!pin.is_pinned(), "a stack buffer is not tracked");
    let pin = KernelWrite::begin(&[(usize::MAX - 10, 100)]);
    assert!(!pin.is_pinned(), "an address-space overflow is clamped");
}

#[test]
fn a_read_blocked_while_harvests_and_arms_run_succeeds_and_is_reported() {
    let (s, m) = armed(8);
    let s = Arc::new(s);
    let (r, w) = pipe();
    let buf = m.page(4) + 512;
    let len = PAGE_SIZE + 1000; // pages 4 and 5
    let reader = std::thread::spawn(move || {
        let pin = KernelWrite::begin(&[(buf, len)]);
        let res = read_exact(r, buf, len);
        drop(pin);
        res
    });
    // Harvest and re-arm over and over while the reader is blocked in read.
    let until = Instant::now() + Duration::from_millis(100);
    let mut seen = BTreeSet::new();
    let mut i = 0u64;
    while Instant::now() < until {
        if i.is_multiple_of(3) {
            s.arm().unwrap();
        } else {
            seen.extend(harvest_pages(&*s));
        }
        i += 1;
    }
    let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
    write_all(w, &data);
    assert_eq!(reader.join().unwrap(), Ok(()), "the pinned read failed");
    assert_eq!(bytes_at(buf, len), data);
    seen.extend(harvest_pages(&*s));
    assert!(
        seen.is_superset(&addrs(&m, &[4, 5])),
        "pinned pages not reported: {seen:x?}"
    );
    // After the unpin, at most one more report, then read-only again.
    let _ = harvest_pages(&*s);
    assert!(harvest_pages(&*s).is_empty());
    close(r);
    close(w);
}

#[test]
fn concurrent_pinned_reads_are_never_lost() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 300;
    let (s, m) = armed(THREADS * 8);
    let s = Arc::new(s);
    let stop = Arc::new(AtomicBool::new(false));
    let reported = Arc::new(Mutex::new(BTreeSet::new()));
    let harvester = {
        let (s, stop, reported) = (s.clone(), stop.clone(), reported.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Acquire) {
                let pages = harvest_pages(&*s);
                reported.lock().unwrap().extend(pages);
                n += 1;
            }
            n
        })
    };
    let base = m.range.start;
    let readers: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                let (r, w) = pipe();
                let mut written = BTreeSet::new();
                for round in 0..ROUNDS {
                    let page = base + (t * 8 + round % 8) * PAGE_SIZE;
                    let at = page + (round * 64) % (PAGE_SIZE - 64);
                    let data = [(round ^ t) as u8; 64];
                    write_all(w, &data);
                    let pin = KernelWrite::begin(&[(at, 64)]);
                    let res = read_exact(r, at, 64);
                    drop(pin);
                    assert_eq!(res, Ok(()), "thread {t} round {round}: pinned read");
                    assert_eq!(bytes_at(at, 64), data.to_vec());
                    written.insert(page);
                }
                close(r);
                close(w);
                written
            })
        })
        .collect();
    let mut written = BTreeSet::new();
    for h in readers {
        written.extend(h.join().unwrap());
    }
    stop.store(true, Ordering::Release);
    let harvests = harvester.join().unwrap();
    reported.lock().unwrap().extend(harvest_pages(&*s));
    let reported = reported.lock().unwrap();
    assert!(harvests > 0);
    let missing: Vec<_> = written.difference(&reported).collect();
    assert!(
        missing.is_empty(),
        "written but never reported: {missing:x?}"
    );
}

#[test]
fn a_harvest_sink_may_pin() {
    // A watchdog: a sink that waited for its own re-protection would hang.
    let done = Arc::new(AtomicBool::new(false));
    {
        let done = done.clone();
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(20);
            while Instant::now() < until {
                if done.load(Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            eprintln!("a_harvest_sink_may_pin: the harvest sink deadlocked on its own pin");
            std::process::abort();
        });
    }
    let (s, m) = armed(4);
    m.write(0, 3);
    let (r, w) = pipe();
    let mut reported = 0;
    s.harvest(&mut |run| {
        reported += run.pages();
        // The collector's sink might make a system call into the heap.
        write_all(w, &[0x44; 8]);
        let pin = KernelWrite::begin(&[(m.page(3), 8)]);
        assert_eq!(read_exact(r, m.page(3), 8), Ok(()));
        drop(pin);
    })
    .unwrap();
    done.store(true, Ordering::Release);
    assert_eq!(reported, 1);
    assert_eq!(bytes_at(m.page(3), 8), vec![0x44; 8]);
    assert_eq!(harvest_pages(&s), addrs(&m, &[3]));
    close(r);
    close(w);
}

/// `fork()` while another thread harvests (inside its re-protection most
/// of the time): the child, where that thread does not exist, must still
/// be able to pin.
#[test]
fn a_fork_child_can_pin_after_a_fork_during_a_harvest() {
    const PAGES: usize = 4096;
    let (s, m) = armed(PAGES);
    let s = Arc::new(s);
    let stop = Arc::new(AtomicBool::new(false));
    let harvester = {
        let (s, stop) = (s.clone(), stop.clone());
        let base = m.range.start;
        std::thread::spawn(move || {
            let mut round = 0usize;
            while !stop.load(Ordering::Acquire) {
                // Scattered writes make each harvest re-protect many runs.
                for i in (round % 2..PAGES).step_by(2) {
                    common::write_byte(base + i * PAGE_SIZE, round as u8);
                }
                s.harvest(&mut |_| {}).unwrap();
                round += 1;
            }
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    let target = m.page(7) + 16;
    let mut failure = None;
    for round in 0..20 {
        let (r, w) = pipe();
        write_all(w, &[0x5A; 8]);
        // SAFETY: the child only pins, reads and exits (no allocation, no locks).
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let pin = KernelWrite::begin(&[(target, 8)]);
            let ok = read_exact(r, target, 8) == Ok(());
            drop(pin);
            // SAFETY: leaving the child without running the parent's handlers.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut status = 0;
        loop {
            // SAFETY: polling our own child.
            let got = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if got == pid {
                break;
            }
            if Instant::now() > deadline {
                // SAFETY: killing and reaping our own hung child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                failure = Some(format!(
                    "fork {round}: the child hung pinning (a count inherited from the harvesting thread)"
                ));
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        close(r);
        close(w);
        if failure.is_none() && !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            failure = Some(format!(
                "fork {round}: the child's pinned read failed (status {status:#x})"
            ));
        }
        if failure.is_some() {
            break;
        }
    }
    // Stop the harvester before the mapping goes away, then judge.
    stop.store(true, Ordering::Release);
    harvester.join().unwrap();
    assert_eq!(failure, None);
}
