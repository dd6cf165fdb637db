//! A platform for the tests: a private swtpm whose PCRs 20-22 are reset and extended at
//! locality 2 as the hypervisor does, an AK, and a checkpoint signing key bound by PolicyPCR to
//! those PCRs and certified by the AK — all made by the TPM through tss-esapi.
#![allow(dead_code)]

use std::str::FromStr;
use tss_esapi::Context;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::structures::{PcrSelectionList, PcrSelectionListBuilder, PcrSlot};
use tss_esapi::tcti_ldr::TctiNameConf;
use warden_checkpoint::esapi::{TpmSigner, create_ak};
use warden_checkpoint::{Identity, Keys, PcrPolicy};
use warden_tpm::host::Swtpm;
use warden_tpm::{DigestSet, HashAlg, Tpm};

pub const WARDEN_PCRS: [u32; 3] = [20, 21, 22];

pub struct Platform {
    pub signer: TpmSigner,
    pub ak_public: Vec<u8>,
    /// The PCR values the hypervisor measured (the verifier's reference).
    pub reference: PcrPolicy,
    // Dropped last: the TPM outlives the context.
    pub sw: Swtpm,
}

pub fn selection(slots: &[PcrSlot]) -> PcrSelectionList {
    PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, slots)
        .build()
        .unwrap()
}

/// Resets and extends PCRs 20-22 with `measurements`, as the hypervisor's measured launch does.
pub fn measure(sw: &Swtpm, measurements: &[&[u8]; 3]) -> PcrPolicy {
    let mut t = Tpm::new(sw.connect().unwrap());
    let banks = t.active_banks().unwrap();
    t.transport().set_locality(2).unwrap();
    let mut pcrs = Vec::new();
    for (pcr, m) in WARDEN_PCRS.into_iter().zip(measurements) {
        t.pcr_reset(pcr).unwrap();
        t.pcr_extend(pcr, &DigestSet::of(banks, m)).unwrap();
        let v = t.pcr_read(pcr, HashAlg::Sha256).unwrap();
        pcrs.push((pcr, v.as_bytes().try_into().unwrap()));
    }
    PcrPolicy { pcrs }
}

pub fn context(sw: &Swtpm) -> Context {
    Context::new(TctiNameConf::from_str(&sw.tcti()).unwrap()).expect("ESAPI context on swtpm")
}

impl Platform {
    /// A platform whose signing key's policy covers `slots` (normally PCRs 20-22).
    pub fn with_policy(slots: &[PcrSlot]) -> Platform {
        let sw = Swtpm::start().expect("swtpm");
        let reference = measure(
            &sw,
            &[
                b"hypervisor image",
                b"policy and manifest",
                b"domain images",
            ],
        );
        let mut ctx = context(&sw);
        let (ak, ak_public) = create_ak(&mut ctx).unwrap();
        let signer = TpmSigner::create(ctx, ak, selection(slots)).unwrap();
        Platform {
            signer,
            ak_public,
            reference,
            sw,
        }
    }

    pub fn new() -> Platform {
        Platform::with_policy(&[PcrSlot::Slot20, PcrSlot::Slot21, PcrSlot::Slot22])
    }

    pub fn trust(&self) -> warden_checkpoint::Trust<'_> {
        warden_checkpoint::Trust {
            ak_public: &self.ak_public,
            pcrs: &self.reference,
        }
    }
}

pub fn identity(pages: u64, epoch: u64, parent: Option<[u8; 32]>) -> Identity {
    Identity {
        domain_name: "guest".into(),
        domain_id: 7,
        label: "customer_a".into(),
        image_digest: [0xab; 32],
        epoch,
        parent,
        supersedes: None,
        full: parent.is_none(),
        memory_bytes: pages * 4096,
    }
}

/// Fresh keys for one checkpoint, distinct per `seed`.
pub fn keys(seed: u8) -> Keys {
    Keys {
        checkpoint_id: [seed; 32],
        page_key: [seed ^ 0x5a; 32],
        wrapped_key: vec![seed; 48],
    }
}

/// A page whose bytes are a function of (`index`, `generation`); never all zero.
pub fn page(index: u64, generation: u64) -> Box<[u8; 4096]> {
    let mut p = Box::new([0u8; 4096]);
    let mut x = index.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ generation.wrapping_mul(0xd1b5_4a32_d192_ed03)
        | 1;
    for chunk in p.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    p
}
