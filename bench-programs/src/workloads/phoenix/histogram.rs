//! Phoenix histogram: per-channel (R, G, B) histograms of a 24-bit bitmap.
//!
//! The "image" is generated: smooth colour gradients plus noise. Each map
//! task (a 192 KiB strip) counts into its own heap-allocated partial
//! histogram, which the reduce step adds to the total.

use crate::heap::Heap;
use crate::rng::{mix, Rng};
use crate::workloads::{Size, SEED};

/// Bytes per map task (a multiple of 3: whole pixels).
const TASK_BYTES: usize = 3 * 65536;

/// Image bytes for `size` (see the size table in `phoenix`).
pub fn image_bytes(size: Size) -> usize {
    size.pick(1, 32, 160, 480) << 20
}

/// Run histogram at `size`; returns the checksum.
pub fn run<H: Heap>(heap: &mut H, size: Size) -> u64 {
    let bytes = image_bytes(size) / 3 * 3;
    let mut image = heap.alloc_data::<u8>(bytes);
    let mut rng = Rng::new(SEED ^ 0x4157);
    for (pixel, rgb) in image.chunks_exact_mut(3).enumerate() {
        let noise = rng.next_u64();
        let x = (pixel % 1024) as u64;
        let y = (pixel / 1024) as u64;
        rgb[0] = ((x >> 2) + (noise & 15)) as u8;
        rgb[1] = ((y >> 2) + ((noise >> 8) & 31)) as u8;
        rgb[2] = ((x + y) >> 3) as u8 ^ (noise >> 16) as u8 & 7;
        if pixel % 64 == 0 {
            heap.tick();
        }
    }

    let mut total = heap.alloc_data::<u64>(768);
    for task in image.chunks(TASK_BYTES) {
        let mut partial = heap.alloc_data::<u64>(768);
        for (pixel, rgb) in task.chunks_exact(3).enumerate() {
            partial[rgb[0] as usize] += 1;
            partial[256 + rgb[1] as usize] += 1;
            partial[512 + rgb[2] as usize] += 1;
            if pixel % 64 == 0 {
                heap.tick();
            }
        }
        for (t, p) in total.iter_mut().zip(partial.iter()) {
            *t += *p;
        }
        heap.free_data(partial);
        heap.tick();
    }
    let checksum = total.iter().fold(0, |c, &n| mix(c, n));
    assert_eq!(total[..256].iter().sum::<u64>() as usize, bytes / 3);
    heap.free_data(total);
    heap.free_data(image);
    checksum
}
