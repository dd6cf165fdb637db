//! AES-128/192/256 in CFB-128 mode, from RustCrypto's `aes` and `cfb-mode`.
//!
//! On `x86_64-unknown-none` (soft float) the `aes` crate must not use AES-NI: the workspace's
//! `.cargo/config.toml` sets `--cfg aes_force_soft` for that target, which selects the crate's
//! bitsliced (constant-time) software backend. Host builds detect AES-NI at run time.

use cfb_mode::cipher::{AsyncStreamCipher, InnerIvInit, KeyInit};

/// An expanded AES encryption key of one of the three sizes.
#[derive(Clone)]
pub(crate) enum Aes {
    Aes128(aes::Aes128),
    Aes192(aes::Aes192),
    Aes256(aes::Aes256),
}

impl core::fmt::Debug for Aes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Aes(..)")
    }
}

impl Aes {
    /// `key` must be 16, 24 or 32 bytes; returns `None` otherwise.
    pub(crate) fn new(key: &[u8]) -> Option<Self> {
        Some(match key.len() {
            16 => Aes::Aes128(aes::Aes128::new_from_slice(key).ok()?),
            24 => Aes::Aes192(aes::Aes192::new_from_slice(key).ok()?),
            32 => Aes::Aes256(aes::Aes256::new_from_slice(key).ok()?),
            _ => return None,
        })
    }

    /// CFB-128 encryption in place (TPM parameter encryption and credential/duplication blobs);
    /// a partial last block is allowed, as the TPM uses CFB as a stream cipher.
    pub(crate) fn cfb_encrypt(&self, iv: &[u8; 16], data: &mut [u8]) {
        let iv = iv.into();
        match self {
            Aes::Aes128(c) => cfb_mode::Encryptor::inner_iv_init(c.clone(), iv).encrypt(data),
            Aes::Aes192(c) => cfb_mode::Encryptor::inner_iv_init(c.clone(), iv).encrypt(data),
            Aes::Aes256(c) => cfb_mode::Encryptor::inner_iv_init(c.clone(), iv).encrypt(data),
        }
    }

    /// CFB-128 decryption in place.
    pub(crate) fn cfb_decrypt(&self, iv: &[u8; 16], data: &mut [u8]) {
        let iv = iv.into();
        match self {
            Aes::Aes128(c) => cfb_mode::Decryptor::inner_iv_init(c.clone(), iv).decrypt(data),
            Aes::Aes192(c) => cfb_mode::Decryptor::inner_iv_init(c.clone(), iv).decrypt(data),
            Aes::Aes256(c) => cfb_mode::Decryptor::inner_iv_init(c.clone(), iv).decrypt(data),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::tests::hex;

    /// NIST SP 800-38A F.3.13/15/17 (CFB128-AES128/192/256 encrypt), four blocks each.
    #[test]
    fn sp800_38a_cfb128() {
        let iv: [u8; 16] = hex("000102030405060708090a0b0c0d0e0f").try_into().unwrap();
        let pt = hex(concat!(
            "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51",
            "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
        ));
        let cases = [
            (
                "2b7e151628aed2a6abf7158809cf4f3c",
                concat!(
                    "3b3fd92eb72dad20333449f8e83cfb4ac8a64537a0b3a93fcde3cdad9f1ce58b",
                    "26751f67a3cbb140b1808cf187a4f4dfc04b05357c5d1c0eeac4c66f9ff7f2e6"
                ),
            ),
            (
                "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b",
                concat!(
                    "cdc80d6fddf18cab34c25909c99a417467ce7f7f81173621961a2b70171d3d7a",
                    "2e1e8a1dd59b88b1c8e60fed1efac4c9c05f9f9ca9834fa042ae8fba584b09ff"
                ),
            ),
            (
                "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
                concat!(
                    "dc7e84bfda79164b7ecd8486985d386039ffed143b28b1c832113c6331e5407b",
                    "df10132415e54b92a13ed0a8267ae2f975a385741ab9cef82031623d55b1e471"
                ),
            ),
        ];
        for (key, ct) in cases {
            let aes = Aes::new(&hex(key)).unwrap();
            let ct = hex(ct);
            let mut data = pt.clone();
            aes.cfb_encrypt(&iv, &mut data);
            assert_eq!(data, ct, "encrypt, key {key}");
            aes.cfb_decrypt(&iv, &mut data);
            assert_eq!(data, pt, "decrypt, key {key}");
            // A partial last block (TPM parameters are rarely block multiples) is a prefix of
            // the full stream in both directions.
            let mut short = pt[..21].to_vec();
            aes.cfb_encrypt(&iv, &mut short);
            assert_eq!(short[..], ct[..21], "partial encrypt, key {key}");
            aes.cfb_decrypt(&iv, &mut short);
            assert_eq!(short[..], pt[..21], "partial decrypt, key {key}");
        }
    }

    #[test]
    fn rejects_other_key_sizes() {
        for n in [0, 15, 17, 31, 33, 64] {
            assert!(Aes::new(&alloc::vec![0u8; n]).is_none(), "{n}-byte key");
        }
    }
}
