//! A real program for the collector to run under: serde_json round trips,
//! regex matching, hashbrown maps, crossbeam channels between threads and
//! rayon parallel iterators, all allocating through the global allocator.
//!
//! [`run`] returns a digest of everything the program computed, built so
//! that it does not depend on thread scheduling (parallel parts combine
//! with order-independent sums). The same digest under `GcAllocator` with
//! forced collections and under the system allocator shows that the
//! collector freed nothing the program still used.

use crate::rng::{mix, Rng};
use rayon::prelude::*;
use std::fmt;

/// The digests of the parts of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkloadDigest {
    /// serde_json serialise / parse round trips.
    pub json: u64,
    /// regex captures over generated log lines.
    pub regex: u64,
    /// hashbrown word counts.
    pub maps: u64,
    /// Messages through crossbeam channels from producer threads.
    pub channels: u64,
    /// rayon parallel map/reduce and parallel sort.
    pub rayon: u64,
}

impl WorkloadDigest {
    /// All parts folded into one number.
    pub fn combined(&self) -> u64 {
        [self.json, self.regex, self.maps, self.channels, self.rayon]
            .iter()
            .fold(0, |acc, &p| mix(acc ^ p))
    }
}

impl fmt::Display for WorkloadDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "digest={:016x} json={:016x} regex={:016x} maps={:016x} channels={:016x} rayon={:016x}",
            self.combined(),
            self.json,
            self.regex,
            self.maps,
            self.channels,
            self.rayon
        )
    }
}

/// FNV-1a over bytes.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

fn json_part(scale: usize) -> u64 {
    let mut h = 0u64;
    for i in 0..scale * 40 {
        let doc = serde_json::json!({
            "id": i,
            "name": format!("item-{i}"),
            "tags": (0..i % 7).map(|t| format!("t{t}")).collect::<Vec<_>>(),
            "nested": {
                "ratio": i as f64 * 0.5,
                "list": (0..i % 13).collect::<Vec<_>>(),
                "flag": i % 3 == 0,
            }
        });
        let text = serde_json::to_string(&doc).expect("serialise");
        let back: serde_json::Value = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, doc, "json round trip changed document {i}");
        let pretty = serde_json::to_string_pretty(&back).expect("pretty");
        h = mix(h ^ fnv(text.as_bytes()) ^ fnv(pretty.as_bytes()).rotate_left(17));
    }
    h
}

fn log_line(i: usize) -> String {
    format!(
        "user{}@host{}.com visited /path/{} at {:02}:{:02} status {}",
        i * 31 % 1000,
        i % 7,
        i,
        i % 24,
        i % 60,
        [200, 404, 500][i % 3]
    )
}

fn regex_part(scale: usize) -> u64 {
    let re = regex::Regex::new(
        r"^(\w+)@(\w+)\.com visited /path/(\d+) at (\d\d):(\d\d) status (\d{3})$",
    )
    .expect("regex");
    let errors = regex::Regex::new(r"status 5\d\d").expect("regex");
    let mut h = 0u64;
    let mut server_errors = 0u64;
    for i in 0..scale * 200 {
        let line = log_line(i);
        let caps = re.captures(&line).expect("every generated line matches");
        let path: u64 = caps[3].parse().expect("digits");
        assert_eq!(path, i as u64);
        h = mix(h ^ fnv(caps[1].as_bytes()) ^ fnv(caps[2].as_bytes()) ^ path);
        if errors.is_match(&line) {
            server_errors += 1;
        }
    }
    mix(h ^ server_errors)
}

