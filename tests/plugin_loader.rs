//! Loading plugins: the example plugins load and describe themselves, and every kind of bad
//! plugin file or path is refused with its own message, without harming the executor process.

mod support;

use std::path::Path;
use std::sync::Arc;

use shardex::plugin::{JobKind, PluginError, PluginLoader};
use shardex_job::abi;
use support::{c_source, compile_c, install_example, sandbox};

fn load_error(loader: &PluginLoader, path: impl AsRef<Path>) -> PluginError {
    match loader.load(path) {
        Ok(plugin) => panic!("expected a load error, got {plugin:?}"),
        Err(error) => error,
    }
}

/// Builds `bad_descriptor.c` with `defines` into `root/file_name`.
fn bad_plugin(root: &Path, file_name: &str, defines: &[&str]) -> std::path::PathBuf {
    let out = root.join(file_name);
    compile_c(&[&c_source("bad_descriptor.c")], &out, defines);
    out
}

#[test]
fn example_plugins_load_and_describe_themselves() {
    let root = sandbox();
    let loader = PluginLoader::new(root.path()).unwrap();
    for (lib, name, kinds) in [
        ("hello_shards", "hello-shards", "simple"),
        ("stream_numbers", "stream-numbers", "dataflow"),
        ("heartbeat", "heartbeat", "simple"),
        ("faulty", "faulty", "simple"),
    ] {
        let file = format!("lib{lib}.so");
        install_example(root.path(), lib, &file);
        let plugin = loader.load(&file).unwrap();
        assert_eq!(plugin.name(), name);
        assert_eq!(plugin.version(), env!("CARGO_PKG_VERSION"));
        assert_eq!(plugin.kinds().to_string(), kinds);
        assert_eq!(
            plugin.path(),
            root.path().canonicalize().unwrap().join(&file)
        );
    }
}

#[test]
fn one_plugin_per_canonical_path() {
    let root = sandbox();
    let path = install_example(root.path(), "hello_shards", "libhello.so");
    std::fs::create_dir(root.path().join("links")).unwrap();
    std::os::unix::fs::symlink(&path, root.path().join("links/alias.so")).unwrap();
    let loader = PluginLoader::new(root.path()).unwrap();

    let first = loader.load("libhello.so").unwrap();
    for other in [
        "./libhello.so".to_owned(),
        path.to_string_lossy().into_owned(),
        "links/alias.so".to_owned(),
    ] {
        let again = loader.load(&other).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "{other} loaded a second copy");
    }
}

#[test]
fn wrong_magic_is_refused_naming_the_file() {
    let root = sandbox();
    let path = bad_plugin(root.path(), "libmagic.so", &["MAGIC=0xDEADBEEFu"]);
    let loader = PluginLoader::new(root.path()).unwrap();
    let error = load_error(&loader, "libmagic.so");
    assert!(matches!(
        error,
        PluginError::BadMagic {
            found: 0xDEAD_BEEF,
            ..
        }
    ));
    assert_eq!(
        error.to_string(),
        format!(
            "{} is not a Shardex job plugin: its descriptor magic is 0xdeadbeef, expected 0x5348584a",
            path.canonicalize().unwrap().display()
        )
    );
}

#[test]
fn wrong_abi_version_is_refused_naming_both_versions() {
    let root = sandbox();
    let path = bad_plugin(root.path(), "libabi2.so", &["ABI=2u"]);
    let loader = PluginLoader::new(root.path()).unwrap();
    let error = load_error(&loader, "libabi2.so");
    assert!(matches!(
        error,
        PluginError::AbiMismatch {
            found: 2,
            supported: 1,
            ..
        }
    ));
    assert_eq!(
        error.to_string(),
        format!(
            "plugin {} was built for Shardex plugin ABI 2, this executor supports 1; rebuild it \
             against the matching shardex-job SDK",
            path.canonicalize().unwrap().display()
        )
    );
}

#[test]
fn descriptor_smaller_than_the_abi_needs_is_refused() {
    let root = sandbox();
    let path = bad_plugin(root.path(), "libsmall.so", &["SIZE=40u"]);
    let loader = PluginLoader::new(root.path()).unwrap();
    assert_eq!(
        load_error(&loader, "libsmall.so").to_string(),
        format!(
            "plugin {} has a 40-byte descriptor, but Shardex plugin ABI 1 needs at least 80 bytes",
            path.canonicalize().unwrap().display()
        )
    );
}

