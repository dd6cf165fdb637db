//! warden-tpm against a real TPM: a private swtpm per test, checked with tpm2-tools.

use std::path::Path;
use std::process::Command;
use warden_tpm::client::{Command as Cc, PCR_COUNT};
use warden_tpm::eventlog::{EventLog, EventLogWriter, Tag};
use warden_tpm::host::{Swtpm, TcpTransport, unique_temp_dir, yaml_pcr};
use warden_tpm::{Banks, Digest, DigestSet, Error, HashAlg, PcrSelection, Tpm};

/// `TPM_RC_LOCALITY`
const RC_LOCALITY: u32 = 0x907;
const AK_HANDLE: u32 = 0x8101_0100;

/// A private temp dir, removed on drop (also when the test fails).
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(prefix: &str) -> TempDir {
        TempDir(unique_temp_dir(prefix).unwrap())
    }
    fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tpm(sw: &Swtpm) -> Tpm<TcpTransport> {
    Tpm::new(sw.connect().expect("connect to swtpm"))
}

fn tool(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (tpm2-tools installed?): {e}", args[0]));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn active_banks_match_tpm2_getcap() {
    let sw = Swtpm::start().unwrap();
    let banks = tpm(&sw).active_banks().unwrap();
    let cap = tool(&["tpm2_getcap", "-T", &sw.tcti(), "pcrs"]);
    let mut expect = Banks::EMPTY;
    for alg in HashAlg::ALL {
        if cap
            .lines()
            .any(|l| l.trim().starts_with(&format!("- {}: [ 0", alg.name())))
        {
            expect.insert(alg);
        }
    }
    assert!(!expect.is_empty(), "tpm2_getcap listed no bank:\n{cap}");
    assert_eq!(banks, expect);
}

#[test]
fn pcr_20_needs_locality_2_and_extends_every_bank() {
    let sw = Swtpm::start().unwrap();
    let mut t = tpm(&sw);
    let banks = t.active_banks().unwrap();
    let m = DigestSet::of(banks, b"measurement");

    // Locality 0 (what domains get) can neither reset nor extend Warden's PCRs.
    assert!(matches!(
        t.pcr_reset(20),
        Err(Error::Tpm(Cc::PcrReset, RC_LOCALITY))
    ));
    assert!(matches!(
        t.pcr_extend(20, &m),
        Err(Error::Tpm(Cc::PcrExtend, RC_LOCALITY))
    ));
    // Until reset, PCRs 17-22 hold all ones (PC Client profile).
    assert!(
        t.pcr_read(20, HashAlg::Sha256)
            .unwrap()
            .as_bytes()
            .iter()
            .all(|b| *b == 0xff)
    );

    t.transport().set_locality(2).unwrap();
    for pcr in 20..=22 {
        t.pcr_reset(pcr).unwrap();
    }
    t.pcr_extend(21, &m).unwrap();
    for alg in banks.iter() {
        let expect = Digest::zero(alg).extended(&alg.hash(b"measurement"));
        assert_eq!(t.pcr_read(21, alg).unwrap(), expect, "{alg:?}");
        assert_eq!(t.pcr_read(20, alg).unwrap(), Digest::zero(alg));
        // Cross-check our PCR_Read against tpm2-tools.
        let tools = tool(&[
            "tpm2_pcrread",
            "-T",
            &sw.tcti(),
            &format!("{}:21", alg.name()),
        ]);
        assert_eq!(
            yaml_pcr(&tools, alg, 21).as_deref(),
            Some(hex(expect.as_bytes()).as_str())
        );
    }
    assert!(matches!(
        t.pcr_read(PCR_COUNT, HashAlg::Sha256),
        Err(Error::BadPcr(PCR_COUNT))
    ));
}

#[test]
fn get_random_fills_the_buffer() {
    let sw = Swtpm::start().unwrap();
    let mut a = [0u8; 100];
    let mut b = [0u8; 100];
    let mut t = tpm(&sw);
    t.get_random(&mut a).unwrap();
    t.get_random(&mut b).unwrap();
    assert_ne!(a, b);
    assert!(a[90..].iter().any(|x| *x != 0), "tail left unfilled");
}

#[test]
fn ak_is_deterministic_persists_and_matches_tpm2_readpublic() {
    let sw = Swtpm::start().unwrap();
    let dir = TempDir::new("warden-tpm-ak");
    let mut t = tpm(&sw);
    let ak1 = t.create_ak().unwrap();
    let ak2 = t.create_ak().unwrap();
    assert_eq!(ak1.name, ak2.name, "same template, same TPM: same key");
    // The name is nameAlg (SHA-256) || SHA-256(TPMT_PUBLIC).
    let mut name = vec![0x00, 0x0b];
    name.extend_from_slice(HashAlg::Sha256.hash(&ak1.public.as_bytes()[2..]).as_bytes());
    assert_eq!(ak1.name.as_bytes(), name);
    t.flush_context(ak2.handle).unwrap();

    assert_eq!(t.read_public(AK_HANDLE).unwrap(), None);
    let p = t.persist_ak(&ak1, AK_HANDLE).unwrap();
    assert_eq!(p.handle, AK_HANDLE);
    assert_eq!(t.read_public(AK_HANDLE).unwrap().unwrap().name, ak1.name);
    // Persisting again (next boot) keeps the key in place.
    let again = t.create_ak().unwrap();
    t.persist_ak(&again, AK_HANDLE).unwrap();

    let path = dir.join("ak.pub");
    tool(&[
        "tpm2_readpublic",
        "-T",
        &sw.tcti(),
        "-c",
        &format!("{AK_HANDLE:#x}"),
        "-o",
        path.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&path).unwrap(), ak1.public.as_bytes());
    let text = tool(&[
        "tpm2_readpublic",
        "-T",
        &sw.tcti(),
        "-c",
        &format!("{AK_HANDLE:#x}"),
    ]);
    for needle in [
        "value: fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign\n",
        "curve-id:\n  value: NIST p256\n",
        "scheme:\n  value: ecdsa\n",
        "scheme-halg:\n  value: sha256\n",
    ] {
        assert!(text.contains(needle), "AK lacks {needle:?}:\n{text}");
    }
}

