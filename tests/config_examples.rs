//! The configuration examples are valid: the files shipped under packaging/ and every scheduler
//! configuration snippet in the README and the guides. And the systemd unit keeps a fenced-out
//! scheduler down.

use std::path::Path;

use shardex::scheduler::Config;

fn packaging(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging")
        .join(name)
}

#[test]
fn example_configs_are_valid() {
    let mut checked = 0;
    for entry in std::fs::read_dir(packaging("config")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let config = Config::from_toml(&text, &path.display().to_string())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            !config.jobs.is_empty(),
            "{} registers no job",
            path.display()
        );
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

/// ```toml blocks of a Markdown file.
fn toml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn configuration_snippets_in_the_docs_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for doc in [
        "README.md",
        "docs/writing-job-plugins.md",
        "docs/running-on-mesos.md",
    ] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        for block in toml_blocks(&text) {
            // Cargo manifests are TOML too; scheduler configurations are the rest.
            if block.contains("[package]") || block.contains("[dependencies]") {
                continue;
            }
            Config::from_toml(&block, doc).unwrap_or_else(|e| panic!("{doc}:\n{block}\n{e}"));
            checked += 1;
        }
    }
    assert!(checked >= 2, "only {checked} snippets found");
}
