//! AFL++ entry point of the `payload` target (see `fuzz/src/lib.rs`).

fn main() {
    afl::fuzz!(|data: &[u8]| shardex_fuzz::payload(data));
}
