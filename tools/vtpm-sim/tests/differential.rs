//! Differential test: identical command sequences go to `vtpm-sim` and to swtpm (libtpms, the
//! TCG reference code). Every step states its expected outcome (success, or the specific
//! response code) and both TPMs must answer it; their responses must also agree byte for byte
//! where the TPM has no freedom (PCR values, event digests), or at least in length where the
//! content is random by design (nonces, keys, tickets). A step built from an earlier response
//! (a handle, a blob) fails when that response was an error, and each test asserts a floor on
//! the number of steps that succeeded on both TPMs, so a sequence cannot decay into errors
//! compared with errors.
mod common;
use common::{Sim, Swtpm, scratch, sha256, sim_exec, swtpm_exec};
use std::io::{Read, Write};
use std::net::TcpStream;
use vtpm_sim::wire::command as cmd;


/// Runs a command, retrying TPM_RC_RETRY / _YIELDED / _TESTING as a TSS does.
fn with_retry(f: impl Fn() -> Vec<u8>) -> Vec<u8> {
    for _ in 0..20 {
        let r = f();
        let rc = u32::from_be_bytes([r[6], r[7], r[8], r[9]]);
        if !matches!(rc, 0x922 | 0x908 | 0x90A) {
            return r;
        }
    }
    f()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cmp {
    /// Same response code.
    Rc,
    /// Same code and same length.
    Len,
    /// Identical bytes.
    Exact,
    /// Identical bytes except the PCR update counter (bytes 10..14), whose value depends on
    /// how an implementation counts its own start-up.
    PcrRead,
    /// Same code and the same last four bytes (one TPMA_CC, whatever moreData says).
    Tail4,
}

/// What a step must answer, on both TPMs: success, or one specific response code.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    Ok,
    Rc(u32),
}

/// A step's expected answer and how closely the two TPMs' answers must agree; `line` is where
/// the step is written, to find it from a failure.
#[derive(Clone, Copy, Debug)]
struct Outcome {
    expect: Expect,
    cmp: Cmp,
    line: u32,
}

/// The step must succeed on both TPMs, their answers compared as `cmp` says.
#[track_caller]
fn ok(cmp: Cmp) -> Outcome {
    let line = std::panic::Location::caller().line();
    Outcome {
        expect: Expect::Ok,
        cmp,
        line,
    }
}

/// The step must fail with `rc` on both TPMs, their answers compared as `cmp` says. `rc` is the
/// code as the TPM answers it, parameter/handle/session number included: e.g. 0x1D5 is
/// TPM_RC_SIZE on parameter 1, 0x184 TPM_RC_VALUE on handle 1, 0x9A2 TPM_RC_BAD_AUTH on
/// session 1, 0x18B TPM_RC_HANDLE on handle 1, 0x100 TPM_RC_INITIALIZE.
#[track_caller]
fn fails(rc: u32, cmp: Cmp) -> Outcome {
    assert_ne!(rc, 0, "use ok() for a step that succeeds");
    let line = std::panic::Location::caller().line();
    Outcome {
        expect: Expect::Rc(rc),
        cmp,
        line,
    }
}

fn rc_of(r: &[u8]) -> u32 {
    u32::from_be_bytes([r[6], r[7], r[8], r[9]])
}

/// The responses of one TPM so far, as the steps that follow may read them: reading a response
/// that is an error panics (caught by [`compare`], which fails that step), so no step is ever
/// built from a handle or field a failed step did not return.
struct History(Vec<(String, Vec<u8>)>);

impl History {
    fn response(&self, i: usize) -> &Vec<u8> {
        let (name, r) = &self.0[i];
        let rc = rc_of(r);
        assert!(
            rc == 0,
            "built from step {i} ({name}), which answered rc={rc:#x}"
        );
        r
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    /// The previous step's response (which must be a success).
    fn last(&self) -> Option<&Vec<u8>> {
        self.0.len().checked_sub(1).map(|i| self.response(i))
    }
}

impl std::ops::Index<usize> for History {
    type Output = Vec<u8>;
    fn index(&self, i: usize) -> &Vec<u8> {
        self.response(i)
    }
}

/// A step of a sequence: builds its command from the responses so far (same TPM).
type Build = Box<dyn Fn(&History) -> Vec<u8>>;

/// What a run of steps found: the steps that went wrong (an unexpected answer on either TPM, a
/// difference between them, or a step built from a failed one), and how many succeeded on both.
#[derive(Default)]
struct Report {
    mismatches: Vec<String>,
    succeeded: usize,
    steps: usize,
}

impl Report {
    fn extend(&mut self, other: Report) {
        self.mismatches.extend(other.mismatches);
        self.succeeded += other.succeeded;
        self.steps += other.steps;
    }

    /// Fails on any mismatch, and when fewer than `floor` steps succeeded on both TPMs (so a
    /// sequence cannot quietly turn into errors compared with errors).
    fn assert_clean(self, test: &str, floor: usize) {
        eprintln!(
            "{test}: {} of {} steps succeeded on both TPMs (floor {floor})",
            self.succeeded, self.steps
        );
        assert!(
            self.mismatches.is_empty(),
            "{test}: {} of {} steps went wrong:\n{}",
            self.mismatches.len(),
            self.steps,
            self.mismatches.join("\n")
        );
        assert!(
            self.succeeded >= floor,
            "{test}: only {} of {} steps succeeded on both TPMs (floor {floor})",
            self.succeeded,
            self.steps
        );
    }
}

/// An error response standing for a step that could not be built, so that the steps reading it
/// fail too.
const NOT_BUILT: [u8; 10] = [0x80, 0x01, 0, 0, 0, 10, 0xFF, 0xFF, 0xFF, 0xFF];

/// Runs `cases` in order against both TPMs: each answer must be the step's expected outcome on
/// both, and the two answers must agree as the step's `Cmp` says.
fn compare(sim_port: u16, sw_port: u16, cases: &[(&str, Build, Outcome)]) -> Report {
    let mut report = Report::default();
    let (mut hist_a, mut hist_b) = (History(Vec::new()), History(Vec::new()));
    for (what, build, outcome) in cases {
        report.steps += 1;
        let line = outcome.line;
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            (build(&hist_a), build(&hist_b))
        }));
        let (ca, cb) = match built {
            Ok(c) => c,
            Err(e) => {
                let why = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                report
                    .mismatches
                    .push(format!("{what} (line {line}): cannot be built: {why}"));
                hist_a.0.push((what.to_string(), NOT_BUILT.to_vec()));
                hist_b.0.push((what.to_string(), NOT_BUILT.to_vec()));
                continue;
            }
        };
        let a = with_retry(|| sim_exec(sim_port, &ca));
        let b = with_retry(|| swtpm_exec(sw_port, &cb));
        hist_a.0.push((what.to_string(), a.clone()));
        hist_b.0.push((what.to_string(), b.clone()));
        let rc = rc_of;
        let want = match outcome.expect {
            Expect::Ok => 0,
            Expect::Rc(c) => c,
        };
        // DIFF_RECORD=1 prints every step's codes: how a new step's expectation is written.
        if std::env::var_os("DIFF_RECORD").is_some() {
            eprintln!(
                "RECORD line={line} sim={:#x} sw={:#x} {what}",
                rc(&a),
                rc(&b)
            );
        }
        if rc(&a) == 0 && rc(&b) == 0 {
            report.succeeded += 1;
        }
        let same = match outcome.cmp {
            Cmp::Rc => rc(&a) == rc(&b),
            Cmp::Len => rc(&a) == rc(&b) && a.len() == b.len(),
            Cmp::Exact => a == b,
            Cmp::Tail4 => rc(&a) == rc(&b) && a.len() >= 4 && a[a.len() - 4..] == b[b.len() - 4..],
            Cmp::PcrRead => {
                a.len() == b.len() && a.len() > 14 && a[..10] == b[..10] && a[14..] == b[14..]
            }
        };
        if !same || rc(&a) != want || rc(&b) != want {
            let expected = match outcome.expect {
                Expect::Ok => "success".to_string(),
                Expect::Rc(c) => format!("rc={c:#x}"),
            };
            report.mismatches.push(format!(
                "{what} (line {line}, expected {expected}, {:?}): vtpm rc={:#x} len={} swtpm rc={:#x} len={}\n  vtpm  {:02x?}\n  swtpm {:02x?}",
                outcome.cmp,
                rc(&a),
                a.len(),
                rc(&b),
                b.len(),
                &a[..a.len().min(48)],
                &b[..b.len().min(48)]
            ));
        }
    }
    report
}

fn ecc_primary_params() -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&[0x00, 0x23, 0x00, 0x0B]);
    t.extend_from_slice(&0x0003_0072u32.to_be_bytes()); // fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|restricted|decrypt
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(&[0x00, 0x06, 0x00, 0x80, 0x00, 0x43]); // AES-128-CFB
    t.extend_from_slice(&[0x00, 0x10, 0x00, 0x03, 0x00, 0x10]); // scheme NULL, P-256, KDF NULL
    t.extend_from_slice(&[0, 0, 0, 0]);
    let mut p = vec![0, 4, 0, 0, 0, 0];
    p.extend_from_slice(&(t.len() as u16).to_be_bytes());
    p.extend_from_slice(&t);
    p.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    p
}

/// Create parameters for an unrestricted ECDSA-P256/SHA-256 signing key.
fn ecc_child_params() -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&[0x00, 0x23, 0x00, 0x0B]);
    t.extend_from_slice(&0x0004_0072u32.to_be_bytes()); // fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|sign
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(&[0x00, 0x10, 0x00, 0x18, 0x00, 0x0B, 0x00, 0x03, 0x00, 0x10]);
    t.extend_from_slice(&[0, 0, 0, 0]);
    let mut p = vec![0, 4, 0, 0, 0, 0];
    p.extend_from_slice(&(t.len() as u16).to_be_bytes());
    p.extend_from_slice(&t);
    p.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    p
}

fn nv_public(index: u32, attrs: u32, size: u16) -> Vec<u8> {
    let mut n = index.to_be_bytes().to_vec();
    n.extend_from_slice(&[0x00, 0x0B]);
    n.extend_from_slice(&attrs.to_be_bytes());
    n.extend_from_slice(&[0, 0]);
    n.extend_from_slice(&size.to_be_bytes());
    let mut p = vec![0, 0];
    p.extend_from_slice(&(n.len() as u16).to_be_bytes());
    p.extend_from_slice(&n);
    p
}

#[test]
fn same_codes_and_structure_as_swtpm() {
    let dir = scratch("diff");
    let sw = Swtpm::start(&dir.join("swtpm"));
    std::fs::create_dir_all(dir.join("sim")).unwrap();
    let sim = Sim::start(&dir.join("sim"), None);
    let mut bad_tag = cmd(0x17B, &[], false, &[0, 8]);
    bad_tag[1] = 0x05;
    let mut bad_size = cmd(0x17B, &[], false, &[0, 8]);
    bad_size[5] += 1;
    let ext = |pcr: u32, d: u8| {
        let mut p = vec![0, 0, 0, 1, 0, 0x0B];
        p.extend_from_slice(&[d; 32]);
        cmd(0x182, &[pcr], true, &p)
    };
    let pcr_read = cmd(
        0x17E,
        &[],
        false,
        &[
            0, 0, 0, 2, 0, 0x04, 3, 0x01, 0, 0x01, 0, 0x0B, 3, 0x01, 0, 0x03,
        ],
    );
    let nv = 0x0150_0001u32;
    let owner_rw = (1 << 1) | (1 << 17);
    let fixed: Vec<(&str, Vec<u8>, Outcome)> = vec![
        (
            "GetRandom before Startup",
            cmd(0x17B, &[], false, &[0, 8]),
            fails(0x100, Cmp::Exact),
        ),
        (
            "Startup(CLEAR)",
            cmd(0x144, &[], false, &[0, 0]),
            ok(Cmp::Exact),
        ),
        (
            "second Startup",
            cmd(0x144, &[], false, &[0, 0]),
            fails(0x100, Cmp::Exact),
        ),
        ("bad tag", bad_tag, fails(0x84, Cmp::Exact)),
        ("size mismatch", bad_size, fails(0x142, Cmp::Exact)),
        (
            "unknown command",
            cmd(0x1FF, &[], false, &[]),
            fails(0x143, Cmp::Exact),
        ),
        (
            "GetRandom 16",
            cmd(0x17B, &[], false, &[0, 16]),
            ok(Cmp::Len),
        ),
        (
            "GetRandom 100 (capped)",
            cmd(0x17B, &[], false, &[0, 100]),
            ok(Cmp::Len),
        ),
        (
            "FlushContext persistent",
            cmd(0x165, &[], false, &0x8100_0000u32.to_be_bytes()),
            fails(0x1C4, Cmp::Exact),
        ),
        (
            "ReadPublic missing persistent",
            cmd(0x173, &[0x8100_0001], false, &[]),
            fails(0x18B, Cmp::Exact),
        ),
        (
            "NV_ReadPublic missing",
            cmd(0x169, &[0x0100_0001], false, &[]),
            fails(0x18B, Cmp::Exact),
        ),
        (
            "GetRandom trailing byte",
            cmd(0x17B, &[], false, &[0, 16, 0]),
            fails(0x95, Cmp::Exact),
        ),
        (
            "GetRandom truncated",
            cmd(0x17B, &[], false, &[0]),
            fails(0x1DA, Cmp::Exact),
        ),
        (
            "StirRandom",
            cmd(0x146, &[], false, &[0, 4, 1, 2, 3, 4]),
            ok(Cmp::Exact),
        ),
        ("SelfTest", cmd(0x143, &[], false, &[1]), ok(Cmp::Exact)),
        (
            "GetCapability bad",
            cmd(0x17A, &[], false, &[0, 0, 0, 0x77, 0, 0, 0, 0, 0, 0, 0, 1]),
            fails(0x1C4, Cmp::Exact),
        ),
        (
            "GetCapability PCRs",
            cmd(0x17A, &[], false, &[0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 8]),
            ok(Cmp::Rc),
        ),
        (
            "GetCapability PT_PCR_COUNT",
            cmd(0x17A, &[], false, &[0, 0, 0, 6, 0, 0, 1, 0x12, 0, 0, 0, 1]),
            ok(Cmp::Exact),
        ),
        ("PCR_Extend 16", ext(16, 0xAB), ok(Cmp::Exact)),
        (
            "PCR_Extend 17 locality 0",
            ext(17, 0xAB),
            fails(0x907, Cmp::Exact),
        ),
        ("PCR_Extend 24", ext(24, 0xAB), fails(0x184, Cmp::Exact)),
        (
            "PCR_Extend no auth",
            cmd(0x182, &[16], false, &[0, 0, 0, 0]),
            fails(0x125, Cmp::Exact),
        ),
        (
            "PCR_Read 0,16 sha1+sha256",
            pcr_read.clone(),
            ok(Cmp::PcrRead),
        ),
        (
            "PCR_Event 16",
            cmd(0x13C, &[16], true, &[0, 3, b'a', b'b', b'c']),
            ok(Cmp::Exact),
        ),
        (
            "PCR_Reset 0",
            cmd(0x13D, &[0], true, &[]),
            fails(0x907, Cmp::Exact),
        ),
        ("PCR_Reset 16", cmd(0x13D, &[16], true, &[]), ok(Cmp::Exact)),
        ("PCR_Read after reset", pcr_read, ok(Cmp::PcrRead)),
        (
            "Hash abc",
            cmd(
                0x17D,
                &[],
                false,
                &[0, 3, b'a', b'b', b'c', 0, 0x0B, 0x40, 0, 0, 1],
            ),
            ok(Cmp::Len),
        ),
        (
            "Hash bad alg",
            cmd(
                0x17D,
                &[],
                false,
                &[0, 3, b'a', b'b', b'c', 0, 0x99, 0x40, 0, 0, 1],
            ),
            fails(0x2C3, Cmp::Exact),
        ),
        (
            "TestParms RSA 2048",
            cmd(
                0x18A,
                &[],
                false,
                &[0, 1, 0, 0x10, 0, 0x10, 8, 0, 0, 0, 0, 0],
            ),
            ok(Cmp::Exact),
        ),
        (
            "TestParms ECC P-256",
            cmd(
                0x18A,
                &[],
                false,
                &[0, 0x23, 0, 0x10, 0, 0x10, 0, 3, 0, 0x10],
            ),
            ok(Cmp::Exact),
        ),
        (
            "TestParms bad type",
            cmd(0x18A, &[], false, &[0, 0x77]),
            fails(0x1CA, Cmp::Exact),
        ),
        (
            "CreatePrimary ECC SRK",
            cmd(0x131, &[0x4000_0001], true, &ecc_primary_params()),
            ok(Cmp::Len),
        ),
        (
            "ReadPublic 0x80000000",
            cmd(0x173, &[0x8000_0000], false, &[]),
            ok(Cmp::Len),
        ),
        (
            "FlushContext 0x80000000",
            cmd(0x165, &[], false, &0x8000_0000u32.to_be_bytes()),
            ok(Cmp::Exact),
        ),
        (
            "FlushContext again",
            cmd(0x165, &[], false, &0x8000_0000u32.to_be_bytes()),
            fails(0x1CB, Cmp::Exact),
        ),
        (
            "StartAuthSession HMAC",
            cmd(
                0x176,
                &[0x4000_0007, 0x4000_0007],
                false,
                &[&[0, 16][..], &[9; 16], &[0, 0, 0], &[0, 0x10], &[0, 0x0B]].concat(),
            ),
            ok(Cmp::Len),
        ),
        (
            "FlushContext session",
            cmd(0x165, &[], false, &0x0200_0000u32.to_be_bytes()),
            ok(Cmp::Exact),
        ),
        (
            "NV_DefineSpace",
            cmd(0x12A, &[0x4000_0001], true, &nv_public(nv, owner_rw, 16)),
            ok(Cmp::Exact),
        ),
        (
            "NV_DefineSpace again",
            cmd(0x12A, &[0x4000_0001], true, &nv_public(nv, owner_rw, 16)),
            fails(0x14C, Cmp::Exact),
        ),
        (
            "NV_Read unwritten",
            cmd(0x14E, &[0x4000_0001, nv], true, &[0, 4, 0, 0]),
            fails(0x14A, Cmp::Exact),
        ),
        (
            "NV_Write",
            cmd(0x137, &[0x4000_0001, nv], true, &[0, 4, 1, 2, 3, 4, 0, 2]),
            ok(Cmp::Exact),
        ),
        (
            "NV_Write out of range",
            cmd(0x137, &[0x4000_0001, nv], true, &[0, 4, 1, 2, 3, 4, 0, 14]),
            fails(0x146, Cmp::Exact),
        ),
        (
            "NV_Read",
            cmd(0x14E, &[0x4000_0001, nv], true, &[0, 6, 0, 0]),
            ok(Cmp::Exact),
        ),
        (
            "NV_ReadPublic",
            cmd(0x169, &[nv], false, &[]),
            ok(Cmp::Exact),
        ),
        (
            "NV_Increment on ordinary",
            cmd(0x134, &[0x4000_0001, nv], true, &[]),
            fails(0x282, Cmp::Exact),
        ),
        (
            "NV_UndefineSpace",
            cmd(0x122, &[0x4000_0001, nv], true, &[]),
            ok(Cmp::Exact),
        ),
        (
            "NV_ReadPublic gone",
            cmd(0x169, &[nv], false, &[]),
            fails(0x18B, Cmp::Exact),
        ),
    ];
    let mut cases: Vec<(&str, Build, Outcome)> = fixed
        .into_iter()
        .map(|(w, b, c)| (w, Box::new(move |_: &History| b.clone()) as Build, c))
        .collect();
    let k = |b: Vec<u8>| Box::new(move |_: &History| b.clone()) as Build;
    let policy = 0x0300_0000u32;
    let pol = |cc: u32, params: &[u8]| cmd(cc, &[policy], false, params);
    let start_policy = cmd(
        0x176,
        &[0x4000_0007, 0x4000_0007],
        false,
        &[&[0, 16][..], &[5; 16], &[0, 0, 1], &[0, 0x10], &[0, 0x0B]].concat(),
    );
    let start_trial = cmd(
        0x176,
        &[0x4000_0007, 0x4000_0007],
        false,
        &[&[0, 16][..], &[6; 16], &[0, 0, 3], &[0, 0x10], &[0, 0x0B]].concat(),
    );
    let authorize = [
        &[0, 0][..],
        &[0, 2, b'a', b'b'],
        &[0, 34, 0, 0x0B],
        &[0x44; 32],
        &[0x80, 0x22, 0x40, 0, 0, 7, 0, 0],
    ]
    .concat();
    let or_list = [&[0, 0, 0, 2][..], &[0, 32], &[0; 32], &[0, 32], &[0x11; 32]].concat();
    let more: Vec<(&str, Build, Outcome)> = vec![
        ("StartAuthSession policy", k(start_policy), ok(Cmp::Len)),
        (
            "PolicyCommandCode Unseal",
            k(pol(0x16C, &0x15Eu32.to_be_bytes())),
            ok(Cmp::Exact),
        ),
        (
            "PolicyCommandCode other",
            k(pol(0x16C, &0x15Du32.to_be_bytes())),
            fails(0x1C4, Cmp::Exact),
        ),
        ("PolicyAuthValue", k(pol(0x16B, &[])), ok(Cmp::Exact)),
        (
            "PolicyPCR sha256:16",
            k(pol(0x17F, &[0, 0, 0, 0, 0, 1, 0, 0x0B, 3, 0, 0, 1])),
            ok(Cmp::Exact),
        ),
        (
            "PolicyPCR wrong digest",
            k(pol(
                0x17F,
                &[
                    &[0, 32][..],
                    &[0x22; 32],
                    &[0, 0, 0, 1, 0, 0x0B, 3, 0, 0, 1],
                ]
                .concat(),
            )),
            fails(0x1C4, Cmp::Exact),
        ),
        ("PolicyGetDigest", k(pol(0x189, &[])), ok(Cmp::Exact)),
        ("PolicyRestart", k(pol(0x180, &[])), ok(Cmp::Exact)),
        (
            "PolicyGetDigest after restart",
            k(pol(0x189, &[])),
            ok(Cmp::Exact),
        ),
        ("PolicyOR", k(pol(0x171, &or_list)), ok(Cmp::Exact)),
        (
            "PolicyGetDigest after OR",
            k(pol(0x189, &[])),
            ok(Cmp::Exact),
        ),
        ("PolicyPassword", k(pol(0x18C, &[])), ok(Cmp::Exact)),
        (
            "PolicySecret owner",
            k(cmd(
                0x151,
                &[0x4000_0001, policy],
                true,
                &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            )),
            ok(Cmp::Exact),
        ),
        (
            "PolicyGetDigest after secret",
            k(pol(0x189, &[])),
            ok(Cmp::Exact),
        ),
        (
            "PolicyGetDigest on HMAC handle",
            k(cmd(0x189, &[0x0200_0005], false, &[])),
            fails(0x184, Cmp::Exact),
        ),
        (
            "FlushContext policy",
            k(cmd(0x165, &[], false, &policy.to_be_bytes())),
            ok(Cmp::Exact),
        ),
        ("StartAuthSession trial", k(start_trial), ok(Cmp::Len)),
        (
            "PolicyAuthorize (trial)",
            k(pol(0x16A, &authorize)),
            ok(Cmp::Exact),
        ),
        (
            "PolicyGetDigest after authorize",
            k(pol(0x189, &[])),
            ok(Cmp::Exact),
        ),
        (
            "FlushContext trial",
            k(cmd(0x165, &[], false, &policy.to_be_bytes())),
            ok(Cmp::Exact),
        ),
        (
            "CreatePrimary ECC SRK again",
            k(cmd(0x131, &[0x4000_0001], true, &ecc_primary_params())),
            ok(Cmp::Len),
        ),
        (
            "Create ECC signing key",
            k(cmd(0x153, &[0x8000_0000], true, &ecc_child_params())),
            ok(Cmp::Len),
        ),
        (
            "Load it",
            Box::new(|prev: &History| {
                // outPrivate and outPublic follow the parameterSize of the Create response.
                let r = prev.last().expect("Create response");
                let priv_len = usize::from(u16::from_be_bytes([r[14], r[15]]));
                let pub_at = 16 + priv_len;
                let pub_len = usize::from(u16::from_be_bytes([r[pub_at], r[pub_at + 1]]));
                cmd(0x157, &[0x8000_0000], true, &r[14..pub_at + 2 + pub_len])
            }),
            ok(Cmp::Len),
        ),
        (
            "ReadPublic child",
            k(cmd(0x173, &[0x8000_0001], false, &[])),
            ok(Cmp::Len),
        ),
        (
            "Sign with child",
            k(cmd(
                0x15D,
                &[0x8000_0001],
                true,
                &[
                    &[0, 32][..],
                    &[0x33; 32],
                    &[0, 0x10],
                    &[0x80, 0x24, 0x40, 0, 0, 7, 0, 0],
                ]
                .concat(),
            )),
            ok(Cmp::Len),
        ),
        (
            "Sign wrong digest size",
            k(cmd(
                0x15D,
                &[0x8000_0001],
                true,
                &[
                    &[0, 20][..],
                    &[0x33; 20],
                    &[0, 0x10],
                    &[0x80, 0x24, 0x40, 0, 0, 7, 0, 0],
                ]
                .concat(),
            )),
            fails(0x1D5, Cmp::Exact),
        ),
        (
            "Sign with storage key",
            k(cmd(
                0x15D,
                &[0x8000_0000],
                true,
                &[
                    &[0, 32][..],
                    &[0x33; 32],
                    &[0, 0x10],
                    &[0x80, 0x24, 0x40, 0, 0, 7, 0, 0],
                ]
                .concat(),
            )),
            fails(0x19C, Cmp::Exact),
        ),
        (
            "Unseal a signing key",
            k(cmd(0x15E, &[0x8000_0001], true, &[])),
            fails(0x18A, Cmp::Exact),
        ),
        (
            "ContextSave child",
            k(cmd(0x162, &[0x8000_0001], false, &[])),
            ok(Cmp::Rc),
        ),
        (
            "EvictControl SRK",
            k(cmd(
                0x120,
                &[0x4000_0001, 0x8000_0000],
                true,
                &0x8100_0010u32.to_be_bytes(),
            )),
            ok(Cmp::Exact),
        ),
        (
            "EvictControl again",
            k(cmd(
                0x120,
                &[0x4000_0001, 0x8000_0000],
                true,
                &0x8100_0010u32.to_be_bytes(),
            )),
            fails(0x14C, Cmp::Exact),
        ),
        (
            "EvictControl platform range by owner",
            k(cmd(
                0x120,
                &[0x4000_0001, 0x8000_0000],
                true,
                &0x8180_0010u32.to_be_bytes(),
            )),
            fails(0x1CD, Cmp::Exact),
        ),
        (
            "EvictControl remove",
            k(cmd(
                0x120,
                &[0x4000_0001, 0x8100_0010],
                true,
                &0x8100_0010u32.to_be_bytes(),
            )),
            ok(Cmp::Exact),
        ),
        (
            "HierarchyChangeAuth owner",
            k(cmd(0x129, &[0x4000_0001], true, &[0, 2, b'p', b'w'])),
            ok(Cmp::Exact),
        ),
        (
            "CreatePrimary wrong password",
            k(cmd(0x131, &[0x4000_0001], true, &ecc_primary_params())),
            fails(0x9A2, Cmp::Exact),
        ),
        (
            "Shutdown(CLEAR)",
            k(cmd(0x145, &[], false, &[0, 0])),
            ok(Cmp::Exact),
        ),
    ];
    cases.extend(more);
    let report = compare(sim.port, sw.port, &cases);
    report.assert_clean("same_codes_and_structure_as_swtpm", 52);
}

