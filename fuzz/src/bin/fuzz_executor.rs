//! AFL++ entry point of the `executor` target (see `fuzz/src/lib.rs`).

fn main() {
    afl::fuzz!(|data: &[u8]| shardex_fuzz::executor(data));
}
