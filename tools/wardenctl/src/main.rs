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
    let cli = Cli::parse();
    let Top::Attest(Attest::Verify {
        quote,
        ak,
        eventlog,
        reference,
        nonce,
        format,
    }) = cli.command;
    let run = || -> Result<wardenctl::verify::Report, String> {
        let nonce = parse_nonce(&nonce).map_err(|e| format!("--nonce: {e}"))?;
        let reference: Reference = serde_json::from_slice(&read(&reference)?)
            .map_err(|e| format!("{}: not a reference manifest: {e}", reference.display()))?;
        let (quote, ak, log) = (read(&quote)?, read(&ak)?, read(&eventlog)?);
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
