//! `dmg`: the DAOS management tool. See `dmg --help`.

use clap::{Parser, Subcommand};
use daos_control::Target;
use daos_control::VERSION;
use daos_control::exit::{CmdError, ExitCode, report};
use daos_dmg as dmg;

#[derive(Parser)]
#[command(name = "dmg", version = VERSION, about = "DAOS management tool: administers DAOS systems over the control API")]
struct Cli {
    #[command(flatten)]
    flags: daos_control::cli::ClientFlags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Storage of the servers.
    #[command(subcommand, visible_alias = "sto")]
    Storage(StorageCmd),
    /// The DAOS system: its ranks and their states.
    #[command(subcommand, visible_alias = "sys")]
    System(SystemCmd),
    /// Fabric interfaces of the servers.
    #[command(subcommand, visible_alias = "net")]
    Network(NetworkCmd),
    /// Pools: storage reserved on ranks for containers and objects.
    #[command(subcommand)]
    Pool(PoolCmd),
    /// Server configs.
    #[command(subcommand, visible_alias = "cfg")]
    Config(ConfigCmd),
    /// The servers' running engines.
    #[command(subcommand)]
    Server(ServerCmd),
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum StorageCmd {
    /// Format the storage of the servers' engines, which then start.
    Format {
        /// Reformat formatted storage, stopping running engines first.
        #[arg(long, visible_alias = "reformat")]
        force: bool,
        /// Per-device results.
        #[arg(short = 'v', long)]
        verbose: bool,
    },
    /// Prepare the servers' NVMe (hugepages, vfio) and PMem (goals, namespaces).
    Prepare {
        #[command(flatten)]
        flags: daos_control::cli::PrepareFlags,
    },
    /// PMem and NVMe hardware of the servers (verbose: per device).
    Scan {
        /// Per-device tables.
        #[arg(short = 'v', long)]
        verbose: bool,
    },
    /// What the servers' running engines use (DAOS's `storage query`).
    Query {
        #[command(subcommand)]
        what: StorageQueryCmd,
    },
}

#[derive(Subcommand)]
enum StorageQueryCmd {
    /// SCM and NVMe total, free and used per host.
    Usage,
}

#[derive(Subcommand)]
enum PoolCmd {
    /// Create a pool.
    Create {
        /// Pool label (unique; letters, digits, _ . : -).
        label: String,
        /// Total size (e.g. 10G, 1.5T) split by --tier-ratio over the ranks, or N% of the
        /// free space.
        #[arg(short = 'z', long)]
        size: Option<String>,
        /// Percentage of the --size for SCM and NVMe (default 6,94; one value: NVMe takes
        /// the rest).
        #[arg(short = 't', long = "tier-ratio")]
        tier_ratio: Option<String>,
        /// Number of ranks to use with --size (default: all joined ranks).
        #[arg(short = 'k', long = "nranks")]
        nranks: Option<u32>,
        /// Per-engine SCM allocation (each rank of the pool gets this much).
        #[arg(short = 's', long = "scm-size")]
        scm_size: Option<String>,
        /// Per-engine NVMe allocation.
        #[arg(short = 'n', long = "nvme-size")]
        nvme_size: Option<String>,
        /// Ranks to use (e.g. 0-3,7; default: all joined ranks).
        #[arg(short = 'r', long)]
        ranks: Option<String>,
        /// Pool service replicas.
        #[arg(short = 'v', long)]
        nsvc: Option<u32>,
        /// Properties: name:value[,name:value].
        #[arg(short = 'P', long = "properties")]
        properties: Option<String>,
        /// Owner user (default: the daos_server's user).
        #[arg(short = 'u', long)]
        user: Option<String>,
        /// Owner group (default: the daos_server's group).
        #[arg(short = 'g', long)]
        group: Option<String>,
        /// File of ACL entries, one per line (default: A::OWNER@:rw and A:G:GROUP@:rw).
        #[arg(short = 'a', long = "acl-file")]
        acl_file: Option<std::path::PathBuf>,
    },
    /// Evict all pool connections to a pool: their next I/O fails until they connect again.
    Evict {
        /// Pool label or UUID.
        pool: String,
    },
    /// Show a pool's ACL.
    GetAcl {
        /// Pool label or UUID.
        pool: String,
        /// Write the ACL to this file too (DAOS's `-o` is dmg's config path here).
        #[arg(long)]
        outfile: Option<std::path::PathBuf>,
        /// Overwrite the output file if it exists.
        #[arg(short = 'f', long)]
        force: bool,
        /// Describe each entry.
        #[arg(short = 'v', long)]
        verbose: bool,
    },
    /// Replace a pool's ACL with the entries of a file.
    OverwriteAcl {
        /// Pool label or UUID.
        pool: String,
        #[arg(short = 'a', long = "acl-file")]
        acl_file: std::path::PathBuf,
    },
    /// Add entries to a pool's ACL (or change those of their principals).
    UpdateAcl {
        /// Pool label or UUID.
        pool: String,
        #[arg(short = 'a', long = "acl-file")]
        acl_file: Option<std::path::PathBuf>,
        /// One entry, e.g. A::bob@:rw.
        #[arg(short = 'e', long)]
        entry: Option<String>,
    },
    /// Remove a principal's entry from a pool's ACL.
    DeleteAcl {
        /// Pool label or UUID.
        pool: String,
        /// OWNER@, GROUP@, EVERYONE@, u:name@ or g:name@.
        #[arg(short = 'p', long)]
        principal: String,
    },
    /// List pools.
    #[command(visible_alias = "ls")]
    List {
        /// All columns.
        #[arg(short = 'v', long)]
        verbose: bool,
    },
    /// Targets, health and space of a pool.
    Query {
        /// Pool label or UUID.
        pool: String,
        /// Show the enabled ranks too.
        #[arg(short = 'e', long = "show-enabled")]
        show_enabled: bool,
        /// Show the disabled ranks (the default; DAOS 2.6's flag).
        #[arg(short = 'b', long = "show-disabled")]
        show_disabled: bool,
        /// Only the pool's health (no space query).
        #[arg(short = 't', long = "health-only")]
        health_only: bool,
    },
    /// Destroy a pool and free its space.
    Destroy {
        /// Pool label or UUID.
        pool: String,
        /// Destroy even with connections open.
        #[arg(short = 'f', long)]
        force: bool,
        /// Destroy its containers too.
        #[arg(short = 'r', long)]
        recursive: bool,
    },
    /// Show pool properties (all, or the names given).
    GetProp {
        /// Pool label or UUID.
        pool: String,
        /// Property names.
        names: Vec<String>,
    },
    /// Set pool properties: name:value[,name:value].
    SetProp {
        /// Pool label or UUID.
        pool: String,
        /// name:value[,name:value]
        properties: String,
    },
    /// Take targets out of a pool (DOWN); their data is rebuilt elsewhere.
    Exclude(TargetsArgs),
    /// Move data off targets that keep serving meanwhile (DRAIN).
    Drain(TargetsArgs),
    /// Bring excluded targets back (UP, then UP_IN once rebuilt).
    #[command(visible_alias = "reint")]
    Reintegrate(TargetsArgs),
    /// Add ranks to a pool; data moves onto them.
    Extend {
        /// Pool label or UUID.
        pool: String,
        /// Ranks to add, e.g. 3 or 3-4.
        #[arg(long)]
        ranks: String,
    },
    /// State and space of one rank's targets of a pool.
    QueryTargets {
        /// Pool label or UUID.
        pool: String,
        /// The engine rank.
        #[arg(long)]
        rank: u32,
        /// Target indices, e.g. 0,2 (default: every target of the rank).
        #[arg(long = "target-idx")]
        target_idx: Option<String>,
    },
}

#[derive(clap::Args)]
struct TargetsArgs {
    /// Pool label or UUID.
    pool: String,
    /// Ranks, e.g. 1 or 0-2.
    #[arg(long, visible_alias = "rank")]
    ranks: String,
    /// Target indices on each rank, e.g. 0,2 (default: all).
    #[arg(long = "target-idx")]
    target_idx: Option<String>,
    /// Exclude even when data could be lost (accepted as DAOS's flag).
    #[arg(short = 'f', long)]
    force: bool,
}

#[derive(Subcommand)]
enum NetworkCmd {
    /// Providers and interfaces per NUMA socket of each host.
    Scan {
        /// Provider to show, or `all` (default: each server's configured provider).
        #[arg(short = 'p', long)]
        provider: Option<String>,
    },
    /// Fabric check: ping-pong from the second host of the host list to the first (or within
    /// the only one) over the engines' fabric, in fi_pingpong's columns.
    Check {
        /// Provider (default: the servers' configured provider).
        #[arg(short = 'p', long)]
        provider: Option<String>,
        /// Message sizes (k, m suffixes).
        #[arg(long, default_value = "64,4k,64k,1m")]
        sizes: String,
        /// Round trips per size.
        #[arg(short = 'I', long, default_value_t = 1000)]
        iterations: u32,
    },
}

#[derive(Subcommand)]
enum ServerCmd {
    /// Set the running engines' log masks (each flag left out: the engine's config value).
    #[command(name = "set-logmasks", visible_alias = "slm")]
    SetLogMasks {
        /// D_LOG_MASK form: a level (FATAL, CRIT, ERR, WARN, NOTE, INFO, DEBUG), then
        /// SUBSYSTEM=LEVEL entries, e.g. ERR,mgmt=DEBUG.
        #[arg(short = 'm', long)]
        masks: Option<String>,
        /// DD_MASK form: debug streams to enable (md,pl,mgmt,...; empty: all).
        #[arg(short = 'd', long)]
        streams: Option<String>,
        /// DD_SUBSYS form: the subsystems that log below ERR (empty: all).
        #[arg(short = 's', long)]
        subsystems: Option<String>,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// A daos_server.yml generated from the hosts' hardware (they must be alike).
    #[command(visible_alias = "gen")]
    Generate {
        #[command(flatten)]
        flags: daos_control::cli::GenerateFlags,
    },
}

#[derive(Subcommand)]
enum SystemCmd {
    /// Ranks and their states.
    Query {
        /// Ranks to show, e.g. 0-3,7.
        #[arg(short = 'r', long, conflicts_with = "rank_hosts")]
        ranks: Option<String>,
        /// Hosts whose ranks to show, e.g. wolf-[71-72].
        #[arg(long = "rank-hosts")]
        rank_hosts: Option<String>,
        /// One row per rank with its UUID, address, fault domain and reason.
        #[arg(short = 'v', long)]
        verbose: bool,
    },
    /// Stop ranks (all by default); they stay stopped until started.
    Stop {
        #[arg(short = 'r', long, conflicts_with = "rank_hosts")]
        ranks: Option<String>,
        /// Hosts whose ranks to stop, e.g. wolf-[71-72].
        #[arg(long = "rank-hosts")]
        rank_hosts: Option<String>,
        /// Kill at once (SIGKILL) instead of a clean shutdown.
        #[arg(long)]
        force: bool,
    },
    /// Start stopped ranks (all by default).
    Start {
        #[arg(short = 'r', long, conflicts_with = "rank_hosts")]
        ranks: Option<String>,
        /// Hosts whose ranks to start, e.g. wolf-[71-72].
        #[arg(long = "rank-hosts")]
        rank_hosts: Option<String>,
    },
    /// The management service leader and replicas.
    LeaderQuery,
    /// Exclude ranks administratively: out of the group map, their joins refused.
    Exclude {
        #[arg(short = 'r', long, conflicts_with = "rank_hosts")]
        ranks: Option<String>,
        /// Hosts whose ranks to exclude, e.g. wolf-[71-72].
        #[arg(long = "rank-hosts")]
        rank_hosts: Option<String>,
    },
    /// Clear the administrative exclusion of ranks (they are Joined again when they rejoin).
    ClearExclude {
        #[arg(short = 'r', long, conflicts_with = "rank_hosts")]
        ranks: Option<String>,
        /// Hosts whose ranks to clear.
        #[arg(long = "rank-hosts")]
        rank_hosts: Option<String>,
    },
}

fn run(cli: Cli) -> Result<ExitCode, CmdError> {
    if let Command::Version = cli.command {
        if cli.flags.json {
            println!(
                "{}",
                serde_json::json!({"response": {"version": VERSION}, "error": null, "status": 0})
            );
        } else {
            println!("dmg version {VERSION}");
        }
        return Ok(ExitCode::Success);
    }
    // Bad flag values are usage errors (exit 2), found before anything is sent.
    let mut pool_op = match &cli.command {
        Command::Pool(cmd) => Some(pool_command(cmd).map_err(|e| CmdError {
            message: e,
            fix: None,
            code: ExitCode::Usage,
        })?),
        _ => None,
    };
    let log_masks = match &cli.command {
        Command::Server(ServerCmd::SetLogMasks {
            masks,
            streams,
            subsystems,
        }) => Some(
            dmg::log_masks_req(masks.as_deref(), streams.as_deref(), subsystems.as_deref())
                .map_err(|e| CmdError {
                    message: format!("set engine log level failed: {e}"),
                    fix: None,
                    code: ExitCode::Usage,
                })?,
        ),
        _ => None,
    };
    let control = dmg::load_control(cli.flags.config_path.as_deref())?;
    if let Some(PoolOp::Create(req)) = pool_op.as_mut() {
        // The system this pool is meant for (the control config's name), as DAOS's dmg.
        req.sys = control.name.clone();
    }
    let target = Target::new(&control, cli.flags.host_list.as_deref(), cli.flags.insecure)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CmdError::new(format!("cannot start the client runtime: {e}")))?;
    let out = rt.block_on(async {
        match &cli.command {
            Command::Storage(StorageCmd::Format { force, verbose, .. }) => {
                dmg::storage_format(&target, *force, *verbose).await
            }
            Command::Storage(StorageCmd::Scan { verbose, .. }) => {
                dmg::storage_scan(&target, *verbose).await
            }
            Command::Storage(StorageCmd::Query {
                what: StorageQueryCmd::Usage,
            }) => dmg::storage_query_usage(&target).await,
            Command::Storage(StorageCmd::Prepare { flags }) => {
                dmg::storage_prepare(&target, flags.request()).await
            }
            Command::Pool(_) => match pool_op {
                Some(PoolOp::Create(req)) => dmg::pool_create(&target, req).await,
                Some(PoolOp::List(v)) => dmg::pool_list(&target, v).await,
                Some(PoolOp::Query(id, mask)) => dmg::pool_query(&target, &id, mask).await,
                Some(PoolOp::Destroy(id, f, r)) => dmg::pool_destroy(&target, &id, f, r).await,
                Some(PoolOp::GetProp(id, names)) => dmg::pool_get_prop(&target, &id, names).await,
                Some(PoolOp::SetProp(id, props)) => dmg::pool_set_prop(&target, &id, props).await,
                Some(PoolOp::Targets(id, op, ranks, idx)) => {
                    dmg::pool_targets(&target, &id, op, &ranks, &idx).await
                }
                Some(PoolOp::Extend(id, ranks)) => dmg::pool_extend(&target, &id, &ranks).await,
                Some(PoolOp::Acl(id, op)) => dmg::pool_acl(&target, &id, op).await,
                Some(PoolOp::Evict(id)) => dmg::pool_evict(&target, &id).await,
                Some(PoolOp::QueryTargets(id, rank, idx)) => {
                    dmg::pool_query_targets(&target, &id, rank, &idx).await
                }
                None => unreachable_version(),
            },
            Command::Network(NetworkCmd::Scan { provider }) => {
                dmg::network_scan(&target, provider.as_deref().unwrap_or("")).await
            }
            Command::Network(NetworkCmd::Check {
                provider,
                sizes,
                iterations,
            }) => {
                dmg::network_check(
                    &target,
                    provider.as_deref().unwrap_or(""),
                    sizes,
                    *iterations,
                )
                .await
            }
            Command::Server(ServerCmd::SetLogMasks { .. }) => {
                let mut req = log_masks.unwrap_or_default();
                req.sys = control.name.clone();
                dmg::server_set_log_masks(&target, req).await
            }
            Command::Config(ConfigCmd::Generate { flags }) => {
                dmg::config_generate(&target, flags.request()).await
            }
            Command::System(SystemCmd::Query {
                ranks,
                rank_hosts,
                verbose,
            }) => {
                let which = dmg::Which::new(ranks, rank_hosts);
                dmg::system_query(&target, &which, *verbose).await
            }
            Command::System(SystemCmd::Stop {
                ranks,
                rank_hosts,
                force,
            }) => dmg::system_stop(&target, &dmg::Which::new(ranks, rank_hosts), *force).await,
            Command::System(SystemCmd::Start { ranks, rank_hosts }) => {
                dmg::system_start(&target, &dmg::Which::new(ranks, rank_hosts)).await
            }
            Command::System(SystemCmd::LeaderQuery) => dmg::leader_query(&target).await,
            Command::System(SystemCmd::Exclude { ranks, rank_hosts }) => {
                dmg::system_exclude(&target, &dmg::Which::new(ranks, rank_hosts), false).await
            }
            Command::System(SystemCmd::ClearExclude { ranks, rank_hosts }) => {
                dmg::system_exclude(&target, &dmg::Which::new(ranks, rank_hosts), true).await
            }
            Command::Version => unreachable_version(),
        }
    });
    Ok(dmg::print(out, cli.flags.json))
}

enum PoolOp {
    Create(daos_proto::mgmt::PoolCreateReq),
    List(bool),
    Query(String, u64),
    Destroy(String, bool, bool),
    GetProp(String, Vec<String>),
    SetProp(String, Vec<daos_proto::mgmt::PoolProperty>),
    Targets(String, dmg::TargetsOp, Vec<u32>, Vec<u32>),
    QueryTargets(String, u32, Vec<u32>),
    Extend(String, Vec<u32>),
    Acl(String, dmg::AclOp),
    Evict(String),
}

/// `--target-idx 0,2` (none: every target).
fn target_idx(v: Option<&str>) -> Result<Vec<u32>, String> {
    match v {
        None => Ok(Vec::new()),
        Some(s) => daos_control::hostlist::parse_ranks(s)
            .map_err(|e| format!("--target-idx {s:?}: {e} (target indices, e.g. 0,2)")),
    }
}

/// The most pool service replicas DAOS allows.
const MAX_SVC_REPS: u32 = 13;

/// Checks a pool command's flags and builds its request.
fn pool_command(cmd: &PoolCmd) -> Result<PoolOp, String> {
    use daos_control::input::{Size, parse_size};
    use daos_proto::mgmt::PoolCreateReq;
    let bytes = |flag: &str, v: &str| match parse_size(v).map_err(|e| format!("{flag}: {e}"))? {
        Size::Bytes(b) => Ok(b),
        Size::Percent(_) => Err(format!("{flag}: a percentage is only accepted by --size")),
    };
    Ok(match cmd {
        PoolCmd::Create {
            label,
            size,
            tier_ratio,
            nranks,
            scm_size,
            nvme_size,
            ranks,
            nsvc,
            properties,
            user,
            group,
            acl_file,
        } => {
            let mut req = PoolCreateReq {
                user: user.clone().unwrap_or_default(),
                usergroup: group.clone().unwrap_or_default(),
                ..Default::default()
            };
            if let Some(f) = acl_file {
                req.acl = dmg::read_acl_file(f)?;
            }
            match (size, scm_size) {
                (Some(_), Some(_)) | (Some(_), None)
                    if nvme_size.is_some() || scm_size.is_some() =>
                {
                    return Err("--size cannot be combined with --scm-size/--nvme-size".into());
                }
                (Some(z), _) => match parse_size(z).map_err(|e| format!("--size: {e}"))? {
                    Size::Bytes(b) => {
                        req.total_bytes = b;
                        req.tier_ratio = match tier_ratio {
                            Some(t) => dmg::parse_tier_ratio(t)?,
                            None => vec![0.06, 0.94],
                        };
                        req.num_ranks = nranks.unwrap_or(0);
                    }
                    Size::Percent(p) => {
                        if tier_ratio.is_some() {
                            return Err("--size N% cannot be combined with --tier-ratio".into());
                        }
                        if nranks.is_some() {
                            return Err("--size N% cannot be combined with --nranks".into());
                        }
                        req.size_percent = p as u32
                    }
                },
                (None, Some(_)) if tier_ratio.is_some() => {
                    return Err("--tier-ratio cannot be combined with --scm-size".into());
                }
                (None, Some(_)) if nranks.is_some() => {
                    return Err("--nranks cannot be combined with --scm-size".into());
                }
                (None, Some(s)) => {
                    req.tier_bytes = vec![
                        bytes("--scm-size", s)?,
                        nvme_size
                            .as_deref()
                            .map(|n| bytes("--nvme-size", n))
                            .transpose()?
                            .unwrap_or(0),
                    ]
                }
                (None, None) => {
                    return Err(
                        "give --size N (or N%), or --scm-size N with an optional --nvme-size"
                            .into(),
                    );
                }
            }
            if let Some(r) = ranks {
                if nranks.is_some() {
                    return Err("--nranks cannot be combined with --ranks".into());
                }
                req.ranks =
                    daos_control::hostlist::parse_ranks(r).map_err(|e| format!("--ranks: {e}"))?;
            }
            req.num_svc_reps = match nsvc {
                // The server's default: 2 x svc_rf + 1, capped by the hosts.
                None => 0,
                Some(n @ 1..=MAX_SVC_REPS) => *n,
                Some(n) => {
                    return Err(format!(
                        "--nsvc: {n} service replicas; give 1 to {MAX_SVC_REPS}"
                    ));
                }
            };
            req.properties = properties
                .as_deref()
                .map(dmg::parse_props)
                .transpose()
                .map_err(|e| format!("--properties: {e}"))?
                .unwrap_or_default();
            if req.properties.iter().any(|p| p.number == 1) {
                return Err(
                    "--properties: the label is the pool's name (dmg pool create LABEL), not a property"
                        .into(),
                );
            }
            req.properties
                .push(daos_control::props::encode("label", label)?);
            PoolOp::Create(req)
        }
        PoolCmd::GetAcl {
            pool,
            outfile,
            force,
            verbose,
        } => {
            if let Some(f) = outfile
                && f.exists()
                && !*force
            {
                return Err(format!(
                    "--outfile {} exists; give -f/--force to overwrite it",
                    f.display()
                ));
            }
            PoolOp::Acl(
                pool.clone(),
                dmg::AclOp::Get {
                    outfile: outfile.clone(),
                    verbose: *verbose,
                },
            )
        }
        PoolCmd::OverwriteAcl { pool, acl_file } => PoolOp::Acl(
            pool.clone(),
            dmg::AclOp::Overwrite(dmg::read_acl_file(acl_file)?),
        ),
        PoolCmd::UpdateAcl {
            pool,
            acl_file,
            entry,
        } => {
            let entries = match (acl_file, entry) {
                (Some(f), None) => dmg::read_acl_file(f)?,
                (None, Some(e)) => vec![e.clone()],
                _ => return Err("give either --acl-file or --entry".into()),
            };
            PoolOp::Acl(pool.clone(), dmg::AclOp::Update(entries))
        }
        PoolCmd::Evict { pool } => PoolOp::Evict(pool.clone()),
        PoolCmd::DeleteAcl { pool, principal } => {
            PoolOp::Acl(pool.clone(), dmg::AclOp::Delete(principal.clone()))
        }
        PoolCmd::List { verbose } => PoolOp::List(*verbose),
        PoolCmd::Query {
            pool,
            show_enabled,
            health_only,
            ..
        } => PoolOp::Query(pool.clone(), dmg::query_mask(*show_enabled, *health_only)),
        PoolCmd::Destroy {
            pool,
            force,
            recursive,
        } => PoolOp::Destroy(pool.clone(), *force, *recursive),
        PoolCmd::GetProp { pool, names } => PoolOp::GetProp(
            pool.clone(),
            names
                .iter()
                .flat_map(|n| n.split(','))
                .map(str::to_string)
                .collect(),
        ),
        PoolCmd::SetProp { pool, properties } => {
            PoolOp::SetProp(pool.clone(), dmg::parse_props(properties)?)
        }
        PoolCmd::Exclude(a) | PoolCmd::Drain(a) | PoolCmd::Reintegrate(a) => {
            let op = match cmd {
                PoolCmd::Exclude(_) => dmg::TargetsOp::Exclude,
                PoolCmd::Drain(_) => dmg::TargetsOp::Drain,
                _ => dmg::TargetsOp::Reintegrate,
            };
            let _ = a.force;
            let ranks = daos_control::hostlist::parse_ranks(&a.ranks)
                .map_err(|e| format!("--ranks {:?}: {e}", a.ranks))?;
            if ranks.is_empty() {
                return Err("--ranks: give at least one rank, e.g. --ranks 1".into());
            }
            PoolOp::Targets(
                a.pool.clone(),
                op,
                ranks,
                target_idx(a.target_idx.as_deref())?,
            )
        }
        PoolCmd::Extend { pool, ranks } => {
            let ranks = daos_control::hostlist::parse_ranks(ranks)
                .map_err(|e| format!("--ranks {ranks:?}: {e}"))?;
            if ranks.is_empty() {
                return Err("--ranks: give at least one rank, e.g. --ranks 3".into());
            }
            PoolOp::Extend(pool.clone(), ranks)
        }
        PoolCmd::QueryTargets {
            pool,
            rank,
            target_idx: idx,
        } => PoolOp::QueryTargets(pool.clone(), *rank, target_idx(idx.as_deref())?),
    })
}

fn unreachable_version() -> dmg::Output {
    dmg::Output {
        text: String::new(),
        json: serde_json::Value::Null,
        ok: true,
        error: None,
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code.into(),
        Err(e) => report(&e).into(),
    }
}
