//! How writers are stopped during a dump.
//!
//! A dump must see the tracked memory still while it harvests the source
//! and copies the written pages (crate doc, "What a dump does"). The
//! checkpointer does not know the program's threads; the caller says how to
//! stop them with a [`Freezer`]:
//!
//! * [`NoFreeze`] — the thread calling `dump` is the only writer (the
//!   default).
//! * [`fn_freezer`] — a freeze/thaw pair of closures: the program pauses
//!   its writers itself (at safe points of its own) and resumes them.
//! * [`ThreadFreezer`] — stops registered threads wherever they are, with a
//!   signal whose handler parks the thread until the thaw, as a collector's
//!   stop-the-world (and CRIU's freezer) does. A thread registers with
//!   [`ThreadFreezer::register_current_thread`] before it writes tracked
//!   memory and stays registered while the returned guard lives.
//!
//! What a frozen thread cannot do, and so what the freeze guarantees: run
//! user code, or have the kernel write on its behalf — a thread parked in
//! the handler is not inside a system call (an interrupted one restarts
//! after the handler returns, `SA_RESTART`). Asynchronous I/O the kernel
//! performs without a thread (`io_uring`, AIO) is not stopped by any of
//! these; a program using it must quiesce it in its own freeze callback.
//!
//! The freeze must not take a lock a stopped thread may hold: the
//! checkpointer allocates nothing between `freeze` and `thaw`, and
//! [`ThreadFreezer`] only sends signals and waits on atomics.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once};
use std::time::{Duration, Instant};

/// Stops and restarts the writers of tracked memory.
pub trait Freezer: Send {
    /// Stop every writer; return once none runs. An error aborts the dump
    /// (after `thaw`, which must then undo a partial freeze).
    fn freeze(&mut self) -> Result<(), String>;
    /// Let the writers run again.
    fn thaw(&mut self);
}

/// The calling thread is the only writer: nothing to stop.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoFreeze;

impl Freezer for NoFreeze {
    fn freeze(&mut self) -> Result<(), String> {
        Ok(())
    }
    fn thaw(&mut self) {}
}

/// A [`Freezer`] from a freeze/thaw pair of closures.
pub fn fn_freezer<F, T>(freeze: F, thaw: T) -> impl Freezer
where
    F: FnMut() -> Result<(), String> + Send,
    T: FnMut() + Send,
{
    struct Pair<F, T>(F, T);
    impl<F, T> Freezer for Pair<F, T>
    where
        F: FnMut() -> Result<(), String> + Send,
        T: FnMut() + Send,
    {
        fn freeze(&mut self) -> Result<(), String> {
            (self.0)()
        }
        fn thaw(&mut self) {
            (self.1)()
        }
    }
    Pair(freeze, thaw)
}

/// How long [`ThreadFreezer::freeze`] waits for every thread to stop.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What a thread's signal handler parks on.
struct Gate {
    /// Odd while frozen; the handler waits (futex) while it is unchanged.
    epoch: AtomicU32,
    /// Threads inside the handler.
    parked: AtomicUsize,
}

struct Registry {
    threads: Vec<libc::pthread_t>,
    frozen: bool,
}

struct Shared {
    gate: Gate,
    registry: Mutex<Registry>,
    unfrozen: Condvar,
}

thread_local! {
    /// The gate this thread parks on when the freeze signal arrives
    /// (null: not registered). Const-initialised and without destructor,
    /// so reading it in a signal handler allocates nothing.
    static MY_GATE: Cell<*const Gate> = const { Cell::new(std::ptr::null()) };
}

/// Stops registered threads with a signal (see the module doc).
pub struct ThreadFreezer {
    shared: Arc<Shared>,
    signal: i32,
    /// Snapshot of the registry taken at `freeze`, reused (capacity kept).
    stopping: Vec<libc::pthread_t>,
}

/// Keeps the current thread registered with a [`ThreadFreezer`]; dropping
/// it unregisters. It cannot leave its thread (`!Send`): the thread it
/// names is the one the freeze signal parks.
pub struct ThreadRegistration {
    shared: Arc<Shared>,
    thread: libc::pthread_t,
    _not_send: std::marker::PhantomData<*const ()>,
}

