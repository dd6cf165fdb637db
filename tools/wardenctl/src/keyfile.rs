//! Operator key files: the P-256 secret sealed with AES-256-GCM under a key derived from a
//! passphrase (PBKDF2-HMAC-SHA256), so no operator secret lies on disk in the clear. The public
//! key is stored beside it in the clear (and authenticated as the AEAD's associated data).

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::pbkdf2;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;
use warden_mgmt_proto::Signer;

use crate::{hex, unhex};

const FORMAT: &str = "warden-operator-key/1";
/// PBKDF2 rounds (OWASP's 2023 floor for PBKDF2-HMAC-SHA256 is 600 000).
const ITERATIONS: u32 = 600_000;

#[derive(Debug, Serialize, Deserialize)]
struct KeyFile {
    format: String,
    /// SEC1 compressed public key, hex: the form the operator list takes.
    public: String,
    kdf: String,
    iterations: u32,
    salt: String,
    nonce: String,
    /// The 32-byte secret scalar and the GCM tag, hex.
    sealed: String,
}

/// Why a key file cannot be written or opened.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "no passphrase: set WARDEN_KEY_PASSPHRASE or pass --passphrase-file (key files are sealed)"
    )]
    NoPassphrase,
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    #[error("not a Warden operator key file: {0}")]
    Format(String),
    #[error("wrong passphrase, or the key file was altered")]
    Unseal,
    #[error("the system random generator failed")]
    Random,
}

fn derive(passphrase: &[u8], salt: &[u8], iterations: u32) -> Result<LessSafeKey, KeyError> {
    let rounds =
        NonZeroU32::new(iterations).ok_or_else(|| KeyError::Format("iterations is 0".into()))?;
    let mut key = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        salt,
        passphrase,
        &mut key,
    );
    let unbound = UnboundKey::new(&AES_256_GCM, &key).map_err(|_| KeyError::Random)?;
    Ok(LessSafeKey::new(unbound))
}

/// A fresh operator key, sealed under `passphrase`: (file contents, the signer).
pub fn generate(passphrase: &[u8]) -> Result<(String, Signer), KeyError> {
    if passphrase.is_empty() {
        return Err(KeyError::EmptyPassphrase);
    }
    let rng = SystemRandom::new();
    let signer = loop {
        let mut secret = [0u8; 32];
        rng.fill(&mut secret).map_err(|_| KeyError::Random)?;
        // Out-of-range scalars (probability ~2^-32) are drawn again.
        if let Some(s) = Signer::from_secret(&secret) {
            break s;
        }
    };
    let (mut salt, mut nonce) = ([0u8; 16], [0u8; 12]);
    rng.fill(&mut salt).map_err(|_| KeyError::Random)?;
    rng.fill(&mut nonce).map_err(|_| KeyError::Random)?;
    let public = signer.public_hex();
    let key = derive(passphrase, &salt, ITERATIONS)?;
    let mut buf = signer.secret().to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(public.as_bytes()),
        &mut buf,
    )
    .map_err(|_| KeyError::Random)?;
    let file = KeyFile {
        format: FORMAT.into(),
        public,
        kdf: "pbkdf2-hmac-sha256".into(),
        iterations: ITERATIONS,
        salt: hex(&salt),
        nonce: hex(&nonce),
        sealed: hex(&buf),
    };
    Ok((
        serde_json::to_string_pretty(&file).unwrap_or_default() + "\n",
        signer,
    ))
}

/// The public key of a key file (no passphrase needed).
pub fn public(text: &str) -> Result<String, KeyError> {
    parse(text).map(|f| f.public)
}

fn parse(text: &str) -> Result<KeyFile, KeyError> {
    let f: KeyFile = serde_json::from_str(text).map_err(|e| KeyError::Format(e.to_string()))?;
    if f.format != FORMAT || f.kdf != "pbkdf2-hmac-sha256" {
        return Err(KeyError::Format(format!(
            "format {} / kdf {}",
            f.format, f.kdf
        )));
    }
    Ok(f)
}

/// Opens a key file with `passphrase`.
pub fn open(text: &str, passphrase: &[u8]) -> Result<Signer, KeyError> {
    let f = parse(text)?;
    let field =
        |name: &str, v: &str| unhex(v).map_err(|e| KeyError::Format(format!("{name}: {e}")));
    let salt = field("salt", &f.salt)?;
    let nonce: [u8; 12] = field("nonce", &f.nonce)?
        .try_into()
        .map_err(|_| KeyError::Format("nonce length".into()))?;
    let mut sealed = field("sealed", &f.sealed)?;
    let key = derive(passphrase, &salt, f.iterations)?;
    let secret = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(f.public.as_bytes()),
            &mut sealed,
        )
        .map_err(|_| KeyError::Unseal)?;
    let signer = Signer::from_secret(secret).ok_or(KeyError::Unseal)?;
    if signer.public_hex() != f.public {
        return Err(KeyError::Unseal);
    }
    Ok(signer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_only_with_its_passphrase_and_unaltered() {
        let (text, signer) = generate(b"correct horse").unwrap();
        assert!(
            !text.contains(&hex(&signer.secret())),
            "the secret is not on disk in the clear"
        );
        assert_eq!(public(&text).unwrap(), signer.public_hex());
        assert_eq!(open(&text, b"correct horse").unwrap().id(), signer.id());
        assert!(matches!(open(&text, b"wrong"), Err(KeyError::Unseal)));
        let other = generate(b"x").unwrap().1.public_hex();
        let swapped = text.replace(&signer.public_hex(), &other);
        assert!(
            matches!(open(&swapped, b"correct horse"), Err(KeyError::Unseal)),
            "public key bound as AAD"
        );
        assert!(matches!(open("{}", b"x"), Err(KeyError::Format(_))));
        assert!(matches!(generate(b""), Err(KeyError::EmptyPassphrase)));
    }
}
