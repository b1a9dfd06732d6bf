//! Compiles every `proto/brook/v1/*.proto` with the vendored protoc, so building brook needs no
//! protoc on the machine, and writes the file descriptor set the reflection service serves.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let package_dir = proto_root.join("brook/v1");
    let mut protos = Vec::new();
    for entry in std::fs::read_dir(&package_dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "proto") {
            protos.push(path);
        }
    }
    // Sorted, so the generated code and descriptor set do not depend on directory order.
    protos.sort();
    // A directory here means "any file beneath it", so a new .proto file also triggers a rebuild.
    println!("cargo:rerun-if-changed={}", package_dir.display());
    println!("cargo:rerun-if-changed=build.rs");
    let descriptor_path = PathBuf::from(std::env::var("OUT_DIR")?).join("brook_descriptor.bin");

    // prost-build finds protoc through $PROTOC. Build scripts run single-threaded, so setting
    // the variable here cannot race another thread reading the environment.
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);

    tonic_prost_build::configure()
        // Keys, values and raw batches stay `Bytes`, so the server hands log bytes to the
        // socket without copying them into a `Vec`.
        .bytes(".brook.v1")
        .file_descriptor_set_path(&descriptor_path)
        .compile_protos(&protos, &[proto_root])?;
    Ok(())
}
