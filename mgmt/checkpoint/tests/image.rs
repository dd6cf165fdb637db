//! Checkpoint images signed by a real TPM (swtpm through tss-esapi): round trip, every bit flip
//! and truncation refused by the check it breaks, records bound to their index and image,
//! incremental sizes following the dirty fraction, merge, chains, and the PCR policy.

mod common;
use common::{Platform, identity, keys, page};
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use tss_esapi::structures::PcrSlot;
use warden_checkpoint::{
    ChainError, HEADER_LEN, Image, Page, PcrPolicy, RECORD_HEADER_LEN, ReadError, Reader,
    RecordKind, StateKind, Trust, VerifyError, merge, verify, verify_chain,
};

const VCPU: &[u8] = b"rip=0x401000 rsp=0x7ff0 cr3=0x1000 fxsave...";
const CHANNELS: &[u8] = b"port 3 -> dom 2, 1 event pending; grant 5 rw";
const VTPM: &[u8] = b"vtpm instance state: pcrs, nv, keys (sealed by the vTPM manager)";

/// A full image of `pages` pages: data pages, a zero page every 5th, page 9 a copy of page 2.
fn full_image(p: &mut Platform, pages: u64, k: u8) -> (Vec<u8>, Vec<Box<[u8; 4096]>>) {
    let mut w = warden_checkpoint::CheckpointWriter::new(identity(pages, 1, None), &keys(k));
    let mut content = Vec::new();
    for i in 0..pages {
        let bytes = match i {
            _ if i % 5 == 4 => Box::new([0u8; 4096]),
            9 => page(2, 0),
            _ => page(i, 0),
        };
        w.page::<()>(i, &bytes).unwrap();
        content.push(bytes);
    }
    w.state::<()>(StateKind::Vcpu, VCPU).unwrap();
    w.state::<()>(StateKind::Channels, CHANNELS).unwrap();
    w.state::<()>(StateKind::Vtpm, VTPM).unwrap();
    (w.finish(&mut p.signer).unwrap(), content)
}

/// An incremental child of `parent` (digest) where `dirty` pages take `f(index)`.
fn incremental(
    p: &mut Platform,
    pages: u64,
    epoch: u64,
    parent: [u8; 32],
    k: u8,
    dirty: &BTreeSet<u64>,
    f: impl Fn(u64) -> Box<[u8; 4096]>,
) -> Vec<u8> {
    let mut w =
        warden_checkpoint::CheckpointWriter::new(identity(pages, epoch, Some(parent)), &keys(k));
    for &i in dirty {
        w.page::<()>(i, &f(i)).unwrap();
    }
    w.state::<()>(StateKind::Vcpu, VCPU).unwrap();
    w.finish(&mut p.signer).unwrap()
}

#[test]
fn tpm_signed_image_verifies_and_reads_back() {
    let mut p = Platform::new();
    let (bytes, content) = full_image(&mut p, 16, 1);
    let v = verify(&bytes, &p.trust()).expect("the TPM-signed image verifies");
    assert_eq!(v.image.manifest.identity.domain_name, "guest");
    assert_eq!(v.image.manifest.identity.epoch, 1);
    let r = Reader::new(&v.image, &keys(1).page_key);
    for (i, want) in content.iter().enumerate() {
        let got = r
            .page(i as u64)
            .unwrap()
            .expect("a full image has every page");
        assert_eq!(got.bytes(), *want, "page {i}");
        assert_eq!(got == Page::Zero, i % 5 == 4, "page {i} zero flag");
    }
    assert_eq!(r.state(StateKind::Vcpu).unwrap().unwrap(), VCPU);
    assert_eq!(r.state(StateKind::Channels).unwrap().unwrap(), CHANNELS);
    assert_eq!(r.state(StateKind::Vtpm).unwrap().unwrap(), VTPM);
    // The wrong page key authenticates nothing.
    let wrong = Reader::new(&v.image, &keys(2).page_key);
    assert_eq!(
        wrong.page(0),
        Err(ReadError::Authentication {
            kind: RecordKind::Page,
            index: 0
        })
    );
    assert!(wrong.state(StateKind::Vtpm).is_err());
    // The plaintext appears nowhere in the image.
    let needle = &page(3, 0)[..64];
    assert!(
        !bytes.windows(64).any(|w| w == needle),
        "page plaintext in the image"
    );
    assert!(
        !bytes.windows(VTPM.len()).any(|w| w == VTPM),
        "vTPM state in the clear"
    );
}