/// A command authorised by one policy session (16-byte nonce, continueSession, empty HMAC: the
/// policies here end in PolicyPassword with an empty password).
fn with_policy(cc: u32, handles: &[u32], session: u32, params: &[u8]) -> Vec<u8> {
    let mut c = cmd(cc, handles, true, params);
    // Replace the password session (TPM_RS_PW, empty nonce) by `session` with a nonce.
    let at = 10 + 4 * handles.len();
    let area = [
        &session.to_be_bytes()[..],
        &[0, 16],
        &[0x5A; 16],
        &[1, 0, 0],
    ]
    .concat();
    c.splice(
        at..at + 4 + 9,
        [(area.len() as u32).to_be_bytes().to_vec(), area].concat(),
    );
    let len = c.len() as u32;
    c[2..6].copy_from_slice(&len.to_be_bytes());
    c
}

/// The `i`th TPM2B (with its size) of a (successful) response's parameter area starting at
/// `start`; panics when the response is too short, which fails the step being built.
fn field(resp: &[u8], start: usize, i: usize) -> Vec<u8> {
    let mut at = start;
    for k in 0..=i {
        let n = resp
            .get(at..at + 2)
            .unwrap_or_else(|| panic!("response of {} bytes has no TPM2B {k} at {at}", resp.len()));
        let n = usize::from(u16::from_be_bytes([n[0], n[1]]));
        if k == i {
            return resp
                .get(at..at + 2 + n)
                .unwrap_or_else(|| panic!("TPM2B {k} at {at} ({n} bytes) runs past the response"))
                .to_vec();
        }
        at += 2 + n;
    }
    unreachable!()
}

/// A (successful) response's handle (bytes 10..14).
fn handle_of(resp: &[u8]) -> u32 {
    let b = resp.get(10..14).expect("response without a handle");
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Create parameters for an ECDSA-P256 signing key with `attrs` and `policy` as authPolicy.
fn ecc_key_params(attrs: u32, policy: &[u8]) -> Vec<u8> {
    let t = [
        &[0x00, 0x23, 0x00, 0x0B][..],
        &attrs.to_be_bytes(),
        policy,
        &[0x00, 0x10, 0x00, 0x18, 0x00, 0x0B, 0x00, 0x03, 0x00, 0x10],
        &[0, 0, 0, 0],
    ]
    .concat();
    [
        &[0, 4, 0, 0, 0, 0][..],
        &vtpm_sim::wire::tpm2b(&t),
        &[0, 0, 0, 0, 0, 0],
    ]
    .concat()
}

/// Where Import's encryptionKey comes from: the Duplicate response at that step, or a
/// caller-chosen key of 16 equal bytes. Failing cases use caller keys so that what the TPM
/// decrypts, and so the code it answers, does not depend on random bytes.
#[derive(Clone, Copy)]
enum InnerKey {
    Returned(usize),
    Given(u8),
}

/// Duplicate and Import: the DUP role, the inner and outer wrappers, encryptedDuplication and
/// the failure codes (wrong key sizes, tampered blobs, wrong parents, fixed objects).
#[test]
fn duplication_same_codes_as_swtpm() {
    let dir = scratch("diff-dup");
    let sw = Swtpm::start(&dir.join("swtpm"));
    std::fs::create_dir_all(dir.join("sim")).unwrap();
    let sim = Sim::start(&dir.join("sim"), None);
    const SRK: u32 = 0x8000_0000;
    const NULL: u32 = 0x4000_0007;
    // sensitiveDataOrigin | userWithAuth | sign, and variants.
    const DUPLICABLE: u32 = 0x0004_0060;
    const FIXED: u32 = DUPLICABLE | (1 << 1) | (1 << 4);
    const ENC_DUP: u32 = DUPLICABLE | (1 << 11);
    const AES128_CFB: [u8; 6] = [0x00, 0x06, 0x00, 0x80, 0x00, 0x43];
    const SYM_NULL: [u8; 2] = [0x00, 0x10];
    let start_session = |kind: u8, nonce: u8| {
        cmd(
            0x176,
            &[NULL, NULL],
            false,
            &[
                &[0, 16][..],
                &[nonce; 16],
                &[0, 0, kind],
                &[0, 0x10],
                &[0, 0x0B],
            ]
            .concat(),
        )
    };
    // Steps refer to earlier responses by position: `step` returns it.
    let mut cases: Vec<(&str, Build, Outcome)> = Vec::new();
    let mut step = |name: &'static str, build: Build, how: Outcome| {
        cases.push((name, build, how));
        cases.len() - 1
    };
    let k = |b: Vec<u8>| Box::new(move |_: &History| b.clone()) as Build;
    step(
        "Startup(CLEAR)",
        k(cmd(0x144, &[], false, &[0, 0])),
        ok(Cmp::Exact),
    );
    step(
        "CreatePrimary ECC SRK",
        k(cmd(0x131, &[0x4000_0001], true, &ecc_primary_params())),
        ok(Cmp::Len),
    );
    step(
        "StartAuthSession trial",
        k(start_session(3, 1)),
        ok(Cmp::Len),
    );
    let trial = 0x0300_0000;
    step(
        "PolicyCommandCode(Duplicate) trial",
        k(cmd(0x16C, &[trial], false, &0x14Bu32.to_be_bytes())),
        ok(Cmp::Exact),
    );
    step(
        "PolicyPassword trial",
        k(cmd(0x18C, &[trial], false, &[])),
        ok(Cmp::Exact),
    );
    let digest = step(
        "PolicyGetDigest",
        k(cmd(0x189, &[trial], false, &[])),
        ok(Cmp::Exact),
    );
    step(
        "FlushContext trial",
        k(cmd(0x165, &[], false, &trial.to_be_bytes())),
        ok(Cmp::Exact),
    );
    let create = move |attrs: u32| -> Build {
        Box::new(move |h: &History| {
            cmd(
                0x153,
                &[SRK],
                true,
                &ecc_key_params(attrs, &field(&h[digest], 10, 0)),
            )
        })
    };
    let dup_key = step("Create duplicable key", create(DUPLICABLE), ok(Cmp::Len));
    let fixed_key = step("Create fixed key", create(FIXED), ok(Cmp::Len));
    let enc_key = step(
        "Create encryptedDuplication key",
        create(ENC_DUP),
        ok(Cmp::Len),
    );
    step(
        "Create fixedTPM + encryptedDuplication",
        create(FIXED | (1 << 11)),
        fails(0x2C2, Cmp::Exact),
    );
    let load = |created: usize| -> Build {
        Box::new(move |h: &History| {
            let p = [field(&h[created], 14, 0), field(&h[created], 14, 1)].concat();
            cmd(0x157, &[SRK], true, &p)
        })
    };
    let key = step("Load duplicable key", load(dup_key), ok(Cmp::Len));
    let ps = step(
        "StartAuthSession policy",
        k(start_session(1, 2)),
        ok(Cmp::Len),
    );
    // A satisfied policy authorises one command (the session starts over when its nonce
    // rolls), so the policy is run again after every successful Duplicate.
    let satisfy = move || -> [(&'static str, Build, Outcome); 2] {
        [
            (
                "PolicyCommandCode(Duplicate)",
                Box::new(move |h: &History| {
                    cmd(0x16C, &[handle_of(&h[ps])], false, &0x14Bu32.to_be_bytes())
                }),
                ok(Cmp::Exact),
            ),
            (
                "PolicyPassword",
                Box::new(move |h: &History| cmd(0x18C, &[handle_of(&h[ps])], false, &[])),
                ok(Cmp::Exact),
            ),
        ]
    };
    // Duplicate(objectHandle, newParentHandle) authorised by the policy session.
    let duplicate = move |parent: Option<u32>, key_in: Vec<u8>, sym: &'static [u8]| -> Build {
        Box::new(move |h: &History| {
            with_policy(
                0x14B,
                &[handle_of(&h[key]), parent.unwrap_or(NULL)],
                handle_of(&h[ps]),
                &[vtpm_sim::wire::tpm2b(&key_in), sym.to_vec()].concat(),
            )
        })
    };
    step(
        "Duplicate with a password session (DUP role)",
        Box::new(move |h: &History| {
            cmd(
                0x14B,
                &[handle_of(&h[key]), SRK],
                true,
                &[&[0, 0][..], &SYM_NULL].concat(),
            )
        }),
        fails(0x124, Cmp::Exact),
    );
    step(
        "Duplicate before the policy is satisfied",
        duplicate(Some(SRK), vec![], &SYM_NULL),
        fails(0x99D, Cmp::Exact),
    );
    for (n, b, c) in satisfy() {
        step(n, b, c);
    }
    let outer = step(
        "Duplicate outer wrapper only",
        duplicate(Some(SRK), vec![], &SYM_NULL),
        ok(Cmp::Len),
    );
    // The policy was spent on that command: using the session again fails until it is re-run.
    step(
        "Duplicate with the spent policy",
        duplicate(Some(SRK), vec![], &SYM_NULL),
        fails(0x99D, Cmp::Exact),
    );
    for (n, b, c) in satisfy() {
        step(n, b, c);
    }
    let both = step(
        "Duplicate inner (TPM key) and outer",
        duplicate(Some(SRK), vec![], &AES128_CFB),
        ok(Cmp::Len),
    );
    for (n, b, c) in satisfy() {
        step(n, b, c);
    }
    step(
        "Duplicate inner key of the wrong size",
        duplicate(Some(SRK), vec![7; 8], &AES128_CFB),
        fails(0x1D5, Cmp::Exact),
    );
    let caller = step(
        "Duplicate inner (caller key) and outer",
        duplicate(Some(SRK), vec![7; 16], &AES128_CFB),
        ok(Cmp::Len),
    );
    for (n, b, c) in satisfy() {
        step(n, b, c);
    }
    step(
        "Duplicate key without an algorithm",
        duplicate(Some(SRK), vec![7; 16], &SYM_NULL),
        fails(0x1D5, Cmp::Exact),
    );
    step(
        "Duplicate to the NULL parent, no wrapper",
        duplicate(None, vec![], &SYM_NULL),
        ok(Cmp::Len),
    );
    for (n, b, c) in satisfy() {
        step(n, b, c);
    }
    step(
        "Duplicate to a non-storage parent",
        Box::new(move |h: &History| {
            with_policy(
                0x14B,
                &[handle_of(&h[key]), handle_of(&h[key])],
                handle_of(&h[ps]),
                &[&[0, 0][..], &SYM_NULL].concat(),
            )
        }),
        fails(0x28A, Cmp::Exact),
    );
    // Import(parent; encryptionKey, objectPublic, duplicate, inSymSeed, symmetricAlg).
    let import = move |from: usize,
                       key: InnerKey,
                       public_of: usize,
                       sym: &'static [u8],
                       tamper: bool|
          -> Build {
        Box::new(move |h: &History| {
            let mut blob = field(&h[from], 14, 1);
            if tamper && let Some(b) = blob.last_mut() {
                *b ^= 1;
            }
            let key = match key {
                InnerKey::Returned(by) => field(&h[by], 14, 0),
                InnerKey::Given(b) => vtpm_sim::wire::tpm2b(&[b; 16]),
            };
            let p = [
                key,
                field(&h[public_of], 14, 1),
                blob,
                field(&h[from], 14, 2),
                sym.to_vec(),
            ]
            .concat();
            cmd(0x156, &[SRK], true, &p)
        })
    };
    let imported = step(
        "Import outer wrapper only",
        import(outer, InnerKey::Returned(outer), dup_key, &SYM_NULL, false),
        ok(Cmp::Len),
    );
    step(
        "Import tampered blob",
        import(outer, InnerKey::Returned(outer), dup_key, &SYM_NULL, true),
        fails(0x3DF, Cmp::Exact),
    );
    step(
        "Import under another object's name",
        import(
            outer,
            InnerKey::Returned(outer),
            fixed_key,
            &SYM_NULL,
            false,
        ),
        fails(0x2C2, Cmp::Exact),
    );
    step(
        "Import inner and outer",
        import(both, InnerKey::Returned(both), dup_key, &AES128_CFB, false),
        ok(Cmp::Len),
    );
    step(
        "Import inner (caller key) and outer",
        import(caller, InnerKey::Given(7), dup_key, &AES128_CFB, false),
        ok(Cmp::Len),
    );
    step(
        "Import with the wrong inner key",
        import(caller, InnerKey::Given(8), dup_key, &AES128_CFB, false),
        fails(0x3D5, Cmp::Exact),
    );
    step(
        "Import inner wrapper without its key",
        import(both, InnerKey::Returned(outer), dup_key, &AES128_CFB, false),
        fails(0x1D5, Cmp::Exact),
    );
    step(
        "Import, inner wrapper not declared",
        import(caller, InnerKey::Returned(outer), dup_key, &SYM_NULL, false),
        fails(0x3D5, Cmp::Exact),
    );
    let loaded = step(
        "Load the imported key",
        Box::new(move |h: &History| {
            let p = [field(&h[imported], 14, 0), field(&h[dup_key], 14, 1)].concat();
            cmd(0x157, &[SRK], true, &p)
        }),
        ok(Cmp::Len),
    );
    step(
        "Sign with the imported key",
        Box::new(move |h: &History| {
            let p = [
                &[0, 32][..],
                &[0x33; 32],
                &[0, 0x10],
                &[0x80, 0x24, 0x40, 0, 0, 7, 0, 0],
            ]
            .concat();
            cmd(0x15D, &[handle_of(&h[loaded])], true, &p)
        }),
        ok(Cmp::Len),
    );
    step(
        "FlushContext imported key",
        Box::new(move |h: &History| cmd(0x165, &[], false, &handle_of(&h[loaded]).to_be_bytes())),
        ok(Cmp::Exact),
    );
    step(
        "Import a fixedTPM object",
        import(
            outer,
            InnerKey::Returned(outer),
            fixed_key,
            &SYM_NULL,
            false,
        ),
        fails(0x2C2, Cmp::Exact),
    );
    step(
        "Import under a signing key",
        Box::new(move |h: &History| {
            let p = [
                field(&h[outer], 14, 0),
                field(&h[dup_key], 14, 1),
                field(&h[outer], 14, 1),
                field(&h[outer], 14, 2),
                SYM_NULL.to_vec(),
            ]
            .concat();
            cmd(0x156, &[handle_of(&h[key])], true, &p)
        }),
        fails(0x18A, Cmp::Exact),
    );
    step(
        "Import encryptedDuplication without inner wrapper",
        import(outer, InnerKey::Returned(outer), enc_key, &SYM_NULL, false),
        fails(0x1C2, Cmp::Exact),
    );
    step(
        "FlushContext duplicable key",
        Box::new(move |h: &History| cmd(0x165, &[], false, &handle_of(&h[key]).to_be_bytes())),
        ok(Cmp::Exact),
    );
    let fixed = step("Load fixed key", load(fixed_key), ok(Cmp::Len));
    step(
        "Duplicate a fixedParent key",
        Box::new(move |h: &History| {
            with_policy(
                0x14B,
                &[handle_of(&h[fixed]), SRK],
                handle_of(&h[ps]),
                &[&[0, 0][..], &SYM_NULL].concat(),
            )
        }),
        fails(0x182, Cmp::Exact),
    );
    step(
        "FlushContext fixed key",
        Box::new(move |h: &History| cmd(0x165, &[], false, &handle_of(&h[fixed]).to_be_bytes())),
        ok(Cmp::Exact),
    );
    let enc = step("Load encryptedDuplication key", load(enc_key), ok(Cmp::Len));
    let dup_enc = move |parent: u32, sym: &'static [u8]| -> Build {
        Box::new(move |h: &History| {
            with_policy(
                0x14B,
                &[handle_of(&h[enc]), parent],
                handle_of(&h[ps]),
                &[&[0, 0][..], sym].concat(),
            )
        })
    };
    step(
        "Duplicate encryptedDuplication without inner wrapper",
        dup_enc(SRK, &SYM_NULL),
        fails(0x2D6, Cmp::Exact),
    );
    step(
        "Duplicate encryptedDuplication to the NULL parent",
        dup_enc(NULL, &AES128_CFB),
        fails(0x285, Cmp::Exact),
    );
    step(
        "Duplicate encryptedDuplication with both wrappers",
        dup_enc(SRK, &AES128_CFB),
        ok(Cmp::Len),
    );
    let report = compare(sim.port, sw.port, &cases);
    report.assert_clean("duplication_same_codes_as_swtpm", 37);
}

