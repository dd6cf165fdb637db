//! EC_Ephemeral and ZGen_2Phase (TPM_ALG_ECDH): the two products come out as ECDH_ZGen
//! computes them with each key (Z1 = [dsA]QsB; Z2 = [r]QeB, checked as [dsB]Q with QeB = QsB
//! and Q = [r]G from EC_Ephemeral), a counter is spent once, and bad input gets numbered codes;
//! TPM2_Commit with a basepoint (K, L) and the ECDAA signature made from it (the path
//! tpm2-tools 5.4 cannot drive: see tools/vtpm-sim/tests/ecdaa.rs).

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

/// An ECC P-256 signing key with the ECDAA scheme (SHA-256, count 0).
fn ecdaa_template() -> Vec<u8> {
    [
        &[0, 0x23, 0, 0x0B][..],
        &0x0004_0072u32.to_be_bytes(),
        &b2(&[]),
        &[0, 0x10],
        &[0, 0x1A, 0, 0x0B, 0, 0],
        &[0, 0x03, 0, 0x10],
        &b2(&[]),
        &b2(&[]),
    ]
    .concat()
}

fn affine(p: &[u8]) -> p256::AffinePoint {
    use p256::elliptic_curve::sec1::FromEncodedPoint;
    let xl = usize::from(u16::from_be_bytes([p[2], p[3]]));
    let (x, y) = (&p[4..4 + xl], &p[6 + xl..]);
    let ep = p256::EncodedPoint::from_affine_coordinates(
        p256::FieldBytes::from_slice(x),
        p256::FieldBytes::from_slice(y),
        false,
    );
    Option::from(p256::AffinePoint::from_encoded_point(&ep)).expect("a P-256 point")
}

fn tpm2b_point(p: &p256::AffinePoint) -> Vec<u8> {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let ep = p.to_encoded_point(false);
    b2(&[b2(ep.x().unwrap()), b2(ep.y().unwrap())].concat())
}

fn reduce(b: &[u8]) -> p256::Scalar {
    use p256::elliptic_curve::ops::Reduce;
    <p256::Scalar as Reduce<p256::U256>>::reduce_bytes(p256::FieldBytes::from_slice(b))
}

/// TPM2_Sign with ECDAA and commit counter `count`: the response.
fn ecdaa_sign(key: u32, digest: &[u8], count: &[u8]) -> Vec<u8> {
    let p = [
        &b2(digest)[..],
        &[0, 0x1A, 0, 0x0B],
        count,
        &[0x80, 0x24, 0x40, 0, 0, 7, 0, 0],
    ]
    .concat();
    cmd(0x15D, &[key], true, &p)
}

#[test]
fn commit_with_a_basepoint_gives_k_and_l_an_ecdaa_signature_verifies_against() {
    use p256::ProjectivePoint as P;
    let mut t = T(Tpm::new(MemPlatform::with_seed(29)).expect("fresh TPM"));
    t.ok(&cmd(0x144, &[], false, &[0, 0]));
    let p = [
        &[0, 4, 0, 0, 0, 0][..],
        &b2(&ecdaa_template()),
        &[0, 0, 0, 0, 0, 0],
    ]
    .concat();
    let key = u32::from_be_bytes(
        t.ok(&cmd(0x131, &[RH_OWNER], true, &p))[10..14]
            .try_into()
            .unwrap(),
    );
    // A basepoint M = (SHA-256(s2) mod p, y2): s2 chosen so that its hash is an x on the curve.
    let (s2, m) = (0u32..)
        .find_map(|i| {
            use p256::elliptic_curve::sec1::FromEncodedPoint;
            let s2 = format!("basepoint {i}").into_bytes();
            let sec1 = [&[2u8][..], &support::sha256(&[&s2])].concat();
            let ep = p256::EncodedPoint::from_bytes(&sec1).ok()?;
            Option::<p256::AffinePoint>::from(p256::AffinePoint::from_encoded_point(&ep))
                .map(|m| (s2, m))
        })
        .unwrap();
    let y2 = {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        m.to_encoded_point(false).y().unwrap().to_vec()
    };
    let commit = |p1: &[u8], y2: &[u8]| cmd(0x18B, &[key], true, &[p1, &b2(&s2), &b2(y2)].concat());
    let r = t.ok(&commit(&[0, 4, 0, 0, 0, 0], &y2));
    let (k, l) = (affine(&point_at(&r, 0)), affine(&point_at(&r, 1)));
    assert_eq!(point_at(&r, 2), vec![0, 4, 0, 0, 0, 0], "no P1: E empty");
    let count = r[r.len() - 7..r.len() - 5].to_vec();
    let digest = support::sha256(&[b"signed"]);
    let s = t.ok(&ecdaa_sign(key, &digest, &count));
    // TPMT_SIGNATURE: ECDAA, SHA-256, nonceK, s.
    assert_eq!(&s[14..18], &[0, 0x1A, 0, 0x0B]);
    let nl = usize::from(u16::from_be_bytes([s[18], s[19]]));
    let nonce_k = &s[20..20 + nl];
    let sv = reduce(&s[22 + nl..22 + nl + 32]);
    let tt = reduce(&support::sha256(&[nonce_k, &digest]));
    assert_eq!(
        (P::from(m) * sv).to_affine(),
        (P::from(l) + P::from(k) * tt).to_affine(),
        "[s]M = L + [T]K"
    );
    // The counter is spent: TPM_RC_VALUE.
    assert_eq!(rc(&t.run(&ecdaa_sign(key, &digest, &count))), 0x084);
    // P1 = M too: E = [r]M = L of the same commitment.
    let r = t.ok(&commit(&tpm2b_point(&m), &y2));
    assert_eq!(point_at(&r, 2), point_at(&r, 1), "E = L when P1 = M");
    // A basepoint off the curve: TPM_RC_ECC_POINT for s2 (parameter 2); s2 without y2:
    // TPM_RC_SIZE for y2 (parameter 3), as libtpms answers.
    let mut bad = y2.clone();
    bad[31] ^= 1;
    assert_eq!(rc(&t.run(&commit(&[0, 4, 0, 0, 0, 0], &bad))), 0x2E7);
    assert_eq!(rc(&t.run(&commit(&[0, 4, 0, 0, 0, 0], &[]))), 0x3D5);
}
