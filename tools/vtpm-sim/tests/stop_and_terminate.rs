//! How `vtpm-sim socket` ends and stops, beside swtpm: `-t/--terminate` (the data channel's
//! client hung up) and `--ctrl ...,terminate` (the control connection was lost) over Unix-socket
//! channels as libvirt and QEMU use them, and the TPM2_Shutdown(STATE) swtpm 0.8 and later send
//! for the client on CMD_STOP / CMD_INIT / exit, so a stop and a restart keep what swtpm keeps.

mod common;

use common::{Sim, raw_command, rc, scratch, wait_for};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use vtpm_sim::wire::command as cmd;

const STARTUP_CLEAR: [u8; 12] = [0x80, 1, 0, 0, 0, 12, 0, 0, 1, 0x44, 0, 0];
const STARTUP_STATE: [u8; 12] = [0x80, 1, 0, 0, 0, 12, 0, 0, 1, 0x44, 0, 1];
const SHUTDOWN_STATE: [u8; 12] = [0x80, 1, 0, 0, 0, 12, 0, 0, 1, 0x45, 0, 1];
/// TPM_RC_VALUE for parameter 1: Startup(STATE) without a saved state.
const RC_STARTUP_STATE_REFUSED: u32 = 0x1c4;

/// TPM2_PCR_Extend of PCR 10 with one SHA-256 digest of `byte`s.
fn extend_10(byte: u8) -> Vec<u8> {
    let mut p = vec![0, 0, 0, 1, 0, 0x0b];
    p.extend_from_slice(&[byte; 32]);
    cmd(0x182, &[10], true, &p)
}

/// TPM2_PCR_Read of SHA-256 PCR 10.
fn read_10() -> Vec<u8> {
    cmd(0x17e, &[], false, &[0, 0, 0, 1, 0, 0x0b, 3, 0, 4, 0])
}

/// The SHA-256 value of PCR 10 in a PCR_Read response.
fn pcr_10(r: &[u8]) -> Vec<u8> {
    assert_eq!(rc(r), 0, "PCR_Read: {r:02x?}");
    r[r.len() - 32..].to_vec()
}

/// Which server a run drives: the same command line for both, ours with the state key.
#[derive(Clone, Copy, Debug)]
enum Server {
    Swtpm,
    VtpmSim,
}

/// `socket --tpm2 --tpmstate dir=<dir>/state --ctrl type=unixio,path=<dir>/ctrl[,terminate]
/// --server type=unixio,path=<dir>/data` plus `extra`; returns once the data socket answers.
fn start(server: Server, dir: &Path, ctrl_terminate: bool, extra: &[&str]) -> Child {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let (ctrl, data) = (dir.join("ctrl"), dir.join("data"));
    for s in [&ctrl, &data] {
        let _ = std::fs::remove_file(s);
    }
    let mut c = match server {
        Server::Swtpm => Command::new("swtpm"),
        Server::VtpmSim => {
            let mut c = Command::new(env!("CARGO_BIN_EXE_vtpm-sim"));
            c.arg("socket")
                .arg("--key")
                .arg(format!("file={}", common::state_key(&state).display()));
            c
        }
    };
    if matches!(server, Server::Swtpm) {
        c.arg("socket");
    }
    let t = if ctrl_terminate { ",terminate" } else { "" };
    c.args(["--tpm2", "--tpmstate", &format!("dir={}", state.display())])
        .args(["--ctrl", &format!("type=unixio,path={}{t}", ctrl.display())])
        .args(["--server", &format!("type=unixio,path={}", data.display())])
        .args(extra)
        .stdout(Stdio::null());
    let child = c.spawn().expect("spawn the server");
    // Ready once both sockets listen; not probed by connecting, since under `-t` or
    // `,terminate` a probe's hang-up would end the server.
    assert!(
        wait_for(Duration::from_secs(10), || listening(&ctrl)
            && listening(&data)),
        "{server:?} did not listen"
    );
    child
}

/// Whether a Unix socket listens at `path` (`/proc/net/unix`: flags `00010000` is
/// `__SO_ACCEPTCON`, set by listen(2)).
fn listening(path: &Path) -> bool {
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let path = path.to_string_lossy();
    table.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() >= 8 && f[3] == "00010000" && f[7] == path
    })
}

