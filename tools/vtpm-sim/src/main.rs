//! `vtpm-sim`: serves the Warden vTPM engine over the Microsoft TPM 2.0 simulator protocol, or
//! (`vtpm-sim socket …`) over swtpm's protocol with swtpm's command line.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use vtpm_sim::options::SocketArgs;
use vtpm_sim::seal::StateKey;
use vtpm_sim::swtpm::SwtpmServer;
use vtpm_sim::{Server, StateDir};

/// Command line.
#[derive(Parser, Debug)]
#[command(
    name = "vtpm-sim",
    about = "TPM 2.0 simulator server around the Warden vTPM engine: the Microsoft simulator protocol, or swtpm's (`vtpm-sim socket --tpm2 …`)",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
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

#[derive(Subcommand, Debug)]
enum Mode {
    /// swtpm's `socket` interface: control channel and data channel, swtpm's options.
    Socket(SocketArgs),
}

fn fail(e: impl std::fmt::Display) -> ! {
    vtpm_sim::log!("{e}");
    std::process::exit(1);
}

/// Set in the background child of `-d`: it reports readiness on stdout, then detaches.
const DAEMON_CHILD: &str = "VTPM_SIM_DAEMON_CHILD";

fn main() {
    let cli = Cli::parse();
    if let Some(Mode::Socket(args)) = cli.mode {
        socket(&args);
    }
    let state = match (cli.state, cli.state_key) {
        (Some(dir), Some(key)) => match StateKey::load(&key) {
            Ok(key) => Some(StateDir { dir, key }),
            Err(e) => fail(e),
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
        Err(e) => fail(e),
    }
}

fn socket(args: &SocketArgs) -> ! {
    let opts = args.parse().unwrap_or_else(|e| fail(e));
    let child = std::env::var_os(DAEMON_CHILD).is_some();
    if opts.daemon && !child {
        daemonize();
    }
    if let Some(l) = &opts.log_file
        && let Err(e) = vtpm_sim::log::to_file(l)
    {
        fail(format!("--log file={}: {e}", l.display()));
    }
    let server = SwtpmServer::bind(&opts).unwrap_or_else(|e| fail(e));
    if let Some(p) = &opts.pid_file
        && let Err(e) = std::fs::write(p, format!("{}\n", std::process::id()))
    {
        fail(format!("--pid file={}: {e}", p.display()));
    }
    vtpm_sim::log!("listening: {}", server.listening);
    // Readiness: the channels are bound when this line appears (the `-d` parent waits for it).
    println!("vtpm-sim listening: {}", server.listening);
    let _ = std::io::stdout().flush();
    server.serve()
}

/// `-d`: runs this command line again as a background child in its own process group, waits
/// until it has bound its channels (its first line on stdout), and exits with its verdict —
/// as swtpm returns once its sockets exist. No fork, so no unsafe code.
fn daemonize() -> ! {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(format!("-d: {e}")));
    let mut child = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(DAEMON_CHILD, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| fail(format!("-d: cannot start the background process: {e}")));
    let mut line = String::new();
    let out = child.stdout.take().expect("piped stdout");
    let _ = std::io::BufReader::new(out).read_line(&mut line);
    if line.starts_with("vtpm-sim listening") {
        std::process::exit(0);
    }
    // The child stopped before binding: pass on its log lines, which say why. (Once it is
    // ready its stdio leads nowhere, as a daemon's should: it logs with --log file=L.)
    let mut why = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut why);
    }
    eprint!("{why}");
    let code = child.wait().ok().and_then(|s| s.code()).unwrap_or(1);
    std::process::exit(if code == 0 { 1 } else { code });
}