#[test]
fn policy_binds_the_key_to_the_reference_pcrs() {
    let mut p = Platform::new();
    let (bytes, _) = full_image(&mut p, 4, 1);
    assert!(verify(&bytes, &p.trust()).is_ok());
    // Another hypervisor build: one reference value differs.
    let mut other = p.reference.clone();
    other.pcrs[1].1[0] ^= 1;
    let e = verify(
        &bytes,
        &Trust {
            ak_public: &p.ak_public,
            pcrs: &other,
        },
    )
    .unwrap_err();
    assert_eq!(e.kind(), "policy-mismatch", "{e}");
    // Another selection: only PCRs 20 and 21.
    let fewer = PcrPolicy {
        pcrs: p.reference.pcrs[..2].to_vec(),
    };
    let e = verify(
        &bytes,
        &Trust {
            ak_public: &p.ak_public,
            pcrs: &fewer,
        },
    )
    .unwrap_err();
    assert!(matches!(e, VerifyError::PolicyMismatch { .. }), "{e}");
    // Another AK did not certify the key.
    let mut q = Platform::new();
    let e = verify(
        &bytes,
        &Trust {
            ak_public: &q.ak_public,
            pcrs: &p.reference,
        },
    )
    .unwrap_err();
    assert_eq!(e, VerifyError::CertifySignature);
    // Once PCR 20 changes (another hypervisor measured), the TPM refuses to sign at all.
    common::measure(
        &q.sw,
        &[
            b"another hypervisor",
            b"policy and manifest",
            b"domain images",
        ],
    );
    let mut w = warden_checkpoint::CheckpointWriter::new(identity(1, 2, None), &keys(3));
    w.page::<()>(0, &page(0, 0)).unwrap();
    w.state::<()>(StateKind::Vcpu, VCPU).unwrap();
    let e = w.finish(&mut q.signer).unwrap_err();
    assert!(matches!(e, warden_checkpoint::WriteError::Sign(_)), "{e:?}");
}

#[test]
fn a_key_bound_to_other_pcrs_is_refused_by_name() {
    // The signing key's policy covers PCR 16 instead of Warden's PCRs 20-22.
    let mut p = Platform::with_policy(&[PcrSlot::Slot16]);
    let (bytes, _) = full_image(&mut p, 4, 1);
    let e = verify(&bytes, &p.trust()).unwrap_err();
    assert_eq!(e.kind(), "policy-mismatch");
    assert!(e.to_string().contains("authPolicy"), "{e}");
}

