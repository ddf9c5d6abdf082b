//! Links libpmem (the SCM mapping) and checks the `spdk` feature's SPDK. Needs libpmem-dev
//! (scripts/setup.sh installs it).

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
    if let Err(e) = pkg_config::Config::new().probe("libpmem") {
        eprintln!("error: libpmem not found through pkg-config: {e}");
        eprintln!("fix: apt-get install libpmem-dev (or run scripts/setup.sh)");
        std::process::exit(1);
    }
}