/// Waits (with a deadline) for `child` to end; its status if it did.
fn exited(child: &mut Child) -> Option<std::process::ExitStatus> {
    let mut status = None;
    wait_for(Duration::from_secs(10), || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    status
}

/// A control command (no body) on the Unix control socket; its result word.
fn control(dir: &Path, code: u32) -> u32 {
    let mut s = UnixStream::connect(dir.join("ctrl")).unwrap();
    s.write_all(&code.to_be_bytes()).unwrap();
    let mut w = [0u8; 4];
    s.read_exact(&mut w).unwrap();
    u32::from_be_bytes(w)
}

/// What one server shows through a libvirt-style life: the control socket visited (as
/// `swtpm_ioctl` does) without ending it, PCR 10 extended, the client's own Shutdown(STATE),
/// the data client gone under `-t` (the process ends), and a restart on the same state that
/// resumes with Startup(STATE). Returns (PCR 10 before, PCR 10 after the restart).
fn terminate_life(server: Server, dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let mut child = start(
        server,
        dir,
        false,
        &["--flags", "not-need-init,startup-clear", "-t"],
    );
    let mut data = UnixStream::connect(dir.join("data")).unwrap();
    // A control connection that comes and goes does not end the server under `-t` (only
    // `--ctrl ...,terminate` does): the next control connection and the data channel answer.
    assert_eq!(control(dir, 1), 0, "{server:?}: CMD_GET_CAPABILITY");
    assert_eq!(
        control(dir, 1),
        0,
        "{server:?}: a second control connection"
    );
    assert_eq!(rc(&raw_command(&mut data, &extend_10(1))), 0);
    let before = pcr_10(&raw_command(&mut data, &read_10()));
    assert_eq!(rc(&raw_command(&mut data, &SHUTDOWN_STATE)), 0);
    assert!(
        child.try_wait().unwrap().is_none(),
        "{server:?} ended early"
    );
    drop(data);
    let status = exited(&mut child).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("{server:?} did not terminate when the data client closed (-t)")
    });
    assert!(status.success(), "{server:?}: {status}");
    // Restarted on the same state: the saved state resumes.
    let mut child = start(server, dir, false, &["--flags", "not-need-init"]);
    let mut data = UnixStream::connect(dir.join("data")).unwrap();
    assert_eq!(rc(&raw_command(&mut data, &STARTUP_STATE)), 0, "{server:?}");
    let after = pcr_10(&raw_command(&mut data, &read_10()));
    let _ = child.kill();
    let _ = child.wait();
    (before, after)
}

#[test]
fn terminate_and_unix_data_channel_behave_as_swtpm() {
    let ours = terminate_life(Server::VtpmSim, &scratch("terminate-ours"));
    let theirs = terminate_life(Server::Swtpm, &scratch("terminate-swtpm"));
    assert_eq!(ours.0, ours.1, "vtpm-sim: PCR 10 resumed after the restart");
    assert_eq!(ours, theirs, "the same PCR 10 on both servers");
}

#[test]
fn ctrl_terminate_ends_when_the_control_connection_is_lost() {
    // `--ctrl ...,terminate` is swtpm 0.8's (this machine's 0.7 lacks it): see swtpm(8).
    let server = Server::VtpmSim;
    let dir = scratch("ctrl-terminate");
    let mut child = start(
        server,
        &dir,
        true,
        &["--flags", "not-need-init,startup-clear"],
    );
    // A data client that comes and goes does not end it.
    let mut data = UnixStream::connect(dir.join("data")).unwrap();
    assert_eq!(rc(&raw_command(&mut data, &extend_10(2))), 0);
    drop(data);
    // QEMU's persistent control connection: while it is open the server runs.
    let mut ctrl = UnixStream::connect(dir.join("ctrl")).unwrap();
    ctrl.write_all(&1u32.to_be_bytes()).unwrap();
    let mut w = [0u8; 8];
    ctrl.read_exact(&mut w).unwrap();
    assert_eq!(&w[..4], &[0; 4], "CMD_GET_CAPABILITY");
    let mut data = UnixStream::connect(dir.join("data")).unwrap();
    assert_eq!(
        rc(&raw_command(&mut data, &read_10())),
        0,
        "still serving after a data client left"
    );
    assert!(child.try_wait().unwrap().is_none(), "ended early");
    // The client dies without CMD_SHUTDOWN: the server ends on its own, after sending the
    // TPM2_Shutdown(STATE) the client could not.
    drop(ctrl);
    let status = exited(&mut child).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("did not end when the control connection was lost")
    });
    assert!(status.success(), "{status}");
    drop(data);
    let mut child = start(server, &dir, false, &["--flags", "not-need-init"]);
    let mut data = UnixStream::connect(dir.join("data")).unwrap();
    assert_eq!(rc(&raw_command(&mut data, &STARTUP_STATE)), 0);
    let want = common::sha256(&[&[0u8; 32], &[2u8; 32]]);
    assert_eq!(pcr_10(&raw_command(&mut data, &read_10())), want);
    let _ = child.kill();
    let _ = child.wait();
}

/// Clock, resetCount, restartCount and safe from `tpm2_readclock`'s YAML.
fn clock_counts(sim: &Sim) -> (u64, u64, bool) {
    let y = sim.stdout(&["tpm2_readclock"]);
    let field = |name: &str| -> String {
        y.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name} in {y}"))
            .trim()
            .to_string()
    };
    (
        field("reset_count").parse().unwrap(),
        field("restart_count").parse().unwrap(),
        field("safe") == "yes",
    )
}

/// PCR 10 through tpm2-tools.
fn pcr_10_tool(sim: &Sim) -> String {
    sim.stdout(&["tpm2_pcrread", "sha256:10"])
}