#[test]
fn descriptors_breaking_abi_rules_are_refused() {
    let root = sandbox();
    let loader = PluginLoader::new(root.path()).unwrap();
    for (file, defines, expected) in [
        (
            "libnull.so",
            &["NULL_DESCRIPTOR"][..],
            "plugin {} returned a NULL descriptor from shardex_job_plugin_entry",
        ),
        (
            "libnoexec.so",
            &["NO_EXECUTE"][..],
            "plugin {} has an invalid descriptor: it declares simple jobs but execute is NULL",
        ),
        (
            "libnokinds.so",
            &["KINDS=0u"][..],
            "plugin {} has an invalid descriptor: it declares no job kinds",
        ),
        (
            "libdataflow.so",
            &["KINDS=SHX_KIND_DATAFLOW"][..],
            "plugin {} has an invalid descriptor: it declares dataflow jobs but fetch_data, \
             process_data or free_batch is NULL",
        ),
        (
            "libfuture.so",
            &["KINDS=5u"][..],
            "plugin {} has an invalid descriptor: it declares unknown job kind bits 0x4",
        ),
    ] {
        let path = bad_plugin(root.path(), file, defines);
        let shown = path.canonicalize().unwrap().display().to_string();
        assert_eq!(
            load_error(&loader, file).to_string(),
            expected.replace("{}", &shown)
        );
    }
}

#[test]
fn truncated_library_is_refused_instead_of_crashing_dlopen() {
    let root = sandbox();
    let full = std::fs::read(support::example_plugin("hello_shards")).unwrap();
    let loader = PluginLoader::new(root.path()).unwrap();

    // Shorter than an ELF header.
    std::fs::write(root.path().join("libtiny.so"), &full[..40]).unwrap();
    let shown = root.path().canonicalize().unwrap().join("libtiny.so");
    assert_eq!(
        load_error(&loader, "libtiny.so").to_string(),
        format!(
            "plugin {} is truncated: the ELF header ends at byte 64 but the file has only 40 bytes",
            shown.display()
        )
    );

    // Headers intact, body cut: glibc's dlopen would map missing pages and die of SIGBUS.
    std::fs::write(root.path().join("libcut.so"), &full[..65536]).unwrap();
    let error = load_error(&loader, "libcut.so");
    let PluginError::Truncated {
        what, needed, size, ..
    } = &error
    else {
        panic!("expected Truncated, got {error:?}");
    };
    assert_eq!((what.as_str(), *size), ("the section header table", 65536));
    assert!(*needed <= full.len() as u64 && *needed > 65536);
    let shown = root.path().canonicalize().unwrap().join("libcut.so");
    assert_eq!(
        error.to_string(),
        format!(
            "plugin {} is truncated: the section header table ends at byte {needed} but the file \
             has only 65536 bytes",
            shown.display()
        )
    );
}

#[test]
fn files_that_are_not_shared_libraries_are_refused() {
    let root = sandbox();
    let loader = PluginLoader::new(root.path()).unwrap();
    let canonical = root.path().canonicalize().unwrap();

    std::fs::write(
        root.path().join("libtext.so"),
        "#!/bin/sh\necho not a library\n",
    )
    .unwrap();
    assert_eq!(
        load_error(&loader, "libtext.so").to_string(),
        format!(
            "plugin {} is not a shared library: it does not start with the ELF magic bytes",
            canonical.join("libtext.so").display()
        )
    );

    // A relocatable object file is ELF, but not something dlopen can load.
    let object = root.path().join("plugin.o");
    let status = std::process::Command::new("gcc")
        .args(["-c", "-o"])
        .arg(&object)
        .arg(c_source("no_entry.c"))
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        load_error(&loader, "plugin.o").to_string(),
        format!(
            "plugin {} is not a shared library: it is an ELF file of type 1, not a shared object \
             (type 3)",
            canonical.join("plugin.o").display()
        )
    );
}

#[test]
fn library_without_the_entry_symbol_is_refused() {
    let root = sandbox();
    let path = root.path().join("libplain.so");
    compile_c(&[&c_source("no_entry.c")], &path, &[]);
    let loader = PluginLoader::new(root.path()).unwrap();
    let error = load_error(&loader, "libplain.so");
    let shown = path.canonicalize().unwrap().display().to_string();
    let PluginError::MissingEntry { reason, .. } = &error else {
        panic!("expected MissingEntry, got {error:?}");
    };
    assert!(
        reason.contains("undefined symbol: shardex_job_plugin_entry"),
        "{reason}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "plugin {shown} does not export the entry symbol `shardex_job_plugin_entry` ({reason}); \
             build it with shardex_job::export_plugin! or define the symbol as shardex_job.h describes"
        )
    );
}

