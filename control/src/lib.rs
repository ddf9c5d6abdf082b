//! A small client of the management API, shared by `dmg`, `daos`, `daos_bench` and client
//! applications: the control config, where the hosts are and how to reach them (TLS or not),
//! calls to the management service and to every host concurrently under one deadline, the
//! exit codes, host lists, DAOS's tables and the `-j` output.

pub mod cli;
pub mod exit;
pub mod forward;
pub mod hostlist;
pub mod input;
pub mod interop;
pub mod logging;
pub mod props;
pub mod redirect;
pub mod table;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use daos_config::control::Control;
use daos_proto::mgmt::mgmt_svc_client::MgmtSvcClient;
use serde_json::{Value, json};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::exit::CmdError;
use crate::table::render;

/// The version of the tools and servers.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How long a call to all hosts may take in all (DAOS: 5 minutes for a dmg command).
pub const CALL_DEADLINE: Duration = Duration::from_secs(300);

/// The client config: `-o` path, else the default path if present, else defaults.
pub fn load_control(path: Option<&std::path::Path>) -> Result<Control, CmdError> {
    use daos_config::control;
    match path {
        Some(p) => control::load_file(p).map_err(CmdError::from),
        None if std::path::Path::new(control::DEFAULT_CONTROL_PATH).exists() => {
            control::load_file(std::path::Path::new(control::DEFAULT_CONTROL_PATH))
                .map_err(CmdError::from)
        }
        None => Ok(Control::default()),
    }
}

/// TLS with `t`'s CA and the `who` certificate (its key no more open than `key_mode`),
/// verifying the server's certificate name `server` as DAOS does.
fn client_tls(
    t: &daos_config::control::ClientTransport,
    who: &str,
    key_mode: u32,
) -> Result<ClientTlsConfig, CmdError> {
    let ca = read_pem(&t.ca_cert, "CA certificate", None)?;
    let cert = read_pem(&t.cert, &format!("{who} certificate"), None)?;
    let key = read_pem(&t.key, &format!("{who} key"), Some(key_mode))?;
    Ok(ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .identity(Identity::from_pem(cert, key))
        .domain_name("server"))
}

/// Where to connect and how.
#[derive(Clone)]
pub struct Target {
    pub hosts: Vec<String>,
    pub tls: Option<ClientTlsConfig>,
    /// The component this tool's calls say they come from (`admin`, `agent`); the server
    /// takes the certificate's name over it in secure mode.
    pub component: &'static str,
    /// Calls go through the daos_agent at this socket (client processes) instead of
    /// connecting with a certificate of their own.
    pub agent: Option<std::path::PathBuf>,
}

/// A connection to a host's management API whose every call carries this tool's component
/// and DAOS version ([`interop`]).
pub type Conn = tonic::service::interceptor::InterceptedService<forward::Transport, Stamp>;

/// Adds `x-daos-component` / `x-daos-version` to each call.
#[derive(Clone, Copy, Debug)]
pub struct Stamp {
    pub component: &'static str,
}

impl tonic::service::Interceptor for Stamp {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let md = req.metadata_mut();
        md.insert(
            interop::COMPONENT_HEADER,
            tonic::metadata::MetadataValue::from_static(self.component),
        );
        md.insert(
            interop::VERSION_HEADER,
            tonic::metadata::MetadataValue::from_static(interop::DAOS_VERSION),
        );
        Ok(req)
    }
}

/// What a command produced: text for people, JSON for scripts, and whether all went well.
pub struct Output {
    pub text: String,
    pub json: Value,
    pub ok: bool,
    pub error: Option<String>,
}

