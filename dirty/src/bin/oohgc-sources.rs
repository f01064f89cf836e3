//! `oohgc-sources`: the dirty-source table as this machine sees it — each
//! source's name, cargo feature, capabilities and whether it opens here
//! (with the reason when it does not). `--ci [--skip NAME]` prints only the
//! names a test suite should run under besides its default, one per line:
//! what `.ci/run` loops over, so that a new row of the table is tested
//! without editing the script.
//!
//! Owns: the command line and the table it prints. Must not touch: any
//! source's internals: it reads the registry and opens sources by name.

use oohgc_dirty::registry::SOURCES;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut ci = false;
    let mut skip = String::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--ci" => ci = true,
            "--skip" => match it.next() {
                Some(name) if oohgc_dirty::registry::info(name).is_some() => skip = name.clone(),
                other => {
                    eprintln!(
                        "oohgc-sources: --skip takes a source name ({}), got {:?}",
                        oohgc_dirty::SOURCE_NAMES.join(", "),
                        other
                    );
                    std::process::exit(2);
                }
            },
            other => {
                eprintln!("oohgc-sources: unknown argument {other:?}; usage: oohgc-sources [--ci [--skip NAME]]");
                std::process::exit(2);
            }
        }
    }
    if ci {
        for name in oohgc_dirty::sources_to_test(&skip) {
            println!("{name}");
        }
        return;
    }
    println!("source        feature       kernel-writes barrier default tracks-nothing  here");
    for s in SOURCES.iter() {
        let c = s.capabilities;
        let here = match (s.probe)() {
            Ok(()) => "available".to_string(),
            Err(e) => e.to_string(),
        };
        println!(
            "{:<13} {:<13} {:<13} {:<7} {:<7} {:<15} {}",
            s.name,
            if s.cargo_feature.is_empty() {
                "-"
            } else {
                s.cargo_feature
            },
            c.sees_kernel_writes,
            c.needs_barrier,
            c.default_candidate,
            c.tracks_nothing,
            here
        );
    }
}
