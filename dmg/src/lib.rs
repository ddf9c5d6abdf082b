//! `dmg`: the admin client of the management API. Each command builds a request, sends it to
//! the hosts of the host list (or to the management service for system commands), groups
//! identical host results into host sets, and prints DAOS's tables or, with `-j`,
//! `{"response": ..., "error": ..., "status": ...}`. The exit code is non-zero when any host
//! or rank failed or was unknown.

pub use daos_control::{Output, load_control, print};

use daos_control::hostlist;
use daos_control::table::{bytes_si, member_state, render};
use std::collections::BTreeMap;

use daos_control::{Target, errors_table, failed, fan_out, group, ms_client, split, status_text};
use daos_proto::ctl::ctl_svc_client::CtlSvcClient;
use daos_proto::ctl::*;

use daos_proto::mgmt::*;
use daos_proto::shared::RankResult;
use serde_json::{Value, json};

/// How dmg names a storage tier's media.
fn media_name(m: i32) -> &'static str {
    match StorageMediaType::try_from(m) {
        Ok(StorageMediaType::Nvme) => "NVMe",
        _ => "SCM",
    }
}

/// A block under a title set off by dashes, as dmg prints a host set's results (and scan
/// sections): `indent` before each of the three title lines.
fn titled(title: &str, indent: &str, body: &str) -> String {
    let dashes = "-".repeat(title.chars().count());
    format!("{indent}{dashes}\n{indent}{title}\n{indent}{dashes}\n{body}")
}

