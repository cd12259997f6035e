//! AFL++ entry point of the `recordio` target (see `fuzz/src/lib.rs`).

fn main() {
    afl::fuzz!(|data: &[u8]| shardex_fuzz::recordio(data));
}
