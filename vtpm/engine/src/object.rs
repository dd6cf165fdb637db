//! TPM objects: the public area (TPMT_PUBLIC) parsed and re-marshalled, the sensitive area,
//! names, key generation and the asymmetric operations that keys support.

use crate::crypto::rsa_key::RsaKey;
use crate::crypto::rsa_pad;
use crate::crypto::{HashAlg, alg};
use crate::marshal::{Reader, Writer};
use crate::rc::Rc;
use alloc::sync::Arc;
use alloc::vec::Vec;
use rsa::BigUint;
use zeroize::Zeroize;

/// TPMA_OBJECT bits.
#[allow(dead_code)]
pub(crate) mod attr {
    pub(crate) const FIXED_TPM: u32 = 1 << 1;
    pub(crate) const ST_CLEAR: u32 = 1 << 2;
    pub(crate) const FIXED_PARENT: u32 = 1 << 4;
    pub(crate) const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
    pub(crate) const USER_WITH_AUTH: u32 = 1 << 6;
    pub(crate) const ADMIN_WITH_POLICY: u32 = 1 << 7;
    pub(crate) const NO_DA: u32 = 1 << 10;
    pub(crate) const ENCRYPTED_DUPLICATION: u32 = 1 << 11;
    pub(crate) const RESTRICTED: u32 = 1 << 16;
    pub(crate) const DECRYPT: u32 = 1 << 17;
    pub(crate) const SIGN: u32 = 1 << 18;
    pub(crate) const X509SIGN: u32 = 1 << 19;
    /// Bits that are reserved in TPMA_OBJECT.
    pub(crate) const RESERVED: u32 = 1 | (1 << 3) | (0b11 << 8) | (0xF << 12) | 0xFFF0_0000;
}

/// TPMT_SYM_DEF_OBJECT (alg NULL means none).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct SymDef {
    pub(crate) alg: u16,
    pub(crate) bits: u16,
    pub(crate) mode: u16,
}

impl SymDef {
    pub(crate) const NULL: SymDef = SymDef {
        alg: alg::NULL,
        bits: 0,
        mode: 0,
    };
    /// Parses a TPMT_SYM_DEF_OBJECT (`session` = TPMT_SYM_DEF, which also allows XOR).
    pub(crate) fn parse(r: &mut Reader<'_>, session: bool) -> Result<Self, Rc> {
        let a = r.u16()?;
        match a {
            alg::NULL => Ok(SymDef::NULL),
            alg::AES => {
                let bits = r.u16()?;
                let mode = r.u16()?;
                if !matches!(bits, 128 | 256) {
                    return Err(Rc::KEY_SIZE);
                }
                if mode != alg::CFB {
                    return Err(Rc::MODE);
                }
                Ok(SymDef { alg: a, bits, mode })
            }
            alg::XOR if session => {
                let h = r.u16()?;
                HashAlg::from_alg(h)?;
                Ok(SymDef {
                    alg: a,
                    bits: h,
                    mode: alg::NULL,
                })
            }
            _ => Err(Rc::SYMMETRIC),
        }
    }
    pub(crate) fn write(&self, w: &mut Writer) {
        w.u16(self.alg);
        match self.alg {
            alg::NULL => {}
            alg::XOR => {
                w.u16(self.bits);
            }
            _ => {
                w.u16(self.bits).u16(self.mode);
            }
        }
    }
}

/// A signing/encryption/KDF scheme: algorithm plus hash (NULL when the algorithm is NULL).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Scheme {
    pub(crate) alg: u16,
    pub(crate) hash: u16,
    /// TPMS_SCHEME_ECDAA's commit counter (0 for every other scheme).
    pub(crate) count: u16,
}

impl Scheme {
    pub(crate) const NULL: Scheme = Scheme {
        alg: alg::NULL,
        hash: alg::NULL,
        count: 0,
    };
    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, Rc> {
        let a = r.u16()?;
        if a == alg::NULL {
            return Ok(Scheme::NULL);
        }
        if a == alg::RSAES {
            return Ok(Scheme {
                alg: a,
                hash: alg::NULL,
                count: 0,
            });
        }
        let hash = r.u16()?;
        if a == alg::ECDAA {
            let count = r.u16()?;
            HashAlg::from_alg(hash)?;
            return Ok(Scheme {
                alg: a,
                hash,
                count,
            });
        }
        if !matches!(
            a,
            alg::RSASSA
                | alg::RSAPSS
                | alg::OAEP
                | alg::ECDSA
                | alg::ECDH
                | alg::HMAC
                | alg::RSAES
                | alg::KDF1_SP800_108
                | alg::KDF1_SP800_56A
                | alg::MGF1
                | alg::XOR
        ) {
            return Err(Rc::SCHEME);
        }
        HashAlg::from_alg(hash)?;
        Ok(Scheme {
            alg: a,
            hash,
            count: 0,
        })
    }
    pub(crate) fn write(&self, w: &mut Writer) {
        w.u16(self.alg);
        if self.alg != alg::NULL && self.alg != alg::RSAES {
            w.u16(self.hash);
        }
        if self.alg == alg::ECDAA {
            w.u16(self.count);
        }
    }
}

/// The type-specific part of TPMT_PUBLIC.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) enum Params {
    Rsa {
        sym: SymDef,
        scheme: Scheme,
        bits: u16,
        exponent: u32,
        n: Vec<u8>,
    },
    Ecc {
        sym: SymDef,
        scheme: Scheme,
        curve: u16,
        kdf: Scheme,
        x: Vec<u8>,
        y: Vec<u8>,
    },
    KeyedHash {
        scheme: Scheme,
        kdf: u16,
        unique: Vec<u8>,
    },
    Sym {
        sym: SymDef,
        unique: Vec<u8>,
    },
}

