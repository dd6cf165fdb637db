//! Operator keys: key ids, the signed byte string, verification, signing and the operator list.
//!
//! ECDSA P-256 with SHA-256: the curve the platform's attestation key already uses, so one
//! RustCrypto implementation (`p256`, no_std, already in the tree) serves both, and signing is
//! deterministic (RFC 6979), so the management domain needs no randomness to check requests.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::message::{Envelope, NONCE_LEN, Reply, Response};
use crate::role::Role;

/// Bytes of a SEC1 compressed public key.
pub const PUBLIC_KEY_LEN: usize = 33;
/// Bytes of a signature (`r || s`).
pub const SIGNATURE_LEN: usize = 64;
/// Separates management signatures from any other use of an operator key.
const DOMAIN_TAG: &[u8] = b"warden-mgmt/1\0";

/// An operator key's id: SHA-256 of its SEC1 compressed public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyId(pub [u8; 32]);

impl KeyId {
    pub fn of(key: &VerifyingKey) -> KeyId {
        KeyId(Sha256::digest(key.to_encoded_point(true).as_bytes()).into())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl fmt::Display for KeyId {
    /// The first 8 bytes in hex: enough to tell operators apart in logs and tables.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0[..8].iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// The exact bytes an operator signs for one request.
pub fn signed_bytes(nonce: &[u8; NONCE_LEN], key: &KeyId, seq: u64, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN_TAG.len() + NONCE_LEN + 32 + 8 + body.len());
    m.extend_from_slice(DOMAIN_TAG);
    m.extend_from_slice(nonce);
    m.extend_from_slice(&key.0);
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend_from_slice(body);
    m
}

/// Separates the management domain's response signatures from request signatures.
const RESPONSE_TAG: &[u8] = b"warden-mgmt-response/1\0";

/// The exact bytes the management domain signs for one response: bound to the connection's
/// nonce (no replay across connections) and the request's sequence number (no replay within
/// one), over the postcard bytes of the result.
pub fn response_signed_bytes(
    nonce: &[u8; NONCE_LEN],
    seq: u64,
    result: &Result<Reply, Error>,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(RESPONSE_TAG.len() + NONCE_LEN + 8 + 64);
    m.extend_from_slice(RESPONSE_TAG);
    m.extend_from_slice(nonce);
    m.extend_from_slice(&seq.to_le_bytes());
    // Postcard encodes a value one way only, so the client's re-encoding of what it decoded
    // is what the server signed.
    m.extend_from_slice(&postcard::to_allocvec(result).unwrap_or_default());
    m
}

/// Whether `response` is signed by `key` for the connection with `nonce`.
pub fn verify_response(key: &VerifyingKey, nonce: &[u8; NONCE_LEN], response: &Response) -> bool {
    let Ok(sig) = Signature::from_slice(&response.signature) else {
        return false;
    };
    key.verify(
        &response_signed_bytes(nonce, response.seq, &response.result),
        &sig,
    )
    .is_ok()
}

/// A SEC1-encoded P-256 public key, if it is one.
pub fn public_key(sec1: &[u8]) -> Option<VerifyingKey> {
    VerifyingKey::from_sec1_bytes(sec1).ok()
}

/// Whether `env`'s signature verifies under `key` for the connection with `nonce`.
pub fn verify(key: &VerifyingKey, nonce: &[u8; NONCE_LEN], env: &Envelope) -> bool {
    let Ok(sig) = Signature::from_slice(&env.signature) else {
        return false;
    };
    key.verify(&signed_bytes(nonce, &env.key, env.seq, &env.body), &sig)
        .is_ok()
}

/// A signing key: an operator's (held by `wardenctl`, never by the server), or the management
/// domain's response key (generated in the domain at boot, never leaves it).
#[derive(Debug, Clone)]
pub struct Signer {
    key: SigningKey,
}

impl Signer {
    /// The key whose secret scalar is `secret` (32 bytes, big-endian); `None` if out of range.
    pub fn from_secret(secret: &[u8]) -> Option<Signer> {
        SigningKey::from_slice(secret)
            .ok()
            .map(|key| Signer { key })
    }

    pub fn secret(&self) -> [u8; 32] {
        self.key.to_bytes().into()
    }

    pub fn public(&self) -> VerifyingKey {
        *self.key.verifying_key()
    }

    /// The SEC1 compressed public key in hex (the operator list's form).
    pub fn public_hex(&self) -> String {
        hex(self.public().to_encoded_point(true).as_bytes())
    }

    pub fn id(&self) -> KeyId {
        KeyId::of(&self.public())
    }

    /// Signs `body` (a request's postcard bytes) as request `seq` of the connection with `nonce`.
    pub fn envelope(&self, nonce: &[u8; NONCE_LEN], seq: u64, body: Vec<u8>) -> Envelope {
        let key = self.id();
        let sig: Signature = self.key.sign(&signed_bytes(nonce, &key, seq, &body));
        Envelope {
            version: crate::VERSION,
            key,
            seq,
            body,
            signature: sig.to_bytes().to_vec(),
        }
    }
}

impl Signer {
    /// The SEC1 compressed public key (what a [`crate::Hello`] carries).
    pub fn public_sec1(&self) -> Vec<u8> {
        self.public().to_encoded_point(true).as_bytes().to_vec()
    }

    /// The signed response to request `seq` of the connection with `nonce`.
    pub fn response(
        &self,
        nonce: &[u8; NONCE_LEN],
        seq: u64,
        result: Result<Reply, Error>,
    ) -> Response {
        let sig: Signature = self.key.sign(&response_signed_bytes(nonce, seq, &result));
        Response {
            seq,
            result,
            signature: sig.to_bytes().to_vec(),
        }
    }
}

/// One configured operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub name: String,
    pub role: Role,
    pub key: VerifyingKey,
    pub id: KeyId,
}

/// Why an operator list does not parse (1-based line numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorsError {
    /// Not `ROLE KEY NAME`.
    Syntax {
        line: usize,
    },
    UnknownRole {
        line: usize,
    },
    /// Not the hex of a SEC1 compressed P-256 point.
    BadKey {
        line: usize,
    },
    /// The same key twice.
    DuplicateKey {
        line: usize,
    },
    Empty,
}

