//! Generates every protobuf type of daos-rs. Needs `protoc` (Debian: protobuf-compiler,
//! installed by scripts/setup.sh).
//!
//! The dRPC payloads (`drpc`, `srv`, and the engine side of `mgmt`) and the gRPC API (`shared`,
//! `ctl`, `mgmt`) are generated into separate directories: both sides have a `mgmt` package.

use std::path::{Path, PathBuf};

fn fail(e: std::io::Error) -> ! {
    eprintln!("error: cannot compile the .proto files: {e}");
    eprintln!("fix: install protoc (apt-get install protobuf-compiler, or run scripts/setup.sh)");
    std::process::exit(1);
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let drpc = ["drpc.proto", "srv.proto", "mgmt_drpc.proto", "auth.proto"].map(|f| dir.join(f));
    let grpc = [
        "shared.proto",
        "ctl.proto",
        "mgmt.proto",
        "raft.proto",
        "rank.proto",
        "cont.proto",
        "google_rpc.proto",
    ]
    .map(|f| dir.join(f));
    for f in drpc.iter().chain(&grpc) {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    for sub in ["drpc", "grpc"] {
        if let Err(e) = std::fs::create_dir_all(out.join(sub)) {
            fail(e);
        }
    }
    if let Err(e) = prost_build::Config::new()
        .out_dir(out.join("drpc"))
        .compile_protos(&drpc, &[dir])
    {
        fail(e);
    }
    if let Err(e) = tonic_prost_build::configure()
        .out_dir(out.join("grpc"))
        .compile_protos(&grpc, &[dir.to_path_buf()])
    {
        fail(e);
    }
}
