//! `daos_engine`: the DAOS I/O engine, started by daos_server. See `daos_engine --help`.

use clap::Parser;
use daos_engine::args::EngineArgs;

fn main() -> std::process::ExitCode {
    if let Err(e) = daos_engine::block_signals() {
        eprintln!("ERROR: daos_engine: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let args = EngineArgs::parse();
    match daos_engine::run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR: daos_engine: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
