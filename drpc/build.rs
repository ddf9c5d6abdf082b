//! Generates the dRPC protobuf types. Needs `protoc` (Debian: protobuf-compiler, installed by
//! scripts/setup.sh).

fn main() {
    let proto_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto");
    let files = ["drpc.proto", "srv.proto", "mgmt_drpc.proto"].map(|f| proto_dir.join(f));
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    if let Err(e) = prost_build::compile_protos(&files, &[&proto_dir]) {
        eprintln!("error: cannot compile the .proto files: {e}");
        eprintln!(
            "fix: install protoc (apt-get install protobuf-compiler, or run scripts/setup.sh)"
        );
        std::process::exit(1);
    }
}
