//! The demo's management plane: when a scenario run by `cargo xtask run` has a management
//! domain, an operator key is generated for the run, the domain is told to keep the host, and
//! once it listens the real `wardenctl` is driven against it (host info, template add, domain
//! create/list/pause/resume/destroy), each command and its answer printed; when every other
//! boot domain has ended, `wardenctl host shutdown` ends the run, so the usual verdict follows.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};
use warden_rig::Scenario;

/// The passphrase of the run's throw-away operator key (the key file lives in a private
/// temporary folder and is deleted with it).
const PASSPHRASE: &str = "demo run";

/// A run's management plane, set up before boot.
pub struct Plane {
    wardenctl: PathBuf,
    dir: PathBuf,
    pub port: u16,
    /// Boot domains other than the management domain: the run ends once they have.
    others: Vec<String>,
}

/// Prepares `scenario` if it has a management domain (image `mgmt`): a fresh admin key as its
/// only operator, a free host port, and `keep_host` so the host outlives the other domains.
pub fn prepare(scenario: &mut Scenario) -> Result<Option<Plane>> {
    let image = |d: &toml::Table| d.get("image").and_then(|v| v.as_str()) == Some("mgmt");
    let Some(i) = scenario.domain.iter().position(image) else {
        return Ok(None);
    };
    let wardenctl = warden_rig::host_tool("wardenctl")?;
    let dir = std::env::temp_dir().join(format!("warden-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let out = Command::new(&wardenctl)
        .args(["key", "gen", "--name", "demo", "--out"])
        .arg(dir.join("demo.key"))
        .env("WARDEN_KEY_PASSPHRASE", PASSPHRASE)
        .output()
        .context("running wardenctl key gen")?;
    if !out.status.success() {
        bail!(
            "wardenctl key gen: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let public = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let port = warden_rig::qemu::free_port()?;
    let d = &mut scenario.domain[i];
    d.insert(
        "args".into(),
        toml::Value::String(format!("port:7000;admin/{public}/demo")),
    );
    d.insert("keep_host".into(), toml::Value::Boolean(true));
    let others = scenario
        .domain
        .iter()
        .filter(|d| !image(d))
        .filter_map(|d| d.get("name").and_then(|v| v.as_str()).map(String::from))
        .collect();
    Ok(Some(Plane {
        wardenctl,
        dir,
        port,
        others,
    }))
}

impl Plane {
    /// Drives `wardenctl` once the management domain listens (lines arrive on `lines`), then
    /// shuts the host down when every other boot domain has ended.
    pub fn drive(&self, lines: &Receiver<String>, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let next = || -> Result<String> {
            lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .context("the run ended or timed out")
        };
        let mut key = None;
        loop {
            let l = next()?;
            if let Some(k) = l.split("mgmt: response key ").nth(1) {
                key = Some(k.trim().to_string());
            }
            if l.contains("mgmt: listening") {
                break;
            }
        }
        let key = key.context("the management domain printed no response key")?;
        let counter = warden_rig::images()?.image("counter")?;
        let ctl = |args: &[&str]| self.wardenctl(&key, args);
        ctl(&["host", "info"])?;
        ctl(&[
            "template",
            "add",
            "--name",
            "counter",
            "--label",
            "guest_t",
            "--image",
            path(&counter),
        ])?;
        let created = ctl(&[
            "domain",
            "create",
            "--template",
            "counter",
            "--name",
            "tenant",
        ])?;
        let id = created
            .trim()
            .strip_prefix("created domain ")
            .context("no domain id")?
            .to_string();
        ctl(&["domain", "list"])?;
        ctl(&["domain", "pause", &id])?;
        ctl(&["domain", "info", &id])?;
        ctl(&["domain", "resume", &id])?;
        ctl(&["domain", "destroy", &id])?;
        ctl(&["domain", "list"])?;
        // The rest of the demo goes on; the host stops when the boot domains are done.
        let mut left: Vec<&str> = self.others.iter().map(String::as_str).collect();
        while !left.is_empty() {
            let l = next()?;
            left.retain(|n| {
                let p = format!("domain {n} (id ");
                !(l.starts_with(&p) && (l.contains(") shut down") || l.contains(") stopped")))
            });
        }
        ctl(&["host", "shutdown"])?;
        Ok(())
    }

    /// Runs one `wardenctl` command as the demo operator, printing it and its answer.
    fn wardenctl(&self, server_key: &str, args: &[&str]) -> Result<String> {
        println!("xtask: $ wardenctl {}", args.join(" "));
        let out = Command::new(&self.wardenctl)
            .args(args)
            .args([
                "--connect",
                &format!("127.0.0.1:{}", self.port),
                "--server-key",
                server_key,
                "--key",
            ])
            .arg(self.dir.join("demo.key"))
            .env("WARDEN_KEY_PASSPHRASE", PASSPHRASE)
            .output()
            .context("running wardenctl")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        for l in text.lines() {
            println!("xtask:   {l}");
        }
        if !out.status.success() {
            bail!(
                "wardenctl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(text)
    }
}

impl Drop for Plane {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}