/// TPMT_PUBLIC.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Public {
    pub(crate) name_alg: u16,
    pub(crate) attrs: u32,
    pub(crate) policy: Vec<u8>,
    pub(crate) params: Params,
}

impl Public {
    pub(crate) fn ty(&self) -> u16 {
        match self.params {
            Params::Rsa { .. } => alg::RSA,
            Params::Ecc { .. } => alg::ECC,
            Params::KeyedHash { .. } => alg::KEYEDHASH,
            Params::Sym { .. } => alg::SYMCIPHER,
        }
    }
    pub(crate) fn hash(&self) -> Result<HashAlg, Rc> {
        HashAlg::from_alg(self.name_alg)
    }
    pub(crate) fn has(&self, a: u32) -> bool {
        self.attrs & a != 0
    }
    pub(crate) fn is_storage_parent(&self) -> bool {
        self.has(attr::RESTRICTED) && self.has(attr::DECRYPT) && !self.has(attr::SIGN)
    }
    pub(crate) fn sym(&self) -> SymDef {
        match &self.params {
            Params::Rsa { sym, .. } | Params::Ecc { sym, .. } | Params::Sym { sym, .. } => *sym,
            Params::KeyedHash { .. } => SymDef::NULL,
        }
    }
    pub(crate) fn scheme(&self) -> Scheme {
        match &self.params {
            Params::Rsa { scheme, .. }
            | Params::Ecc { scheme, .. }
            | Params::KeyedHash { scheme, .. } => *scheme,
            Params::Sym { .. } => Scheme::NULL,
        }
    }