/// Runs a measured launch like the hypervisor does and checks the log three ways:
/// tpm2_eventlog parses it, its replay and ours equal the TPM's PCRs, and the quote over
/// those PCRs verifies with tpm2_checkquote.
#[test]
fn measured_launch_log_replays_to_tpm_pcrs_and_quote_verifies() {
    let sw = Swtpm::start().unwrap();
    let dir = TempDir::new("warden-tpm-log");
    let mut t = tpm(&sw);
    let banks = t.active_banks().unwrap();
    t.transport().set_locality(2).unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    let mut log = EventLogWriter::new(&mut buf, banks).unwrap();
    for pcr in 20..=22 {
        t.pcr_reset(pcr).unwrap();
    }
    let components: [(u32, Tag, &str, &[u8]); 4] = [
        (20, Tag::Policy, "policy", b"compiled policy"),
        (21, Tag::CommandLine, "cmdline", b"require_tpm"),
        (21, Tag::Manifest, "manifest", b"warden-manifest 1\n"),
        (
            22,
            Tag::DomainImage,
            "image:hello",
            &[0x7f, b'E', b'L', b'F', 1, 2, 3],
        ),
    ];
    for (pcr, tag, name, data) in components {
        let d = DigestSet::of(banks, data);
        t.pcr_extend(pcr, &d).unwrap();
        log.append_tagged(pcr, tag, &d, name).unwrap();
    }
    for pcr in 20..=22 {
        let d = log.append_separator(pcr).unwrap();
        t.pcr_extend(pcr, &d).unwrap();
    }
    let log_path = dir.join("eventlog.bin");
    std::fs::write(&log_path, log.as_bytes()).unwrap();

    let parsed = EventLog::parse(log.as_bytes()).unwrap();
    let replay = parsed.replay();
    let yaml = tool(&["tpm2_eventlog", log_path.to_str().unwrap()]);
    for alg in banks.iter() {
        for pcr in 20..=22 {
            let actual = t.pcr_read(pcr, alg).unwrap();
            assert_eq!(
                replay.pcr(alg, pcr),
                Some(actual),
                "our replay {alg:?} PCR {pcr}"
            );
            assert_eq!(
                yaml_pcr(yaml.split("pcrs:").nth(1).unwrap(), alg, pcr).as_deref(),
                Some(hex(actual.as_bytes()).as_str()),
                "tpm2_eventlog replay {alg:?} PCR {pcr}"
            );
        }
    }

    let ak = t.create_ak().unwrap();
    let nonce = [0x5a; 32];
    let sel = PcrSelection {
        banks: Banks::from_algs(&[HashAlg::Sha256]),
        pcrs: 0b111 << 20,
    };
    let q = t.quote(ak.handle, &nonce, sel).unwrap();
    let w = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    };
    let (akp, msg, sig) = (
        w("ak.pub", ak.public.as_bytes()),
        w("quote.msg", q.attest.as_bytes()),
        w("quote.sig", q.signature.as_bytes()),
    );
    // -f/-l: the PCR values the quote must cover, here our replay of the log (sha256, PCRs
    // 20-22 concatenated as tpm2_pcrread writes them); checkquote recomputes the quoted digest.
    let replayed: Vec<u8> = (20..=22)
        .flat_map(|pcr| {
            replay
                .pcr(HashAlg::Sha256, pcr)
                .unwrap()
                .as_bytes()
                .to_vec()
        })
        .collect();
    let pcrs = w("pcrs.bin", &replayed);
    let checkquote = |nonce: &[u8], pcrs: &str| {
        Command::new("tpm2_checkquote")
            .args(["-u", &akp, "-m", &msg, "-s", &sig, "-q", &hex(nonce)])
            .args(["-g", "sha256", "-f", pcrs, "-l", "sha256:20,21,22"])
            .output()
            .unwrap()
    };
    let ok = checkquote(&nonce, &pcrs);
    assert!(
        ok.status.success(),
        "tpm2_checkquote rejected the quote and its PCR values: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let mut altered = replayed.clone();
    altered[40] ^= 1; // PCR 21
    let altered = w("pcrs-altered.bin", &altered);
    assert!(
        !checkquote(&nonce, &altered).status.success(),
        "tpm2_checkquote accepted PCR values that are not the quoted ones"
    );
    let err = checkquote(&[0x5b; 32], &pcrs);
    assert!(
        !err.status.success(),
        "tpm2_checkquote accepted a wrong nonce"
    );
    assert!(Path::new(&log_path).exists());
}

#[test]
fn startup_is_sent_once_and_then_reported_as_done() {
    // A TPM nobody started (no firmware in front of it): commands fail until TPM2_Startup.
    let dir = TempDir::new("warden-tpm-startup");
    let sw = Swtpm::start_on(&dir.0, &["not-need-init"]).unwrap();
    let mut t = tpm(&sw);
    assert!(matches!(
        t.active_banks(),
        Err(Error::Tpm(
            Cc::GetCapability,
            warden_tpm::client::RC_INITIALIZE
        ))
    ));
    assert!(t.startup_clear().unwrap(), "the first startup starts it");
    assert!(
        !t.startup_clear().unwrap(),
        "the second one finds it started"
    );
    assert!(!t.active_banks().unwrap().is_empty());
    drop(sw);
}
