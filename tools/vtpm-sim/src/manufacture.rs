//! `--manufacture`: endorsement-key certificates for the RSA and ECC EKs (TCG EK Credential
//! Profile templates L-1 and L-2) in the standard NV indices 0x01C00002 and 0x01C0000A, signed
//! by a vTPM CA (ECDSA P-256) whose certificate and sealed private key live in the state folder.
//!
//! The certificates are minimal X.509 v3 (DER written by hand): subject and issuer common
//! names, the EK's public key, basicConstraints and keyUsage. Running it again on the same state
//! leaves existing certificates alone.

use crate::seal::{Role, SealError, StateKey};
use crate::wire::{self, tpm2b};
use p256::ecdsa::signature::Signer;
use std::path::Path;
use warden_vtpm::{Platform, Tpm};

/// Why manufacturing failed.
#[derive(Debug, thiserror::Error)]
pub enum ManufactureError {
    #[error("manufacturing needs --state (the CA key is kept there)")]
    NoState,
    #[error("CA files in {0}: {1}")]
    Ca(String, std::io::Error),
    #[error("CA key in {0} is not a P-256 scalar")]
    BadCaKey(String),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("TPM command {what} failed with {rc:#x}")]
    Tpm { what: &'static str, rc: u32 },
}

const EK_POLICY: [u8; 32] = [
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
    0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
];
pub const RSA_EK_CERT_INDEX: u32 = 0x01C0_0002;
pub const ECC_EK_CERT_INDEX: u32 = 0x01C0_000A;

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let n = content.len();
    if n < 0x80 {
        v.push(n as u8);
    } else if n < 0x100 {
        v.extend_from_slice(&[0x81, n as u8]);
    } else {
        v.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    v.extend_from_slice(content);
    v
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn int(bytes: &[u8]) -> Vec<u8> {
    let mut b: Vec<u8> = bytes.iter().copied().skip_while(|&x| x == 0).collect();
    if b.is_empty() || b[0] & 0x80 != 0 {
        b.insert(0, 0);
    }
    tlv(0x02, &b)
}

fn name(cn: &str) -> Vec<u8> {
    let attr = seq(&[&[0x06, 0x03, 0x55, 0x04, 0x03], &tlv(0x0C, cn.as_bytes())]);
    seq(&[&tlv(0x31, &attr)])
}

fn ext(oid: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let crit: &[u8] = if critical { &[0x01, 0x01, 0xFF] } else { &[] };
    seq(&[oid, crit, &tlv(0x04, value)])
}

const ECDSA_SHA256: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02];

fn ec_spki(point: &[u8]) -> Vec<u8> {
    let alg = seq(&[
        &[0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01],
        &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07],
    ]);
    seq(&[&alg, &tlv(0x03, &[&[0u8][..], point].concat())])
}

fn rsa_spki(n: &[u8], e: u32) -> Vec<u8> {
    let alg = seq(&[
        &[
            0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01,
        ],
        &[0x05, 0x00],
    ]);
    let key = seq(&[&int(n), &int(&e.to_be_bytes())]);
    seq(&[&alg, &tlv(0x03, &[&[0u8][..], &key].concat())])
}

/// A certificate for `spki` signed by `ca`.
fn certificate(
    serial: u64,
    issuer: &str,
    subject: &str,
    spki: &[u8],
    ca_ext: bool,
    ca: &p256::ecdsa::SigningKey,
) -> Vec<u8> {
    let validity = seq(&[&tlv(0x17, b"260101000000Z"), &tlv(0x18, b"99991231235959Z")]);
    let (bc, ku): (&[u8], &[u8]) = if ca_ext {
        (&[0x30, 0x03, 0x01, 0x01, 0xFF], &[0x03, 0x02, 0x01, 0x06])
    } else {
        (&[0x30, 0x00], &[0x03, 0x02, 0x05, 0x20])
    };
    let exts = seq(&[
        &ext(&[0x06, 0x03, 0x55, 0x1D, 0x13], true, bc),
        &ext(&[0x06, 0x03, 0x55, 0x1D, 0x0F], true, ku),
    ]);
    let tbs = seq(&[
        &tlv(0xA0, &int(&[2])),
        &int(&serial.to_be_bytes()),
        &seq(&[ECDSA_SHA256]),
        &name(issuer),
        &validity,
        &name(subject),
        spki,
        &tlv(0xA3, &exts),
    ]);
    let sig: p256::ecdsa::Signature = ca.sign(&tbs);
    let sig_der = sig.to_der();
    seq(&[
        &tbs,
        &seq(&[ECDSA_SHA256]),
        &tlv(0x03, &[&[0u8][..], sig_der.as_bytes()].concat()),
    ])
}