/// The kinds a flip at `pos` may be refused with, by the region it falls in.
fn allowed_kinds(image: &Image<'_>, bytes: &[u8], pos: usize) -> &'static [&'static str] {
    let manifest_len = u32::from_le_bytes(bytes[10..14].try_into().unwrap()) as usize;
    let sig_at = HEADER_LEN + manifest_len;
    let count_at = sig_at + 64;
    match pos {
        0..8 => &["bad-magic"],
        8..10 => &["unsupported-version"],
        10..14 => &[
            "truncated",
            "record-malformed",
            "trailing-bytes",
            "manifest-malformed",
        ],
        _ if pos < sig_at => &["manifest-malformed", "signer-public", "manifest-signature"],
        _ if pos < count_at => &["manifest-signature"],
        _ if pos < count_at + 4 => &["truncated", "trailing-bytes", "record-malformed"],
        _ => {
            let base = bytes.as_ptr() as usize;
            let r = image
                .records
                .iter()
                .find(|r| {
                    let at = r.raw.as_ptr() as usize - base;
                    (at..at + r.raw.len()).contains(&pos)
                })
                .expect("a record covers every byte after the count");
            let at = r.raw.as_ptr() as usize - base;
            if pos < at + RECORD_HEADER_LEN {
                &[
                    "record-malformed",
                    "truncated",
                    "trailing-bytes",
                    "merkle-root",
                ]
            } else if r.kind == RecordKind::Page && r.flags == 2 {
                // A duplicate's source index: it must name an earlier data page.
                &["record-malformed", "merkle-root"]
            } else {
                &["merkle-root"]
            }
        }
    }
}

#[test]
fn every_bit_flip_and_truncation_is_refused_naming_the_check() {
    let mut p = Platform::new();
    let (bytes, _) = full_image(&mut p, 16, 1);
    let image = Image::parse(&bytes).unwrap();
    let trust = p.trust();
    assert!(verify(&bytes, &trust).is_ok());
    let manifest_len = u32::from_le_bytes(bytes[10..14].try_into().unwrap()) as usize;
    // Every bit of header, manifest, signature and record count, and 2,000 seeded random bits.
    let mut positions: Vec<usize> = (0..HEADER_LEN + manifest_len + 64 + 4).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xC4EC_4B01);
    positions.extend((0..2000).map(|_| rng.gen_range(0..bytes.len())));
    let mut by_kind = std::collections::BTreeMap::<&str, usize>::new();
    let mut flipped = bytes.clone();
    for (n, &pos) in positions.iter().enumerate() {
        let bit = if n < HEADER_LEN + manifest_len + 68 {
            0..8
        } else {
            let b = rng.gen_range(0..8);
            b..b + 1
        };
        for b in bit {
            flipped[pos] ^= 1 << b;
            let e = verify(&flipped, &trust).expect_err("a flipped image verified");
            let allowed = allowed_kinds(&image, &bytes, pos);
            assert!(
                allowed.contains(&e.kind()),
                "bit {b} of byte {pos}: {e} not in {allowed:?}"
            );
            *by_kind.entry(e.kind()).or_default() += 1;
            flipped[pos] ^= 1 << b;
        }
    }
    // The random flips fall mostly in page ciphertext: the Merkle root catches them.
    assert!(by_kind["merkle-root"] >= 1500, "{by_kind:?}");
    assert!(
        by_kind["manifest-signature"] > 0 && by_kind["bad-magic"] == 8 * 8,
        "{by_kind:?}"
    );
    println!("bit flips refused by check: {by_kind:?}");
    for len in 0..bytes.len() {
        let e = verify(&bytes[..len], &trust).expect_err("a truncated image verified");
        assert_eq!(e.kind(), "truncated", "cut at {len}: {e}");
    }
    // And one byte more is refused too.
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        verify(&longer, &trust).unwrap_err(),
        VerifyError::TrailingBytes(1)
    );
}

/// The offset of page `index`'s record in `bytes`.
fn record_at(bytes: &[u8], index: u64) -> (usize, usize) {
    let image = Image::parse(bytes).unwrap();
    let r = image.page_record(index).unwrap();
    (
        r.raw.as_ptr() as usize - bytes.as_ptr() as usize,
        r.raw.len(),
    )
}

#[test]
fn a_record_moved_to_another_index_or_image_is_refused() {
    let mut p = Platform::new();
    let (a, _) = full_image(&mut p, 8, 1);
    // The same page key, another checkpoint: only the checkpoint id differs.
    let mut kb = keys(1);
    kb.checkpoint_id = [0xbb; 32];
    let mut w = warden_checkpoint::CheckpointWriter::new(identity(8, 2, None), &kb);
    for i in 0..8 {
        w.page::<()>(i, &page(i, 0)).unwrap();
    }
    w.state::<()>(StateKind::Vcpu, VCPU).unwrap();
    let b = w.finish(&mut p.signer).unwrap();
    let key = keys(1).page_key;

    // Swap the ciphertexts of pages 1 and 2 within the image.
    let (at1, len) = record_at(&a, 1);
    let (at2, _) = record_at(&a, 2);
    let mut swapped = a.clone();
    swapped[at1 + RECORD_HEADER_LEN..at1 + len]
        .copy_from_slice(&a[at2 + RECORD_HEADER_LEN..at2 + len]);
    swapped[at2 + RECORD_HEADER_LEN..at2 + len]
        .copy_from_slice(&a[at1 + RECORD_HEADER_LEN..at1 + len]);
    assert_eq!(
        verify(&swapped, &p.trust()).unwrap_err(),
        VerifyError::MerkleRoot
    );
    let img = Image::parse(&swapped).unwrap();
    let r = Reader::new(&img, &key);
    assert_eq!(
        r.page(1),
        Err(ReadError::Authentication {
            kind: RecordKind::Page,
            index: 1
        })
    );
    assert_eq!(
        r.page(2),
        Err(ReadError::Authentication {
            kind: RecordKind::Page,
            index: 2
        })
    );
    assert_eq!(
        r.page(0).unwrap().unwrap().bytes(),
        page(0, 0),
        "untouched pages still read"
    );

    // Page 3 of image b, same plaintext and page key, put in image a.
    let (ab, _) = record_at(&a, 3);
    let (bb, _) = record_at(&b, 3);
    let mut grafted = a.clone();
    grafted[ab..ab + len].copy_from_slice(&b[bb..bb + len]);
    assert_eq!(
        verify(&grafted, &p.trust()).unwrap_err(),
        VerifyError::MerkleRoot
    );
    let img = Image::parse(&grafted).unwrap();
    assert_eq!(
        Reader::new(&img, &key).page(3),
        Err(ReadError::Authentication {
            kind: RecordKind::Page,
            index: 3
        })
    );

    // A record renumbered: page 3's record of an incremental image {3, 6} claims index 4.
    let parent = verify(&a, &p.trust()).unwrap().digest;
    let inc = incremental(&mut p, 8, 2, parent, 4, &BTreeSet::from([3, 6]), |i| {
        page(i, 1)
    });
    let (at, _) = record_at(&inc, 3);
    let mut moved = inc.clone();
    moved[at + 2..at + 10].copy_from_slice(&4u64.to_le_bytes());
    assert_eq!(
        verify(&moved, &p.trust()).unwrap_err(),
        VerifyError::MerkleRoot
    );
    let img = Image::parse(&moved).unwrap();
    let r = Reader::new(&img, &keys(4).page_key);
    assert_eq!(r.page(3), Ok(None));
    assert_eq!(
        r.page(4),
        Err(ReadError::Authentication {
            kind: RecordKind::Page,
            index: 4
        })
    );
}

