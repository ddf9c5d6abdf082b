//! The `daos_engine` command line (DAOS `src/engine/init.c`), with DAOS's checks and messages.

use std::path::PathBuf;

use clap::Parser;

/// Default module list.
pub const DEFAULT_MODULES: &str = "vos,rdb,rsvc,security,mgmt,dtx,pool,cont,obj,rebuild";
/// Longest system name (`DAOS_SYS_NAME_MAX`).
pub const SYS_NAME_MAX: usize = 15;

fn number<T: std::str::FromStr>(flag: &'static str) -> impl Fn(&str) -> Result<T, String> + Clone {
    move |s: &str| {
        s.parse::<T>()
            .map_err(|_| format!("invalid numeric value: {s} (set by {flag})"))
    }
}

fn group(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > SYS_NAME_MAX {
        return Err(format!(
            "DAOS system name must be at most {SYS_NAME_MAX} bytes"
        ));
    }
    Ok(s.to_string())
}

fn tiers(s: &str) -> Result<u32, String> {
    let n: u32 = number("-T")(s)?;
    if !(1..=4).contains(&n) {
        return Err("Requires 1 to 4 tiers".into());
    }
    Ok(n)
}

/// Arguments of `daos_engine`.
#[derive(Parser, Debug, Clone, PartialEq)]
#[command(
    name = "daos_engine",
    version,
    about = "DAOS I/O engine (started by daos_server)"
)]
pub struct EngineArgs {
    /// Module list.
    #[arg(short = 'm', long, default_value = DEFAULT_MODULES)]
    pub modules: String,
    /// Deprecated alias of --targets.
    #[arg(short = 'c', long, value_parser = number::<u32>("-c"), hide = true)]
    pub cores: Option<u32>,
    /// Number of targets (0 = derive from the cores).
    #[arg(short = 't', long, value_parser = number::<u32>("-t"))]
    pub targets: Option<u32>,
    /// Helper xstreams per engine.
    #[arg(short = 'x', long, value_parser = number::<u32>("-x"), default_value_t = 0)]
    pub xshelpernr: u32,
    /// First core to use.
    #[arg(short = 'f', long, value_parser = number::<u32>("-f"))]
    pub firstcore: Option<u32>,
    /// System name.
    #[arg(short = 'g', long, value_parser = group, default_value = "daos_server")]
    pub group: String,
    /// SCM mount path.
    #[arg(short = 's', long, default_value = "/mnt/daos")]
    pub storage: PathBuf,
    /// dRPC socket directory.
    #[arg(
        short = 'd',
        long = "socket_dir",
        default_value = "/var/run/daos_server"
    )]
    pub socket_dir: PathBuf,
    /// SPDK JSON config (daos_nvme.conf).
    #[arg(short = 'n', long)]
    pub nvme: Option<PathBuf>,
    /// NUMA node to pin to.
    #[arg(short = 'p', long = "pinned_numa_node", value_parser = number::<u32>("-p"))]
    pub pinned_numa_node: Option<u32>,
    /// DMA memory in MiB.
    #[arg(short = 'r', long = "mem_size", value_parser = number::<u64>("-r"))]
    pub mem_size: Option<u64>,
    /// Hugepage size in MiB.
    #[arg(short = 'H', long = "hugepage_size", value_parser = number::<u64>("-H"))]
    pub hugepage_size: Option<u64>,
    /// Engine index within its daos_server.
    #[arg(short = 'I', long = "instance_idx", value_parser = number::<u32>("-I"), default_value_t = 0)]
    pub instance_idx: u32,
    /// Skip NVMe health collection.
    #[arg(short = 'b', long = "bypass_health_chk")]
    pub bypass_health_chk: bool,
    /// Storage tiers (1 to 4).
    #[arg(short = 'T', long = "storage_tiers", value_parser = tiers, default_value_t = 2)]
    pub storage_tiers: u32,
    /// Checker mode.
    #[arg(short = 'C', long)]
    pub check: bool,
}

impl EngineArgs {
    /// Targets, honouring the deprecated `-c` when `-t` is absent.
    pub fn target_count(&self) -> u32 {
        self.targets.or(self.cores).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<EngineArgs, String> {
        EngineArgs::try_parse_from(std::iter::once("daos_engine").chain(args.iter().copied()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn daos_server_command_lines_parse() {
        let a = parse(&[
            "-t",
            "16",
            "-x",
            "4",
            "-p",
            "1",
            "-s",
            "/mnt/daos1",
            "-n",
            "/mnt/daos1/daos_nvme.conf",
            "-I",
            "1",
            "-d",
            "/var/run/daos_server",
            "-g",
            "daos_server",
        ])
        .unwrap();
        assert_eq!(a.target_count(), 16);
        assert_eq!(
            (a.xshelpernr, a.pinned_numa_node, a.instance_idx),
            (4, Some(1), 1)
        );
        assert_eq!(a.storage, PathBuf::from("/mnt/daos1"));
        assert_eq!(a.modules, DEFAULT_MODULES);
        assert_eq!(a.storage_tiers, 2);
    }

    #[test]
    fn bad_values_use_daos_messages() {
        assert!(
            parse(&["-t", "x"])
                .unwrap_err()
                .contains("invalid numeric value: x (set by -t)")
        );
        assert!(
            parse(&["-g", "a_name_longer_than_15"])
                .unwrap_err()
                .contains("at most 15 bytes")
        );
        assert!(
            parse(&["-T", "5"])
                .unwrap_err()
                .contains("Requires 1 to 4 tiers")
        );
        assert!(parse(&["--bogus"]).is_err());
    }

    #[test]
    fn deprecated_cores_flag() {
        assert_eq!(parse(&["-c", "3"]).unwrap().target_count(), 3);
        assert_eq!(parse(&["-c", "3", "-t", "5"]).unwrap().target_count(), 5);
    }
}
