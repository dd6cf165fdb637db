//! State at rest: the files in `--state` (the TPM's seeds, proofs and NV; the EK CA's private
//! key) are sealed with AES-256-GCM under the `--state-key`, so no TPM secret is written in the
//! clear, and a file that was changed, cut, swapped for another or sealed under another key is
//! refused instead of being taken for a fresh TPM.
//!
//! Sealed file: `WVTS` | format version (1) | 12-byte random nonce | ciphertext and tag. The
//! associated data binds the magic, the version and the file's role, so the sealed CA key cannot
//! stand in for the sealed TPM state.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"WVTS";
const VERSION: u8 = 1;
const HEADER: usize = MAGIC.len() + 1 + NONCE_LEN;

/// What a sealed file holds (part of the associated data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The vTPM's permanent state.
    State,
    /// The EK certificate authority's private key.
    CaKey,
    /// swtpm's `permanent` state blob (migration).
    PermanentBlob,
    /// swtpm's `volatile` state blob: the whole instance (migration).
    VolatileBlob,
}

impl Role {
    fn label(self) -> &'static [u8] {
        match self {
            Role::State => b"vtpm-permanent-state",
            Role::CaKey => b"vtpm-ca-private-key",
            Role::PermanentBlob => b"vtpm-blob-permanent",
            Role::VolatileBlob => b"vtpm-blob-volatile",
        }
    }
}

/// Why a key file or a sealed file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot read state key {0}: {1}")]
    KeyIo(PathBuf, std::io::Error),
    #[error(
        "state key {0} must be 32 bytes, raw or as 64 hex digits (create one with `head -c 32 /dev/urandom > FILE`)"
    )]
    KeyFormat(PathBuf),
    #[error("state key {0} is readable by group or others (mode {1:o}); `chmod 600` it")]
    KeyPermissions(PathBuf, u32),
    #[error("{0} is not a sealed vTPM file (written in the clear by an older build, or not ours)")]
    NotSealed(PathBuf),
    #[error("{0} is sealed with format version {1}; this build reads version {VERSION}")]
    Version(PathBuf, u8),
    #[error("{0} does not open with this state key: wrong key, or the file was changed or swapped")]
    Open(PathBuf),
}

/// The key that seals the state folder.
pub struct StateKey(LessSafeKey);

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(..)")
    }
}

impl StateKey {
    /// Reads a key file: 32 raw bytes, or 64 hex digits (one trailing newline allowed). The
    /// file must not be readable by group or others.
    pub fn load(path: &Path) -> Result<StateKey, SealError> {
        let io = |e| SealError::KeyIo(path.to_path_buf(), e);
        let meta = std::fs::metadata(path).map_err(io)?;
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(SealError::KeyPermissions(path.to_path_buf(), mode));
            }
        }
        let bytes = std::fs::read(path).map_err(io)?;
        let raw = match bytes.len() {
            32 => bytes,
            64 | 65 if bytes.len() == 64 || bytes[64] == b'\n' => {
                hex(&bytes[..64]).ok_or_else(|| SealError::KeyFormat(path.to_path_buf()))?
            }
            _ => return Err(SealError::KeyFormat(path.to_path_buf())),
        };
        StateKey::from_bytes(&raw).ok_or_else(|| SealError::KeyFormat(path.to_path_buf()))
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(raw: &[u8]) -> Option<StateKey> {
        let key = UnboundKey::new(&AES_256_GCM, raw).ok()?;
        Some(StateKey(LessSafeKey::new(key)))
    }

    /// Seals `plain` for a file of `role`.
    pub fn seal(&self, role: Role, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        // A random 96-bit nonce per write: state writes are far too few for a collision.
        getrandom::getrandom(&mut nonce).expect("OS entropy");
        let mut out = Vec::with_capacity(HEADER + plain.len() + AES_256_GCM.tag_len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(role)),
                &mut body,
            )
            .expect("AES-GCM seals any length we write");
        out.extend_from_slice(&body);
        out
    }

    /// Opens a sealed file's bytes (`path` names it in errors).
    pub fn open(&self, role: Role, path: &Path, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < MAGIC.len() + 1 || &sealed[..MAGIC.len()] != MAGIC {
            return Err(SealError::NotSealed(path.to_path_buf()));
        }
        if sealed[MAGIC.len()] != VERSION {
            return Err(SealError::Version(path.to_path_buf(), sealed[MAGIC.len()]));
        }
        if sealed.len() < HEADER + AES_256_GCM.tag_len() {
            return Err(SealError::Open(path.to_path_buf()));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[MAGIC.len() + 1..HEADER]);
        let mut body = sealed[HEADER..].to_vec();
        let plain = self
            .0
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(role)),
                &mut body,
            )
            .map_err(|_| SealError::Open(path.to_path_buf()))?;
        Ok(plain.to_vec())
    }
}

