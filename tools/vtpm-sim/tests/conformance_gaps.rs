//! Differential test for the conformance gaps stock tpm2-tss clients hit (issue #15, item 8):
//! the same raw command sequences go to `vtpm-sim` and to swtpm (libtpms); every step states
//! the answer it must get on both, and how closely the two answers must agree. Steps built from
//! an earlier response fail when that response was an error, and each test asserts a floor on
//! the steps that succeeded on both TPMs, so a sequence cannot decay into errors against errors.
mod common;
use common::{Sim, Swtpm, read_mssim_response, scratch, send_command};
use std::io::{Read, Write};
use std::net::TcpStream;
use vtpm_sim::wire::{command as cmd, tpm2b};

fn read_response(s: &mut TcpStream) -> Vec<u8> {
    let mut hdr = [0u8; 10];
    s.read_exact(&mut hdr).expect("response header");
    let size = u32::from_be_bytes([hdr[2], hdr[3], hdr[4], hdr[5]]) as usize;
    let mut rest = vec![0u8; size.saturating_sub(10)];
    s.read_exact(&mut rest).expect("response body");
    [hdr.to_vec(), rest].concat()
}

fn rc_of(r: &[u8]) -> u32 {
    u32::from_be_bytes([r[6], r[7], r[8], r[9]])
}

/// Sends `c` (TPM_RC_RETRY / _YIELDED / _TESTING are retried, as a TSS does).
fn exec(c: &[u8], once: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let mut r = once(c);
    for _ in 0..20 {
        if !matches!(rc_of(&r), 0x922 | 0x908 | 0x90A) {
            break;
        }
        r = once(c);
    }
    r
}

fn swtpm_once(port: u16, c: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect swtpm");
    s.write_all(c).unwrap();
    read_response(&mut s)
}

fn sim_once(port: u16, c: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect vtpm-sim");
    s.write_all(&send_command(c)).unwrap();
    let resp = read_mssim_response(&mut s);
    s.write_all(&20u32.to_be_bytes()).unwrap();
    resp
}

/// How closely the two answers must agree.
#[derive(Clone, Copy, Debug)]
enum Cmp {
    /// Same response code.
    Rc,
    /// Same code and length.
    Len,
    /// Identical bytes.
    Exact,
}

/// A step: what it is, its command (built from this TPM's earlier responses, which must be
/// successes), the code it must answer on both TPMs (0: success) and the comparison.
struct Step {
    what: &'static str,
    build: Box<dyn Fn(&[Vec<u8>]) -> Vec<u8>>,
    rc: u32,
    cmp: Cmp,
}

fn step(what: &'static str, c: Vec<u8>, rc: u32, cmp: Cmp) -> Step {
    Step {
        what,
        build: Box::new(move |_| c.clone()),
        rc,
        cmp,
    }
}

fn built(
    what: &'static str,
    f: impl Fn(&[Vec<u8>]) -> Vec<u8> + 'static,
    rc: u32,
    cmp: Cmp,
) -> Step {
    Step {
        what,
        build: Box::new(f),
        rc,
        cmp,
    }
}

/// The successful response of step `i` (panics, failing the step being built, otherwise).
fn resp(h: &[Vec<u8>], i: usize) -> &[u8] {
    let r = &h[i];
    assert_eq!(
        rc_of(r),
        0,
        "built from step {i}, which answered {:#x}",
        rc_of(r)
    );
    r
}

/// The handle a (successful) response returns.
fn handle_of(r: &[u8]) -> u32 {
    u32::from_be_bytes([r[10], r[11], r[12], r[13]])
}