/// A command authorised by policy session `session`, its HMAC field carrying `password` (a
/// policy with PolicyPassword takes the authValue in the clear, so no HMAC is needed here).
fn with_policy_password(
    cc: u32,
    handles: &[u32],
    session: u32,
    password: &[u8],
    params: &[u8],
) -> Vec<u8> {
    let mut area = session.to_be_bytes().to_vec();
    area.extend_from_slice(&vtpm_sim::wire::tpm2b(&[0x3C; 16]));
    area.push(1);
    area.extend_from_slice(&vtpm_sim::wire::tpm2b(password));
    let mut c = cmd(cc, handles, false, &[]);
    c[1] = 0x02;
    c.extend_from_slice(&(area.len() as u32).to_be_bytes());
    c.extend_from_slice(&area);
    c.extend_from_slice(params);
    let len = c.len() as u32;
    c[2..6].copy_from_slice(&len.to_be_bytes());
    c
}

/// The policy assertions and the conditions a policy session carries, failing cases included:
/// numbered response codes and response layouts as libtpms gives them. (Time-dependent cases
/// are left to the engine tests, which control the clock.)
#[test]
fn policy_codes_match_swtpm() {
    let dir = scratch("diff-policy");
    let sw = Swtpm::start(&dir.join("swtpm"));
    std::fs::create_dir_all(dir.join("sim")).unwrap();
    let sim = Sim::start(&dir.join("sim"), None);
    let k = |b: Vec<u8>| Box::new(move |_: &History| b.clone()) as Build;
    let b2 = vtpm_sim::wire::tpm2b;
    let ps = 0x0300_0000u32;
    let owner = 0x4000_0001u32;
    let pol = |cc: u32, params: &[u8]| cmd(cc, &[ps], false, params);
    let start = |kind: u8| {
        cmd(
            0x176,
            &[0x4000_0007, 0x4000_0007],
            false,
            &[&b2(&[5; 16])[..], &[0, 0, kind], &[0, 0x10], &[0, 0x0B]].concat(),
        )
    };
    let auth = move |nonce: &[u8], cp: &[u8], r: &[u8], exp: i32| {
        [&b2(nonce)[..], &b2(cp), &b2(r), &exp.to_be_bytes()].concat()
    };
    let secret = move |p: Vec<u8>| cmd(0x151, &[owner, ps], true, &p);
    let flush = |h: u32| cmd(0x165, &[], false, &h.to_be_bytes());
    let ticket = |timeout: &[u8], tag: u16| {
        [
            &b2(timeout)[..],
            &b2(&[]),
            &b2(&[]),
            &b2(&owner.to_be_bytes()),
            &tag.to_be_bytes(),
            &owner.to_be_bytes(),
            &b2(&[0x77; 64]),
        ]
        .concat()
    };
    let nv = 0x0150_0001u32;
    let nv_pol = 0x0150_0002u32;
    let policy_nv = |operand: &[u8], offset: u16, op: u16| {
        cmd(
            0x149,
            &[owner, nv, ps],
            true,
            &[&b2(operand)[..], &offset.to_be_bytes(), &op.to_be_bytes()].concat(),
        )
    };
    let nine = [0, 0, 0, 0, 0, 0, 0, 9];
    let mut ecdsa_sig = vec![0, 0x18, 0, 0x0B];
    ecdsa_sig.extend_from_slice(&b2(&[1; 32]));
    ecdsa_sig.extend_from_slice(&b2(&[1; 32]));
    let mut rsa_sig = vec![0, 0x14, 0, 0x0B];
    rsa_sig.extend_from_slice(&b2(&[1; 256]));
    let signed = |sig: &[u8]| [&auth(&[], &[], &[], 0)[..], sig].concat();
    let cases: Vec<(&str, Build, Outcome)> = vec![
        (
            "Startup",
            k(cmd(0x144, &[], false, &[0, 0])),
            ok(Cmp::Exact),
        ),
        ("StartAuthSession policy", k(start(1)), ok(Cmp::Len)),
        (
            "PolicySecret nonce of another session",
            k(secret(auth(&[0xEE; 16], &[], &[], 0))),
            fails(0x1CF, Cmp::Exact),
        ),
        (
            "PolicySecret cpHashA of 20 bytes",
            k(secret(auth(&[], &[1; 20], &[], 0))),
            fails(0x2D5, Cmp::Exact),
        ),
        (
            "PolicySecret negative expiration: ticket",
            k(secret(auth(&[], &[], b"r", -3600))),
            ok(Cmp::Len),
        ),
        (
            "PolicySecret expiration without nonce",
            k(secret(auth(&[], &[], &[], 3600))),
            ok(Cmp::Exact),
        ),
        (
            "PolicySecret with this session's nonceTPM: ticket",
            Box::new(move |prev: &History| {
                // nonceTPM follows the handle in the StartAuthSession response.
                let r = &prev[1];
                let nonce = if r.len() >= 16 { &r[16..] } else { &[][..] };
                secret(auth(nonce, &[], &[], -60))
            }),
            ok(Cmp::Len),
        ),
        (
            "PolicySecret cpHashA",
            k(secret(auth(&[], &[0x21; 32], &[], 0))),
            ok(Cmp::Exact),
        ),
        (
            "PolicySecret other cpHashA",
            k(secret(auth(&[], &[0x22; 32], &[], 0))),
            fails(0x151, Cmp::Exact),
        ),
        ("PolicyGetDigest", k(pol(0x189, &[])), ok(Cmp::Exact)),
        (
            "PolicyCpHash same",
            k(pol(0x16E, &b2(&[0x21; 32]))),
            ok(Cmp::Exact),
        ),
        (
            "PolicyCpHash other",
            k(pol(0x16E, &b2(&[0x23; 32]))),
            fails(0x151, Cmp::Exact),
        ),
        (
            "PolicyCpHash short",
            k(pol(0x16E, &b2(&[0x23; 31]))),
            fails(0x1D5, Cmp::Exact),
        ),
        (
            "PolicyNameHash after cpHash",
            k(pol(0x170, &b2(&[0x24; 32]))),
            fails(0x151, Cmp::Exact),
        ),
        (
            "PolicyLocality 0",
            k(pol(0x16F, &[0])),
            fails(0x1CD, Cmp::Exact),
        ),
        ("PolicyLocality 0|1", k(pol(0x16F, &[3])), ok(Cmp::Exact)),
        (
            "PolicyLocality then 2",
            k(pol(0x16F, &[4])),
            fails(0x1CD, Cmp::Exact),
        ),
        (
            "PolicyLocality extended",
            k(pol(0x16F, &[0x40])),
            fails(0x1CD, Cmp::Exact),
        ),
        (
            "PolicyGetDigest after all",
            k(pol(0x189, &[])),
            ok(Cmp::Exact),
        ),
        ("PolicyRestart", k(pol(0x180, &[])), ok(Cmp::Exact)),
        (
            "PolicyNameHash",
            k(pol(0x170, &b2(&[0x24; 32]))),
            ok(Cmp::Exact),
        ),
        (
            "PolicyGetDigest nameHash",
            k(pol(0x189, &[])),
            ok(Cmp::Exact),
        ),
        (
            "PolicyTicket forged",
            k(pol(0x172, &ticket(&[0; 8], 0x8023))),
            fails(0x5E0, Cmp::Exact),
        ),
        (
            "PolicyTicket bad tag",
            k(pol(0x172, &ticket(&[0; 8], 0x8021))),
            fails(0x5D7, Cmp::Exact),
        ),
        (
            "PolicyTicket short timeout",
            k(pol(0x172, &ticket(&[0; 4], 0x8025))),
            fails(0x1D5, Cmp::Exact),
        ),
        (
            "NV_DefineSpace",
            k(cmd(
                0x12A,
                &[owner],
                true,
                &nv_public(nv, (1 << 1) | (1 << 17), 8),
            )),
            ok(Cmp::Exact),
        ),
        (
            "PolicyNV unwritten",
            k(policy_nv(&nine, 0, 0)),
            fails(0x14A, Cmp::Exact),
        ),
        (
            "NV_Write 9",
            k(cmd(
                0x137,
                &[owner, nv],
                true,
                &[&b2(&nine)[..], &[0, 0]].concat(),
            )),
            ok(Cmp::Exact),
        ),
        ("PolicyRestart again", k(pol(0x180, &[])), ok(Cmp::Exact)),
        ("PolicyNV == 9", k(policy_nv(&nine, 0, 0)), ok(Cmp::Exact)),
        (
            "PolicyNV > 9",
            k(policy_nv(&nine, 0, 3)),
            fails(0x126, Cmp::Exact),
        ),
        (
            "PolicyNV signed <= 9",
            k(policy_nv(&nine, 0, 8)),
            ok(Cmp::Exact),
        ),
        (
            "PolicyNV past the end",
            k(policy_nv(&nine, 4, 0)),
            fails(0x1D5, Cmp::Exact),
        ),
        (
            "PolicyNV offset past the end",
            k(policy_nv(&[9], 9, 0)),
            fails(0x2C4, Cmp::Exact),
        ),
        (
            "PolicyNV bad operation",
            k(policy_nv(&[9], 7, 12)),
            fails(0x3C4, Cmp::Exact),
        ),
        (
            "PolicyGetDigest after NV",
            k(pol(0x189, &[])),
            ok(Cmp::Exact),
        ),
        (
            "CreatePrimary ECC signing key",
            k(cmd(0x131, &[owner], true, &ecc_child_params())),
            ok(Cmp::Len),
        ),
        (
            "PolicySigned missing key",
            k(cmd(0x160, &[0x8000_0001, ps], false, &signed(&ecdsa_sig))),
            fails(0x910, Cmp::Exact),
        ),
        (
            "PolicySigned bad ECDSA signature",
            k(cmd(0x160, &[0x8000_0000, ps], false, &signed(&ecdsa_sig))),
            fails(0x5DB, Cmp::Exact),
        ),
        (
            "PolicySigned RSA signature for an ECC key",
            k(cmd(0x160, &[0x8000_0000, ps], false, &signed(&rsa_sig))),
            fails(0x5D2, Cmp::Exact),
        ),
        ("FlushContext policy", k(flush(ps)), ok(Cmp::Exact)),
        // A policy that PolicyPassword completes: the password then travels in the HMAC field.
        ("StartAuthSession trial", k(start(3)), ok(Cmp::Len)),
        (
            "trial PolicyLocality 3",
            k(pol(0x16F, &[1 << 3])),
            ok(Cmp::Exact),
        ),
        ("trial PolicyPassword", k(pol(0x18C, &[])), ok(Cmp::Exact)),
        ("trial PolicyGetDigest", k(pol(0x189, &[])), ok(Cmp::Exact)),
        ("FlushContext trial", k(flush(ps)), ok(Cmp::Exact)),
        (
            "NV_DefineSpace with that policy",
            Box::new(move |prev: &History| {
                let d = &prev[prev.len() - 2];
                let policy = if d.len() >= 44 { &d[12..44] } else { &[][..] };
                let mut n = nv_pol.to_be_bytes().to_vec();
                n.extend_from_slice(&[0x00, 0x0B]);
                // policyWrite | policyRead | ownerWrite | ownerRead
                n.extend_from_slice(
                    &((1u32 << 3) | (1 << 19) | (1 << 1) | (1 << 17)).to_be_bytes(),
                );
                n.extend_from_slice(&b2(policy));
                n.extend_from_slice(&4u16.to_be_bytes());
                cmd(0x12A, &[owner], true, &[&b2(&[])[..], &b2(&n)].concat())
            }),
            ok(Cmp::Exact),
        ),
        (
            "NV_Write it",
            k(cmd(
                0x137,
                &[owner, nv_pol],
                true,
                &[&b2(&[1, 2, 3, 4])[..], &[0, 0]].concat(),
            )),
            ok(Cmp::Exact),
        ),
        ("StartAuthSession policy again", k(start(1)), ok(Cmp::Len)),
        ("PolicyLocality 3", k(pol(0x16F, &[1 << 3])), ok(Cmp::Exact)),
        ("PolicyPassword", k(pol(0x18C, &[])), ok(Cmp::Exact)),
        (
            "NV_Read at locality 0",
            k(with_policy_password(
                0x14E,
                &[nv_pol, nv_pol],
                ps,
                &[],
                &[0, 4, 0, 0],
            )),
            fails(0x907, Cmp::Exact),
        ),
        (
            "PolicyRestart before password only",
            k(pol(0x180, &[])),
            ok(Cmp::Exact),
        ),
        ("PolicyPassword alone", k(pol(0x18C, &[])), ok(Cmp::Exact)),
        (
            "NV_Read with a different policy",
            k(with_policy_password(
                0x14E,
                &[nv_pol, nv_pol],
                ps,
                &[],
                &[0, 4, 0, 0],
            )),
            fails(0x99D, Cmp::Exact),
        ),
        (
            "Shutdown",
            k(cmd(0x145, &[], false, &[0, 0])),
            ok(Cmp::Exact),
        ),
    ];
    let report = compare(sim.port, sw.port, &cases);
    report.assert_clean("policy_codes_match_swtpm", 34);
}

/// NV_ChangeAuth, NV_GlobalWriteLock, NV_Certify and CertifyCreation against libtpms,
/// failing cases included.
#[test]
fn nv_and_attestation_codes_match_swtpm() {
    let dir = scratch("diff-nv-attest");
    let sw = Swtpm::start(&dir.join("swtpm"));
    std::fs::create_dir_all(dir.join("sim")).unwrap();
    let sim = Sim::start(&dir.join("sim"), None);
    let k = |b: Vec<u8>| Box::new(move |_: &History| b.clone()) as Build;
    let b2 = vtpm_sim::wire::tpm2b;
    let owner = 0x4000_0001u32;
    let key = 0x8000_0000u32;
    let ps = 0x0300_0000u32;
    let (nv, nv_admin, nv_nocc, nv_global) = (
        0x0150_0003u32,
        0x0150_0004u32,
        0x0150_0005u32,
        0x0150_0006u32,
    );
    let start = |kind: u8| {
        cmd(
            0x176,
            &[0x4000_0007, 0x4000_0007],
            false,
            &[&b2(&[5; 16])[..], &[0, 0, kind], &[0, 0x10], &[0, 0x0B]].concat(),
        )
    };
    let pol = |cc: u32, params: &[u8]| cmd(cc, &[ps], false, params);
    let flush = |h: u32| cmd(0x165, &[], false, &h.to_be_bytes());
    // NV_DefineSpace of an index whose authPolicy is the digest in response `back` steps ago.
    let define_with_policy = |index: u32, back: usize| {
        Box::new(move |prev: &History| {
            let d = &prev[prev.len() - back];
            let policy = if d.len() >= 44 { &d[12..44] } else { &[][..] };
            let mut n = index.to_be_bytes().to_vec();
            n.extend_from_slice(&[0x00, 0x0B]);
            // authRead | authWrite | ownerRead | ownerWrite
            n.extend_from_slice(&((1u32 << 2) | (1 << 18) | (1 << 1) | (1 << 17)).to_be_bytes());
            n.extend_from_slice(&b2(policy));
            n.extend_from_slice(&8u16.to_be_bytes());
            cmd(0x12A, &[owner], true, &[&b2(b"pw")[..], &b2(&n)].concat())
        }) as Build
    };
    // CertifyCreation with the creationHash and ticket of a CreatePrimary response (the second
    // in the sequence, or the last one), optionally spoiled.
    let certify_creation = |spoil: u8, last: bool| {
        Box::new(move |prev: &History| {
            let r = if last {
                &prev[prev.len() - 1]
            } else {
                &prev[1]
            };
            let mut at = 18;
            for _ in 0..2 {
                at += 2 + usize::from(u16::from_be_bytes([r[at], r[at + 1]]));
            }
            let hash_at = at;
            at += 2 + usize::from(u16::from_be_bytes([r[at], r[at + 1]]));
            let mut hash = r[hash_at..at].to_vec();
            let tk_len = 6 + 2 + usize::from(u16::from_be_bytes([r[at + 6], r[at + 7]]));
            let mut ticket = r[at..at + tk_len].to_vec();
            match spoil {
                1 => *ticket.last_mut().unwrap() ^= 1,
                2 => ticket[1] = 0x22,
                3 => *hash.last_mut().unwrap() ^= 1,
                _ => {}
            }
            let p = [&b2(b"q")[..], &hash, &[0, 0x10], &ticket].concat();
            cmd(0x14A, &[key, key], true, &p)
        }) as Build
    };
    let nv_certify = |size: u16, offset: u16| {
        let p = [
            &b2(b"q")[..],
            &[0, 0x10],
            &size.to_be_bytes(),
            &offset.to_be_bytes(),
        ]
        .concat();
        let mut c = cmd(0x184, &[key, owner, nv], true, &[]);
        // Two password authorisations: the signing key and the owner.
        c.truncate(22);
        c.extend_from_slice(&18u32.to_be_bytes());
        for _ in 0..2 {
            c.extend_from_slice(&0x4000_0009u32.to_be_bytes());
            c.extend_from_slice(&[0, 0, 1, 0, 0]);
        }
        c.extend_from_slice(&p);
        let len = c.len() as u32;
        c[2..6].copy_from_slice(&len.to_be_bytes());
        c
    };
    let change_auth = |index: u32, password: &[u8]| {
        with_policy_password(0x13B, &[index], ps, password, &b2(b"newpw"))
    };
    let cases: Vec<(&str, Build, Outcome)> = vec![
        (
            "Startup",
            k(cmd(0x144, &[], false, &[0, 0])),
            ok(Cmp::Exact),
        ),
        (
            "CreatePrimary ECC signing key",
            k(cmd(0x131, &[owner], true, &ecc_child_params())),
            ok(Cmp::Len),
        ),
        ("CertifyCreation", certify_creation(0, false), ok(Cmp::Len)),
        (
            "CertifyCreation forged ticket",
            certify_creation(1, false),
            fails(0x4E0, Cmp::Exact),
        ),
        (
            "CertifyCreation wrong ticket tag",
            certify_creation(2, false),
            fails(0x4D7, Cmp::Exact),
        ),
        (
            "CertifyCreation other creationHash",
            certify_creation(3, false),
            fails(0x4E0, Cmp::Exact),
        ),
        (
            "NV_DefineSpace",
            k(cmd(
                0x12A,
                &[owner],
                true,
                &nv_public(nv, (1 << 1) | (1 << 17), 16),
            )),
            ok(Cmp::Exact),
        ),
        (
            "NV_Certify unwritten",
            k(nv_certify(8, 4)),
            fails(0x14A, Cmp::Exact),
        ),
        (
            "NV_Write",
            k(cmd(
                0x137,
                &[owner, nv],
                true,
                &[&b2(&[7; 16])[..], &[0, 0]].concat(),
            )),
            ok(Cmp::Exact),
        ),
        ("NV_Certify 8 at 4", k(nv_certify(8, 4)), ok(Cmp::Len)),
        ("NV_Certify digest", k(nv_certify(0, 0)), ok(Cmp::Len)),
        (
            "NV_Certify past the end",
            k(nv_certify(16, 4)),
            fails(0x146, Cmp::Exact),
        ),
        ("FlushContext key", k(flush(key)), ok(Cmp::Exact)),
        ("StartAuthSession trial", k(start(3)), ok(Cmp::Len)),
        (
            "trial PolicyCommandCode",
            k(pol(0x16C, &0x13Bu32.to_be_bytes())),
            ok(Cmp::Exact),
        ),
        ("trial PolicyPassword", k(pol(0x18C, &[])), ok(Cmp::Exact)),
        ("trial PolicyGetDigest", k(pol(0x189, &[])), ok(Cmp::Exact)),
        ("trial PolicyRestart", k(pol(0x180, &[])), ok(Cmp::Exact)),
        (
            "trial PolicyPassword alone",
            k(pol(0x18C, &[])),
            ok(Cmp::Exact),
        ),
        (
            "trial PolicyGetDigest alone",
            k(pol(0x189, &[])),
            ok(Cmp::Exact),
        ),
        ("FlushContext trial", k(flush(ps)), ok(Cmp::Exact)),
        (
            "NV_DefineSpace ChangeAuth policy",
            define_with_policy(nv_admin, 5),
            ok(Cmp::Exact),
        ),
        (
            "NV_DefineSpace password-only policy",
            define_with_policy(nv_nocc, 3),
            ok(Cmp::Exact),
        ),
        (
            "NV_ChangeAuth with a password",
            k(cmd(0x13B, &[nv_admin], true, &b2(b"newpw"))),
            fails(0x124, Cmp::Exact),
        ),
        ("StartAuthSession policy", k(start(1)), ok(Cmp::Len)),
        ("PolicyPassword", k(pol(0x18C, &[])), ok(Cmp::Exact)),
        (
            "NV_ChangeAuth without a command code",
            k(change_auth(nv_nocc, b"pw")),
            fails(0x99D, Cmp::Exact),
        ),
        (
            "PolicyCommandCode",
            k(pol(0x16C, &0x13Bu32.to_be_bytes())),
            ok(Cmp::Exact),
        ),
        (
            "NV_ChangeAuth wrong command code",
            k(change_auth(nv_nocc, b"pw")),
            fails(0x99D, Cmp::Exact),
        ),
        ("PolicyRestart", k(pol(0x180, &[])), ok(Cmp::Exact)),
        (
            "PolicyCommandCode again",
            k(pol(0x16C, &0x13Bu32.to_be_bytes())),
            ok(Cmp::Exact),
        ),
        ("PolicyPassword again", k(pol(0x18C, &[])), ok(Cmp::Exact)),
        (
            "NV_ChangeAuth wrong password",
            k(change_auth(nv_admin, b"nope")),
            fails(0x98E, Cmp::Exact),
        ),
        // The response carries a fresh nonceTPM: only its layout can match.
        (
            "NV_ChangeAuth",
            k(change_auth(nv_admin, b"pw")),
            ok(Cmp::Len),
        ),
        (
            "NV_Write with the old password",
            k({
                let mut c = cmd(0x137, &[nv_admin, nv_admin], false, &[]);
                c[1] = 2;
                c.extend_from_slice(&11u32.to_be_bytes());
                c.extend_from_slice(&0x4000_0009u32.to_be_bytes());
                c.extend_from_slice(&[0, 0, 1, 0, 2, b'p', b'w']);
                c.extend_from_slice(&[&b2(&[1; 8])[..], &[0, 0]].concat());
                let len = c.len() as u32;
                c[2..6].copy_from_slice(&len.to_be_bytes());
                c
            }),
            fails(0x98E, Cmp::Exact),
        ),
        (
            "NV_DefineSpace globalLock",
            k(cmd(
                0x12A,
                &[owner],
                true,
                &nv_public(nv_global, (1 << 1) | (1 << 17) | (1 << 15), 8),
            )),
            ok(Cmp::Exact),
        ),
        (
            "NV_GlobalWriteLock by endorsement",
            k(cmd(0x132, &[0x4000_000B], true, &[])),
            fails(0x184, Cmp::Exact),
        ),
        (
            "NV_GlobalWriteLock",
            k(cmd(0x132, &[owner], true, &[])),
            ok(Cmp::Exact),
        ),
        (
            "NV_Write globally locked",
            k(cmd(
                0x137,
                &[owner, nv_global],
                true,
                &[&b2(&[1; 8])[..], &[0, 0]].concat(),
            )),
            fails(0x148, Cmp::Exact),
        ),
        (
            "NV_Write not globalLock",
            k(cmd(
                0x137,
                &[owner, nv],
                true,
                &[&b2(&[1; 8])[..], &[0, 0]].concat(),
            )),
            ok(Cmp::Exact),
        ),
        (
            "NV_ReadPublic globally locked",
            k(cmd(0x169, &[nv_global], false, &[])),
            ok(Cmp::Exact),
        ),
        (
            "CreatePrimary in the NULL hierarchy",
            k(cmd(0x131, &[0x4000_0007], true, &ecc_child_params())),
            ok(Cmp::Len),
        ),
        (
            "CertifyCreation NULL-hierarchy ticket",
            certify_creation(0, true),
            ok(Cmp::Len),
        ),
        (
            "Shutdown",
            k(cmd(0x145, &[], false, &[0, 0])),
            ok(Cmp::Exact),
        ),
    ];
    // TPMA_CC of each command added with these (handle count, nv/flushed flags).
    let mut cases = cases;
    for cc in [
        0x132u32, 0x13B, 0x149, 0x14A, 0x151, 0x160, 0x16E, 0x16F, 0x170, 0x172, 0x184,
    ] {
        let p = [&[0, 0, 0, 2][..], &cc.to_be_bytes(), &[0, 0, 0, 1]].concat();
        cases.push((
            "GetCapability TPMA_CC",
            k(cmd(0x17A, &[], false, &p)),
            ok(Cmp::Exact),
        ));
    }
    let report = compare(sim.port, sw.port, &cases);
    report.assert_clean("nv_and_attestation_codes_match_swtpm", 43);
}

