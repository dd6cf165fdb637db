//! EC_Ephemeral and ZGen_2Phase (TPM_ALG_ECDH): the two products come out as ECDH_ZGen
//! computes them with each key (Z1 = [dsA]QsB; Z2 = [r]QeB, checked as [dsB]Q with QeB = QsB
//! and Q = [r]G from EC_Ephemeral), a counter is spent once, and bad input gets numbered codes.

mod support;

use support::Engine as T;
use support::{RH_ENDORSEMENT, RH_OWNER, b2, cmd, rc};
use warden_vtpm::{MemPlatform, Tpm};

/// An ECC P-256 decryption (key-exchange) key template.
fn ecdh_template(attrs: u32) -> Vec<u8> {
    // A restricted (storage) key needs a symmetric algorithm: AES-128-CFB.
    let sym: &[u8] = if attrs & (1 << 16) != 0 {
        &[0, 0x06, 0, 0x80, 0, 0x43]
    } else {
        &[0, 0x10]
    };
    [
        &[0, 0x23, 0, 0x0B][..],
        &attrs.to_be_bytes(),
        &b2(&[]),
        sym,
        &[0, 0x10, 0, 0x03, 0, 0x10],
        &b2(&[]),
        &b2(&[]),
    ]
    .concat()
}

const DECRYPT_KEY: u32 = 0x0002_0072;

impl T {
    /// CreatePrimary: (handle, TPM2B_ECC_POINT of its public key).
    fn key(&mut self, hier: u32, attrs: u32) -> (u32, Vec<u8>) {
        let p = [
            &[0, 4, 0, 0, 0, 0][..],
            &b2(&ecdh_template(attrs)),
            &[0, 0, 0, 0, 0, 0],
        ]
        .concat();
        let r = self.ok(&cmd(0x131, &[hier], true, &p));
        // handle, paramSize, TPM2B_PUBLIC size, then TPMT_PUBLIC: 18 bytes before x and y
        // (22 with AES).
        let sym_extra = if attrs & (1 << 16) != 0 { 4 } else { 0 };
        let at = 10 + 4 + 4 + 2 + 18 + sym_extra;
        let xl = usize::from(u16::from_be_bytes([r[at], r[at + 1]]));
        let yl = usize::from(u16::from_be_bytes([r[at + 2 + xl], r[at + 3 + xl]]));
        (
            u32::from_be_bytes([r[10], r[11], r[12], r[13]]),
            b2(&r[at..at + 4 + xl + yl]),
        )
    }
    /// ECDH_ZGen(key, point): the TPM2B_ECC_POINT [d]P.
    fn zgen(&mut self, key: u32, point: &[u8]) -> Vec<u8> {
        point_at(&self.ok(&cmd(0x154, &[key], true, point)), 0)
    }
}

fn zgen2(key: u32, qs: &[u8], qe: &[u8], scheme: u16, counter: u16) -> Vec<u8> {
    let p = [qs, qe, &scheme.to_be_bytes(), &counter.to_be_bytes()].concat();
    cmd(0x18D, &[key], true, &p)
}

/// The i-th TPM2B_ECC_POINT of a response's parameters (after paramSize).
fn point_at(r: &[u8], i: usize) -> Vec<u8> {
    let mut at = 14;
    for _ in 0..i {
        at += 2 + usize::from(u16::from_be_bytes([r[at], r[at + 1]]));
    }
    let n = usize::from(u16::from_be_bytes([r[at], r[at + 1]]));
    r[at..at + 2 + n].to_vec()
}

#[test]
fn two_phase_products_match_single_ecdh() {
    let mut t = T(Tpm::new(MemPlatform::with_seed(17)).expect("fresh TPM"));
    t.ok(&cmd(0x144, &[], false, &[0, 0]));
    let (a, _) = t.key(RH_OWNER, DECRYPT_KEY);
    let (b, qs_b) = t.key(RH_ENDORSEMENT, DECRYPT_KEY);
    let r = t.ok(&cmd(0x18E, &[], false, &[0, 3]));
    let q = r[10..r.len() - 2].to_vec();
    let counter = u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]]);
    let z = t.ok(&zgen2(a, &qs_b, &qs_b, 0x0019, counter));
    assert_eq!(point_at(&z, 0), t.zgen(a, &qs_b), "Z1 = [dsA]QsB");
    assert_eq!(point_at(&z, 1), t.zgen(b, &q), "Z2 = [r]QsB = [dsB]([r]G)");
    // A second ephemeral key is a different one.
    let r2 = t.ok(&cmd(0x18E, &[], false, &[0, 3]));
    assert_ne!(r2[10..r2.len() - 2], q[..]);
    let counter2 = u16::from_be_bytes([r2[r2.len() - 2], r2[r2.len() - 1]]);
    assert_eq!(counter2, counter.wrapping_add(1));
    let (restricted, _) = t.key(RH_OWNER, DECRYPT_KEY | (1 << 16) | (1 << 5));
    let bad_point = b2(&[&b2(&[1; 32])[..], &b2(&[2; 32])].concat());
    let cases: [(&str, Vec<u8>, u32); 6] = [
        (
            "spent counter: TPM_RC_VALUE, parameter 4",
            zgen2(a, &qs_b, &qs_b, 0x0019, counter),
            0x4C4,
        ),
        (
            "never handed out: TPM_RC_VALUE, parameter 4",
            zgen2(a, &qs_b, &qs_b, 0x0019, counter2 + 5),
            0x4C4,
        ),
        (
            "point off the curve: TPM_RC_ECC_POINT, parameter 1",
            zgen2(a, &bad_point, &qs_b, 0x0019, counter2),
            0x1E7,
        ),
        (
            "scheme not a key exchange: TPM_RC_SCHEME, parameter 3",
            zgen2(a, &qs_b, &qs_b, 0x0018, counter2),
            0x3D2,
        ),
        (
            "restricted key: TPM_RC_ATTRIBUTES, handle 1",
            zgen2(restricted, &qs_b, &qs_b, 0x0019, counter2),
            0x182,
        ),
        (
            "EC_Ephemeral unknown curve: TPM_RC_CURVE, parameter 1",
            cmd(0x18E, &[], false, &[0, 0x77]),
            0x1E6,
        ),
    ];
    for (what, c, want) in cases {
        assert_eq!(rc(&t.0.execute(0, &c)), want, "{what}");
    }
    // The unspent counter still works after those failures.
    t.ok(&zgen2(a, &qs_b, &qs_b, 0x0019, counter2));
}
