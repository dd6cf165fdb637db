//! A private platform TPM for one boot — swtpm, or `vtpm-sim socket` in its place — with its
//! own state folder, stopped by its pid when dropped.

use crate::RigError;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which interface QEMU gives the platform TPM (the scenario's `tpm_interface`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum TpmInterface {
    /// The FIFO/TIS interface, `-device tpm-tis`, the default.
    #[default]
    #[serde(rename = "tis")]
    Tis,
    /// The Command Response Buffer interface, `-device tpm-crb` (locality 0 only in QEMU).
    #[serde(rename = "crb")]
    Crb,
}

impl TpmInterface {
    /// QEMU's device model for it.
    pub fn qemu_device(self) -> &'static str {
        match self {
            Self::Tis => "tpm-tis",
            Self::Crb => "tpm-crb",
        }
    }
}

/// Which program serves QEMU's `tpm-emulator` backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum PlatformTpm {
    /// swtpm (libtpms), the default.
    #[default]
    #[serde(rename = "swtpm")]
    Swtpm,
    /// Warden's own TPM engine behind `vtpm-sim socket` (swtpm's protocol and command line).
    #[serde(rename = "vtpm-sim")]
    VtpmSim,
}

impl std::str::FromStr for PlatformTpm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "swtpm" => Ok(PlatformTpm::Swtpm),
            "vtpm-sim" => Ok(PlatformTpm::VtpmSim),
            other => Err(format!("unknown platform TPM '{other}' (swtpm or vtpm-sim)")),
        }
    }
}

/// The key that seals a vtpm-sim state folder `dir`: `<dir>.key` beside it (not inside, so the
/// folder can be handed around without its key), created owner-only on first use.
pub fn vtpm_sim_key(dir: &Path) -> Result<PathBuf, RigError> {
    use std::os::unix::fs::PermissionsExt;
    let mut name = dir.as_os_str().to_owned();
    name.push(".key");
    let key = PathBuf::from(name);
    if !key.exists() {
        let mut raw = [0u8; 32];
        std::io::Read::read_exact(
            &mut std::fs::File::open("/dev/urandom").map_err(RigError::io("opening /dev/urandom"))?,
            &mut raw,
        )
        .map_err(RigError::io("reading /dev/urandom"))?;
        std::fs::write(&key, raw).map_err(RigError::io(format!("writing {}", key.display())))?;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .map_err(RigError::io(format!("chmod {}", key.display())))?;
    }
    Ok(key)
}

/// `vtpm-sim socket --tpm2` on the state folder `dir` (sealed with `vtpm_sim_key`) and `args`.
pub fn vtpm_sim_command(dir: &Path, args: &[String]) -> Result<Command, RigError> {
    let mut cmd = Command::new(crate::images::vtpm_sim()?);
    cmd.args(["socket", "--tpm2", "--tpmstate"])
        .arg(format!("dir={}", dir.display()))
        .arg("--key")
        .arg(format!("file={}", vtpm_sim_key(dir)?.display()))
        .args(args);
    Ok(cmd)
}

/// `vtpm-sim socket` on `dir` with its data channel on TCP port P and its control channel on
/// P+1 (what the `swtpm` TCTI expects), `extra` arguments; returns once it listens.
pub fn vtpm_sim_tcp(dir: &Path, extra: &[&str]) -> Result<(Child, u16), RigError> {
    for _ in 0..20 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(RigError::io("picking a port"))?
            .port();
        if port == u16::MAX || std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_err() {
            continue;
        }
        let mut args = vec![
            "--server".to_string(),
            format!("type=tcp,port={port}"),
            "--ctrl".to_string(),
            format!("type=tcp,port={}", port + 1),
            "--log".to_string(),
            format!("file={}", dir.join("vtpm-sim.log").display()),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut child = vtpm_sim_command(dir, &args)?
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| RigError::Spawn { program: "vtpm-sim".into(), source })?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line);
        }
        if line.starts_with("vtpm-sim listening") {
            return Ok((child, port));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    Err(RigError::Swtpm(format!("vtpm-sim did not start on {}; see vtpm-sim.log there", dir.display())))
}

/// A running platform TPM serving QEMU's `tpm-emulator` backend on a UNIX control socket.
#[derive(Debug)]
pub struct Swtpm {
    child: Child,
    dir: PathBuf,
    ctrl: PathBuf,
    kind: PlatformTpm,
}

impl Swtpm {
    /// Starts swtpm with its TPM 2.0 state in `dir` (created if missing).
    pub fn start(dir: &Path) -> Result<Self, RigError> {
        Self::start_kind(PlatformTpm::Swtpm, dir)
    }

    /// Starts `kind` with its TPM 2.0 state in `dir` (created if missing).
    pub fn start_kind(kind: PlatformTpm, dir: &Path) -> Result<Self, RigError> {
        std::fs::create_dir_all(dir).map_err(RigError::io(format!("creating {}", dir.display())))?;
        let ctrl = dir.join("ctrl.sock");
        let (mut cmd, log) = match kind {
            PlatformTpm::Swtpm => {
                let mut c = Command::new("swtpm");
                c.args(["socket", "--tpm2", "--tpmstate"])
                    .arg(format!("dir={}", dir.display()))
                    .arg("--ctrl")
                    .arg(format!("type=unixio,path={}", ctrl.display()))
                    .arg("--log")
                    .arg(format!("file={},level=1", dir.join("swtpm.log").display()));
                (c, dir.join("swtpm.log"))
            }
            PlatformTpm::VtpmSim => {
                let log = dir.join("vtpm-sim.log");
                let args = [
                    "--ctrl".to_string(),
                    format!("type=unixio,path={}", ctrl.display()),
                    "--log".to_string(),
                    format!("file={}", log.display()),
                ];
                (vtpm_sim_command(dir, &args)?, log)
            }
        };
        let program = match kind {
            PlatformTpm::Swtpm => "swtpm",
            PlatformTpm::VtpmSim => "vtpm-sim",
        };
        // A socket left by an earlier run in a reused state folder is not this one's.
        let _ = std::fs::remove_file(&ctrl);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| RigError::Spawn { program: program.into(), source })?;
        let mut me = Self { child, dir: dir.into(), ctrl, kind };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !me.ctrl.exists() {
            if let Ok(Some(status)) = me.child.try_wait() {
                return Err(RigError::Swtpm(format!("{program} exited with {status}; see {}", log.display())));
            }
            if Instant::now() > deadline {
                return Err(RigError::Swtpm(format!("{program}'s control socket did not appear within 10 s")));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(me)
    }

    /// Which program this is.
    pub fn kind(&self) -> PlatformTpm {
        self.kind
    }

    /// The control socket QEMU connects to.
    pub fn ctrl_socket(&self) -> &Path {
        &self.ctrl
    }

    /// The state folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// QEMU arguments that attach this swtpm as a TPM behind `interface`.
    pub fn qemu_args(&self, interface: TpmInterface) -> Vec<String> {
        vec![
            "-chardev".into(),
            format!("socket,id=chrtpm,path={}", self.ctrl.display()),
            "-tpmdev".into(),
            "emulator,id=tpm0,chardev=chrtpm".into(),
            "-device".into(),
            format!("{},tpmdev=tpm0", interface.qemu_device()),
        ]
    }

    /// Stops swtpm now (also done on drop).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        self.stop();
    }
}
