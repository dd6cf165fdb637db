//! Booting a scenario in QEMU: modules, the private swtpm, the serial log, the exit status.

use crate::scenario::{ExpectExit, Scenario};
use crate::swtpm::Swtpm;
use crate::{RigError, images};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a boot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// The hypervisor reported success (debug-exit code 0x10).
    Success,
    /// The hypervisor reported a failed check (0x11).
    Failure,
    /// The hypervisor panicked (0x12).
    Panic,
    /// The hypervisor took a fatal exception (0x13).
    Exception,
    /// QEMU exited on its own: a reset or triple fault with `-no-reboot`, or a QEMU error.
    QemuExit(i32),
    /// The rig killed QEMU when the scenario's timeout ran out.
    Timeout,
    /// QEMU died from a signal.
    Killed,
}

impl ExitKind {
    fn from_status(status: std::process::ExitStatus) -> Self {
        match status.code() {
            Some(33) => Self::Success,
            Some(35) => Self::Failure,
            Some(37) => Self::Panic,
            Some(39) => Self::Exception,
            Some(c) => Self::QemuExit(c),
            None => Self::Killed,
        }
    }

    fn matches(self, want: ExpectExit) -> bool {
        matches!(
            (self, want),
            (Self::Success, ExpectExit::Success)
                | (Self::Failure, ExpectExit::Failure)
                | (Self::Panic, ExpectExit::Panic)
                | (Self::Exception, ExpectExit::Exception)
        )
    }
}

/// Callback receiving each serial line as it arrives.
pub type LineSink = Arc<dyn Fn(&str) + Send + Sync>;

/// Knobs for one boot beyond what the scenario file says.
#[derive(Clone, Default)]
pub struct BootOptions {
    /// Extra hypervisor command-line words (after the scenario's).
    pub extra_cmdline: Vec<String>,
    /// Extra QEMU arguments.
    pub extra_qemu_args: Vec<String>,
    /// Extra Multiboot modules: (path, module arguments), appended after the domain images.
    pub extra_modules: Vec<(PathBuf, String)>,
    /// Replace a module file before boot (e.g. a tampered copy): (module name, path).
    pub replace_modules: Vec<(String, PathBuf)>,
    /// Extra GRUB commands run before `multiboot2` (UEFI scenarios; GRUB measures them, PCR 8).
    pub grub_commands: Vec<String>,
    /// Use this swtpm state folder (e.g. one provisioned with EK certificates) instead of a fresh one.
    pub tpm_state: Option<PathBuf>,
    /// Use this platform TPM instead of the scenario's (`platform_tpm`).
    pub platform_tpm: Option<crate::swtpm::PlatformTpm>,
    /// Leave swtpm running after QEMU exits (it is handed back in the outcome).
    pub keep_tpm: bool,
    /// Keep the run folder (manifest, logs, swtpm state) instead of deleting it.
    pub keep_dir: bool,
    /// Connect the console to this terminal instead of capturing it; no timeout.
    pub interactive: bool,
    /// Called with every serial line as it arrives.
    pub on_line: Option<LineSink>,
    /// The host port forwarded to the guest's management port when the scenario asks for a
    /// network (`net = true`); `None` lets the rig pick a free one.
    pub host_port: Option<u16>,
    /// Once a serial line contains the trigger, run these QEMU monitor (HMP) commands, keep
    /// their output in [`Outcome::monitor`], and quit QEMU.
    pub monitor: Option<MonitorScript>,
}

/// Monitor commands to run when the serial log shows `trigger`.
#[derive(Debug, Clone)]
pub struct MonitorScript {
    /// Substring of a serial line that starts the script.
    pub trigger: String,
    /// HMP commands, e.g. `info tlb`.
    pub commands: Vec<String>,
    /// Leave QEMU running after the commands (the run ends as the hypervisor decides).
    pub keep_running: bool,
}

impl std::fmt::Debug for BootOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootOptions")
            .field("extra_cmdline", &self.extra_cmdline)
            .field("extra_qemu_args", &self.extra_qemu_args)
            .field("keep_tpm", &self.keep_tpm)
            .field("interactive", &self.interactive)
            .finish_non_exhaustive()
    }
}

/// What a boot produced.
#[derive(Debug)]
pub struct Outcome {
    /// The whole serial log (CRs removed).
    pub log: String,
    /// How it ended.
    pub exit: ExitKind,
    /// The run folder (deleted when the outcome is dropped unless `keep_dir` was set).
    pub run_dir: PathBuf,
    /// swtpm, still running, when `keep_tpm` was set.
    pub swtpm: Option<Swtpm>,
    /// What the monitor script's commands printed (empty without a script).
    pub monitor: String,
    _tmp: Option<tempfile::TempDir>,
}

