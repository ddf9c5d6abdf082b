//! The management API of daos_server: `ctl.CtlSvc` (this host) and `mgmt.MgmtSvc` (the system,
//! served because this daos_server hosts the single management-service replica).
//!
//! The daemon stays blocking: tonic runs on its own small tokio runtime in one thread, and each
//! handler hands its work to the blocking harness through `spawn_blocking`. With TLS (the
//! default) clients must present a certificate signed by the configured CA; each RPC checks the
//! caller's component against [`security::allowed`]. `allow_insecure` serves plaintext.
//!
//! Limits: one host. System-wide calls act on the engines of this daos_server (the management
//! service is a single replica); the replicated service will fan them out to every host.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use daos_config::{Server, TierClass};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Request, Response, Status};
use tracing::{error, info, warn};

use crate::exit::CmdError;
use crate::harness::{Harness, RankOutcome};
use crate::hostlist;
use crate::membership::raft::MsNode;
use crate::membership::{ManagementService, MsError};
use crate::rpc::ctl::ctl_svc_server::{CtlSvc, CtlSvcServer};
use crate::rpc::ctl::*;
use crate::rpc::mgmt::mgmt_svc_server::{MgmtSvc, MgmtSvcServer};
use crate::rpc::mgmt::*;
use crate::rpc::shared::RankResult;
use crate::security;

/// How long `system start` waits for engines to join.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone)]
struct Services {
    config: Arc<Server>,
    harness: Option<Arc<Harness>>,
    ms: Arc<MsNode>,
    insecure: bool,
}

/// A joining server's control address: `listen` (`ip:port` or `host:port`) resolved, with
/// 0.0.0.0 replaced by the IP the call came from.
fn control_addr(listen: &str, peer: Option<std::net::SocketAddr>) -> Result<String, String> {
    use std::net::ToSocketAddrs;
    let (host, port) = listen.rsplit_once(':').ok_or("no port")?;
    let port: u16 = port.parse().map_err(|_| format!("bad port {port:?}"))?;
    if host == "0.0.0.0" {
        let p = peer.ok_or("the caller's address is unknown")?;
        return Ok(std::net::SocketAddr::new(p.ip(), port).to_string());
    }
    let mut addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host:?}: {e}"))?;
    addrs
        .find(|a| a.is_ipv4())
        .map(|a| a.to_string())
        .ok_or_else(|| format!("{host:?} has no IPv4 address"))
}

/// A management-service error as DAOS sends it: redirects annotated for the client to
/// follow, refusals as failed preconditions.
fn ms_status(e: MsError) -> Status {
    if let Some(r) = MsNode::redirect(&e) {
        return r.to_status();
    }
    match e {
        MsError::Unavailable(_) => Status::unavailable(e.to_string()),
        MsError::NotStarted | MsError::Refused(_) | MsError::Rejected(_) => {
            Status::failed_precondition(e.to_string())
        }
        _ => Status::internal(e.to_string()),
    }
}

/// What a system-wide call does to each rank.
#[derive(Clone, Copy, Debug)]
enum RankAction {
    PrepShutdown,
    Stop,
    Start,
}

impl RankAction {
    fn name(self) -> &'static str {
        match self {
            RankAction::PrepShutdown => "prep shutdown",
            RankAction::Stop => "stop",
            RankAction::Start => "start",
        }
    }
}

impl Services {
    /// The members named by `ranks` or by `hosts` (a host list: the ranks whose control
    /// address is one of those hosts'), all when both are empty; with the requested ranks
    /// that are not members and the hosts with no member (DAOS's absent ranks and hosts).
    fn requested(&self, ranks: &str, hosts: &str) -> Result<(Vec<u32>, String, String), Status> {
        let members = self.ms.members();
        if !hosts.is_empty() {
            if !ranks.is_empty() {
                return Err(Status::invalid_argument(
                    "--ranks and --rank-hosts options cannot be set together",
                ));
            }
            let list = hostlist::expand(hosts, self.config.port)
                .map_err(|e| Status::invalid_argument(format!("rank hosts {hosts:?}: {e}")))?;
            let (mut present, mut absent) = (Vec::new(), Vec::new());
            for host in list {
                use std::net::ToSocketAddrs;
                let addrs: Vec<std::net::SocketAddr> = host
                    .to_socket_addrs()
                    .map(|a| a.collect())
                    .unwrap_or_default();
                let of_host: Vec<u32> = members
                    .iter()
                    .filter(|m| {
                        m.addr
                            .parse::<std::net::SocketAddr>()
                            .is_ok_and(|a| addrs.contains(&a))
                    })
                    .map(|m| m.rank)
                    .collect();
                if of_host.is_empty() {
                    absent.push(host);
                }
                present.extend(of_host);
            }
            present.sort_unstable();
            present.dedup();
            return Ok((present, String::new(), hostlist::compress(&absent)));
        }
        let all: Vec<u32> = members.iter().map(|m| m.rank).collect();
        let (present, absent) = select(ranks, &all)?;
        let absent = if absent.is_empty() {
            String::new()
        } else {
            hostlist::format_ranks(&absent)
        };
        Ok((present, absent, String::new()))
    }

    /// Runs `action` on `ranks` across the system: this host's through its harness, each
    /// other host's through its daos_server (`ctl.CtlSvc`), all hosts concurrently; a host
    /// that does not answer gets its ranks reported `Unresponsive` with its error, as DAOS.
    async fn fan_out(
        &self,
        ranks: &[u32],
        action: RankAction,
        force: bool,
    ) -> Result<Vec<RankResult>, Status> {
        use crate::rpc::ctl::ctl_svc_client::CtlSvcClient;
        let h = self.harness()?;
        let mut by_host: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
        for m in self.ms.members() {
            if ranks.contains(&m.rank) {
                by_host.entry(m.addr).or_default().push(m.rank);
            }
        }
        let mut calls = Vec::new();
        for (addr, ranks) in by_host {
            let h = h.clone();
            calls.push(tokio::spawn(async move {
                if h.is_local(&addr) {
                    let rs = ranks.clone();
                    let out = tokio::task::spawn_blocking(move || match action {
                        RankAction::PrepShutdown => h.prep_shutdown_ranks(&rs),
                        RankAction::Stop => h.stop_ranks(&rs, force),
                        RankAction::Start => h.start_ranks(&rs, START_TIMEOUT),
                    })
                    .await;
                    return match out {
                        Ok(out) => rank_results(out, action.name(), &addr),
                        Err(e) => unresponsive(&ranks, action, &addr, &e.to_string()),
                    };
                }
                let mut client = match h.remote().channel(&addr) {
                    Ok(ch) => CtlSvcClient::new(ch),
                    Err(e) => return unresponsive(&ranks, action, &addr, &e),
                };
                let req = crate::membership::raft::net::Peers::stamp(RanksReq {
                    ranks: hostlist::format_ranks(&ranks),
                    force,
                    ..Default::default()
                });
                let call = async {
                    match action {
                        RankAction::PrepShutdown => client.prep_shutdown_ranks(req).await,
                        RankAction::Stop => client.stop_ranks(req).await,
                        RankAction::Start => client.start_ranks(req).await,
                    }
                };
                match tokio::time::timeout(START_TIMEOUT + Duration::from_secs(10), call).await {
                    Ok(Ok(r)) => r
                        .into_inner()
                        .results
                        .into_iter()
                        .map(|mut r| {
                            r.addr = addr.clone();
                            r
                        })
                        .collect(),
                    Ok(Err(s)) => unresponsive(&ranks, action, &addr, s.message()),
                    Err(_) => unresponsive(&ranks, action, &addr, "no answer in time"),
                }
            }));
        }
        let mut out = Vec::new();
        for c in calls {
            out.extend(
                c.await
                    .map_err(|e| Status::internal(format!("fan-out: {e}")))?,
            );
        }
        out.sort_by_key(|r| r.rank);
        Ok(out)
    }

    /// DAOS's checkLeaderRequest.
    fn leader(&self) -> Result<(), Status> {
        self.ms.check_leader().map_err(ms_status)
    }

    /// DAOS's checkReplicaRequest.
    fn replica(&self) -> Result<(), Status> {
        self.ms.check_replica().map_err(ms_status)
    }

