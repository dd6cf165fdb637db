//! `wardenctl`: the host-side Warden control tool. `wardenctl attest verify` checks what a
//! Warden platform proves about its boot; `host`, `domain` and `template` talk to the
//! management domain over the signed management protocol; `key` makes operator keys;
//! `checkpoint verify|info` check and show checkpoint images offline.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use warden_mgmt_proto::{Reply, Request, Template};
use wardenctl::mgmt::{Client, ClientError};
use wardenctl::reference::Reference;
use wardenctl::verify::{Evidence, parse_nonce, verify};
use wardenctl::{checkpoint, keyfile};

#[derive(Parser)]
#[command(
    name = "wardenctl",
    about = "Control and verify Warden platforms",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand)]
enum Top {
    /// Remote attestation of a Warden platform.
    #[command(subcommand)]
    Attest(Attest),
    /// The host as a whole (management protocol).
    #[command(subcommand)]
    Host(HostCmd),
    /// Domains (management protocol).
    #[command(subcommand)]
    Domain(DomainCmd),
    /// Domain templates stored by the management domain (management protocol).
    #[command(subcommand)]
    Template(TemplateCmd),
    /// Operator keys.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Checkpoint images, offline.
    #[command(subcommand)]
    Checkpoint(CheckpointCmd),
}