    /// Parses the body of a TPM2B_PUBLIC (a TPMT_PUBLIC), checking what Part 2 requires.
    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, Rc> {
        let ty = r.u16()?;
        let name_alg = r.u16()?;
        if name_alg != alg::NULL {
            HashAlg::from_alg(name_alg)?;
        }
        let attrs = r.u32()?;
        if attrs & attr::RESERVED != 0 {
            return Err(Rc::RESERVED_BITS);
        }
        let policy = r.tpm2b(64)?.to_vec();
        let params = parse_parms(ty, r, true)?;
        Ok(Public {
            name_alg,
            attrs,
            policy,
            params,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.u16(self.ty())
            .u16(self.name_alg)
            .u32(self.attrs)
            .tpm2b(&self.policy);
        match &self.params {
            Params::Rsa {
                sym,
                scheme,
                bits,
                exponent,
                n,
            } => {
                sym.write(w);
                scheme.write(w);
                w.u16(*bits).u32(*exponent).tpm2b(n);
            }
            Params::Ecc {
                sym,
                scheme,
                curve,
                kdf,
                x,
                y,
            } => {
                sym.write(w);
                scheme.write(w);
                w.u16(*curve);
                kdf.write(w);
                w.tpm2b(x).tpm2b(y);
            }
            Params::KeyedHash {
                scheme,
                kdf,
                unique,
            } => {
                w.u16(scheme.alg);
                if scheme.alg != alg::NULL {
                    w.u16(scheme.hash);
                }
                if scheme.alg == alg::XOR {
                    w.u16(*kdf);
                }
                w.tpm2b(unique);
            }
            Params::Sym { sym, unique } => {
                sym.write(w);
                w.tpm2b(unique);
            }
        }
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_vec()
    }

    /// TPM2B_PUBLIC.
    pub(crate) fn write_2b(&self, w: &mut Writer) {
        w.tpm2b(&self.to_bytes());
    }

    /// The object's Name: nameAlg || H(TPMT_PUBLIC), or just the handle for nameAlg NULL.
    pub(crate) fn name(&self) -> Vec<u8> {
        match HashAlg::from_alg(self.name_alg) {
            Ok(h) => {
                let mut n = Vec::from(self.name_alg.to_be_bytes());
                n.extend_from_slice(&h.digest(&[&self.to_bytes()]));
                n
            }
            Err(_) => Vec::new(),
        }
    }

    /// Checks the attribute combinations Part 3 §12.1 (Create) requires.
    pub(crate) fn check_create(&self) -> Result<(), Rc> {
        let a = |b| self.has(b);
        if a(attr::FIXED_TPM) && !a(attr::FIXED_PARENT) {
            return Err(Rc::ATTRIBUTES);
        }
        if self.name_alg == alg::NULL {
            return Err(Rc::HASH);
        }
        if a(attr::RESTRICTED) && a(attr::SIGN) && a(attr::DECRYPT) {
            return Err(Rc::ATTRIBUTES);
        }
        match &self.params {
            Params::KeyedHash { scheme, .. } => {
                if !a(attr::SIGN) && !a(attr::DECRYPT) {
                    // A sealed data object: the TPM cannot generate the data.
                    if a(attr::SENSITIVE_DATA_ORIGIN) {
                        return Err(Rc::ATTRIBUTES);
                    }
                    if scheme.alg != alg::NULL {
                        return Err(Rc::SCHEME);
                    }
                }
                if a(attr::SIGN) && a(attr::DECRYPT) && scheme.alg != alg::NULL {
                    return Err(Rc::SCHEME);
                }
            }
            // The exponent is key generation's to refuse (TPM_RC_RANGE, unnumbered, for any e
            // outside 2^16 < e prime: even ones included, as libtpms answers).
            Params::Rsa { sym, scheme, .. } => {
                check_asym(self, *sym, *scheme)?;
            }
            Params::Ecc {
                sym, scheme, kdf, ..
            } => {
                check_asym(self, *sym, *scheme)?;
                if kdf.alg != alg::NULL {
                    return Err(Rc::KDF);
                }
            }
            Params::Sym { .. } => {
                if a(attr::RESTRICTED) && a(attr::SIGN) {
                    return Err(Rc::ATTRIBUTES);
                }
            }
        }
        Ok(())
    }
}

impl Public {
    /// The public-area validation Load runs on what it brings in (and Import below a fixedTPM
    /// parent, with `parent` None), in the order and with the codes of the reference's
    /// PublicAttributesValidation and SchemeChecks: unlike Create's checks it knows the
    /// parent, and it leaves out what only concerns the TPM generating the object
    /// (sensitiveDataOrigin of a data object). Codes carry no number: the caller adds it.
    pub(crate) fn check_load(&self, parent: Option<&Public>) -> Result<(), Rc> {
        let a = |b| self.has(b);
        if self.name_alg == alg::NULL {
            return Err(Rc::HASH);
        }
        let hs = self.hash()?.size();
        if !self.policy.is_empty() && self.policy.len() != hs {
            return Err(Rc::SIZE);
        }
        match parent {
            // Below a parent that may move, the object cannot be fixed to this TPM.
            Some(p) if !p.has(attr::FIXED_TPM) => {
                if a(attr::FIXED_TPM) {
                    return Err(Rc::ATTRIBUTES);
                }
            }
            _ => {
                if a(attr::FIXED_TPM) != a(attr::FIXED_PARENT) {
                    return Err(Rc::ATTRIBUTES);
                }
            }
        }
        if a(attr::SIGN) == a(attr::DECRYPT) {
            // A restricted key is for exactly one of the two; only a data object (keyed
            // hash) may be for neither.
            if a(attr::RESTRICTED) {
                return Err(Rc::ATTRIBUTES);
            }
            if !a(attr::SIGN) && !matches!(self.params, Params::KeyedHash { .. }) {
                return Err(Rc::ATTRIBUTES);
            }
        }
        crate::cmd::duplication::check_duplication_attrs(self, parent)?;
        self.scheme_checks(parent)
    }

    /// SchemeChecks of the reference implementation.
    fn scheme_checks(&self, parent: Option<&Public>) -> Result<(), Rc> {
        let a = |b| self.has(b);
        let (sign, decrypt, restricted) = (a(attr::SIGN), a(attr::DECRYPT), a(attr::RESTRICTED));
        let sym = match &self.params {
            // Only CFB parses, a valid mode for decryption and signing alike.
            Params::Sym { sym, .. } => Some(*sym),
            Params::KeyedHash { scheme, kdf, .. } => {
                if sign == decrypt {
                    if scheme.alg != alg::NULL {
                        return Err(Rc::SCHEME);
                    }
                } else if sign {
                    if scheme.alg != alg::HMAC {
                        return Err(Rc::SCHEME);
                    }
                } else {
                    if scheme.alg != alg::XOR {
                        return Err(Rc::SCHEME);
                    }
                    // A derivation parent needs the SP800-108 KDF and a hash.
                    if restricted {
                        if *kdf != alg::KDF1_SP800_108 {
                            return Err(Rc::SCHEME);
                        }
                        if HashAlg::from_alg(scheme.hash).is_err() {
                            return Err(Rc::HASH);
                        }
                    }
                }
                None
            }
            Params::Rsa { sym, scheme, .. } | Params::Ecc { sym, scheme, .. } => {
                let rsa = matches!(self.params, Params::Rsa { .. });
                let sign_scheme = if rsa {
                    matches!(scheme.alg, alg::RSASSA | alg::RSAPSS)
                } else {
                    matches!(scheme.alg, alg::ECDSA | alg::ECDAA)
                };
                let decrypt_scheme = if rsa {
                    matches!(scheme.alg, alg::OAEP | alg::RSAES)
                } else {
                    scheme.alg == alg::ECDH
                };
                if sign == decrypt {
                    // No way to name both a signing and a decryption scheme.
                    if scheme.alg != alg::NULL {
                        return Err(Rc::SCHEME);
                    }
                } else if sign {
                    if sign_scheme {
                        if scheme.hash == alg::NULL {
                            return Err(Rc::SCHEME);
                        }
                    } else if restricted || scheme.alg != alg::NULL {
                        return Err(Rc::SCHEME);
                    }
                } else if restricted {
                    if scheme.alg != alg::NULL {
                        return Err(Rc::SCHEME);
                    }
                } else if scheme.alg != alg::NULL && !decrypt_scheme {
                    return Err(Rc::SCHEME);
                }
                // Only a parent (restricted decryption key) has symmetric algorithms.
                if !(restricted && decrypt) && sym.alg != alg::NULL {
                    return Err(Rc::SYMMETRIC);
                }
                if let Params::Ecc { kdf, .. } = &self.params
                    && kdf.alg != alg::NULL
                {
                    return Err(Rc::KDF);
                }
                Some(*sym)
            }
        };
        // A parent needs symmetric algorithms; a non-duplicable one those of its own parent.
        if let Some(sym) = sym
            && restricted
            && decrypt
        {
            if sym.alg == alg::NULL {
                return Err(Rc::SYMMETRIC);
            }
            if let Some(p) = parent
                && a(attr::FIXED_PARENT)
            {
                if self.name_alg != p.name_alg {
                    return Err(Rc::HASH);
                }
                if sym != p.sym() {
                    return Err(Rc::SYMMETRIC);
                }
            }
        }
        Ok(())
    }
}

/// Parses the type-specific parameters (TPMU_PUBLIC_PARMS) and, with `with_unique`, the
/// unique field too (TestParms has no unique field).
pub(crate) fn parse_parms(ty: u16, r: &mut Reader<'_>, with_unique: bool) -> Result<Params, Rc> {
    let params = match ty {
        alg::RSA => {
            let sym = SymDef::parse(r, false)?;
            let scheme = Scheme::parse(r)?;
            let bits = r.u16()?;
            let exponent = r.u32()?;
            let n = u2b(r, with_unique, 512)?;
            if !matches!(bits, 1024 | 2048) {
                return Err(Rc::KEY_SIZE);
            }
            Params::Rsa {
                sym,
                scheme,
                bits,
                exponent,
                n,
            }
        }
        alg::ECC => {
            let sym = SymDef::parse(r, false)?;
            let scheme = Scheme::parse(r)?;
            let curve = r.u16()?;
            let kdf = Scheme::parse(r)?;
            let x = u2b(r, with_unique, 128)?;
            let y = u2b(r, with_unique, 128)?;
            if curve != alg::CURVE_P256 {
                return Err(Rc::CURVE);
            }
            Params::Ecc {
                sym,
                scheme,
                curve,
                kdf,
                x,
                y,
            }
        }
        alg::KEYEDHASH => {
            let sa = r.u16()?;
            let (scheme, kdf) = match sa {
                alg::NULL => (Scheme::NULL, alg::NULL),
                alg::HMAC => {
                    let h = r.u16()?;
                    HashAlg::from_alg(h)?;
                    (
                        Scheme {
                            alg: sa,
                            hash: h,
                            count: 0,
                        },
                        alg::NULL,
                    )
                }
                alg::XOR => {
                    let h = r.u16()?;
                    HashAlg::from_alg(h)?;
                    let k = r.u16()?;
                    (
                        Scheme {
                            alg: sa,
                            hash: h,
                            count: 0,
                        },
                        k,
                    )
                }
                _ => return Err(Rc::SCHEME),
            };
            let unique = u2b(r, with_unique, 64)?;
            Params::KeyedHash {
                scheme,
                kdf,
                unique,
            }
        }
        alg::SYMCIPHER => {
            let sym = SymDef::parse(r, false)?;
            if sym.alg == alg::NULL {
                return Err(Rc::SYMMETRIC);
            }
            let unique = u2b(r, with_unique, 64)?;
            Params::Sym { sym, unique }
        }
        _ => return Err(Rc::TYPE),
    };
    Ok(params)
}

fn u2b(r: &mut Reader<'_>, present: bool, max: usize) -> Result<Vec<u8>, Rc> {
    if present {
        Ok(r.tpm2b(max)?.to_vec())
    } else {
        Ok(Vec::new())
    }
}

fn check_asym(p: &Public, sym: SymDef, scheme: Scheme) -> Result<(), Rc> {
    let restricted_decrypt = p.has(attr::RESTRICTED) && p.has(attr::DECRYPT);
    if restricted_decrypt {
        if sym.alg == alg::NULL {
            return Err(Rc::SYMMETRIC);
        }
        if scheme.alg != alg::NULL {
            return Err(Rc::SCHEME);
        }
    } else if sym.alg != alg::NULL {
        return Err(Rc::SYMMETRIC);
    }
    if p.has(attr::RESTRICTED) && p.has(attr::SIGN) && scheme.alg == alg::NULL {
        return Err(Rc::SCHEME);
    }
    let sign_alg = matches!(scheme.alg, alg::RSASSA | alg::RSAPSS | alg::ECDSA);
    let dec_alg = matches!(scheme.alg, alg::OAEP | alg::RSAES | alg::ECDH);
    if (sign_alg && !p.has(attr::SIGN)) || (dec_alg && !p.has(attr::DECRYPT)) {
        return Err(Rc::SCHEME);
    }
    if p.has(attr::SIGN) && p.has(attr::DECRYPT) && scheme.alg != alg::NULL {
        return Err(Rc::SCHEME);
    }
    let rsa = matches!(p.params, Params::Rsa { .. });
    if scheme.alg != alg::NULL
        && (rsa
            != matches!(
                scheme.alg,
                alg::RSASSA | alg::RSAPSS | alg::OAEP | alg::RSAES
            ))
    {
        return Err(Rc::SCHEME);
    }
    Ok(())
}

/// TPMT_SENSITIVE minus the type: auth value, seed (protection seed for parents, or the
/// obfuscation value) and the secret (RSA prime p, ECC scalar, sealed data/HMAC key or symmetric key).
#[derive(Clone)]
pub(crate) struct Sensitive {
    pub(crate) auth: Vec<u8>,
    pub(crate) seed: Vec<u8>,
    pub(crate) secret: Vec<u8>,
    /// An RSA key's CRT form, built once (in constant time) when the key is generated, loaded
    /// or restored, and shared by the copies of the object that commands take: no private
    /// operation rebuilds the key from p. None for other types (and until `bind_rsa`).
    pub(crate) rsa: Option<Arc<RsaKey>>,
}

impl Sensitive {
    pub(crate) fn new(auth: Vec<u8>, seed: Vec<u8>, secret: Vec<u8>) -> Self {
        Sensitive {
            auth,
            seed,
            secret,
            rsa: None,
        }
    }
}

/// The CRT form is a function of the secret: equality is that of the three fields (compared
/// in constant time).
impl PartialEq for Sensitive {
    fn eq(&self, o: &Self) -> bool {
        let eq = |a: &[u8], b: &[u8]| crate::crypto::ct_eq(a, b);
        eq(&self.auth, &o.auth) & eq(&self.seed, &o.seed) & eq(&self.secret, &o.secret)
    }
}

impl Eq for Sensitive {}

/// No secret in `{:?}`: only the sizes.
impl core::fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Sensitive {{ auth: {} bytes, seed: {} bytes, secret: {} bytes }}",
            self.auth.len(),
            self.seed.len(),
            self.secret.len()
        )
    }
}

