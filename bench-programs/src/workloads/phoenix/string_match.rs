//! Phoenix string-match: which words of a text match any of four keys,
//! compared after the same "encryption" (a keyed byte transform).
//!
//! As in Phoenix, every word of the text is copied into a freshly allocated
//! buffer and encrypted there before the comparison, so the kernel is a
//! stream of small short-lived allocations over a large long-lived input.

use super::text;
use crate::heap::Heap;
use crate::rng::mix;
use crate::workloads::{Size, SEED};

/// Text bytes for `size` (see the size table in `phoenix`).
pub fn text_bytes(size: Size) -> usize {
    size.pick(256 << 10, 16 << 20, 32 << 20, 64 << 20)
}

/// The keyed transform applied to keys and words alike.
fn encrypt(bytes: &mut [u8]) {
    let mut state = 0x5au8;
    for b in bytes.iter_mut() {
        state = state.rotate_left(3) ^ *b;
        *b = state.wrapping_mul(31).wrapping_add(7);
    }
}

/// Run string-match at `size`; returns the checksum.
pub fn run<H: Heap>(heap: &mut H, size: Size) -> u64 {
    let vocabulary = text::vocabulary(SEED ^ 0x766f);
    let input = text::generate(heap, &vocabulary, text_bytes(size), SEED ^ 0x736d);
    // Four keys: three common words and one that is never generated.
    let mut keys: Vec<Vec<u8>> = vec![
        vocabulary[0].clone(),
        vocabulary[7].clone(),
        vocabulary[99].clone(),
        b"helloworldzz".to_vec(),
    ];
    for key in keys.iter_mut() {
        encrypt(key);
    }
    let mut matches = [0u64; 4];
    let mut words = 0u64;
    text::for_each_word(&input, |start, len| {
        let mut word = heap.alloc_data::<u8>(len);
        word.copy_from_slice(&input[start..start + len]);
        encrypt(&mut word);
        for (k, key) in keys.iter().enumerate() {
            if key[..] == word[..] {
                matches[k] += 1;
            }
        }
        heap.free_data(word);
        words += 1;
    });
    heap.free_data(input);
    assert_eq!(
        matches[3], 0,
        "string-match: a key absent from the vocabulary matched"
    );
    matches.iter().fold(mix(0, words), |c, &m| mix(c, m))
}
