//! `wardenctl checkpoint verify|info` on images signed by a real TPM: a private swtpm measured
//! as the hypervisor measures PCRs 20-22, an AK and a PolicyPCR-bound signing key made and
//! certified by the TPM through tss-esapi; the reference file is the one `attest verify` takes.

use std::path::PathBuf;
use std::process::Command;
use std::str::FromStr;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::structures::{PcrSelectionListBuilder, PcrSlot};
use tss_esapi::tcti_ldr::TctiNameConf;
use warden_checkpoint::esapi::{TpmSigner, create_ak};
use warden_checkpoint::{CheckpointWriter, Identity, Keys, StateKind};
use warden_tpm::eventlog::{SEPARATOR_DATA, Tag, WARDEN_PCRS, component_parts};
use warden_tpm::host::{Swtpm, unique_temp_dir};
use warden_tpm::{DigestSet, Tpm};
use wardenctl::reference::{Component, Reference};

fn components(policy: &'static [u8]) -> Vec<(Tag, &'static str, &'static [u8])> {
    vec![
        (Tag::Policy, "policy", policy),
        (Tag::CommandLine, "cmdline", b"require_tpm"),
        (
            Tag::Manifest,
            "manifest",
            b"warden-manifest 1\ndomain name=guest image=guest\n",
        ),
        (Tag::DomainImage, "image:guest", b"\x7fELF guest image"),
    ]
}

fn reference(parts: &[(Tag, &str, &[u8])]) -> Reference {
    Reference::new(
        "checkpoint test",
        parts
            .iter()
            .map(|(t, n, b)| Component::new(*t, n, b))
            .collect(),
    )
}

/// The platform: swtpm measured like a Warden boot, its AK and checkpoint signing key.
struct Platform {
    signer: TpmSigner,
    ak: Vec<u8>,
    _sw: Swtpm,
}

fn platform(parts: &[(Tag, &str, &[u8])]) -> Platform {
    let sw = Swtpm::start().unwrap();
    let mut t = Tpm::new(sw.connect().unwrap());
    let banks = t.active_banks().unwrap();
    t.transport().set_locality(2).unwrap();
    for pcr in WARDEN_PCRS {
        t.pcr_reset(pcr).unwrap();
    }
    for (tag, name, bytes) in parts {
        t.pcr_extend(
            tag.pcr(),
            &DigestSet::of_parts(banks, &component_parts(name, bytes)),
        )
        .unwrap();
    }
    for pcr in WARDEN_PCRS {
        t.pcr_extend(pcr, &DigestSet::of(banks, &SEPARATOR_DATA))
            .unwrap();
    }
    let mut ctx = tss_esapi::Context::new(TctiNameConf::from_str(&sw.tcti()).unwrap()).unwrap();
    let (ak_handle, ak) = create_ak(&mut ctx).unwrap();
    let selection = PcrSelectionListBuilder::new()
        .with_selection(
            HashingAlgorithm::Sha256,
            &[PcrSlot::Slot20, PcrSlot::Slot21, PcrSlot::Slot22],
        )
        .build()
        .unwrap();
    let signer = TpmSigner::create(ctx, ak_handle, selection).unwrap();
    Platform {
        signer,
        ak,
        _sw: sw,
    }
}

fn page(index: u64, generation: u8) -> [u8; 4096] {
    let mut p = [0u8; 4096];
    for (i, b) in p.iter_mut().enumerate() {
        *b = (i as u64 ^ index.wrapping_mul(31)) as u8 ^ generation;
    }
    p[0] = 1;
    p
}

/// A checkpoint of 8 pages; incremental (pages 2 and 5) when `parent` is given.
fn image(p: &mut Platform, epoch: u64, parent: Option<[u8; 32]>, seed: u8) -> Vec<u8> {
    let id = Identity {
        domain_name: "guest".into(),
        domain_id: 3,
        label: "customer_a".into(),
        image_digest: [0x42; 32],
        epoch,
        parent,
        supersedes: None,
        full: parent.is_none(),
        memory_bytes: 8 * 4096,
    };
    let keys = Keys {
        checkpoint_id: [seed; 32],
        page_key: [seed ^ 0xa5; 32],
        wrapped_key: vec![seed; 40],
    };
    let mut w = CheckpointWriter::new(id, &keys);
    for i in 0..8 {
        if parent.is_none() || i == 2 || i == 5 {
            w.page::<()>(i, &page(i, seed)).unwrap();
        }
    }
    w.state::<()>(StateKind::Vcpu, b"vcpu state").unwrap();
    w.state::<()>(StateKind::Vtpm, b"vtpm state").unwrap();
    w.finish(&mut p.signer).unwrap()
}

struct Files(PathBuf);

