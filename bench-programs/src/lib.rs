//! `oohgc-bench`: benchmark programs and the comparison runner for oohgc.
//!
//! Workloads (module [`workloads`]) are written once against the
//! [`heap::Heap`] interface and run on three backends ([`backends`]):
//! oohgc, bdwgc and the system allocator. Every configuration runs in its
//! own worker process ([`worker`]); the runner ([`runner`]) spawns them,
//! reads one JSON line from each and aggregates medians and ratios, which
//! [`report`] turns into tables, JSON, CSV, Markdown and charts; [`ab`]
//! compares two builds of the oohgc worker run for run; [`checkpoint`]
//! checkpoints running workloads with `oohgc-checkpoint` per dirty source.

#![warn(missing_docs)]

pub mod ab;
pub mod backends;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod figures;
pub mod heap;
pub mod report;
pub mod result;
pub mod rng;
pub mod runner;
pub mod stall;
pub mod worker;
pub mod workloads;
