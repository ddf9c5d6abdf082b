//! The fabric check: ping-pong over the same RDM endpoints the engine uses, in fi_pingpong's
//! columns, optionally against the real `fi_pingpong` (libfabric-bin) run with the same
//! provider, sizes and iteration count, so the ratio is measured on the same machine, in the
//! same run.
//!
//! Both sides run in this process (a server thread and the client) over loopback; the numbers
//! are per one-way transfer, as fi_pingpong reports them.

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use daos_fabric::{EndpointError, Peer, RdmEndpoint};
use serde::Serialize;

use crate::stats::{Summary, summarize};

const STOP: &[u8] = b"END";

/// One size's result.
#[derive(Clone, Debug, Serialize)]
pub struct SizeResult {
    pub bytes: usize,
    pub iterations: usize,
    /// Microseconds per one-way transfer over the repeats.
    pub usec_per_xfer: Summary,
    /// MB/s of the median repeat.
    pub mb_per_sec: f64,
    /// Heap allocations per round trip in the measured loops, both sides (`null` without the
    /// counting allocator).
    pub allocations_per_op: Option<f64>,
    /// fi_pingpong's usec/xfer and MB/s, when compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<Reference>,
    /// Our usec/xfer over fi_pingpong's (below 1 is faster), and our MB/s over theirs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bandwidth_ratio: Option<f64>,
}

/// What fi_pingpong measured.
#[derive(Clone, Debug, Serialize)]
pub struct Reference {
    pub usec_per_xfer: f64,
    pub mb_per_sec: f64,
}

fn free_port() -> std::io::Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()
        .map(|a| a.port())
}

/// The local address the kernel would use to reach `ip`.
fn local_ip_towards(ip: std::net::Ipv4Addr) -> std::io::Result<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
    s.connect((ip, 9))?;
    Ok(s.local_addr()?.ip())
}