/// Wipes the three secrets and lets go of this copy's share of the CRT key (wiped by its own
/// drop when the last copy goes).
impl Zeroize for Sensitive {
    fn zeroize(&mut self) {
        self.auth.zeroize();
        self.seed.zeroize();
        self.secret.zeroize();
        self.rsa = None;
    }
}

impl Drop for Sensitive {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for Sensitive {}

/// An entry of the engine's primary-object cache: the derivation input's digest (a secret: it
/// is the seed of the key's DRBG) with the object made from it. Wiped when evicted or
/// cleared (the digest here, the sensitive area by its own drop).
pub(crate) struct PrimaryEntry {
    pub(crate) key: [u8; 32],
    pub(crate) public: Public,
    pub(crate) sens: Sensitive,
}

impl Drop for PrimaryEntry {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for PrimaryEntry {}

impl Sensitive {
    pub(crate) fn write(&self, ty: u16, w: &mut Writer) {
        w.u16(ty)
            .tpm2b(&self.auth)
            .tpm2b(&self.seed)
            .tpm2b(&self.secret);
    }
    pub(crate) fn parse(r: &mut Reader<'_>, ty: u16) -> Result<Self, Rc> {
        if r.u16()? != ty {
            return Err(Rc::TYPE);
        }
        let auth = r.tpm2b(64)?.to_vec();
        let seed = r.tpm2b(64)?.to_vec();
        let secret = r.tpm2b(512)?.to_vec();
        Ok(Sensitive::new(auth, seed, secret))
    }
}

/// A loaded (transient or persistent) object.
#[derive(Clone, Debug)]
pub(crate) struct Object {
    pub(crate) public: Public,
    pub(crate) sens: Option<Sensitive>,
    /// TPM_RH_OWNER, _ENDORSEMENT, _PLATFORM or _NULL.
    pub(crate) hierarchy: u32,
    pub(crate) name: Vec<u8>,
    pub(crate) qualified: Vec<u8>,
}

/// What key generation refuses before it starts, answered as the reference's
/// CryptRsaGenerateKey does, with no parameter number (the caller must not number it): an RSA
/// public exponent outside FIPS 186-5's 2^16 < e or not prime (0 stands for 65537) is
/// TPM_RC_RANGE, as swtpm answers.
pub(crate) fn check_generation(public: &Public) -> Result<(), Rc> {
    match &public.params {
        Params::Rsa { exponent, .. }
            if !crate::crypto::prime::exponent_allowed(rsa_exponent(*exponent)) =>
        {
            Err(Rc::RANGE)
        }
        _ => Ok(()),
    }
}

/// Derives a new key pair or secret for `public` from `rng`, filling in the unique field.
pub(crate) fn generate(
    public: &mut Public,
    rng: &mut crate::crypto::Drbg,
    data: &[u8],
) -> Result<Sensitive, Rc> {
    let h = public.hash()?;
    let seed = rng.bytes(h.size());
    let mut rsa = None;
    let secret = match &mut public.params {
        Params::Rsa {
            bits, exponent, n, ..
        } => {
            let e = if *exponent == 0 { 65537 } else { *exponent };
            let key =
                crate::crypto::prime::rsa_keygen(*bits as usize, e, rng).ok_or(Rc::KEY_SIZE)?;
            *n = key.n().to_vec();
            let p = key.p_bytes();
            rsa = Some(Arc::new(key));
            p
        }
        Params::Ecc { x, y, .. } => {
            let sk = p256::SecretKey::random(rng);
            let pt = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                &sk.public_key(),
                false,
            );
            *x = pt.x().expect("uncompressed").to_vec();
            *y = pt.y().expect("uncompressed").to_vec();
            sk.to_bytes().to_vec()
        }
        Params::KeyedHash { unique, .. } => {
            let secret = if data.is_empty() && public.attrs & attr::SENSITIVE_DATA_ORIGIN != 0 {
                rng.bytes(h.size())
            } else {
                data.to_vec()
            };
            *unique = h.digest(&[&seed, &secret]);
            secret
        }
        Params::Sym { sym, unique } => {
            let secret = if data.is_empty() {
                rng.bytes(sym.bits as usize / 8)
            } else if data.len() == sym.bits as usize / 8 {
                data.to_vec()
            } else {
                return Err(Rc::KEY_SIZE);
            };
            *unique = h.digest(&[&seed, &secret]);
            secret
        }
    };
    Ok(Sensitive {
        auth: Vec::new(),
        seed,
        secret,
        rsa,
    })
}

/// `check_pair` for Load and LoadExternal, numbered as libtpms' ObjectLoad answers: a public
/// exponent below 7 (other than 0) is TPM_RC_VALUE on the public area (parameter `public_at`,
/// CryptValidateKeys), and an RSA private key that does not fit its public part — p not
/// dividing n, or e not invertible modulo p - 1 (every even e) — TPM_RC_BINDING unnumbered
/// (CryptRsaLoadPrivateExponent); any other failure is numbered `public_at`.
pub(crate) fn check_loaded_pair(
    public: &Public,
    sens: &mut Sensitive,
    public_at: u32,
) -> Result<(), Rc> {
    if let Params::Rsa { exponent, .. } = public.params {
        return if exponent != 0 && exponent < 7 {
            Err(Rc::VALUE.param(public_at))
        } else {
            check_pair(public, sens)
        };
    }
    check_pair(public, sens).map_err(|e| e.param(public_at))
}

/// Checks that a sensitive area belongs to a public area (Load, LoadExternal, Import); an
/// RSA key's CRT form is built on the way and kept with the sensitive area.
pub(crate) fn check_pair(public: &Public, sens: &mut Sensitive) -> Result<(), Rc> {
    let ok = match &public.params {
        Params::Rsa { .. } => {
            sens.rsa = None;
            bind_rsa(public, sens);
            sens.rsa.is_some()
        }
        Params::Ecc { x, y, .. } => match p256::SecretKey::from_slice(&sens.secret) {
            Ok(sk) => {
                let pt = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                    &sk.public_key(),
                    false,
                );
                pt.x().map(|v| v.as_slice()) == Some(x.as_slice())
                    && pt.y().map(|v| v.as_slice()) == Some(y.as_slice())
            }
            Err(_) => false,
        },
        Params::KeyedHash { unique, .. } | Params::Sym { unique, .. } => {
            public
                .hash()
                .map(|h| h.digest(&[&sens.seed, &sens.secret]))
                .ok()
                .as_deref()
                == Some(unique.as_slice())
        }
    };
    if ok { Ok(()) } else { Err(Rc::BINDING) }
}