/// Runs `steps` on both TPMs; panics listing every step that went wrong, or when fewer than
/// `floor` steps succeeded on both.
fn run(test: &str, sim: &Sim, sw: &Swtpm, steps: &[Step], floor: usize) {
    let (mut ha, mut hb) = (Vec::<Vec<u8>>::new(), Vec::<Vec<u8>>::new());
    let (mut wrong, mut succeeded) = (Vec::new(), 0);
    const NOT_BUILT: [u8; 10] = [0x80, 1, 0, 0, 0, 10, 0xFF, 0xFF, 0xFF, 0xFF];
    for s in steps {
        let cmds = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ((s.build)(&ha), (s.build)(&hb))
        }));
        let Ok((ca, cb)) = cmds else {
            wrong.push(format!("{}: cannot be built (see the panic above)", s.what));
            ha.push(NOT_BUILT.to_vec());
            hb.push(NOT_BUILT.to_vec());
            continue;
        };
        let a = exec(&ca, |c| sim_once(sim.port, c));
        let b = exec(&cb, |c| swtpm_once(sw.port, c));
        if std::env::var_os("DIFF_RECORD").is_some() {
            eprintln!("RECORD sim={:#x} sw={:#x} {}", rc_of(&a), rc_of(&b), s.what);
        }
        let agree = match s.cmp {
            Cmp::Rc => rc_of(&a) == rc_of(&b),
            Cmp::Len => rc_of(&a) == rc_of(&b) && a.len() == b.len(),
            Cmp::Exact => a == b,
        };
        if rc_of(&a) == 0 && rc_of(&b) == 0 {
            succeeded += 1;
        }
        if !agree || rc_of(&a) != s.rc || rc_of(&b) != s.rc {
            wrong.push(format!(
                "{} (expected {:#x}, {:?}): vtpm {:#x} len {} / swtpm {:#x} len {}\n  vtpm  {:02x?}\n  swtpm {:02x?}",
                s.what,
                s.rc,
                s.cmp,
                rc_of(&a),
                a.len(),
                rc_of(&b),
                b.len(),
                &a[..a.len().min(40)],
                &b[..b.len().min(40)]
            ));
        }
        ha.push(a);
        hb.push(b);
    }
    eprintln!(
        "{test}: {succeeded} of {} steps succeeded on both",
        steps.len()
    );
    assert!(wrong.is_empty(), "{test}:\n{}", wrong.join("\n"));
    assert!(
        succeeded >= floor,
        "{test}: {succeeded} successes, floor {floor}"
    );
}

/// A fresh pair of TPMs, both after Startup(CLEAR).
fn pair(name: &str) -> (Sim, Swtpm) {
    let dir = scratch(name);
    let sw = Swtpm::start(&dir.join("swtpm"));
    std::fs::create_dir_all(dir.join("sim")).unwrap();
    let sim = Sim::start(&dir.join("sim"), None);
    let startup = cmd(0x144, &[], false, &[0, 0]);
    assert_eq!(rc_of(&exec(&startup, |c| sim_once(sim.port, c))), 0);
    assert_eq!(rc_of(&exec(&startup, |c| swtpm_once(sw.port, c))), 0);
    (sim, sw)
}

/// A command whose session area lists `sessions` (handle, attributes), each with an empty
/// nonce for TPM_RS_PW (16 bytes otherwise) and an empty HMAC.
fn cmd_area(cc: u32, handles: &[u32], sessions: &[(u32, u8)], params: &[u8]) -> Vec<u8> {
    let mut c = cmd(cc, handles, false, &[]);
    c[1] = 0x02;
    let mut area = Vec::new();
    for &(h, attrs) in sessions {
        area.extend_from_slice(&h.to_be_bytes());
        let nonce: &[u8] = if h == 0x4000_0009 { &[] } else { &[3; 16] };
        area.extend_from_slice(&tpm2b(nonce));
        area.extend_from_slice(&[attrs, 0, 0]);
    }
    c.extend_from_slice(&(area.len() as u32).to_be_bytes());
    c.extend_from_slice(&area);
    c.extend_from_slice(params);
    let len = c.len() as u32;
    c[2..6].copy_from_slice(&len.to_be_bytes());
    c
}

