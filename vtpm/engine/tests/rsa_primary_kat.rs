//! Known answers for RSA primary keys: a fixed TPM seed and template must always derive the same
//! RSA-2048 key, checked by the SHA-256 of its modulus.
//!
//! CreatePrimary is deterministic by design: a deployment re-creates its EK and SRK from the
//! hierarchy seeds after every restart, and an EK certificate in NV vouches for one exact
//! public key. The modulus depends on every step between seed and key: the KDF and DRBG, the
//! prime search (sieve, candidate order, Miller-Rabin rounds and how their random bases are
//! drawn). A change to any of them silently swaps every RSA primary of every existing TPM
//! state, so these values must never change without a state-format migration; if this test
//! fails, the change is what needs fixing, not the expected digest.

use sha2::{Digest, Sha256};
use warden_vtpm::{MemPlatform, Tpm};

const RH_OWNER: u32 = 0x4000_0001;
const RH_ENDORSEMENT: u32 = 0x4000_000B;

/// A command with an empty password session for each handle.
fn cmd(cc: u32, handles: &[u32], params: &[u8]) -> Vec<u8> {
    let mut b = vec![0x80, 0x02, 0, 0, 0, 0];
    b.extend_from_slice(&cc.to_be_bytes());
    for h in handles {
        b.extend_from_slice(&h.to_be_bytes());
    }
    let area = [0x40, 0, 0, 9, 0, 0, 1, 0, 0].repeat(handles.len());
    b.extend_from_slice(&(area.len() as u32).to_be_bytes());
    b.extend_from_slice(&area);
    b.extend_from_slice(params);
    let len = b.len() as u32;
    b[2..6].copy_from_slice(&len.to_be_bytes());
    b
}

/// TPM2B_PUBLIC of an RSA-2048 key, exponent 65537, empty policy and unique.
fn rsa_template(attrs: u32, symmetric: &[u8], scheme: &[u8]) -> Vec<u8> {
    let mut area = vec![0x00, 0x01, 0x00, 0x0B];
    area.extend_from_slice(&attrs.to_be_bytes());
    area.extend_from_slice(&[0, 0]);
    area.extend_from_slice(symmetric);
    area.extend_from_slice(scheme);
    area.extend_from_slice(&[0x08, 0x00, 0, 0, 0, 0, 0, 0]);
    let mut t = (area.len() as u16).to_be_bytes().to_vec();
    t.extend_from_slice(&area);
    t
}

/// The modulus in a CreatePrimary response for a template built by `rsa_template`.
fn modulus(resp: &[u8], template: &[u8]) -> Vec<u8> {
    assert_eq!(
        &resp[6..10],
        &[0, 0, 0, 0],
        "CreatePrimary failed: {resp:02x?}"
    );
    // Header, handle, parameterSize, then TPM2B_PUBLIC: the template up to its empty unique
    // field, then the unique field filled in.
    let start = 10 + 4 + 4;
    let fixed = template.len() - 2;
    assert_eq!(
        &resp[start + 2..start + fixed],
        &template[2..fixed],
        "public area"
    );
    let n = start + fixed;
    let len = usize::from(u16::from_be_bytes([resp[n], resp[n + 1]]));
    resp[n + 2..n + 2 + len].to_vec()
}

#[test]
fn rsa_primaries_from_a_fixed_seed_never_change() {
    let signing = rsa_template(0x0004_0072, &[0x00, 0x10], &[0x00, 0x14, 0x00, 0x0B]);
    let storage = rsa_template(
        0x0003_0072,
        &[0x00, 0x06, 0x00, 0x80, 0x00, 0x43],
        &[0x00, 0x10],
    );
    let cases = [
        (
            RH_OWNER,
            &signing,
            "1d6434911e5677f80bcf7970dc524d2321e000da415c043aed798d04814d545d",
        ),
        (
            RH_ENDORSEMENT,
            &storage,
            "d9c198c5a914582ba96745c2995e4e8183a5db1fcb3e51f42a3388dbec670092",
        ),
    ];
    let mut tpm = Tpm::new(MemPlatform::with_seed(20_261_126)).expect("fresh TPM");
    let startup = [0x80, 0x01, 0, 0, 0, 12, 0, 0, 1, 0x44, 0, 0];
    assert_eq!(&tpm.execute(0, &startup)[6..10], &[0, 0, 0, 0]);
    for (hierarchy, template, want) in cases {
        let mut params = vec![0, 4, 0, 0, 0, 0];
        params.extend_from_slice(template);
        params.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        let resp = tpm.execute(0, &cmd(0x131, &[hierarchy], &params));
        let n = modulus(&resp, template);
        assert_eq!(n.len(), 256, "RSA-2048 modulus");
        let got: String = Sha256::digest(&n)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            got, want,
            "SHA-256 of the modulus, hierarchy {hierarchy:#x}"
        );
    }
}