/// Power-cycles vtpm-sim through its platform port (TPM_SIGNAL_POWER_OFF, then _ON).
fn sim_power_cycle(port: u16) {
    let mut s = TcpStream::connect(("127.0.0.1", port + 1)).expect("connect vtpm-sim platform");
    for signal in [2u32, 1] {
        s.write_all(&signal.to_be_bytes()).unwrap();
        let mut ack = [0u8; 4];
        s.read_exact(&mut ack).unwrap();
        assert_eq!(ack, [0; 4], "vtpm-sim refused platform signal {signal}");
    }
}

/// Power-cycles swtpm through its control channel (CMD_INIT, flags 0: keep the state that
/// Shutdown(STATE) saved).
fn swtpm_power_cycle(port: u16) {
    let mut s = TcpStream::connect(("127.0.0.1", port + 1)).expect("connect swtpm control");
    s.write_all(&[0, 0, 0, 2, 0, 0, 0, 0]).unwrap();
    let mut res = [0u8; 4];
    s.read_exact(&mut res).unwrap();
    assert_eq!(res, [0; 4], "swtpm CMD_INIT failed");
}

/// The deviations a review of the engine found, each with its failing case: empty HMACs when
/// the HMAC key is empty, ADMIN- and DUP-role authorisation (session type, lockout order),
/// *_STCLEAR and global NV locks across Resume / Restart (with a power cycle of both TPMs in
/// between), indices defined after NV_GlobalWriteLock, the shared cpHash/nameHash slot,
/// PolicyPCR against later PCR changes, attestations without a signing key (TPM_RH_NULL),
/// and credential blobs (which share duplication's outer wrapper).
#[test]
fn conformance_fixes_match_swtpm() {
    let dir = scratch("diff-conform");
    let sw = Swtpm::start(&dir.join("swtpm"));
    std::fs::create_dir_all(dir.join("sim")).unwrap();
    let sim = Sim::start(&dir.join("sim"), None);
    let k = |b: Vec<u8>| Box::new(move |_: &History| b.clone()) as Build;
    let b2 = vtpm_sim::wire::tpm2b;
    let owner = 0x4000_0001u32;
    let null = 0x4000_0007u32;
    let primary = 0x8000_0000u32;
    let key = 0x8000_0001u32;
    let ps = 0x0300_0000u32;
    let hs = 0x0200_0001u32;
    let persistent = 0x8100_0010u32;
    let dupkey = 0x8000_0002u32;
    // A duplicable ECDSA key (its policy is never satisfied here), and Duplicate's parameters:
    // no inner wrapper.
    let dup_key = {
        let p = ecc_key_params(0x0004_0060, &b2(&[0x22; 32])); // sensitiveDataOrigin|userWithAuth|sign
        p[..p.len() - 6].to_vec()
    };
    let dup_params = [&b2(&[])[..], &[0, 0x10]].concat();
    let lockout = 0x4000_000Au32;
    // A command with one password authorisation carrying `password`.
    let pw_with = |cc: u32, handles: &[u32], password: &[u8], params: &[u8]| {
        let mut c = cmd(cc, handles, false, &[]);
        c[1] = 0x02;
        let area = [&0x4000_0009u32.to_be_bytes()[..], &[0, 0, 1], &b2(password)].concat();
        c.extend_from_slice(&(area.len() as u32).to_be_bytes());
        c.extend_from_slice(&area);
        c.extend_from_slice(params);
        let len = c.len() as u32;
        c[2..6].copy_from_slice(&len.to_be_bytes());
        c
    };
    // Sign parameters: a SHA-256 digest, the key's scheme, a NULL hashcheck ticket.
    let sign_params = [
        &b2(&[0; 32])[..],
        &[0, 0x10],
        &[0x80, 0x24],
        &null.to_be_bytes(),
        &b2(&[]),
    ]
    .concat();
    let start = |kind: u8| {
        cmd(
            0x176,
            &[null, null],
            false,
            &[&b2(&[5; 16])[..], &[0, 0, kind], &[0, 0x10], &[0, 0x0B]].concat(),
        )
    };
    let flush = |h: u32| cmd(0x165, &[], false, &h.to_be_bytes());
    let pol = |cc: u32, params: &[u8]| cmd(cc, &[ps], false, params);
    let define = |index: u32, attrs: u32, policy: &[u8]| {
        let n = [
            &index.to_be_bytes()[..],
            &[0x00, 0x0B],
            &attrs.to_be_bytes(),
            &b2(policy),
            &8u16.to_be_bytes(),
        ]
        .concat();
        cmd(0x12A, &[owner], true, &[&b2(&[])[..], &b2(&n)].concat())
    };
    let nv_write = |index: u32| {
        cmd(
            0x137,
            &[owner, index],
            true,
            &[&b2(&[7; 8])[..], &[0, 0]].concat(),
        )
    };
    let nv_read = |index: u32| cmd(0x14E, &[owner, index], true, &[0, 8, 0, 0]);
    let read_public = |index: u32| cmd(0x169, &[index], false, &[]);
    // Attributes: owner read/write, and the policy and auth bits where the index is used with
    // sessions of its own; NO_DA keeps failed tries away from the lockout counter.
    let owner_rw = (1u32 << 1) | (1 << 17);
    let own_pol = owner_rw | (1 << 2) | (1 << 3) | (1 << 18) | (1 << 19) | (1 << 25);
    let (write_stclear, global, read_stclear) = (1u32 << 14, 1u32 << 15, 1u32 << 31);
    let (nv_cc, nv_pcr, nv_st, nv_g, nv_g2, nv_plain) = (
        0x0150_0020u32,
        0x0150_0021u32,
        0x0150_0022u32,
        0x0150_0023u32,
        0x0150_0024u32,
        0x0150_0025u32,
    );
    let zero = [0u8; 32];
    let cc_nv_read = 0x14Eu32.to_be_bytes();
    let policy_cc_read = sha256(&[&zero, &0x16Cu32.to_be_bytes(), &cc_nv_read]);
    // PCR 10 after one extend with 32 bytes of 0x0A (from zero), and PolicyPCR over it.
    let sel10 = [0, 0, 0, 1, 0, 0x0B, 3, 0x00, 0x04, 0x00];
    let pcr10 = sha256(&[&zero, &[0x0A; 32]]);
    let policy_pcr = sha256(&[&zero, &0x17Fu32.to_be_bytes(), &sel10, &sha256(&[&pcr10])]);
    let extend10 = |d: u8| {
        let mut p = vec![0, 0, 0, 1, 0, 0x0B];
        p.extend_from_slice(&[d; 32]);
        cmd(0x182, &[10], true, &p)
    };
    let policy_pcr_cmd = pol(0x17F, &[&b2(&[])[..], &sel10].concat());
    // How a step authorises its command: (command code, handles, parameters) to bytes.
    type Authorise = dyn Fn(u32, &[u32], &[u8]) -> Vec<u8>;
    // ECDSA key with adminWithPolicy (ADMIN role needs a policy session naming the command).
    let admin_key = {
        let attrs = 0x0004_00F2u32; // fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|adminWithPolicy|sign
        let p = ecc_key_params(attrs, &b2(&[0x11; 32]));
        p[..p.len() - 6].to_vec()
    };
    let change_auth = |with: &Authorise| with(0x150, &[key, primary], &b2(b"new"));
    let pw = |cc: u32, h: &[u32], p: &[u8]| cmd(cc, h, true, p);
    let hmac_empty = move |cc: u32, h: &[u32], p: &[u8]| with_policy(cc, h, hs, p);
    let policy_empty = move |cc: u32, h: &[u32], p: &[u8]| with_policy(cc, h, ps, p);
    // A command with two empty password authorisations (the first two handles).
    let two_pw = |cc: u32, handles: &[u32], params: &[u8]| {
        let mut c = cmd(cc, handles, false, &[]);
        c[1] = 0x02;
        c.extend_from_slice(&18u32.to_be_bytes());
        for _ in 0..2 {
            c.extend_from_slice(&0x4000_0009u32.to_be_bytes());
            c.extend_from_slice(&[0, 0, 1, 0, 0]);
        }
        c.extend_from_slice(params);
        let len = c.len() as u32;
        c[2..6].copy_from_slice(&len.to_be_bytes());
        c
    };
    let nv_certify_null = |scheme: &[u8], size: u16| {
        let p = [
            &b2(b"q")[..],
            scheme,
            &size.to_be_bytes(),
            &0u16.to_be_bytes(),
        ]
        .concat();
        two_pw(0x184, &[null, owner, nv_st], &p)
    };

    // ActivateCredential with the MakeCredential response `spoil` + 1 steps back, its blob
    // spoiled: 1 last byte flipped, 2 cut to 3 bytes, 3 only the integrity field left.
    let activate = move |spoil: u8| {
        Box::new(move |prev: &History| {
            let r = &prev[prev.len() - 1 - usize::from(spoil)];
            let (mut blob, secret) = (field(r, 10, 0), field(r, 10, 1));
            match spoil {
                1 => *blob.last_mut().unwrap() ^= 1,
                2 => blob = b2(&blob[2..5]),
                3 => {
                    let mac = field(&blob, 2, 0);
                    blob = b2(&mac);
                }
                _ => {}
            }
            two_pw(0x147, &[primary, primary], &[&blob[..], &secret].concat())
        }) as Build
    };
    // Phase 1: up to Shutdown(STATE).
    let phase1: Vec<(&str, Build, Outcome)> = vec![
        (
            "Startup(CLEAR)",
            k(cmd(0x144, &[], false, &[0, 0])),
            ok(Cmp::Exact),
        ),
        // 1. Empty HMAC when sessionKey and authValue are both empty.
        (
            "define index with PolicyCommandCode(NV_Read)",
            k(define(nv_cc, own_pol, &policy_cc_read)),
            ok(Cmp::Exact),
        ),
        ("NV_Write it", k(nv_write(nv_cc)), ok(Cmp::Exact)),
        ("StartAuthSession policy", k(start(1)), ok(Cmp::Len)),
        ("StartAuthSession HMAC", k(start(0)), ok(Cmp::Len)),
        (
            "PolicyCommandCode(NV_Read)",
            k(pol(0x16C, &cc_nv_read)),
            ok(Cmp::Exact),
        ),
        (
            "NV_Read, policy session, wrong HMAC",
            k(with_policy_password(
                0x14E,
                &[nv_cc, nv_cc],
                ps,
                &[9; 32],
                &[0, 8, 0, 0],
            )),
            fails(0x9A2, Cmp::Exact),
        ),
        (
            "NV_Read, policy session, empty HMAC, empty key",
            k(with_policy(0x14E, &[nv_cc, nv_cc], ps, &[0, 8, 0, 0])),
            ok(Cmp::Len),
        ),
        (
            "NV_Read, policy session reset by its use",
            k(with_policy(0x14E, &[nv_cc, nv_cc], ps, &[0, 8, 0, 0])),
            fails(0x99D, Cmp::Exact),
        ),
        (
            "NV_Read, HMAC session, wrong HMAC",
            k(with_policy_password(
                0x14E,
                &[owner, nv_cc],
                hs,
                &[9; 32],
                &[0, 8, 0, 0],
            )),
            fails(0x9A2, Cmp::Exact),
        ),
        (
            "NV_Read, HMAC session, empty HMAC, empty key",
            k(with_policy(0x14E, &[owner, nv_cc], hs, &[0, 8, 0, 0])),
            ok(Cmp::Len),
        ),
        // The response HMAC is keyed with the new ownerAuth: not empty any more.
        (
            "HierarchyChangeAuth, HMAC session, empty HMAC",
            k(with_policy(0x129, &[owner], hs, &b2(b"abc"))),
            ok(Cmp::Len),
        ),
        (
            "HierarchyChangeAuth back",
            k(pw_with(0x129, &[owner], b"abc", &b2(&[]))),
            ok(Cmp::Exact),
        ),
        ("PolicyRestart", k(pol(0x180, &[])), ok(Cmp::Exact)),
        // 2. ADMIN role of an adminWithPolicy object.
        (
            "CreatePrimary storage key",
            k(cmd(0x131, &[owner], true, &ecc_primary_params())),
            ok(Cmp::Len),
        ),
        (
            "CreateLoaded adminWithPolicy key",
            k(cmd(0x191, &[primary], true, &admin_key)),
            ok(Cmp::Len),
        ),
        (
            "ObjectChangeAuth, password session",
            k(change_auth(&pw)),
            fails(0x124, Cmp::Exact),
        ),
        (
            "ObjectChangeAuth, HMAC session",
            k(change_auth(&hmac_empty)),
            fails(0x124, Cmp::Exact),
        ),
        (
            "ObjectChangeAuth, policy session without the policy",
            k(change_auth(&policy_empty)),
            fails(0x99D, Cmp::Exact),
        ),
        (
            "Certify, password for the ADMIN role",
            k(two_pw(
                0x148,
                &[key, key],
                &[&b2(b"q")[..], &[0, 0x10]].concat(),
            )),
            fails(0x124, Cmp::Exact),
        ),
        (
            "ActivateCredential, password for the ADMIN role",
            k(two_pw(
                0x147,
                &[key, primary],
                &[&b2(&[1; 8])[..], &b2(&[2; 8])].concat(),
            )),
            fails(0x124, Cmp::Exact),
        ),
        (
            "NV_ChangeAuth, password for the ADMIN role",
            k(cmd(0x13B, &[nv_cc], true, &b2(b"new"))),
            fails(0x124, Cmp::Exact),
        ),
        (
            "EvictControl adminWithPolicy key",
            k(cmd(0x120, &[owner, key], true, &persistent.to_be_bytes())),
            ok(Cmp::Exact),
        ),
        (
            "ObjectChangeAuth persistent, password session",
            k(cmd(0x150, &[persistent, primary], true, &b2(b"new"))),
            fails(0x124, Cmp::Exact),
        ),
        (
            "ObjectChangeAuth persistent, HMAC session",
            k(with_policy(0x150, &[persistent, primary], hs, &b2(b"new"))),
            fails(0x124, Cmp::Exact),
        ),
        // In lockout: the reference checks it before the session type (password), and only
        // when the authValue takes part (not for a policy session without PolicyAuthValue).
        // DUP role: a password session fails its own checks first, then lockout, then the
        // session type.
        (
            "CreateLoaded duplicable key",
            k(cmd(0x191, &[primary], true, &dup_key)),
            ok(Cmp::Len),
        ),
        (
            "Duplicate, password session with a nonce",
            k(with_policy(
                0x14B,
                &[dupkey, null],
                0x4000_0009,
                &dup_params,
            )),
            fails(0x98F, Cmp::Exact),
        ),
        (
            "Duplicate, password session",
            k(cmd(0x14B, &[dupkey, null], true, &dup_params)),
            fails(0x124, Cmp::Exact),
        ),
        (
            "DictionaryAttackParameters maxTries 1",
            k(cmd(
                0x13A,
                &[lockout],
                true,
                &[0, 0, 0, 1, 0, 0, 0x03, 0xE8, 0, 0, 0x03, 0xE8],
            )),
            ok(Cmp::Exact),
        ),
        (
            "Sign with a wrong password: lockout",
            k(pw_with(0x15D, &[key], b"wrong", &sign_params)),
            fails(0x98E, Cmp::Exact),
        ),
        (
            "ObjectChangeAuth in lockout, password session",
            k(change_auth(&pw)),
            fails(0x921, Cmp::Exact),
        ),
        (
            "ObjectChangeAuth in lockout, HMAC session",
            k(change_auth(&hmac_empty)),
            fails(0x921, Cmp::Exact),
        ),
        (
            "ObjectChangeAuth in lockout, policy session without authValue",
            k(change_auth(&policy_empty)),
            fails(0x99D, Cmp::Exact),
        ),
        (
            "Sign in lockout, policy session without authValue",
            k(with_policy(0x15D, &[key], ps, &sign_params)),
            fails(0x99D, Cmp::Exact),
        ),
        (
            "Duplicate in lockout, password session",
            k(cmd(0x14B, &[dupkey, null], true, &dup_params)),
            fails(0x921, Cmp::Exact),
        ),
        (
            "DictionaryAttackLockReset",
            k(cmd(0x139, &[lockout], true, &[])),
            ok(Cmp::Exact),
        ),
        // Three transient slots: the persistent key needs one to be used.
        (
            "FlushContext duplicable key",
            k(flush(dupkey)),
            ok(Cmp::Exact),
        ),
        (
            "EvictControl remove",
            k(cmd(
                0x120,
                &[owner, persistent],
                true,
                &persistent.to_be_bytes(),
            )),
            ok(Cmp::Exact),
        ),
        ("FlushContext key", k(flush(key)), ok(Cmp::Exact)),
        ("FlushContext HMAC session", k(flush(hs)), ok(Cmp::Exact)),
        // 3. and 4. *_STCLEAR locks and the global lock.
        (
            "define READ_STCLEAR|WRITE_STCLEAR index",
            k(define(nv_st, owner_rw | write_stclear | read_stclear, &[])),
            ok(Cmp::Exact),
        ),
        ("NV_Write it", k(nv_write(nv_st)), ok(Cmp::Exact)),
        (
            "NV_WriteLock",
            k(cmd(0x138, &[owner, nv_st], true, &[])),
            ok(Cmp::Exact),
        ),
        (
            "NV_ReadLock",
            k(cmd(0x14F, &[owner, nv_st], true, &[])),
            ok(Cmp::Exact),
        ),
        (
            "define GLOBALLOCK index",
            k(define(nv_g, owner_rw | global, &[])),
            ok(Cmp::Exact),
        ),
        (
            "NV_GlobalWriteLock",
            k(cmd(0x132, &[owner], true, &[])),
            ok(Cmp::Exact),
        ),
        (
            "define GLOBALLOCK index after the lock",
            k(define(nv_g2, owner_rw | global, &[])),
            ok(Cmp::Exact),
        ),
        (
            "define plain index after the lock",
            k(define(nv_plain, owner_rw, &[])),
            ok(Cmp::Exact),
        ),
        (
            "NV_Write GLOBALLOCK index",
            k(nv_write(nv_g)),
            fails(0x148, Cmp::Exact),
        ),
        (
            "NV_Write later GLOBALLOCK index",
            k(nv_write(nv_g2)),
            ok(Cmp::Exact),
        ),
        (
            "NV_Write plain index",
            k(nv_write(nv_plain)),
            ok(Cmp::Exact),
        ),
        (
            "NV_ReadPublic later GLOBALLOCK index",
            k(read_public(nv_g2)),
            ok(Cmp::Exact),
        ),
        (
            "NV_Write write-locked",
            k(nv_write(nv_st)),
            fails(0x148, Cmp::Exact),
        ),
        (
            "NV_Read read-locked",
            k(nv_read(nv_st)),
            fails(0x148, Cmp::Exact),
        ),
        (
            "Shutdown(STATE)",
            k(cmd(0x145, &[], false, &[0, 1])),
            ok(Cmp::Exact),
        ),
    ];
    // Phase 2: TPM Resume (Startup(STATE)): every lock stays.
    let phase2: Vec<(&str, Build, Outcome)> = vec![
        (
            "Startup(STATE)",
            k(cmd(0x144, &[], false, &[0, 1])),
            ok(Cmp::Exact),
        ),
        (
            "resume: NV_Write write-locked",
            k(nv_write(nv_st)),
            fails(0x148, Cmp::Exact),
        ),
        (
            "resume: NV_Read read-locked",
            k(nv_read(nv_st)),
            fails(0x148, Cmp::Exact),
        ),
        (
            "resume: NV_Write GLOBALLOCK",
            k(nv_write(nv_g)),
            fails(0x148, Cmp::Exact),
        ),
        (
            "resume: NV_Write later GLOBALLOCK",
            k(nv_write(nv_g2)),
            ok(Cmp::Exact),
        ),
        (
            "resume: NV_ReadPublic stclear index",
            k(read_public(nv_st)),
            ok(Cmp::Exact),
        ),
        (
            "resume: NV_ReadPublic GLOBALLOCK",
            k(read_public(nv_g)),
            ok(Cmp::Exact),
        ),
        (
            "Shutdown(STATE)",
            k(cmd(0x145, &[], false, &[0, 1])),
            ok(Cmp::Exact),
        ),
    ];
    // Phase 3: TPM Restart (Startup(CLEAR) after Shutdown(STATE)): the locks go.
    let phase3: Vec<(&str, Build, Outcome)> = vec![
        (
            "Startup(CLEAR)",
            k(cmd(0x144, &[], false, &[0, 0])),
            ok(Cmp::Exact),
        ),
        (
            "restart: NV_Write stclear",
            k(nv_write(nv_st)),
            ok(Cmp::Exact),
        ),
        (
            "restart: NV_Read stclear",
            k(nv_read(nv_st)),
            ok(Cmp::Exact),
        ),
        (
            "restart: NV_Write GLOBALLOCK",
            k(nv_write(nv_g)),
            ok(Cmp::Exact),
        ),
        (
            "restart: NV_Write later GLOBALLOCK",
            k(nv_write(nv_g2)),
            ok(Cmp::Exact),
        ),
        (
            "restart: NV_ReadPublic GLOBALLOCK",
            k(read_public(nv_g2)),
            ok(Cmp::Exact),
        ),
        // 5. cpHash and nameHash share one slot.
        ("StartAuthSession policy", k(start(1)), ok(Cmp::Len)),
        (
            "PolicyNameHash",
            k(pol(0x170, &b2(&[1; 32]))),
            ok(Cmp::Exact),
        ),
        (
            "PolicyNameHash again",
            k(pol(0x170, &b2(&[1; 32]))),
            fails(0x151, Cmp::Exact),
        ),
        (
            "PolicyCpHash after nameHash",
            k(pol(0x16E, &b2(&[2; 32]))),
            fails(0x151, Cmp::Exact),
        ),
        ("PolicyRestart", k(pol(0x180, &[])), ok(Cmp::Exact)),
        ("PolicyCpHash", k(pol(0x16E, &b2(&[2; 32]))), ok(Cmp::Exact)),
        (
            "PolicyCpHash same",
            k(pol(0x16E, &b2(&[2; 32]))),
            ok(Cmp::Exact),
        ),
        (
            "PolicyCpHash other",
            k(pol(0x16E, &b2(&[3; 32]))),
            fails(0x151, Cmp::Exact),
        ),
        (
            "PolicyNameHash after cpHash",
            k(pol(0x170, &b2(&[1; 32]))),
            fails(0x151, Cmp::Exact),
        ),
        ("PolicyRestart", k(pol(0x180, &[])), ok(Cmp::Exact)),
        // 6. PolicyPCR, then the PCRs change.
        ("PCR_Extend 10", k(extend10(0x0A)), ok(Cmp::Exact)),
        (
            "define index with PolicyPCR",
            k(define(nv_pcr, own_pol, &policy_pcr)),
            ok(Cmp::Exact),
        ),
        ("NV_Write it", k(nv_write(nv_pcr)), ok(Cmp::Exact)),
        ("PolicyPCR", k(policy_pcr_cmd.clone()), ok(Cmp::Exact)),
        (
            "NV_Read under PolicyPCR",
            k(with_policy(0x14E, &[nv_pcr, nv_pcr], ps, &[0, 8, 0, 0])),
            ok(Cmp::Len),
        ),
        ("PolicyPCR again", k(policy_pcr_cmd.clone()), ok(Cmp::Exact)),
        ("PCR_Extend 10 again", k(extend10(0x0B)), ok(Cmp::Exact)),
        (
            "NV_Read after the PCRs changed",
            k(with_policy(0x14E, &[nv_pcr, nv_pcr], ps, &[0, 8, 0, 0])),
            fails(0x128, Cmp::Exact),
        ),
        (
            "PolicyPCR after the change",
            k(policy_pcr_cmd.clone()),
            fails(0x128, Cmp::Exact),
        ),
        ("PolicyRestart", k(pol(0x180, &[])), ok(Cmp::Exact)),
        (
            "PolicyPCR after restart",
            k(policy_pcr_cmd.clone()),
            ok(Cmp::Exact),
        ),
        ("FlushContext policy session", k(flush(ps)), ok(Cmp::Exact)),
        // 7. NV_Certify without a signing key.
        (
            "NV_Certify, NULL key",
            k(nv_certify_null(&[0, 0x10], 8)),
            ok(Cmp::Len),
        ),
        (
            "NV_Certify, NULL key with a scheme",
            k(nv_certify_null(&[0, 0x18, 0, 0x0B], 8)),
            ok(Cmp::Len),
        ),
        (
            "NV_Certify digest, NULL key",
            k(nv_certify_null(&[0, 0x10], 0)),
            ok(Cmp::Len),
        ),
        (
            "Quote, NULL key",
            k(cmd(
                0x158,
                &[null],
                true,
                &[&b2(b"q")[..], &[0, 0x10], &sel10].concat(),
            )),
            fails(0x2D2, Cmp::Len),
        ),
        (
            "Quote, NULL key with a scheme",
            k(cmd(
                0x158,
                &[null],
                true,
                &[&b2(b"q")[..], &[0, 0x18, 0, 0x0B], &sel10].concat(),
            )),
            fails(0x2D2, Cmp::Len),
        ),
        (
            "GetTime, NULL key",
            k(two_pw(
                0x14C,
                &[0x4000_000B, null],
                &[&b2(b"q")[..], &[0, 0x10]].concat(),
            )),
            ok(Cmp::Len),
        ),
        (
            "CreatePrimary storage key",
            k(cmd(0x131, &[owner], true, &ecc_primary_params())),
            ok(Cmp::Len),
        ),
        (
            "CertifyCreation, NULL key",
            Box::new(move |prev: &History| {
                // creationHash and creationTicket of the CreatePrimary response.
                let r = &prev[prev.len() - 1];
                let size = |at: usize| usize::from(u16::from_be_bytes([r[at], r[at + 1]]));
                let mut at = 18;
                at += 2 + size(at); // outPublic
                at += 2 + size(at); // creationData
                let hash_at = at;
                at += 2 + size(at);
                let ticket_end = at + 6 + 2 + size(at + 6);
                let p = [
                    &b2(b"q")[..],
                    &r[hash_at..at],
                    &[0, 0x10],
                    &r[at..ticket_end],
                ]
                .concat();
                cmd(0x14A, &[null, primary], true, &p)
            }),
            ok(Cmp::Len),
        ),
        (
            "Certify, NULL key",
            k(two_pw(
                0x148,
                &[primary, null],
                &[&b2(b"q")[..], &[0, 0x10]].concat(),
            )),
            ok(Cmp::Len),
        ),
        // Credential blobs share duplication's outer wrapper: its failure codes.
        (
            "ReadPublic storage key",
            k(cmd(0x173, &[primary], false, &[])),
            ok(Cmp::Len),
        ),
        (
            "MakeCredential to the storage key",
            Box::new(move |prev: &History| {
                let name = field(&prev[prev.len() - 1], 10, 1);
                cmd(
                    0x168,
                    &[primary],
                    false,
                    &[&b2(&[0x42; 16])[..], &name].concat(),
                )
            }),
            ok(Cmp::Len),
        ),
        ("ActivateCredential", activate(0), ok(Cmp::Len)),
        (
            "ActivateCredential, tampered blob",
            activate(1),
            fails(0x1DF, Cmp::Exact),
        ),
        (
            "ActivateCredential, blob cut inside its integrity field",
            activate(2),
            fails(0x1DA, Cmp::Exact),
        ),
        (
            "ActivateCredential, blob of its integrity field only",
            activate(3),
            fails(0x1DF, Cmp::Exact),
        ),
    ];
    let mut report = compare(sim.port, sw.port, &phase1);
    sim_power_cycle(sim.port);
    swtpm_power_cycle(sw.port);
    report.extend(compare(sim.port, sw.port, &phase2));
    sim_power_cycle(sim.port);
    swtpm_power_cycle(sw.port);
    report.extend(compare(sim.port, sw.port, &phase3));
    report.assert_clean("conformance_fixes_match_swtpm", 70);
}

