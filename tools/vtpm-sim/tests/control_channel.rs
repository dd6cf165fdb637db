//! swtpm's control and data channels on `vtpm-sim socket`: driven by swtpm's own client
//! (`swtpm_ioctl`) and the `swtpm` TCTI, the data channel passed as a file descriptor as QEMU
//! passes it, swtpm's command line, and hostile or broken input, which closes only its own
//! connection with a log line while the TPM and the other clients carry on.

mod common;

use common::{Sim, Transport, await_log_line, raw_command, rc, scratch, wait_for};
use std::io::{IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const TPM_SUCCESS: u32 = 0;
const TPM_BAD_PARAMETER: u32 = 3;
const TPM_FAIL: u32 = 9;
const TPM_BAD_ORDINAL: u32 = 10;
const TPM_IOERROR: u32 = 0x1f;

/// TPM2_GetRandom(8) and TPM2_Startup(CLEAR), as raw frames.
const GET_RANDOM: [u8; 12] = [0x80, 1, 0, 0, 0, 12, 0, 0, 1, 0x7b, 0, 8];
const STARTUP: [u8; 12] = [0x80, 1, 0, 0, 0, 12, 0, 0, 1, 0x44, 0, 0];

fn pcr(sim: &Sim, sel: &str) -> String {
    sim.stdout(&["tpm2_pcrread", sel])
}

#[test]
fn swtpm_ioctl_and_the_swtpm_tcti_drive_both_channels() {
    let mut sim = Sim::started_on(Transport::Swtpm, "ioctl");
    assert!(sim.ioctl_ok(&["-c"]).contains("ptm capability is 0x1ffff"));
    assert!(sim.ioctl_ok(&["-e"]).contains("tpmEstablished is 0"));
    let info = sim.ioctl_ok(&["--info", "1"]);
    assert!(info.contains(r#""family":"2.0""#), "{info}");
    // A measurement sequence through the control channel: a DRTM event after Startup
    // (PCR 17 reset and extended) which sets the established flag.
    let before = pcr(&sim, "sha256:17");
    assert!(before.contains(&"F".repeat(64)), "{before}");
    sim.ioctl_ok(&["-h", "measured launch"]);
    let after = pcr(&sim, "sha256:17");
    assert!(!after.contains(&"F".repeat(64)), "{after}");
    assert!(sim.ioctl_ok(&["-e"]).contains("tpmEstablished is 1"));
    // Only the platform's localities clear it.
    assert!(!sim.ioctl(&["-r", "0"]).status.success());
    sim.ioctl_ok(&["-r", "3"]);
    assert!(sim.ioctl_ok(&["-e"]).contains("tpmEstablished is 0"));
    // Locality: PCR 20 extends at locality 2 only (TPM_RC_LOCALITY at 0).
    let d = format!("20:sha256={}", "01".repeat(32));
    assert!(!sim.try_tool(&["tpm2_pcrextend", &d]).status.success());
    sim.ioctl_ok(&["-l", "2"]);
    let mut data = TcpStream::connect(("127.0.0.1", sim.port)).unwrap();
    let extend = pcr_extend_20();
    assert_eq!(
        rc(&raw_command(&mut data, &extend)),
        0,
        "PCR 20 at locality 2"
    );
    sim.ioctl_ok(&["-l", "0"]);
    assert_eq!(
        rc(&raw_command(&mut data, &extend)),
        0x907,
        "PCR 20 at locality 0"
    );
    // Buffer size: not while running; the limits are reported.
    let b = sim.ioctl_ok(&["-b", "0"]);
    assert!(b.contains("TPM buffersize"), "{b}");
    // Stop: commands fail (TPM_RC_FAILURE) until Init, which power-cycles the TPM.
    sim.ioctl_ok(&["--stop"]);
    assert_eq!(rc(&raw_command(&mut data, &GET_RANDOM)), 0x101);
    assert!(
        !sim.ioctl(&["-e"]).status.success(),
        "established while stopped"
    );
    sim.ioctl_ok(&["-i"]);
    assert_eq!(
        rc(&raw_command(&mut data, &GET_RANDOM)),
        0x100,
        "needs Startup again"
    );
    assert_eq!(rc(&raw_command(&mut data, &STARTUP)), 0);
    assert_eq!(rc(&raw_command(&mut data, &GET_RANDOM)), 0);
    // Shutdown ends the process.
    sim.ioctl_ok(&["-s"]);
    let status = sim.await_exit(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

/// TPM2_PCR_Extend(PCR 20, sha256 of 01…01) with an empty password.
fn pcr_extend_20() -> Vec<u8> {
    let mut params = 1u32.to_be_bytes().to_vec();
    params.extend_from_slice(&0x000Bu16.to_be_bytes());
    params.extend_from_slice(&[1; 32]);
    vtpm_sim::wire::command(0x182, &[20], true, &params)
}

/// One control command on a fresh TCP connection; the answer's first `want` bytes.
fn control(port: u16, req: &[u8], want: usize) -> (Vec<u8>, TcpStream) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req).unwrap();
    let mut out = vec![0u8; want];
    s.read_exact(&mut out).unwrap();
    (out, s)
}

fn be(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_be_bytes()).collect()
}

/// True when the server closed `s` (reads end) within the deadline.
fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0))
}

