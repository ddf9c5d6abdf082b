//! Generates the libfabric bindings hw/ uses (fi_getinfo and the info structs) with bindgen,
//! and links libfabric. Needs libfabric-dev and libclang-dev (scripts/setup.sh installs them).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_SPDK").is_some() {
        if let Err(e) = pkg_config::Config::new().probe("spdk_nvme") {
            eprintln!("error: the `spdk` feature needs SPDK, which was not found: {e}");
            eprintln!(
                "fix: SPDK is not packaged for Debian; build it from source (./configure --with-shared && make),"
            );
            eprintln!(
                "     set PKG_CONFIG_PATH to its build/lib/pkgconfig, and give the engine hugepages and vfio-pci;"
            );
            eprintln!(
                "     or build without `--features spdk` and use bdev classes file, kdev or malloc"
            );
            std::process::exit(1);
        }
        eprintln!(
            "error: SPDK was found, but the SPDK NVMe backend is not implemented in this version of daos-rs"
        );
        std::process::exit(1);
    }
    let lib = match pkg_config::Config::new()
        .atleast_version("1.10")
        .probe("libfabric")
    {
        Ok(lib) => lib,
        Err(e) => {
            eprintln!("error: libfabric >= 1.10 not found through pkg-config: {e}");
            eprintln!("fix: apt-get install libfabric-dev (or run scripts/setup.sh)");
            std::process::exit(1);
        }
    };
    if let Err(e) = pkg_config::Config::new().probe("libpmem") {
        eprintln!("error: libpmem not found through pkg-config: {e}");
        eprintln!("fix: apt-get install libpmem-dev (or run scripts/setup.sh)");
        std::process::exit(1);
    }
    let mut builder = bindgen::Builder::default()
        .header_contents("wrapper.h", "#include <rdma/fabric.h>\n")
        .allowlist_function("fi_getinfo|fi_freeinfo|fi_strerror|fi_version")
        .allowlist_type("fi_info|fi_ep_type")
        .rustified_enum("fi_ep_type")
        .layout_tests(false)
        .generate_comments(false);
    for path in &lib.include_paths {
        builder = builder.clang_arg(format!("-I{}", path.display()));
    }
    let bindings = match builder.generate() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: bindgen could not read <rdma/fabric.h>: {e}");
            eprintln!("fix: apt-get install libfabric-dev libclang-dev (or run scripts/setup.sh)");
            std::process::exit(1);
        }
    };
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into()));
    if let Err(e) = bindings.write_to_file(out.join("fabric_sys.rs")) {
        eprintln!("error: cannot write the libfabric bindings: {e}");
        std::process::exit(1);
    }
}