/// A command with `n` empty-password authorisations (TPM_RS_PW, continueSession).
fn cmd_pws(cc: u32, handles: &[u32], n: usize, params: &[u8]) -> Vec<u8> {
    cmd_area(cc, handles, &vec![(0x4000_0009, 0x01); n], params)
}

/// A command whose session area lists `sessions` (handle, attributes), each with a 16-byte
/// nonce (none for TPM_RS_PW) and an empty HMAC: right for password sessions with an empty
/// password and for unbound, unsalted sessions used only for audit (their HMAC key is empty).
fn cmd_area(cc: u32, handles: &[u32], sessions: &[(u32, u8)], params: &[u8]) -> Vec<u8> {
    let mut c = cmd(cc, handles, false, &[]);
    c[1] = 0x02;
    let mut area = Vec::new();
    for &(h, attrs) in sessions {
        area.extend_from_slice(&h.to_be_bytes());
        let nonce: &[u8] = if h == 0x4000_0009 { &[] } else { &[3; 16] };
        area.extend_from_slice(&vtpm_sim::wire::tpm2b(nonce));
        area.extend_from_slice(&[attrs, 0, 0]);
    }
    c.extend_from_slice(&(area.len() as u32).to_be_bytes());
    c.extend_from_slice(&area);
    c.extend_from_slice(params);
    let len = c.len() as u32;
    c[2..6].copy_from_slice(&len.to_be_bytes());
    c
}

/// Command audit (SetCommandCodeAuditStatus, GetCommandAuditDigest, TPM_CAP_AUDIT_COMMANDS)
/// and audit sessions (audit / auditExclusive / auditReset, GetSessionAuditDigest) against
/// libtpms, failing cases included.
#[test]
fn audit_codes_match_swtpm() {
    let dir = scratch("diff-audit");
    let sw = Swtpm::start(&dir.join("swtpm"));
    std::fs::create_dir_all(dir.join("sim")).unwrap();
    let sim = Sim::start(&dir.join("sim"), None);
    let k = |b: Vec<u8>| Box::new(move |_: &History| b.clone()) as Build;
    let b2 = vtpm_sim::wire::tpm2b;
    let (owner, endorsement, null) = (0x4000_0001u32, 0x4000_000Bu32, 0x4000_0007u32);
    let key = 0x8000_0000u32;
    let (hmac, policy, hmac2) = (0x0200_0000u32, 0x0300_0001u32, 0x0200_0002u32);
    let list = |ccs: &[u32]| {
        let mut l = (ccs.len() as u32).to_be_bytes().to_vec();
        for c in ccs {
            l.extend_from_slice(&c.to_be_bytes());
        }
        l
    };
    let set_status = |auth: u32, alg: u16, set: &[u32], clear: &[u32]| {
        let p = [&alg.to_be_bytes()[..], &list(set), &list(clear)].concat();
        cmd(0x140, &[auth], true, &p)
    };
    let cmd_digest = || {
        cmd_pws(
            0x133,
            &[endorsement, key],
            2,
            &[&b2(b"q")[..], &[0, 0x10]].concat(),
        )
    };
    let session_digest = |s: u32| {
        cmd_pws(
            0x14D,
            &[endorsement, key, s],
            2,
            &[&b2(b"q")[..], &[0, 0x10]].concat(),
        )
    };
    let start = |kind: u8| {
        cmd(
            0x176,
            &[null, null],
            false,
            &[&b2(&[5; 16])[..], &[0, 0, kind], &[0, 0x10], &[0, 0x0B]].concat(),
        )
    };
    let random_in = |sessions: &[(u32, u8)]| cmd_area(0x17B, &[], sessions, &[0, 8]);
    // GetRandom with the audit session and a wrong (non-empty) HMAC.
    let random_bad_hmac = |s: u32| {
        let area = [
            &s.to_be_bytes()[..],
            &b2(&[3; 16]),
            &[0x81],
            &b2(&[0x55; 32]),
        ]
        .concat();
        let mut c = cmd(0x17B, &[], false, &[]);
        c[1] = 0x02;
        c.extend_from_slice(&(area.len() as u32).to_be_bytes());
        c.extend_from_slice(&area);
        c.extend_from_slice(&[0, 8]);
        let len = c.len() as u32;
        c[2..6].copy_from_slice(&len.to_be_bytes());
        c
    };
    let audit_caps = cmd(0x17A, &[], false, &[0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 16]);
    let mut cases: Vec<(&str, Build, Outcome)> = vec![
        (
            "Startup",
            k(cmd(0x144, &[], false, &[0, 0])),
            ok(Cmp::Exact),
        ),
        (
            "CreatePrimary signing key",
            k(cmd(0x131, &[owner], true, &ecc_child_params())),
            ok(Cmp::Len),
        ),
        (
            "audited commands as manufactured",
            k(audit_caps.clone()),
            ok(Cmp::Exact),
        ),
        ("GetCommandAuditDigest fresh", k(cmd_digest()), ok(Cmp::Len)),
        (
            "SetCommandCodeAuditStatus endorsement",
            k(set_status(endorsement, 0x10, &[0x17B], &[])),
            fails(0x184, Cmp::Exact),
        ),
        (
            "SetCommandCodeAuditStatus bad hash",
            k(set_status(owner, 0x99, &[], &[])),
            fails(0x1C3, Cmp::Exact),
        ),
        (
            "SetCommandCodeAuditStatus new hash and list",
            k(set_status(owner, 0x04, &[0x17B], &[])),
            fails(0x1C4, Cmp::Exact),
        ),
        (
            "SetCommandCodeAuditStatus list too long",
            k(set_status(owner, 0x10, &[0x17B; 300], &[])),
            fails(0x2D5, Cmp::Exact),
        ),
        (
            "SetCommandCodeAuditStatus truncated",
            k(cmd(0x140, &[owner], true, &[0, 0x10, 0, 0, 0, 1])),
            fails(0x2DA, Cmp::Exact),
        ),
        (
            "audit GetRandom and an unimplemented code",
            k(set_status(owner, 0x10, &[0x17B, 0x1FF], &[])),
            ok(Cmp::Exact),
        ),
        ("audited commands", k(audit_caps.clone()), ok(Cmp::Exact)),
        (
            "GetRandom audited",
            k(cmd(0x17B, &[], false, &[0, 8])),
            ok(Cmp::Len),
        ),
        (
            "GetCommandAuditDigest unsigned",
            k(cmd_pws(
                0x133,
                &[endorsement, null],
                2,
                &[&b2(b"q")[..], &[0, 0x10]].concat(),
            )),
            ok(Cmp::Len),
        ),
        ("GetCommandAuditDigest", k(cmd_digest()), ok(Cmp::Len)),
        (
            "GetCommandAuditDigest no key",
            k(cmd_pws(
                0x133,
                &[endorsement, 0x8000_0001],
                2,
                &[0, 0, 0, 0x10],
            )),
            fails(0x911, Cmp::Exact),
        ),
        (
            "GetCommandAuditDigest owner",
            k(cmd_pws(0x133, &[owner, key], 2, &[0, 0, 0, 0x10])),
            fails(0x184, Cmp::Exact),
        ),
        (
            "GetCommandAuditDigest audit on a password",
            k(cmd_area(
                0x133,
                &[endorsement, key],
                &[(0x4000_0009, 0x81), (0x4000_0009, 0x01)],
                &[0, 0, 0, 0x10],
            )),
            fails(0x982, Cmp::Exact),
        ),
        (
            "audit hash SHA-1",
            k(set_status(owner, 0x04, &[], &[])),
            ok(Cmp::Exact),
        ),
        (
            "GetRandom audited (SHA-1)",
            k(cmd(0x17B, &[], false, &[0, 8])),
            ok(Cmp::Len),
        ),
        ("GetCommandAuditDigest SHA-1", k(cmd_digest()), ok(Cmp::Len)),
        (
            "stop auditing GetRandom (and try SetCommandCodeAuditStatus)",
            k(set_status(owner, 0x10, &[], &[0x17B, 0x140])),
            ok(Cmp::Exact),
        ),
        (
            "audited commands after clear",
            k(audit_caps),
            ok(Cmp::Exact),
        ),
        (
            "GetCommandAuditDigest cleared",
            k(cmd_digest()),
            ok(Cmp::Len),
        ),
        ("StartAuthSession HMAC", k(start(0)), ok(Cmp::Len)),
        ("StartAuthSession policy", k(start(1)), ok(Cmp::Len)),
        ("StartAuthSession HMAC 2", k(start(0)), ok(Cmp::Len)),
        (
            "GetSessionAuditDigest before any audit",
            k(session_digest(hmac)),
            fails(0x38A, Cmp::Exact),
        ),
        (
            "GetSessionAuditDigest policy session",
            k(session_digest(policy)),
            fails(0x384, Cmp::Exact),
        ),
        (
            "GetRandom audit session",
            k(random_in(&[(hmac, 0x81)])),
            ok(Cmp::Len),
        ),
        (
            "GetSessionAuditDigest",
            k(session_digest(hmac)),
            ok(Cmp::Len),
        ),
        (
            "GetRandom audit session, wrong HMAC",
            k(random_bad_hmac(hmac)),
            fails(0x9A2, Cmp::Exact),
        ),
        (
            "GetRandom auditExclusive after another command",
            k(random_in(&[(hmac, 0x83)])),
            fails(0x121, Cmp::Exact),
        ),
        (
            "GetRandom policy session as audit",
            k(random_in(&[(policy, 0x81)])),
            fails(0x982, Cmp::Exact),
        ),
        (
            "GetRandom two audit sessions",
            k(random_in(&[(hmac, 0x81), (hmac2, 0x81)])),
            fails(0xA82, Cmp::Exact),
        ),
        (
            "GetRandom outside the audit",
            k(cmd(0x17B, &[], false, &[0, 8])),
            ok(Cmp::Len),
        ),
        (
            "GetRandom auditExclusive, no longer exclusive",
            k(random_in(&[(hmac, 0x83)])),
            fails(0x121, Cmp::Exact),
        ),
        (
            "GetRandom auditReset makes it exclusive",
            k(random_in(&[(hmac, 0x87)])),
            ok(Cmp::Len),
        ),
        (
            "GetRandom auditExclusive again",
            k(random_in(&[(hmac, 0x83)])),
            ok(Cmp::Len),
        ),
        (
            "GetSessionAuditDigest not an audit session",
            k(session_digest(hmac2)),
            fails(0x38A, Cmp::Exact),
        ),
        (
            "GetSessionAuditDigest after reset",
            k(session_digest(hmac)),
            ok(Cmp::Len),
        ),
        (
            "GetSessionAuditDigest unsigned",
            k(cmd_pws(
                0x14D,
                &[endorsement, null, hmac],
                2,
                &[&b2(b"q")[..], &[0, 0x10]].concat(),
            )),
            ok(Cmp::Len),
        ),
        (
            "FlushContext audit session",
            k(cmd(0x165, &[], false, &hmac.to_be_bytes())),
            ok(Cmp::Exact),
        ),
        (
            "GetSessionAuditDigest flushed",
            k(session_digest(hmac)),
            fails(0x912, Cmp::Exact),
        ),
    ];
    // TPMA_CC of the audit commands.
    for cc in [0x133u32, 0x140, 0x14D] {
        let p = [&[0, 0, 0, 2][..], &cc.to_be_bytes(), &[0, 0, 0, 1]].concat();
        cases.push((
            "GetCapability TPMA_CC",
            k(cmd(0x17A, &[], false, &p)),
            ok(Cmp::Exact),
        ));
    }
    let report = compare(sim.port, sw.port, &cases);
    report.assert_clean("audit_codes_match_swtpm", 29);
}

