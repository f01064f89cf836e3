//! `oohgc-torture`: the torture suite of the oohgc collector.
//!
//! * [`load`]: the many-thread load torture (the `torture` binary): threads
//!   allocate, rewire a shared graph, exit and are replaced while cycles run
//!   back to back with the verifier on; every object carries a checksum that
//!   readers verify.
//! * [`workload`]: a real program (serde_json, regex, hashbrown,
//!   crossbeam-channel, rayon) whose output digest must not depend on the
//!   allocator (binaries `real_program` under `GcAllocator` with forced
//!   collections, `real_program_system` under the system allocator).
//! * [`rng`]: a small deterministic generator.
//! * [`args`]: command-line parsing with errors that name what is allowed.
//!
//! Faults and hostile conditions live in the `hostile` binary, one
//! scenario per subcommand, driven by the tests in `tests/faults.rs`.

#![warn(missing_docs)]

pub mod args;
pub mod load;
pub mod rng;
pub mod workload;
