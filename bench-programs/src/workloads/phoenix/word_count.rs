//! Phoenix word-count: occurrences of every word in a text.
//!
//! Each map task (1 MiB of text) counts words in its own heap-allocated
//! hash table — a [`crate::heap::RefArray`] of buckets chaining
//! [`Node`](crate::heap::Node)s (`value` = count, `aux` = where the word
//! first occurs, `left` = next in chain) — which the reduce step merges
//! into the global table and drops. The checksum covers every (word, count)
//! pair, sorted.

use super::text;
use crate::heap::{Heap, NodeRef, RefArray};
use crate::rng::mix;
use crate::workloads::{Size, SEED};

/// Text bytes for `size` (see the size table in `phoenix`).
pub fn text_bytes(size: Size) -> usize {
    size.pick(256 << 10, 16 << 20, 32 << 20, 64 << 20)
}

/// Bytes of text per map task.
const TASK_BYTES: usize = 1 << 20;
/// Buckets per hash table.
const BUCKETS: usize = 1024;

/// FNV-1a of a word.
fn hash(word: &[u8]) -> u64 {
    word.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Encode a word's position in the text into a node's `aux`.
fn encode(start: usize, len: usize) -> i64 {
    ((start << 8) | len) as i64
}

/// The word a node's `aux` refers to.
fn decode(text: &[u8], aux: i64) -> &[u8] {
    let (start, len) = ((aux >> 8) as usize, (aux & 0xff) as usize);
    &text[start..start + len]
}

/// Add `count` occurrences of `text[start..start+len]` to `table`.
fn add<H: Heap>(heap: &mut H, table: RefArray, text: &[u8], start: usize, len: usize, count: i64) {
    let word = &text[start..start + len];
    let bucket = (hash(word) as usize) % BUCKETS;
    let mut node = table.get(bucket);
    while !node.is_null() {
        if decode(text, node.aux()) == word {
            node.set_value(node.value() + count);
            return;
        }
        node = node.left();
    }
    let entry = heap.alloc_node(table.get(bucket), NodeRef::NULL, count);
    entry.set_aux(encode(start, len));
    heap.set_ref(table, bucket, entry);
}

/// Free a table and its chains (explicit-free heaps).
fn free_table<H: Heap>(heap: &mut H, table: RefArray) {
    if heap.frees_explicitly() {
        for b in 0..table.len() {
            let mut node = table.get(b);
            while !node.is_null() {
                let next = node.left();
                heap.free_node(node);
                node = next;
            }
        }
    }
    heap.free_refs(table);
}

/// Run word-count at `size`; returns the checksum.
pub fn run<H: Heap>(heap: &mut H, size: Size) -> u64 {
    let vocabulary = text::vocabulary(SEED ^ 0x766f);
    let input = text::generate(heap, &vocabulary, text_bytes(size), SEED ^ 0x7763);
    let global = heap.alloc_refs(BUCKETS);
    let mut task_start = 0;
    while task_start < input.len() {
        // End the task at a word boundary.
        let mut end = (task_start + TASK_BYTES).min(input.len());
        while end < input.len() && input[end].is_ascii_lowercase() {
            end += 1;
        }
        let local = heap.alloc_refs(BUCKETS);
        text::for_each_word(&input[task_start..end], |s, l| {
            add(heap, local, &input, task_start + s, l, 1);
            heap.tick();
        });
        for b in 0..BUCKETS {
            let mut node = local.get(b);
            while !node.is_null() {
                let aux = node.aux();
                add(
                    heap,
                    global,
                    &input,
                    (aux >> 8) as usize,
                    (aux & 0xff) as usize,
                    node.value(),
                );
                node = node.left();
                heap.tick();
            }
        }
        free_table(heap, local);
        task_start = end;
    }
    let mut counts: Vec<(u64, u64)> = Vec::new();
    for b in 0..BUCKETS {
        let mut node = global.get(b);
        while !node.is_null() {
            counts.push((hash(decode(&input, node.aux())), node.value() as u64));
            node = node.left();
        }
    }
    counts.sort_unstable();
    free_table(heap, global);
    heap.free_data(input);
    counts
        .iter()
        .fold(mix(0, counts.len() as u64), |c, &(h, n)| mix(mix(c, h), n))
}