/// PolicyDuplicationSelect, PolicyNvWritten, PolicyCounterTimer, PolicyPhysicalPresence and
/// PolicyTemplate against libtpms: digests (exact), clashes in the cpHash slot, numbered codes,
/// and the conditions at use (a written index, no physical presence).
#[test]
fn more_policy_codes_match_swtpm() {
    let dir = scratch("diff-policy-more");
    let sw = Swtpm::start(&dir.join("swtpm"));
    std::fs::create_dir_all(dir.join("sim")).unwrap();
    let sim = Sim::start(&dir.join("sim"), None);
    let k = |b: Vec<u8>| Box::new(move |_: &History| b.clone()) as Build;
    let b2 = vtpm_sim::wire::tpm2b;
    let (owner, trial, ps) = (0x4000_0001u32, 0x0300_0000u32, 0x0300_0001u32);
    let start = |kind: u8| {
        cmd(
            0x176,
            &[0x4000_0007, 0x4000_0007],
            false,
            &[&b2(&[5; 16])[..], &[0, 0, kind], &[0, 0x10], &[0, 0x0B]].concat(),
        )
    };
    let on = |s: u32, cc: u32, params: &[u8]| cmd(cc, &[s], false, params);
    let (obj, parent) = ([0x22u8; 34], [0x33u8; 34]);
    let dup_select = |s: u32, include: u8| {
        on(
            s,
            0x188,
            &[&b2(&obj)[..], &b2(&parent), &[include]].concat(),
        )
    };
    let counter_timer = |s: u32, operand: &[u8], offset: u16, op: u16| {
        on(
            s,
            0x16D,
            &[&b2(operand)[..], &offset.to_be_bytes(), &op.to_be_bytes()].concat(),
        )
    };
    let digest = |s: u32| on(s, 0x189, &[]);
    let restart = |s: u32| on(s, 0x180, &[]);
    // NV_DefineSpace (authRead|authWrite|policyWrite... see below) with the authPolicy from
    // the PolicyGetDigest `back` steps ago.
    let define = |index: u32, back: usize| {
        Box::new(move |prev: &History| {
            let d = &prev[prev.len() - back];
            let policy = if d.len() >= 44 { &d[12..44] } else { &[][..] };
            let mut n = index.to_be_bytes().to_vec();
            n.extend_from_slice(&[0x00, 0x0B]);
            // policyWrite | authRead | ownerRead
            n.extend_from_slice(&((1u32 << 3) | (1 << 18) | (1 << 17)).to_be_bytes());
            n.extend_from_slice(&b2(policy));
            n.extend_from_slice(&8u16.to_be_bytes());
            cmd(0x12A, &[owner], true, &[&b2(b"")[..], &b2(&n)].concat())
        }) as Build
    };
    let (nv_written, nv_pp) = (0x0150_0011u32, 0x0150_0012u32);
    let nv_write = |index: u32| {
        with_policy_password(
            0x137,
            &[index, index],
            ps,
            b"",
            &[&b2(&[7; 8])[..], &[0, 0]].concat(),
        )
    };
    let cases: Vec<(&str, Build, Outcome)> = vec![
        (
            "Startup",
            k(cmd(0x144, &[], false, &[0, 0])),
            ok(Cmp::Exact),
        ),
        ("StartAuthSession trial", k(start(3)), ok(Cmp::Len)),
        ("StartAuthSession policy", k(start(1)), ok(Cmp::Len)),
        (
            "PolicyDuplicationSelect",
            k(dup_select(trial, 1)),
            ok(Cmp::Exact),
        ),
        ("its digest", k(digest(trial)), ok(Cmp::Exact)),
        (
            "PolicyDuplicationSelect twice",
            k(dup_select(trial, 1)),
            fails(0x151, Cmp::Exact),
        ),
        ("restart", k(restart(trial)), ok(Cmp::Exact)),
        (
            "PolicyCommandCode then PolicyDuplicationSelect",
            k(on(trial, 0x16C, &0x14Bu32.to_be_bytes())),
            ok(Cmp::Exact),
        ),
        (
            "... refused",
            k(dup_select(trial, 1)),
            fails(0x143, Cmp::Exact),
        ),
        ("restart 2", k(restart(trial)), ok(Cmp::Exact)),
        (
            "includeObject 2",
            k(dup_select(trial, 2)),
            fails(0x3C4, Cmp::Exact),
        ),
        (
            "without the object",
            k(dup_select(trial, 0)),
            ok(Cmp::Exact),
        ),
        ("its digest 2", k(digest(trial)), ok(Cmp::Exact)),
        (
            "PolicyNameHash after PolicyDuplicationSelect",
            k(on(trial, 0x170, &b2(&[1; 32]))),
            fails(0x151, Cmp::Exact),
        ),
        ("restart 3", k(restart(trial)), ok(Cmp::Exact)),
        (
            "PolicyNvWritten YES",
            k(on(trial, 0x18F, &[1])),
            ok(Cmp::Exact),
        ),
        (
            "PolicyNvWritten NO after YES",
            k(on(trial, 0x18F, &[0])),
            fails(0x1C4, Cmp::Exact),
        ),
        (
            "PolicyNvWritten 2",
            k(on(trial, 0x18F, &[2])),
            fails(0x1C4, Cmp::Exact),
        ),
        (
            "PolicyNvWritten YES again",
            k(on(trial, 0x18F, &[1])),
            ok(Cmp::Exact),
        ),
        ("its digest 3", k(digest(trial)), ok(Cmp::Exact)),
        ("restart 4", k(restart(trial)), ok(Cmp::Exact)),
        (
            "PolicyCounterTimer (trial)",
            k(counter_timer(trial, &[0xFF; 8], 0, 0x0005)),
            ok(Cmp::Exact),
        ),
        (
            "PolicyPhysicalPresence",
            k(on(trial, 0x187, &[])),
            ok(Cmp::Exact),
        ),
        ("its digest 4", k(digest(trial)), ok(Cmp::Exact)),
        (
            "PolicyCounterTimer bad operation",
            k(counter_timer(trial, &[1], 0, 0x000C)),
            fails(0x3C4, Cmp::Exact),
        ),
        ("restart 5", k(restart(trial)), ok(Cmp::Exact)),
        (
            "PolicyTemplate short",
            k(on(trial, 0x190, &b2(&[4; 20]))),
            fails(0x1D5, Cmp::Exact),
        ),
        (
            "PolicyTemplate",
            k(on(trial, 0x190, &b2(&[4; 32]))),
            ok(Cmp::Exact),
        ),
        (
            "PolicyTemplate same",
            k(on(trial, 0x190, &b2(&[4; 32]))),
            ok(Cmp::Exact),
        ),
        (
            "PolicyTemplate other",
            k(on(trial, 0x190, &b2(&[5; 32]))),
            fails(0x1C4, Cmp::Exact),
        ),
        (
            "PolicyCpHash after PolicyTemplate",
            k(on(trial, 0x16E, &b2(&[4; 32]))),
            fails(0x151, Cmp::Exact),
        ),
        ("its digest 5", k(digest(trial)), ok(Cmp::Exact)),
        ("restart 6", k(restart(trial)), ok(Cmp::Exact)),
        (
            "PolicyCpHash then PolicyTemplate",
            k(on(trial, 0x16E, &b2(&[4; 32]))),
            ok(Cmp::Exact),
        ),
        (
            "... refused",
            k(on(trial, 0x190, &b2(&[4; 32]))),
            fails(0x151, Cmp::Exact),
        ),
        // Real sessions: PolicyCounterTimer compares with TPMS_TIME_INFO.
        (
            "time < 2^64-1",
            k(counter_timer(ps, &[0xFF; 8], 0, 0x0005)),
            ok(Cmp::Exact),
        ),
        (
            "time > 2^64-1",
            k(counter_timer(ps, &[0xFF; 8], 0, 0x0003)),
            fails(0x126, Cmp::Exact),
        ),
        (
            "past the end of TPMS_TIME_INFO",
            k(counter_timer(ps, &[0; 8], 20, 0x0000)),
            fails(0x8D, Cmp::Exact),
        ),
        (
            "offset beyond TPMS_TIME_INFO",
            k(counter_timer(ps, &[], 30, 0x0000)),
            fails(0x2C4, Cmp::Exact),
        ),
        ("digest after counter/timer", k(digest(ps)), ok(Cmp::Exact)),
        // An index writable once: PolicyNvWritten(NO) + PolicyPassword.
        ("restart 7", k(restart(trial)), ok(Cmp::Exact)),
        (
            "trial PolicyNvWritten NO",
            k(on(trial, 0x18F, &[0])),
            ok(Cmp::Exact),
        ),
        (
            "trial PolicyPassword",
            k(on(trial, 0x18C, &[])),
            ok(Cmp::Exact),
        ),
        ("write-once digest", k(digest(trial)), ok(Cmp::Exact)),
        (
            "NV_DefineSpace write-once",
            define(nv_written, 1),
            ok(Cmp::Exact),
        ),
        ("restart policy", k(restart(ps)), ok(Cmp::Exact)),
        ("PolicyNvWritten NO", k(on(ps, 0x18F, &[0])), ok(Cmp::Exact)),
        ("PolicyPassword", k(on(ps, 0x18C, &[])), ok(Cmp::Exact)),
        ("first NV_Write", k(nv_write(nv_written)), ok(Cmp::Len)),
        (
            "PolicyNvWritten NO again",
            k(on(ps, 0x18F, &[0])),
            ok(Cmp::Exact),
        ),
        (
            "PolicyPassword again",
            k(on(ps, 0x18C, &[])),
            ok(Cmp::Exact),
        ),
        (
            "second NV_Write refused",
            k(nv_write(nv_written)),
            fails(0x99D, Cmp::Exact),
        ),
        // Physical presence is never asserted.
        ("restart 8", k(restart(trial)), ok(Cmp::Exact)),
        (
            "trial PolicyPhysicalPresence",
            k(on(trial, 0x187, &[])),
            ok(Cmp::Exact),
        ),
        (
            "trial PolicyPassword 2",
            k(on(trial, 0x18C, &[])),
            ok(Cmp::Exact),
        ),
        ("PP digest", k(digest(trial)), ok(Cmp::Exact)),
        ("NV_DefineSpace PP", define(nv_pp, 1), ok(Cmp::Exact)),
        ("restart policy 2", k(restart(ps)), ok(Cmp::Exact)),
        (
            "PolicyPhysicalPresence",
            k(on(ps, 0x187, &[])),
            ok(Cmp::Exact),
        ),
        ("PolicyPassword 3", k(on(ps, 0x18C, &[])), ok(Cmp::Exact)),
        (
            "NV_Write without physical presence",
            k(nv_write(nv_pp)),
            fails(0x990, Cmp::Exact),
        ),
    ];
    let mut cases = cases;
    for cc in [0x16Du32, 0x187, 0x188, 0x18F, 0x190] {
        let p = [&[0, 0, 0, 2][..], &cc.to_be_bytes(), &[0, 0, 0, 1]].concat();
        cases.push((
            "GetCapability TPMA_CC",
            k(cmd(0x17A, &[], false, &p)),
            ok(Cmp::Exact),
        ));
    }
    let report = compare(sim.port, sw.port, &cases);
    report.assert_clean("more_policy_codes_match_swtpm", 50);
}

/// ClockSet, ClockRateAdjust, SetPrimaryPolicy, ChangeEPS, ChangePPS, NV_UndefineSpaceSpecial
/// and ECC_Parameters against libtpms, failing cases included.
#[test]
fn admin_codes_match_swtpm() {
    let dir = scratch("diff-admin");
    let sw = Swtpm::start(&dir.join("swtpm"));
    std::fs::create_dir_all(dir.join("sim")).unwrap();
    let sim = Sim::start(&dir.join("sim"), None);
    let k = |b: Vec<u8>| Box::new(move |_: &History| b.clone()) as Build;
    let b2 = vtpm_sim::wire::tpm2b;
    let (owner, endorsement, platform, null) = (
        0x4000_0001u32,
        0x4000_000Bu32,
        0x4000_000Cu32,
        0x4000_0007u32,
    );
    let (trial, ps) = (0x0300_0000u32, 0x0300_0001u32);
    let start = |kind: u8| {
        cmd(
            0x176,
            &[null, null],
            false,
            &[&b2(&[5; 16])[..], &[0, 0, kind], &[0, 0x10], &[0, 0x0B]].concat(),
        )
    };
    let clock_set = |auth: u32, t: u64| cmd(0x128, &[auth], true, &t.to_be_bytes());
    let rate = |auth: u32, r: i8| cmd(0x130, &[auth], true, &[r as u8]);
    let primary_policy = |auth: u32, policy: &[u8], alg: u16| {
        cmd(
            0x12E,
            &[auth],
            true,
            &[&b2(policy)[..], &alg.to_be_bytes()].concat(),
        )
    };
    let (nv_special, nv_plain) = (0x0150_0021u32, 0x0150_0022u32);
    // NV_DefineSpace by the platform with the authPolicy of the PolicyGetDigest one step back.
    let define = |index: u32, attrs: u32| {
        Box::new(move |prev: &History| {
            let d = &prev[prev.len() - 1];
            let policy = if d.len() >= 44 { &d[12..44] } else { &[][..] };
            let n = [
                &index.to_be_bytes()[..],
                &[0x00, 0x0B],
                &attrs.to_be_bytes(),
                &b2(policy),
                &8u16.to_be_bytes(),
            ]
            .concat();
            cmd(0x12A, &[platform], true, &[&b2(b"")[..], &b2(&n)].concat())
        }) as Build
    };
    // ppwrite | ppread | authread | platformCreate (| policyDelete).
    let base = (1u32 << 0) | (1 << 16) | (1 << 18) | (1 << 30);
    let special = |index: u32| {
        cmd_area(
            0x11F,
            &[index, platform],
            &[(ps, 0x01), (0x4000_0009, 0x01)],
            &[],
        )
    };
    let read_public = |h: u32| cmd(0x173, &[h], false, &[]);
    let cases: Vec<(&str, Build, Outcome)> = vec![
        (
            "Startup",
            k(cmd(0x144, &[], false, &[0, 0])),
            ok(Cmp::Exact),
        ),
        (
            "ECC_Parameters P-256",
            k(cmd(0x178, &[], false, &[0, 3])),
            ok(Cmp::Exact),
        ),
        (
            "ECC_Parameters bad curve",
            k(cmd(0x178, &[], false, &[0, 0x99])),
            fails(0x1E6, Cmp::Exact),
        ),
        (
            "ECC_Parameters truncated",
            k(cmd(0x178, &[], false, &[0])),
            fails(0x1DA, Cmp::Exact),
        ),
        (
            "ClockSet too far",
            k(clock_set(owner, 0xFFFF_0000_0000_0001)),
            fails(0x1C4, Cmp::Exact),
        ),
        (
            "ClockSet backwards",
            k(clock_set(owner, 0)),
            fails(0x1C4, Cmp::Exact),
        ),
        (
            "ClockSet endorsement",
            k(clock_set(endorsement, 1 << 40)),
            fails(0x184, Cmp::Exact),
        ),
        (
            "ClockSet forward",
            k(clock_set(owner, 1 << 40)),
            ok(Cmp::Exact),
        ),
        (
            "ClockSet platform",
            k(clock_set(platform, (1 << 40) + 1_000_000)),
            ok(Cmp::Exact),
        ),
        ("ReadClock", k(cmd(0x181, &[], false, &[])), ok(Cmp::Len)),
        (
            "ClockRateAdjust 4",
            k(rate(owner, 4)),
            fails(0x1C4, Cmp::Exact),
        ),
        (
            "ClockRateAdjust -4",
            k(rate(owner, -4)),
            fails(0x1C4, Cmp::Exact),
        ),
        ("ClockRateAdjust 1", k(rate(owner, 1)), ok(Cmp::Exact)),
        (
            "ClockRateAdjust -3 platform",
            k(rate(platform, -3)),
            ok(Cmp::Exact),
        ),
        (
            "ClockRateAdjust endorsement",
            k(rate(endorsement, 0)),
            fails(0x184, Cmp::Exact),
        ),
        (
            "SetPrimaryPolicy owner",
            k(primary_policy(owner, &[7; 32], 0x0B)),
            ok(Cmp::Exact),
        ),
        (
            "SetPrimaryPolicy size",
            k(primary_policy(owner, &[7; 20], 0x0B)),
            fails(0x1D5, Cmp::Exact),
        ),
        (
            "SetPrimaryPolicy bad hash",
            k(primary_policy(owner, &[7; 32], 0x99)),
            fails(0x2C3, Cmp::Exact),
        ),
        (
            "SetPrimaryPolicy NULL with a digest",
            k(primary_policy(owner, &[7; 32], 0x10)),
            fails(0x1D5, Cmp::Exact),
        ),
        (
            "SetPrimaryPolicy lockout",
            k(primary_policy(0x4000_000A, &[], 0x10)),
            ok(Cmp::Exact),
        ),
        (
            "SetPrimaryPolicy null handle",
            k(primary_policy(null, &[], 0x10)),
            fails(0x184, Cmp::Exact),
        ),
        (
            "SetPrimaryPolicy owner cleared",
            k(primary_policy(owner, &[], 0x10)),
            ok(Cmp::Exact),
        ),
        (
            "CreatePrimary endorsement",
            k(cmd(0x131, &[endorsement], true, &ecc_child_params())),
            ok(Cmp::Len),
        ),
        (
            "EvictControl endorsement key",
            k(cmd(
                0x120,
                &[owner, 0x8000_0000],
                true,
                &0x8101_0001u32.to_be_bytes(),
            )),
            ok(Cmp::Exact),
        ),
        (
            "ChangeEPS by owner",
            k(cmd(0x124, &[owner], true, &[])),
            fails(0x184, Cmp::Exact),
        ),
        (
            "ChangeEPS",
            k(cmd(0x124, &[platform], true, &[])),
            ok(Cmp::Exact),
        ),
        (
            "loaded EK gone",
            k(read_public(0x8000_0000)),
            fails(0x910, Cmp::Exact),
        ),
        (
            "persistent EK gone",
            k(read_public(0x8101_0001)),
            fails(0x18B, Cmp::Exact),
        ),
        ("StartAuthSession trial", k(start(3)), ok(Cmp::Len)),
        ("StartAuthSession policy", k(start(1)), ok(Cmp::Len)),
        (
            "trial PolicyCommandCode(NV_UndefineSpaceSpecial)",
            k(cmd(0x16C, &[trial], false, &0x11Fu32.to_be_bytes())),
            ok(Cmp::Exact),
        ),
        (
            "trial PolicyPassword",
            k(cmd(0x18C, &[trial], false, &[])),
            ok(Cmp::Exact),
        ),
        (
            "policy digest",
            k(cmd(0x189, &[trial], false, &[])),
            ok(Cmp::Exact),
        ),
        (
            "NV_DefineSpace policyDelete",
            define(nv_special, base | (1 << 10)),
            ok(Cmp::Exact),
        ),
        (
            "policy digest again",
            k(cmd(0x189, &[trial], false, &[])),
            ok(Cmp::Exact),
        ),
        (
            "NV_DefineSpace plain",
            define(nv_plain, base),
            ok(Cmp::Exact),
        ),
        (
            "NV_UndefineSpace policyDelete index",
            k(cmd(0x122, &[platform, nv_special], true, &[])),
            fails(0x282, Cmp::Exact),
        ),
        (
            "NV_UndefineSpaceSpecial with a password",
            k(cmd_pws(0x11F, &[nv_special, platform], 2, &[])),
            fails(0x124, Cmp::Exact),
        ),
        (
            "PolicyCommandCode",
            k(cmd(0x16C, &[ps], false, &0x11Fu32.to_be_bytes())),
            ok(Cmp::Exact),
        ),
        (
            "PolicyPassword",
            k(cmd(0x18C, &[ps], false, &[])),
            ok(Cmp::Exact),
        ),
        (
            "NV_UndefineSpaceSpecial plain index",
            k(special(nv_plain)),
            fails(0x182, Cmp::Exact),
        ),
        // The refused command left the session's digest as it was: start the policy over
        // (running it again on top would extend the digest twice and fail the policy).
        (
            "PolicyRestart",
            k(cmd(0x180, &[ps], false, &[])),
            ok(Cmp::Exact),
        ),
        (
            "PolicyCommandCode 2",
            k(cmd(0x16C, &[ps], false, &0x11Fu32.to_be_bytes())),
            ok(Cmp::Exact),
        ),
        (
            "PolicyPassword 2",
            k(cmd(0x18C, &[ps], false, &[])),
            ok(Cmp::Exact),
        ),
        (
            "NV_UndefineSpaceSpecial",
            k(special(nv_special)),
            ok(Cmp::Len),
        ),
        (
            "index gone",
            k(cmd(0x169, &[nv_special], false, &[])),
            fails(0x18B, Cmp::Exact),
        ),
        (
            "ChangePPS",
            k(cmd(0x125, &[platform], true, &[])),
            ok(Cmp::Exact),
        ),
        (
            "platform index stays",
            k(cmd(0x169, &[nv_plain], false, &[])),
            ok(Cmp::Exact),
        ),
    ];
    let mut cases = cases;
    for cc in [0x11Fu32, 0x124, 0x125, 0x126, 0x128, 0x12E, 0x130, 0x178] {
        let p = [&[0, 0, 0, 2][..], &cc.to_be_bytes(), &[0, 0, 0, 1]].concat();
        cases.push((
            "GetCapability TPMA_CC",
            k(cmd(0x17A, &[], false, &p)),
            ok(Cmp::Exact),
        ));
    }
    let report = compare(sim.port, sw.port, &cases);
    report.assert_clean("admin_codes_match_swtpm", 37);
}