#[test]
fn unresolved_symbols_fail_at_load_time() {
    // RTLD_NOW: a missing dependency symbol is a load error, not a crash in the middle of a job.
    let root = sandbox();
    let source = root.path().join("needs_missing.c");
    std::fs::write(
        &source,
        "void missing_function(void);\nvoid call_it(void) { missing_function(); }\n",
    )
    .unwrap();
    let path = root.path().join("libunresolved.so");
    compile_c(&[&source], &path, &[]);
    let loader = PluginLoader::new(root.path()).unwrap();
    let error = load_error(&loader, "libunresolved.so");
    let shown = path.canonicalize().unwrap().display().to_string();
    assert_eq!(
        error.to_string(),
        format!(
            "cannot load plugin {shown}: dlopen failed: {shown}: undefined symbol: missing_function"
        )
    );
}

#[test]
fn paths_escaping_the_root_are_refused() {
    let root = sandbox();
    let outside = sandbox();
    install_example(root.path(), "hello_shards", "libhello.so");
    let outside_lib = install_example(outside.path(), "hello_shards", "libelsewhere.so");
    std::os::unix::fs::symlink(&outside_lib, root.path().join("libescape.so")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("outdir")).unwrap();
    std::fs::create_dir(root.path().join("sub")).unwrap();
    let loader = PluginLoader::new(root.path()).unwrap();
    let canonical_root = root.path().canonicalize().unwrap();
    let canonical_lib = outside_lib.canonicalize().unwrap();
    let r = canonical_root.display();

    let cases: Vec<(String, String)> = vec![
        (
            "../libhello.so".into(),
            format!(
                "plugin path ../libhello.so contains '..'; plugin paths must name a file inside {r} directly"
            ),
        ),
        (
            "sub/../libhello.so".into(),
            format!(
                "plugin path sub/../libhello.so contains '..'; plugin paths must name a file inside {r} directly"
            ),
        ),
        (
            format!("{}/../libhello.so", root.path().display()),
            format!(
                "plugin path {}/../libhello.so contains '..'; plugin paths must name a file inside {r} directly",
                root.path().display()
            ),
        ),
        (
            outside_lib.display().to_string(),
            format!(
                "plugin path {} is outside the allowed plugin root {r}",
                outside_lib.display()
            ),
        ),
        (
            "libescape.so".into(),
            format!(
                "plugin path {r}/libescape.so resolves through a symbolic link to {}, outside the \
                 allowed plugin root {r}",
                canonical_lib.display()
            ),
        ),
        (
            "outdir/libelsewhere.so".into(),
            format!(
                "plugin path {r}/outdir/libelsewhere.so resolves through a symbolic link to {}, \
                 outside the allowed plugin root {r}",
                canonical_lib.display()
            ),
        ),
        (
            "libmissing.so".into(),
            format!("plugin file {r}/libmissing.so not found"),
        ),
        (
            "sub".into(),
            format!("plugin path {r}/sub is not a regular file"),
        ),
        (String::new(), "plugin path is empty".into()),
    ];
    for (path, expected) in cases {
        assert_eq!(
            load_error(&loader, &path).to_string(),
            expected,
            "for {path:?}"
        );
    }
    // None of the refusals loaded anything; the good file still loads.
    assert_eq!(loader.load("libhello.so").unwrap().name(), "hello-shards");
}

#[test]
fn loader_root_must_be_an_existing_directory() {
    let root = sandbox();
    let missing = root.path().join("nope");
    let error = PluginLoader::new(&missing).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "plugin root {} is unusable: No such file or directory (os error 2)",
            missing.display()
        )
    );
}

#[test]
fn kind_check_names_what_the_plugin_offers() {
    let root = sandbox();
    install_example(root.path(), "hello_shards", "libhello.so");
    let loader = PluginLoader::new(root.path()).unwrap();
    let plugin = loader.load("libhello.so").unwrap();
    assert!(plugin.check_kind(JobKind::Simple).is_ok());
    assert_eq!(
        plugin
            .check_kind(JobKind::Dataflow)
            .unwrap_err()
            .to_string(),
        format!(
            "plugin hello-shards ({}) does not implement dataflow jobs; it implements: simple",
            plugin.path().display()
        )
    );
}

