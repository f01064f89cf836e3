//! `oohgc-bench`: the benchmark runner (system allocator). See `--help`.

fn main() {
    std::process::exit(oohgc_bench::cli::main());
}