/// PCR_Allocate, PCR_SetAuthValue and PCR_SetAuthPolicy against libtpms (PCRs 20-22 form the
/// one authValue/authPolicy group), failing cases included.
#[test]
fn pcr_admin_codes_match_swtpm() {
    let dir = scratch("diff-pcr-admin");
    let sw = Swtpm::start(&dir.join("swtpm"));
    std::fs::create_dir_all(dir.join("sim")).unwrap();
    let sim = Sim::start(&dir.join("sim"), None);
    let k = |b: Vec<u8>| Box::new(move |_: &History| b.clone()) as Build;
    let b2 = vtpm_sim::wire::tpm2b;
    let (owner, platform) = (0x4000_0001u32, 0x4000_000Cu32);
    // TPML_PCR_SELECTION of (hash, 3-byte select).
    let selection = |banks: &[(u16, [u8; 3])]| {
        let mut p = (banks.len() as u32).to_be_bytes().to_vec();
        for (h, s) in banks {
            p.extend_from_slice(&h.to_be_bytes());
            p.push(3);
            p.extend_from_slice(s);
        }
        p
    };
    let allocate =
        |auth: u32, banks: &[(u16, [u8; 3])]| cmd(0x12B, &[auth], true, &selection(banks));
    let (none, all) = ([0u8; 3], [0xFFu8; 3]);
    // A command with one password authorisation carrying `password`.
    let with_pw = |cc: u32, handles: &[u32], password: &[u8], params: &[u8]| {
        let mut c = cmd(cc, handles, false, &[]);
        c[1] = 0x02;
        let area = [&0x4000_0009u32.to_be_bytes()[..], &[0, 0, 1], &b2(password)].concat();
        c.extend_from_slice(&(area.len() as u32).to_be_bytes());
        c.extend_from_slice(&area);
        c.extend_from_slice(params);
        let len = c.len() as u32;
        c[2..6].copy_from_slice(&len.to_be_bytes());
        c
    };
    let extend = |pcr: u32, password: &[u8]| {
        with_pw(
            0x182,
            &[pcr],
            password,
            &[&[0, 0, 0, 1, 0, 0x0B][..], &[1; 32]].concat(),
        )
    };
    let set_policy = |policy: &[u8], alg: u16, pcr: u32| {
        cmd(
            0x12C,
            &[platform],
            true,
            &[&b2(policy)[..], &alg.to_be_bytes(), &pcr.to_be_bytes()].concat(),
        )
    };
    let cases: Vec<(&str, Build, Outcome)> = vec![
        (
            "Startup",
            k(cmd(0x144, &[], false, &[0, 0])),
            ok(Cmp::Exact),
        ),
        (
            "PCR_SetAuthValue 20",
            k(cmd(0x183, &[20], true, &b2(b"pcrpw"))),
            ok(Cmp::Exact),
        ),
        (
            "PCR_SetAuthValue 16",
            k(cmd(0x183, &[16], true, &b2(b"pcrpw"))),
            fails(0x84, Cmp::Exact),
        ),
        (
            "PCR_Extend 20 without the password",
            k(extend(20, b"")),
            fails(0x9A2, Cmp::Exact),
        ),
        // PCR 21 shares PCR 20's authorization group: the password is accepted (the step
        // before answered TPM_RC_BAD_AUTH without it), then locality 0 may not extend 20-22.
        (
            "PCR_Extend 21 with it, locality 0",
            k(extend(21, b"pcrpw")),
            fails(0x907, Cmp::Exact),
        ),
        (
            "PCR_Extend 16 unaffected",
            k(extend(16, b"")),
            ok(Cmp::Exact),
        ),
        (
            "PCR_SetAuthPolicy 21",
            k(set_policy(&[9; 32], 0x0B, 21)),
            ok(Cmp::Exact),
        ),
        (
            "PCR_SetAuthPolicy size",
            k(set_policy(&[9; 20], 0x0B, 21)),
            fails(0x1D5, Cmp::Exact),
        ),
        (
            "PCR_SetAuthPolicy PCR 16",
            k(set_policy(&[9; 32], 0x0B, 16)),
            fails(0x3C4, Cmp::Exact),
        ),
        (
            "PCR_SetAuthPolicy PCR 30",
            k(set_policy(&[9; 32], 0x0B, 30)),
            fails(0x3C4, Cmp::Exact),
        ),
        (
            "PCR_SetAuthPolicy bad hash",
            k(set_policy(&[9; 32], 0x99, 21)),
            fails(0x2C3, Cmp::Exact),
        ),
        (
            "PCR_SetAuthPolicy cleared",
            k(set_policy(&[], 0x10, 20)),
            ok(Cmp::Exact),
        ),
        (
            "PCR_Allocate by the owner",
            k(allocate(owner, &[(0x0B, all)])),
            fails(0x184, Cmp::Exact),
        ),
        (
            "PCR_Allocate without PCR 0 and 17",
            k(allocate(
                platform,
                &[(0x04, none), (0x0B, none), (0x0C, none), (0x0D, none)],
            )),
            fails(0x127, Cmp::Exact),
        ),
        (
            "PCR_Allocate bad hash",
            k(allocate(platform, &[(0x99, all)])),
            fails(0x1C3, Cmp::Exact),
        ),
        (
            "PCR_Allocate SHA-256 only",
            k(allocate(platform, &[(0x04, none), (0x0B, all)])),
            ok(Cmp::Rc),
        ),
        (
            "Shutdown(STATE) after PCR_Allocate",
            k(cmd(0x145, &[], false, &[0, 1])),
            fails(0x1CA, Cmp::Exact),
        ),
        (
            "Shutdown(CLEAR)",
            k(cmd(0x145, &[], false, &[0, 0])),
            ok(Cmp::Exact),
        ),
    ];
    let mut cases = cases;
    for cc in [0x12Bu32, 0x12C, 0x183] {
        let p = [&[0, 0, 0, 2][..], &cc.to_be_bytes(), &[0, 0, 0, 1]].concat();
        cases.push((
            "GetCapability TPMA_CC",
            k(cmd(0x17A, &[], false, &p)),
            ok(Cmp::Exact),
        ));
    }
    let report = compare(sim.port, sw.port, &cases);
    report.assert_clean("pcr_admin_codes_match_swtpm", 10);
}

/// EC_Ephemeral and ZGen_2Phase (ECDH) against libtpms: codes and layouts, a spent counter.
#[test]
fn two_phase_ecdh_codes_match_swtpm() {
    let dir = scratch("diff-ecc2");
    let sw = Swtpm::start(&dir.join("swtpm"));
    std::fs::create_dir_all(dir.join("sim")).unwrap();
    let sim = Sim::start(&dir.join("sim"), None);
    let k = |b: Vec<u8>| Box::new(move |_: &History| b.clone()) as Build;
    let b2 = vtpm_sim::wire::tpm2b;
    let key = 0x8000_0000u32;
    // An unrestricted ECDH key: decrypt, no symmetric algorithm, scheme or KDF.
    let t = [
        &[0x00, 0x23, 0x00, 0x0B][..],
        &0x0002_0072u32.to_be_bytes(),
        &[
            0, 0, 0x00, 0x10, 0x00, 0x10, 0x00, 0x03, 0x00, 0x10, 0, 0, 0, 0,
        ],
    ]
    .concat();
    let ecdh = [&[0, 4, 0, 0, 0, 0][..], &b2(&t), &[0, 0, 0, 0, 0, 0]].concat();
    // ZGen_2Phase with the Q and counter of the EC_Ephemeral response `back` steps ago.
    let zgen = |back: usize, scheme: u16, spoil: bool| {
        Box::new(move |prev: &History| {
            let e = &prev[prev.len() - back];
            let mut q = e[10..e.len() - 2].to_vec();
            if spoil {
                let last = q.len() - 1;
                q[last] ^= 1;
            }
            let p = [&q[..], &q, &scheme.to_be_bytes(), &e[e.len() - 2..]].concat();
            cmd(0x18D, &[key], true, &p)
        }) as Build
    };
    let cases: Vec<(&str, Build, Outcome)> = vec![
        (
            "Startup",
            k(cmd(0x144, &[], false, &[0, 0])),
            ok(Cmp::Exact),
        ),
        (
            "CreatePrimary ECDH key",
            k(cmd(0x131, &[0x4000_0001], true, &ecdh)),
            ok(Cmp::Len),
        ),
        (
            "EC_Ephemeral bad curve",
            k(cmd(0x18E, &[], false, &[0, 0x77])),
            fails(0x1E6, Cmp::Exact),
        ),
        (
            "EC_Ephemeral",
            k(cmd(0x18E, &[], false, &[0, 3])),
            ok(Cmp::Len),
        ),
        (
            "ZGen_2Phase ECDSA scheme",
            zgen(1, 0x0018, false),
            fails(0x3D2, Cmp::Exact),
        ),
        (
            "ZGen_2Phase point off the curve",
            zgen(2, 0x0019, true),
            fails(0x1E7, Cmp::Exact),
        ),
        ("ZGen_2Phase", zgen(3, 0x0019, false), ok(Cmp::Len)),
        (
            "ZGen_2Phase counter spent",
            zgen(4, 0x0019, false),
            fails(0x4C4, Cmp::Exact),
        ),
        (
            "ZGen_2Phase bad point size",
            k(cmd(
                0x18D,
                &[key],
                true,
                &[&b2(&[0, 1, 7])[..], &[0, 0, 0, 0x19, 0, 0]].concat(),
            )),
            fails(0x1D5, Cmp::Exact),
        ),
    ];
    let mut cases = cases;
    for cc in [0x18Du32, 0x18E] {
        let p = [&[0, 0, 0, 2][..], &cc.to_be_bytes(), &[0, 0, 0, 1]].concat();
        cases.push((
            "GetCapability TPMA_CC",
            k(cmd(0x17A, &[], false, &p)),
            ok(Cmp::Exact),
        ));
    }
    let report = compare(sim.port, sw.port, &cases);
    report.assert_clean("two_phase_ecdh_codes_match_swtpm", 6);
}

/// TPMA_CC of every command vtpm-sim implements, as TPM2_GetCapability(TPM_CAP_COMMANDS)
/// reports it, equals libtpms's (handle count, nv, extensive, flushed, response handle).
#[test]
fn command_attributes_match_swtpm() {
    let dir = scratch("diff-tpma-cc");
    let sw = Swtpm::start(&dir.join("swtpm"));
    std::fs::create_dir_all(dir.join("sim")).unwrap();
    let sim = Sim::start(&dir.join("sim"), None);
    let startup = cmd(0x144, &[], false, &[0, 0]);
    sim_exec(sim.port, &startup);
    swtpm_exec(sw.port, &startup);
    let all = sim_exec(
        sim.port,
        &cmd(0x17A, &[], false, &[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1, 0]),
    );
    let n = u32::from_be_bytes([all[15], all[16], all[17], all[18]]) as usize;
    assert!(n > 100, "vtpm-sim reports {n} commands");
    let codes: Vec<u32> = (0..n)
        .map(|i| {
            let at = 19 + 4 * i;
            u32::from_be_bytes([all[at], all[at + 1], all[at + 2], all[at + 3]]) & 0xFFFF
        })
        .collect();
    let k = |b: Vec<u8>| Box::new(move |_: &History| b.clone()) as Build;
    let mut cases: Vec<(&str, Build, Outcome)> = Vec::new();
    for cc in codes {
        let p = [&[0, 0, 0, 2][..], &cc.to_be_bytes(), &[0, 0, 0, 1]].concat();
        cases.push(("TPMA_CC", k(cmd(0x17A, &[], false, &p)), ok(Cmp::Tail4)));
    }
    let report = compare(sim.port, sw.port, &cases);
    report.assert_clean("command_attributes_match_swtpm", 104);
}

/// The platform's measurement sequence (_TPM_Hash_Start, _Data, _End) on both TPMs: vtpm-sim
/// through its mssim signals 5/6/7, swtpm through its control channel (CMD_HASH_START 6,
/// CMD_HASH_DATA 7 with a length, CMD_HASH_END 8).
fn hash_sequence(sim_port: u16, sw_port: u16, data: &[u8]) {
    let mut s = TcpStream::connect(("127.0.0.1", sim_port)).expect("connect vtpm-sim");
    let mut w = TcpStream::connect(("127.0.0.1", sw_port + 1)).expect("connect swtpm control");
    let frames: [(u32, u32, &[u8]); 3] = [(5, 6, &[]), (6, 7, data), (7, 8, &[])];
    for (sim_signal, sw_cmd, payload) in frames {
        for (conn, code) in [(&mut s, sim_signal), (&mut w, sw_cmd)] {
            let mut f = code.to_be_bytes().to_vec();
            if !payload.is_empty() {
                f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
                f.extend_from_slice(payload);
            }
            conn.write_all(&f).unwrap();
            let mut ack = [0u8; 4];
            conn.read_exact(&mut ack).unwrap();
            assert_eq!(ack, [0; 4], "hash indication {code} refused");
        }
    }
}

/// H-CRTM before Startup (PCR 0) and DRTM after it (PCRs 17-22), and Resume after an H-CRTM
/// event, against libtpms.
#[test]
fn hash_indications_match_swtpm() {
    let dir = scratch("diff-drtm");
    let sw = Swtpm::start(&dir.join("swtpm"));
    std::fs::create_dir_all(dir.join("sim")).unwrap();
    let sim = Sim::start(&dir.join("sim"), None);
    let k = |b: Vec<u8>| Box::new(move |_: &History| b.clone()) as Build;
    let pcr_read = |alg: u16, i: usize| {
        let mut select = [0u8; 3];
        select[i / 8] = 1 << (i % 8);
        k(cmd(
            0x17E,
            &[],
            false,
            &[&[0, 0, 0, 1][..], &alg.to_be_bytes(), &[3], &select].concat(),
        ))
    };
    let mut report = Report::default();
    hash_sequence(sim.port, sw.port, b"H-CRTM code");
    report.extend(compare(
        sim.port,
        sw.port,
        &[
            (
                "Startup(CLEAR) after H-CRTM",
                k(cmd(0x144, &[], false, &[0, 0])),
                ok(Cmp::Exact),
            ),
            (
                "PCR 0 SHA-256 after H-CRTM",
                pcr_read(0x000B, 0),
                ok(Cmp::PcrRead),
            ),
            (
                "PCR 0 SHA-1 after H-CRTM",
                pcr_read(0x0004, 0),
                ok(Cmp::PcrRead),
            ),
            ("PCR 17 before DRTM", pcr_read(0x000B, 17), ok(Cmp::PcrRead)),
        ],
    ));
    hash_sequence(sim.port, sw.port, b"dynamically launched code");
    report.extend(compare(
        sim.port,
        sw.port,
        &[
            ("PCR 17 after DRTM", pcr_read(0x000B, 17), ok(Cmp::PcrRead)),
            ("PCR 18 after DRTM", pcr_read(0x000B, 18), ok(Cmp::PcrRead)),
            ("PCR 0 after DRTM", pcr_read(0x000B, 0), ok(Cmp::PcrRead)),
            (
                "Shutdown(STATE)",
                k(cmd(0x145, &[], false, &[0, 1])),
                ok(Cmp::Exact),
            ),
        ],
    ));
    // Resume after another H-CRTM event (as the saved boot had): PCRs come from the saved state.
    sim_power_cycle(sim.port);
    swtpm_power_cycle(sw.port);
    hash_sequence(sim.port, sw.port, b"another H-CRTM code");
    report.extend(compare(
        sim.port,
        sw.port,
        &[
            (
                "Startup(STATE) after H-CRTM",
                k(cmd(0x144, &[], false, &[0, 1])),
                ok(Cmp::Exact),
            ),
            (
                "PCR 0 after the Resume",
                pcr_read(0x000B, 0),
                ok(Cmp::PcrRead),
            ),
            (
                "PCR 17 after the Resume",
                pcr_read(0x000B, 17),
                ok(Cmp::PcrRead),
            ),
            (
                "Shutdown(STATE) again",
                k(cmd(0x145, &[], false, &[0, 1])),
                ok(Cmp::Exact),
            ),
        ],
    ));
    // Resumes with and without the H-CRTM event the saved boot had (each boot ends with
    // Shutdown(STATE) so the next can try to resume it).
    // (boot, H-CRTM event before this Startup, whether the Resume is accepted): a Resume needs
    // the same H-CRTM situation as the saved boot (TPM_RC_VALUE on the startup type otherwise);
    // after an accepted Resume, Startup(CLEAR) is TPM_RC_INITIALIZE.
    let boots: [(&str, bool, bool); 3] = [
        ("saved with H-CRTM, resumed without", false, false),
        ("saved without H-CRTM, resumed without", false, true),
        ("saved without H-CRTM, resumed with", true, false),
    ];
    for (what, hcrtm, resumes) in boots {
        sim_power_cycle(sim.port);
        swtpm_power_cycle(sw.port);
        if hcrtm {
            hash_sequence(sim.port, sw.port, b"late H-CRTM code");
        }
        report.extend(compare(
            sim.port,
            sw.port,
            &[
                (
                    what,
                    k(cmd(0x144, &[], false, &[0, 1])),
                    if resumes {
                        ok(Cmp::Exact)
                    } else {
                        fails(0x1C4, Cmp::Exact)
                    },
                ),
                (
                    "Startup(CLEAR) if the Resume failed",
                    k(cmd(0x144, &[], false, &[0, 0])),
                    if resumes {
                        fails(0x100, Cmp::Exact)
                    } else {
                        ok(Cmp::Exact)
                    },
                ),
                ("PCR 0", pcr_read(0x000B, 0), ok(Cmp::PcrRead)),
                ("PCR 17", pcr_read(0x000B, 17), ok(Cmp::PcrRead)),
                (
                    "Shutdown(STATE)",
                    k(cmd(0x145, &[], false, &[0, 1])),
                    ok(Cmp::Exact),
                ),
            ],
        ));
    }
    report.assert_clean("hash_indications_match_swtpm", 24);
}

/// NV_DefineSpace by a hierarchy that does not match TPMA_NV_PLATFORMCREATE, against libtpms.
#[test]
fn nv_define_hierarchy_codes_match_swtpm() {
    let dir = scratch("diff-nvdefine");
    let sw = Swtpm::start(&dir.join("swtpm"));
    std::fs::create_dir_all(dir.join("sim")).unwrap();
    let sim = Sim::start(&dir.join("sim"), None);
    let k = |b: Vec<u8>| Box::new(move |_: &History| b.clone()) as Build;
    let (owner, platform) = (0x4000_0001u32, 0x4000_000Cu32);
    // ppread|ppwrite|ownerread|ownerwrite, with and without PLATFORMCREATE.
    let rw = 0x0001_0001u32 | (1 << 17) | (1 << 1);
    let pc = 1u32 << 30;
    let steps: Vec<(&str, Build, Outcome)> = vec![
        (
            "Startup",
            k(cmd(0x144, &[], false, &[0, 0])),
            ok(Cmp::Exact),
        ),
        (
            "platform defines without PLATFORMCREATE",
            k(cmd(
                0x12A,
                &[platform],
                true,
                &nv_public(0x0150_0040, rw, 8),
            )),
            fails(0x182, Cmp::Exact),
        ),
        (
            "owner defines with PLATFORMCREATE",
            k(cmd(
                0x12A,
                &[owner],
                true,
                &nv_public(0x0150_0041, rw | pc, 8),
            )),
            fails(0x182, Cmp::Exact),
        ),
        (
            "platform defines with PLATFORMCREATE",
            k(cmd(
                0x12A,
                &[platform],
                true,
                &nv_public(0x0150_0042, rw | pc, 8),
            )),
            ok(Cmp::Exact),
        ),
        (
            "owner defines without PLATFORMCREATE",
            k(cmd(0x12A, &[owner], true, &nv_public(0x0150_0043, rw, 8))),
            ok(Cmp::Exact),
        ),
    ];
    let report = compare(sim.port, sw.port, &steps);
    report.assert_clean("nv_define_hierarchy_codes_match_swtpm", 3);
}

/// A DER element with a minimal length (test side of CertifyX509).
fn der(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let body = parts.concat();
    let n = body.len();
    let len = match n {
        0..=127 => vec![n as u8],
        128..=255 => vec![0x81, n as u8],
        _ => vec![0x82, (n >> 8) as u8, n as u8],
    };
    [&[tag][..], &len, &body].concat()
}

/// The elements inside a DER SEQUENCE, each with its tag and length.
fn der_elements(seq: &[u8]) -> Vec<Vec<u8>> {
    let head = |b: &[u8]| -> (usize, usize) {
        match b[1] {
            0x81 => (3, b[2] as usize),
            0x82 => (4, (b[2] as usize) << 8 | b[3] as usize),
            n => (2, n as usize),
        }
    };
    let (h, n) = head(seq);
    let mut rest = &seq[h..h + n];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (h, n) = head(rest);
        out.push(rest[..h + n].to_vec());
        rest = &rest[h + n..];
    }
    out
}

/// A non-negative DER INTEGER from big-endian bytes.
fn der_uint(b: &[u8]) -> Vec<u8> {
    let b = &b[b.iter().take(b.len() - 1).take_while(|&&x| x == 0).count()..];
    if b[0] & 0x80 != 0 {
        der(0x02, &[&[0], b])
    } else {
        der(0x02, &[b])
    }
}