fn maps_part(scale: usize) -> u64 {
    let mut rng = Rng::new(42);
    let words: Vec<String> = (0..300).map(|i| format!("w{}", mix(i) % 10_000)).collect();
    let mut counts: hashbrown::HashMap<String, u64> = hashbrown::HashMap::new();
    let mut by_len: hashbrown::HashMap<usize, Vec<String>> = hashbrown::HashMap::new();
    for _ in 0..scale * 2000 {
        let w = &words[rng.below(words.len() as u64) as usize];
        *counts.entry(w.clone()).or_insert(0) += 1;
        if rng.below(8) == 0 {
            by_len.entry(w.len()).or_default().push(w.clone());
        }
        if rng.below(64) == 0 {
            // Removal and re-insertion churn the table's memory.
            let victim = &words[rng.below(words.len() as u64) as usize];
            counts.remove(victim);
        }
    }
    let mut entries: Vec<(&String, &u64)> = counts.iter().collect();
    entries.sort();
    let mut h = entries
        .iter()
        .fold(0, |acc, (k, v)| mix(acc ^ fnv(k.as_bytes()) ^ **v));
    let mut lens: Vec<(usize, usize)> = by_len.iter().map(|(k, v)| (*k, v.len())).collect();
    lens.sort();
    for (k, n) in lens {
        h = mix(h ^ (k as u64) << 32 ^ n as u64);
    }
    h
}

fn channels_part(scale: usize) -> u64 {
    let (tx, rx) = crossbeam_channel::bounded::<(u64, String, Vec<u64>)>(16);
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<u64>();
    let producers: Vec<_> = (0..4u64)
        .map(|p| {
            let tx = tx.clone();
            let done_tx = done_tx.clone();
            std::thread::spawn(move || {
                let mut sent = 0;
                for i in 0..(scale as u64) * 300 {
                    let id = p << 32 | i;
                    let payload: Vec<u64> = (0..(i % 17)).map(|k| mix(id ^ k)).collect();
                    tx.send((id, format!("msg {p}/{i}"), payload))
                        .expect("send");
                    sent += 1;
                }
                done_tx.send(sent).expect("send count");
            })
        })
        .collect();
    drop(tx);
    drop(done_tx);
    let mut sum = 0u64;
    let mut received = 0u64;
    for (id, text, payload) in rx.iter() {
        let expected: Vec<u64> = (0..((id & 0xFFFF_FFFF) % 17))
            .map(|k| mix(id ^ k))
            .collect();
        assert_eq!(payload, expected, "message {id:#x} arrived changed");
        sum = sum.wrapping_add(mix(id ^ fnv(text.as_bytes())));
        received += 1;
    }
    let sent: u64 = done_rx.iter().sum();
    for p in producers {
        p.join().expect("producer panicked");
    }
    assert_eq!(sent, received);
    mix(sum ^ received)
}

fn rayon_part(scale: usize) -> u64 {
    let n = scale * 4000;
    let reduced = (0..n)
        .into_par_iter()
        .map(|i| {
            let v: Vec<u64> = (0..(i % 32) as u64).map(|k| mix(i as u64 ^ k)).collect();
            mix(v.iter().fold(0u64, |a, &x| a.wrapping_add(x)))
        })
        .reduce(|| 0u64, u64::wrapping_add);
    let mut names: Vec<String> = (0..n / 4).map(|i| format!("{:x}", mix(i as u64))).collect();
    names.par_sort();
    let sorted = names
        .iter()
        .fold(0u64, |acc, s| mix(acc ^ fnv(s.as_bytes())));
    let total_len: usize = names.par_iter().map(|s| s.len()).sum();
    mix(reduced ^ sorted ^ total_len as u64)
}

/// Run the program at `scale` (1 is a fraction of a second; work grows
/// linearly) and return the digests of its outputs.
pub fn run(scale: usize) -> WorkloadDigest {
    WorkloadDigest {
        json: json_part(scale),
        regex: regex_part(scale),
        maps: maps_part(scale),
        channels: channels_part(scale),
        rayon: rayon_part(scale),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_deterministic_and_depends_on_the_work() {
        let a = run(1);
        let b = run(1);
        assert_eq!(a, b);
        assert_ne!(a.combined(), run(2).combined());
    }
}
