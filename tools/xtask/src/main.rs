//! `cargo xtask`: the one entry point for building, running, testing and benchmarking Warden.
#![forbid(unsafe_code)]

mod attest;
mod demo;
mod setup;
mod size;
mod soak;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::process::Command;
use std::sync::Arc;
use warden_rig::{BootOptions, Scenario};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Warden's build driver", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what is missing (Debian packages via apt-get, the x86_64-unknown-none target).
    Setup,
    /// Build the hypervisor and every domain image.
    Build,
    /// Boot a scenario (hypervisor + domains + a private swtpm) in QEMU and check it.
    Run {
        /// The scenario to boot (`cargo xtask scenarios` lists them).
        #[arg(long, default_value = "demo")]
        scenario: String,
        /// Keep the console attached (type Ctrl-A X to leave QEMU) instead of exiting when done.
        #[arg(long)]
        interactive: bool,
        /// Keep the run folder (manifest, swtpm state and log) and print where it is.
        #[arg(long)]
        keep: bool,
        /// The platform TPM: swtpm (default) or vtpm-sim (Warden's own engine, swtpm's protocol);
        /// overrides the scenario's `platform_tpm`.
        #[arg(long)]
        platform_tpm: Option<warden_rig::swtpm::PlatformTpm>,
    },
    /// Measured launch and remote attestation: boot a scenario on a TPM with EK certificates,
    /// verify the exported quote and event log against reference values, print the table.
    Attest(attest::AttestArgs),
    /// List the scenarios, one line each.
    Scenarios,
    /// Print the trusted core's size in lines beside its peers'.
    Size,
    /// Run every test: host unit tests and whole-system QEMU tests.
    Test {
        /// Extra arguments for `cargo test` (after `--`), e.g. a test-name filter.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// A long randomized run: `hostile` drives the model-checking hostile domain (1,000,000 calls
    /// by default; CI's `hostile` scenario makes 100,000) and prints its answer histogram.
    Soak {
        /// What to soak: only `hostile` exists.
        name: String,
        /// How many random hypercalls.
        #[arg(long, default_value_t = 1_000_000)]
        calls: u64,
        /// The seed of the domain's random generator (the scenario uses 1).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Run a benchmark (`warden-NAME-bench`), printing figures beside their references.
    Bench {
        /// Which benchmark: hypercall, policy, vtpm, ipc, ...
        name: String,
        /// Arguments passed to the benchmark.
        #[arg(last = true)]
        args: Vec<String>,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Setup => setup::ensure(),
        Cmd::Build => setup::ensure().and_then(|()| build()),
        Cmd::Run { scenario, interactive, keep, platform_tpm } => {
            setup::ensure().and_then(|()| run(&scenario, interactive, keep, platform_tpm))
        }
        Cmd::Scenarios => scenarios(),
        Cmd::Size => size::report(),
        Cmd::Attest(args) => setup::ensure().and_then(|()| build()).and_then(|()| attest::attest(&args)),
        Cmd::Test { args } => setup::ensure().and_then(|()| test(&args)),
        Cmd::Soak { name, calls, seed } => setup::ensure().and_then(|()| build()).and_then(|()| match name.as_str() {
            "hostile" => soak::hostile(calls, seed),
            other => Err(anyhow::anyhow!("no soak named '{other}' (there is: hostile)")),
        }),
        Cmd::Bench { name, args } => setup::ensure().and_then(|()| bench(&name, &args)),
    };
    if let Err(e) = result {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn build() -> Result<()> {
    eprintln!("xtask: building the hypervisor and domain images for x86_64-unknown-none");
    let images = warden_rig::images()?;
    eprintln!("xtask: hypervisor: {}", images.kernel().display());
    eprintln!("xtask: images in:  {}", images.dir().display());
    Ok(())
}

fn run(name: &str, interactive: bool, keep: bool, tpm: Option<warden_rig::swtpm::PlatformTpm>) -> Result<()> {
    let mut scenario = Scenario::load(name)?;
    build()?;
    // A management domain in the run: drive wardenctl against it (not when interactive).
    let plane = if interactive { None } else { demo::prepare(&mut scenario)? };
    eprintln!("xtask: booting scenario '{}': {}", scenario.name, scenario.description);
    if scenario.tpm {
        let which = tpm.unwrap_or(scenario.platform_tpm);
        eprintln!("xtask: starting a private {which:?} as the platform TPM");
    }
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let tx = std::sync::Mutex::new(tx);
    let opts = BootOptions {
        interactive,
        platform_tpm: tpm,
        keep_dir: keep,
        host_port: plane.as_ref().map(|p| p.port),
        on_line: Some(Arc::new(move |l: &str| {
            println!("{l}");
            let _ = tx.lock().map(|t| t.send(l.to_string()));
        })),
        ..BootOptions::default()
    };
    let sc = scenario.clone();
    let booted = std::thread::spawn(move || warden_rig::boot(&sc, &opts));
    let driven = plane.as_ref().map(|p| p.drive(&rx, std::time::Duration::from_secs(scenario.timeout_secs)));
    let outcome = booted.join().map_err(|_| anyhow::anyhow!("the boot thread panicked"))??;
    if let Some(Err(e)) = driven {
        bail!("driving the management domain: {e:#}");
    }
    if keep {
        eprintln!("xtask: run folder kept at {}", outcome.run_dir.display());
    }
    if interactive {
        return Ok(());
    }
    outcome.check(&scenario).map_err(|e| match e {
        warden_rig::RigError::Mismatch { scenario, failures, .. } => {
            anyhow::anyhow!("scenario '{scenario}' failed:\n  {}", failures.join("\n  "))
        }
        other => other.into(),
    })?;
    eprintln!("xtask: scenario '{}' passed ({:?})", scenario.name, outcome.exit);
    Ok(())
}

fn scenarios() -> Result<()> {
    for s in Scenario::all()? {
        println!("{:<24} {}", s.name, s.description);
    }
    Ok(())
}

/// Workspace packages that are benchmarks: excluded from the test run (they pull heavy
/// comparison-only dependencies and have no tests).
fn bench_packages() -> Result<Vec<String>> {
    let out = Command::new(cargo_bin())
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(warden_rig::workspace_root())
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .filter(|n| n.ends_with("-bench"))
        .map(String::from)
        .collect())
}

fn test(extra: &[String]) -> Result<()> {
    build()?;
    let mut args: Vec<String> = vec!["test".into(), "--workspace".into(), "--no-fail-fast".into()];
    for b in bench_packages()? {
        args.push("--exclude".into());
        args.push(b);
    }
    if !extra.is_empty() {
        args.push("--".into());
        args.extend(extra.iter().cloned());
    }
    cargo(&args)?;
    // The benchmarks have no tests of their own: boot each bench scenario with a few iterations
    // so that the measurement paths (and every figure in docs/perf.md) cannot rot unseen. The
    // bench fails when its scenario fails, its result line is missing or does not parse, or a
    // figure is implausible. A filtered run does them only when the filter names them.
    let filters: Vec<&String> = extra.iter().filter(|a| !a.starts_with('-')).collect();
    for (bench, name) in SMOKE_BENCHES {
        if filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())) {
            eprintln!("xtask: {name}: booting the {bench} benchmark with a few iterations");
            cargo(&["run".into(), "--quiet".into(), "-p".into(), format!("warden-{bench}-bench"), "--".into(), "--smoke".into()])?;
        }
    }
    eprintln!("xtask: all tests passed");
    Ok(())
}

/// The benchmarks `cargo xtask test` boots in smoke mode: (bench, name a test filter matches).
const SMOKE_BENCHES: [(&str, &str); 3] =
    [("hypercall", "bench_smoke::hypercall"), ("ipc", "bench_smoke::ipc"), ("lifecycle", "bench_smoke::lifecycle")];

fn bench(name: &str, extra: &[String]) -> Result<()> {
    let package = format!("warden-{name}-bench");
    let known = bench_packages()?;
    if !known.contains(&package) {
        bail!("no benchmark '{name}' (known: {})", known.join(", "));
    }
    build()?;
    let mut args: Vec<String> = vec!["run".into(), "--release".into(), "--quiet".into(), "-p".into(), package];
    if !extra.is_empty() {
        args.push("--".into());
        args.extend(extra.iter().cloned());
    }
    cargo(&args)
}

fn cargo_bin() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Runs cargo with `args` from the workspace root, failing on a non-zero exit.
fn cargo(args: &[String]) -> Result<()> {
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(cargo_bin()).args(args).current_dir(warden_rig::workspace_root()).status()?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}