/// CreatePrimary / Create parameters: empty-auth `sensitive_data`, the public area `public`,
/// no outsideInfo, no creation PCRs.
fn create_params(sensitive_data: &[u8], public: &[u8]) -> Vec<u8> {
    let sensitive = [&[0, 0][..], &tpm2b(sensitive_data)].concat();
    [&tpm2b(&sensitive)[..], &tpm2b(public), &[0, 0, 0, 0, 0, 0]].concat()
}

/// A public area: `alg`, SHA-256 name, `attrs`, no policy, `parms` then an empty unique.
fn public(alg: u16, attrs: u32, parms: &[u8], unique: &[u8]) -> Vec<u8> {
    [
        &alg.to_be_bytes()[..],
        &[0x00, 0x0B],
        &attrs.to_be_bytes(),
        &[0, 0],
        parms,
        unique,
    ]
    .concat()
}

/// fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | restricted | decrypt.
const STORAGE: u32 = 0x0003_0072;
/// fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | decrypt.
const DECRYPT: u32 = 0x0002_0072;

/// An ECC P-256 storage parent (AES-128-CFB).
fn ecc_srk() -> Vec<u8> {
    let parms = [
        0x00, 0x06, 0x00, 0x80, 0x00, 0x43, 0x00, 0x10, 0x00, 0x03, 0x00, 0x10,
    ];
    public(0x0023, STORAGE, &parms, &[0, 0, 0, 0])
}

/// Handles, hierarchies and session attributes: the codes libtpms answers for bad values.
#[test]
fn handle_and_attribute_codes_match_swtpm() {
    let (sim, sw) = pair("gaps-codes");
    let steps = vec![
        step(
            "HierarchyChangeAuth authHandle 0",
            cmd(0x129, &[0], true, &[0, 0]),
            0x184,
            Cmp::Exact,
        ),
        step(
            "ReadPublic handle 0",
            cmd(0x173, &[0], false, &[]),
            0x184,
            Cmp::Exact,
        ),
        step(
            "Clear, password session attributes 0xff",
            cmd_area(0x126, &[0x4000_000C], &[(0x4000_0009, 0xFF)], &[]),
            0x9A1,
            Cmp::Exact,
        ),
        step(
            "CreatePrimary ECC SRK",
            cmd(0x131, &[0x4000_0001], true, &create_params(&[], &ecc_srk())),
            0,
            Cmp::Len,
        ),
        step(
            "Create under missing 0x80000009",
            cmd(0x153, &[0x8000_0009], true, &create_params(&[], &ecc_srk())),
            0x184,
            Cmp::Exact,
        ),
        step(
            "HierarchyChangeAuth owner (empty, still works)",
            cmd(0x129, &[0x4000_0001], true, &[0, 0]),
            0,
            Cmp::Exact,
        ),
    ];
    run(
        "handle_and_attribute_codes_match_swtpm",
        &sim,
        &sw,
        &steps,
        2,
    );
}

/// The `i`th TPM2B (size included) of a successful response's parameters, which start at 14
/// when the response has a session area (the parameterSize before them) and no handle.
fn field(r: &[u8], i: usize) -> Vec<u8> {
    let mut at = 14;
    for _ in 0..i {
        at += 2 + usize::from(u16::from_be_bytes([r[at], r[at + 1]]));
    }
    let n = usize::from(u16::from_be_bytes([r[at], r[at + 1]]));
    r[at..at + 2 + n].to_vec()
}

