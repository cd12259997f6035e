//! `docs/writing-job-plugins.md` works as written: its Rust plugin, laid out next to a checkout
//! as the guide says, builds and passes its own test; its C plugin compiles and packs with the
//! guide's commands; the packaging script's pointers into the README lead somewhere.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn guide() -> String {
    std::fs::read_to_string(repo().join("docs/writing-job-plugins.md")).unwrap()
}

/// The body of the first ```` ```lang ```` block after `marker` in `text`.
fn block_after(text: &str, marker: &str, lang: &str) -> String {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("the guide has no {marker:?}"));
    let fence = format!("```{lang}\n");
    let start = at
        + text[at..]
            .find(&fence)
            .unwrap_or_else(|| panic!("no ```{lang} block after {marker:?}"))
        + fence.len();
    let end = start + text[start..].find("\n```").unwrap();
    text[start..end].to_owned()
}

/// `work/shardex` (this checkout) and an empty `work/<name>`, as the guide lays them out.
fn layout(work: &Path, name: &str) -> PathBuf {
    let checkout = work.join("shardex");
    if !checkout.exists() {
        std::os::unix::fs::symlink(repo(), &checkout).unwrap();
    }
    let dir = work.join(name);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    dir
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("the command starts");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{command:?} failed:\n{text}");
    text
}

#[test]
fn the_rust_plugin_of_the_guide_builds_and_passes_its_test() {
    let guide = guide();
    let work = tempfile::tempdir().unwrap();
    let crate_dir = layout(work.path(), "word-count");
    std::fs::write(
        crate_dir.join("Cargo.toml"),
        block_after(&guide, "`Cargo.toml`:", "toml"),
    )
    .unwrap();
    let library = block_after(&guide, "`src/lib.rs`:", "rust");
    let test = block_after(&guide, "### 3. Test it without an executor", "rust");
    std::fs::write(
        crate_dir.join("src/lib.rs"),
        format!("{library}\n\n{test}\n"),
    )
    .unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = run(Command::new(cargo)
        .args(["test", "--offline", "--quiet"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", work.path().join("target"))
        .env_remove("RUSTFLAGS"));
    assert!(output.contains("1 passed"), "{output}");
}

#[test]
fn the_c_plugin_of_the_guide_compiles_and_packs_with_its_commands() {
    let guide = guide();
    let work = tempfile::tempdir().unwrap();
    let dir = layout(work.path(), "hello-c");
    std::fs::write(dir.join("hello.c"), block_after(&guide, "## In C", "c")).unwrap();
    let commands = block_after(&guide, "## In C", "sh");
    let output = run(Command::new("sh")
        .args(["-ec", &commands])
        .current_dir(&dir));
    assert!(!output.contains("warning"), "{output}");
    assert!(dir.join("libhello_c.so").is_file());
    assert!(dir.join("dist/hello-c-0.1.0.tar.gz").is_file(), "{output}");
}

#[test]
fn the_packaging_scripts_point_at_readme_sections_that_exist() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let headings: Vec<&str> = readme
        .lines()
        .filter_map(|line| line.strip_prefix('#'))
        .map(|line| line.trim_start_matches('#').trim())
        .collect();
    let mut pointers = 0;
    for script in std::fs::read_dir(repo().join("packaging")).unwrap() {
        let path = script.unwrap().path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        // `see README, "Section"` (possibly broken over comment lines).
        let flat = text
            .replace("\n#", " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for (_, rest) in flat
            .match_indices("see README, \"")
            .map(|(i, _)| flat.split_at(i + 13))
        {
            let section = &rest[..rest.find('"').unwrap()];
            pointers += 1;
            assert!(
                headings.contains(&section),
                "{} points at README section {section:?}, which does not exist",
                path.display()
            );
        }
    }
    assert!(pointers >= 1, "no pointer checked");
}