#[test]
fn incremental_bytes_follow_the_dirty_fraction() {
    const PAGES: u64 = 1024;
    let mut p = Platform::new();
    let mut w = warden_checkpoint::CheckpointWriter::new(identity(PAGES, 1, None), &keys(1));
    for i in 0..PAGES {
        w.page::<()>(i, &page(i, 0)).unwrap();
    }
    w.state::<()>(StateKind::Vcpu, VCPU).unwrap();
    let full = w.finish(&mut p.signer).unwrap();
    let parent = verify(&full, &p.trust()).unwrap().digest;
    let empty = incremental(&mut p, PAGES, 2, parent, 2, &BTreeSet::new(), |i| {
        page(i, 1)
    });
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let data_record = (RECORD_HEADER_LEN + 4096 + 16) as f64;
    let mut sizes = Vec::new();
    for (k, percent) in [(3u8, 1u64), (4, 10), (5, 50)] {
        let n = PAGES * percent / 100;
        let mut dirty = BTreeSet::new();
        while (dirty.len() as u64) < n {
            dirty.insert(rng.gen_range(0..PAGES));
        }
        let inc = incremental(&mut p, PAGES, 2, parent, k, &dirty, |i| page(i, 1));
        let v = verify(&inc, &p.trust()).unwrap();
        let r = Reader::new(&v.image, &keys(k).page_key);
        for i in 0..PAGES {
            let got = r.page(i).unwrap();
            if dirty.contains(&i) {
                assert_eq!(got.unwrap().bytes(), page(i, 1), "dirty page {i}");
            } else {
                assert_eq!(got, None, "clean page {i} stored");
            }
        }
        let added = (inc.len() - empty.len()) as f64;
        println!(
            "{percent:>2}% dirty ({n} pages): image {} bytes, {:.1}% of the full image's {} bytes",
            inc.len(),
            100.0 * inc.len() as f64 / full.len() as f64,
            full.len()
        );
        assert_eq!(
            added,
            n as f64 * data_record,
            "{percent}%: bytes beyond the empty child"
        );
        sizes.push((n, added));
    }
    // In proportion: 10 % and 50 % cost 10x and 50x what 1 % costs, per page.
    for (n, added) in &sizes {
        assert_eq!(added / *n as f64, sizes[0].1 / sizes[0].0 as f64);
    }
    // Zero pages cost no ciphertext; identical pages are stored once.
    let hundred: BTreeSet<u64> = (100..200).collect();
    let zeros = incremental(&mut p, PAGES, 2, parent, 6, &hundred, |_| {
        Box::new([0; 4096])
    });
    assert_eq!(zeros.len() - empty.len(), 100 * RECORD_HEADER_LEN);
    let same = incremental(&mut p, PAGES, 2, parent, 7, &hundred, |_| page(5, 5));
    assert_eq!(
        same.len() - empty.len(),
        RECORD_HEADER_LEN + 4096 + 16 + 99 * (RECORD_HEADER_LEN + 8)
    );
    let v = verify(&same, &p.trust()).unwrap();
    let r = Reader::new(&v.image, &keys(7).page_key);
    assert_eq!(r.page(150).unwrap().unwrap().bytes(), page(5, 5));
    assert_eq!(r.page(199).unwrap().unwrap().bytes(), page(5, 5));
}

