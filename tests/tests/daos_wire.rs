//! DAOS's wire format, checked by a client that does not share our `.proto` files: a Python
//! program (`tests/python/daos_wire_check.py`, Debian's python3-grpcio and python3-protobuf)
//! builds its messages from DAOS's field numbers and talks to a real daos_server.

use daos_tests::*;

/// Debian's Python with the grpc and protobuf modules (scripts/setup.sh installs them).
const PYTHON: &str = "/usr/bin/python3";

#[test]
fn an_independent_daos_client_is_served_and_understood() {
    let has_modules = std::process::Command::new(PYTHON)
        .args(["-c", "import grpc, google.protobuf"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_modules {
        eprintln!(
            "SKIPPED an_independent_daos_client_is_served_and_understood: {PYTHON} lacks grpc/protobuf (run scripts/setup.sh)"
        );
        return;
    }
    let sys = System::new(1);
    let mut server = sys.start_joined();
    let script = repo_root().join("tests/python/daos_wire_check.py");
    let out = std::process::Command::new(PYTHON)
        .arg(&script)
        .arg(format!("127.0.0.1:{}", sys.port))
        .output()
        .expect("python");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert_eq!(out.status.code(), Some(0), "{text}\nlog:\n{}", sys.log());
    assert!(text.contains("all checks passed"), "{text}");
    sys.stop(&mut server);
}
