//! The other interposed calls into collected memory during cycles
//! (recvfrom, recvmsg, poll, getrandom, readlink, getcwd, fstat, pipe,
//! accept, waitpid, uname, getrusage, clock_gettime, sched_getaffinity,
//! ioctl, and `syscall()` by number), and waits whose signal mask blocks
//! everything, which must neither delay a collection nor get their thread
//! given up.

use super::{pattern, settle, setup, size_for, Background, HeapBuf, TempFile};
use oohgc::Gc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Box a zeroed C structure in the collected heap.
fn heap_zeroed<T>() -> Box<T> {
    // SAFETY: the C structures used here are plain data; all-zero is valid.
    Box::new(unsafe { std::mem::zeroed() })
}

fn errno_text(what: &str, round: usize) -> String {
    format!("round {round}: {what}: {}", std::io::Error::last_os_error())
}

#[test]
fn other_writing_calls_into_heap_memory_during_cycles() {
    use std::os::fd::AsRawFd;
    setup();
    let _bg = Background::start();
    let udp_rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let tx_port = udp_tx.local_addr().unwrap().port();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = std::env::temp_dir();
    let link = dir.join(format!("oohgc-kernel-writes-{}-link", std::process::id()));
    let target = "some/target/of/the/link";
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(target, &link).unwrap();
    let link_c = std::ffi::CString::new(link.as_os_str().as_encoded_bytes()).unwrap();
    let cwd = std::env::current_dir().unwrap();
    let file = TempFile::new("other", &pattern(0, 12345));
    for round in 0..100usize {
        let len = size_for(round).min(8000);
        let data = pattern(round, len);
        let mut random = vec![0u8; 256];
        let mut random2 = vec![0u8; 256];
        let mut raw = HeapBuf::new(round, len);
        let mut udp_buf = HeapBuf::new(round + 1, len);
        let mut udp_buf2 = HeapBuf::new(round + 2, len);
        let mut from: Box<libc::sockaddr_in> = heap_zeroed();
        let mut from_len: Box<libc::socklen_t> = Box::new(0);
        let mut msg: Box<libc::msghdr> = heap_zeroed();
        let mut name: Box<libc::sockaddr_in> = heap_zeroed();
        let mut iov: Vec<libc::iovec> = Vec::with_capacity(1);
        let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(2);
        let mut link_buf = vec![0u8; 256];
        let mut cwd_buf = vec![0u8; 4096];
        let mut st: Box<libc::stat> = heap_zeroed();
        let mut fds: Box<[libc::c_int; 2]> = Box::new([0; 2]);
        let mut peer: Box<libc::sockaddr_in> = heap_zeroed();
        let mut peer_len: Box<libc::socklen_t> = Box::new(0);
        let mut status: Box<libc::c_int> = Box::new(-1);
        let mut uts: Box<libc::utsname> = heap_zeroed();
        let mut uts2: Box<libc::utsname> = heap_zeroed();
        let mut usage: Box<libc::rusage> = heap_zeroed();
        let mut cpu_time: Box<libc::timespec> = heap_zeroed();
        let mut cpus: Box<libc::cpu_set_t> = heap_zeroed();
        let mut pending: Box<libc::c_int> = Box::new(-1);
        settle(round);

        // SAFETY (this block): every pointer is to live heap memory of the
        // stated size; descriptors are ours.
        unsafe {
            let n = libc::getrandom(random.as_mut_ptr().cast(), 256, 0);
            assert_eq!(n, 256, "{}", errno_text("getrandom", round));
            assert!(random.iter().any(|&b| b != 0));
            let n = libc::syscall(libc::SYS_getrandom, random2.as_mut_ptr(), 256usize, 0);
            assert_eq!(n, 256, "{}", errno_text("syscall(SYS_getrandom)", round));
            assert_ne!(random, random2);

            let (r, w) = {
                let mut p = [0; 2];
                assert_eq!(libc::pipe(p.as_mut_ptr()), 0);
                (p[0], p[1])
            };
            assert_eq!(libc::write(w, data.as_ptr().cast(), len), len as isize);
            let b = raw.as_mut();
            let n = libc::syscall(libc::SYS_read, r, b.as_mut_ptr(), len);
            assert_eq!(n, len as i64, "{}", errno_text("syscall(SYS_read)", round));
            assert_eq!(&b[..], &data[..], "round {round}: syscall(SYS_read) bytes");

            // poll: two pipes, one readable.
            let (r2, w2) = {
                let mut p = [0; 2];
                assert_eq!(libc::pipe(p.as_mut_ptr()), 0);
                (p[0], p[1])
            };
            assert_eq!(libc::write(w2, [9u8].as_ptr().cast(), 1), 1);
            pfds.push(libc::pollfd {
                fd: r,
                events: libc::POLLIN,
                revents: 0,
            });
            pfds.push(libc::pollfd {
                fd: r2,
                events: libc::POLLIN,
                revents: 0,
            });
            let n = libc::poll(pfds.as_mut_ptr(), 2, 1000);
            assert_eq!(n, 1, "{}", errno_text("poll", round));
            assert_eq!(pfds[0].revents, 0);
            assert_eq!(pfds[1].revents, libc::POLLIN);
            for fd in [r, w, r2, w2] {
                libc::close(fd);
            }

            // recvfrom with the address and its length in the heap.
            udp_tx.send_to(&data, udp_rx.local_addr().unwrap()).unwrap();
            *from_len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let b = udp_buf.as_mut();
            let n = libc::recvfrom(
                udp_rx.as_raw_fd(),
                b.as_mut_ptr().cast(),
                len,
                0,
                (&mut *from as *mut libc::sockaddr_in).cast(),
                &mut *from_len,
            );
            assert_eq!(n, len as isize, "{}", errno_text("recvfrom", round));
            assert_eq!(&b[..], &data[..], "round {round}: recvfrom bytes");
            assert_eq!(u16::from_be(from.sin_port), tx_port);

            // recvmsg with the msghdr, the name and the iovec array in the heap.
            udp_tx.send_to(&data, udp_rx.local_addr().unwrap()).unwrap();
            let b = udp_buf2.as_mut();
            iov.push(libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: len,
            });
            msg.msg_name = (&mut *name as *mut libc::sockaddr_in).cast();
            msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            msg.msg_iov = iov.as_mut_ptr();
            msg.msg_iovlen = 1;
            let n = libc::recvmsg(udp_rx.as_raw_fd(), &mut *msg, 0);
            assert_eq!(n, len as isize, "{}", errno_text("recvmsg", round));
            assert_eq!(&b[..], &data[..], "round {round}: recvmsg bytes");
            assert_eq!(u16::from_be(name.sin_port), tx_port);

            let n = libc::readlink(link_c.as_ptr(), link_buf.as_mut_ptr().cast(), 256);
            assert_eq!(
                n,
                target.len() as isize,
                "{}",
                errno_text("readlink", round)
            );
            assert_eq!(&link_buf[..target.len()], target.as_bytes());

            let p = libc::getcwd(cwd_buf.as_mut_ptr().cast(), cwd_buf.len());
            assert!(!p.is_null(), "{}", errno_text("getcwd", round));
            let got = std::ffi::CStr::from_ptr(p).to_bytes();
            assert_eq!(got, cwd.as_os_str().as_encoded_bytes());

            let f = std::fs::File::open(&file.0).unwrap();
            assert_eq!(
                libc::fstat(f.as_raw_fd(), &mut *st),
                0,
                "{}",
                errno_text("fstat", round)
            );
            assert_eq!(st.st_size, 12345);

            assert_eq!(
                libc::pipe(fds.as_mut_ptr()),
                0,
                "{}",
                errno_text("pipe", round)
            );
            assert_eq!(libc::write(fds[1], [5u8].as_ptr().cast(), 1), 1);
            let mut one = [0u8; 1];
            assert_eq!(libc::read(fds[0], one.as_mut_ptr().cast(), 1), 1);
            assert_eq!(one[0], 5);
            libc::close(fds[0]);
            libc::close(fds[1]);

            // accept with the peer address in the heap.
            let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            *peer_len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let fd = libc::accept(
                listener.as_raw_fd(),
                (&mut *peer as *mut libc::sockaddr_in).cast(),
                &mut *peer_len,
            );
            assert!(fd >= 0, "{}", errno_text("accept", round));
            assert_eq!(
                u16::from_be(peer.sin_port),
                client.local_addr().unwrap().port()
            );
            libc::close(fd);

            assert_eq!(libc::uname(&mut *uts), 0, "{}", errno_text("uname", round));
            assert_eq!(
                std::ffi::CStr::from_ptr(uts.sysname.as_ptr()).to_bytes(),
                b"Linux"
            );
            let n = libc::syscall(libc::SYS_uname, &mut *uts2 as *mut libc::utsname);
            assert_eq!(n, 0, "{}", errno_text("syscall(SYS_uname)", round));
            assert_eq!(
                std::ffi::CStr::from_ptr(uts2.sysname.as_ptr()).to_bytes(),
                b"Linux"
            );
            let n = libc::getrusage(libc::RUSAGE_SELF, &mut *usage);
            assert_eq!(n, 0, "{}", errno_text("getrusage", round));
            assert!(usage.ru_maxrss > 0);
            // A CPU-time clock is answered by the system call, not the vDSO.
            let n = libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut *cpu_time);
            assert_eq!(n, 0, "{}", errno_text("clock_gettime", round));
            assert!(cpu_time.tv_sec > 0 || cpu_time.tv_nsec > 0);
            let n = libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut *cpus);
            assert_eq!(n, 0, "{}", errno_text("sched_getaffinity", round));
            assert!(libc::CPU_COUNT(&cpus) > 0);
            let (r3, w3) = {
                let mut p = [0; 2];
                assert_eq!(libc::pipe(p.as_mut_ptr()), 0);
                (p[0], p[1])
            };
            assert_eq!(libc::write(w3, data.as_ptr().cast(), 7), 7);
            let n = libc::ioctl(r3, libc::FIONREAD, &mut *pending as *mut libc::c_int);
            assert_eq!(n, 0, "{}", errno_text("ioctl(FIONREAD)", round));
            assert_eq!(*pending, 7);
            libc::close(r3);
            libc::close(w3);

            if round % 10 == 0 {
                // Reaped by the waitpid below, into heap memory.
                #[allow(clippy::zombie_processes)]
                let child = std::process::Command::new("true").spawn().unwrap();
                let pid = child.id() as libc::pid_t;
                let got = libc::waitpid(pid, &mut *status, 0);
                assert_eq!(got, pid, "{}", errno_text("waitpid", round));
                assert_eq!(*status, 0);
            }
        }
    }
    let _ = std::fs::remove_file(&link);
}