#[derive(Subcommand)]
enum CheckpointCmd {
    /// Verify a checkpoint image offline: structure, manifest signature, the signing key's
    /// certification by the AK and its PCR policy against the reference, Merkle root, and the
    /// chain when parents are given. Exit 0 if it verifies, 1 if refused, 2 if an input cannot
    /// be read.
    Verify {
        /// The checkpoint image.
        file: PathBuf,
        /// The platform attestation key's TPM2B_PUBLIC.
        #[arg(long)]
        ak: PathBuf,
        /// The reference manifest (JSON, as for `attest verify`): its SHA-256 PCRs 20-22.
        #[arg(long)]
        pcrs: PathBuf,
        /// The image's ancestors, oldest (a full image) first; repeat for each.
        #[arg(long)]
        parent: Vec<PathBuf>,
        /// Print the verdict as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a checkpoint image's manifest (unverified). Exit 2 if it does not frame.
    Info {
        /// The checkpoint image.
        file: PathBuf,
        /// Print it as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Where the management domain is and who is asking. Exit 0 on success, 1 when the server
/// refuses the request (the message says which check refused it), 2 when it cannot be asked.
#[derive(clap::Args)]
struct Conn {
    /// The management domain's address.
    #[arg(long, env = "WARDEN_MGMT", default_value = "127.0.0.1:7000")]
    connect: String,
    /// The operator's key file (`wardenctl key gen`).
    #[arg(long, env = "WARDEN_KEY")]
    key: PathBuf,
    /// The management domain's response key (66 hex digits, printed by the domain at boot as
    /// `mgmt: response key …`): responses not signed with it are refused.
    #[arg(long, env = "WARDEN_MGMT_SERVER_KEY")]
    server_key: String,
    /// A file holding the key file's passphrase (otherwise $WARDEN_KEY_PASSPHRASE).
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum HostCmd {
    /// ABI version, memory, domain count, the management domain.
    Info(Conn),
    /// The hypervisor's audit records (admin; the management domain needs
    /// `hypervisor { audit_read }`), from sequence number `--from` on.
    Audit {
        #[arg(long, default_value_t = 0)]
        from: u64,
        #[command(flatten)]
        conn: Conn,
    },
    /// Stop the host (admin).
    Shutdown(Conn),
}

#[derive(Subcommand)]
enum DomainCmd {
    /// Every domain with its state, label, priority, memory and CPU time.
    List(Conn),
    Info {
        id: u32,
        #[command(flatten)]
        conn: Conn,
    },
    /// Create, build, label and start a domain from a template (admin).
    Create {
        #[arg(long)]
        template: String,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Stop scheduling a domain (operator).
    Pause {
        id: u32,
        #[command(flatten)]
        conn: Conn,
    },
    /// Schedule a paused domain again (operator).
    Resume {
        id: u32,
        #[command(flatten)]
        conn: Conn,
    },
    /// Destroy a domain and return its memory (admin).
    Destroy {
        id: u32,
        #[command(flatten)]
        conn: Conn,
    },
    /// Change a domain's priority (operator).
    SetPriority {
        id: u32,
        priority: u8,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Subcommand)]
enum TemplateCmd {
    /// Store a template (admin).
    Add {
        #[arg(long)]
        name: String,
        /// The domain's ELF64 image.
        #[arg(long)]
        image: PathBuf,
        #[arg(long, default_value_t = 4)]
        memory_mib: u32,
        #[arg(long, default_value_t = 5)]
        priority: u8,
        /// The label the domain runs under.
        #[arg(long)]
        label: String,
        #[arg(long, default_value = "")]
        args: String,
        /// The label the domain is built under (default: the server's build label); the
        /// policy must transition it to `--label`.
        #[arg(long)]
        build_label: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    List(Conn),
    /// Remove a template (admin).
    Rm {
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Generate an operator key, sealed under a passphrase, and print its operator-list entry.
    Gen {
        #[arg(long)]
        out: PathBuf,
        /// The operator's name in the printed entry.
        #[arg(long, default_value = "operator")]
        name: String,
        /// A file holding the passphrase (otherwise $WARDEN_KEY_PASSPHRASE).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Print a key file's public key (no passphrase needed).
    Show { file: PathBuf },
}

#[derive(Subcommand)]
enum Attest {
    /// Verify a quote and event log against reference values. Exit 0 only if everything
    /// matches, 1 if verification fails, 2 if an input cannot be read or parsed.
    Verify {
        /// The quote: TPM2B_ATTEST followed by TPMT_SIGNATURE (as the hypervisor exports it).
        #[arg(long)]
        quote: PathBuf,
        /// The attestation key's TPM2B_PUBLIC.
        #[arg(long)]
        ak: PathBuf,
        /// The TCG crypto-agile event log.
        #[arg(long)]
        eventlog: PathBuf,
        /// The reference manifest (JSON, from `cargo xtask attest`).
        #[arg(long)]
        reference: PathBuf,
        /// The nonce the quote must carry, in hex.
        #[arg(long)]
        nonce: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Decode a Warden event log: every event with its PCR, kind, component and digests, then
    /// the PCR values it replays to. Exit 2 if the log does not parse.
    Log {
        /// The TCG crypto-agile event log.
        eventlog: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Top::Host(c) => match c {
            HostCmd::Info(conn) => mgmt(&conn, Request::HostInfo),
            HostCmd::Shutdown(conn) => mgmt(&conn, Request::HostShutdown),
            HostCmd::Audit { from, conn } => mgmt(&conn, Request::AuditRead { from_seq: from }),
        },
        Top::Domain(c) => match c {
            DomainCmd::List(conn) => mgmt(&conn, Request::DomainList),
            DomainCmd::Info { id, conn } => mgmt(&conn, Request::DomainInfo { id }),
            DomainCmd::Create {
                template,
                name,
                conn,
            } => mgmt(&conn, Request::DomainCreate { template, name }),
            DomainCmd::Pause { id, conn } => mgmt(&conn, Request::DomainPause { id }),
            DomainCmd::Resume { id, conn } => mgmt(&conn, Request::DomainResume { id }),
            DomainCmd::Destroy { id, conn } => mgmt(&conn, Request::DomainDestroy { id }),
            DomainCmd::SetPriority { id, priority, conn } => {
                mgmt(&conn, Request::DomainSetPriority { id, priority })
            }
        },
        Top::Template(c) => match c {
            TemplateCmd::Add {
                name,
                image,
                memory_mib,
                priority,
                label,
                args,
                build_label,
                conn,
            } => match read(&image) {
                Ok(image) => mgmt(
                    &conn,
                    Request::TemplateAdd(Template {
                        name,
                        image,
                        memory_mib,
                        priority,
                        label,
                        args,
                        build_label,
                    }),
                ),
                Err(e) => usage_error(&e),
            },
            TemplateCmd::List(conn) => mgmt(&conn, Request::TemplateList),
            TemplateCmd::Rm { name, conn } => mgmt(&conn, Request::TemplateRm { name }),
        },
        Top::Key(KeyCmd::Gen {
            out,
            name,
            passphrase_file,
        }) => {
            let run = || -> Result<String, String> {
                let pass = passphrase(passphrase_file.as_deref())?;
                let (text, signer) = keyfile::generate(&pass).map_err(|e| e.to_string())?;
                write_private(&out, &text)?;
                Ok(format!(
                    "{}\n# operator-list entry (role admin, operator or viewer):\nROLE/{}/{name}\n",
                    signer.public_hex(),
                    signer.public_hex()
                ))
            };
            match run() {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => usage_error(&e),
            }
        }
        Top::Key(KeyCmd::Show { file }) => {
            match read(&file).and_then(|b| {
                keyfile::public(&String::from_utf8_lossy(&b)).map_err(|e| e.to_string())
            }) {
                Ok(p) => {
                    println!("{p}");
                    ExitCode::SUCCESS
                }
                Err(e) => usage_error(&e),
            }
        }
        Top::Attest(Attest::Log { eventlog }) => match read(&eventlog).and_then(|b| decode_log(&b))
        {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("wardenctl: error: {e}");
                ExitCode::from(2)
            }
        },
        Top::Checkpoint(CheckpointCmd::Verify {
            file,
            ak,
            pcrs,
            parent,
            json,
        }) => checkpoint_verify(&file, &ak, &pcrs, &parent, json),
        Top::Checkpoint(CheckpointCmd::Info { file, json }) => checkpoint_info(&file, json),
        Top::Attest(Attest::Verify {
            quote,
            ak,
            eventlog,
            reference,
            nonce,
            format,
        }) => verify_command(&quote, &ak, &eventlog, &reference, &nonce, format),
    }
}

fn usage_error(e: &str) -> ExitCode {
    eprintln!("wardenctl: error: {e}");
    ExitCode::from(2)
}

/// The key file's passphrase: from `file` (first line) or $WARDEN_KEY_PASSPHRASE.
fn passphrase(file: Option<&Path>) -> Result<Vec<u8>, String> {
    match file {
        Some(f) => {
            let text = read(f)?;
            let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
            Ok(line.to_vec())
        }
        None => std::env::var("WARDEN_KEY_PASSPHRASE")
            .map(String::into_bytes)
            .map_err(|_| keyfile::KeyError::NoPassphrase.to_string()),
    }
}

/// Writes a key file readable by its owner only, refusing to overwrite one.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// One management request: open the key, connect, ask, print the answer.
fn mgmt(conn: &Conn, request: Request) -> ExitCode {
    let name = request.name();
    let signer = match read(&conn.key)
        .and_then(|b| Ok((b, passphrase(conn.passphrase_file.as_deref())?)))
        .and_then(|(b, p)| {
            keyfile::open(&String::from_utf8_lossy(&b), &p)
                .map_err(|e| format!("{}: {e}", conn.key.display()))
        }) {
        Ok(s) => s,
        Err(e) => return usage_error(&e),
    };
    let server = match wardenctl::mgmt::ServerKey::parse_hex(&conn.server_key) {
        Ok(k) => k,
        Err(e) => return usage_error(&e),
    };
    let shutdown = request == Request::HostShutdown;
    let mut answer =
        Client::connect(&conn.connect, &server).and_then(|mut c| c.request(&signer, &request));
    if shutdown && matches!(answer, Err(ClientError::Closed)) {
        // A host that shuts down cannot answer: the connection closes with the machine. Show
        // that it is down: the management domain no longer says hello.
        answer = match Client::connect_within(
            &conn.connect,
            &server,
            std::time::Duration::from_secs(10),
        ) {
            Ok(_) => Err(ClientError::Protocol(
                "the connection closed but the management domain still answers".into(),
            )),
            Err(_) => Ok(Reply::Done),
        };
    }
    match answer {
        Ok(reply) => {
            if conn.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&reply).unwrap_or_default()
                );
            } else {
                print!("{}", wardenctl::mgmt::table(&reply));
            }
            ExitCode::SUCCESS
        }
        Err(ClientError::Server(e)) => {
            if conn.json {
                println!(
                    "{}",
                    serde_json::json!({ "error": e.to_string(), "detail": e })
                );
            }
            eprintln!("wardenctl: {name}: {e}");
            ExitCode::from(1)
        }
        Err(e) => usage_error(&format!("{name}: {e}")),
    }
}

/// The `attest log` listing.
fn decode_log(bytes: &[u8]) -> Result<String, String> {
    use warden_tpm::eventlog::{EV_SEPARATOR, EventLog, WARDEN_PCRS};
    let log = EventLog::parse(bytes).map_err(|e| format!("event log: {e}"))?;
    let banks: Vec<_> = log.banks().iter().collect();
    let mut out = format!(
        "banks: {}\n",
        banks.iter().map(|b| b.name()).collect::<Vec<_>>().join(" ")
    );
    for (i, e) in log.events().enumerate() {
        let e = e.map_err(|e| format!("event log: {e}"))?;
        let what = match (e.warden_tag(), e.event_type) {
            (Some((tag, name)), _) => format!("{:<9} {name}", tag.name()),
            (None, EV_SEPARATOR) => "separator".to_string(),
            (None, t) => format!("type {t:#x}"),
        };
        out.push_str(&format!("event {:>2}  PCR {:>2}  {what}\n", i + 1, e.pcr));
        for d in e.digests.iter() {
            out.push_str(&format!(
                "           {:<7} {}\n",
                d.alg().name(),
                wardenctl::hex(d.as_bytes())
            ));
        }
    }
    let replay = log.replay();
    out.push_str("replayed PCRs:\n");
    for alg in &banks {
        for pcr in WARDEN_PCRS {
            if let Some(v) = replay.pcr(*alg, pcr) {
                out.push_str(&format!(
                    "  {:<7} {pcr}: {}\n",
                    alg.name(),
                    wardenctl::hex(v.as_bytes())
                ));
            }
        }
    }
    Ok(out)
}

fn verify_command(
    quote: &Path,
    ak: &Path,
    eventlog: &Path,
    reference: &Path,
    nonce: &str,
    format: Format,
) -> ExitCode {
    let run = || -> Result<wardenctl::verify::Report, String> {
        let nonce = parse_nonce(nonce).map_err(|e| format!("--nonce: {e}"))?;
        let reference: Reference = serde_json::from_slice(&read(reference)?)
            .map_err(|e| format!("{}: not a reference manifest: {e}", reference.display()))?;
        let (quote, ak, log) = (read(quote)?, read(ak)?, read(eventlog)?);
        verify(
            &Evidence {
                quote: &quote,
                ak_public: &ak,
                event_log: &log,
                nonce: &nonce,
            },
            &reference,
        )
        .map_err(|e| e.to_string())
    };
    match run() {
        Ok(report) => {
            match format {
                Format::Table => {
                    print!("{}", report.table());
                    for f in report.failures() {
                        eprintln!("wardenctl: {f}");
                    }
                }
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                ),
            }
            if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("wardenctl: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn checkpoint_verify(
    file: &Path,
    ak: &Path,
    pcrs: &Path,
    parents: &[PathBuf],
    json: bool,
) -> ExitCode {
    let inputs = || -> Result<_, String> {
        let reference: Reference = serde_json::from_slice(&read(pcrs)?)
            .map_err(|e| format!("{}: not a reference manifest: {e}", pcrs.display()))?;
        let policy = checkpoint::pcr_policy(&reference)?;
        let parents = parents
            .iter()
            .map(|p| read(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((read(file)?, parents, read(ak)?, policy))
    };
    let (image, parents, ak, policy) = match inputs() {
        Ok(i) => i,
        Err(e) => return usage_error(&e),
    };
    let outcome = checkpoint::verify_files(&image, &parents, &ak, &policy);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&outcome).unwrap_or_default()
        );
    } else {
        print!("{}", checkpoint::outcome_table(&outcome));
    }
    if let Some(f) = &outcome.failure {
        eprintln!(
            "wardenctl: checkpoint refused: {} ({}): {}",
            f.kind, f.file, f.message
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

fn checkpoint_info(file: &Path, json: bool) -> ExitCode {
    let bytes = match read(file) {
        Ok(b) => b,
        Err(e) => return usage_error(&e),
    };
    match warden_checkpoint::Image::parse(&bytes) {
        Ok(image) => {
            let info = checkpoint::info(&image, bytes.len());
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&info).unwrap_or_default()
                );
            } else {
                print!("{}", checkpoint::info_table(&info));
            }
            ExitCode::SUCCESS
        }
        Err(e) => usage_error(&format!("{}: {e} ({})", file.display(), e.kind())),
    }
}
