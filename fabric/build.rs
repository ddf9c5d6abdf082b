//! Generates the libfabric bindings (the endpoint API and the info structs) with bindgen,
//! and links libfabric. Needs libfabric-dev and libclang-dev (scripts/setup.sh installs them).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
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
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into()));
    let header = out.join("fabric_wrapper.h");
    let wrapper = "#include <rdma/fabric.h>\n#include <rdma/fi_domain.h>\n#include <rdma/fi_endpoint.h>\n\
                   #include <rdma/fi_cm.h>\n#include <rdma/fi_eq.h>\n#include <rdma/fi_errno.h>\n#include <rdma/fi_rma.h>\n#include <rdma/fi_tagged.h>\n";
    if let Err(e) = std::fs::write(&header, wrapper) {
        eprintln!("error: cannot write {}: {e}", header.display());
        std::process::exit(1);
    }
    let shims = out.join("fabric_shims.c");
    // Most of libfabric's API is static inline; bindgen wraps those in C shims we compile.
    let mut builder = bindgen::Builder::default()
        .header(header.display().to_string())
        .allowlist_function(
            "fi_getinfo|fi_freeinfo|fi_dupinfo|fi_allocinfo|fi_strerror|fi_version|fi_fabric|fi_domain|fi_endpoint|fi_cq_open|fi_av_open|fi_ep_bind|fi_enable|fi_getname|fi_av_insert|fi_send|fi_recv|fi_cq_read|fi_cq_readerr|fi_close|fi_mr_reg|fi_mr_desc|fi_mr_key|fi_read|fi_write|fi_senddata|fi_tsend|fi_trecv",
        )
        .allowlist_type("fi_info|fi_ep_type|fi_cq_attr|fi_av_attr|fi_cq_msg_entry|fi_cq_tagged_entry|fi_cq_err_entry|fid_mr")
        .rustified_enum("fi_ep_type")
        .wrap_static_fns(true)
        .wrap_static_fns_path(&shims)
        .layout_tests(false)
        .generate_comments(false);
    for path in &lib.include_paths {
        builder = builder.clang_arg(format!("-I{}", path.display()));
    }
    let bindings = match builder.generate() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: bindgen could not read the libfabric headers: {e}");
            eprintln!("fix: apt-get install libfabric-dev libclang-dev (or run scripts/setup.sh)");
            std::process::exit(1);
        }
    };
    let mut cc = cc::Build::new();
    cc.file(shims.with_extension("c"))
        .include(&out)
        .warnings(false);
    for path in &lib.include_paths {
        cc.include(path);
    }
    cc.compile("fabric_shims");
    if let Err(e) = bindings.write_to_file(out.join("fabric_sys.rs")) {
        eprintln!("error: cannot write the libfabric bindings: {e}");
        std::process::exit(1);
    }
}