#[test]
fn c_header_layout_matches_the_rust_abi() {
    use std::mem::{offset_of, size_of};
    let dir = sandbox();
    let program = dir.path().join("layout");
    support::compile_c_program(&c_source("layout.c"), &program);
    let output = std::process::Command::new(&program).output().unwrap();
    assert!(output.status.success());
    let c: std::collections::BTreeMap<String, usize> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (name, value) = line.rsplit_once(' ').unwrap();
            (name.to_owned(), value.parse().unwrap())
        })
        .collect();
    let rust: Vec<(&str, usize)> = vec![
        ("sizeof(shx_str)", size_of::<abi::Str>()),
        ("sizeof(shx_property)", size_of::<abi::Property>()),
        (
            "offsetof(shx_property, value)",
            offset_of!(abi::Property, value),
        ),
        ("sizeof(shx_job_context)", size_of::<abi::JobContext>()),
        (
            "offsetof(shx_job_context, sharding_total_count)",
            offset_of!(abi::JobContext, sharding_total_count),
        ),
        (
            "offsetof(shx_job_context, sharding_item)",
            offset_of!(abi::JobContext, sharding_item),
        ),
        (
            "offsetof(shx_job_context, job_name)",
            offset_of!(abi::JobContext, job_name),
        ),
        (
            "offsetof(shx_job_context, task_id)",
            offset_of!(abi::JobContext, task_id),
        ),
        (
            "offsetof(shx_job_context, item_parameter)",
            offset_of!(abi::JobContext, item_parameter),
        ),
        (
            "offsetof(shx_job_context, job_parameter)",
            offset_of!(abi::JobContext, job_parameter),
        ),
        (
            "offsetof(shx_job_context, properties)",
            offset_of!(abi::JobContext, properties),
        ),
        (
            "offsetof(shx_job_context, property_count)",
            offset_of!(abi::JobContext, property_count),
        ),
        (
            "offsetof(shx_job_context, work_dir)",
            offset_of!(abi::JobContext, work_dir),
        ),
        ("sizeof(shx_host_api)", size_of::<abi::HostApi>()),
        (
            "offsetof(shx_host_api, abi_version)",
            offset_of!(abi::HostApi, abi_version),
        ),
        (
            "offsetof(shx_host_api, host_ctx)",
            offset_of!(abi::HostApi, host_ctx),
        ),
        ("offsetof(shx_host_api, log)", offset_of!(abi::HostApi, log)),
        (
            "offsetof(shx_host_api, is_cancelled)",
            offset_of!(abi::HostApi, is_cancelled),
        ),
        (
            "offsetof(shx_host_api, progress)",
            offset_of!(abi::HostApi, progress),
        ),
        (
            "offsetof(shx_host_api, set_error)",
            offset_of!(abi::HostApi, set_error),
        ),
        (
            "sizeof(shx_plugin_descriptor)",
            size_of::<abi::PluginDescriptor>(),
        ),
        (
            "offsetof(shx_plugin_descriptor, abi_version)",
            offset_of!(abi::PluginDescriptor, abi_version),
        ),
        (
            "offsetof(shx_plugin_descriptor, descriptor_size)",
            offset_of!(abi::PluginDescriptor, descriptor_size),
        ),
        (
            "offsetof(shx_plugin_descriptor, kinds)",
            offset_of!(abi::PluginDescriptor, kinds),
        ),
        (
            "offsetof(shx_plugin_descriptor, name)",
            offset_of!(abi::PluginDescriptor, name),
        ),
        (
            "offsetof(shx_plugin_descriptor, version)",
            offset_of!(abi::PluginDescriptor, version),
        ),
        (
            "offsetof(shx_plugin_descriptor, create)",
            offset_of!(abi::PluginDescriptor, create),
        ),
        (
            "offsetof(shx_plugin_descriptor, destroy)",
            offset_of!(abi::PluginDescriptor, destroy),
        ),
        (
            "offsetof(shx_plugin_descriptor, execute)",
            offset_of!(abi::PluginDescriptor, execute),
        ),
        (
            "offsetof(shx_plugin_descriptor, fetch_data)",
            offset_of!(abi::PluginDescriptor, fetch_data),
        ),
        (
            "offsetof(shx_plugin_descriptor, process_data)",
            offset_of!(abi::PluginDescriptor, process_data),
        ),
        (
            "offsetof(shx_plugin_descriptor, free_batch)",
            offset_of!(abi::PluginDescriptor, free_batch),
        ),
        ("SHX_MAGIC", abi::MAGIC as usize),
        ("SHX_ABI_VERSION", abi::ABI_VERSION as usize),
        ("SHX_KIND_SIMPLE", abi::KIND_SIMPLE as usize),
        ("SHX_KIND_DATAFLOW", abi::KIND_DATAFLOW as usize),
        ("SHX_OK", abi::STATUS_OK as usize),
        ("SHX_ERROR", abi::STATUS_ERROR as usize),
        ("SHX_PANIC", abi::STATUS_PANIC as usize),
        ("SHX_LOG_ERROR", abi::LOG_ERROR as usize),
        ("SHX_LOG_TRACE", abi::LOG_TRACE as usize),
    ];
    assert_eq!(
        c.len(),
        rust.len(),
        "layout.c and this test list different items"
    );
    for (name, value) in rust {
        assert_eq!(c.get(name), Some(&value), "{name}");
    }
}
