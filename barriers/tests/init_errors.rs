//! `init` validates signal numbers, refuses a signal the program already
//! handles with the promised message, is idempotent for the same
//! configuration and refuses another one. Process-global state: one test.

use oohgc_barriers::{init, is_initialized, parse_signal, BarrierError, SignalConfig, SignalRole};

extern "C" fn program_handler(_: i32) {}

fn config(suspend: i32, restart: i32) -> SignalConfig {
    SignalConfig { suspend, restart }
}

#[test]
fn init_validates_and_reports_clearly() {
    assert!(!is_initialized());
    assert_eq!(SignalConfig::default(), config(libc::SIGPWR, libc::SIGXCPU));

    for (bad, reason) in [
        (libc::SIGKILL, "cannot be caught"),
        (libc::SIGSTOP, "cannot be caught"),
        (libc::SIGSEGV, "reports faults"),
        (libc::SIGBUS, "reports faults"),
        (libc::SIGCHLD, "job control"),
        (libc::SIGINT, "default meaning"),
        (0, "not a signal number"),
        (-3, "not a signal number"),
        (65, "not a signal number"),
        (32, "reserved by the C library"),
    ] {
        let err = init(config(bad, libc::SIGXCPU)).unwrap_err();
        assert!(
            matches!(err, BarrierError::InvalidSignal { role: SignalRole::Suspend, signal, .. } if signal == bad),
            "{bad}: {err:?}"
        );
        let text = err.to_string();
        assert!(text.contains(reason), "{bad}: {text}");
        assert!(text.contains("OOHGC_SUSPEND_SIGNAL"), "{text}");
        assert!(text.contains("allowed: SIGUSR1 (10)"), "{text}");
        let err = init(config(libc::SIGPWR, bad)).unwrap_err();
        assert!(
            matches!(
                err,
                BarrierError::InvalidSignal {
                    role: SignalRole::Restart,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("OOHGC_RESTART_SIGNAL"));
    }
    let err = init(config(libc::SIGUSR1, libc::SIGUSR1)).unwrap_err();
    assert_eq!(
        err,
        BarrierError::SameSignal {
            signal: libc::SIGUSR1
        }
    );
    assert!(err.to_string().contains("both SIGUSR1 (10)"), "{err}");
    assert!(!is_initialized());

    // The program owns SIGUSR1.
    // SAFETY: installing a trivial handler for SIGUSR1 in this test process.
    unsafe {
        libc::signal(
            libc::SIGUSR1,
            program_handler as extern "C" fn(i32) as usize,
        )
    };
    let err = init(config(libc::SIGUSR1, libc::SIGUSR2)).unwrap_err();
    assert_eq!(
        err,
        BarrierError::SignalInUse {
            role: SignalRole::Suspend,
            signal: libc::SIGUSR1
        }
    );
    let text = err.to_string();
    assert!(
        text.starts_with(
            "signal SIGUSR1 (10) already has a handler installed by the program; oohgc needs it \
             to stop threads. Move oohgc with OOHGC_SUSPEND_SIGNAL / OOHGC_RESTART_SIGNAL \
             (allowed: SIGUSR1 (10), SIGUSR2 (12), SIGXCPU (24), SIGXFSZ (25), SIGVTALRM (26), \
             SIGPROF (27), SIGPWR (30), or a real-time signal SIGRTMIN..=SIGRTMAX ("
        ),
        "{text}"
    );
    let err = init(config(libc::SIGUSR2, libc::SIGUSR1)).unwrap_err();
    assert_eq!(
        err,
        BarrierError::SignalInUse {
            role: SignalRole::Restart,
            signal: libc::SIGUSR1
        }
    );
    assert!(
        err.to_string().contains("needs it to restart threads"),
        "{err}"
    );
    assert!(
        !is_initialized(),
        "a failed init must leave the crate uninitialised"
    );

    // Names and numbers from the environment syntax.
    assert_eq!(parse_signal(b"SIGPWR"), Some(libc::SIGPWR));
    assert_eq!(parse_signal(b"usr2"), Some(libc::SIGUSR2));
    assert_eq!(parse_signal(b" 30 "), Some(30));
    assert_eq!(parse_signal(b"SIGRTMIN+2"), Some(libc::SIGRTMIN() + 2));
    assert_eq!(parse_signal(b"RTMAX-1"), Some(libc::SIGRTMAX() - 1));
    assert_eq!(parse_signal(b"SIGNOPE"), None);
    assert_eq!(parse_signal(b"RTMIN*2"), None);

    // A real-time pair works; the same again is fine; another is refused.
    let rt = config(libc::SIGRTMIN() + 1, libc::SIGRTMIN() + 2);
    init(rt).unwrap();
    assert!(is_initialized());
    init(rt).unwrap();
    let err = init(SignalConfig::default()).unwrap_err();
    assert_eq!(
        err,
        BarrierError::AlreadyInitialized {
            current: rt,
            requested: SignalConfig::default()
        }
    );
    assert!(err.to_string().contains("already initialised"), "{err}");
    assert_eq!(oohgc_barriers::current_config(), Some(rt));

    // And stopping works with the chosen signals.
    let spinner = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(50)));
    let world = oohgc_barriers::stop_world();
    assert!(world.thread_count() >= 1);
    drop(world);
    spinner.join().unwrap();
}