fn send(ep: &mut RdmEndpoint, peer: Peer, data: &[u8], deadline: Instant) -> Result<(), String> {
    loop {
        match ep.send(peer, data) {
            Ok(()) => return Ok(()),
            Err(EndpointError::Again | EndpointError::Busy(_)) if Instant::now() < deadline => {
                ep.poll(|_| {}).map_err(|e| e.to_string())?;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn recv_into(ep: &mut RdmEndpoint, buf: &mut Vec<u8>, deadline: Instant) -> Result<(), String> {
    let mut got = false;
    while !got {
        if Instant::now() > deadline {
            return Err("no message within the deadline".into());
        }
        ep.poll(|m| {
            buf.clear();
            buf.extend_from_slice(m);
            got = true;
        })
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Sends `msg` and waits for the echo in `buf`.
fn round_trip(
    ep: &mut RdmEndpoint,
    peer: Peer,
    msg: &[u8],
    buf: &mut Vec<u8>,
) -> Result<(), String> {
    send(ep, peer, msg, Instant::now() + Duration::from_secs(30))?;
    recv_into(ep, buf, Instant::now() + Duration::from_secs(30))
}

const HELLO: &[u8] = b"HELO";
/// The largest message a `--server` echoes.
pub const SERVER_MAX_MESSAGE: usize = 1 << 20;
const OK: &[u8] = b"OK";

/// Serves ping-pong clients on `ip:port`: a client introduces itself with `HELO` and its
/// address, then every message is echoed until `END`. With `once`, returns after one client.
/// `ready` is told the endpoint is listening.
pub fn serve(
    provider: &str,
    ip: std::net::Ipv4Addr,
    port: u16,
    max: usize,
    once: bool,
    ready: Option<mpsc::Sender<()>>,
) -> Result<(), String> {
    let mut ep = RdmEndpoint::open(
        provider,
        Some(&ip.to_string()),
        Some(&port.to_string()),
        max.max(64),
        4,
        4,
    )
    .map_err(|e| e.to_string())?;
    if let Some(r) = ready {
        let _ = r.send(());
    }
    let mut buf = Vec::with_capacity(max);
    let mut peer: Option<Peer> = None;
    loop {
        recv_into(
            &mut ep,
            &mut buf,
            Instant::now() + Duration::from_secs(3600),
        )?;
        match peer {
            None if buf.starts_with(HELLO) => {
                let p = ep
                    .insert_peer(&buf[HELLO.len()..])
                    .map_err(|e| e.to_string())?;
                send(&mut ep, p, OK, Instant::now() + Duration::from_secs(30))?;
                peer = Some(p);
            }
            None => {}
            Some(_) if buf == STOP => {
                if once {
                    return Ok(());
                }
                peer = None;
            }
            Some(p) if buf.starts_with(HELLO) => {
                // The client did not see our OK and asked again.
                send(&mut ep, p, OK, Instant::now() + Duration::from_secs(30))?;
            }
            Some(p) => send(&mut ep, p, &buf, Instant::now() + Duration::from_secs(60))?,
        }
    }
}

/// Connects to a server at `ip:port` and runs the ping-pong for every size; `repeat` runs of
/// `iterations` round trips each.
pub fn client(
    provider: &str,
    ip: std::net::Ipv4Addr,
    port: u16,
    sizes: &[usize],
    iterations: usize,
    repeat: usize,
    runtime: Option<Duration>,
) -> Result<Vec<SizeResult>, String> {
    let max = sizes.iter().copied().max().unwrap_or(64).max(64);
    // With a runtime, each repeat of each size gets an equal share of it instead of a fixed
    // number of round trips.
    let share = runtime.map(|d| d / (sizes.len() * repeat).max(1) as u32);
    // Bind to the local address that routes to the server, so the name the server learns in
    // `HELO` matches the connection it sees (a wildcard name makes the provider open a second,
    // slow connection back).
    let local = local_ip_towards(ip).map_err(|e| format!("no route to {ip}:{port}: {e}"))?;
    let mut ep = RdmEndpoint::open(provider, Some(&local.to_string()), None, max, 4, 4)
        .map_err(|e| e.to_string())?;
    let peer = ep
        .insert_peer(&daos_fabric::sockaddr_in(ip, port))
        .map_err(|e| e.to_string())?;
    let mut hello = HELLO.to_vec();
    hello.extend_from_slice(&ep.name().map_err(|e| e.to_string())?);
    let mut buf = Vec::with_capacity(max);
    // Greet until the server answers: a refused connection shows up as a send that never
    // completes, so both sending and waiting are retried within one overall deadline.
    let give_up = Instant::now() + Duration::from_secs(10);
    let mut last_err = String::from("no reply");
    loop {
        if Instant::now() > give_up {
            return Err(format!(
                "no answer from a daos_bench fabric server at {ip}:{port} ({last_err}); start one there with `daos_bench fabric --server --addr {ip} --port {port}`"
            ));
        }
        let attempt = Instant::now() + Duration::from_millis(500);
        match send(&mut ep, peer, &hello, attempt) {
            Ok(()) => match recv_into(&mut ep, &mut buf, attempt) {
                Ok(()) if buf == OK => break,
                Ok(()) => last_err = "unexpected reply".into(),
                Err(e) => last_err = e,
            },
            Err(e) => last_err = e,
        }
    }
    let mut results = Vec::new();
    for &size in sizes {
        let msg: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        // Warm up: first-touch costs stay out of the numbers.
        for _ in 0..iterations.min(100) {
            round_trip(&mut ep, peer, &msg, &mut buf)?;
        }
        let mut per_xfer = Vec::with_capacity(repeat);
        let mut mbs = Vec::with_capacity(repeat);
        let mut progress = crate::Progress::new(format!("ping-pong {}", crate::human(size)));
        let allocs_before = crate::alloc_count::allocations();
        let mut round_trips = 0usize;
        for run in 0..repeat {
            progress.tick(Instant::now(), run as f64 / repeat as f64);
            let t = Instant::now();
            let mut n = 0usize;
            while match share {
                Some(d) => n == 0 || t.elapsed() < d,
                None => n < iterations,
            } {
                round_trip(&mut ep, peer, &msg, &mut buf)?;
                n += 1;
            }
            let us = t.elapsed().as_secs_f64() * 1e6;
            if buf != msg {
                return Err(format!("{size}-byte message came back changed"));
            }
            per_xfer.push(us / (2 * n) as f64);
            mbs.push((size * n * 2) as f64 / us);
            round_trips += n;
        }
        let iterations = round_trips / repeat;
        let allocations_per_op = crate::alloc_count::per_op(
            allocs_before,
            crate::alloc_count::allocations(),
            round_trips as u64,
        );
        progress.finish();
        let summary = summarize(&mut per_xfer);
        let mb = summarize(&mut mbs).median;
        results.push(SizeResult {
            bytes: size,
            iterations,
            usec_per_xfer: summary,
            mb_per_sec: mb,
            allocations_per_op,
            reference: None,
            latency_ratio: None,
            bandwidth_ratio: None,
        });
    }
    send(
        &mut ep,
        peer,
        STOP,
        Instant::now() + Duration::from_secs(10),
    )?;
    // Let the last send complete before the endpoint closes.
    let deadline = Instant::now() + Duration::from_secs(5);
    while ep.sends_in_flight() > 0 && Instant::now() < deadline {
        ep.poll(|_| {}).map_err(|e| e.to_string())?;
    }
    Ok(results)
}

/// Both sides in this process, over loopback.
pub fn run(
    provider: &str,
    sizes: &[usize],
    iterations: usize,
    repeat: usize,
    runtime: Option<Duration>,
) -> Result<Vec<SizeResult>, String> {
    let max = sizes.iter().copied().max().unwrap_or(64).max(64);
    let port = free_port().map_err(|e| e.to_string())?;
    let ip = std::net::Ipv4Addr::LOCALHOST;
    let (ready_tx, ready_rx) = mpsc::channel();
    let prov = provider.to_string();
    let server = std::thread::spawn(move || serve(&prov, ip, port, max, true, Some(ready_tx)));
    if ready_rx.recv_timeout(Duration::from_secs(10)).is_err() {
        return Err(server
            .join()
            .map_err(|_| "server thread panicked".to_string())?
            .err()
            .unwrap_or_else(|| "server did not start".into()));
    }
    let results = client(provider, ip, port, sizes, iterations, repeat, runtime)?;
    server
        .join()
        .map_err(|_| "server thread panicked".to_string())??;
    Ok(results)
}

/// fi_pingpong's client line for one size: (usec/xfer, MB/s).
pub fn parse_fi_pingpong(output: &str, size: usize) -> Option<(f64, f64)> {
    output.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 8 || parse_size_token(f[0])? != size {
            return None;
        }
        Some((f[6].parse().ok()?, f[5].parse().ok()?))
    })
}

/// fi_pingpong's size column: `64`, `1k`, `64k`, `1m`.
fn parse_size_token(t: &str) -> Option<usize> {
    let (n, mul) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1024),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    n.parse::<usize>().ok().map(|v| v * mul)
}

/// Runs the real fi_pingpong (server and client on loopback) for one size. fi_pingpong has no
/// warm-up, so its first transfer includes connection set-up: use enough iterations (1000+)
/// for a fair ratio.
pub fn fi_pingpong(provider: &str, size: usize, iterations: usize) -> Result<Reference, String> {
    let base = provider.split(';').next().unwrap_or(provider);
    let port = free_port().map_err(|e| e.to_string())?.to_string();
    let common = [
        "-p",
        base,
        "-e",
        "rdm",
        "-I",
        &iterations.to_string(),
        "-S",
        &size.to_string(),
    ];
    let mut server = Command::new("fi_pingpong")
        .args(common)
        .args(["-B", &port])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run fi_pingpong: {e} (apt-get install libfabric-bin)"))?;
    std::thread::sleep(Duration::from_millis(300));
    let client = Command::new("fi_pingpong")
        .args(common)
        .args(["-P", &port, "127.0.0.1"])
        .output();
    let _ = server.kill();
    let _ = server.wait();
    let out = client.map_err(|e| format!("cannot run fi_pingpong: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (us, mb) = parse_fi_pingpong(&text, size).ok_or_else(|| {
        format!(
            "fi_pingpong printed no result for {size} bytes: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok(Reference {
        usec_per_xfer: us,
        mb_per_sec: mb,
    })
}

/// `s` padded to `width`, and always followed by at least one space, so wide values (long
/// `--runtime` counts) never run into the next column.
fn col(s: String, width: usize) -> String {
    if s.len() < width {
        format!("{s:<width$}")
    } else {
        s + " "
    }
}

/// fi_pingpong's table for our results.
pub fn table(results: &[SizeResult]) -> String {
    use crate::human;
    let mut out = format!(
        "{:<8}{:<7}{:<6}{:<8}{:<7}{:<10}{:<11}{:<11}{}\n",
        "bytes",
        "#sent",
        "#ack",
        "total",
        "time",
        "MB/sec",
        "usec/xfer",
        "Mxfers/sec",
        "vs fi_pingpong (latency, bandwidth)"
    );
    for r in results {
        let us = r.usec_per_xfer.median;
        let time = us * (2 * r.iterations) as f64 / 1e6;
        let vs = match (r.latency_ratio, r.bandwidth_ratio) {
            (Some(l), Some(b)) => format!("{l:.2}x, {b:.2}x"),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "{}{}{}{}{}{:<10.2}{:<11.2}{:<11.2}{}\n",
            col(human(r.bytes), 8),
            col(r.iterations.to_string(), 7),
            col(format!("={}", r.iterations), 6),
            col(human(r.bytes * r.iterations * 2), 8),
            col(format!("{time:.2}s"), 7),
            r.mb_per_sec,
            us,
            1.0 / us,
            vs
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fi_pingpong_lines() {
        let out = "bytes #sent #ack total time  MB/sec   usec/xfer Mxfers/sec\n64    10    =10  1.2k  0.00s 4.76     13.45     0.07\n1m    10    =10  20m   0.00s 15263.11 68.70     0.01\n";
        assert_eq!(parse_fi_pingpong(out, 64), Some((13.45, 4.76)));
        assert_eq!(parse_fi_pingpong(out, 1 << 20), Some((68.70, 15263.11)));
        assert_eq!(parse_fi_pingpong(out, 4096), None);
    }
}