/// TPM2_CertifyX509 against swtpm (libtpms 0.9): the same codes for good and malformed partial
/// certificates (SEQUENCE over the whole input, three or four SEQUENCEs and one `[3]`, keyUsage
/// required and consistent with the object, a TPMA_OBJECT extension equal to its attributes,
/// a signing key and scheme), and on both TPMs the certificate made of the partial certificate,
/// addedToCertificate and the signature parses with OpenSSL and its signature verifies with
/// the signing key's public key over the TBSCertificate, whose SHA-256 is tbsDigest.
#[test]
fn certify_x509_matches_swtpm() {
    let dir = scratch("diff-x509");
    let sw = Swtpm::start(&dir.join("swtpm"));
    std::fs::create_dir_all(dir.join("sim")).unwrap();
    let sim = Sim::start(&dir.join("sim"), None);
    let k = |b: Vec<u8>| Box::new(move |_: &History| b.clone()) as Build;
    let b2 = vtpm_sim::wire::tpm2b;
    let (signer, storage) = (0x8000_0000u32, 0x8000_0001u32);
    let name = |cn: &str| {
        let atv = der(
            0x30,
            &[
                &[0x06, 0x03, 0x55, 0x04, 0x03],
                &der(0x0C, &[cn.as_bytes()]),
            ],
        );
        der(0x30, &[&der(0x31, &[&atv])])
    };
    let issuer = name("Warden test CA");
    let validity = der(
        0x30,
        &[
            &der(0x17, &[b"250101000000Z"]),
            &der(0x17, &[b"350101000000Z"]),
        ],
    );
    let subject = name("vtpm key");
    // keyUsage (critical) with `bits`: an extension of its own.
    let key_usage = |bits: &[u8]| {
        der(
            0x30,
            &[
                &[0x06, 0x03, 0x55, 0x1D, 0x0F],
                &[0x01, 0x01, 0xFF],
                &der(0x04, &[&der(0x03, &[bits])]),
            ],
        )
    };
    let tpma = |attrs: u32| {
        der(
            0x30,
            &[
                &[0x06, 0x07, 0x67, 0x81, 0x05, 0x0A, 0x01, 0x01, 0x01],
                &der(0x04, &[&der(0x03, &[&[0][..], &attrs.to_be_bytes()])]),
            ],
        )
    };
    let exts = |list: &[&[u8]]| der(0xA3, &[&der(0x30, list)]);
    let signing = key_usage(&[0x07, 0x80]);
    let good_ext = exts(&[&signing]);
    let partial = |parts: &[&[u8]]| der(0x30, parts);
    let good = partial(&[&issuer, &validity, &subject, &good_ext]);
    let ecdsa_sha256 = der(
        0x30,
        &[&[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02]],
    );
    let with_alg = partial(&[&ecdsa_sha256, &issuer, &validity, &subject, &good_ext]);
    let null_scheme = [0x00u8, 0x10];
    let x509 = |obj: u32, sign: u32, reserved: &[u8], scheme: &[u8], pc: &[u8]| {
        cmd_pws(
            0x197,
            &[obj, sign],
            2,
            &[&b2(reserved)[..], scheme, &b2(pc)].concat(),
        )
    };
    let mut trailing = good.clone();
    trailing.push(0);
    let mut long_inner = good.clone();
    long_inner[2 + issuer.len() + 1] = 0x7F; // validity's length past the end
    let two = partial(&[&issuer, &subject, &good_ext]);
    let five = partial(&[
        &ecdsa_sha256,
        &issuer,
        &issuer,
        &validity,
        &subject,
        &good_ext,
    ]);
    let no_ext = partial(&[&issuer, &validity, &subject]);
    let two_ext = partial(&[&issuer, &validity, &subject, &good_ext, &good_ext]);
    let integer_inside = partial(&[&issuer, &validity, &subject, &[0x02, 0x01, 0x05], &good_ext]);
    let no_key_usage = partial(&[&issuer, &validity, &subject, &exts(&[&tpma(0x0004_0072)])]);
    let encipher = partial(&[
        &issuer,
        &validity,
        &subject,
        &exts(&[&key_usage(&[0x05, 0x20])]),
    ]);
    let non_rep = partial(&[
        &issuer,
        &validity,
        &subject,
        &exts(&[&key_usage(&[0x06, 0x40])]),
    ]);
    let tpma_ok = exts(&[&tpma(0x0004_0072), &signing]);
    let tpma_bad = exts(&[&tpma(0x0004_0073), &signing]);
    let long_form = {
        // Non-minimal lengths (0x81 for a short element) are accepted, as by libtpms.
        let v = [&[0x30, 0x81, validity.len() as u8 - 2][..], &validity[2..]].concat();
        partial(&[&issuer, &v, &subject, &good_ext])
    };
    let bad_bits = partial(&[
        &issuer,
        &validity,
        &subject,
        &exts(&[&key_usage(&[0x08, 0x80])]),
    ]);
    let storage_ok = partial(&[
        &issuer,
        &validity,
        &subject,
        &exts(&[&key_usage(&[0x03, 0x08])]),
    ]);
    let tpma_equal = partial(&[&issuer, &validity, &subject, &tpma_ok]);
    let tpma_differs = partial(&[&issuer, &validity, &subject, &tpma_bad]);
    let not_seq = [&[0x31][..], &good[1..]].concat();
    let past_end = vec![0x30, 0x82, 0x7F, 0xFF, 0x30, 0x00];
    // A partial certificate as the stock tool makes it (tpm2-tools' tpm2_certifyX509certutil:
    // issuer, validity from now, subject, a critical keyUsage for signing).
    let made = common::host(
        &dir,
        &[
            "tpm2_certifyX509certutil",
            "-o",
            "partial.der",
            "-d",
            "365",
            "-i",
            "C=US;O=Warden;CN=issuer",
            "-s",
            "C=US;O=Warden;CN=subject",
        ],
    );
    assert!(made.status.success(), "tpm2_certifyX509certutil: {made:?}");
    let stock = std::fs::read(dir.join("partial.der")).unwrap();
    let mut cases: Vec<(&str, Build, Outcome)> = vec![
        (
            "Startup",
            k(cmd(0x144, &[], false, &[0, 0])),
            ok(Cmp::Exact),
        ),
        (
            "CreatePrimary ECDSA signing key",
            k(cmd(0x131, &[0x4000_0001], true, &ecc_child_params())),
            ok(Cmp::Len),
        ),
        (
            "CreatePrimary storage key",
            k(cmd(0x131, &[0x4000_0001], true, &ecc_primary_params())),
            ok(Cmp::Len),
        ),
        (
            "CertifyX509 explicit ECDSA-SHA256",
            k(x509(signer, signer, &[], &[0x00, 0x18, 0x00, 0x0B], &good)),
            ok(Cmp::Rc),
        ),
        (
            "CertifyX509 reserved not empty",
            k(x509(signer, signer, &[1], &null_scheme, &good)),
            fails(0x1D5, Cmp::Exact),
        ),
        (
            "CertifyX509 storage key signs",
            k(x509(signer, storage, &[], &null_scheme, &good)),
            fails(0x19C, Cmp::Exact),
        ),
        (
            "CertifyX509 RSASSA with an ECC key",
            k(x509(signer, signer, &[], &[0x00, 0x14, 0x00, 0x0B], &good)),
            fails(0x2D2, Cmp::Exact),
        ),
        (
            "GetCapability TPMA_CC CertifyX509",
            k(cmd(
                0x17A,
                &[],
                false,
                &[0, 0, 0, 2, 0, 0, 0x01, 0x97, 0, 0, 0, 1],
            )),
            ok(Cmp::Exact),
        ),
    ];
    // Partial certificates: (what, object, the certificate, the code on both TPMs or 0).
    let partials: Vec<(&str, u32, Vec<u8>, u32)> = vec![
        ("CertifyX509", signer, good.clone(), 0),
        (
            "CertifyX509 caller's signature algorithm",
            signer,
            with_alg,
            0,
        ),
        ("CertifyX509 storage key certified", storage, storage_ok, 0),
        ("CertifyX509 non-minimal length", signer, long_form, 0),
        ("CertifyX509 TPMA_OBJECT equal", signer, tpma_equal, 0),
        (
            "CertifyX509 tpm2_certifyX509certutil's partial",
            signer,
            stock,
            0,
        ),
        (
            "CertifyX509 nonRepudiation for a fixedTPM key",
            storage,
            non_rep,
            0,
        ),
        ("CertifyX509 empty", signer, Vec::new(), 0x3C4),
        (
            "CertifyX509 larger than TPM2B_MAX_BUFFER",
            signer,
            vec![0x30; 1025],
            0x3D5,
        ),
        ("CertifyX509 not a SEQUENCE", signer, not_seq, 0x3D5),
        ("CertifyX509 trailing byte", signer, trailing, 0x3D5),
        (
            "CertifyX509 outer length past the end",
            signer,
            past_end,
            0x3D5,
        ),
        (
            "CertifyX509 inner length past the end",
            signer,
            long_inner,
            0x3C4,
        ),
        ("CertifyX509 two SEQUENCEs", signer, two, 0x3C4),
        ("CertifyX509 five SEQUENCEs", signer, five, 0x3C4),
        ("CertifyX509 no extensions", signer, no_ext, 0x3C4),
        ("CertifyX509 extensions twice", signer, two_ext, 0x3C4),
        (
            "CertifyX509 INTEGER among the parts",
            signer,
            integer_inside,
            0x3C4,
        ),
        ("CertifyX509 keyUsage missing", signer, no_key_usage, 0x3C4),
        (
            "CertifyX509 keyEncipherment, sign-only key",
            signer,
            encipher,
            0x3C4,
        ),
        (
            "CertifyX509 digitalSignature, key cannot sign",
            storage,
            good.clone(),
            0x3C4,
        ),
        (
            "CertifyX509 keyUsage 8 unused bits",
            signer,
            bad_bits,
            0x3C4,
        ),
        (
            "CertifyX509 TPMA_OBJECT differs",
            signer,
            tpma_differs,
            0x282,
        ),
    ];
    for (what, obj, pc, rc) in partials {
        let c = x509(obj, signer, &[], &null_scheme, &pc);
        let outcome = if rc == 0 {
            ok(Cmp::Rc)
        } else {
            fails(rc, Cmp::Exact)
        };
        cases.push((what, k(c), outcome));
    }
    let report = compare(sim.port, sw.port, &cases);
    report.assert_clean("certify_x509_matches_swtpm", 8);

    // The certificate each TPM makes, verified with OpenSSL.
    for (who, r) in [
        (
            "vtpm-sim",
            sim_exec(sim.port, &x509(signer, signer, &[], &null_scheme, &good)),
        ),
        (
            "swtpm",
            swtpm_exec(sw.port, &x509(signer, signer, &[], &null_scheme, &good)),
        ),
    ] {
        assert_eq!(rc_of(&r), 0, "{who}: CertifyX509 rc");
        let p = &r[14..];
        let alen = u16::from_be_bytes([p[0], p[1]]) as usize;
        let added = &p[2..2 + alen];
        let p = &p[2 + alen..];
        let dlen = u16::from_be_bytes([p[0], p[1]]) as usize;
        let tbs_digest = &p[2..2 + dlen];
        let p = &p[2 + dlen..];
        assert_eq!(
            &p[..4],
            &[0x00, 0x18, 0x00, 0x0B],
            "{who}: ECDSA-SHA256 signature"
        );
        let rl = u16::from_be_bytes([p[4], p[5]]) as usize;
        let sig_r = &p[6..6 + rl];
        let sl = u16::from_be_bytes([p[6 + rl], p[7 + rl]]) as usize;
        let sig_s = &p[8 + rl..8 + rl + sl];
        let parts = der_elements(added);
        assert_eq!(
            parts.len(),
            4,
            "{who}: version, serial, signature algorithm, key"
        );
        assert_eq!(parts[0], [0xA0, 0x03, 0x02, 0x01, 0x02], "{who}: version 3");
        assert_eq!(parts[2], ecdsa_sha256, "{who}: ecdsa-with-SHA256");
        let tbs = der(
            0x30,
            &[
                &parts[0], &parts[1], &parts[2], &issuer, &validity, &subject, &parts[3], &good_ext,
            ],
        );
        assert_eq!(tbs_digest, sha256(&[&tbs]), "{who}: tbsDigest");
        let sig = der(0x30, &[&der_uint(sig_r), &der_uint(sig_s)]);
        let cert = der(0x30, &[&tbs, &parts[2], &der(0x03, &[&[0], &sig])]);
        let d = dir.join(who);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("cert.der"), &cert).unwrap();
        std::fs::write(d.join("tbs.bin"), &tbs).unwrap();
        std::fs::write(d.join("sig.der"), &sig).unwrap();
        std::fs::write(d.join("spki.der"), &parts[3]).unwrap();
        let text = common::host(
            &d,
            &[
                "openssl", "x509", "-inform", "DER", "-in", "cert.der", "-noout", "-subject",
                "-issuer",
            ],
        );
        assert!(
            text.status.success(),
            "{who}: openssl x509: {}",
            String::from_utf8_lossy(&text.stderr)
        );
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains("CN = vtpm key") && text.contains("CN = Warden test CA"),
            "{who}: {text}"
        );
        common::openssl(
            &d,
            &[
                "pkey", "-pubin", "-inform", "DER", "-in", "spki.der", "-out", "pub.pem",
            ],
        );
        let v = common::openssl_verify(&d, "pub.pem", "sig.der", "tbs.bin");
        assert!(
            v.status.success(),
            "{who}: signature over the TBSCertificate: {}",
            String::from_utf8_lossy(&v.stdout)
        );
    }
}

/// CertifyX509 with RSA keys and the `x509sign` attribute, against swtpm: RSASSA and RSA-PSS
/// signature algorithms named by the TPM (the same DER on both, PSS parameters included), an
/// x509sign key that CertifyX509 signs with and TPM2_Sign refuses, an HMAC key that can neither
/// name its signature algorithm nor be certified; each RSA certificate verifies with OpenSSL.
#[test]
fn certify_x509_rsa_and_x509sign_match_swtpm() {
    let dir = scratch("diff-x509-rsa");
    let sw = Swtpm::start(&dir.join("swtpm"));
    std::fs::create_dir_all(dir.join("sim")).unwrap();
    let sim = Sim::start(&dir.join("sim"), None);
    let k = |b: Vec<u8>| Box::new(move |_: &History| b.clone()) as Build;
    let b2 = vtpm_sim::wire::tpm2b;
    let primary = |t: &[u8]| {
        let p = [&[0, 4, 0, 0, 0, 0][..], &b2(t), &[0, 0, 0, 0, 0, 0]].concat();
        cmd(0x131, &[0x4000_0001], true, &p)
    };
    let sign_attrs = 0x0004_0072u32.to_be_bytes();
    let rsa_t = [
        &[0x00, 0x01, 0x00, 0x0B][..],
        &sign_attrs,
        &[0, 0, 0x00, 0x10, 0x00, 0x10, 0x08, 0x00, 0, 0, 0, 0, 0, 0],
    ]
    .concat();
    let x509sign_t = [
        &[0x00, 0x23, 0x00, 0x0B][..],
        &0x000C_0072u32.to_be_bytes(),
        &[
            0, 0, 0x00, 0x10, 0x00, 0x18, 0x00, 0x0B, 0x00, 0x03, 0x00, 0x10, 0, 0, 0, 0,
        ],
    ]
    .concat();
    let hmac_t = [
        &[0x00, 0x08, 0x00, 0x0B][..],
        &sign_attrs,
        &[0, 0, 0x00, 0x05, 0x00, 0x0B, 0, 0],
    ]
    .concat();
    let (rsa, x509key, hmac) = (0x8000_0000u32, 0x8000_0001u32, 0x8000_0002u32);
    let name = |cn: &str| {
        let atv = der(
            0x30,
            &[
                &[0x06, 0x03, 0x55, 0x04, 0x03],
                &der(0x0C, &[cn.as_bytes()]),
            ],
        );
        der(0x30, &[&der(0x31, &[&atv])])
    };
    let (issuer, subject) = (name("Warden test CA"), name("vtpm RSA key"));
    let validity = der(
        0x30,
        &[
            &der(0x17, &[b"250101000000Z"]),
            &der(0x17, &[b"350101000000Z"]),
        ],
    );
    let usage = der(
        0x30,
        &[
            &[0x06, 0x03, 0x55, 0x1D, 0x0F],
            &der(0x04, &[&der(0x03, &[&[0x07, 0x80]])]),
        ],
    );
    let ext = der(0xA3, &[&der(0x30, &[&usage])]);
    let good = der(0x30, &[&issuer, &validity, &subject, &ext]);
    let x509 = |obj: u32, sign: u32, scheme: &[u8]| {
        cmd_pws(
            0x197,
            &[obj, sign],
            2,
            &[&b2(&[])[..], scheme, &b2(&good)].concat(),
        )
    };
    let rsassa = [0x00u8, 0x14, 0x00, 0x0B];
    let rsapss = [0x00u8, 0x16, 0x00, 0x0B];
    let null_scheme = [0x00u8, 0x10];
    let cases: Vec<(&str, Build, Outcome)> = vec![
        (
            "Startup",
            k(cmd(0x144, &[], false, &[0, 0])),
            ok(Cmp::Exact),
        ),
        (
            "CreatePrimary RSA signing key",
            k(primary(&rsa_t)),
            ok(Cmp::Len),
        ),
        (
            "CreatePrimary ECC x509sign key",
            k(primary(&x509sign_t)),
            ok(Cmp::Len),
        ),
        ("CreatePrimary HMAC key", k(primary(&hmac_t)), ok(Cmp::Len)),
        (
            "CertifyX509 RSASSA-SHA256",
            k(x509(rsa, rsa, &rsassa)),
            ok(Cmp::Rc),
        ),
        (
            "CertifyX509 RSAPSS-SHA256",
            k(x509(rsa, rsa, &rsapss)),
            ok(Cmp::Rc),
        ),
        (
            "CertifyX509 RSAPSS-SHA1",
            k(x509(rsa, rsa, &[0x00, 0x16, 0x00, 0x04])),
            ok(Cmp::Rc),
        ),
        (
            "CertifyX509 RSA key without a scheme",
            k(x509(rsa, rsa, &null_scheme)),
            fails(0x2D2, Cmp::Exact),
        ),
        (
            "CertifyX509 by the x509sign key",
            k(x509(rsa, x509key, &null_scheme)),
            ok(Cmp::Rc),
        ),
        (
            "Sign with the x509sign key",
            k(cmd(
                0x15D,
                &[x509key],
                true,
                &[
                    &b2(&[0x33; 32])[..],
                    &null_scheme,
                    &[0x80, 0x24, 0x40, 0, 0, 7, 0, 0],
                ]
                .concat(),
            )),
            fails(0x182, Cmp::Exact),
        ),
        (
            "CertifyX509 by an HMAC key",
            k(x509(rsa, hmac, &null_scheme)),
            fails(0x192, Cmp::Exact),
        ),
        (
            "CertifyX509 of an HMAC key",
            k(x509(hmac, rsa, &rsassa)),
            fails(0x281, Cmp::Exact),
        ),
    ];
    let report = compare(sim.port, sw.port, &cases);
    report.assert_clean("certify_x509_rsa_and_x509sign_match_swtpm", 8);

    for (scheme, pss) in [(rsassa, false), (rsapss, true)] {
        let sim_r = sim_exec(sim.port, &x509(rsa, rsa, &scheme));
        let sw_r = swtpm_exec(sw.port, &x509(rsa, rsa, &scheme));
        let mut alg_ids = Vec::new();
        for (who, r) in [("vtpm-sim", sim_r), ("swtpm", sw_r)] {
            assert_eq!(rc_of(&r), 0, "{who}: CertifyX509 rc");
            let p = &r[14..];
            let alen = u16::from_be_bytes([p[0], p[1]]) as usize;
            let parts = der_elements(&p[2..2 + alen]);
            let p = &p[2 + alen..];
            let dlen = u16::from_be_bytes([p[0], p[1]]) as usize;
            let p = &p[2 + dlen..];
            let slen = u16::from_be_bytes([p[4], p[5]]) as usize;
            let sig = &p[6..6 + slen];
            assert_eq!(
                parts.len(),
                4,
                "{who}: version, serial, signature algorithm, key"
            );
            let tbs = der(
                0x30,
                &[
                    &parts[0], &parts[1], &parts[2], &issuer, &validity, &subject, &parts[3], &ext,
                ],
            );
            let cert = der(0x30, &[&tbs, &parts[2], &der(0x03, &[&[0], sig])]);
            let d = dir.join(format!("{who}-{pss}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("cert.der"), &cert).unwrap();
            std::fs::write(d.join("tbs.bin"), &tbs).unwrap();
            std::fs::write(d.join("sig.bin"), sig).unwrap();
            std::fs::write(d.join("spki.der"), &parts[3]).unwrap();
            let text = common::host(
                &d,
                &[
                    "openssl", "x509", "-inform", "DER", "-in", "cert.der", "-noout", "-text",
                ],
            );
            assert!(
                text.status.success(),
                "{who}: openssl x509: {}",
                String::from_utf8_lossy(&text.stderr)
            );
            let text = String::from_utf8_lossy(&text.stdout);
            let want = if pss {
                "rsassaPss"
            } else {
                "sha256WithRSAEncryption"
            };
            assert!(
                text.contains(want) && text.contains("CN = vtpm RSA key"),
                "{who}: {text}"
            );
            common::openssl(
                &d,
                &[
                    "pkey", "-pubin", "-inform", "DER", "-in", "spki.der", "-out", "pub.pem",
                ],
            );
            let mut args = vec![
                "openssl",
                "dgst",
                "-sha256",
                "-verify",
                "pub.pem",
                "-signature",
                "sig.bin",
            ];
            if pss {
                args.extend([
                    "-sigopt",
                    "rsa_padding_mode:pss",
                    "-sigopt",
                    "rsa_pss_saltlen:32",
                ]);
            }
            args.push("tbs.bin");
            let v = common::host(&d, &args);
            assert!(
                v.status.success(),
                "{who}: signature over the TBSCertificate: {}",
                String::from_utf8_lossy(&v.stdout)
            );
            alg_ids.push(parts[2].clone());
        }
        assert_eq!(
            alg_ids[0], alg_ids[1],
            "the signature AlgorithmIdentifier as libtpms writes it"
        );
    }
}