/// The exponent of an RSA public area (0 stands for 65537).
fn rsa_exponent(exponent: u32) -> u32 {
    if exponent == 0 { 65537 } else { exponent }
}

/// Builds an RSA sensitive area's CRT key when it has none (a restored object; on failure
/// it stays None and private operations answer TPM_RC_KEY).
pub(crate) fn bind_rsa(public: &Public, sens: &mut Sensitive) {
    if let Params::Rsa { n, exponent, .. } = &public.params
        && sens.rsa.is_none()
    {
        sens.rsa = RsaKey::from_n_p(n, &sens.secret, rsa_exponent(*exponent)).map(Arc::new);
    }
}

pub(crate) fn rsa_public(public: &Public) -> Result<rsa::RsaPublicKey, Rc> {
    match &public.params {
        Params::Rsa { n, exponent, .. } => rsa::RsaPublicKey::new(
            BigUint::from_bytes_be(n),
            BigUint::from(rsa_exponent(*exponent)),
        )
        .map_err(|_| Rc::KEY),
        _ => Err(Rc::KEY),
    }
}

/// The modulus and exponent of an RSA public area.
pub(crate) fn rsa_public_parts(public: &Public) -> Result<(&[u8], u32), Rc> {
    match &public.params {
        Params::Rsa { n, exponent, .. } if !n.is_empty() => Ok((n, rsa_exponent(*exponent))),
        _ => Err(Rc::KEY),
    }
}

