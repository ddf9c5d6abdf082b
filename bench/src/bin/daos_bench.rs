//! `daos_bench`: benchmarks of daos-rs. See `daos_bench --help`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use daos_bench::fabric;

#[derive(Parser)]
#[command(
    name = "daos_bench",
    version,
    about = "daos-rs benchmarks, each with a reference measured in the same run"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Fabric check: ping-pong over the engine's endpoints, in fi_pingpong's columns.
    Fabric {
        /// libfabric provider (as fi_info names it).
        #[arg(short = 'p', long, default_value = "tcp;ofi_rxm")]
        provider: String,
        /// Message sizes (comma-separated; k and m suffixes).
        #[arg(long, value_delimiter = ',', default_value = "64,256,1k,4k,64k,1m")]
        sizes: Vec<String>,
        /// Round trips per size and repeat.
        #[arg(short = 'I', long, default_value_t = 1000)]
        iterations: usize,
        /// Repeats per size (median, min, max over them).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Also run the real fi_pingpong with the same provider and sizes, and print ratios.
        #[arg(long = "compare-fi-pingpong")]
        compare: bool,
        /// Write the results as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

fn size(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_lowercase();
    let (n, mul) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1024),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        _ => (t.as_str(), 1),
    };
    n.parse::<usize>()
        .map(|v| v * mul)
        .map_err(|_| format!("--sizes: invalid size {s:?} (use e.g. 64, 4k, 1m)"))
}

fn fabric_cmd(
    provider: String,
    sizes: Vec<String>,
    iterations: usize,
    repeat: usize,
    compare: bool,
    json: Option<PathBuf>,
) -> Result<(), String> {
    let sizes: Vec<usize> = sizes.iter().map(|s| size(s)).collect::<Result<_, _>>()?;
    if iterations == 0 || repeat == 0 {
        return Err("--iterations and --repeat must be at least 1".into());
    }
    let mut results = fabric::run(&provider, &sizes, iterations, repeat)?;
    if compare {
        for r in &mut results {
            let reference = fabric::fi_pingpong(&provider, r.bytes, iterations)?;
            r.latency_ratio = daos_bench::ratio(r.usec_per_xfer.median, reference.usec_per_xfer);
            r.bandwidth_ratio = daos_bench::ratio(r.mb_per_sec, reference.mb_per_sec);
            r.reference = Some(reference);
        }
    }
    print!("{}", fabric::table(&results));
    if let Some(path) = json {
        let doc = serde_json::json!({"benchmark": "fabric", "provider": provider, "run": daos_bench::run_info(), "results": results});
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&doc).unwrap_or_default(),
        )
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Fabric {
            provider,
            sizes,
            iterations,
            repeat,
            compare,
            json,
        } => fabric_cmd(provider, sizes, iterations, repeat, compare, json),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR: daos_bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