#[test]
fn bad_control_and_data_input_closes_only_its_connection() {
    let dir = scratch("badctrl");
    let log = dir.join("vtpm.log");
    let log_arg = format!("file={}", log.display());
    let sim = Sim::start_socket(&dir, None, &["--log", &log_arg]);
    sim.tool(&["tpm2_startup", "-c"]);
    sim.tool(&["tpm2_pcrextend", &format!("16:sha256={}", "02".repeat(32))]);
    let pcr16 = pcr(&sim, "sha256:16");
    let ctrl = sim.ctrl_port();

    // An unknown command is answered as swtpm answers it, and the connection stays.
    let (r, mut s) = control(ctrl, &be(&[0x99]), 4);
    assert_eq!(r, be(&[TPM_BAD_ORDINAL]));
    await_log_line(&log, &["unknown control command 0x99"]);
    s.write_all(&be(&[1])).unwrap();
    let mut caps = [0u8; 8];
    s.read_exact(&mut caps).unwrap();
    assert_eq!(&caps[..], &be(&[TPM_SUCCESS, 0x1ffff])[..]);

    // Malformed commands: swtpm's result code, a log line, the connection closed.
    struct Case {
        what: &'static str,
        req: Vec<u8>,
        result: u32,
        log: &'static str,
    }
    let cases = [
        Case {
            what: "hash data larger than swtpm's buffer",
            req: be(&[0x07, 100_000]),
            result: TPM_BAD_PARAMETER,
            log: "CMD_HASH_DATA of 100000 bytes",
        },
        Case {
            what: "oversized state blob",
            req: be(&[0x0d, 0, 2, 1 << 20]),
            result: TPM_FAIL,
            log: "state blob of 1048576 bytes",
        },
        Case {
            what: "data channel without a file descriptor",
            req: be(&[0x10]),
            result: TPM_BAD_PARAMETER,
            log: "without exactly one file descriptor",
        },
    ];
    for c in cases {
        let (r, mut s) = control(ctrl, &c.req, 4);
        assert_eq!(r, be(&[c.result]), "{}", c.what);
        assert!(closed(&mut s), "{}: connection left open", c.what);
        await_log_line(&log, &["closing control connection", c.log]);
    }

    // A client that hangs up inside a command (a blob announced, not all sent): no answer,
    // a log line, the TPM untouched.
    let mut s = TcpStream::connect(("127.0.0.1", ctrl)).unwrap();
    s.write_all(&be(&[0x0d, 0, 2, 1000, 7, 7])).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert!(closed(&mut s));
    await_log_line(&log, &["command 0xd cut off"]);

    // The data channel: a size field below a header, above the limit, and a cut-off command.
    for (bytes, fragment) in [
        (vec![0x80, 1, 0, 0, 0, 4], "command of 4 bytes"),
        (vec![0x80, 1, 0, 1, 0, 0], "command of 65536 bytes"),
        (GET_RANDOM[..8].to_vec(), "command cut off"),
    ] {
        let mut d = TcpStream::connect(("127.0.0.1", sim.port)).unwrap();
        d.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        d.write_all(&bytes).unwrap();
        if fragment == "command cut off" {
            d.shutdown(Shutdown::Write).unwrap();
        }
        assert!(closed(&mut d), "{fragment}: data connection left open");
        await_log_line(&log, &["closing data connection", fragment]);
    }

    // The TPM is as it was and serves the next clients on both channels.
    assert_eq!(pcr(&sim, "sha256:16"), pcr16);
    let (r, _) = control(ctrl, &be(&[4]), 8);
    assert_eq!(&r[..4], &be(&[TPM_SUCCESS])[..]);
}

