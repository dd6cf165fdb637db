//! Reference values: what a verifier expects Warden to have measured, computed at build time
//! from the built images (as NOVA computes its reference measurement).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use warden_tpm::eventlog::{SEPARATOR_DATA, Tag, WARDEN_PCRS, component_parts};
use warden_tpm::{Banks, Digest, HashAlg};

/// The format line of a reference file.
pub const FORMAT: &str = "warden-reference 1";

/// A reference manifest (JSON on disk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// Always [`FORMAT`].
    pub format: String,
    /// Free text: what this reference describes (e.g. the scenario).
    pub description: String,
    /// Components in measurement order.
    pub components: Vec<Component>,
    /// Expected final PCR values: bank name → PCR index → hex.
    pub pcrs: BTreeMap<String, BTreeMap<u32, String>>,
    /// The operator's policy for the firmware's and boot loader's PCRs (0-9) when the log
    /// starts at the firmware: bank name → PCR index → hex (e.g. recorded from a known-good
    /// boot, like Keylime's measured-boot policy). Without it those PCRs are reported only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub platform_pcrs: BTreeMap<String, BTreeMap<u32, String>>,
}

/// One measured component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// Name as logged: `policy`, `manifest`, `cmdline`, `image:NAME`.
    pub name: String,
    /// Kind (`policy`, `manifest`, `cmdline`, `image`).
    pub kind: String,
    /// The PCR it is measured into.
    pub pcr: u32,
    /// Digest of its name and bytes (`eventlog::component_parts`) per bank: bank name → hex.
    pub digests: BTreeMap<String, String>,
}

impl Component {
    /// A component measured from `bytes`, in every supported bank.
    #[must_use]
    pub fn new(tag: Tag, name: &str, bytes: &[u8]) -> Component {
        let digests = HashAlg::ALL
            .iter()
            .map(|a| {
                let d = a.hash_parts(&component_parts(name, bytes));
                (a.name().to_string(), crate::hex(d.as_bytes()))
            })
            .collect();
        Component {
            name: name.to_string(),
            kind: tag.name().to_string(),
            pcr: tag.pcr(),
            digests,
        }
    }

    /// The digest of one bank, if recorded.
    #[must_use]
    pub fn digest(&self, alg: HashAlg) -> Option<Digest> {
        Digest::from_bytes(alg, &crate::unhex(self.digests.get(alg.name())?).ok()?)
    }
}

impl Reference {
    /// Builds a reference from components in measurement order; computes the final PCRs
    /// (each Warden PCR reset to zero, extended with its components, then a separator).
    #[must_use]
    pub fn new(description: &str, components: Vec<Component>) -> Reference {
        let mut pcrs = BTreeMap::new();
        for alg in HashAlg::ALL {
            let mut bank = BTreeMap::new();
            for pcr in WARDEN_PCRS {
                let mut v = Digest::zero(alg);
                for c in components.iter().filter(|c| c.pcr == pcr) {
                    if let Some(d) = c.digest(alg) {
                        v = v.extended(&d);
                    }
                }
                v = v.extended(&alg.hash(&SEPARATOR_DATA));
                bank.insert(pcr, crate::hex(v.as_bytes()));
            }
            pcrs.insert(alg.name().to_string(), bank);
        }
        Reference {
            format: FORMAT.into(),
            description: description.into(),
            components,
            pcrs,
            platform_pcrs: BTreeMap::new(),
        }
    }

    /// The operator's expected value of a firmware or boot-loader PCR in a bank, if given.
    #[must_use]
    pub fn platform_pcr(&self, alg: HashAlg, pcr: u32) -> Option<Digest> {
        Digest::from_bytes(alg, &crate::unhex(self.platform_pcrs.get(alg.name())?.get(&pcr)?).ok()?)
    }

    /// Expected value of a PCR in a bank.
    #[must_use]
    pub fn pcr(&self, alg: HashAlg, pcr: u32) -> Option<Digest> {
        Digest::from_bytes(
            alg,
            &crate::unhex(self.pcrs.get(alg.name())?.get(&pcr)?).ok()?,
        )
    }

    /// The banks the reference has values for.
    #[must_use]
    pub fn banks(&self) -> Banks {
        Banks::from_algs(
            &HashAlg::ALL
                .into_iter()
                .filter(|a| self.pcrs.contains_key(a.name()))
                .collect::<Vec<_>>(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_pcrs_follow_measurement_order() {
        let r = Reference::new(
            "t",
            vec![
                Component::new(Tag::CommandLine, "cmdline", b"a"),
                Component::new(Tag::Manifest, "manifest", b"b"),
            ],
        );
        let alg = HashAlg::Sha256;
        let sep = alg.hash(&[0; 4]);
        let want21 = Digest::zero(alg)
            .extended(&alg.hash(b"cmdline\0a"))
            .extended(&alg.hash(b"manifest\0b"))
            .extended(&sep);
        assert_eq!(r.pcr(alg, 21), Some(want21));
        assert_eq!(r.pcr(alg, 20), Some(Digest::zero(alg).extended(&sep)));
        // The name is measured with the bytes: the same bytes under another name differ.
        let renamed = Component::new(Tag::DomainImage, "image:b", b"x");
        assert_ne!(
            renamed.digests,
            Component::new(Tag::DomainImage, "image:a", b"x").digests
        );
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Reference>(&json).unwrap(), r);
    }
}
