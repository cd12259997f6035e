//! The C allocator's settings for a long-running scheduler.
//!
//! glibc's malloc raises its mmap threshold each time a block above it is freed (the "dynamic"
//! threshold, up to 32 MiB), and from then on serves blocks of that size from its arenas, where
//! memory that is freed mostly stays resident. A scheduler answering an OFFERS event of 1,000
//! offers a second (plus the ACCEPTs, the updates and the store commits that follow) grew to
//! 2.1 GiB resident in 30 s while its heap never exceeded about 114 MiB (heaptrack): forty
//! arenas of 55 MiB. With both thresholds fixed at glibc's initial 128 KiB, large blocks keep
//! mappings of their own, returned when freed, and arenas give back what is free above
//! 128 KiB: 151 MiB resident for the same run (`benches/harness/scale.rs`).

/// The mmap and trim thresholds, glibc's initial mmap threshold.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const THRESHOLD_BYTES: i32 = 128 * 1024;

/// Fixes malloc's thresholds (glibc only; elsewhere nothing). Call once at start.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes parameters of the process's allocator; both are
        // documented tunables taking a byte count.
        unsafe {
            nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, THRESHOLD_BYTES);
            nix::libc::mallopt(nix::libc::M_TRIM_THRESHOLD, THRESHOLD_BYTES);
        }
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    fn mmapped_blocks() -> usize {
        // SAFETY: mallinfo2 reads the allocator's statistics; it has no preconditions.
        unsafe { nix::libc::mallinfo2() }.hblks
    }

    #[test]
    fn large_blocks_keep_mappings_of_their_own_after_a_larger_one_was_freed() {
        tune();
        // Freeing this would raise glibc's dynamic threshold to 8 MiB.
        drop(std::hint::black_box(vec![1u8; 8 << 20]));
        // Other tests allocate concurrently: a few tries, each of which must see the new
        // block mapped on its own.
        let mapped = (0..5).any(|_| {
            let before = mmapped_blocks();
            let block = std::hint::black_box(vec![1u8; 1 << 20]);
            let after = mmapped_blocks();
            drop(block);
            after > before
        });
        assert!(
            mapped,
            "a 1 MiB block came from an arena, not a mapping of its own"
        );
    }
}
