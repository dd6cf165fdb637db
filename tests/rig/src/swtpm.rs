//! A private swtpm for one boot: its own state folder, stopped by its pid when dropped.

use crate::RigError;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running swtpm serving QEMU's `tpm-emulator` backend on a UNIX control socket.
#[derive(Debug)]
pub struct Swtpm {
    child: Child,
    dir: PathBuf,
    ctrl: PathBuf,
}

impl Swtpm {
    /// Starts swtpm with its TPM 2.0 state in `dir` (created if missing).
    pub fn start(dir: &Path) -> Result<Self, RigError> {
        std::fs::create_dir_all(dir).map_err(RigError::io(format!("creating {}", dir.display())))?;
        let ctrl = dir.join("ctrl.sock");
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--tpmstate"])
            .arg(format!("dir={}", dir.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", ctrl.display()))
            .arg("--log")
            .arg(format!("file={},level=1", dir.join("swtpm.log").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| RigError::Spawn { program: "swtpm".into(), source })?;
        let mut me = Self { child, dir: dir.into(), ctrl };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !me.ctrl.exists() {
            if let Ok(Some(status)) = me.child.try_wait() {
                return Err(RigError::Swtpm(format!("exited with {status}; see {}", me.dir.join("swtpm.log").display())));
            }
            if Instant::now() > deadline {
                return Err(RigError::Swtpm("control socket did not appear within 10 s".into()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(me)
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

    /// QEMU arguments that attach this swtpm as a TIS TPM.
    pub fn qemu_args(&self) -> Vec<String> {
        vec![
            "-chardev".into(),
            format!("socket,id=chrtpm,path={}", self.ctrl.display()),
            "-tpmdev".into(),
            "emulator,id=tpm0,chardev=chrtpm".into(),
            "-device".into(),
            "tpm-tis,tpmdev=tpm0".into(),
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