/// A thread waiting in a call that takes a signal mask, with every signal
/// in the mask, must still be stoppable: the wrappers take the collector's
/// suspend and restart signals out of the mask. Each wait lasts up to 10 s
/// (a pipe ends it); a collection while the thread waits must not wait for
/// it to end.
#[test]
fn waits_with_every_signal_masked_do_not_delay_collections() {
    setup();
    for variant in ["ppoll", "epoll_pwait", "syscall(SYS_ppoll)"] {
        let mut fds = [0i32; 2];
        // SAFETY: pipe with a valid array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let (wake_r, wake_w) = (fds[0], fds[1]);
        let waiting = Arc::new(AtomicBool::new(false));
        let waiter = {
            let waiting = waiting.clone();
            std::thread::spawn(move || {
                let held = Gc::new([5u64; 4]);
                // SAFETY: creating an epoll instance watching the wake pipe.
                let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
                let mut ev = libc::epoll_event {
                    events: libc::EPOLLIN as u32,
                    u64: 1,
                };
                // SAFETY: registering our own descriptor.
                assert_eq!(
                    unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, wake_r, &mut ev) },
                    0
                );
                let mut events: Vec<libc::epoll_event> = Vec::with_capacity(4);
                let mut pfd = [libc::pollfd {
                    fd: wake_r,
                    events: libc::POLLIN,
                    revents: 0,
                }];
                // SAFETY: a full signal set in a local.
                let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
                // SAFETY: filling our own set.
                unsafe { libc::sigfillset(&mut all) };
                let ts = libc::timespec {
                    tv_sec: 10,
                    tv_nsec: 0,
                };
                loop {
                    waiting.store(true, Ordering::Release);
                    // SAFETY: waits with valid arguments.
                    let n = unsafe {
                        match variant {
                            "ppoll" => libc::ppoll(pfd.as_mut_ptr(), 1, &ts, &all),
                            "epoll_pwait" => {
                                libc::epoll_pwait(ep, events.as_mut_ptr(), 4, 10_000, &all)
                            }
                            _ => libc::syscall(
                                libc::SYS_ppoll,
                                pfd.as_mut_ptr(),
                                1usize,
                                &ts as *const libc::timespec,
                                &all as *const libc::sigset_t,
                                8usize,
                            ) as i32,
                        }
                    };
                    if n > 0 {
                        break; // woken through the pipe
                    }
                }
                // SAFETY: closing our epoll descriptor.
                unsafe { libc::close(ep) };
                assert_eq!(*held, [5u64; 4]);
            })
        };
        while !waiting.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        let given_up = oohgc::stats().threads_given_up;
        let t = std::time::Instant::now();
        oohgc::collect();
        let took = t.elapsed();
        let given_up = oohgc::stats().threads_given_up - given_up;
        // SAFETY: waking the waiter through our pipe.
        assert_eq!(unsafe { libc::write(wake_w, [1u8].as_ptr().cast(), 1) }, 1);
        waiter.join().unwrap();
        // SAFETY: closing our own descriptors.
        unsafe {
            libc::close(wake_r);
            libc::close(wake_w);
        }
        assert!(
            took < std::time::Duration::from_secs(5),
            "{variant}: a collection waited {took:?} for a thread whose wait masked the suspend signal"
        );
        assert_eq!(
            given_up, 0,
            "{variant}: the collection gave up a thread whose wait masked the suspend signal"
        );
    }
}