/// Create with caller-supplied AES-128-CFB key bytes (the key must then encrypt exactly as
/// libtpms' copy does), RSA_Encrypt with inScheme NULL on an RSAES key, TPM_CAP_ACT.
#[test]
fn key_bytes_schemes_and_act_match_swtpm() {
    let (sim, sw) = pair("gaps-keys");
    // fixedTPM | fixedParent | userWithAuth | decrypt | sign: the caller gives the key.
    let aes = public(
        0x0025,
        0x0006_0052,
        &[0x00, 0x06, 0x00, 0x80, 0x00, 0x43],
        &[0, 0],
    );
    let aes_origin = public(
        0x0025,
        0x0006_0072,
        &[0x00, 0x06, 0x00, 0x80, 0x00, 0x43],
        &[0, 0],
    );
    let rsaes = public(
        0x0001,
        DECRYPT,
        &[0x00, 0x10, 0x00, 0x15, 0x08, 0x00, 0, 0, 0, 0],
        &[0, 0],
    );
    let srk = 0x8000_0000u32;
    let steps = vec![
        step(
            "GetCapability TPM_CAP_ACT",
            cmd(
                0x17A,
                &[],
                false,
                &[0, 0, 0, 0x0A, 0x40, 0, 1, 0x10, 0, 0, 0, 1],
            ),
            0,
            Cmp::Exact,
        ),
        step(
            "CreatePrimary ECC SRK",
            cmd(0x131, &[0x4000_0001], true, &create_params(&[], &ecc_srk())),
            0,
            Cmp::Len,
        ),
        step(
            "Create AES-128-CFB with 16 caller key bytes",
            cmd(0x153, &[srk], true, &create_params(&[0x42; 16], &aes)),
            0,
            // The private blob's layout is the implementation's own (libtpms' is 32 bytes
            // longer); what the key does is compared below, byte for byte.
            Cmp::Rc,
        ),
        built(
            "Load it",
            move |h| {
                let r = resp(h, 2);
                cmd(0x157, &[srk], true, &[field(r, 0), field(r, 1)].concat())
            },
            0,
            // The Name covers the random seedValue.
            Cmp::Len,
        ),
        built(
            "EncryptDecrypt2 with the caller's key",
            |h| {
                let key = handle_of(resp(h, 3));
                let p = [
                    &tpm2b(b"sixteen byte msg")[..],
                    &[0, 0, 0x10],
                    &tpm2b(&[0; 16]),
                ]
                .concat();
                cmd(0x193, &[key], true, &p)
            },
            0,
            Cmp::Exact,
        ),
        built(
            "FlushContext AES key",
            |h| cmd(0x165, &[], false, &handle_of(resp(h, 3)).to_be_bytes()),
            0,
            Cmp::Exact,
        ),
        step(
            "Create AES-128 with 15 key bytes",
            cmd(0x153, &[srk], true, &create_params(&[0x42; 15], &aes)),
            0x87,
            Cmp::Exact,
        ),
        step(
            "Create AES-128, no key bytes, sensitiveDataOrigin clear",
            cmd(0x153, &[srk], true, &create_params(&[], &aes)),
            0x2C2,
            Cmp::Exact,
        ),
        step(
            "Create AES-128, key bytes and sensitiveDataOrigin",
            cmd(0x153, &[srk], true, &create_params(&[7; 16], &aes_origin)),
            0x2C2,
            Cmp::Exact,
        ),
        step(
            "FlushContext SRK",
            cmd(0x165, &[], false, &srk.to_be_bytes()),
            0,
            Cmp::Exact,
        ),
        step(
            "CreatePrimary RSAES-2048",
            cmd(0x131, &[0x4000_0001], true, &create_params(&[], &rsaes)),
            0,
            Cmp::Len,
        ),
        built(
            "RSA_Encrypt inScheme NULL (the key's RSAES)",
            |h| {
                let key = handle_of(resp(h, 10));
                cmd(
                    0x174,
                    &[key],
                    false,
                    &[&tpm2b(b"secret")[..], &[0, 0x10, 0, 0]].concat(),
                )
            },
            0,
            Cmp::Len,
        ),
        built(
            "RSA_Encrypt inScheme OAEP on an RSAES key",
            |h| {
                let key = handle_of(resp(h, 10));
                let p = [&tpm2b(b"secret")[..], &[0, 0x17, 0, 0x0B, 0, 0]].concat();
                cmd(0x174, &[key], false, &p)
            },
            0x2D2,
            Cmp::Exact,
        ),
    ];
    run(
        "key_bytes_schemes_and_act_match_swtpm",
        &sim,
        &sw,
        &steps,
        7,
    );
}