/// The CRT key of an RSA object: the one kept with it, else (an object restored without one)
/// built now.
pub(crate) fn rsa_private(public: &Public, sens: &Sensitive) -> Result<Arc<RsaKey>, Rc> {
    if let Some(k) = &sens.rsa {
        return Ok(k.clone());
    }
    match &public.params {
        Params::Rsa { n, exponent, .. } => {
            RsaKey::from_n_p(n, &sens.secret, rsa_exponent(*exponent))
                .map(Arc::new)
                .ok_or(Rc::KEY)
        }
        _ => Err(Rc::KEY),
    }
}

pub(crate) fn ecc_public(public: &Public) -> Result<p256::PublicKey, Rc> {
    match &public.params {
        Params::Ecc { x, y, .. } => ecc_point(x, y),
        _ => Err(Rc::KEY),
    }
}

pub(crate) fn ecc_point(x: &[u8], y: &[u8]) -> Result<p256::PublicKey, Rc> {
    if x.len() > 32 || y.len() > 32 {
        return Err(Rc::ECC_POINT);
    }
    let mut sec1 = alloc::vec![4u8];
    sec1.extend(core::iter::repeat_n(0, 32 - x.len()));
    sec1.extend_from_slice(x);
    sec1.extend(core::iter::repeat_n(0, 32 - y.len()));
    sec1.extend_from_slice(y);
    p256::PublicKey::from_sec1_bytes(&sec1).map_err(|_| Rc::ECC_POINT)
}

/// The DigestInfo prefix for PKCS#1 v1.5 signatures.
pub(crate) fn pkcs1_prefix(h: HashAlg) -> &'static [u8] {
    match h {
        HashAlg::Sha1 => &[
            0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
            0x14,
        ],
        HashAlg::Sha256 => &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
        HashAlg::Sha384 => &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        HashAlg::Sha512 => &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
    }
}

/// A TPMT_SIGNATURE.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) enum Signature {
    Rsa {
        alg: u16,
        hash: u16,
        sig: Vec<u8>,
    },
    Ecdsa {
        hash: u16,
        r: Vec<u8>,
        s: Vec<u8>,
    },
    /// ECDAA: (nonceK, s), made from a TPM2_Commit (`cmd::ecc2`).
    Ecdaa {
        hash: u16,
        r: Vec<u8>,
        s: Vec<u8>,
    },
    Hmac {
        hash: u16,
        digest: Vec<u8>,
    },
}