static INSTALL: Once = Once::new();
static INSTALLED_SIGNAL: AtomicUsize = AtomicUsize::new(0);

/// The signal [`ThreadFreezer::new`] uses: `SIGRTMIN + 6` (the collector
/// uses `SIGPWR` / `SIGXCPU`; glibc reserves the first real-time signals).
pub fn default_signal() -> i32 {
    libc::SIGRTMIN() + 6
}

extern "C" fn on_freeze_signal(_sig: libc::c_int) {
    // SAFETY: errno is thread-local; saving and restoring it keeps the
    // interrupted code's view of it.
    let saved_errno = unsafe { *libc::__errno_location() };
    let gate = MY_GATE.with(|g| g.get());
    if !gate.is_null() {
        // SAFETY: a registered thread's gate lives in the `Shared` its
        // registration keeps alive, and the pointer is cleared before the
        // registration is dropped.
        let gate = unsafe { &*gate };
        let epoch = gate.epoch.load(Ordering::Acquire);
        if epoch % 2 == 1 {
            gate.parked.fetch_add(1, Ordering::AcqRel);
            while gate.epoch.load(Ordering::Acquire) == epoch {
                // SAFETY: FUTEX_WAIT on our own atomic; it returns at once
                // if the value already changed.
                unsafe {
                    libc::syscall(
                        libc::SYS_futex,
                        gate.epoch.as_ptr(),
                        libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                        epoch,
                        std::ptr::null::<libc::timespec>(),
                    );
                }
            }
            gate.parked.fetch_sub(1, Ordering::AcqRel);
        }
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved_errno };
}

fn install_handler(signal: i32) -> Result<(), String> {
    let mut result = Ok(());
    INSTALL.call_once(|| {
        // SAFETY: sigaction with a zeroed struct, a handler that is
        // async-signal-safe (atomics and futex only), SA_RESTART so that
        // interrupted system calls resume; `old` receives the previous action.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut old) != 0 {
                result = Err(format!(
                    "sigaction({signal}): {}",
                    std::io::Error::last_os_error()
                ));
                return;
            }
            if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN {
                result = Err(format!(
                    "signal {signal} already has a handler; ThreadFreezer needs a signal of its own"
                ));
                return;
            }
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_freeze_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(signal, &sa, std::ptr::null_mut()) != 0 {
                result = Err(format!(
                    "sigaction({signal}): {}",
                    std::io::Error::last_os_error()
                ));
                return;
            }
        }
        INSTALLED_SIGNAL.store(signal as usize, Ordering::Release);
    });
    result?;
    let installed = INSTALLED_SIGNAL.load(Ordering::Acquire) as i32;
    if installed != signal {
        return Err(format!(
            "the freeze handler is installed on signal {installed} in this process; \
             every ThreadFreezer must use that signal, not {signal}"
        ));
    }
    Ok(())
}

impl ThreadFreezer {
    /// A freezer using [`default_signal`]; installs its handler once per
    /// process.
    pub fn new() -> Result<ThreadFreezer, String> {
        ThreadFreezer::with_signal(default_signal())
    }

    /// A freezer using `signal`, which must have no handler of its own.
    pub fn with_signal(signal: i32) -> Result<ThreadFreezer, String> {
        install_handler(signal)?;
        Ok(ThreadFreezer {
            shared: Arc::new(Shared {
                gate: Gate {
                    epoch: AtomicU32::new(0),
                    parked: AtomicUsize::new(0),
                },
                registry: Mutex::new(Registry {
                    threads: Vec::new(),
                    frozen: false,
                }),
                unfrozen: Condvar::new(),
            }),
            signal,
            stopping: Vec::new(),
        })
    }

    /// A handle other threads use to register themselves.
    pub fn registrar(&self) -> ThreadRegistrar {
        ThreadRegistrar {
            shared: self.shared.clone(),
        }
    }

    /// Register the calling thread (it will be stopped by every freeze
    /// until the guard is dropped).
    pub fn register_current_thread(&self) -> Result<ThreadRegistration, String> {
        self.registrar().register_current_thread()
    }

    /// Threads registered now.
    pub fn registered(&self) -> usize {
        lock(&self.shared.registry).threads.len()
    }
}

