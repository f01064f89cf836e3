//! Seeded text from a fixed vocabulary, for string-match and word-count.

use crate::heap::{DataBuf, Heap};
use crate::rng::Rng;

/// Words in the vocabulary.
pub const VOCABULARY_WORDS: u64 = 1000;

/// The vocabulary: `VOCABULARY_WORDS` distinct-enough lowercase words of
/// 2..=10 letters, the same for every run.
pub fn vocabulary(seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    (0..VOCABULARY_WORDS)
        .map(|_| {
            let len = 2 + rng.below(9) as usize;
            (0..len).map(|_| b'a' + rng.below(26) as u8).collect()
        })
        .collect()
}

/// `bytes` of text: vocabulary words with a skewed (Zipf-like) frequency,
/// separated by spaces and the odd newline; padded with spaces.
pub fn generate<H: Heap>(
    heap: &mut H,
    vocabulary: &[Vec<u8>],
    bytes: usize,
    seed: u64,
) -> DataBuf<u8> {
    let mut text = heap.alloc_data::<u8>(bytes);
    let mut rng = Rng::new(seed);
    let n = vocabulary.len() as u64;
    let mut at = 0;
    while at < bytes {
        // The product of two uniforms favours small indices.
        let index = (rng.below(n) * rng.below(n) / n) as usize;
        let word = &vocabulary[index];
        let take = word.len().min(bytes - at);
        text[at..at + take].copy_from_slice(&word[..take]);
        at += take;
        if at < bytes {
            text[at] = if rng.below(12) == 0 { b'\n' } else { b' ' };
            at += 1;
        }
        heap.tick();
    }
    text
}

/// Split `text` into words (maximal runs of lowercase letters), calling
/// `f(start, len)` for each.
pub fn for_each_word(text: &[u8], mut f: impl FnMut(usize, usize)) {
    let mut start = None;
    for (i, &b) in text.iter().enumerate() {
        match (b.is_ascii_lowercase(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                f(s, i - s);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        f(s, text.len() - s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::malloc::MallocHeap;

    #[test]
    fn text_is_made_of_vocabulary_words() {
        let vocab = vocabulary(1);
        let mut heap = MallocHeap::new();
        let text = generate(&mut heap, &vocab, 4096, 2);
        let mut words = 0;
        for_each_word(&text[..4000], |s, l| {
            words += 1;
            let w = &text[s..s + l];
            // A word cut at the 4000 boundary may be a prefix.
            assert!(vocab.iter().any(|v| v.starts_with(w)), "{:?}", w);
        });
        assert!(words > 300);
        heap.free_data(text);
    }
}