/// `dmg storage format [--force]`.
pub async fn storage_format(t: &Target, force: bool, verbose: bool) -> Output {
    let results = fan_out(t, |ch| async move {
        CtlSvcClient::new(ch)
            .storage_format(StorageFormatReq {
                reformat: force,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
    })
    .await;
    let mut errors = Vec::new();
    let mut counts = Vec::new();
    let mut json_hosts = serde_json::Map::new();
    let mut details = String::new();
    for (host, r) in &results {
        match r {
            Ok(resp) => {
                for m in &resp.mrets {
                    if let Some(st) = m.state.as_ref().filter(|s| s.status != 0) {
                        errors.push((host.clone(), st.error.clone()));
                    }
                }
                let scm = resp
                    .mrets
                    .iter()
                    .filter(|m| m.state.as_ref().is_some_and(|s| s.status == 0))
                    .count();
                let nvme = resp
                    .crets
                    .iter()
                    .filter(|c| c.state.as_ref().is_some_and(|s| s.status == 0))
                    .count();
                counts.push((host.clone(), (scm, nvme)));
                json_hosts.insert(host.clone(), json!({
                    "scm": resp.mrets.iter().map(|m| json!({"mntpoint": m.mntpoint, "instance": m.instanceidx, "status": m.state.as_ref().map(|s| s.status), "error": m.state.as_ref().map(|s| s.error.clone())})).collect::<Vec<_>>(),
                    "nvme": resp.crets.iter().map(|c| json!({"device": c.pci_addr, "role_bits": c.role_bits})).collect::<Vec<_>>(),
                }));
                if verbose {
                    let rows: Vec<Vec<String>> = resp
                        .mrets
                        .iter()
                        .map(|m| {
                            vec![
                                m.mntpoint.clone(),
                                if m.state.as_ref().is_some_and(|s| s.status == 0) {
                                    "CTL_SUCCESS".into()
                                } else {
                                    "CTL_ERROR".into()
                                },
                            ]
                        })
                        .collect();
                    details.push_str(&format!(
                        "{}\n",
                        render(&["SCM Mount", "Format Result"], &rows, "")
                    ));
                    let rows: Vec<Vec<String>> = resp
                        .crets
                        .iter()
                        .map(|c| vec![c.pci_addr.clone(), "CTL_SUCCESS".into(), "NA".into()])
                        .collect();
                    if !rows.is_empty() {
                        details.push_str(&format!(
                            "{}\n",
                            render(&["NVMe PCI", "Format Result", "Role(s)"], &rows, "")
                        ));
                    }
                }
            }
            Err(e) => errors.push((host.clone(), e.clone())),
        }
    }
    let rows: Vec<Vec<String>> = group(&counts)
        .into_iter()
        .map(|(h, (s, n))| vec![h, s.to_string(), n.to_string()])
        .collect();
    let mut text = errors_table(&errors);
    if !rows.is_empty() {
        text.push_str(&format!(
            "Format Summary:\n{}",
            render(&["Hosts", "SCM Devices", "NVMe Devices"], &rows, "  ")
        ));
    }
    text.push_str(&details);
    let ok = errors.is_empty();
    Output {
        text,
        json: json!({"host_results": json_hosts}),
        ok,
        error: (!ok).then(|| format!("{} host(s) failed", errors.len())),
    }
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `dmg storage scan [-v]`: each host's PMem and NVMe hardware (and, verbose, the storage its
/// config names), identical hosts grouped.
pub async fn storage_scan(t: &Target, verbose: bool) -> Output {
    let results = fan_out(t, |ch| async move {
        CtlSvcClient::new(ch)
            .storage_scan(StorageScanReq {
                nvme: Some(ScanNvmeReq {
                    basic: !verbose,
                    ..Default::default()
                }),
                scm: Some(ScanScmReq { usage: false }),
            })
            .await
            .map(|r| r.into_inner())
    })
    .await;
    let mut errors = Vec::new();
    let mut summary = Vec::new();
    let mut details = Vec::new();
    let mut json_hosts = serde_json::Map::new();
    for (host, r) in &results {
        let resp = match r {
            Ok(resp) => resp,
            Err(e) => {
                errors.push((host.clone(), e.clone()));
                continue;
            }
        };
        let (namespaces, ctrlrs) = scan_parts(resp);
        let modules = resp.scm.as_ref().map_or(&[][..], |s| &s.modules[..]);
        let nvme_bytes: u64 = ctrlrs.iter().map(ctrlr_capacity).sum();
        // DAOS: the namespaces when there are any, else the modules.
        let scm_summary = if namespaces.is_empty() {
            format!(
                "{} ({})",
                bytes_si(modules.iter().map(|m| m.capacity).sum()),
                count(modules.len(), "module", "modules")
            )
        } else {
            format!(
                "{} ({})",
                bytes_si(namespaces.iter().map(|n| n.size).sum()),
                count(namespaces.len(), "namespace", "namespaces")
            )
        };
        summary.push((
            host.clone(),
            (
                scm_summary,
                format!(
                    "{} ({})",
                    bytes_si(nvme_bytes),
                    count(ctrlrs.len(), "controller", "controllers")
                ),
            ),
        ));
        if verbose {
            let mut text = format!(
                "HugePage Size: {} KB\n\n",
                resp.mem_info.as_ref().map_or(0, |m| m.hugepage_size_kb)
            );
            if namespaces.is_empty() && modules.is_empty() {
                text.push_str("  No SCM modules found\n");
            } else if namespaces.is_empty() {
                let rows: Vec<Vec<String>> = modules
                    .iter()
                    .map(|m| {
                        vec![
                            m.physicalid.to_string(),
                            m.socketid.to_string(),
                            m.controllerid.to_string(),
                            m.channelid.to_string(),
                            m.channelposition.to_string(),
                            daos_control::table::bytes_iec(m.capacity),
                            m.uid.clone(),
                            m.part_number.clone(),
                            String::new(),
                        ]
                    })
                    .collect();
                text.push_str(&render(
                    &[
                        "SCM Module",
                        "Socket",
                        "Memory Ctrlr",
                        "Channel",
                        "Channel Slot",
                        "Capacity",
                        "UID",
                        "Part Number",
                        "Health",
                    ],
                    &rows,
                    "",
                ));
            } else {
                let rows: Vec<Vec<String>> = namespaces
                    .iter()
                    .map(|n| {
                        vec![
                            n.blockdev.clone(),
                            n.numa_node.to_string(),
                            bytes_si(n.size),
                        ]
                    })
                    .collect();
                text.push_str(&render(&["SCM Namespace", "Socket", "Capacity"], &rows, ""));
            }
            text.push('\n');
            if ctrlrs.is_empty() {
                text.push_str("  No NVMe devices found\n");
            } else {
                let rows: Vec<Vec<String>> = ctrlrs
                    .iter()
                    .map(|c| {
                        // DAOS: the first SMD device's roles and rank.
                        let (roles, rank) = c
                            .smd_devices
                            .first()
                            .map_or(("NA".to_string(), "None".to_string()), |d| {
                                (bdev_roles(d.role_bits), d.rank.to_string())
                            });
                        vec![
                            c.pci_addr.clone(),
                            c.model.clone(),
                            c.fw_rev.clone(),
                            c.socket_id.to_string(),
                            bytes_si(ctrlr_capacity(c)),
                            roles,
                            rank,
                        ]
                    })
                    .collect();
                text.push_str(&render(
                    &[
                        "NVMe PCI",
                        "Model",
                        "FW Revision",
                        "Socket",
                        "Capacity",
                        "Role(s)",
                        "Rank",
                    ],
                    &rows,
                    "",
                ));
            }
            text.push('\n');
            details.push((host.clone(), text));
        }
        json_hosts.insert(host.clone(), json!({
            "scm_namespaces": namespaces.iter().map(|n| json!({"blockdev": n.blockdev, "dev": n.dev, "numa_node": n.numa_node, "size": n.size})).collect::<Vec<_>>(),
            "nvme_controllers": ctrlrs.iter().map(|c| json!({"pci_addr": c.pci_addr, "model": c.model, "serial": c.serial, "fw_rev": c.fw_rev, "socket_id": c.socket_id, "capacity": ctrlr_capacity(c)})).collect::<Vec<_>>(),
        }));
    }
    let mut text = errors_table(&errors);
    if verbose {
        for (hosts, block) in group(&details) {
            text.push_str(&titled(&hosts, "", &block));
        }
    } else {
        let rows: Vec<Vec<String>> = group(&summary)
            .into_iter()
            .map(|(h, (s, n))| vec![h, s, n])
            .collect();
        if !rows.is_empty() {
            text.push_str(&render(&["Hosts", "SCM Total", "NVMe Total"], &rows, ""));
        }
    }
    let ok = errors.is_empty();
    Output {
        text,
        json: json!({"host_results": json_hosts}),
        ok,
        error: (!ok).then(|| format!("{} host(s) failed", errors.len())),
    }
}

/// A scan's SCM namespaces and NVMe controllers (empty when a part is missing).
fn scan_parts(resp: &StorageScanResp) -> (&[ScmNamespace], &[NvmeController]) {
    (
        resp.scm.as_ref().map_or(&[][..], |s| &s.namespaces[..]),
        resp.nvme.as_ref().map_or(&[][..], |n| &n.ctrlrs[..]),
    )
}

/// DAOS's names of a bdev's role bits (`data`, `meta`, `wal`), or `NA`.
fn bdev_roles(bits: u32) -> String {
    let names: Vec<&str> = [(1, "data"), (2, "meta"), (4, "wal")]
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "NA".into()
    } else {
        names.join(",")
    }
}

/// A controller's capacity: its namespaces' sizes.
fn ctrlr_capacity(c: &NvmeController) -> u64 {
    c.namespaces.iter().map(|n| n.size).sum()
}

/// DAOS's `dmg storage query usage`: per host, SCM and NVMe total, free and used (the
/// mounts and blobstores of the running engines).
pub async fn storage_query_usage(t: &Target) -> Output {
    let results = fan_out(t, |ch| async move {
        CtlSvcClient::new(ch)
            .storage_scan(StorageScanReq {
                nvme: Some(ScanNvmeReq {
                    meta: true,
                    ..Default::default()
                }),
                scm: Some(ScanScmReq { usage: true }),
            })
            .await
            .map(|r| r.into_inner())
    })
    .await;
    let mut errors = Vec::new();
    let mut rows = Vec::new();
    let mut json_hosts = serde_json::Map::new();
    for (host, r) in &results {
        let resp = match r {
            Ok(resp) => resp,
            Err(e) => {
                errors.push((host.clone(), e.clone()));
                continue;
            }
        };
        let (namespaces, ctrlrs) = scan_parts(resp);
        let mounts = namespaces.iter().filter_map(|n| n.mount.as_ref());
        let (scm_total, scm_free) =
            mounts.fold((0, 0), |(t, f), m| (t + m.total_bytes, f + m.avail_bytes));
        let devs = ctrlrs.iter().flat_map(|c| c.smd_devices.iter());
        let (nvme_total, nvme_free) =
            devs.fold((0, 0), |(t, f), d| (t + d.total_bytes, f + d.avail_bytes));
        rows.push((
            host.clone(),
            vec![
                bytes_si(scm_total),
                bytes_si(scm_free),
                percent_used(scm_total, scm_free),
                bytes_si(nvme_total),
                bytes_si(nvme_free),
                percent_used(nvme_total, nvme_free),
            ],
        ));
        json_hosts.insert(
            host.clone(),
            json!({
                "scm_total": scm_total, "scm_free": scm_free,
                "nvme_total": nvme_total, "nvme_free": nvme_free,
                "scm_mounts": namespaces.iter().filter_map(|n| n.mount.as_ref()).map(|m| json!({"path": m.path, "class": m.class, "rank": m.rank, "total_bytes": m.total_bytes, "avail_bytes": m.avail_bytes})).collect::<Vec<_>>(),
                "smd_devices": ctrlrs.iter().flat_map(|c| c.smd_devices.iter().map(move |d| json!({"device": c.pci_addr, "rank": d.rank, "tgt_ids": d.tgt_ids, "total_bytes": d.total_bytes, "avail_bytes": d.avail_bytes}))).collect::<Vec<_>>(),
            }),
        );
    }
    let mut text = errors_table(&errors);
    let table: Vec<Vec<String>> = group(&rows)
        .into_iter()
        .map(|(h, mut r)| {
            r.insert(0, h);
            r
        })
        .collect();
    if !table.is_empty() {
        text.push_str(&render(
            &[
                "Hosts",
                "SCM-Total",
                "SCM-Free",
                "SCM-Used",
                "NVMe-Total",
                "NVMe-Free",
                "NVMe-Used",
            ],
            &table,
            "",
        ));
    }
    let ok = errors.is_empty();
    Output {
        text,
        json: json!({"host_results": json_hosts}),
        ok,
        error: (!ok).then(|| format!("{} host(s) failed", errors.len())),
    }
}

/// DAOS's usage column: `75 %` (truncated, as DAOS's `PercentageString`), or `N/A` without a
/// total.
fn percent_used(total: u64, free: u64) -> String {
    if total == 0 {
        return "N/A".into();
    }
    let used = total.saturating_sub(free);
    format!("{} %", (used as f64 / total as f64 * 100.0) as u64)
}

/// `dmg network check [-p PROVIDER] [--sizes S] [-I N]`: the fabric check from the second host
/// of the host list to the first (or within the only one), in fi_pingpong's columns.
pub async fn network_check(t: &Target, provider: &str, sizes: &str, iterations: u32) -> Output {
    let Some(server_host) = t.hosts.first() else {
        return failed("no host to check".into());
    };
    let client_host = t.hosts.get(1).unwrap_or(server_host);
    let mut server = match t.channel(server_host).await {
        Ok(c) => CtlSvcClient::new(c),
        Err(e) => return failed(e),
    };
    let served = match server
        .fabric_check_serve(FabricCheckServeReq {
            provider: provider.into(),
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) => return failed(format!("{server_host}: {}", status_text(s))),
    };
    let mut client = match t.channel(client_host).await {
        Ok(c) => CtlSvcClient::new(c),
        Err(e) => return failed(e),
    };
    let run = match client
        .fabric_check_run(FabricCheckRunReq {
            address: served.address.clone(),
            provider: served.provider.clone(),
            sizes: sizes.into(),
            iterations,
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) => return failed(format!("{client_host}: {}", status_text(s))),
    };
    let doc: Value = match serde_json::from_str(&run.json) {
        Ok(v) => v,
        Err(e) => {
            return failed(format!(
                "{client_host}: unreadable fabric check results: {e}"
            ));
        }
    };
    let mut text = format!(
        "Fabric check: {client_host} -> {server_host} ({}), provider {}\n",
        served.address, served.provider
    );
    text.push_str("bytes   #sent  #ack   usec/xfer  MB/sec     Mxfers/sec\n");
    let results = doc["results"].as_array().cloned().unwrap_or_default();
    for r in &results {
        let bytes = r["bytes"].as_u64().unwrap_or(0);
        let n = r["iterations"].as_u64().unwrap_or(0);
        let us = r["usec_per_xfer"]["median"].as_f64().unwrap_or(0.0);
        let size = match bytes {
            b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}m", b >> 20),
            b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{}k", b >> 10),
            b => b.to_string(),
        };
        text.push_str(&format!(
            "{:<8}{:<7}{:<7}{:<11.2}{:<11.2}{:.2}\n",
            size,
            n,
            format!("={n}"),
            us,
            r["mb_per_sec"].as_f64().unwrap_or(0.0),
            if us > 0.0 { 1.0 / us } else { 0.0 }
        ));
    }
    Output {
        text,
        json: json!({
            "server": server_host, "client": client_host, "address": served.address,
            "provider": served.provider, "results": results,
        }),
        ok: !results.is_empty(),
        error: results
            .is_empty()
            .then(|| "the fabric check returned no results".to_string()),
    }
}

/// `dmg network scan [-p PROVIDER]`: per host set, per NUMA socket, providers and interfaces.
pub async fn network_scan(t: &Target, provider: &str) -> Output {
    let provider = provider.to_string();
    let results = fan_out(t, |ch| {
        let provider = provider.clone();
        async move {
            CtlSvcClient::new(ch)
                .network_scan(NetworkScanReq {
                    provider,
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner())
        }
    })
    .await;
    let mut errors = Vec::new();
    let mut blocks = Vec::new();
    let mut json_hosts = serde_json::Map::new();
    for (host, r) in &results {
        let resp = match r {
            Ok(resp) => resp,
            Err(e) => {
                errors.push((host.clone(), e.clone()));
                continue;
            }
        };
        // NUMA socket -> provider -> interfaces, in scan order (best provider first).
        let mut by_numa: BTreeMap<u32, Vec<(String, Vec<String>)>> = BTreeMap::new();
        for i in &resp.interfaces {
            let list = by_numa.entry(i.numanode).or_default();
            match list.iter_mut().find(|(p, _)| *p == i.provider) {
                Some((_, devs)) => devs.push(i.device.clone()),
                None => list.push((i.provider.clone(), vec![i.device.clone()])),
            }
        }
        let mut block = String::new();
        if by_numa.is_empty() {
            block.push_str("\n    No fabric interfaces found\n");
        }
        for (numa, provs) in by_numa {
            block.push('\n');
            block.push_str(&titled(&format!("NUMA Socket {numa}"), "    ", "\n"));
            let rows: Vec<Vec<String>> = provs
                .into_iter()
                .map(|(p, d)| vec![p, d.join(", ")])
                .collect();
            block.push_str(&render(&["Provider", "Interfaces"], &rows, "        "));
        }
        blocks.push((host.clone(), block));
        json_hosts.insert(host.clone(), json!({
            "interfaces": resp.interfaces.iter().map(|i| json!({"provider": i.provider, "device": i.device, "numa_node": i.numanode})).collect::<Vec<_>>(),
            "numa_count": resp.numacount, "cores_per_numa": resp.corespernuma,
        }));
    }
    let mut text = errors_table(&errors);
    for (hosts, block) in group(&blocks) {
        text.push_str(&titled(&hosts, "", &block));
        text.push('\n');
    }
    let ok = errors.is_empty();
    Output {
        text,
        json: json!({"host_results": json_hosts}),
        ok,
        error: (!ok).then(|| format!("{} host(s) failed", errors.len())),
    }
}

/// `dmg storage prepare ...`: each host prepares its own NVMe and PMem.
pub async fn storage_prepare(t: &Target, req: StoragePrepareReq) -> Output {
    let results = fan_out(t, |ch| {
        let req = req.clone();
        async move {
            CtlSvcClient::new(ch)
                .storage_prepare(req)
                .await
                .map(|r| r.into_inner())
        }
    })
    .await;
    let (blocks, errors) = split(&results, |resp| resp.lines.join("\n"));
    let mut text = errors_table(&errors);
    let mut json_hosts = serde_json::Map::new();
    for (hosts, lines) in group(&blocks) {
        text.push_str(&titled(&hosts, "", &lines));
        text.push('\n');
        json_hosts.insert(hosts, json!(lines.lines().collect::<Vec<_>>()));
    }
    let ok = errors.is_empty();
    Output {
        text,
        json: json!({"host_results": json_hosts}),
        ok,
        error: (!ok).then(|| format!("{} host(s) failed", errors.len())),
    }
}

/// `dmg config generate ...`: every host generates from its hardware; identical results give
/// the config, different ones are an error (DAOS needs homogeneous storage nodes).
pub async fn config_generate(t: &Target, req: ConfigGenerateReq) -> Output {
    let results = fan_out(t, |ch| {
        let req = req.clone();
        async move {
            CtlSvcClient::new(ch)
                .config_generate(req)
                .await
                .map(|r| r.into_inner().yaml)
        }
    })
    .await;
    let (yamls, errors) = split(&results, String::clone);
    let groups = group(&yamls);
    if errors.is_empty() && groups.len() == 1 {
        let (_, yaml) = &groups[0];
        return Output {
            text: yaml.clone(),
            json: json!({"config": yaml}),
            ok: true,
            error: None,
        };
    }
    let mut text = errors_table(&errors);
    if groups.len() > 1 {
        let rows: Vec<Vec<String>> = groups
            .iter()
            .enumerate()
            .map(|(i, (h, _))| vec![h.clone(), format!("variant {}", i + 1)])
            .collect();
        text.push_str("Hosts have different hardware, so no single config fits them:\n");
        text.push_str(&render(&["Hosts", "Generated config"], &rows, "  "));
    }
    Output {
        text,
        json: Value::Null,
        ok: false,
        error: Some("config generate failed".into()),
    }
}

fn rank_list_text(ranks: &str) -> usize {
    hostlist::parse_ranks(ranks).map(|r| r.len()).unwrap_or(0)
}

/// The ranks a system command is about: `-r/--ranks` or `--rank-hosts` (all when neither).
#[derive(Clone, Debug, Default)]
pub struct Which {
    pub ranks: String,
    pub hosts: String,
}

impl Which {
    pub fn new(ranks: &Option<String>, hosts: &Option<String>) -> Which {
        Which {
            ranks: ranks.clone().unwrap_or_default(),
            hosts: hosts.clone().unwrap_or_default(),
        }
    }
}

/// The "Unknown N hosts/ranks" lines DAOS prints after a table.
fn unknown(absent_ranks: &str, absent_hosts: &str) -> String {
    let mut text = String::new();
    if !absent_ranks.is_empty() {
        let n = rank_list_text(absent_ranks);
        text.push_str(&format!(
            "\nUnknown {n} {}: {}\n",
            if n == 1 { "rank" } else { "ranks" },
            absent_ranks.trim_matches(['[', ']'])
        ));
    }
    if !absent_hosts.is_empty() {
        let n = absent_hosts.split(',').count();
        text.push_str(&format!(
            "\nUnknown {n} {}: {}\n",
            if n == 1 { "host" } else { "hosts" },
            absent_hosts
        ));
    }
    text
}

/// `dmg system query [-v] [-r RANKS | --rank-hosts HOSTS]`.
pub async fn system_query(t: &Target, which: &Which, verbose: bool) -> Output {
    let ranks = which.ranks.as_str();
    let mut c = match ms_client(t).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let resp = match c
        .system_query(SystemQueryReq {
            ranks: ranks.into(),
            hosts: which.hosts.clone(),
            ..Default::default()
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) => return failed(status_text(s)),
    };
    let mut text = String::new();
    if resp.members.is_empty() {
        text.push_str("Query matches no ranks in system\n");
    } else if verbose {
        let rows: Vec<Vec<String>> = resp
            .members
            .iter()
            .map(|m| {
                vec![
                    m.rank.to_string(),
                    m.uuid.clone(),
                    m.addr.clone(),
                    m.fault_domain.clone(),
                    member_state(&m.state),
                    m.info.clone(),
                ]
            })
            .collect();
        text.push_str(&render(
            &[
                "Rank",
                "UUID",
                "Control Address",
                "Fault Domain",
                "State",
                "Reason",
            ],
            &rows,
            "",
        ));
        // DAOS's dmg ends its tables with a blank line.
        text.push('\n');
    } else {
        let mut by_state: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for m in &resp.members {
            by_state
                .entry(member_state(&m.state))
                .or_default()
                .push(m.rank);
        }
        let rows: Vec<Vec<String>> = by_state
            .into_iter()
            .map(|(s, r)| vec![hostlist::format_ranks(&r), s])
            .collect();
        text.push_str(&render(&["Rank", "State"], &rows, ""));
        text.push('\n');
    }
    let absent = !resp.absentranks.is_empty() || !resp.absenthosts.is_empty();
    text.push_str(&unknown(&resp.absentranks, &resp.absenthosts));
    let members: Vec<Value> = resp
        .members
        .iter()
        .map(|m| json!({"rank": m.rank, "uuid": m.uuid, "addr": m.addr, "fault_domain": m.fault_domain, "state": m.state.to_lowercase(), "info": m.info, "fabric_uri": m.fabric_uri, "incarnation": m.incarnation}))
        .collect();
    Output {
        text,
        json: json!({"members": members, "absent_ranks": resp.absentranks, "absent_hosts": resp.absenthosts, "data_version": resp.data_version}),
        ok: !absent,
        error: absent.then(|| {
            [
                (!resp.absentranks.is_empty())
                    .then(|| format!("unknown ranks: {}", resp.absentranks)),
                (!resp.absenthosts.is_empty())
                    .then(|| format!("unknown hosts: {}", resp.absenthosts)),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; ")
        }),
    }
}

fn rank_results(results: &[RankResult], absent: &str, absent_hosts: &str) -> Output {
    let mut groups: BTreeMap<(String, String), Vec<u32>> = BTreeMap::new();
    for r in results {
        let result = if r.errored {
            if r.msg.is_empty() {
                "FAILED".into()
            } else {
                r.msg.clone()
            }
        } else {
            "OK".into()
        };
        groups
            .entry((r.action.clone(), result))
            .or_default()
            .push(r.rank);
    }
    let rows: Vec<Vec<String>> = groups
        .into_iter()
        .map(|((a, res), ranks)| vec![hostlist::format_ranks(&ranks), a, res])
        .collect();
    let mut text = if rows.is_empty() {
        "No ranks matched\n".to_string()
    } else {
        // DAOS's dmg ends the table with a blank line.
        render(&["Rank", "Operation", "Result"], &rows, "") + "\n"
    };
    text.push_str(&unknown(absent, absent_hosts));
    let failed_ranks: Vec<u32> = results
        .iter()
        .filter(|r| r.errored)
        .map(|r| r.rank)
        .collect();
    let ok = failed_ranks.is_empty() && absent.is_empty() && absent_hosts.is_empty();
    let json = json!({"results": results.iter().map(|r| json!({"rank": r.rank, "action": r.action, "errored": r.errored, "msg": r.msg, "state": r.state.to_lowercase(), "addr": r.addr})).collect::<Vec<_>>(), "absent_ranks": absent, "absent_hosts": absent_hosts});
    let error = (!ok).then(|| {
        if failed_ranks.is_empty() && absent.is_empty() {
            format!("unknown hosts: {absent_hosts}")
        } else if failed_ranks.is_empty() {
            format!("unknown ranks: {absent}")
        } else {
            format!("ranks {} failed", hostlist::format_ranks(&failed_ranks))
        }
    });
    Output {
        text,
        json,
        ok,
        error,
    }
}

/// `dmg system stop [--force] [-r RANKS | --rank-hosts HOSTS]`.
pub async fn system_stop(t: &Target, which: &Which, force: bool) -> Output {
    let mut c = match ms_client(t).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    match c
        .system_stop(SystemStopReq {
            ranks: which.ranks.clone(),
            hosts: which.hosts.clone(),
            prep: true,
            kill: true,
            force,
            ..Default::default()
        })
        .await
    {
        Ok(r) => {
            let r = r.into_inner();
            rank_results(&r.results, &r.absentranks, &r.absenthosts)
        }
        Err(s) => failed(status_text(s)),
    }
}

/// `dmg system start [-r RANKS | --rank-hosts HOSTS]`.
pub async fn system_start(t: &Target, which: &Which) -> Output {
    let mut c = match ms_client(t).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    match c
        .system_start(SystemStartReq {
            ranks: which.ranks.clone(),
            hosts: which.hosts.clone(),
            ..Default::default()
        })
        .await
    {
        Ok(r) => {
            let r = r.into_inner();
            rank_results(&r.results, &r.absentranks, &r.absenthosts)
        }
        Err(s) => failed(status_text(s)),
    }
}

/// `dmg system exclude|clear-exclude [-r RANKS | --rank-hosts HOSTS]`: `updated ranks: SET`.
pub async fn system_exclude(t: &Target, which: &Which, clear: bool) -> Output {
    let mut c = match ms_client(t).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let req = daos_proto::mgmt::SystemExcludeReq {
        ranks: which.ranks.clone(),
        hosts: which.hosts.clone(),
        clear,
        ..Default::default()
    };
    match c.system_exclude(req).await {
        Ok(r) => {
            let r = r.into_inner();
            let ranks: Vec<u32> = r.results.iter().map(|x| x.rank).collect();
            Output {
                text: format!(
                    "updated ranks: {}\n",
                    hostlist::format_ranks(&ranks).trim_matches(['[', ']'])
                ),
                json: json!({"results": r.results.iter().map(|x| json!({"rank": x.rank, "action": x.action, "state": x.state, "addr": x.addr})).collect::<Vec<_>>()}),
                ok: true,
                error: None,
            }
        }
        Err(s) => failed(status_text(s)),
    }
}

/// `dmg system leader-query`.
pub async fn leader_query(t: &Target) -> Output {
    let mut c = match ms_client(t).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    match c.leader_query(LeaderQueryReq::default()).await {
        Ok(r) => {
            let mut r = r.into_inner();
            // As DAOS's dmg: every replica is asked too; those that do not answer are listed
            // as unresponsive.
            let probe = Target {
                hosts: r.replicas.clone(),
                tls: t.tls.clone(),
                component: t.component,
                agent: t.agent.clone(),
            };
            let answers = daos_control::fan_out_within(
                &probe,
                std::time::Duration::from_secs(5),
                |conn| async move {
                    daos_proto::mgmt::mgmt_svc_client::MgmtSvcClient::new(conn)
                        .leader_query(LeaderQueryReq::default())
                        .await
                        .map(|_| ())
                },
            )
            .await;
            for (host, a) in answers {
                if a.is_err() && !r.down_replicas.contains(&host) {
                    r.down_replicas.push(host);
                }
            }
            let text = format!(
                "Current Leader: {}\n   Replica Set: {}\n  Unresponsive Replicas: {}\n",
                r.current_leader,
                r.replicas.join(", "),
                // As DAOS's dmg: the list, empty when none.
                r.down_replicas.join(", ")
            );
            Output {
                text,
                json: json!({"current_leader": r.current_leader, "replicas": r.replicas, "down_replicas": r.down_replicas}),
                ok: true,
                error: None,
            }
        }
        Err(s) => failed(status_text(s)),
    }
}

/// `dmg pool create <label> (--size N[%] | --scm-size N [--nvme-size N]) [...]`.
pub async fn pool_create(t: &Target, req: PoolCreateReq) -> Output {
    let mut c = match ms_client(t).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let r = match c.pool_create(req).await {
        Ok(r) => r.into_inner(),
        Err(s) => return failed(status_text(s)),
    };
    let n = r.tgt_ranks.len().max(1) as u64;
    let (scm, nvme) = (
        r.tier_bytes.first().copied().unwrap_or(0),
        r.tier_bytes.get(1).copied().unwrap_or(0),
    );
    let total = (scm + nvme) * n;
    let pct = |x: u64| {
        if scm + nvme == 0 {
            0.0
        } else {
            x as f64 * 100.0 / (scm + nvme) as f64
        }
    };
    let head = format!(
        "Pool created with {:.2}%,{:.2}% storage tier ratio",
        pct(scm),
        pct(nvme)
    );
    let mut text = format!("{head}\n{}\n", "-".repeat(head.len()));
    text.push_str(&format!("  UUID                 : {}\n", r.uuid));
    text.push_str(&format!("  Service Leader       : {}\n", r.svc_ldr));
    text.push_str(&format!(
        "  Service Ranks        : {}\n",
        hostlist::format_ranks(&r.svc_reps)
    ));
    text.push_str(&format!(
        "  Storage Ranks        : {}\n",
        hostlist::format_ranks(&r.tgt_ranks)
    ));
    text.push_str(&format!("  Total Size           : {}\n", bytes_si(total)));
    text.push_str(&format!(
        "  Storage tier 0 (SCM) : {} ({} / rank)\n",
        bytes_si(scm * n),
        bytes_si(scm)
    ));
    text.push_str(&format!(
        "  Storage tier 1 (NVMe): {} ({} / rank)\n",
        bytes_si(nvme * n),
        bytes_si(nvme)
    ));
    let json = json!({"uuid": r.uuid, "svc_ldr": r.svc_ldr, "svc_reps": r.svc_reps, "tgt_ranks": r.tgt_ranks, "tier_bytes": [scm, nvme]});
    Output {
        text,
        json,
        ok: true,
        error: None,
    }
}

/// `dmg pool list [-v]`.
pub async fn pool_list(t: &Target, verbose: bool) -> Output {
    let mut c = match ms_client(t).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let pools = match c.list_pools(ListPoolsReq::default()).await {
        Ok(r) => r.into_inner().pools,
        Err(s) => return failed(status_text(s)),
    };
    // The space of each pool comes from its query, as DAOS's dmg does it; a pool that
    // cannot be queried (not Ready) shows no space.
    let mut rows_data = Vec::new();
    for p in &pools {
        let q = c
            .pool_query(PoolQueryReq {
                id: p.uuid.clone(),
                ..Default::default()
            })
            .await
            .ok()
            .map(|r| r.into_inner());
        let tier = |m: StorageMediaType| {
            q.as_ref()
                .and_then(|q| q.tier_stats.iter().find(|s| s.media_type == m as i32))
                .map_or((0, 0), |s| (s.total, s.total.saturating_sub(s.free)))
        };
        let (scm, nvme) = (tier(StorageMediaType::Scm), tier(StorageMediaType::Nvme));
        let (targets, disabled) = q
            .as_ref()
            .map_or((0, 0), |q| (q.total_targets, q.disabled_targets));
        rows_data.push((p, scm, nvme, targets, disabled));
    }
    let mut text = if pools.is_empty() {
        "No pools in system\n".to_string()
    } else if verbose {
        let rows: Vec<Vec<String>> = rows_data
            .iter()
            .map(|(p, scm, nvme, targets, disabled)| {
                vec![
                    p.label.clone(),
                    p.uuid.clone(),
                    p.state.clone(),
                    hostlist::format_ranks(&p.svc_reps),
                    bytes_si(scm.0),
                    bytes_si(scm.1),
                    "0%".into(),
                    bytes_si(nvme.0),
                    bytes_si(nvme.1),
                    "0%".into(),
                    format!("{disabled}/{targets}"),
                    "None".into(),
                    p.rebuild_state.clone(),
                ]
            })
            .collect();
        render(
            &[
                "Label",
                "UUID",
                "State",
                "SvcReps",
                "SCM Size",
                "SCM Used",
                "SCM Imbalance",
                "NVME Size",
                "NVME Used",
                "NVME Imbalance",
                "Disabled",
                "UpgradeNeeded?",
                "Rebuild State",
            ],
            &rows,
            "",
        )
    } else {
        // DAOS's columns: the largest non-empty tier's size, the most used tier's use (no
        // UpgradeNeeded? column: every pool here is at the current layout).
        let rows: Vec<Vec<String>> = rows_data
            .iter()
            .map(|(p, scm, nvme, targets, disabled)| {
                let size = if nvme.0 > 0 { nvme.0 } else { scm.0 };
                let used = [scm, nvme]
                    .iter()
                    .filter(|t| t.0 > 0)
                    .map(|t| t.1 * 100 / t.0)
                    .max()
                    .unwrap_or(0);
                vec![
                    p.label.clone(),
                    bytes_si(size),
                    p.state.clone(),
                    format!("{used}%"),
                    "0%".into(),
                    format!("{disabled}/{targets}"),
                ]
            })
            .collect();
        render(
            &["Pool", "Size", "State", "Used", "Imbalance", "Disabled"],
            &rows,
            "",
        )
    };
    if !pools.is_empty() {
        // DAOS's dmg ends the table with a blank line.
        text.push('\n');
    }
    let json = json!({"pools": rows_data.iter().map(|(p, scm, nvme, targets, disabled)| json!({
        "uuid": p.uuid, "label": p.label, "svc_reps": p.svc_reps, "state": p.state,
        "rebuild_state": p.rebuild_state, "total_targets": targets, "disabled_targets": disabled,
        "usage": [{"tier_name": "SCM", "size": scm.0, "used": scm.1}, {"tier_name": "NVME", "size": nvme.0, "used": nvme.1}],
    })).collect::<Vec<_>>()});
    Output {
        text,
        json,
        ok: true,
        error: None,
    }
}

/// `dmg pool query <pool>`.
pub async fn pool_query(t: &Target, id: &str, mask: u64) -> Output {
    let mut c = match ms_client(t).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let r = match c
        .pool_query(PoolQueryReq {
            id: id.into(),
            query_mask: mask,
            ..Default::default()
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) => return failed(status_text(s)),
    };
    let state = PoolServiceState::try_from(r.state)
        .unwrap_or(PoolServiceState::Unknown)
        .as_str_name();
    let leader = if r.svc_ldr != 0 { r.svc_ldr } else { r.leader };
    let mut text = format!(
        "Pool {}, ntarget={}, disabled={}, leader={leader}, version={}, state={state}\n",
        r.uuid, r.total_targets, r.disabled_targets, r.version
    );
    text.push_str("Pool health info:\n");
    if !r.enabled_ranks.is_empty() {
        text.push_str(&format!("- Enabled ranks: {}\n", r.enabled_ranks));
    }
    if !r.disabled_ranks.is_empty() {
        text.push_str(&format!("- Disabled ranks: {}\n", r.disabled_ranks));
    }
    if !r.dead_ranks.is_empty() {
        text.push_str(&format!("- Dead ranks: {}\n", r.dead_ranks));
    }
    let rebuild = r.rebuild.unwrap_or_default();
    let rebuild_state = pool_rebuild_status::State::try_from(rebuild.state)
        .unwrap_or(pool_rebuild_status::State::Idle)
        .as_str_name()
        .to_lowercase();
    text.push_str(&format!(
        "- Rebuild {rebuild_state}, {} objs, {} recs\n- Data redundancy: {}\n",
        rebuild.objects,
        rebuild.records,
        // Degraded: a rank that does not answer, or targets down and not yet rebuilt.
        if !r.dead_ranks.is_empty() || (r.disabled_targets > 0 && rebuild_state == "busy") {
            "degraded"
        } else {
            "normal"
        }
    ));
    if r.query_mask & DPI_SPACE != 0 && !r.tier_stats.is_empty() {
        text.push_str(&format!(
            "Pool space info:\n- Target count:{}\n",
            r.total_targets
        ));
    }
    for (i, s) in r.tier_stats.iter().enumerate() {
        text.push_str(&format!(
            "- Storage tier {i} ({}):\n  Total size: {}\n",
            media_name(s.media_type),
            bytes_si(s.total)
        ));
        text.push_str(&format!(
            "  Free: {}, min:{}, max:{}, mean:{}\n",
            bytes_si(s.free),
            bytes_si(s.min),
            bytes_si(s.max),
            bytes_si(s.mean)
        ));
    }
    let json = json!({
        "uuid": r.uuid, "label": r.label, "total_targets": r.total_targets, "disabled_targets": r.disabled_targets,
        "svc_ldr": leader, "svc_reps": r.svc_reps, "version": r.version, "state": state, "enabled_ranks": r.enabled_ranks, "disabled_ranks": r.disabled_ranks,
        "rebuild": {"state": rebuild_state, "objects": rebuild.objects, "records": rebuild.records},
        "tier_stats": r.tier_stats.iter().map(|s| json!({"media_type": media_name(s.media_type).to_lowercase(), "total": s.total, "free": s.free, "min": s.min, "max": s.max, "mean": s.mean})).collect::<Vec<_>>(),
    });
    Output {
        text,
        json,
        ok: true,
        error: None,
    }
}

/// `dmg pool destroy <pool> [--force] [--recursive]`.
pub async fn pool_destroy(t: &Target, id: &str, force: bool, recursive: bool) -> Output {
    let mut c = match ms_client(t).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    match c
        .pool_destroy(PoolDestroyReq {
            id: id.into(),
            force,
            recursive,
            ..Default::default()
        })
        .await
    {
        Ok(_) => Output {
            text: "Pool-destroy command succeeded\n".into(),
            json: json!({"id": id}),
            ok: true,
            error: None,
        },
        Err(s) => failed(status_text(s)),
    }
}

/// Parses `name:value,name:value` as dmg's `-P` and `set-prop` take them.
pub fn parse_props(s: &str) -> Result<Vec<PoolProperty>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| match p.split_once(':') {
            Some((k, v)) if !k.trim().is_empty() => daos_control::props::encode(k.trim(), v.trim()),
            _ => Err(format!(
                "invalid property {p:?}: write name:value, e.g. reclaim:disabled"
            )),
        })
        .collect()
}

/// `dmg pool set-prop <pool> name:value[,...]`.
pub async fn pool_set_prop(t: &Target, id: &str, props: Vec<PoolProperty>) -> Output {
    let mut c = match ms_client(t).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    match c
        .pool_set_prop(PoolSetPropReq {
            id: id.into(),
            properties: props,
            ..Default::default()
        })
        .await
    {
        Ok(_) => Output {
            text: "pool set-prop succeeded\n".into(),
            json: json!({"id": id}),
            ok: true,
            error: None,
        },
        Err(s) => failed(status_text(s)),
    }
}

/// `dmg pool get-prop <pool> [name...]`.
pub async fn pool_get_prop(t: &Target, id: &str, names: Vec<String>) -> Output {
    // The properties wanted travel as their DAOS numbers.
    let mut properties = Vec::new();
    for n in &names {
        match daos_control::props::by_name(n) {
            Some(d) => properties.push(PoolProperty {
                number: d.number,
                value: None,
            }),
            None => {
                return failed(format!(
                    "unknown pool property {n:?} (known: {})",
                    daos_control::props::DEFS
                        .iter()
                        .map(|d| d.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    let mut c = match ms_client(t).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let r = match c
        .pool_get_prop(PoolGetPropReq {
            id: id.into(),
            properties,
            ..Default::default()
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) => return failed(status_text(s)),
    };
    let props: Vec<(&daos_control::props::Def, String)> = match r
        .properties
        .iter()
        .map(daos_control::props::decode)
        .collect()
    {
        Ok(p) => p,
        Err(e) => return failed(format!("bad property in the answer: {e}")),
    };
    // DAOS's order: by name.
    let mut props = props;
    props.sort_by_key(|(d, _)| d.name);
    let rows: Vec<Vec<String>> = props
        .iter()
        .map(|(d, v)| {
            vec![
                format!("{} ({})", d.description, d.name),
                daos_control::props::display(d, v),
            ]
        })
        .collect();
    let text = format!(
        "Pool {} properties:\n{}",
        r.label,
        render(&["Name", "Value"], &rows, "")
    );
    let json = json!({"uuid": r.uuid, "label": r.label, "properties": props.iter().map(|(d, v)| json!({"name": d.name, "value": v, "description": d.description})).collect::<Vec<_>>()});
    Output {
        text,
        json,
        ok: true,
        error: None,
    }
}

/// What `dmg pool exclude|drain|reintegrate` does to each rank.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetsOp {
    Exclude,
    Drain,
    Reintegrate,
}

/// `dmg pool exclude|drain|reintegrate <pool> --ranks R [--target-idx i,j]`: one request per
/// rank, as DAOS's dmg; a `Pool Ranks Result Reason` table.
pub async fn pool_targets(
    t: &Target,
    id: &str,
    op: TargetsOp,
    ranks: &[u32],
    idx: &[u32],
) -> Output {
    let mut c = match ms_client(t).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let mut rows = Vec::new();
    let mut results = Vec::new();
    let mut all_ok = true;
    for &rank in ranks {
        let r = match op {
            TargetsOp::Exclude => c
                .pool_exclude(PoolExcludeReq {
                    id: id.into(),
                    rank,
                    targetidx: idx.to_vec(),
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner().status),
            TargetsOp::Drain => c
                .pool_drain(PoolDrainReq {
                    id: id.into(),
                    rank,
                    targetidx: idx.to_vec(),
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner().status),
            TargetsOp::Reintegrate => c
                .pool_reintegrate(PoolReintReq {
                    id: id.into(),
                    rank,
                    targetidx: idx.to_vec(),
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner().status),
        };
        let (ok, reason) = match r {
            Ok(0) => (true, "-".to_string()),
            Ok(code) => (false, format!("DER({code})")),
            Err(s) => (false, status_text(s)),
        };
        all_ok &= ok;
        rows.push(vec![
            id.to_string(),
            rank.to_string(),
            if ok { "OK" } else { "FAIL" }.to_string(),
            reason.clone(),
        ]);
        results.push(json!({"rank": rank, "ok": ok, "reason": reason}));
    }
    Output {
        text: render(&["Pool", "Ranks", "Result", "Reason"], &rows, ""),
        json: json!({"id": id, "results": results}),
        ok: all_ok,
        error: (!all_ok).then(|| {
            format!(
                "pool {} failed on some ranks",
                match op {
                    TargetsOp::Exclude => "exclude",
                    TargetsOp::Drain => "drain",
                    TargetsOp::Reintegrate => "reintegrate",
                }
            )
        }),
    }
}

/// `dmg pool query-targets <pool> --rank R [--target-idx list]`.
pub async fn pool_query_targets(t: &Target, id: &str, rank: u32, idx: &[u32]) -> Output {
    use daos_proto::mgmt::pool_query_target_info::TargetState;
    let mut c = match ms_client(t).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let infos = match c
        .pool_query_target(PoolQueryTargetReq {
            id: id.into(),
            rank,
            targets: idx.to_vec(),
            ..Default::default()
        })
        .await
    {
        Ok(r) => r.into_inner().infos,
        Err(s) => return failed(status_text(s)),
    };
    let chosen: Vec<u32> = if idx.is_empty() {
        (0..infos.len() as u32).collect()
    } else {
        idx.to_vec()
    };
    let mut text = String::new();
    let mut list = Vec::new();
    for (i, info) in chosen.iter().zip(&infos) {
        let state = match TargetState::try_from(info.state).unwrap_or(TargetState::StateUnknown) {
            TargetState::DownOut => "down_out",
            TargetState::Down => "down",
            TargetState::Up => "up",
            TargetState::UpIn => "up_in",
            TargetState::New => "new",
            TargetState::Drain => "drain",
            TargetState::StateUnknown => "unknown",
        };
        text.push_str(&format!("Target: type unknown, state {state}\n"));
        let mut tiers = Vec::new();
        for (n, s) in info.space.iter().enumerate() {
            let media = media_name(s.media_type);
            text.push_str(&format!(
                "- Storage tier {n} ({media}):\n  Total size: {}\n  Free: {}\n",
                bytes_si(s.total),
                bytes_si(s.free)
            ));
            tiers.push(
                json!({"media_type": media.to_lowercase(), "total": s.total, "free": s.free}),
            );
        }
        list.push(json!({"rank": rank, "target": i, "state": state, "space": tiers}));
    }
    Output {
        text,
        json: json!({"infos": list}),
        ok: true,
        error: None,
    }
}

/// `dmg pool extend <pool> --ranks R`: DAOS's "Extend command succeeded" / "failed: ...".
pub async fn pool_extend(t: &Target, id: &str, ranks: &[u32]) -> Output {
    let mut c = match ms_client(t).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    match c
        .pool_extend(PoolExtendReq {
            id: id.into(),
            ranks: ranks.to_vec(),
            ..Default::default()
        })
        .await
    {
        Ok(_) => Output {
            text: "Extend command succeeded\n".into(),
            json: json!({"id": id, "ranks": ranks}),
            ok: true,
            error: None,
        },
        Err(s) => failed(format!("Extend command failed: {}", status_text(s))),
    }
}

/// A pool ACL command.
pub enum AclOp {
    Get {
        outfile: Option<std::path::PathBuf>,
        verbose: bool,
    },
    Overwrite(Vec<String>),
    Update(Vec<String>),
    Delete(String),
}

/// The entries of an ACL file (see [`daos_auth::acl::read_file`]).
pub fn read_acl_file(path: &std::path::Path) -> Result<Vec<String>, String> {
    daos_auth::acl::read_file(path)
}

/// `dmg pool get-acl|overwrite-acl|update-acl|delete-acl`: the pool's ACL afterwards, as DAOS
/// prints it.
pub async fn pool_acl(t: &Target, id: &str, op: AclOp) -> Output {
    use daos_proto::mgmt::{DeleteAclReq, GetAclReq, ModifyAclReq};
    let mut c = match ms_client(t).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let (mut outfile, mut verbose) = (None, false);
    // DAOS's dmg says which change succeeded before the ACL.
    let done = match &op {
        AclOp::Get { .. } => None,
        AclOp::Overwrite(_) => Some("overwrite"),
        AclOp::Update(_) => Some("update"),
        AclOp::Delete(_) => Some("delete"),
    };
    let r = match op {
        AclOp::Get {
            outfile: o,
            verbose: v,
        } => {
            (outfile, verbose) = (o, v);
            c.pool_get_acl(GetAclReq {
                id: id.into(),
                ..Default::default()
            })
            .await
        }
        AclOp::Overwrite(entries) => {
            c.pool_overwrite_acl(ModifyAclReq {
                id: id.into(),
                entries,
                ..Default::default()
            })
            .await
        }
        AclOp::Update(entries) => {
            c.pool_update_acl(ModifyAclReq {
                id: id.into(),
                entries,
                ..Default::default()
            })
            .await
        }
        AclOp::Delete(principal) => {
            c.pool_delete_acl(DeleteAclReq {
                id: id.into(),
                principal,
                ..Default::default()
            })
            .await
        }
    };
    let acl = match r {
        Ok(r) => r.into_inner().acl.unwrap_or_default(),
        Err(s) => return failed(status_text(s)),
    };
    let text = daos_auth::acl::format(&acl.entries, &acl.owner_user, &acl.owner_group, verbose);
    if let Some(f) = outfile
        && let Err(e) = std::fs::write(&f, &text)
    {
        return failed(format!("cannot write {}: {e}", f.display()));
    }
    let text = match done {
        Some(what) => format!("Pool-{what}-ACL command succeeded, ID: {id}\n{text}"),
        None => text,
    };
    Output {
        text,
        json: serde_json::json!({
            "entries": acl.entries,
            "owner_user": acl.owner_user,
            "owner_group": acl.owner_group,
        }),
        ok: true,
        error: None,
    }
}

/// `dmg pool evict POOL`: DAOS's "Pool-evict command succeeded".
pub async fn pool_evict(t: &Target, id: &str) -> Output {
    let mut c = match ms_client(t).await {
        Ok(c) => c,
        Err(e) => return failed(format!("Pool-evict command failed: {e}")),
    };
    match c
        .pool_evict(daos_proto::mgmt::PoolEvictReq {
            id: id.into(),
            ..Default::default()
        })
        .await
    {
        Ok(r) => {
            let r = r.into_inner();
            Output {
                text: "Pool-evict command succeeded\n".into(),
                json: serde_json::json!({"count": r.count}),
                ok: true,
                error: None,
            }
        }
        Err(s) => failed(format!("Pool-evict command failed: {}", status_text(s))),
    }
}

/// Checks `dmg server set-logmasks` flags as DAOS's dmg does before sending: a flag left out
/// asks each engine's config value (`reset_*`).
pub fn log_masks_req(
    masks: Option<&str>,
    streams: Option<&str>,
    subsystems: Option<&str>,
) -> Result<SetLogMasksReq, String> {
    use daos_config::logmask;
    if let Some(m) = masks {
        logmask::LogMask::parse(m).map_err(|e| format!("-m/--masks: {e}"))?;
    }
    if let Some(d) = streams {
        logmask::validate_streams(d).map_err(|e| format!("-d/--streams: {e}"))?;
    }
    if let Some(s) = subsystems {
        logmask::validate_subsystems(s).map_err(|e| format!("-s/--subsystems: {e}"))?;
    }
    Ok(SetLogMasksReq {
        masks: masks.unwrap_or_default().into(),
        streams: streams.unwrap_or_default().into(),
        subsystems: subsystems.unwrap_or_default().into(),
        reset_masks: masks.is_none(),
        reset_streams: streams.is_none(),
        reset_subsystems: subsystems.is_none(),
        ..Default::default()
    })
}

/// `dmg server set-logmasks`: every host sets its running engines' log masks.
pub async fn server_set_log_masks(t: &Target, req: SetLogMasksReq) -> Output {
    let results = fan_out(t, |ch| {
        let req = req.clone();
        async move {
            CtlSvcClient::new(ch)
                .set_engine_log_masks(req)
                .await
                .map(|r| r.into_inner())
        }
    })
    .await;
    let mut errors = Vec::new();
    let mut updated = Vec::new();
    let mut json_hosts = serde_json::Map::new();
    for (host, r) in &results {
        match r {
            Err(e) => errors.push((host.clone(), e.clone())),
            Ok(resp) if resp.errors.iter().any(|e| !e.is_empty()) => {
                // DAOS's form: every engine of the host, "updated" or why not.
                let each: Vec<String> = resp
                    .errors
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        format!("engine-{i}: {}", if e.is_empty() { "updated" } else { e })
                    })
                    .collect();
                errors.push((host.clone(), each.join(", ")));
            }
            Ok(_) => updated.push(host.clone()),
        }
        if let Ok(resp) = r {
            json_hosts.insert(host.clone(), json!({"errors": resp.errors}));
        }
    }
    let mut text = errors_table(&errors);
    if !updated.is_empty() {
        // DAOS prints this host set with its ports.
        let mut by_port: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for h in &updated {
            let (name, port) = h.rsplit_once(':').unwrap_or((h, ""));
            by_port.entry(port).or_default().push(name);
        }
        let set: Vec<String> = by_port
            .into_iter()
            .map(|(port, names)| {
                let names = hostlist::compress(&names);
                if port.is_empty() {
                    names
                } else {
                    format!("{names}:{port}")
                }
            })
            .collect();
        text.push_str(&format!(
            "Engine log-masks updated successfully on the following {}: {}\n",
            if updated.len() == 1 { "host" } else { "hosts" },
            set.join(",")
        ));
    }
    let ok = errors.is_empty();
    Output {
        text,
        json: json!({"host_results": json_hosts}),
        ok,
        error: (!ok).then(|| {
            format!(
                "set engine log level failed: {} host(s) failed",
                errors.len()
            )
        }),
    }
}

/// `--tier-ratio 6,94` (percentages; one value: NVMe takes the rest) as the fractions DAOS's
/// PoolCreateReq carries.
pub fn parse_tier_ratio(text: &str) -> Result<Vec<f64>, String> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let v: f64 = part
            .trim()
            .trim_end_matches('%')
            .parse()
            .map_err(|_| format!("--tier-ratio {text:?}: {part:?} is not a percentage"))?;
        if !(0.0..=100.0).contains(&v) {
            return Err(format!(
                "--tier-ratio {text:?}: storage tier ratio must be a value between 0-100"
            ));
        }
        out.push((v * 100.0).round() / 10000.0);
    }
    if out.len() == 1 && out[0] < 1.0 {
        out.push(1.0 - out[0]);
    }
    if out.len() != 2 {
        return Err(format!(
            "--tier-ratio {text:?}: give the SCM and NVMe percentages, e.g. 6,94"
        ));
    }
    let sum: f64 = out.iter().sum();
    if (sum - 1.0).abs() > 0.01 {
        return Err(format!(
            "--tier-ratio {text:?}: storage tier ratios must add up to 100 (got {})",
            sum * 100.0
        ));
    }
    if out[0] <= 0.0 {
        return Err(format!(
            "--tier-ratio {text:?}: the SCM tier needs a share above 0"
        ));
    }
    Ok(out)
}

/// DAOS's pool query bits (`daos_pool.h`): space, rebuild status, enabled, disabled and dead
/// engines.
pub const DPI_SPACE: u64 = 1;
pub const DPI_REBUILD_STATUS: u64 = 1 << 1;
pub const DPI_ENGINES_ENABLED: u64 = 1 << 2;
pub const DPI_ENGINES_DISABLED: u64 = 1 << 3;
pub const DPI_ENGINES_DEAD: u64 = 1 << 4;

/// The mask `dmg pool query` sends: DAOS 2.8's default (everything but the enabled engines;
/// the disabled ones included), `-e` adds the enabled engines, `-t` leaves the space out.
pub fn query_mask(show_enabled: bool, health_only: bool) -> u64 {
    let mut mask = !DPI_ENGINES_ENABLED;
    if show_enabled {
        mask |= DPI_ENGINES_ENABLED;
    }
    if health_only {
        mask &= !DPI_SPACE;
    }
    mask
}
