//! The README's reference names everything the code accepts: every scheduler config field,
//! REST endpoint and metric (`CONFIG_FIELDS`, `ENDPOINTS`, `metric_names`), the embedded
//! agent's `/files` endpoints (`AGENT_FILES_ENDPOINTS`) and every
//! command-line flag of every binary (as their `--help` lists them). Adding one without documenting it fails here.

mod support;

use shardex::scheduler::{CONFIG_FIELDS, ENDPOINTS, metric_names};

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

#[test]
fn every_config_field_is_documented() {
    let readme = readme();
    let missing: Vec<&str> = CONFIG_FIELDS
        .iter()
        .copied()
        .filter(|field| {
            // apps[].cpus is documented as the row `cpus` of the app table, and so on.
            let documented = match field.split_once("[].") {
                Some((_, name)) => format!("| `{name}` |"),
                None => format!("| `{field}` |"),
            };
            !readme.contains(&documented)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "undocumented config fields: {missing:?}"
    );
}

#[test]
fn every_metric_is_documented() {
    let readme = readme();
    let names = metric_names();
    assert!(names.len() > 20, "{names:?}");
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| !readme.contains(&format!("`{name}")))
        .collect();
    assert!(missing.is_empty(), "undocumented metrics: {missing:?}");
}

#[test]
fn every_endpoint_is_documented() {
    let readme = readme();
    let missing: Vec<String> = ENDPOINTS
        .iter()
        .map(|(method, path)| format!("`{method} {path}`"))
        .filter(|endpoint| !readme.contains(endpoint.as_str()))
        .collect();
    assert!(missing.is_empty(), "undocumented endpoints: {missing:?}");
}

#[test]
fn every_embedded_agent_files_endpoint_is_documented() {
    let readme = readme();
    let missing: Vec<String> = shardex::local::AGENT_FILES_ENDPOINTS
        .iter()
        .map(|(method, path)| format!("`{method} {path}`"))
        .filter(|endpoint| !readme.contains(endpoint.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "undocumented embedded agent endpoints: {missing:?}"
    );
}

/// The long flags a binary's `--help` lists.
fn flags(binary: &str, args: &[&str]) -> Vec<String> {
    let output = std::process::Command::new(support::package_binary(binary))
        .args(args)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("run {binary} --help: {e}"));
    assert!(output.status.success(), "{binary} --help failed");
    let help = String::from_utf8(output.stdout).unwrap();
    // Option lines look like `  -h, --help` or `      --idle-timeout <IDLE_TIMEOUT>`.
    let mut flags: Vec<String> = help
        .lines()
        .map(str::trim_start)
        .filter(|line| line.starts_with('-'))
        .filter_map(|line| {
            line.split([' ', ',', '='])
                .find(|word| word.starts_with("--") && word.len() > 2)
                .map(str::to_owned)
        })
        .filter(|flag| flag != "--help" && flag != "--version")
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

#[test]
fn every_command_line_flag_is_documented() {
    let readme = readme();
    let mut missing = Vec::new();
    let mut seen = 0;
    for (binary, args) in [
        ("shardex-executor", &[][..]),
        ("shardex-scheduler", &[][..]),
        ("shardex-scheduler", &["demo"][..]),
        ("shardex-scheduler", &["store", "migrate"][..]),
        ("shardex-scheduler", &["ha", "status"][..]),
        ("shardex-scheduler", &["ctl"][..]),
        ("shardex-scheduler", &["ctl", "runs"][..]),
        ("shardex-scheduler", &["ctl", "logs"][..]),
        ("shardex-local", &[][..]),
    ] {
        let flags = flags(binary, args);
        assert!(!flags.is_empty(), "{binary} {args:?} lists no flags");
        for flag in flags {
            seen += 1;
            if !readme.contains(&format!("`{flag}")) {
                missing.push(format!("{binary} {}{flag}", args.join(" ") + " "));
            }
        }
    }
    assert!(seen > 20, "only {seen} flags found");
    assert!(missing.is_empty(), "undocumented flags: {missing:?}");
}
