//! Generates the gRPC types from `pluis.proto` without a system `protoc`:
//! `protox` parses the schema into a descriptor set in pure Rust, and
//! tonic's prost builder turns that into code. The descriptor set is kept in
//! `OUT_DIR` so that the node can serve gRPC reflection from it.

use std::{env, fs, path::PathBuf};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=pluis.proto");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let fds = protox::compile(["pluis.proto"], ["."])?;
    fs::write(out_dir.join("pluis_descriptor.bin"), fds.encode_to_vec())?;
    // What reflection on the network port shows: everything but the Admin
    // service, which is served only on the node's own Unix socket.
    let mut network = fds.clone();
    for file in &mut network.file {
        file.service
            .retain(|service| service.name.as_deref() != Some("Admin"));
    }
    fs::write(
        out_dir.join("pluis_network_descriptor.bin"),
        network.encode_to_vec(),
    )?;

    // Message types always; the tonic stubs only with the `grpc` feature,
    // so that the crate needs no async runtime for the protocol core.
    let grpc = env::var_os("CARGO_FEATURE_GRPC").is_some();
    tonic_prost_build::configure()
        .build_client(grpc)
        .build_server(grpc)
        .codec_path("crate::codec::PluisCodec")
        .compile_fds(fds)?;
    Ok(())
}
