//! The real program (see `oohgc_torture::workload`) under the system
//! allocator, the reference for `real_program`'s digest:
//! `real_program_system [--scale N]`.

use oohgc_torture::args::{parse, OptionSpec};

const SPECS: &[OptionSpec] = &[OptionSpec {
    name: "scale",
    min: 1.0,
    max: 1000.0,
    integer: true,
}];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let values = parse(&args, SPECS).unwrap_or_else(|e| {
        eprintln!("real_program_system: {e}");
        std::process::exit(2)
    });
    let scale = values[0].map_or(2, |v| v as usize);
    println!("{}", oohgc_torture::workload::run(scale));
}
