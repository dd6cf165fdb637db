//! `wardenctl`: the host-side Warden control tool. `wardenctl attest verify` checks what a
//! Warden platform proves about its boot.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use wardenctl::reference::Reference;
use wardenctl::verify::{Evidence, parse_nonce, verify};

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
