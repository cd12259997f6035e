//! Every kept input of every target, replayed: the seeds the fuzzer starts from, and the
//! inputs of every failure it found (`fuzz/regressions/<target>/`), each fixed since.

use std::path::Path;

#[test]
fn every_kept_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut replayed = 0;
    for (name, target) in shardex_fuzz::TARGETS {
        for kind in ["seeds", "regressions"] {
            let dir = root.join(kind).join(name);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("a readable directory entry").path();
                let data = std::fs::read(&path).expect("a readable input");
                eprintln!("{name}: {}", path.display());
                target(&data);
                replayed += 1;
            }
        }
    }
    assert!(
        replayed >= shardex_fuzz::TARGETS.len(),
        "each target has a seed"
    );
}
