//! The README's scheduler reference names every config field and every REST endpoint the code
//! accepts (`CONFIG_FIELDS`, `ENDPOINTS`).

use shardex::scheduler::{CONFIG_FIELDS, ENDPOINTS};

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
fn every_endpoint_is_documented() {
    let readme = readme();
    let missing: Vec<String> = ENDPOINTS
        .iter()
        .map(|(method, path)| format!("`{method} {path}`"))
        .filter(|endpoint| !readme.contains(endpoint.as_str()))
        .collect();
    assert!(missing.is_empty(), "undocumented endpoints: {missing:?}");
}