/// `vtpm-sim socket` with only a Unix control socket, as QEMU's documentation starts swtpm;
/// returns the process and the socket path once it listens.
fn start_unix(dir: &Path, extra: &[&str]) -> (std::process::Child, std::path::PathBuf) {
    let sock = dir.join("ctrl.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vtpm-sim"))
        .args(["socket", "--tpm2", "--ctrl"])
        .arg(format!("type=unixio,path={},mode=0600", sock.display()))
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn vtpm-sim socket");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.starts_with("vtpm-sim listening"), "{line:?}");
    (child, sock)
}

/// Sends control command `cmd` with `fd` attached (SCM_RIGHTS), as QEMU sends CMD_SET_DATAFD.
fn send_with_fd(ctrl: &UnixStream, cmd: u32, fd: std::os::fd::BorrowedFd<'_>) {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    assert!(anc.push(SendAncillaryMessage::ScmRights(&fds)));
    let bytes = cmd.to_be_bytes();
    rustix::net::sendmsg(ctrl, &[IoSlice::new(&bytes)], &mut anc, SendFlags::empty())
        .expect("sendmsg");
}

fn read_word(s: &mut impl Read) -> u32 {
    let mut b = [0u8; 4];
    s.read_exact(&mut b).unwrap();
    u32::from_be_bytes(b)
}