#[test]
fn dedupe_is_keyed_so_images_do_not_reveal_equal_pages_to_each_other() {
    let mut p = Platform::new();
    let (a, _) = full_image(&mut p, 8, 1);
    let (b, _) = full_image(&mut p, 8, 2);
    // The same plaintext page in two images: no ciphertext or tag in common.
    let (ra, len) = record_at(&a, 3);
    let (rb, _) = record_at(&b, 3);
    assert_ne!(
        a[ra + RECORD_HEADER_LEN..ra + len],
        b[rb + RECORD_HEADER_LEN..rb + len]
    );
    assert_ne!(a[ra + len - 16..ra + len], b[rb + len - 16..rb + len]);
}

#[test]
fn merge_equals_the_child_applied_on_its_parent_and_chains_link() {
    const PAGES: u64 = 16;
    let mut p = Platform::new();
    let (full, content) = full_image(&mut p, PAGES, 1);
    let v0 = verify(&full, &p.trust()).unwrap();
    let c1 = incremental(
        &mut p,
        PAGES,
        2,
        v0.digest,
        2,
        &BTreeSet::from([1, 3, 5]),
        |i| {
            if i == 5 {
                Box::new([0; 4096])
            } else {
                page(i, 1)
            }
        },
    );
    let v1 = verify(&c1, &p.trust()).unwrap();
    let c2 = incremental(
        &mut p,
        PAGES,
        3,
        v1.digest,
        3,
        &BTreeSet::from([3, 7]),
        |i| page(i, 2),
    );
    let v2 = verify(&c2, &p.trust()).unwrap();
    verify_chain(&[v0.clone(), v1.clone(), v2.clone()]).unwrap();

    let r0 = Reader::new(&v0.image, &keys(1).page_key);
    let r1 = Reader::new(&v1.image, &keys(2).page_key);
    let merged = merge(&r0, &r1, &keys(9), &mut p.signer).unwrap();
    let vm = verify(&merged, &p.trust()).unwrap();
    assert!(vm.image.manifest.identity.full);
    assert_eq!(vm.image.manifest.identity.epoch, 2);
    let rm = Reader::new(&vm.image, &keys(9).page_key);
    for i in 0..PAGES {
        let want = match i {
            1 | 3 => page(i, 1),
            5 => Box::new([0; 4096]),
            _ => content[i as usize].clone(),
        };
        assert_eq!(
            rm.page(i).unwrap().unwrap().bytes(),
            want,
            "merged page {i}"
        );
    }
    assert_eq!(rm.state(StateKind::Vcpu).unwrap().unwrap(), VCPU);
    // Rolling: the merged image takes the place of the two it replaces; c2 still links.
    verify_chain(&[vm.clone(), v2.clone()]).unwrap();
    // Chains that do not link are refused by name.
    assert_eq!(
        verify_chain(&[v0.clone(), v2.clone()]),
        Err(ChainError::ParentMismatch(1))
    );
    assert_eq!(
        verify_chain(&[v1.clone(), v2.clone()]),
        Err(ChainError::NoFullBase)
    );
    let stale = incremental(&mut p, PAGES, 1, v0.digest, 4, &BTreeSet::from([2]), |i| {
        page(i, 3)
    });
    let vs = verify(&stale, &p.trust()).unwrap();
    assert_eq!(
        verify_chain(&[v0.clone(), vs]),
        Err(ChainError::EpochNotIncreasing(1))
    );
    // Merging out of order is refused.
    let r2 = Reader::new(&v2.image, &keys(3).page_key);
    assert!(matches!(
        merge(&r0, &r2, &keys(10), &mut p.signer),
        Err(warden_checkpoint::WriteError::Merge(_))
    ));
    assert!(matches!(
        merge(&r1, &r2, &keys(10), &mut p.signer),
        Err(warden_checkpoint::WriteError::Merge(_))
    ));
}