fn aad(role: Role) -> Vec<u8> {
    [&MAGIC[..], &[VERSION], role.label()].concat()
}

fn hex(digits: &[u8]) -> Option<Vec<u8>> {
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    digits
        .chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_files_open_only_unchanged_with_their_key_and_role() {
        let key = StateKey::from_bytes(&[7; 32]).unwrap();
        let other = StateKey::from_bytes(&[8; 32]).unwrap();
        let p = Path::new("f");
        let plain = b"seeds and proofs".to_vec();
        let sealed = key.seal(Role::State, &plain);
        assert!(
            !sealed.windows(plain.len()).any(|w| w == plain),
            "plaintext visible"
        );
        assert_eq!(key.open(Role::State, p, &sealed).unwrap(), plain);
        // Two seals of the same bytes differ (fresh nonce).
        assert_ne!(key.seal(Role::State, &plain), sealed);
        let cases: Vec<(&str, Vec<u8>, &StateKey, Role)> = vec![
            ("other key", sealed.clone(), &other, Role::State),
            ("other role", sealed.clone(), &key, Role::CaKey),
            (
                "flipped byte",
                {
                    let mut s = sealed.clone();
                    *s.last_mut().unwrap() ^= 1;
                    s
                },
                &key,
                Role::State,
            ),
            (
                "cut short",
                sealed[..sealed.len() - 1].to_vec(),
                &key,
                Role::State,
            ),
            ("header only", sealed[..HEADER].to_vec(), &key, Role::State),
        ];
        for (what, bytes, k, role) in cases {
            assert!(
                matches!(k.open(role, p, &bytes), Err(SealError::Open(_))),
                "{what}: opened"
            );
        }
        assert!(matches!(
            key.open(Role::State, p, &plain),
            Err(SealError::NotSealed(_))
        ));
        let mut v2 = sealed.clone();
        v2[4] = 2;
        assert!(matches!(
            key.open(Role::State, p, &v2),
            Err(SealError::Version(_, 2))
        ));
    }

    #[test]
    fn key_files_are_raw_or_hex_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("vtpm-seal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, bytes: &[u8], mode: u32| {
            let p = dir.join(name);
            std::fs::write(&p, bytes).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p
        };
        let hex64 = "ab".repeat(32);
        let ok = [
            write("raw", &[1; 32], 0o600),
            write("hex", hex64.as_bytes(), 0o400),
            write("hexnl", format!("{hex64}\n").as_bytes(), 0o600),
        ];
        for p in ok {
            assert!(StateKey::load(&p).is_ok(), "{}", p.display());
        }
        let bad = [
            (write("short", &[1; 31], 0o600), "KeyFormat"),
            (
                write("nothex", "zz".repeat(32).as_bytes(), 0o600),
                "KeyFormat",
            ),
            (write("shared", &[1; 32], 0o640), "KeyPermissions"),
        ];
        for (p, want) in bad {
            let e = StateKey::load(&p).unwrap_err();
            assert!(format!("{e:?}").starts_with(want), "{}: {e:?}", p.display());
        }
        assert!(matches!(
            StateKey::load(&dir.join("missing")),
            Err(SealError::KeyIo(..))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