impl Signature {
    pub(crate) fn write(&self, w: &mut Writer) {
        match self {
            Signature::Rsa { alg, hash, sig } => {
                w.u16(*alg).u16(*hash).tpm2b(sig);
            }
            Signature::Ecdsa { hash, r, s } => {
                w.u16(alg::ECDSA).u16(*hash).tpm2b(r).tpm2b(s);
            }
            Signature::Ecdaa { hash, r, s } => {
                w.u16(alg::ECDAA).u16(*hash).tpm2b(r).tpm2b(s);
            }
            Signature::Hmac { hash, digest } => {
                w.u16(alg::HMAC).u16(*hash).bytes(digest);
            }
        }
    }
    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, Rc> {
        let a = r.u16()?;
        match a {
            alg::RSASSA | alg::RSAPSS => {
                let hash = r.u16()?;
                HashAlg::from_alg(hash)?;
                Ok(Signature::Rsa {
                    alg: a,
                    hash,
                    sig: r.tpm2b(512)?.to_vec(),
                })
            }
            alg::ECDSA => {
                let hash = r.u16()?;
                HashAlg::from_alg(hash)?;
                Ok(Signature::Ecdsa {
                    hash,
                    r: r.tpm2b(128)?.to_vec(),
                    s: r.tpm2b(128)?.to_vec(),
                })
            }
            alg::HMAC => {
                let hash = r.u16()?;
                let h = HashAlg::from_alg(hash)?;
                Ok(Signature::Hmac {
                    hash,
                    digest: r.bytes(h.size())?.to_vec(),
                })
            }
            _ => Err(Rc::SCHEME),
        }
    }
}

/// Signs `digest` with a key, with an already resolved scheme.
pub(crate) fn sign(
    obj: &Object,
    scheme: Scheme,
    digest: &[u8],
    rng: &mut crate::crypto::Drbg,
) -> Result<Signature, Rc> {
    let sens = obj.sens.as_ref().ok_or(Rc::KEY)?;
    let h = HashAlg::from_alg(scheme.hash)?;
    if digest.len() != h.size() {
        return Err(Rc::SIZE);
    }
    match (scheme.alg, &obj.public.params) {
        (alg::RSASSA | alg::RSAPSS, Params::Rsa { .. }) => {
            let key = rsa_private(&obj.public, sens)?;
            let k = key.size();
            let em = if scheme.alg == alg::RSASSA {
                rsa_pad::pkcs1_sign_encode(h, digest, k)?
            } else {
                rsa_pad::pss_encode(h, digest, 8 * k, rng)?
            };
            let sig = key.private(&em, rng).ok_or(Rc::KEY)?;
            Ok(Signature::Rsa {
                alg: scheme.alg,
                hash: scheme.hash,
                sig,
            })
        }
        (alg::ECDSA, Params::Ecc { .. }) => {
            use p256::ecdsa::signature::hazmat::PrehashSigner;
            let sk = p256::ecdsa::SigningKey::from_slice(&sens.secret).map_err(|_| Rc::KEY)?;
            let sig: p256::ecdsa::Signature = sk.sign_prehash(digest).map_err(|_| Rc::KEY)?;
            let (r, s) = sig.split_bytes();
            Ok(Signature::Ecdsa {
                hash: scheme.hash,
                r: r.to_vec(),
                s: s.to_vec(),
            })
        }
        (alg::HMAC, Params::KeyedHash { .. }) => Ok(Signature::Hmac {
            hash: scheme.hash,
            digest: h.hmac(&sens.secret, &[digest]),
        }),
        _ => Err(Rc::SCHEME),
    }
}

/// Verifies a signature over `digest` with the public part of a key.
pub(crate) fn verify(obj: &Object, digest: &[u8], sig: &Signature) -> Result<(), Rc> {
    match (sig, &obj.public.params) {
        (Signature::Rsa { alg: a, hash, sig }, Params::Rsa { .. }) => {
            let h = HashAlg::from_alg(*hash)?;
            let key = rsa_public(&obj.public)?;
            if *a == alg::RSASSA {
                key.verify(
                    rsa::Pkcs1v15Sign {
                        hash_len: Some(h.size()),
                        prefix: pkcs1_prefix(h).into(),
                    },
                    digest,
                    sig,
                )
                .map_err(|_| Rc::SIGNATURE)
            } else {
                // Any salt length (OpenSSL signs with the largest by default).
                let (n, e) = rsa_public_parts(&obj.public)?;
                if sig.len() != n.len() {
                    return Err(Rc::SIGNATURE);
                }
                let em = rsa_pad::public_op(n, e, sig).map_err(|_| Rc::SIGNATURE)?;
                let bits = 8 * n.len() - n[0].leading_zeros() as usize;
                if rsa_pad::pss_verify(h, digest, &em, bits) {
                    Ok(())
                } else {
                    Err(Rc::SIGNATURE)
                }
            }
        }
        (Signature::Ecdsa { r, s, .. }, Params::Ecc { .. }) => {
            use p256::ecdsa::signature::hazmat::PrehashVerifier;
            let pk = ecc_public(&obj.public)?;
            let vk = p256::ecdsa::VerifyingKey::from(&pk);
            let mut rs = [0u8; 64];
            if r.len() > 32 || s.len() > 32 {
                return Err(Rc::SIGNATURE);
            }
            rs[32 - r.len()..32].copy_from_slice(r);
            rs[64 - s.len()..].copy_from_slice(s);
            let sig = p256::ecdsa::Signature::from_slice(&rs).map_err(|_| Rc::SIGNATURE)?;
            vk.verify_prehash(digest, &sig).map_err(|_| Rc::SIGNATURE)
        }
        (Signature::Hmac { hash, digest: mac }, Params::KeyedHash { .. }) => {
            let sens = obj.sens.as_ref().ok_or(Rc::KEY)?;
            let h = HashAlg::from_alg(*hash)?;
            if crate::crypto::ct_eq(&h.hmac(&sens.secret, &[digest]), mac) {
                Ok(())
            } else {
                Err(Rc::SIGNATURE)
            }
        }
        _ => Err(Rc::SCHEME),
    }
}

#[cfg(test)]
mod sensitive_tests {
    use super::*;

