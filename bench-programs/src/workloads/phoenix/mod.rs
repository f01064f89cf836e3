//! The six Phoenix kernels the OoH paper ran under Boehm GC, written from
//! their published descriptions (Ranger et al., HPCA'07), single-threaded,
//! on synthetic seeded inputs, with the MapReduce structure kept: the input
//! is cut into map tasks whose intermediate results are allocated on the
//! heap and merged (reduced), so the collector sees Phoenix's allocation
//! pattern of large long-lived inputs plus short-lived partial results.
//!
//! Sizes, against the paper's Table II (S / M / L), scaled so that a run
//! takes ~0.1-2 s here:
//!
//! | kernel | paper | here (tiny / S / M / L) |
//! |---|---|---|
//! | histogram | 0.1 / 0.5 / 1.5 GB bitmap | 1 / 32 / 160 / 480 MiB of RGB bytes (1/3.2) |
//! | kmeans | -p 500 / 1K / 5K (-s 100) | 2K / 100K / 200K / 1M points, 3-D, 16 means |
//! | matrix-multiply | 500 / 1K / 2K | 48 / 640 / 1000 / 1600 square |
//! | pca | -r/-c 1K / 5K / 10K | 48 / 768 / 1024 / 1536 square (the covariance is O(r^2 c)) |
//! | string-match | 50 / 100 / 200 MB | 0.25 / 16 / 32 / 64 MiB of text (1/3) |
//! | word-count | 50 / 100 / 200 MB | 0.25 / 16 / 32 / 64 MiB of text (1/3) |

pub mod histogram;
pub mod kmeans;
pub mod matrix_multiply;
pub mod pca;
pub mod string_match;
pub mod text;
pub mod word_count;
