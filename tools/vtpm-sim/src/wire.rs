//! TPM 2.0 command frames as a client builds them: used by `--manufacture`, the differential
//! test and the benchmark, so there is one builder for the header and the password session.

/// A command with code `cc`, the given handles, and (with `pw`) one password session with an
/// empty password (`TPM_RS_PW`, continueSession), followed by `params`; the size is filled in.
pub fn command(cc: u32, handles: &[u32], pw: bool, params: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(if pw { 0x8002u16 } else { 0x8001 }).to_be_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&cc.to_be_bytes());
    for h in handles {
        b.extend_from_slice(&h.to_be_bytes());
    }
    if pw {
        b.extend_from_slice(&9u32.to_be_bytes());
        b.extend_from_slice(&0x4000_0009u32.to_be_bytes());
        b.extend_from_slice(&[0, 0, 1, 0, 0]);
    }
    b.extend_from_slice(params);
    let len = b.len() as u32;
    b[2..6].copy_from_slice(&len.to_be_bytes());
    b
}

/// A TPM2B: a big-endian 16-bit length, then the bytes.
pub fn tpm2b(v: &[u8]) -> Vec<u8> {
    [&(v.len() as u16).to_be_bytes()[..], v].concat()
}