impl fmt::Display for OperatorsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OperatorsError::Syntax { line } => {
                write!(f, "line {line}: expected `ROLE PUBLIC-KEY-HEX NAME`")
            }
            OperatorsError::UnknownRole { line } => {
                write!(f, "line {line}: role must be admin, operator or viewer")
            }
            OperatorsError::BadKey { line } => {
                write!(
                    f,
                    "line {line}: not a compressed P-256 public key in hex (66 digits)"
                )
            }
            OperatorsError::DuplicateKey { line } => {
                write!(f, "line {line}: this key is already listed")
            }
            OperatorsError::Empty => f.write_str("no operator listed"),
        }
    }
}

/// The operators the server accepts, parsed from text: one `ROLE PUBLIC-KEY-HEX NAME` per line
/// (`#` comments and blank lines ignored), or the same separated by `;` with `/` (or `,`)
/// between the words (manifest arguments hold no newlines, spaces or commas).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorList {
    operators: Vec<Operator>,
}

impl OperatorList {
    pub fn parse(text: &str) -> Result<OperatorList, OperatorsError> {
        let mut operators: Vec<Operator> = Vec::new();
        for (i, line) in text.split(['\n', ';']).enumerate() {
            let line_no = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line
                .split(|c: char| c.is_ascii_whitespace() || c == ',' || c == '/')
                .filter(|w| !w.is_empty());
            let (Some(role), Some(key), Some(name), None) =
                (words.next(), words.next(), words.next(), words.next())
            else {
                return Err(OperatorsError::Syntax { line: line_no });
            };
            let role = Role::parse(role).ok_or(OperatorsError::UnknownRole { line: line_no })?;
            let key = unhex(key)
                .filter(|k| k.len() == PUBLIC_KEY_LEN && matches!(k[0], 2 | 3))
                .and_then(|k| VerifyingKey::from_sec1_bytes(&k).ok())
                .ok_or(OperatorsError::BadKey { line: line_no })?;
            let id = KeyId::of(&key);
            if operators.iter().any(|o| o.id == id) {
                return Err(OperatorsError::DuplicateKey { line: line_no });
            }
            operators.push(Operator {
                name: name.into(),
                role,
                key,
                id,
            });
        }
        if operators.is_empty() {
            return Err(OperatorsError::Empty);
        }
        Ok(OperatorList { operators })
    }

    pub fn find(&self, id: &KeyId) -> Option<&Operator> {
        self.operators.iter().find(|o| o.id == *id)
    }

    pub fn len(&self) -> usize {
        self.operators.len()
    }

    pub fn is_empty(&self) -> bool {
        self.operators.is_empty()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use core::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