impl Files {
    fn put(&self, name: &str, bytes: &[u8]) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs wardenctl; returns (exit code, stdout, stderr).
fn wardenctl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wardenctl"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `wardenctl checkpoint verify IMAGE --ak AK --pcrs REFERENCE EXTRA...`.
fn verify_cmd(image: &str, ak: &str, pcrs: &str, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["checkpoint", "verify", image, "--ak", ak, "--pcrs", pcrs];
    args.extend_from_slice(extra);
    wardenctl(&args)
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[test]
fn verify_accepts_a_tpm_signed_image_and_names_each_refusal() {
    let parts = components(b"compiled policy blob");
    let mut p = platform(&parts);
    let f = Files(unique_temp_dir("wardenctl-ckpt").unwrap());
    let full = image(&mut p, 1, None, 1);
    let img = f.put("full.ckpt", &full);
    let ak = f.put("ak.pub", &p.ak);
    let good = f.put(
        "reference.json",
        serde_json::to_string(&reference(&parts))
            .unwrap()
            .as_bytes(),
    );

    let (code, out, err) = verify_cmd(&img, &ak, &good, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verdict: OK"), "{out}");
    assert!(
        out.contains("ok   signing-key policy = PolicyPCR(reference)"),
        "{out}"
    );
    let (code, out, _) = verify_cmd(&img, &ak, &good, &["--json"]);
    assert_eq!(code, 0);
    let v = json(&out);
    assert_eq!(v["ok"], true);
    assert_eq!(v["manifest"]["epoch"], 1);
    assert_eq!(v["manifest"]["kind"], "full");

    // Another hypervisor policy measured in the reference: the key cannot sign under it.
    let other = f.put(
        "other.json",
        serde_json::to_string(&reference(&components(b"another policy")))
            .unwrap()
            .as_bytes(),
    );
    let (code, out, err) = verify_cmd(&img, &ak, &other, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL signing-key policy"), "{out}");
    assert!(err.contains("policy-mismatch"), "{err}");
    let (_, out, _) = verify_cmd(&img, &ak, &other, &["--json"]);
    let v = json(&out);
    assert_eq!(v["ok"], false);
    assert_eq!(v["failure"]["kind"], "policy-mismatch");

    // A flipped ciphertext bit: the Merkle root.
    let mut flipped = full.clone();
    let last = flipped.len() - 100;
    flipped[last] ^= 0x10;
    let bad = f.put("flipped.ckpt", &flipped);
    let (code, out, _) = verify_cmd(&bad, &ak, &good, &["--json"]);
    assert_eq!(code, 1);
    assert_eq!(json(&out)["failure"]["kind"], "merkle-root");

    // Another platform's AK did not certify this signing key.
    let q = platform(&parts);
    let other_ak = f.put("other-ak.pub", &q.ak);
    let (code, out, _) = verify_cmd(&img, &other_ak, &good, &["--json"]);
    assert_eq!(code, 1);
    assert_eq!(json(&out)["failure"]["kind"], "certify-signature");

    // Chains: a child with its parent verifies; given the wrong parent it is refused.
    let digest = warden_checkpoint::Image::parse(&full).unwrap().digest();
    let child = f.put("child.ckpt", &image(&mut p, 2, Some(digest), 2));
    let (code, out, err) = verify_cmd(&child, &ak, &good, &["--parent", &img]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok   chain"), "{out}");
    let stranger = f.put("stranger.ckpt", &image(&mut p, 1, None, 3));
    let (code, out, _) = verify_cmd(&child, &ak, &good, &["--parent", &stranger, "--json"]);
    assert_eq!(code, 1);
    let v = json(&out);
    assert_eq!(v["failure"]["kind"], "chain");
    assert!(
        v["failure"]["message"].as_str().unwrap().contains("parent"),
        "{v}"
    );

    // Unreadable inputs: exit 2.
    let (code, _, err) = verify_cmd("/nonexistent.ckpt", &ak, &good, &[]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn info_shows_the_manifest() {
    let parts = components(b"compiled policy blob");
    let mut p = platform(&parts);
    let f = Files(unique_temp_dir("wardenctl-ckpt-info").unwrap());
    let full = image(&mut p, 1, None, 1);
    let digest = warden_checkpoint::Image::parse(&full).unwrap().digest();
    let child = f.put("child.ckpt", &image(&mut p, 2, Some(digest), 2));
    let (code, out, err) = wardenctl(&["checkpoint", "info", &child]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("guest (id 3)"), "{out}");
    assert!(
        out.contains(&format!("parent           {}", wardenctl::hex(&digest))),
        "{out}"
    );
    assert!(out.contains("kind             incremental"), "{out}");
    let (code, out, _) = wardenctl(&["checkpoint", "info", &child, "--json"]);
    assert_eq!(code, 0);
    let v = json(&out);
    assert_eq!(v["epoch"], 2);
    assert_eq!(v["page_records"], 2);
    assert_eq!(v["label"], "customer_a");
    // Not an image: exit 2, named.
    let junk = f.put("junk", b"not a checkpoint at all");
    let (code, _, err) = wardenctl(&["checkpoint", "info", &junk]);
    assert_eq!(code, 2);
    assert!(err.contains("bad-magic"), "{err}");
}