#[test]
fn stop_and_init_send_shutdown_state_for_the_client_as_swtpm_0_8() {
    // swtpm 0.8 (commit 9b3add22, "If necessary send TPM2_Shutdown() before
    // TPMLIB_Terminate()") sends TPM2_Shutdown(STATE) on CMD_STOP / CMD_INIT / CMD_SHUTDOWN and
    // at exit unless the client's last command was TPM2_Shutdown: an abrupt VM reset is an
    // orderly shutdown (Clock safe, no reset counted) and Startup(STATE) resumes the PCRs.
    let dir = scratch("auto-shutdown");
    let state = dir.join("state");
    let sim = Sim::start_socket(&dir, Some(&state), &[]);
    sim.tool(&["tpm2_startup", "-c"]);
    let d = format!("10:sha256={}", "03".repeat(32));
    sim.tool(&["tpm2_pcrextend", &d]);
    let pcr = pcr_10_tool(&sim);
    let (reset, restart, _) = clock_counts(&sim);
    // A VM reset: CMD_INIT while running.
    sim.ioctl_ok(&["-i"]);
    sim.tool(&["tpm2_startup"]);
    assert_eq!(pcr_10_tool(&sim), pcr, "Startup(STATE) resumed PCR 10");
    assert_eq!(
        clock_counts(&sim),
        (reset, restart + 1, true),
        "a TPM Resume"
    );
    // CMD_STOP, then the process is killed and restarted on the same state.
    sim.ioctl_ok(&["--stop"]);
    drop(sim);
    let sim = Sim::start_socket(&dir, Some(&state), &[]);
    sim.tool(&["tpm2_startup"]);
    assert_eq!(pcr_10_tool(&sim), pcr, "resumed after a stop and a restart");
    assert_eq!(clock_counts(&sim), (reset, restart + 2, true));
    // A client that ended with its own Shutdown(CLEAR) gets no Shutdown(STATE) on top:
    // Startup(STATE) is refused and Startup(CLEAR) is a TPM Reset, still orderly.
    sim.tool(&["tpm2_shutdown", "-c"]);
    sim.ioctl_ok(&["-i"]);
    let out = sim.try_tool(&["tpm2_startup"]);
    assert!(
        !out.status.success(),
        "Startup(STATE) after Shutdown(CLEAR)"
    );
    sim.tool(&["tpm2_startup", "-c"]);
    assert_eq!(clock_counts(&sim), (reset + 1, 0, true));
}

/// CMD_INIT (flags 0) on the Unix control socket; its result word.
fn init(dir: &Path) -> u32 {
    let mut s = UnixStream::connect(dir.join("ctrl")).unwrap();
    s.write_all(&[0, 0, 0, 2, 0, 0, 0, 0]).unwrap();
    let mut w = [0u8; 4];
    s.read_exact(&mut w).unwrap();
    u32::from_be_bytes(w)
}

/// A VM reset without the automatic shutdown: (Startup(STATE)'s answer after CMD_INIT, PCR 10
/// after the Startup(CLEAR) that follows a refusal).
fn without_auto_shutdown(server: Server, dir: &Path, extra: &[&str]) -> (u32, Vec<u8>) {
    let mut child = start(server, dir, false, extra);
    let mut data = UnixStream::connect(dir.join("data")).unwrap();
    assert_eq!(rc(&raw_command(&mut data, &STARTUP_CLEAR)), 0);
    assert_eq!(rc(&raw_command(&mut data, &extend_10(4))), 0);
    assert_eq!(init(dir), 0, "{server:?}: CMD_INIT");
    let state = rc(&raw_command(&mut data, &STARTUP_STATE));
    if state != 0 {
        assert_eq!(rc(&raw_command(&mut data, &STARTUP_CLEAR)), 0);
    }
    let pcr = pcr_10(&raw_command(&mut data, &read_10()));
    let _ = child.kill();
    let _ = child.wait();
    (state, pcr)
}

#[test]
fn disable_auto_shutdown_matches_swtpm_0_7() {
    // swtpm 0.7 (this machine's) sends no Shutdown on CMD_INIT: Startup(STATE) is refused and
    // PCR 10 starts over. `--flags disable-auto-shutdown` (swtpm 0.8's flag) behaves the same.
    let ours = without_auto_shutdown(
        Server::VtpmSim,
        &scratch("no-auto-shutdown"),
        &["--flags", "not-need-init,disable-auto-shutdown"],
    );
    let theirs = without_auto_shutdown(
        Server::Swtpm,
        &scratch("no-auto-shutdown-swtpm"),
        &["--flags", "not-need-init"],
    );
    assert_eq!(ours.0, RC_STARTUP_STATE_REFUSED);
    assert_eq!(ours, theirs);
    assert_eq!(ours.1, vec![0u8; 32], "PCR 10 reset by Startup(CLEAR)");
    // Without the flag, the same life resumes PCR 10.
    let auto = without_auto_shutdown(
        Server::VtpmSim,
        &scratch("auto-shutdown-unix"),
        &["--flags", "not-need-init"],
    );
    assert_eq!(
        auto.0, 0,
        "Startup(STATE) after the automatic Shutdown(STATE)"
    );
    assert_ne!(auto.1, vec![0u8; 32]);
}
