//! AFL++ entry point of the `scheduler` target (see `fuzz/src/lib.rs`).

fn main() {
    afl::fuzz!(|data: &[u8]| shardex_fuzz::scheduler(data));
}
