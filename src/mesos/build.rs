//! Compiles `proto/` into Rust with prost-build, parsing the .proto files with protox so that the
//! build never needs a system `protoc`. The encoded descriptor set is kept next to the generated
//! code: the JSON codec and the required-field checks in `mesos::reflect` walk it at run time.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "../../proto/mesos/v1/mesos.proto",
        "../../proto/mesos/v1/executor/executor.proto",
        "../../proto/mesos/v1/scheduler/scheduler.proto",
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={file}");
    }

    let descriptors = protox::compile(files, ["../../proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("mesos_descriptor_set.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;

    // Type names let the reflection helpers find each message's descriptor from its Rust type.
    // AgentInfo is written by hand (agent_info.rs) to reproduce the field order a
    // real agent sends.
    prost_build::Config::new()
        .enable_type_names()
        .extern_path(".mesos.v1.AgentInfo", "crate::agent_info::AgentInfo")
        .compile_fds(descriptors)?;
    Ok(())
}
