//! Generates the control-plane gRPC services (tonic). Needs `protoc` (scripts/setup.sh).

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto");
    let files = ["shared.proto", "ctl.proto", "mgmt.proto"].map(|f| dir.join(f));
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    if let Err(e) =
        tonic_prost_build::configure().compile_protos(&files, std::slice::from_ref(&dir))
    {
        eprintln!("error: cannot compile the .proto files: {e}");
        eprintln!(
            "fix: install protoc (apt-get install protobuf-compiler, or run scripts/setup.sh)"
        );
        std::process::exit(1);
    }
}
