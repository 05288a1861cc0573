//! Generates the gRPC clients and servers from `proto/micronode/v1/*.proto` with the `protoc`
//! shipped by `protoc-bin-vendored`, so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // prost-build finds protoc through this variable; it only affects this build script.
    std::env::set_var("PROTOC", protoc);
    let protos = [
        "proto/micronode/v1/lightning.proto",
        "proto/micronode/v1/tokens.proto",
        "proto/micronode/v1/admin.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(&protos, &["proto"])?;
    Ok(())
}