impl Target {
    /// From the control config, `-l` and `-i`.
    pub fn new(
        control: &Control,
        host_list: Option<&str>,
        insecure: bool,
    ) -> Result<Target, CmdError> {
        if host_list.is_some_and(|l| l.trim().is_empty()) {
            return Err(CmdError {
                message: "-l/--host-list is empty".into(),
                fix: Some("name at least one host, e.g. -l localhost:10001".into()),
                code: crate::exit::ExitCode::Usage,
            });
        }
        let list = host_list
            .map(str::to_string)
            .unwrap_or_else(|| control.hostlist.join(","));
        let hosts = crate::hostlist::expand(&list, control.port).map_err(|e| {
            CmdError::new(format!("-l/--host-list {list:?}: {e}"))
                .fix("write hosts like node-[1-4] or 10.0.0.1:10001,10.0.0.2")
        })?;
        let tls = if insecure || control.transport_config.allow_insecure {
            None
        } else {
            Some(client_tls(&control.transport_config, "admin", 0o440)?)
        };
        Ok(Target {
            hosts,
            tls,
            component: "admin",
            agent: None,
        })
    }

    pub async fn channel(&self, host: &str) -> Result<Channel, String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut ep = Channel::from_shared(format!("{scheme}://{host}"))
            .map_err(|e| format!("bad address {host}: {e}"))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(180));
        if let Some(tls) = &self.tls {
            ep = ep
                .tls_config(tls.clone())
                .map_err(|e| format!("TLS setup: {e}"))?;
        }
        ep.connect().await.map_err(|e| {
            let mut msg = format!("unable to connect to {host}: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            format!("{msg} (is daos_server running there, and are both sides secure or both insecure (-i)?)")
        })
    }

    /// daos_agent's view of the management service: `hosts` with the agent's certificate
    /// (`transport_config` of daos_agent.yml), or plaintext when `insecure`.
    pub fn for_agent(
        hosts: Vec<String>,
        t: &daos_config::control::ClientTransport,
        insecure: bool,
    ) -> Result<Target, CmdError> {
        let tls = if insecure || t.allow_insecure {
            None
        } else {
            Some(client_tls(t, "agent", 0o400)?)
        };
        Ok(Target {
            hosts,
            tls,
            component: "agent",
            agent: None,
        })
    }

    /// A client process's view: `hosts` reached through the daos_agent at `socket`.
    pub fn via_agent(hosts: Vec<String>, socket: std::path::PathBuf) -> Target {
        Target {
            hosts,
            tls: None,
            component: "agent",
            agent: Some(socket),
        }
    }

    /// A connection to `host` whose calls say which component they come from.
    pub async fn conn(&self, host: &str) -> Result<Conn, String> {
        let transport = match &self.agent {
            Some(socket) => forward::Transport::Agent(forward::AgentTransport {
                socket: socket.clone(),
                host: host.to_string(),
            }),
            None => forward::Transport::Direct(self.channel(host).await?),
        };
        Ok(tonic::service::interceptor::InterceptedService::new(
            transport,
            Stamp {
                component: self.component,
            },
        ))
    }

    /// The host that answers system-wide (management service) calls.
    pub fn ms_host(&self) -> &str {
        self.hosts
            .first()
            .map(String::as_str)
            .unwrap_or("localhost:10001")
    }
}

pub fn status_text(s: tonic::Status) -> String {
    let hint = "check that daos_server runs there and that both sides agree on TLS \
                (certificates on both, or -i / allow_insecure on both)";
    match s.code() {
        tonic::Code::Unavailable => format!("unable to reach daos_server: {}; {hint}", s.message()),
        // Connection-level failures (a TLS/plaintext mismatch shows up as any of these).
        tonic::Code::Unknown | tonic::Code::Internal | tonic::Code::Cancelled => {
            format!("{}; {hint}", s.message())
        }
        _ => s.message().to_string(),
    }
}

/// Calls `f` on every host concurrently, all under one [`CALL_DEADLINE`]; results in host
/// order, a host that did not answer in time with its own error.
pub async fn fan_out<T, F, Fut>(target: &Target, f: F) -> Vec<(String, Result<T, String>)>
where
    F: Fn(Conn) -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    fan_out_within(target, CALL_DEADLINE, f).await
}