#[test]
fn the_data_channel_passed_as_a_file_descriptor_serves_commands() {
    let dir = scratch("datafd");
    let (mut child, sock) = start_unix(&dir, &[]);
    let mut ctrl = UnixStream::connect(&sock).unwrap();
    ctrl.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    send_with_fd(&ctrl, 0x10, theirs.as_fd());
    drop(theirs);
    assert_eq!(read_word(&mut ctrl), TPM_SUCCESS);
    // Not running until CMD_INIT (no not-need-init): TPM_RC_FAILURE, as swtpm answers.
    ours.write_all(&GET_RANDOM).unwrap();
    let mut r = [0u8; 10];
    ours.read_exact(&mut r).unwrap();
    assert_eq!(rc(&r), 0x101);
    // QEMU sends whole `ptm_*` unions: 4 bytes for a 1-byte locality, 16 for a 4-byte buffer
    // size; the bytes past the request are ignored, as swtpm ignores them.
    ctrl.write_all(&[0, 0, 0, 5, 2, 0, 0, 0]).unwrap();
    assert_eq!(read_word(&mut ctrl), TPM_SUCCESS);
    ctrl.write_all(&[be(&[0x11, 4096]), vec![0; 12]].concat())
        .unwrap();
    let sizes: Vec<u32> = (0..4).map(|_| read_word(&mut ctrl)).collect();
    assert_eq!(sizes, [TPM_SUCCESS, 4096, 1024, 8192]);
    ctrl.write_all(&[0, 0, 0, 5, 0, 0, 0, 0]).unwrap();
    assert_eq!(read_word(&mut ctrl), TPM_SUCCESS);
    ctrl.write_all(&be(&[2, 0])).unwrap();
    assert_eq!(read_word(&mut ctrl), TPM_SUCCESS);
    for (cmd, want) in [(&STARTUP, 0), (&GET_RANDOM, 0)] {
        ours.write_all(cmd).unwrap();
        let mut head = [0u8; 10];
        ours.read_exact(&mut head).unwrap();
        assert_eq!(rc(&head), want);
        let size = u32::from_be_bytes([head[2], head[3], head[4], head[5]]) as usize;
        let mut rest = vec![0u8; size - 10];
        ours.read_exact(&mut rest).unwrap();
        if cmd == &GET_RANDOM {
            assert_eq!(rest.len(), 2 + 8, "8 random bytes");
        }
    }
    // A second data channel is refused as swtpm refuses it.
    let (_a, b) = UnixStream::pair().unwrap();
    send_with_fd(&ctrl, 0x10, b.as_fd());
    assert_eq!(read_word(&mut ctrl), TPM_IOERROR);
    // Over the Unix socket too, CMD_SET_DATAFD without a descriptor closes the connection.
    let mut bare = UnixStream::connect(&sock).unwrap();
    bare.write_all(&be(&[0x10])).unwrap();
    assert_eq!(read_word(&mut bare), TPM_BAD_PARAMETER);
    let mut end = [0u8; 1];
    assert_eq!(bare.read(&mut end).unwrap(), 0);
    // The first channel still works.
    ours.write_all(&GET_RANDOM).unwrap();
    let mut head = [0u8; 10];
    ours.read_exact(&mut head).unwrap();
    assert_eq!(rc(&head), 0);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn swtpm_command_line_daemon_pid_log_and_state_key() {
    let dir = scratch("cmdline");
    let state = dir.join("state");
    let key = common::state_key(&state);
    let port = common::free_port_pair();
    let (sock, pid, log) = (dir.join("ctrl"), dir.join("pid"), dir.join("log"));
    let line = |with_key: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vtpm-sim"));
        c.args(["socket", "--tpm2", "--tpmstate"])
            .arg(format!("dir={}", state.display()))
            .args(["--ctrl", &format!("type=unixio,path={}", sock.display())])
            .args(["--server", &format!("type=tcp,port={port}")])
            .args(["--flags", "not-need-init,startup-clear"])
            .args(["--pid", &format!("file={}", pid.display())])
            .args(["--log", &format!("file={}", log.display())])
            .arg("-d");
        if with_key {
            c.args(["--key", &format!("file={}", key.display())]);
        }
        c.output().expect("run vtpm-sim socket")
    };
    // Without the key of the sealed state folder: a clear error, nothing started.
    let out = line(false);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--key file="), "{err}");
    assert!(!pid.exists());
    // With it: `-d` returns once the channels are bound, the pid file names the server.
    let out = line(true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id: u32 = std::fs::read_to_string(&pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(Path::new(&format!("/proc/{id}")).exists());
    await_log_line(&log, &["listening", "control"]);
    // startup-clear: the TPM already answers commands that need Startup.
    let mut data = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert_eq!(rc(&raw_command(&mut data, &GET_RANDOM)), 0);
    // CMD_SHUTDOWN on the Unix control socket ends it.
    let mut ctrl = UnixStream::connect(&sock).unwrap();
    ctrl.write_all(&be(&[3])).unwrap();
    assert_eq!(read_word(&mut ctrl), TPM_SUCCESS);
    assert!(
        wait_for(Duration::from_secs(10), || {
            // Gone, or a zombie of no parent of ours.
            std::fs::read_to_string(format!("/proc/{id}/stat"))
                .map(|s| s.contains(") Z"))
                .unwrap_or(true)
        }),
        "the server did not end on CMD_SHUTDOWN"
    );
    await_log_line(&log, &["shutdown requested"]);
}
