//! `dmg`: the DAOS management tool. See `dmg --help`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use daos_ctl::exit::ExitCode;
use daos_ctl::server::VERSION;

#[derive(Parser)]
#[command(name = "dmg", version = VERSION, about = "DAOS management tool: administers DAOS systems over the control API")]
struct Cli {
    /// Client config file (daos_control.yml).
    #[arg(short = 'o', long = "config-path", global = true)]
    config_path: Option<PathBuf>,
    /// Plaintext connection, no certificates.
    #[arg(short = 'i', long, global = true)]
    insecure: bool,
    /// JSON output.
    #[arg(short = 'j', long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the version.
    Version,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"response": {"version": VERSION}, "error": null, "status": 0})
                );
            } else {
                println!("dmg version {VERSION}");
            }
        }
    }
    ExitCode::Success.into()
}
