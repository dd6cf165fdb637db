//! `wardenctl` as a library: the reference-manifest format and the attestation verifier, shared
//! by the `wardenctl` binary and `cargo xtask attest`; the checkpoint-image verifier; the
//! management client and operator key files.
#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod keyfile;
pub mod mgmt;
pub mod reference;
pub mod verify;

/// Lower-case hex of `bytes`.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses hex (upper or lower case, no separators).
///
/// # Errors
///
/// A message naming the first bad character or an odd length.
pub fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits ({})", s.len()));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(s.get(i..i + 2).ok_or("not ASCII")?, 16)
                .map_err(|_| format!("bad hex at {i}"))
        })
        .collect()
}
