//! AFL++ entry point of the `json` target (see `fuzz/src/lib.rs`).

fn main() {
    afl::fuzz!(|data: &[u8]| shardex_fuzz::json(data));
}