/// Lets a thread register with a [`ThreadFreezer`] owned elsewhere
/// (clone it into the thread).
#[derive(Clone)]
pub struct ThreadRegistrar {
    shared: Arc<Shared>,
}

impl ThreadRegistrar {
    /// Register the calling thread; see [`ThreadFreezer::register_current_thread`].
    pub fn register_current_thread(&self) -> Result<ThreadRegistration, String> {
        if !MY_GATE.with(|g| g.get()).is_null() {
            return Err("this thread is already registered with a ThreadFreezer".into());
        }
        // SAFETY: pthread_self has no preconditions.
        let thread = unsafe { libc::pthread_self() };
        let mut reg = lock(&self.shared.registry);
        while reg.frozen {
            reg = self
                .shared
                .unfrozen
                .wait(reg)
                .unwrap_or_else(|p| p.into_inner());
        }
        reg.threads.push(thread);
        MY_GATE.with(|g| g.set(&self.shared.gate));
        Ok(ThreadRegistration {
            shared: self.shared.clone(),
            thread,
            _not_send: std::marker::PhantomData,
        })
    }
}

impl Drop for ThreadRegistration {
    fn drop(&mut self) {
        let mut reg = lock(&self.shared.registry);
        // A freeze in progress may have signalled this thread: it must stay
        // registered (and park) until the thaw.
        while reg.frozen {
            reg = self
                .shared
                .unfrozen
                .wait(reg)
                .unwrap_or_else(|p| p.into_inner());
        }
        // SAFETY: pthread_equal has no preconditions.
        reg.threads
            .retain(|t| unsafe { libc::pthread_equal(*t, self.thread) } == 0);
        MY_GATE.with(|g| g.set(std::ptr::null()));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Freezer for ThreadFreezer {
    fn freeze(&mut self) -> Result<(), String> {
        let gate = &self.shared.gate;
        // Threads released by the previous thaw may still be leaving the
        // handler: let them, so that `parked` counts this freeze only.
        while gate.parked.load(Ordering::Acquire) != 0 {
            std::thread::yield_now();
        }
        self.stopping.clear();
        {
            let mut reg = lock(&self.shared.registry);
            reg.frozen = true;
            // SAFETY: pthread_self has no preconditions.
            let me = unsafe { libc::pthread_self() };
            self.stopping.reserve(reg.threads.len());
            for t in &reg.threads {
                // SAFETY: pthread_equal has no preconditions.
                if unsafe { libc::pthread_equal(*t, me) } == 0 {
                    self.stopping.push(*t);
                }
            }
        }
        gate.epoch.fetch_add(1, Ordering::AcqRel);
        for t in &self.stopping {
            // SAFETY: every registered thread is alive: it unregisters
            // (on itself, under the registry lock, never while frozen)
            // before it exits.
            let rc = unsafe { libc::pthread_kill(*t, self.signal) };
            if rc != 0 {
                return Err(format!(
                    "pthread_kill: {}",
                    std::io::Error::from_raw_os_error(rc)
                ));
            }
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while gate.parked.load(Ordering::Acquire) < self.stopping.len() {
            if Instant::now() > deadline {
                return Err(format!(
                    "{} of {} registered threads stopped within {:?} \
                     (a thread that blocks signal {} cannot be frozen)",
                    gate.parked.load(Ordering::Acquire),
                    self.stopping.len(),
                    STOP_TIMEOUT,
                    self.signal
                ));
            }
            // Yield rather than spin: with more runnable threads than
            // cores, the threads being stopped need this CPU to take the
            // signal.
            std::thread::yield_now();
        }
        Ok(())
    }

    fn thaw(&mut self) {
        let gate = &self.shared.gate;
        if gate.epoch.load(Ordering::Acquire) % 2 == 1 {
            gate.epoch.fetch_add(1, Ordering::AcqRel);
            // SAFETY: FUTEX_WAKE on our own atomic.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    gate.epoch.as_ptr(),
                    libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                    i32::MAX,
                );
            }
        }
        lock(&self.shared.registry).frozen = false;
        self.shared.unfrozen.notify_all();
    }
}
