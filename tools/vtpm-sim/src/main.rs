//! `vtpm-sim`: serves the Warden vTPM engine over the Microsoft TPM 2.0 simulator protocol.
#![forbid(unsafe_code)]

use clap::Parser;
use std::io::Write;
use std::path::PathBuf;
use vtpm_sim::seal::StateKey;
use vtpm_sim::{Server, StateDir};

/// Command line.
#[derive(Parser, Debug)]
#[command(
    name = "vtpm-sim",
    about = "TPM 2.0 simulator server (Microsoft simulator protocol) around the Warden vTPM engine"
)]
struct Cli {
    /// Command port P (the platform port is P+1). 0 picks a free pair and prints it.
    #[arg(long, default_value_t = 2321)]
    port: u16,
    /// Folder for the permanent state (NV, seeds, persistent objects); in memory if absent.
    #[arg(long, requires = "state_key")]
    state: Option<PathBuf>,
    /// Key that seals the state folder's files (AES-256-GCM): a file of 32 bytes, raw or as 64
    /// hex digits, readable only by its owner (`head -c 32 /dev/urandom > key; chmod 600 key`).
    #[arg(long, requires = "state")]
    state_key: Option<PathBuf>,
    /// Create the RSA and ECC EKs and store their certificates (signed by a CA kept in the state
    /// folder: vtpm-ca.pem, and its private key sealed in vtpm-ca-key.bin) in NV indices
    /// 0x01C00002 and 0x01C0000A.
    #[arg(long, requires = "state")]
    manufacture: bool,
}

fn main() {
    let cli = Cli::parse();
    let state = match (cli.state, cli.state_key) {
        (Some(dir), Some(key)) => match StateKey::load(&key) {
            Ok(key) => Some(StateDir { dir, key }),
            Err(e) => {
                eprintln!("vtpm-sim: {e}");
                std::process::exit(1);
            }
        },
        _ => None,
    };
    let bound = if cli.manufacture {
        Server::bind_manufactured(cli.port, state)
    } else {
        Server::bind(cli.port, state)
    };
    match bound {
        Ok(server) => {
            // Tests wait for this line: both ports are bound when it appears.
            println!(
                "vtpm-sim listening on 127.0.0.1:{} (platform {})",
                server.port,
                server.port + 1
            );
            let _ = std::io::stdout().flush();
            server.serve();
        }
        Err(e) => {
            eprintln!("vtpm-sim: {e}");
            std::process::exit(1);
        }
    }
}