/// [`fan_out`] with a deadline of `deadline`.
pub async fn fan_out_within<T, F, Fut>(
    target: &Target,
    deadline: Duration,
    f: F,
) -> Vec<(String, Result<T, String>)>
where
    F: Fn(Conn) -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let calls: Vec<_> = target
        .hosts
        .iter()
        .map(|h| {
            let f = &f;
            Box::pin(async move {
                let call = async {
                    match target.conn(h).await {
                        Ok(ch) => f(ch).await.map_err(status_text),
                        Err(e) => Err(e),
                    }
                };
                match tokio::time::timeout(deadline, call).await {
                    Ok(r) => r,
                    Err(_) => Err(format!("no answer within {}s", deadline.as_secs())),
                }
            })
        })
        .collect();
    let results = join_all(calls).await;
    target.hosts.iter().cloned().zip(results).collect()
}

/// Runs every future to completion, concurrently; results in order.
async fn join_all<F: std::future::Future + Unpin>(mut futures: Vec<F>) -> Vec<F::Output> {
    let mut out: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futures.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match std::pin::Pin::new(f).poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// Values by host, in host order.
pub type PerHost<U> = Vec<(String, U)>;

/// Splits per-host results into each answering host's value (mapped by `f`) and the
/// failures, both in host order.
pub fn split<T, U>(
    results: &[(String, Result<T, String>)],
    f: impl Fn(&T) -> U,
) -> (PerHost<U>, PerHost<String>) {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for (host, r) in results {
        match r {
            Ok(v) => ok.push((host.clone(), f(v))),
            Err(e) => errors.push((host.clone(), e.clone())),
        }
    }
    (ok, errors)
}

/// Groups hosts by an equal key and returns (host set, key) pairs sorted by host set.
pub fn group<K: Ord + Clone>(items: &[(String, K)]) -> Vec<(String, K)> {
    let mut by: BTreeMap<K, Vec<String>> = BTreeMap::new();
    for (h, k) in items {
        by.entry(k.clone()).or_default().push(h.clone());
    }
    let mut v: Vec<(String, K)> = by
        .into_iter()
        .map(|(k, hs)| (crate::hostlist::compress(&hs), k))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

pub fn errors_table(errors: &[(String, String)]) -> String {
    if errors.is_empty() {
        return String::new();
    }
    let rows: Vec<Vec<String>> = group(errors).into_iter().map(|(h, e)| vec![h, e]).collect();
    format!("Errors:\n{}\n", render(&["Hosts", "Error"], &rows, "  "))
}

/// How long [`ms_client`] keeps looking for a leader while replicas answer but none leads
/// (an election in progress).
pub const LEADER_SEARCH: Duration = Duration::from_secs(30);

/// A client of the management service's leader, found as DAOS's clients do: ask the hosts of
/// the list (at most 5) for the leader (`LeaderQuery`), follow not-replica and not-leader
/// answers to the replicas they name, and retry with back-off (250 ms, doubling to 2 s)
/// while replicas answer but no leader is elected. A host whose answer is another error
/// (e.g. an uninitialized system) is returned so that the call itself reports it; when no
/// host can be reached at all the connection error is returned.
pub async fn ms_client(t: &Target) -> Result<MgmtSvcClient<Conn>, String> {
    use daos_proto::mgmt::LeaderQueryReq;
    let deadline = std::time::Instant::now() + LEADER_SEARCH;
    let mut backoff = Duration::from_millis(250);
    loop {
        let mut hosts = redirect::HostQueue::new(t.hosts.iter().take(5).cloned());
        let mut last: Option<String> = None;
        let mut answered = false;
        while let Some(host) = hosts.next_host() {
            let conn = match t.conn(&host).await {
                Ok(c) => c,
                Err(e) => {
                    last.get_or_insert(e);
                    continue;
                }
            };
            let mut c = MgmtSvcClient::new(conn);
            match c.leader_query(LeaderQueryReq::default()).await {
                Ok(r) => {
                    answered = true;
                    let leader = r.into_inner().current_leader;
                    if leader.is_empty() {
                        last = Some(format!("{host}: no management service leader elected yet"));
                    } else if leader == host {
                        return Ok(c);
                    } else {
                        hosts.prefer(vec![leader]);
                    }
                }
                Err(s) => {
                    if let Some(r) = redirect::Redirect::from_status(&s) {
                        answered = true;
                        hosts.prefer(r.hosts());
                        last = Some(s.message().to_string());
                    } else if matches!(s.code(), tonic::Code::Unavailable) {
                        last.get_or_insert(status_text(s));
                    } else {
                        return Ok(c);
                    }
                }
            }
        }
        let last = last.unwrap_or_else(|| "no host to ask".into());
        if !answered || std::time::Instant::now() + backoff > deadline {
            return Err(last);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// A command that failed before it produced anything.
pub fn failed(e: String) -> Output {
    Output {
        text: String::new(),
        json: Value::Null,
        ok: false,
        error: Some(e),
    }
}

/// Prints an output as text or JSON and returns the exit code.
pub fn print(out: Output, as_json: bool) -> crate::exit::ExitCode {
    if as_json {
        let v = json!({"response": out.json, "error": out.error, "status": if out.ok { 0 } else { -1 }});
        println!("{v}");
    } else {
        print!("{}", out.text);
        if let Some(e) = &out.error {
            // The tool's own name: dmg, or daos, which prints the same way.
            let tool = std::env::args()
                .next()
                .and_then(|a| {
                    std::path::Path::new(&a)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                })
                .unwrap_or_else(|| "dmg".into());
            eprintln!("ERROR: {tool}: {e}");
        }
    }
    if out.ok {
        crate::exit::ExitCode::Success
    } else {
        crate::exit::ExitCode::Failure
    }
}

/// Reads a PEM file, refusing keys readable by others (DAOS: keys at most `max_mode`).
pub fn read_pem(path: &Path, what: &str, max_mode: Option<u32>) -> Result<Vec<u8>, CmdError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        CmdError::new(format!("cannot read the {what} {}: {e}", path.display()))
            .fix("set transport_config paths, run `daos_server cert generate DIR`, or use -i/allow_insecure")
    })?;
    if let Some(max) = max_mode {
        let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777;
        if mode & !max != 0 {
            return Err(CmdError::new(format!(
                "{what} {} has mode {mode:04o}, more open than {max:04o}",
                path.display()
            ))
            .fix(format!("chmod {max:04o} {}", path.display())));
        }
    }
    std::fs::read(path)
        .map_err(|e| CmdError::new(format!("cannot read the {what} {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fan_out_reaches_every_host_at_once_under_one_deadline() {
        // Three hosts that accept connections and never answer.
        let listeners: Vec<std::net::TcpListener> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let hosts: Vec<String> = listeners
            .iter()
            .map(|l| format!("127.0.0.1:{}", l.local_addr().expect("addr").port()))
            .collect();
        let (tx, rx) = std::sync::mpsc::channel();
        let holders: Vec<_> = listeners
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    if let Ok((conn, _)) = l.accept() {
                        let _ = tx.send(i);
                        // Hold the connection, silent, until the caller gives up.
                        let mut buf = [0u8; 4096];
                        let mut c = conn;
                        while std::io::Read::read(&mut c, &mut buf).is_ok_and(|n| n > 0) {}
                    }
                })
            })
            .collect();
        let target = Target {
            hosts: hosts.clone(),
            tls: None,
            component: "admin",
            agent: None,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let results = rt.block_on(fan_out_within(
            &target,
            Duration::from_secs(2),
            |ch| async {
                MgmtSvcClient::new(ch)
                    .leader_query(daos_proto::mgmt::LeaderQueryReq::default())
                    .await
            },
        ));
        drop(rt);
        let mut reached: Vec<usize> = rx.try_iter().collect();
        reached.sort_unstable();
        assert_eq!(
            reached,
            [0, 1, 2],
            "every host was called within the one deadline"
        );
        assert_eq!(
            results.iter().map(|(h, _)| h.clone()).collect::<Vec<_>>(),
            hosts,
            "results in host order"
        );
        for (h, r) in &results {
            let e = r.as_ref().expect_err("silent host");
            assert!(e.contains("no answer within 2s"), "{h}: {e}");
        }
        drop(holders);
    }
}
