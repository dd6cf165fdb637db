//! Hostile and broken Microsoft-simulator frames: each closes only its own connection, with a
//! log line naming the peer and the reason, and the server goes on serving the next client.

mod common;

use common::{read_mssim_response, send_command};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `vtpm-sim` with its log captured line by line.
struct LoggedSim {
    child: Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl LoggedSim {
    fn start() -> LoggedSim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vtpm-sim"))
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vtpm-sim");
        let mut banner = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut banner)
            .expect("vtpm-sim banner");
        let port = banner
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unexpected banner {banner:?}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        LoggedSim { child, port, log }
    }

    /// Waits (with a deadline) for a log line containing every fragment.
    fn await_log(&self, fragments: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = self
                .log
                .lock()
                .unwrap()
                .iter()
                .find(|l| fragments.iter().all(|f| l.contains(f)))
            {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {fragments:?}; log: {:#?}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for LoggedSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// TPM2_GetRandom(8) without sessions.
const GET_RANDOM: [u8; 12] = [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7B, 0, 8];
/// TPM2_Startup(CLEAR).
const STARTUP: [u8; 12] = [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0, 0];

/// Sends one TPM command on a connection and returns its response code.
fn exchange(s: &mut TcpStream, tpm_cmd: &[u8]) -> u32 {
    s.write_all(&send_command(tpm_cmd)).unwrap();
    let resp = read_mssim_response(s);
    u32::from_be_bytes(resp[6..10].try_into().unwrap())
}

/// True when the server closed the connection (EOF, or reset) rather than answering.
fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

#[test]
fn bad_frames_close_their_connection_with_a_log_line_and_the_server_keeps_serving() {
    let sim = LoggedSim::start();
    // Power on and start the TPM, as a client would.
    let mut p = connect(sim.port + 1);
    p.write_all(&1u32.to_be_bytes()).unwrap();
    let mut ack = [0u8; 4];
    p.read_exact(&mut ack).unwrap();
    drop(p);
    let mut c = connect(sim.port);
    assert_eq!(exchange(&mut c, &STARTUP), 0);
    drop(c);

    let oversized = {
        let mut f = 8u32.to_be_bytes().to_vec();
        f.push(0);
        f.extend_from_slice(&0x7fff_ffffu32.to_be_bytes());
        f
    };
    let truncated = send_command(&GET_RANDOM)[..12].to_vec();
    // (what, platform port?, bytes, log fragment naming the reason)
    let cases: [(&str, bool, Vec<u8>, &str); 5] = [
        (
            "unknown command word",
            false,
            0xdead_beefu32.to_be_bytes().to_vec(),
            "unknown command 0xdeadbeef",
        ),
        (
            "oversized command frame",
            false,
            oversized,
            "2147483647 bytes",
        ),
        (
            "frame cut off mid-command",
            false,
            truncated,
            "frame cut off",
        ),
        ("length word cut off", false, vec![0, 0, 0], "frame cut off"),
        (
            "unknown platform command",
            true,
            0x4242u32.to_be_bytes().to_vec(),
            "unknown command 0x4242",
        ),
    ];
    for (what, platform, bytes, reason) in cases {
        let mut s = connect(if platform { sim.port + 1 } else { sim.port });
        let peer = s.local_addr().unwrap().to_string();
        s.write_all(&bytes).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        assert!(closed(&mut s), "{what}: connection left open");
        let line = sim.await_log(&["closing", &peer]);
        assert!(
            line.contains(reason),
            "{what}: log line {line:?} does not say {reason:?}"
        );
        // The server still serves a well-behaved client, with the TPM state intact.
        let mut c = connect(sim.port);
        assert_eq!(
            exchange(&mut c, &GET_RANDOM),
            0,
            "{what}: server stopped serving"
        );
    }

    // A malformed TPM command inside a well-formed frame is the TPM's business: it answers
    // with an error code and the connection stays usable.
    let mut c = connect(sim.port);
    let bad_size = [0x80, 0x01, 0, 0, 0, 99, 0, 0, 0x01, 0x7B, 0, 8];
    assert_ne!(
        exchange(&mut c, &bad_size),
        0,
        "a wrong header size was accepted"
    );
    assert_eq!(
        exchange(&mut c, &GET_RANDOM),
        0,
        "connection unusable after a TPM error"
    );
}

/// PCR 17 (SHA-256 bank) through a raw TPM2_PCR_Read.
fn read_pcr17(s: &mut TcpStream) -> Vec<u8> {
    let cmd = [
        0x80, 0x01, 0, 0, 0, 20, 0, 0, 0x01, 0x7E, 0, 0, 0, 1, 0, 0x0B, 3, 0, 0, 0x02,
    ];
    s.write_all(&send_command(&cmd)).unwrap();
    let resp = read_mssim_response(s);
    assert_eq!(&resp[6..10], &[0, 0, 0, 0], "PCR_Read");
    resp[resp.len() - 32..].to_vec()
}

#[test]
fn hash_signals_measure_a_dynamic_launch_into_pcr17() {
    use sha2::Digest as _;
    let sim = LoggedSim::start();
    let mut c = connect(sim.port);
    assert_eq!(exchange(&mut c, &STARTUP), 0);
    assert_eq!(read_pcr17(&mut c), vec![0xFF; 32], "PCR 17 before any DRTM");
    // _TPM_Hash_Start, _TPM_Hash_Data (length-prefixed), _TPM_Hash_End; each acknowledged.
    let code = b"dynamically launched code";
    let mut signals = 5u32.to_be_bytes().to_vec();
    signals.extend_from_slice(&6u32.to_be_bytes());
    signals.extend_from_slice(&(code.len() as u32).to_be_bytes());
    signals.extend_from_slice(code);
    signals.extend_from_slice(&7u32.to_be_bytes());
    c.write_all(&signals).unwrap();
    for _ in 0..3 {
        let mut ack = [0u8; 4];
        c.read_exact(&mut ack).unwrap();
        assert_eq!(ack, [0; 4]);
    }
    let expected =
        sha2::Sha256::digest([[0u8; 32].as_slice(), &sha2::Sha256::digest(code)].concat());
    assert_eq!(read_pcr17(&mut c), expected.to_vec(), "PCR 17 after DRTM");
}