impl Outcome {
    /// Lines of the log that contain `needle`.
    pub fn lines_with<'a>(&'a self, needle: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.log.lines().filter(move |l| l.contains(needle))
    }

    /// Checks the exit kind, the ordered `expect` substrings and the `forbid` substrings.
    pub fn check(&self, scenario: &Scenario) -> Result<(), RigError> {
        let mut failures = Vec::new();
        if !self.exit.matches(scenario.expect_exit) {
            failures.push(format!(
                "expected exit {:?}, got {:?}",
                scenario.expect_exit, self.exit
            ));
        }
        let mut rest = self.log.as_str();
        for e in &scenario.expect {
            match rest.find(e.as_str()) {
                Some(i) => rest = &rest[i + e.len()..],
                None if self.log.contains(e.as_str()) => {
                    failures.push(format!("'{e}' appears, but out of order"))
                }
                None => failures.push(format!("'{e}' never appears")),
            }
        }
        for f in &scenario.forbid {
            if self.log.contains(f.as_str()) {
                failures.push(format!("forbidden '{f}' appears"));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(RigError::Mismatch {
                scenario: scenario.name.clone(),
                failures,
                log: self.log.clone(),
            })
        }
    }
}

/// Boots `scenario` and returns what happened (without judging it: see [`Outcome::check`]).
pub fn boot(scenario: &Scenario, opts: &BootOptions) -> Result<Outcome, RigError> {
    let images = images()?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!("warden-{}-", scenario.name))
        .tempdir()
        .map_err(RigError::io("creating the run folder"))?;
    let run_dir = tmp.path().to_path_buf();

    let mut modules: Vec<(PathBuf, String)> = Vec::new();
    if let Some(policy) = &scenario.policy {
        let compiled = crate::policy::compile(policy, &run_dir)?;
        modules.push((compiled, "kind=policy".into()));
    }
    let manifest = run_dir.join("manifest");
    std::fs::write(&manifest, scenario.manifest()?)
        .map_err(RigError::io("writing the manifest"))?;
    modules.push((manifest, "kind=manifest".into()));
    for name in scenario.images() {
        modules.push((images.image(&name)?, format!("kind=image name={name}")));
    }
    modules.extend(opts.extra_modules.iter().cloned());
    for (name, path) in &opts.replace_modules {
        for m in modules.iter_mut() {
            let is_it = (name == "manifest" && m.1 == "kind=manifest")
                || (name == "policy" && m.1 == "kind=policy")
                || m.1.split_whitespace().any(|w| w == format!("name={name}"));
            if is_it {
                m.0 = path.clone();
            }
        }
    }
    for (path, _) in &modules {
        if path.to_string_lossy().contains([',', ' ']) {
            return Err(RigError::Build(format!(
                "module path {} contains a comma or space",
                path.display()
            )));
        }
    }

    let swtpm = if scenario.tpm {
        let dir = opts.tpm_state.clone().unwrap_or_else(|| run_dir.join("tpm"));
        Some(Swtpm::start_kind(opts.platform_tpm.unwrap_or(scenario.platform_tpm), &dir)?)
    } else {
        None
    };

    let mut cmdline = scenario.hypervisor_cmdline();
    for w in &opts.extra_cmdline {
        cmdline.push(' ');
        cmdline.push_str(w);
    }
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-machine",
        "pc",
        "-accel",
        "tcg",
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
        "-smp",
        "1",
    ])
    .args(["-cpu", &scenario.cpu])
    .args(["-m", &format!("{}M", scenario.memory_mib)])
    .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4"]);
    if scenario.boot == crate::scenario::BootPath::UefiGrub {
        let iso = crate::uefi::grub_iso(&run_dir, images.kernel(), &cmdline, &modules, &opts.grub_commands)?;
        cmd.args(crate::uefi::qemu_args(&run_dir, &iso)?);
    } else {
        cmd.arg("-kernel").arg(images.kernel()).args(["-append", cmdline.trim()]);
    }
    if !modules.is_empty() && scenario.boot == crate::scenario::BootPath::Multiboot {
        let list: Vec<String> = modules
            .iter()
            .map(|(p, a)| format!("{} {a}", p.display()))
            .collect();
        cmd.args(["-initrd", &list.join(",")]);
    }
    if let Some(t) = &swtpm {
        cmd.args(t.qemu_args(scenario.tpm_interface));
    }
    if scenario.icount {
        cmd.args(["-icount", "shift=0"]);
    }
    if scenario.net {
        let port = match opts.host_port {
            Some(p) => p,
            None => free_port()?,
        };
        cmd.args(net_args(port));
    }
    cmd.args(&opts.extra_qemu_args);

    let monitor_sock = run_dir.join("monitor.sock");
    let (log, exit, monitor) = if opts.interactive {
        cmd.args(["-serial", "mon:stdio"]);
        let status = cmd.status().map_err(|source| RigError::Spawn {
            program: "qemu-system-x86_64".into(),
            source,
        })?;
        (String::new(), ExitKind::from_status(status), String::new())
    } else {
        cmd.args(["-serial", "stdio"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match &opts.monitor {
            Some(_) => cmd.args([
                "-monitor",
                &format!("unix:{},server=on,wait=off", monitor_sock.display()),
            ]),
            None => cmd.args(["-monitor", "none"]),
        };
        run_captured(
            cmd,
            Duration::from_secs(scenario.timeout_secs),
            opts.on_line.clone(),
            opts.monitor.clone().map(|m| (m, monitor_sock)),
        )?
    };

    let swtpm = match swtpm {
        Some(t) if opts.keep_tpm => Some(t),
        _ => None, // dropped: stopped by pid
    };
    let tmp = if opts.keep_dir {
        let _ = tmp.keep();
        None
    } else {
        Some(tmp)
    };
    Ok(Outcome {
        log,
        exit,
        run_dir,
        swtpm,
        monitor,
        _tmp: tmp,
    })
}

/// The guest port the management domain listens on (its default `port:`).
pub const NET_GUEST_PORT: u16 = 7000;
/// PCI address of the virtio-net function (the manifest's `pci=` for the domain that owns it).
pub const NET_PCI: &str = "00:03.0";

/// QEMU arguments for the management network: user networking (no host privileges), one
/// forward bound to loopback only, a modern-only virtio-net function at [`NET_PCI`].
pub fn net_args(host_port: u16) -> Vec<String> {
    vec![
        "-netdev".into(),
        format!("user,id=n0,hostfwd=tcp:127.0.0.1:{host_port}-:{NET_GUEST_PORT}"),
        "-device".into(),
        "virtio-net-pci,netdev=n0,disable-legacy=on,addr=03.0".into(),
    ]
}

/// A loopback TCP port free at the time of the call (bound and released).
pub fn free_port() -> Result<u16, RigError> {
    let l =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(RigError::io("finding a free port"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(RigError::io("finding a free port"))
}

/// Runs HMP commands over the monitor socket, returns their output, then quits QEMU (unless
/// `keep_running`).
fn run_monitor(socket: &std::path::Path, commands: &[String], keep_running: bool) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(socket) else {
        return String::from("monitor: could not connect");
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    // Reads until the HMP prompt returns.
    let read_to_prompt = |s: &mut std::os::unix::net::UnixStream| {
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        while !out.ends_with(b"(qemu) ") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&out).replace('\r', "")
    };
    read_to_prompt(&mut s);
    let mut output = String::new();
    for c in commands {
        let _ = s.write_all(format!("{c}\n").as_bytes());
        let text = read_to_prompt(&mut s);
        // Drop the echoed command line and the trailing prompt.
        let body = text.trim_end_matches("(qemu) ");
        let body = body.split_once('\n').map_or("", |(_, rest)| rest);
        output.push_str(body);
    }
    if keep_running {
        return output;
    }
    let _ = s.write_all(b"quit\n");
    // Wait for QEMU to close the connection: closing first can make it drop the pending quit.
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
    output
}

fn run_captured(
    mut cmd: Command,
    timeout: Duration,
    sink: Option<LineSink>,
    monitor: Option<(MonitorScript, PathBuf)>,
) -> Result<(String, ExitKind, String), RigError> {
    let mut child = cmd.spawn().map_err(|source| RigError::Spawn {
        program: "qemu-system-x86_64".into(),
        source,
    })?;
    let log = Arc::new(Mutex::new(String::new()));
    let stdout = child.stdout.take().expect("stdout is piped");
    let monitor_out = Arc::new(Mutex::new(String::new()));
    let reader = {
        let log = Arc::clone(&log);
        let monitor_out = Arc::clone(&monitor_out);
        let mut monitor = monitor;
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut buf = Vec::new();
            while let Ok(n) = r.read_until(b'\n', &mut buf) {
                if n == 0 {
                    break;
                }
                let line = String::from_utf8_lossy(&buf).replace('\r', "");
                if let Some(s) = &sink {
                    s(line.trim_end_matches('\n'));
                }
                log.lock().expect("log lock").push_str(&line);
                if monitor
                    .as_ref()
                    .is_some_and(|(m, _)| line.contains(m.trigger.as_str()))
                {
                    if let Some((m, sock)) = monitor.take() {
                        *monitor_out.lock().expect("monitor lock") = run_monitor(&sock, &m.commands, m.keep_running);
                    }
                }
                buf.clear();
            }
        })
    };
    let stderr = child.stderr.take().expect("stderr is piped");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let exit = loop {
        match child.try_wait().map_err(RigError::io("waiting for QEMU"))? {
            Some(status) => break ExitKind::from_status(status),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break ExitKind::Timeout;
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let _ = reader.join();
    let stderr = err_reader.join().unwrap_or_default();
    let mut log = std::mem::take(&mut *log.lock().expect("log lock"));
    if !stderr.trim().is_empty() {
        log.push_str("--- qemu stderr ---\n");
        log.push_str(&stderr);
    }
    let monitor = std::mem::take(&mut *monitor_out.lock().expect("monitor lock"));
    Ok((log, exit, monitor))
}
