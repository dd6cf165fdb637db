//! `vtpm-sim`: serves the Warden vTPM engine over the Microsoft TPM 2.0 simulator protocol.
#![forbid(unsafe_code)]

use clap::Parser;
use std::io::Write;
use std::path::PathBuf;
use vtpm_sim::Server;

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
    #[arg(long)]
    state: Option<PathBuf>,
    /// Create the RSA and ECC EKs and store their certificates (signed by a CA kept in the state
    /// folder as vtpm-ca-key.bin / vtpm-ca.pem) in NV indices 0x01C00002 and 0x01C0000A.
    #[arg(long, requires = "state")]
    manufacture: bool,
}

fn main() {
    let cli = Cli::parse();
    let bound = if cli.manufacture {
        Server::bind_manufactured(cli.port, cli.state)
    } else {
        Server::bind(cli.port, cli.state)
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
