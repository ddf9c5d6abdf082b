//! `dmg network check`: the fabric check (`daos_bench fabric`, fi_pingpong's measurement over
//! the engine's own endpoints) between two hosts. daos_server on the first host starts a
//! ping-pong server for one client on its engine's fabric interface; daos_server on the second
//! runs the client against it and returns the results.
//!
//! Both run `daos_bench` from the directory of the daos_server binary, so the measured code is
//! the benchmark's, with its JSON.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use daos_config::Server;

use crate::exit::CmdError;

/// How long a started server waits for its client before it is stopped.
pub const SERVE_LIMIT: Duration = Duration::from_secs(300);

fn daos_bench() -> Result<PathBuf, CmdError> {
    let exe = std::env::current_exe()
        .map_err(|e| CmdError::new(format!("cannot find this executable: {e}")))?;
    let bench = exe.with_file_name("daos_bench");
    if !bench.exists() {
        return Err(CmdError::new(format!(
            "the fabric check needs daos_bench next to daos_server ({} not found)",
            bench.display()
        ))
        .fix("install daos_bench in the same directory as daos_server"));
    }
    Ok(bench)
}

/// The libfabric provider to use: the request's, else the config's.
pub fn provider(config: &Server, requested: &str) -> String {
    if !requested.is_empty() {
        return daos_engine::target::libfabric_provider(requested);
    }
    daos_engine::target::libfabric_provider(config.provider.as_deref().unwrap_or("ofi+tcp;ofi_rxm"))
}

/// Starts a server for one client; returns `ip:port`.
pub fn serve(config: &Server, provider: &str) -> Result<String, CmdError> {
    let bench = daos_bench()?;
    let iface = config
        .engines
        .first()
        .map(|e| e.fabric_iface.clone())
        .unwrap_or_else(|| "lo".into());
    let ip = daos_engine::interface_address(&iface)
        .filter(std::net::IpAddr::is_ipv4)
        .ok_or_else(|| {
            CmdError::new(format!(
                "fabric interface {iface:?} has no IPv4 address for the fabric check"
            ))
        })?;
    let port = TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| CmdError::new(format!("no free port on {ip}: {e}")))?;
    let mut child = Command::new(&bench)
        .args(["fabric", "--server", "--once", "-p", provider])
        .args(["--addr", &ip.to_string(), "--port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| CmdError::new(format!("cannot start {}: {e}", bench.display())))?;
    let stdout = child.stdout.take();
    let mut first = String::new();
    if let Some(out) = stdout {
        let _ = BufReader::new(out).read_line(&mut first);
    }
    if !first.contains("listening") {
        let _ = child.kill();
        let _ = child.wait();
        return Err(CmdError::new(format!(
            "the fabric check server did not start on {ip}:{port} with provider {provider}"
        )));
    }
    // It leaves after its client; a client that never comes is not waited for forever.
    std::thread::spawn(move || {
        let deadline = Instant::now() + SERVE_LIMIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = child.kill();
        let _ = child.wait();
    });
    Ok(format!("{ip}:{port}"))
}

/// Runs the client against `address`; returns the benchmark's JSON document.
pub fn run(
    address: &str,
    provider: &str,
    sizes: &str,
    iterations: u32,
) -> Result<String, CmdError> {
    let bench = daos_bench()?;
    let json = std::env::temp_dir().join(format!(
        "daos_network_check_{}_{}.json",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    let mut cmd = Command::new(&bench);
    cmd.args([
        "fabric", "--client", address, "-p", provider, "--repeat", "1",
    ])
    .args(["--json", json.to_str().unwrap_or_default()])
    .stdin(Stdio::null());
    if !sizes.is_empty() {
        cmd.args(["--sizes", sizes]);
    }
    if iterations > 0 {
        cmd.args(["-I", &iterations.to_string()]);
    }
    let out = cmd
        .output()
        .map_err(|e| CmdError::new(format!("cannot run {}: {e}", bench.display())))?;
    let doc = std::fs::read_to_string(&json);
    let _ = std::fs::remove_file(&json);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(CmdError::new(format!(
            "fabric check against {address} failed: {}",
            err.trim().trim_start_matches("ERROR: ")
        )));
    }
    doc.map_err(|e| CmdError::new(format!("fabric check wrote no results: {e}")))
}
