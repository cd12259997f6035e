//! The configuration examples shipped under packaging/ are valid, and the systemd unit keeps a
//! fenced-out scheduler down.

use std::path::Path;

use shardex::scheduler::Config;

fn packaging(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging").join(name)
}

#[test]
fn example_configs_are_valid() {
    let mut checked = 0;
    for entry in std::fs::read_dir(packaging("config")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let config = Config::from_toml(&text, &path.display().to_string())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!config.jobs.is_empty(), "{} registers no job", path.display());
        checked += 1;
    }
    assert_eq!(checked, 2, "local.toml and mesos.toml");
}

#[test]
fn the_systemd_unit_does_not_restart_a_fenced_out_scheduler() {
    let unit = std::fs::read_to_string(packaging("systemd/shardex-scheduler.service")).unwrap();
    assert!(unit.contains("\nRestart=on-failure\n"));
    assert!(unit.contains("\nRestartPreventExitStatus=3\n"));
    assert!(unit.contains("--config /etc/shardex/scheduler.toml"));
}