    /// `{:?}` of a sensitive area shows sizes, never the secret bytes.
    #[test]
    fn debug_prints_no_secret() {
        let s = Sensitive::new(b"pw".to_vec(), [0xAB; 32].to_vec(), [0xCD; 16].to_vec());
        let shown = alloc::format!("{s:?}");
        assert!(
            shown.contains("32 bytes") && shown.contains("16 bytes"),
            "{shown}"
        );
        for secret in ["pw", "ab", "AB", "cd", "CD", "171", "205"] {
            assert!(!shown.contains(secret), "{shown} shows {secret}");
        }
    }
}

#[cfg(test)]
mod load_check_tests {
    use super::*;
    use attr::*;

    /// An ECC P-256 public area: `sym` AES-128-CFB when true, `scheme` (alg, hash).
    fn ecc(name_alg: u16, attrs: u32, sym: bool, scheme: (u16, u16)) -> Public {
        let mut w = Writer::new();
        w.u16(alg::ECC).u16(name_alg).u32(attrs).tpm2b(&[]);
        if sym {
            w.u16(alg::AES).u16(128).u16(alg::CFB);
        } else {
            w.u16(alg::NULL);
        }
        w.u16(scheme.0);
        if scheme.0 != alg::NULL {
            w.u16(scheme.1);
        }
        w.u16(0x0003).u16(alg::NULL).tpm2b(&[]).tpm2b(&[]);
        let b = w.into_vec();
        Public::parse(&mut Reader::new(&b)).expect("template parses")
    }

    fn sealed(attrs: u32) -> Public {
        let mut w = Writer::new();
        w.u16(alg::KEYEDHASH)
            .u16(alg::SHA256)
            .u32(attrs)
            .tpm2b(&[])
            .u16(alg::NULL)
            .tpm2b(&[]);
        let b = w.into_vec();
        Public::parse(&mut Reader::new(&b)).expect("template parses")
    }

    /// A case: what, the public area, its parent, the expected result.
    type Case<'a> = (&'a str, Public, Option<&'a Public>, Result<(), Rc>);

    /// Rules Load must apply that no imported blob can reach (Import refuses fixedTPM and
    /// fixedParent objects), with the parent's attributes in play; and Create's rule about
    /// TPM-generated data, which Load must not apply.
    #[test]
    fn load_validates_against_the_parent() {
        let fixed = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | USER_WITH_AUTH;
        let storage = |a: u32| ecc(alg::SHA256, a | RESTRICTED | DECRYPT, true, (alg::NULL, 0));
        let fixed_parent = storage(fixed);
        let moving_parent = storage(SENSITIVE_DATA_ORIGIN | USER_WITH_AUTH);
        let sign = (alg::ECDSA, alg::SHA256);
        let cases: &[Case<'_>] = &[
            (
                "fixed key below a fixed parent",
                ecc(alg::SHA256, fixed | SIGN, false, sign),
                Some(&fixed_parent),
                Ok(()),
            ),
            (
                "fixedTPM without fixedParent",
                ecc(alg::SHA256, FIXED_TPM | USER_WITH_AUTH | SIGN, false, sign),
                Some(&fixed_parent),
                Err(Rc::ATTRIBUTES),
            ),
            (
                "fixedParent without fixedTPM below a fixedTPM parent",
                ecc(
                    alg::SHA256,
                    FIXED_PARENT | USER_WITH_AUTH | SIGN,
                    false,
                    sign,
                ),
                Some(&fixed_parent),
                Err(Rc::ATTRIBUTES),
            ),
            (
                "fixedParent without fixedTPM below a duplicable parent",
                ecc(
                    alg::SHA256,
                    FIXED_PARENT | USER_WITH_AUTH | SIGN,
                    false,
                    sign,
                ),
                Some(&moving_parent),
                Ok(()),
            ),
            (
                "fixedTPM below a duplicable parent",
                ecc(alg::SHA256, fixed | SIGN, false, sign),
                Some(&moving_parent),
                Err(Rc::ATTRIBUTES),
            ),
            (
                "restricted sign and decrypt",
                ecc(
                    alg::SHA256,
                    fixed | RESTRICTED | SIGN | DECRYPT,
                    true,
                    (alg::NULL, 0),
                ),
                Some(&fixed_parent),
                Err(Rc::ATTRIBUTES),
            ),
            (
                "storage key with another nameAlg than its fixed parent",
                storage_with(alg::SHA1, fixed),
                Some(&fixed_parent),
                Err(Rc::HASH),
            ),
            (
                "storage key without symmetric algorithm",
                ecc(
                    alg::SHA256,
                    fixed | RESTRICTED | DECRYPT,
                    false,
                    (alg::NULL, 0),
                ),
                Some(&fixed_parent),
                Err(Rc::SYMMETRIC),
            ),
            (
                "encryptedDuplication on a fixedTPM object",
                ecc(
                    alg::SHA256,
                    fixed | ENCRYPTED_DUPLICATION | SIGN,
                    false,
                    sign,
                ),
                Some(&fixed_parent),
                Err(Rc::ATTRIBUTES),
            ),
            (
                "sealed data the TPM did not generate, marked sensitiveDataOrigin",
                sealed(fixed),
                Some(&fixed_parent),
                Ok(()),
            ),
        ];
        for (what, public, parent, want) in cases {
            assert_eq!(public.check_load(*parent), *want, "{what}");
        }
        // Create refuses what Load accepts here: the TPM cannot originate sealed data.
        assert_eq!(sealed(fixed).check_create(), Err(Rc::ATTRIBUTES));
    }

    fn storage_with(name_alg: u16, attrs: u32) -> Public {
        ecc(name_alg, attrs | RESTRICTED | DECRYPT, true, (alg::NULL, 0))
    }
}