    fn harness(&self) -> Result<Arc<Harness>, Status> {
        self.harness.clone().ok_or_else(|| {
            Status::failed_precondition(
                "this daos_server has no engines configured (discovery mode)",
            )
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(Arc<Harness>) -> T + Send + 'static,
    ) -> Result<T, Status> {
        let h = self.harness()?;
        tokio::task::spawn_blocking(move || f(h))
            .await
            .map_err(|e| Status::internal(format!("worker failed: {e}")))
    }

    /// A pool ACL change on the leader; the ACL after it.
    async fn acl_change(
        &self,
        id: String,
        change: crate::pools::AclChange,
    ) -> Result<Response<crate::rpc::mgmt::AclResp>, Status> {
        let r = self
            .blocking(move |h| crate::pools::acl_change(&h, &id, change))
            .await?
            .map_err(pool_status)?;
        Ok(acl_resp(r))
    }

    /// `dmg pool exclude|drain|reintegrate` on the leader: `op` on targets `idx` (all when
    /// empty) of `rank` in pool `id`.
    async fn change_targets(
        &self,
        op: daos_placement::MapOp,
        id: String,
        rank: u32,
        idx: Vec<u32>,
    ) -> Result<(), Status> {
        self.leader()?;
        self.blocking(move |h| crate::pools::change_targets(&h, &id, op, rank, &idx))
            .await?
            .map(|_| ())
            .map_err(pool_status)
    }
}

fn rank_results(outcomes: Vec<RankOutcome>, action: &str, addr: &str) -> Vec<RankResult> {
    outcomes
        .into_iter()
        .map(|o| RankResult {
            rank: o.rank,
            action: action.into(),
            errored: !o.ok,
            msg: o.msg,
            state: o.state.name().into(),
            addr: addr.into(),
        })
        .collect()
}

/// Results for the ranks of a host that did not answer.
fn unresponsive(ranks: &[u32], action: RankAction, addr: &str, error: &str) -> Vec<RankResult> {
    ranks
        .iter()
        .map(|&rank| RankResult {
            rank,
            action: action.name().into(),
            errored: true,
            msg: error.to_string(),
            state: crate::membership::MemberState::Unresponsive.name().into(),
            addr: addr.into(),
        })
        .collect()
}

/// A command error as a gRPC status: message and fix.
fn cmd_status(e: CmdError) -> Status {
    Status::failed_precondition(e.to_string())
}

/// An engine's bdev: device name, class, and its blobstore as DAOS reports it.
type EngineBdev = (String, String, SmdDevice);

/// What each running engine of this host uses: its SCM mount (a PMem namespace's blockdev,
/// or DAOS's `ramdisk` for a RAM tier, with the mount's usage and the rank) and its bdevs (a
/// device each, with what the engine's pools left free).
fn storage_usage(h: &Harness) -> (Vec<(String, ScmNamespace)>, Vec<EngineBdev>) {
    let mut mounts = Vec::new();
    let mut smd = Vec::new();
    for inst in h.instances() {
        let Some(rank) = inst.rank() else { continue };
        let Some(e) = h.engine_of(rank) else { continue };
        let (scm_total, nvme_total) = crate::pools::local_capacity(e);
        let (scm_free, nvme_free) =
            crate::pools::rank_free(h, rank).unwrap_or((scm_total, nvme_total));
        if let Some(t) = e.scm() {
            let path = t.scm_mount.clone().unwrap_or_default();
            let class = t.class.as_str().to_string();
            let mount = scm_namespace::Mount {
                path: path.display().to_string(),
                total_bytes: scm_total,
                avail_bytes: scm_free,
                device_list: t.scm_list.clone(),
                class: class.clone(),
                rank,
                usable_bytes: scm_free,
            };
            let blockdev = if t.class == TierClass::Ram {
                "ramdisk".to_string()
            } else {
                t.scm_list
                    .first()
                    .map(|d| d.trim_start_matches("/dev/").to_string())
                    .unwrap_or_default()
            };
            mounts.push((
                blockdev.clone(),
                ScmNamespace {
                    blockdev,
                    size: scm_total,
                    mount: Some(mount),
                    ..Default::default()
                },
            ));
        }
        let devices: Vec<(String, String)> = e
            .bdevs()
            .flat_map(|t| {
                let names: Vec<String> = if t.class == TierClass::Malloc {
                    (0..t.bdev_number.unwrap_or(0))
                        .map(|n| format!("malloc{n}"))
                        .collect()
                } else {
                    t.bdev_list.clone()
                };
                names
                    .into_iter()
                    .map(move |n| (n, t.class.as_str().to_string()))
            })
            .collect();
        let n = devices.len().max(1) as u64;
        for (device, class) in devices {
            smd.push((
                device,
                class,
                SmdDevice {
                    tgt_ids: (0..e.targets as i32).collect(),
                    total_bytes: nvme_total / n,
                    avail_bytes: nvme_free / n,
                    usable_bytes: nvme_free / n,
                    rank,
                    ..Default::default()
                },
            ));
        }
    }
    (mounts, smd)
}

/// The scan's namespaces with the engines' mounts filled in (a PMem namespace by blockdev;
/// RAM tiers as DAOS's `ramdisk` namespaces of their own). DAOS answers usage with the
/// mounted namespaces only.
fn merge_mounts(
    scanned: Vec<ScmNamespace>,
    mounts: Vec<(String, ScmNamespace)>,
) -> Vec<ScmNamespace> {
    mounts
        .into_iter()
        .map(|(blockdev, m)| {
            match scanned
                .iter()
                .find(|n| n.blockdev == blockdev && blockdev != "ramdisk")
            {
                Some(n) => ScmNamespace {
                    mount: m.mount,
                    ..n.clone()
                },
                None => m,
            }
        })
        .collect()
}

/// Each engine bdev as its controller's blobstore (SMD device): an NVMe controller found by
/// the scan by PCI address, else (file, kdev, malloc) a controller entry named by the device.
fn merge_smd(ctrlrs: &mut Vec<NvmeController>, smd: Vec<EngineBdev>) {
    for (device, class, dev) in smd {
        match ctrlrs.iter_mut().find(|c| c.pci_addr == device) {
            Some(c) => c.smd_devices.push(dev),
            None => ctrlrs.push(NvmeController {
                pci_addr: device,
                model: format!("({class})"),
                dev_state: 1, // NORMAL
                smd_devices: vec![dev],
                ..Default::default()
            }),
        }
    }
}

/// `/proc/meminfo` as DAOS's MemInfo (zeros for what it lacks).
fn mem_info() -> MemInfo {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kb = |key: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    MemInfo {
        hugepages_total: kb("HugePages_Total"),
        hugepages_free: kb("HugePages_Free"),
        hugepages_reserved: kb("HugePages_Rsvd"),
        hugepages_surplus: kb("HugePages_Surp"),
        hugepage_size_kb: kb("Hugepagesize") as u32,
        mem_total_kb: kb("MemTotal"),
        mem_free_kb: kb("MemFree"),
        mem_available_kb: kb("MemAvailable"),
    }
}

/// Requested ranks (all of `all` when empty) and the requested ones that are not members.
fn select(ranks: &str, all: &[u32]) -> Result<(Vec<u32>, Vec<u32>), Status> {
    let wanted = hostlist::parse_ranks(ranks)
        .map_err(|e| Status::invalid_argument(format!("ranks {ranks:?}: {e}")))?;
    if wanted.is_empty() {
        return Ok((all.to_vec(), Vec::new()));
    }
    let (present, absent) = wanted.into_iter().partition(|r| all.contains(r));
    Ok((present, absent))
}

#[tonic::async_trait]
impl CtlSvc for Services {
    async fn storage_scan(
        &self,
        req: Request<StorageScanReq>,
    ) -> Result<Response<StorageScanResp>, Status> {
        security::authorize(&req, "CtlSvc.StorageScan", self.insecure)?;
        let req = req.into_inner();
        let usage = req.scm.as_ref().is_some_and(|s| s.usage);
        let meta = req.nvme.as_ref().is_some_and(|n| n.meta);
        let root = crate::scan::sys_root();
        let (ns, ctrls) = tokio::task::spawn_blocking(move || {
            (daos_hw::pmem::scan(&root), daos_hw::nvme::scan(&root))
        })
        .await
        .map_err(|e| Status::internal(format!("worker failed: {e}")))?;
        let ns = ns.map_err(|e| Status::internal(format!("storage scan: {e}")))?;
        let ctrls = ctrls.map_err(|e| Status::internal(format!("storage scan: {e}")))?;
        let mut scm = ScanScmResp {
            modules: Vec::new(),
            namespaces: ns
                .into_iter()
                .map(|n| ScmNamespace {
                    blockdev: n.blockdev.unwrap_or_else(|| n.name.clone()),
                    dev: n.name,
                    numa_node: n.numa_node.unwrap_or(0),
                    size: n.size_bytes,
                    ..Default::default()
                })
                .collect(),
            state: Some(ResponseState::default()),
        };
        let mut nvme = ScanNvmeResp {
            ctrlrs: ctrls
                .into_iter()
                .map(|c| NvmeController {
                    namespaces: c
                        .namespaces
                        .iter()
                        .enumerate()
                        .map(|(i, n)| nvme_controller::Namespace {
                            id: i as u32 + 1,
                            size: n.size_bytes,
                            ctrlr_pci_addr: c.pci_addr.clone(),
                        })
                        .collect(),
                    model: c.model,
                    serial: c.serial,
                    pci_addr: c.pci_addr,
                    fw_rev: c.firmware,
                    socket_id: c.numa_node.map_or(0, |n| n as i32),
                    dev_state: 1, // NORMAL
                    pci_dev_type: "pci".into(),
                    ..Default::default()
                })
                .collect(),
            state: Some(ResponseState::default()),
        };
        if usage || meta {
            let h = self
                .harness
                .clone()
                .ok_or_else(|| Status::failed_precondition("this server runs no engines"))?;
            let (mounts, smd) = tokio::task::spawn_blocking(move || storage_usage(&h))
                .await
                .map_err(|e| Status::internal(format!("worker failed: {e}")))?;
            if usage {
                // DAOS: usage comes from running engines only, and none is an error.
                if mounts.is_empty() {
                    return Err(Status::failed_precondition(
                        "no scm details found: no engine of this host is running (dmg system start)",
                    ));
                }
                scm.namespaces = merge_mounts(scm.namespaces, mounts);
            }
            if meta {
                merge_smd(&mut nvme.ctrlrs, smd);
            }
        }
        Ok(Response::new(StorageScanResp {
            nvme: Some(nvme),
            scm: Some(scm),
            mem_info: Some(mem_info()),
        }))
    }

    async fn fabric_check_serve(
        &self,
        req: Request<FabricCheckServeReq>,
    ) -> Result<Response<FabricCheckServeResp>, Status> {
        security::authorize(&req, "CtlSvc.FabricCheckServe", self.insecure)?;
        let config = self.config.clone();
        let provider = crate::netcheck::provider(&config, &req.into_inner().provider);
        let p = provider.clone();
        let address = tokio::task::spawn_blocking(move || crate::netcheck::serve(&config, &p))
            .await
            .map_err(|e| Status::internal(format!("worker failed: {e}")))?
            .map_err(cmd_status)?;
        Ok(Response::new(FabricCheckServeResp { address, provider }))
    }

    async fn fabric_check_run(
        &self,
        req: Request<FabricCheckRunReq>,
    ) -> Result<Response<FabricCheckRunResp>, Status> {
        security::authorize(&req, "CtlSvc.FabricCheckRun", self.insecure)?;
        let r = req.into_inner();
        let provider = crate::netcheck::provider(&self.config, &r.provider);
        let json = tokio::task::spawn_blocking(move || {
            crate::netcheck::run(&r.address, &provider, &r.sizes, r.iterations)
        })
        .await
        .map_err(|e| Status::internal(format!("worker failed: {e}")))?
        .map_err(cmd_status)?;
        Ok(Response::new(FabricCheckRunResp { json }))
    }

    async fn network_scan(
        &self,
        req: Request<NetworkScanReq>,
    ) -> Result<Response<NetworkScanResp>, Status> {
        security::authorize(&req, "CtlSvc.NetworkScan", self.insecure)?;
        let provider = req.into_inner().provider;
        let default = self.config.provider.clone();
        let out = tokio::task::spawn_blocking(move || {
            let root = crate::scan::sys_root();
            let filter = if provider.is_empty() {
                default
            } else {
                Some(provider)
            };
            let cpu = daos_hw::CpuTopology::read(&root).ok();
            (crate::scan::fabric_scan(&root, filter.as_deref()), cpu)
        })
        .await
        .map_err(|e| Status::internal(format!("worker failed: {e}")))?;
        let (entries, cpu) = out;
        let entries = entries.map_err(cmd_status)?;
        let (numa, cores) = cpu
            .map(|c| {
                (
                    c.numa_nodes.len().max(1),
                    c.online.len() / c.numa_nodes.len().max(1),
                )
            })
            .unwrap_or((1, 0));
        Ok(Response::new(NetworkScanResp {
            interfaces: entries
                .into_iter()
                .enumerate()
                .map(|(i, e)| FabricInterface {
                    provider: e.provider,
                    device: e.fabric_iface,
                    numanode: e.pinned_numa_node,
                    priority: i as u32,
                    netdevclass: e.net_dev_class,
                })
                .collect(),
            numacount: numa as i32,
            corespernuma: cores as i32,
        }))
    }

    async fn storage_prepare(
        &self,
        req: Request<StoragePrepareReq>,
    ) -> Result<Response<StoragePrepareResp>, Status> {
        security::authorize(&req, "CtlSvc.StoragePrepare", self.insecure)?;
        let r = req.into_inner();
        let cfg = self.config.clone();
        let args = crate::prepare::PrepareArgs {
            nvme_only: r.nvme_only,
            scm_only: r.scm_only,
            reset: r.reset,
            force: r.force,
            hugepages: (r.hugepages > 0)
                .then_some(r.hugepages)
                .or_else(|| (cfg.nr_hugepages > 0).then_some(cfg.nr_hugepages as u64)),
            block_list: r.pci_block_list,
            include: cfg.bdev_include.clone(),
            exclude: cfg.bdev_exclude.clone(),
        };
        let lines = tokio::task::spawn_blocking(move || {
            crate::prepare::prepare(&crate::scan::sys_root(), &args)
        })
        .await
        .map_err(|e| Status::internal(format!("worker failed: {e}")))?
        .map_err(cmd_status)?;
        Ok(Response::new(StoragePrepareResp { lines }))
    }

    async fn config_generate(
        &self,
        req: Request<ConfigGenerateReq>,
    ) -> Result<Response<ConfigGenerateResp>, Status> {
        security::authorize(&req, "CtlSvc.ConfigGenerate", self.insecure)?;
        let r = req.into_inner();
        let args = crate::generate::GenerateArgs::from_request(r);
        let yaml = tokio::task::spawn_blocking(move || {
            crate::generate::generate(&crate::scan::sys_root(), &args)
        })
        .await
        .map_err(|e| Status::internal(format!("worker failed: {e}")))?
        .map_err(cmd_status)?;
        Ok(Response::new(ConfigGenerateResp { yaml }))
    }

    async fn storage_format(
        &self,
        req: Request<StorageFormatReq>,
    ) -> Result<Response<StorageFormatResp>, Status> {
        security::authorize(&req, "CtlSvc.StorageFormat", self.insecure)?;
        let reformat = req.get_ref().reformat;
        let results = self
            .blocking(move |h| {
                (0..h.instances().len())
                    .map(|i| (i, h.format(i, reformat)))
                    .collect::<Vec<_>>()
            })
            .await?;
        let mut resp = StorageFormatResp::default();
        for (i, r) in results {
            let e = &self.config.engines[i];
            let mount = e
                .scm_mount()
                .map(|m| m.display().to_string())
                .unwrap_or_default();
            let state = match &r {
                Ok(_) => ResponseState {
                    status: 0,
                    error: String::new(),
                    info: String::new(),
                },
                Err(err) => ResponseState {
                    status: -1,
                    error: err.to_string(),
                    info: String::new(),
                },
            };
            resp.mrets.push(ScmMountResult {
                mntpoint: mount,
                state: Some(state.clone()),
                instanceidx: i as u32,
            });
            match r {
                Ok(f) => {
                    for b in f.bdevs {
                        resp.crets.push(NvmeControllerResult {
                            pci_addr: b,
                            state: Some(state.clone()),
                            role_bits: 0,
                        });
                    }
                }
                Err(_) => info!("NVMe format skipped on instance {i}"),
            }
        }
        Ok(Response::new(resp))
    }

    async fn prep_shutdown_ranks(
        &self,
        req: Request<RanksReq>,
    ) -> Result<Response<RanksResp>, Status> {
        security::authorize(&req, "CtlSvc.PrepShutdownRanks", self.insecure)?;
        let ranks = req.into_inner().ranks;
        let out = self
            .blocking(move |h| {
                select(&ranks, &h.local_ranks()).map(|(r, _)| h.prep_shutdown_ranks(&r))
            })
            .await??;
        Ok(Response::new(RanksResp {
            results: rank_results(out, "prep shutdown", ""),
        }))
    }

    async fn stop_ranks(&self, req: Request<RanksReq>) -> Result<Response<RanksResp>, Status> {
        security::authorize(&req, "CtlSvc.StopRanks", self.insecure)?;
        let RanksReq { ranks, force, .. } = req.into_inner();
        let out = self
            .blocking(move |h| {
                select(&ranks, &h.local_ranks()).map(|(r, _)| h.stop_ranks(&r, force))
            })
            .await??;
        Ok(Response::new(RanksResp {
            results: rank_results(out, "stop", ""),
        }))
    }

    async fn reset_format_ranks(
        &self,
        req: Request<RanksReq>,
    ) -> Result<Response<RanksResp>, Status> {
        security::authorize(&req, "CtlSvc.ResetFormatRanks", self.insecure)?;
        let ranks = req.into_inner().ranks;
        if ranks.trim().is_empty() {
            return Err(Status::invalid_argument(
                "RanksReq.ranks is empty: no ranks specified in request (name the ranks whose format to reset)",
            ));
        }
        let out = self
            .blocking(move |h| {
                let (present, _) = select(&ranks, &h.local_ranks())?;
                h.reset_format_ranks(&present)
                    .map_err(Status::failed_precondition)
            })
            .await??;
        Ok(Response::new(RanksResp {
            results: rank_results(out, "reset format", ""),
        }))
    }

    async fn set_engine_log_masks(
        &self,
        req: Request<daos_proto::ctl::SetLogMasksReq>,
    ) -> Result<Response<daos_proto::ctl::SetLogMasksResp>, Status> {
        security::authorize(&req, "CtlSvc.SetEngineLogMasks", self.insecure)?;
        let r = req.into_inner();
        let errors = self.blocking(move |h| h.set_log_masks(&r)).await?;
        Ok(Response::new(daos_proto::ctl::SetLogMasksResp {
            status: 0,
            errors,
        }))
    }

    async fn start_ranks(&self, req: Request<RanksReq>) -> Result<Response<RanksResp>, Status> {
        security::authorize(&req, "CtlSvc.StartRanks", self.insecure)?;
        let ranks = req.into_inner().ranks;
        let out = self
            .blocking(move |h| {
                select(&ranks, &h.local_ranks()).map(|(r, _)| h.start_ranks(&r, START_TIMEOUT))
            })
            .await??;
        Ok(Response::new(RanksResp {
            results: rank_results(out, "start", ""),
        }))
    }
}

#[tonic::async_trait]
impl MgmtSvc for Services {
    /// An engine of some daos_server asks for its rank (DAOS's Join). Refused: a wrong system
    /// name, a rank held by another engine (see `MsError`), a request without UUID, URI or
    /// control address.
    async fn join(&self, req: Request<JoinReq>) -> Result<Response<JoinResp>, Status> {
        security::authorize(&req, "MgmtSvc.Join", self.insecure)?;
        // A server configured with other replicas belongs to another system (issue #23
        // item 13): refused before anything else, naming both replica sets.
        self.ms
            .check_peer_set(req.metadata())
            .map_err(|e| Status::failed_precondition(format!("join refused: {e}")))?;
        self.leader()?;
        let peer = req.remote_addr();
        let r = req.into_inner();
        for (field, empty) in [
            ("uuid", r.uuid.is_empty()),
            ("uri", r.uri.is_empty()),
            ("addr", r.addr.is_empty()),
        ] {
            if empty {
                return Err(Status::invalid_argument(format!(
                    "join refused: JoinReq.{field} is empty"
                )));
            }
        }
        if daos_wire::parse_uuid(&r.uuid).is_none() {
            return Err(Status::invalid_argument(format!(
                "join refused: JoinReq.uuid {:?} is not a UUID",
                r.uuid
            )));
        }
        // The control address as DAOS's getPeerListenAddr: an explicit address as given
        // (resolved), 0.0.0.0 replaced by the caller's IP as this server sees it.
        let addr = control_addr(&r.addr, peer).map_err(|e| {
            Status::invalid_argument(format!("join refused: JoinReq.addr {:?}: {e}", r.addr))
        })?;
        let bootstrap = r.idx == 0 && self.ms.replica_of(&addr) == Some(0);
        let join = crate::membership::JoinRequest {
            system: r.sys,
            uuid: r.uuid,
            rank: (r.rank != u32::MAX).then_some(r.rank),
            uri: r.uri,
            nctxs: r.nctxs,
            addr,
            fault_domain: r.srv_fault_domain.clone(),
            incarnation: r.incarnation,
            idx: r.idx,
            bootstrap,
        };
        let ms = self.ms.clone();
        let j = join.clone();
        let resp = tokio::task::spawn_blocking(move || ms.join_local(&j))
            .await
            .map_err(|e| Status::internal(format!("join: {e}")))?
            .map_err(ms_status)?;
        info!(
            "rank {} {} the system (control address {}, join over gRPC)",
            resp.rank,
            if resp.rejoined { "rejoined" } else { "joined" },
            join.addr
        );
        Ok(Response::new(JoinResp {
            status: 0,
            rank: resp.rank,
            state: join_resp::State::In as i32,
            fault_domain: r.srv_fault_domain,
            local_join: false,
            map_version: resp.map_version,
        }))
    }

    /// A RAS event forwarded by another daos_server: `swim_rank_dead` excludes the rank
    /// (see [`Harness::cluster_event`]); others are recorded in the control log.
    async fn cluster_event(
        &self,
        req: Request<crate::rpc::shared::ClusterEventReq>,
    ) -> Result<Response<crate::rpc::shared::ClusterEventResp>, Status> {
        security::authorize(&req, "MgmtSvc.ClusterEvent", self.insecure)?;
        self.leader()?;
        let r = req.into_inner();
        let event = r
            .event
            .ok_or_else(|| Status::invalid_argument("ClusterEventReq.event is missing"))?;
        let status = self.blocking(move |h| h.cluster_event(&event)).await?;
        Ok(Response::new(crate::rpc::shared::ClusterEventResp {
            sequence: r.sequence,
            status,
        }))
    }

    async fn leader_query(
        &self,
        req: Request<LeaderQueryReq>,
    ) -> Result<Response<LeaderQueryResp>, Status> {
        security::authorize(&req, "MgmtSvc.LeaderQuery", self.insecure)?;
        self.replica()?;
        let replicas = self.ms.config().replicas.clone();
        let ms = self.ms.clone();
        let leader = tokio::task::spawn_blocking(move || ms.wait_leader(Duration::from_secs(3)))
            .await
            .map_err(|e| Status::internal(format!("leader query: {e}")))?;
        Ok(Response::new(LeaderQueryResp {
            current_leader: leader.unwrap_or_default(),
            replicas,
            down_replicas: Vec::new(),
        }))
    }

    async fn get_attach_info(
        &self,
        req: Request<GetAttachInfoReq>,
    ) -> Result<Response<GetAttachInfoResp>, Status> {
        security::authorize(&req, "MgmtSvc.GetAttachInfo", self.insecure)?;
        self.replica()?;
        let h = self.harness()?;
        let all_ranks = req.get_ref().all_ranks;
        let rank_uris = h
            .ms()
            .members()
            .into_iter()
            // The group map's members (DAOS: all but those awaiting a format or excluded);
            // with `all_ranks`, every member with a URI: a pool map names excluded ranks too,
            // and clients place objects over all of them (their shards moved or read last).
            .filter(|m| {
                if all_ranks {
                    return !m.fabric_uri.is_empty();
                }
                !matches!(
                    m.state,
                    crate::membership::MemberState::AwaitFormat
                        | crate::membership::MemberState::Excluded
                        | crate::membership::MemberState::AdminExcluded
                )
            })
            .map(|m| get_attach_info_resp::RankUri {
                rank: m.rank,
                uri: m.fabric_uri,
                provider_idx: 0,
                num_ctxs: m.fabric_contexts,
            })
            .collect();
        let engine = self.config.engines.first();
        let iface = engine.map(|e| e.fabric_iface.clone()).unwrap_or_default();
        let provider = engine
            .map(|e| e.provider.clone())
            .filter(|p| !p.is_empty())
            .or_else(|| self.config.provider.clone())
            .unwrap_or_default();
        // What the engines run with (FI_OFI_RXM_USE_SRX: 1 unless `disable_srx`, as DAOS's
        // server sets it): libdaos refuses a client whose own SRX setting differs.
        let srx = engine.map_or(-1, |e| i32::from(!e.disable_srx));
        let v = daos_control::interop::Version::ours();
        Ok(Response::new(GetAttachInfoResp {
            status: 0,
            rank_uris,
            ms_ranks: vec![0],
            client_net_hint: Some(ClientNetHint {
                provider,
                domain: iface.clone(),
                interface: iface,
                crt_timeout: 60,
                net_dev_class: 0,
                srv_srx_set: srx,
                env_vars: Vec::new(),
                provider_idx: 0,
            }),
            data_version: u64::from(h.ms().map_version()),
            sys: self.config.name.clone(),
            build_info: Some(BuildInfo {
                major: v.major,
                minor: v.minor,
                patch: v.patch,
                tag: format!("daos-rs {}", crate::server::VERSION),
            }),
            ..Default::default()
        }))
    }

    async fn system_query(
        &self,
        req: Request<SystemQueryReq>,
    ) -> Result<Response<SystemQueryResp>, Status> {
        security::authorize(&req, "MgmtSvc.SystemQuery", self.insecure)?;
        self.replica()?;
        let h = self.harness()?;
        let members = h.ms().members();
        let (present, absentranks, absenthosts) =
            self.requested(&req.get_ref().ranks, &req.get_ref().hosts)?;
        let members = members
            .into_iter()
            .filter(|m| present.contains(&m.rank))
            .map(|m| SystemMember {
                addr: m.addr,
                uuid: m.uuid,
                rank: m.rank,
                incarnation: m.incarnation,
                state: m.state.name().into(),
                fabric_uri: m.fabric_uri,
                fabric_contexts: m.fabric_contexts,
                info: m.info,
                fault_domain: m.fault_domain,
            })
            .collect();
        Ok(Response::new(SystemQueryResp {
            members,
            absentranks,
            absenthosts,
            data_version: u64::from(h.ms().map_version()),
        }))
    }

    async fn system_stop(
        &self,
        req: Request<SystemStopReq>,
    ) -> Result<Response<SystemStopResp>, Status> {
        security::authorize(&req, "MgmtSvc.SystemStop", self.insecure)?;
        self.leader()?;
        let SystemStopReq {
            ranks,
            hosts,
            prep,
            kill,
            force,
            ..
        } = req.into_inner();
        let (present, absent, absent_hosts) = self.requested(&ranks, &hosts)?;
        let mut results = Vec::new();
        if prep && !force {
            // DAOS: a failed prep-shutdown is reported, and the stop goes on.
            for r in self
                .fan_out(&present, RankAction::PrepShutdown, force)
                .await?
            {
                if r.errored {
                    results.push(r);
                }
            }
        }
        if kill || !prep {
            results.extend(self.fan_out(&present, RankAction::Stop, force).await?);
        }
        Ok(Response::new(SystemStopResp {
            results,
            absentranks: absent,
            absenthosts: absent_hosts,
        }))
    }

    async fn system_start(
        &self,
        req: Request<SystemStartReq>,
    ) -> Result<Response<SystemStartResp>, Status> {
        security::authorize(&req, "MgmtSvc.SystemStart", self.insecure)?;
        self.leader()?;
        let SystemStartReq { ranks, hosts, .. } = req.into_inner();
        let (present, absent, absent_hosts) = self.requested(&ranks, &hosts)?;
        let results = self.fan_out(&present, RankAction::Start, false).await?;
        Ok(Response::new(SystemStartResp {
            results,
            absentranks: absent,
            absenthosts: absent_hosts,
        }))
    }

    /// DAOS's SystemExclude: ranks to AdminExcluded (kept out of the group map, their joins
    /// refused), or with `clear` back to Excluded (Joined again when they rejoin).
    async fn system_exclude(
        &self,
        req: Request<SystemExcludeReq>,
    ) -> Result<Response<SystemExcludeResp>, Status> {
        security::authorize(&req, "MgmtSvc.SystemExclude", self.insecure)?;
        self.leader()?;
        let SystemExcludeReq {
            ranks,
            hosts,
            clear,
            ..
        } = req.into_inner();
        if ranks.is_empty() && hosts.is_empty() {
            return Err(Status::invalid_argument("no hosts or ranks specified"));
        }
        let (present, absent, absent_hosts) = self.requested(&ranks, &hosts)?;
        if !absent_hosts.is_empty() {
            return Err(Status::invalid_argument(format!(
                "invalid host(s): {absent_hosts}"
            )));
        }
        if !absent.is_empty() {
            return Err(Status::invalid_argument(format!(
                "invalid rank(s): {}",
                absent.trim_matches(['[', ']'])
            )));
        }
        let (state, action) = if clear {
            (
                crate::membership::MemberState::Excluded,
                "clear admin-excluded state",
            )
        } else {
            (
                crate::membership::MemberState::AdminExcluded,
                "set admin-excluded state",
            )
        };
        let ms = self.ms.clone();
        let results = tokio::task::spawn_blocking(move || {
            let members = ms.members();
            let mut results = Vec::new();
            for rank in present {
                ms.set_state(rank, state, action)?;
                results.push(RankResult {
                    rank,
                    action: action.into(),
                    errored: false,
                    msg: String::new(),
                    state: state.name().into(),
                    addr: members
                        .iter()
                        .find(|m| m.rank == rank)
                        .map(|m| m.addr.clone())
                        .unwrap_or_default(),
                });
            }
            Ok::<_, MsError>(results)
        })
        .await
        .map_err(|e| Status::internal(format!("exclude: {e}")))?
        .map_err(ms_status)?;
        Ok(Response::new(SystemExcludeResp { results }))
    }

    async fn pool_create(
        &self,
        req: Request<PoolCreateReq>,
    ) -> Result<Response<PoolCreateResp>, Status> {
        security::authorize(&req, "MgmtSvc.PoolCreate", self.insecure)?;
        self.leader()?;
        let r = req.into_inner();
        if !r.sys.is_empty() && !same_system(&r.sys, &self.config.name) {
            return Err(Status::invalid_argument(format!(
                "pool create for system {:?} sent to system {:?}; check the host list and the system name",
                r.sys, self.config.name
            )));
        }
        let mut label = String::new();
        let mut props = Vec::new();
        for p in &r.properties {
            let (d, value) = daos_control::props::decode(p).map_err(Status::invalid_argument)?;
            if d.name == "label" {
                label = value
            } else {
                props.push((d.name.to_string(), value))
            }
        }
        let total = if r.size_percent > 0 {
            Some(crate::pools::Size::Percent(u64::from(r.size_percent)))
        } else {
            (r.total_bytes > 0).then_some(crate::pools::Size::Bytes(r.total_bytes))
        };
        let tier_ratio = match r.tier_ratio.as_slice() {
            [] => None,
            &[s, n]
                if (0.0..=1.0).contains(&s)
                    && (0.0..=1.0).contains(&n)
                    && s > 0.0
                    && s + n <= 1.0 + 1e-9 =>
            {
                Some((s, n))
            }
            other => {
                return Err(Status::invalid_argument(format!(
                    "PoolCreateReq.tier_ratio {other:?}: give the SCM and NVMe fractions of total_bytes (e.g. 0.06, 0.94), SCM above 0, together at most 1"
                )));
            }
        };
        if tier_ratio.is_some() && r.total_bytes == 0 {
            return Err(Status::invalid_argument(
                "PoolCreateReq.tier_ratio without total_bytes: give the pool's total size to split",
            ));
        }
        if !r.tier_bytes.is_empty() && (r.total_bytes > 0 || tier_ratio.is_some()) {
            return Err(Status::invalid_argument(
                "PoolCreateReq: give tier_bytes (per rank) or total_bytes with tier_ratio, not both",
            ));
        }
        if r.num_ranks > 0 && !r.ranks.is_empty() {
            return Err(Status::invalid_argument(
                "PoolCreateReq: give ranks or num_ranks, not both",
            ));
        }
        let creq = crate::pools::CreateRequest {
            label,
            total,
            scm: r.tier_bytes.first().copied().filter(|b| *b > 0),
            nvme: r.tier_bytes.get(1).copied().filter(|b| *b > 0),
            tier_ratio,
            num_ranks: r.num_ranks,
            ranks: r.ranks,
            // 0: DAOS's default (from svc_rf).
            nsvc: r.num_svc_reps,
            props,
            uuid: (!r.uuid.is_empty()).then(|| r.uuid.clone()),
            owner: r.user,
            owner_group: r.usergroup,
            acl: r.acl,
        };
        let rec = self
            .blocking(move |h| crate::pools::create(&h, &creq))
            .await?
            .map_err(pool_status)?;
        Ok(Response::new(PoolCreateResp {
            status: 0,
            svc_ldr: rec.svc_ranks.first().copied().unwrap_or(0),
            svc_reps: rec.svc_ranks,
            tgt_ranks: rec.ranks,
            tier_bytes: vec![rec.scm_per_rank, rec.nvme_per_rank],
            uuid: rec.uuid,
        }))
    }

    async fn pool_evict(
        &self,
        req: Request<crate::rpc::mgmt::PoolEvictReq>,
    ) -> Result<Response<crate::rpc::mgmt::PoolEvictResp>, Status> {
        security::authorize(&req, "MgmtSvc.PoolEvict", self.insecure)?;
        self.leader()?;
        let r = req.into_inner();
        if r.destroy {
            // DAOS's dmg asks this before a destroy: refused while handles are open unless
            // forced.
            let (id, force) = (r.id.clone(), r.force_destroy);
            let count = self
                .blocking(move |h| crate::pools::evict_for_destroy(&h, &id, force))
                .await?
                .map_err(pool_status)?;
            return Ok(Response::new(crate::rpc::mgmt::PoolEvictResp {
                status: 0,
                count: count as i32,
            }));
        }
        let mut handles = Vec::new();
        for h in &r.handles {
            let c = u64::from_str_radix(h.trim_start_matches("0x"), 16).map_err(|_| {
                Status::invalid_argument(format!(
                    "DER_INVAL(-1003): PoolEvictReq.handles {h:?} is not a handle (16 hex digits)"
                ))
            })?;
            handles.push(c);
        }
        let id = r.id;
        let machine = r.machine;
        let count = self
            .blocking(move |h| {
                if !machine.is_empty() {
                    handles =
                        crate::pools::handles_of_machine(&h, &id, &machine).map_err(pool_status)?;
                    if handles.is_empty() {
                        return Ok(0);
                    }
                }
                let p = h.ms().pool_find(&id).ok_or_else(|| {
                    Status::not_found(format!(
                        "DER_NONEXIST(-1005): no pool {id:?} in the system (see dmg pool list)"
                    ))
                })?;
                h.remote()
                    .pool_evict(&p.svc_hosts, &p.uuid, handles)
                    .map_err(|e| Status::unavailable(format!("pool {}: {e}", p.label)))
            })
            .await??;
        Ok(Response::new(crate::rpc::mgmt::PoolEvictResp {
            status: 0,
            count: count as i32,
        }))
    }

    async fn pool_get_acl(
        &self,
        req: Request<crate::rpc::mgmt::GetAclReq>,
    ) -> Result<Response<crate::rpc::mgmt::AclResp>, Status> {
        security::authorize(&req, "MgmtSvc.PoolGetACL", self.insecure)?;
        self.leader()?;
        let id = req.into_inner().id;
        let r = self
            .blocking(move |h| crate::pools::acl_get(&h, &id))
            .await?
            .map_err(pool_status)?;
        Ok(acl_resp(r))
    }

    async fn pool_overwrite_acl(
        &self,
        req: Request<crate::rpc::mgmt::ModifyAclReq>,
    ) -> Result<Response<crate::rpc::mgmt::AclResp>, Status> {
        security::authorize(&req, "MgmtSvc.PoolOverwriteACL", self.insecure)?;
        self.leader()?;
        let r = req.into_inner();
        self.acl_change(r.id, crate::pools::AclChange::Overwrite(r.entries))
            .await
    }

    async fn pool_update_acl(
        &self,
        req: Request<crate::rpc::mgmt::ModifyAclReq>,
    ) -> Result<Response<crate::rpc::mgmt::AclResp>, Status> {
        security::authorize(&req, "MgmtSvc.PoolUpdateACL", self.insecure)?;
        self.leader()?;
        let r = req.into_inner();
        self.acl_change(r.id, crate::pools::AclChange::Update(r.entries))
            .await
    }

    async fn pool_delete_acl(
        &self,
        req: Request<crate::rpc::mgmt::DeleteAclReq>,
    ) -> Result<Response<crate::rpc::mgmt::AclResp>, Status> {
        security::authorize(&req, "MgmtSvc.PoolDeleteACL", self.insecure)?;
        self.leader()?;
        let r = req.into_inner();
        self.acl_change(r.id, crate::pools::AclChange::Delete(r.principal))
            .await
    }

    async fn pool_destroy(
        &self,
        req: Request<PoolDestroyReq>,
    ) -> Result<Response<PoolDestroyResp>, Status> {
        security::authorize(&req, "MgmtSvc.PoolDestroy", self.insecure)?;
        self.leader()?;
        let r = req.into_inner();
        self.blocking(move |h| {
            crate::pools::evict_for_destroy(&h, &r.id, r.force)?;
            crate::pools::destroy(&h, &r.id, r.force, r.recursive)
        })
        .await?
        .map_err(pool_status)?;
        Ok(Response::new(PoolDestroyResp { status: 0 }))
    }

    async fn pool_query(
        &self,
        req: Request<PoolQueryReq>,
    ) -> Result<Response<PoolQueryResp>, Status> {
        security::authorize(&req, "MgmtSvc.PoolQuery", self.insecure)?;
        self.leader()?;
        let r = req.into_inner();
        // DAOS's query bits (`DPI_*`); 0 (daos-rs clients): everything.
        const SPACE: u64 = 1;
        const REBUILD: u64 = 1 << 1;
        const ENABLED: u64 = 1 << 2;
        const DISABLED: u64 = 1 << 3;
        const DEAD: u64 = 1 << 4;
        let mask = if r.query_mask == 0 {
            SPACE | REBUILD | ENABLED | DISABLED | DEAD
        } else {
            r.query_mask
        };
        let id = r.id;
        let (rec, targets, down) = self
            .blocking(move |h| crate::pools::query(&h, &id))
            .await?
            .map_err(pool_status)?;
        // Disabled: the map's down and down_out targets, and every target of a rank that does
        // not answer (as many as its engine has).
        let members = self.harness()?.ms().members();
        let per_rank = |r: u32| {
            members
                .iter()
                .find(|m| m.rank == r)
                .map_or(1, |m| m.fabric_contexts.saturating_sub(1).max(1))
        };
        let excluded = rec.map.disabled();
        let mut total = 0u32;
        let mut disabled = 0u32;
        let mut disabled_ranks = Vec::new();
        for &r in &rec.ranks {
            total += per_rank(r);
            let n = if down.contains(&r) {
                per_rank(r)
            } else {
                excluded.get(&r).copied().unwrap_or(0)
            };
            if n > 0 {
                disabled += n;
                disabled_ranks.push(r);
            }
        }
        let enabled: Vec<u32> = rec
            .ranks
            .iter()
            .copied()
            .filter(|r| !disabled_ranks.contains(r))
            .collect();
        let scm_free: Vec<u64> = targets.iter().map(|(_, t)| t.scm_free).collect();
        let nvme_free: Vec<u64> = targets.iter().map(|(_, t)| t.nvme_free).collect();
        let mut scm = pool_stats(&scm_free, StorageMediaType::Scm);
        scm.total = targets.iter().map(|(_, t)| t.scm_total).sum();
        let mut nvme = pool_stats(&nvme_free, StorageMediaType::Nvme);
        nvme.total = targets.iter().map(|(_, t)| t.nvme_total).sum();
        let leader = rec.svc_ranks.first().copied().unwrap_or(0);
        let rb = rec.map.rebuild;
        Ok(Response::new(PoolQueryResp {
            status: 0,
            uuid: rec.uuid,
            label: rec.label,
            total_targets: total,
            active_targets: total.saturating_sub(disabled),
            disabled_targets: disabled,
            rebuild: (mask & REBUILD != 0).then_some(PoolRebuildStatus {
                status: 0,
                state: match rb.state {
                    daos_mgmt::RebuildState::Idle => pool_rebuild_status::State::Idle,
                    daos_mgmt::RebuildState::Busy => pool_rebuild_status::State::Busy,
                    daos_mgmt::RebuildState::Done => pool_rebuild_status::State::Done,
                } as i32,
                objects: rb.objs,
                records: rb.recs,
            }),
            tier_stats: if mask & SPACE != 0 {
                vec![scm, nvme]
            } else {
                Vec::new()
            },
            version: rec.map.version(),
            leader,
            enabled_ranks: if mask & ENABLED != 0 {
                rank_set(&enabled)
            } else {
                String::new()
            },
            disabled_ranks: if mask & DISABLED != 0 {
                rank_set(&disabled_ranks)
            } else {
                String::new()
            },
            query_mask: mask,
            total_engines: rec.ranks.len() as u32,
            // DAOS 2.6: a pool with targets out is Degraded (HEAD calls it TargetsExcluded).
            state: if disabled > 0 && rec.state == crate::membership::PoolState::Ready {
                PoolServiceState::Degraded as i32
            } else {
                service_state(rec.state) as i32
            },
            svc_ldr: leader,
            svc_reps: rec.svc_ranks,
            dead_ranks: if mask & DEAD != 0 {
                rank_set(&down)
            } else {
                String::new()
            },
            ..Default::default()
        }))
    }

    async fn pool_exclude(
        &self,
        req: Request<PoolExcludeReq>,
    ) -> Result<Response<PoolExcludeResp>, Status> {
        security::authorize(&req, "MgmtSvc.PoolExclude", self.insecure)?;
        let r = req.into_inner();
        self.change_targets(daos_placement::MapOp::Exclude, r.id, r.rank, r.targetidx)
            .await?;
        Ok(Response::new(PoolExcludeResp { status: 0 }))
    }

    async fn pool_drain(
        &self,
        req: Request<PoolDrainReq>,
    ) -> Result<Response<PoolDrainResp>, Status> {
        security::authorize(&req, "MgmtSvc.PoolDrain", self.insecure)?;
        let r = req.into_inner();
        self.change_targets(daos_placement::MapOp::Drain, r.id, r.rank, r.targetidx)
            .await?;
        Ok(Response::new(PoolDrainResp { status: 0 }))
    }

    async fn pool_reintegrate(
        &self,
        req: Request<PoolReintReq>,
    ) -> Result<Response<PoolReintResp>, Status> {
        security::authorize(&req, "MgmtSvc.PoolReintegrate", self.insecure)?;
        let r = req.into_inner();
        self.change_targets(daos_placement::MapOp::Reint, r.id, r.rank, r.targetidx)
            .await?;
        Ok(Response::new(PoolReintResp { status: 0 }))
    }

    async fn pool_extend(
        &self,
        req: Request<PoolExtendReq>,
    ) -> Result<Response<PoolExtendResp>, Status> {
        security::authorize(&req, "MgmtSvc.PoolExtend", self.insecure)?;
        self.leader()?;
        let r = req.into_inner();
        let rec = self
            .blocking(move |h| crate::pools::extend(&h, &r.id, &r.ranks))
            .await?
            .map_err(pool_status)?;
        Ok(Response::new(PoolExtendResp {
            status: 0,
            tier_bytes: vec![rec.scm_per_rank, rec.nvme_per_rank],
        }))
    }

    async fn pool_query_target(
        &self,
        req: Request<PoolQueryTargetReq>,
    ) -> Result<Response<PoolQueryTargetResp>, Status> {
        use crate::rpc::mgmt::pool_query_target_info::{TargetState as W, TargetType};
        use daos_placement::TargetState as S;
        security::authorize(&req, "MgmtSvc.PoolQueryTarget", self.insecure)?;
        self.leader()?;
        let r = req.into_inner();
        let found = self
            .blocking(move |h| crate::pools::query_targets(&h, &r.id, r.rank, &r.targets))
            .await?
            .map_err(pool_status)?;
        let infos = found
            .into_iter()
            .map(|(state, space)| {
                let space = space.unwrap_or_default();
                crate::rpc::mgmt::PoolQueryTargetInfo {
                    r#type: TargetType::Unknown as i32,
                    state: match state {
                        S::DownOut => W::DownOut,
                        S::Down => W::Down,
                        S::Up => W::Up,
                        S::UpIn => W::UpIn,
                        S::New => W::New,
                        S::Drain => W::Drain,
                        S::Unknown => W::StateUnknown,
                    } as i32,
                    space: vec![
                        crate::rpc::mgmt::StorageTargetUsage {
                            total: space.scm_total,
                            free: space.scm_free,
                            media_type: StorageMediaType::Scm as i32,
                        },
                        crate::rpc::mgmt::StorageTargetUsage {
                            total: space.nvme_total,
                            free: space.nvme_free,
                            media_type: StorageMediaType::Nvme as i32,
                        },
                    ],
                }
            })
            .collect();
        Ok(Response::new(PoolQueryTargetResp { status: 0, infos }))
    }

    async fn list_pools(
        &self,
        req: Request<ListPoolsReq>,
    ) -> Result<Response<ListPoolsResp>, Status> {
        security::authorize(&req, "MgmtSvc.ListPools", self.insecure)?;
        self.leader()?;
        let h = self.harness()?;
        let pools = h
            .ms()
            .pools()
            .into_iter()
            .map(|p| crate::rpc::mgmt::list_pools_resp::Pool {
                uuid: p.uuid,
                label: p.label,
                svc_reps: p.svc_ranks,
                state: p.state.name().into(),
                rebuild_state: p.map.rebuild.state.name().into(),
            })
            .collect();
        Ok(Response::new(ListPoolsResp {
            status: 0,
            pools,
            data_version: u64::from(h.ms().map_version()),
        }))
    }

    /// DAOS's `dmg cont list POOL` path: the pool's containers, from its pool service.
    async fn list_containers(
        &self,
        req: Request<crate::rpc::mgmt::ListContReq>,
    ) -> Result<Response<crate::rpc::mgmt::ListContResp>, Status> {
        use crate::rpc::mgmt::{ListContResp, list_cont_resp::Cont};
        security::authorize(&req, "MgmtSvc.ListContainers", self.insecure)?;
        self.leader()?;
        let id = req.into_inner().id;
        let listed = self
            .blocking(move |h| {
                let p = h.ms().pool_find(&id).ok_or_else(|| {
                    Status::not_found(format!(
                        "DER_NONEXIST(-1005): no pool {id:?} in the system (see dmg pool list)"
                    ))
                })?;
                h.containers(&p)
                    .map_err(|e| Status::unavailable(format!("pool {}: {e}", p.label)))
            })
            .await??;
        Ok(Response::new(ListContResp {
            status: 0,
            containers: listed
                .iter()
                .map(|u| Cont {
                    uuid: daos_wire::uuid_text(u),
                })
                .collect(),
        }))
    }

    async fn pool_set_prop(
        &self,
        req: Request<PoolSetPropReq>,
    ) -> Result<Response<PoolSetPropResp>, Status> {
        security::authorize(&req, "MgmtSvc.PoolSetProp", self.insecure)?;
        self.leader()?;
        let r = req.into_inner();
        let props: Vec<(String, String)> = r
            .properties
            .iter()
            .map(|p| daos_control::props::decode(p).map(|(d, v)| (d.name.to_string(), v)))
            .collect::<Result<_, _>>()
            .map_err(Status::invalid_argument)?;
        self.blocking(move |h| crate::pools::set_props(&h, &r.id, &props))
            .await?
            .map_err(pool_status)?;
        Ok(Response::new(PoolSetPropResp { status: 0 }))
    }

    async fn pool_get_prop(
        &self,
        req: Request<PoolGetPropReq>,
    ) -> Result<Response<PoolGetPropResp>, Status> {
        security::authorize(&req, "MgmtSvc.PoolGetProp", self.insecure)?;
        self.leader()?;
        let r = req.into_inner();
        let names: Vec<String> = r
            .properties
            .iter()
            .map(|p| {
                daos_control::props::by_number(p.number)
                    .map(|d| d.name.to_string())
                    .ok_or_else(|| {
                        Status::invalid_argument(format!(
                            "pool property number {} is not one this server handles",
                            p.number
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;
        let out = self
            .blocking(move |h| {
                crate::pools::get_props(&h, &r.id, &names).map(|(rec, props)| {
                    let props: Result<Vec<PoolProperty>, String> = props
                        .into_iter()
                        .map(|(d, v)| daos_control::props::encode(d.name, &v))
                        .collect();
                    (rec, props)
                })
            })
            .await?
            .map_err(pool_status)?;
        let (rec, properties) = out;
        let properties = properties.map_err(Status::internal)?;
        let out = (rec, properties);
        let (rec, properties) = out;
        Ok(Response::new(PoolGetPropResp {
            status: 0,
            properties,
            uuid: rec.uuid,
            label: rec.label,
        }))
    }
}

/// A running gRPC server.
pub struct GrpcHandle {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl GrpcHandle {
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for GrpcHandle {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The TLS configuration of the server side, from `transport_config`.
pub fn server_tls(s: &Server) -> Result<ServerTlsConfig, CmdError> {
    let t = &s.transport_config;
    let cert = security::read_pem(&t.cert, "server certificate", None)?;
    let key = security::read_pem(&t.key, "server key", Some(0o400))?;
    let ca = security::read_pem(&t.ca_cert, "CA certificate", None)?;
    Ok(ServerTlsConfig::new()
        .identity(Identity::from_pem(cert, key))
        .client_ca_root(Certificate::from_pem(ca)))
}

/// Where the control port listens: every interface with TLS; without it (insecure mode),
/// only loopback, unless `mgmt_svc_replicas` names a host other than this one's loopback (a
/// system spread over hosts must be reachable from them).
fn listen_ip(config: &Server) -> std::net::IpAddr {
    if let Some(ip) = daos_hw::net::host_addr().ok().flatten() {
        return ip;
    }
    let remote = config.mgmt_svc_replicas.iter().any(|r| {
        let host = r.rsplit_once(':').map_or(r.as_str(), |(h, _)| h);
        !(host == "localhost" || host.starts_with("127."))
    });
    if config.transport_config.allow_insecure && !remote {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        std::net::IpAddr::from([0, 0, 0, 0])
    }
}

/// Binds the control port and serves the API until stopped.
pub fn serve(
    config: &Server,
    harness: Option<Arc<Harness>>,
    ms: Arc<MsNode>,
) -> Result<GrpcHandle, CmdError> {
    let insecure = config.transport_config.allow_insecure;
    let tls = if insecure {
        None
    } else {
        Some(server_tls(config)?)
    };
    let addr = SocketAddr::from((listen_ip(config), config.port));
    let listener = TcpListener::bind(addr).map_err(|e| {
        CmdError::new(format!("cannot listen on {addr}: {e}"))
            .fix("stop the process using that port, or choose another with `port` / -p")
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| CmdError::new(format!("control listener: {e}")))?;
    let addr = listener.local_addr().unwrap_or(addr);
    let raft_check: crate::membership::raft::svc::Check =
        Arc::new(move |req, method| security::authorize(req, method, insecure));
    let raft = crate::membership::raft::svc::server(ms.clone(), raft_check);
    let rank = harness.clone().map(|h| crate::remote::server(h, insecure));
    let verify = if insecure {
        daos_auth::Verify::Digest
    } else {
        daos_auth::Verify::CertDir(config.transport_config.client_cert_dir.clone())
    };
    let cont = crate::cont::server(ms.clone(), insecure, harness.clone(), verify);
    let services = Services {
        config: Arc::new(config.clone()),
        harness,
        ms,
        insecure,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("grpc")
        .enable_all()
        .build()
        .map_err(|e| CmdError::new(format!("cannot start the gRPC runtime: {e}")))?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls).map_err(|e| {
            CmdError::new(format!("TLS setup: {e}"))
                .fix("check the certificate and key in transport_config")
        })?;
    }
    let router = builder
        .add_service(Served::new(CtlSvcServer::new(services.clone()), CTL_SERVED))
        .add_service(Served::new(MgmtSvcServer::new(services), MGMT_SERVED))
        .add_service(raft)
        .add_service(cont)
        .add_optional_service(rank);
    let thread = std::thread::Builder::new()
        .name("grpc-server".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        error!("control listener: {e}");
                        return;
                    }
                };
                let incoming = crate::listener::incoming(listener);
                // At shutdown, calls in flight get SHUTDOWN_GRACE to finish; a client that
                // keeps a connection open does not hold daos_server up beyond it.
                let stopping = Arc::new(tokio::sync::Notify::new());
                let signal = stopping.clone();
                let mut serve = std::pin::pin!(router.serve_with_incoming_shutdown(
                    incoming,
                    async move {
                        let _ = rx.await;
                        signal.notify_one();
                    }
                ));
                let mut grace = std::pin::pin!(async move {
                    stopping.notified().await;
                    tokio::time::sleep(SHUTDOWN_GRACE).await;
                });
                std::future::poll_fn(|cx| {
                    if let std::task::Poll::Ready(r) = serve.as_mut().poll(cx) {
                        if let Err(e) = r {
                            error!("management API stopped: {e}");
                        }
                        return std::task::Poll::Ready(());
                    }
                    if grace.as_mut().poll(cx).is_ready() {
                        warn!(
                            "management API: connections still open {}s after shutdown; closing them",
                            SHUTDOWN_GRACE.as_secs()
                        );
                        return std::task::Poll::Ready(());
                    }
                    std::task::Poll::Pending
                })
                .await;
            });
            runtime.shutdown_timeout(SHUTDOWN_GRACE);
        })
        .map_err(|e| CmdError::new(format!("cannot start the gRPC thread: {e}")))?;
    Ok(GrpcHandle {
        addr,
        shutdown: Some(tx),
        thread: Some(thread),
    })
}

/// How long calls in flight may take to finish once daos_server stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// `ctl.CtlSvc` methods this server implements (others DAOS defines answer Unimplemented).
const CTL_SERVED: &[&str] = &[
    "StorageScan",
    "FabricCheckServe",
    "FabricCheckRun",
    "NetworkScan",
    "StoragePrepare",
    "ConfigGenerate",
    "StorageFormat",
    "PrepShutdownRanks",
    "StopRanks",
    "StartRanks",
    "ResetFormatRanks",
    "SetEngineLogMasks",
];

/// `mgmt.MgmtSvc` methods this server implements.
const MGMT_SERVED: &[&str] = &[
    "Join",
    "SystemExclude",
    "ClusterEvent",
    "LeaderQuery",
    "GetAttachInfo",
    "SystemQuery",
    "SystemStop",
    "SystemStart",
    "PoolCreate",
    "PoolDestroy",
    "PoolQuery",
    "ListPools",
    "PoolSetProp",
    "PoolGetProp",
    "PoolExclude",
    "PoolDrain",
    "PoolReintegrate",
    "PoolQueryTarget",
    "PoolExtend",
    "ListContainers",
    "PoolEvict",
    "PoolGetACL",
    "PoolOverwriteACL",
    "PoolUpdateACL",
    "PoolDeleteACL",
];

/// A generated service that answers a method it does not implement (one DAOS defines, or any
/// other) with gRPC `Unimplemented` naming the call and its dmg command, instead of tonic's
/// bare status.
#[derive(Clone)]
struct Served<S> {
    inner: S,
    methods: &'static [&'static str],
}

impl<S> Served<S> {
    fn new(inner: S, methods: &'static [&'static str]) -> Served<S> {
        Served { inner, methods }
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for Served<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower::Service<http::Request<tonic::body::Body>> for Served<S>
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + tonic::server::NamedService
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let method = req.uri().path().rsplit('/').next().unwrap_or_default();
        if self.methods.contains(&method) {
            return Box::pin(self.inner.call(req));
        }
        let service = S::NAME.rsplit('.').next().unwrap_or(S::NAME);
        let message = format!(
            "{service}.{method} (dmg {}) is not implemented by this daos_server (daos-rs {})",
            command_words(method),
            crate::server::VERSION
        );
        Box::pin(async move { Ok(Status::unimplemented(message).into_http()) })
    }
}

/// `PoolQueryTarget` -> `pool query target`: how a DAOS method reads as a dmg command.
fn command_words(method: &str) -> String {
    let mut out = String::new();
    for (i, c) in method.char_indices() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// An ACL as DAOS's `ACLResp`.
fn acl_resp(
    (owner, group, entries): (String, String, Vec<String>),
) -> Response<crate::rpc::mgmt::AclResp> {
    Response::new(crate::rpc::mgmt::AclResp {
        status: 0,
        acl: Some(crate::rpc::mgmt::AccessControlList {
            entries,
            owner_user: owner,
            owner_group: group,
        }),
    })
}

/// A pool-service error as a gRPC status.
fn pool_status(e: crate::pools::PoolSvcError) -> Status {
    use crate::pools::PoolErrorKind::*;
    match e.kind {
        BadRequest => Status::invalid_argument(e.message),
        NotFound => Status::not_found(e.message),
        Exists => Status::already_exists(e.message),
        NoSpace => Status::resource_exhausted(e.message),
        Failed => Status::failed_precondition(e.message),
    }
}

fn pool_stats(values: &[u64], media: StorageMediaType) -> StorageUsageStats {
    let n = values.len().max(1) as u64;
    StorageUsageStats {
        total: 0,
        free: values.iter().sum(),
        min: values.iter().copied().min().unwrap_or(0),
        max: values.iter().copied().max().unwrap_or(0),
        mean: values.iter().sum::<u64>() / n,
        media_type: media as i32,
    }
}

/// A pool's state as DAOS's `PoolServiceState`.
fn service_state(s: crate::membership::PoolState) -> PoolServiceState {
    match s {
        crate::membership::PoolState::Creating => PoolServiceState::Creating,
        crate::membership::PoolState::Ready => PoolServiceState::Ready,
        crate::membership::PoolState::Destroying => PoolServiceState::Destroying,
    }
}

/// Ranks as DAOS writes a rank set: `0-3,5`.
fn rank_set(ranks: &[u32]) -> String {
    crate::hostlist::format_ranks(ranks)
        .trim_matches(['[', ']'])
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `rpc` names a service declares in its `.proto`.
    fn declared(proto: &str, service: &str) -> Vec<String> {
        let body = proto
            .split(&format!("service {service} {{"))
            .nth(1)
            .and_then(|rest| rest.split('}').next())
            .unwrap_or_default();
        body.lines()
            .filter_map(|l| l.trim().strip_prefix("rpc "))
            .filter_map(|l| l.split(['(', ' ']).next())
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn every_declared_method_is_served_and_others_are_named() {
        let ctl = declared(include_str!("../../proto/ctl.proto"), "CtlSvc");
        let mgmt = declared(include_str!("../../proto/mgmt.proto"), "MgmtSvc");
        assert!(!ctl.is_empty() && !mgmt.is_empty());
        let mut c: Vec<&str> = ctl.iter().map(String::as_str).collect();
        let mut m: Vec<&str> = mgmt.iter().map(String::as_str).collect();
        c.sort_unstable();
        m.sort_unstable();
        let mut cs = CTL_SERVED.to_vec();
        let mut ms = MGMT_SERVED.to_vec();
        cs.sort_unstable();
        ms.sort_unstable();
        assert_eq!(c, cs, "CtlSvc");
        assert_eq!(m, ms, "MgmtSvc");
        assert_eq!(command_words("PoolQueryTarget"), "pool query target");
    }
}

/// Whether a request's `sys` names system `name`: DAOS's tools send `<name>-<their version>`
/// (`daos_server-2.6.5`), daos-rs's the name alone.
fn same_system(sys: &str, name: &str) -> bool {
    sys == name
        || sys
            .strip_prefix(name)
            .and_then(|v| v.strip_prefix('-'))
            .is_some_and(|v| {
                !v.is_empty()
                    && v.split('.')
                        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            })
}

#[cfg(test)]
mod system_name_tests {
    use super::same_system;

    #[test]
    fn daos_tools_append_their_version() {
        assert!(same_system("daos_server", "daos_server"));
        assert!(same_system("daos_server-2.6.5", "daos_server"));
        assert!(same_system("daos_server-2", "daos_server"));
        assert!(!same_system("daos_server-x", "daos_server"));
        assert!(!same_system("daos_server-", "daos_server"));
        assert!(!same_system("other-2.6.5", "daos_server"));
        assert!(!same_system("daos_server2", "daos_server"));
    }
}