fn pem(der: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for c in der.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                b64.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("ascii"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// The CA: loaded from `dir`, or created (certificate `vtpm-ca.pem`, private key sealed under
/// the state key in `vtpm-ca-key.bin`).
fn ca(dir: &Path, seal: &StateKey) -> Result<p256::ecdsa::SigningKey, ManufactureError> {
    let key_path = dir.join("vtpm-ca-key.bin");
    let io = |e| ManufactureError::Ca(dir.display().to_string(), e);
    match std::fs::read(&key_path) {
        Ok(sealed) => {
            let bytes = seal.open(Role::CaKey, &key_path, &sealed)?;
            return p256::ecdsa::SigningKey::from_slice(&bytes)
                .map_err(|_| ManufactureError::BadCaKey(key_path.display().to_string()));
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        Err(_) => {}
    }
    let mut scalar = [0u8; 32];
    let key = loop {
        getrandom::getrandom(&mut scalar).expect("OS entropy");
        if let Ok(k) = p256::ecdsa::SigningKey::from_slice(&scalar) {
            break k;
        }
    };
    let point = key.verifying_key().to_encoded_point(false);
    let cert = certificate(
        1,
        "Warden vTPM CA",
        "Warden vTPM CA",
        &ec_spki(point.as_bytes()),
        true,
        &key,
    );
    std::fs::write(&key_path, seal.seal(Role::CaKey, &key.to_bytes())).map_err(io)?;
    std::fs::write(dir.join("vtpm-ca.pem"), pem(&cert)).map_err(io)?;
    Ok(key)
}

fn run<P: Platform>(
    tpm: &mut Tpm<P>,
    what: &'static str,
    cmd: &[u8],
) -> Result<Vec<u8>, ManufactureError> {
    let r = tpm.execute(0, cmd);
    let rc = u32::from_be_bytes([r[6], r[7], r[8], r[9]]);
    if rc != 0 {
        return Err(ManufactureError::Tpm { what, rc });
    }
    Ok(r)
}

/// The EK templates L-1 (RSA 2048) and L-2 (ECC P-256) as TPMT_PUBLIC.
fn ek_template(rsa: bool) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&(if rsa { 0x0001u16 } else { 0x0023 }).to_be_bytes());
    t.extend_from_slice(&0x000Bu16.to_be_bytes());
    t.extend_from_slice(&0x0003_00B2u32.to_be_bytes());
    t.extend_from_slice(&tpm2b(&EK_POLICY));
    t.extend_from_slice(&[0x00, 0x06, 0x00, 0x80, 0x00, 0x43, 0x00, 0x10]);
    if rsa {
        t.extend_from_slice(&[0x08, 0x00, 0, 0, 0, 0]);
        t.extend_from_slice(&tpm2b(&[0u8; 256]));
    } else {
        t.extend_from_slice(&[0x00, 0x03, 0x00, 0x10]);
        t.extend_from_slice(&tpm2b(&[0u8; 32]));
        t.extend_from_slice(&tpm2b(&[0u8; 32]));
    }
    t
}

/// Starts the TPM, creates both EKs and stores their certificates (if missing), then powers
/// the TPM off again so that the first client's Startup finds a fresh TPM.
pub fn manufacture<P: Platform>(
    tpm: &mut Tpm<P>,
    state: Option<(&Path, &StateKey)>,
) -> Result<(), ManufactureError> {
    let (dir, seal) = state.ok_or(ManufactureError::NoState)?;
    let ca = ca(dir, seal)?;
    run(tpm, "Startup", &wire::command(0x144, &[], false, &[0, 0]))?;
    for (rsa, index, serial) in [
        (true, RSA_EK_CERT_INDEX, 2u64),
        (false, ECC_EK_CERT_INDEX, 3),
    ] {
        if tpm.execute(0, &wire::command(0x169, &[index], false, &[]))[6..10] == [0, 0, 0, 0] {
            continue;
        }
        let params = [
            &[0, 4, 0, 0, 0, 0][..],
            &tpm2b(&ek_template(rsa)),
            &[0, 0, 0, 0, 0, 0],
        ]
        .concat();
        let r = run(
            tpm,
            "CreatePrimary(EK)",
            &wire::command(0x131, &[0x4000_000B], true, &params),
        )?;
        let handle = u32::from_be_bytes([r[10], r[11], r[12], r[13]]);
        // outPublic starts after the handle and parameterSize; the unique field is at its end.
        let public = &r[20..20 + usize::from(u16::from_be_bytes([r[18], r[19]]))];
        let spki = if rsa {
            let n_len = usize::from(u16::from_be_bytes([
                public[public.len() - 258],
                public[public.len() - 257],
            ]));
            rsa_spki(&public[public.len() - n_len..], 65537)
        } else {
            let y = &public[public.len() - 32..];
            let x = &public[public.len() - 66..public.len() - 34];
            ec_spki(&[&[4u8][..], x, y].concat())
        };
        run(
            tpm,
            "FlushContext",
            &wire::command(0x165, &[], false, &handle.to_be_bytes()),
        )?;
        let subject = if rsa {
            "Warden vTPM EK (RSA 2048)"
        } else {
            "Warden vTPM EK (ECC P-256)"
        };
        let cert = certificate(serial, "Warden vTPM CA", subject, &spki, false, &ca);
        // ppwrite | writedefine | ppread | ownerread | authread | no_da | platformcreate
        let attrs: u32 = 1 | (1 << 13) | (1 << 16) | (1 << 17) | (1 << 18) | (1 << 25) | (1 << 30);
        let mut nv = index.to_be_bytes().to_vec();
        nv.extend_from_slice(&0x000Bu16.to_be_bytes());
        nv.extend_from_slice(&attrs.to_be_bytes());
        nv.extend_from_slice(&[0, 0]);
        nv.extend_from_slice(&(cert.len() as u16).to_be_bytes());
        run(
            tpm,
            "NV_DefineSpace",
            &wire::command(
                0x12A,
                &[0x4000_000C],
                true,
                &[&[0, 0][..], &tpm2b(&nv)].concat(),
            ),
        )?;
        for (i, chunk) in cert.chunks(1024).enumerate() {
            let p = [&tpm2b(chunk)[..], &((i * 1024) as u16).to_be_bytes()].concat();
            run(
                tpm,
                "NV_Write",
                &wire::command(0x137, &[0x4000_000C, index], true, &p),
            )?;
        }
        // The index is written fully; lock it against further writes until it is undefined.
        run(
            tpm,
            "NV_WriteLock",
            &wire::command(0x138, &[0x4000_000C, index], true, &[]),
        )?;
    }
    run(tpm, "Shutdown", &wire::command(0x145, &[], false, &[0, 0]))?;
    tpm.power_on();
    Ok(())
}
