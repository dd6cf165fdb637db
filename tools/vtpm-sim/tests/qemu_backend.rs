//! QEMU's `-tpmdev emulator` backend on `vtpm-sim socket`, started as QEMU's documentation
//! starts swtpm: QEMU passes its data channel over the Unix control socket, checks the
//! capabilities, sets the buffer size, initialises the TPM, and SeaBIOS then starts it and
//! measures the firmware into PCRs 0–7 — read back here over the TCP data channel.

mod common;

use common::{raw_command, rc, scratch, wait_for};
use std::io::BufRead;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

/// TPM2_PCR_Read of sha256 PCRs 0–7.
const PCR_READ_0_7: [u8; 20] = [
    0x80, 1, 0, 0, 0, 20, 0, 0, 1, 0x7e, 0, 0, 0, 1, 0, 0x0b, 3, 0xff, 0, 0,
];

#[test]
fn qemu_tpm_emulator_backend_handshakes_and_seabios_measures_into_vtpm_sim() {
    let dir = scratch("qemu");
    let sock = dir.join("ctrl.sock");
    let log = dir.join("vtpm.log");
    let port = common::free_port_pair();
    let mut sim = Command::new(env!("CARGO_BIN_EXE_vtpm-sim"))
        .args(["socket", "--tpm2"])
        .args(["--ctrl", &format!("type=unixio,path={}", sock.display())])
        .args(["--server", &format!("type=tcp,port={port}")])
        .args(["--log", &format!("file={}", log.display())])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn vtpm-sim socket");
    let mut line = String::new();
    std::io::BufReader::new(sim.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("vtpm-sim listening"), "{line:?}");

    let mut qemu = Command::new("qemu-system-x86_64")
        .args([
            "-machine",
            "pc",
            "-m",
            "64",
            "-display",
            "none",
            "-nodefaults",
        ])
        .args(["-serial", "none", "-monitor", "none"])
        .args([
            "-chardev",
            &format!("socket,id=chrtpm,path={}", sock.display()),
        ])
        .args(["-tpmdev", "emulator,id=tpm0,chardev=chrtpm"])
        .args(["-device", "tpm-tis,tpmdev=tpm0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run qemu-system-x86_64 (package qemu-system-x86; `cargo xtask setup`)");

    // Until QEMU's CMD_INIT the TPM is not running; until SeaBIOS's Startup PCR_Read answers
    // TPM_RC_INITIALIZE; after the firmware's measurements some PCR of 0–7 is non-zero.
    let mut last = Vec::new();
    let measured = wait_for(Duration::from_secs(120), || {
        if let Ok(Some(_)) = qemu.try_wait() {
            return true;
        }
        let Ok(mut data) = TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        last = raw_command(&mut data, &PCR_READ_0_7);
        // Header 10, update counter 4, selection 10, count 4, then 8 × (size 2 + digest 32).
        rc(&last) == 0
            && last.len() >= 28 + 8 * 34
            && last[28..]
                .chunks(34)
                .any(|d| d[2..].iter().any(|&b| b != 0))
    });
    let exited = qemu.try_wait().ok().flatten();
    let _ = qemu.kill();
    let out = qemu.wait_with_output().expect("qemu output");
    let _ = sim.kill();
    let _ = sim.wait();
    assert!(
        exited.is_none(),
        "QEMU refused the backend ({exited:?}): {}\nvtpm-sim log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(
        measured,
        "no firmware measurement seen; last PCR_Read answer {last:02x?}"
    );
}
