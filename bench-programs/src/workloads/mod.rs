//! The workloads, each written once against [`crate::heap::Heap`].
//!
//! Every workload has sizes `tiny` (tests), S, M and L, generates its input
//! in-process from a fixed seed, and returns a checksum that must be equal
//! across backends. `array-writer` is different: it measures dirty sources
//! directly and does not use a heap (module [`array_writer`]).

pub mod array_writer;
pub mod binary_trees;
pub mod gcbench;
pub mod phoenix;
pub mod pointer_mutation;

use crate::heap::Heap;
use serde::{Deserialize, Serialize};

/// The seed every workload derives its input from.
pub const SEED: u64 = 0x00A1_1CE5_EED5;

/// A workload size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
pub enum Size {
    /// Milliseconds-scale size for tests.
    #[value(name = "tiny")]
    Tiny,
    /// Small (the OoH paper's S, scaled where noted).
    #[value(name = "S", alias = "s")]
    S,
    /// Medium.
    #[value(name = "M", alias = "m")]
    M,
    /// Large.
    #[value(name = "L", alias = "l")]
    L,
}

impl Size {
    /// The size's name as written on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Size::Tiny => "tiny",
            Size::S => "S",
            Size::M => "M",
            Size::L => "L",
        }
    }
    /// Pick the value for this size from (tiny, S, M, L).
    pub fn pick<T>(self, tiny: T, s: T, m: T, l: T) -> T {
        match self {
            Size::Tiny => tiny,
            Size::S => s,
            Size::M => m,
            Size::L => l,
        }
    }
}

/// Optional overrides of a workload's size-derived parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, clap::Args)]
pub struct Knobs {
    /// pointer-mutation: vertices in the long-lived graph.
    #[arg(long)]
    pub graph_nodes: Option<u64>,
    /// pointer-mutation: pointer stores per second (0 = as fast as possible).
    #[arg(long)]
    pub store_rate: Option<u64>,
    /// array-writer: region size in MiB (1 ..= 1024).
    #[arg(long)]
    pub region_mib: Option<u64>,
    /// array-writer: passes over the region (one word per page each).
    #[arg(long)]
    pub passes: Option<u64>,
}

/// Every workload, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Workload {
    /// Boehm & Ellis GCBench.
    GcBench,
    /// Benchmarks Game binary-trees.
    BinaryTrees,
    /// Phoenix histogram.
    Histogram,
    /// Phoenix kmeans.
    Kmeans,
    /// Phoenix matrix-multiply.
    MatrixMultiply,
    /// Phoenix pca.
    Pca,
    /// Phoenix string-match.
    StringMatch,
    /// Phoenix word-count.
    WordCount,
    /// Long-lived graph rewired at a set rate, with allocation churn.
    PointerMutation,
    /// The OoH micro-benchmark on dirty sources directly.
    ArrayWriter,
}

impl Workload {
    /// All workloads, in listing order.
    pub const ALL: &'static [Workload] = &[
        Workload::GcBench,
        Workload::BinaryTrees,
        Workload::Histogram,
        Workload::Kmeans,
        Workload::MatrixMultiply,
        Workload::Pca,
        Workload::StringMatch,
        Workload::WordCount,
        Workload::PointerMutation,
        Workload::ArrayWriter,
    ];

    /// The six Phoenix kernels.
    pub const PHOENIX: &'static [Workload] = &[
        Workload::Histogram,
        Workload::Kmeans,
        Workload::MatrixMultiply,
        Workload::Pca,
        Workload::StringMatch,
        Workload::WordCount,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Workload::GcBench => "gcbench",
            Workload::BinaryTrees => "binary-trees",
            Workload::Histogram => "histogram",
            Workload::Kmeans => "kmeans",
            Workload::MatrixMultiply => "matrix-multiply",
            Workload::Pca => "pca",
            Workload::StringMatch => "string-match",
            Workload::WordCount => "word-count",
            Workload::PointerMutation => "pointer-mutation",
            Workload::ArrayWriter => "array-writer",
        }
    }

    /// One line saying what it does.
    pub fn describe(self) -> &'static str {
        match self {
            Workload::GcBench => "Boehm & Ellis GCBench (OoH Table II sizes)",
            Workload::BinaryTrees => "Benchmarks Game binary-trees, depth 12/16/18/20",
            Workload::Histogram => "Phoenix histogram over image-like bytes",
            Workload::Kmeans => "Phoenix kmeans over random points",
            Workload::MatrixMultiply => "Phoenix matrix-multiply",
            Workload::Pca => "Phoenix pca (row means + covariance)",
            Workload::StringMatch => "Phoenix string-match over vocabulary text",
            Workload::WordCount => "Phoenix word-count over vocabulary text",
            Workload::PointerMutation => "long-lived graph rewired at a set store rate",
            Workload::ArrayWriter => "OoH micro-benchmark: dirty-source slowdown (no collector)",
        }
    }

    /// Parse a command-line name; the error names every allowed value.
    pub fn from_name(name: &str) -> Result<Workload, String> {
        Workload::ALL
            .iter()
            .copied()
            .find(|w| w.name() == name)
            .ok_or_else(|| {
                format!(
                    "unknown workload {name:?}; the workloads are: {}",
                    Workload::ALL
                        .iter()
                        .map(|w| w.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }

    /// Whether the workload runs on a heap (all but `array-writer`).
    pub fn uses_heap(self) -> bool {
        self != Workload::ArrayWriter
    }

    /// Run the workload on `heap`; returns its checksum. `array-writer`
    /// must be run through [`array_writer::run`] instead.
    pub fn run<H: Heap>(self, heap: &mut H, size: Size, knobs: &Knobs) -> u64 {
        match self {
            Workload::GcBench => gcbench::run(heap, size),
            Workload::BinaryTrees => binary_trees::run(heap, size),
            Workload::Histogram => phoenix::histogram::run(heap, size),
            Workload::Kmeans => phoenix::kmeans::run(heap, size),
            Workload::MatrixMultiply => phoenix::matrix_multiply::run(heap, size),
            Workload::Pca => phoenix::pca::run(heap, size),
            Workload::StringMatch => phoenix::string_match::run(heap, size),
            Workload::WordCount => phoenix::word_count::run(heap, size),
            Workload::PointerMutation => pointer_mutation::run(heap, size, knobs),
            Workload::ArrayWriter => {
                panic!("array-writer measures dirty sources directly; it has no heap run")
            }
        }
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
