//! The stock-client flows through the `tss-esapi` crate (ESAPI over the mssim TCTI): random,
//! PCRs, primaries and keys, sign/verify (also by OpenSSL on the exported public key), EK and AK
//! with a quote checked on the host like `tpm2_checkquote`, credential activation under the EK's
//! policy, seal/unseal with and without a PCR policy, NV data and counters, evict control,
//! certify, HMAC, AES and RSA encryption, and clear. Every call goes through ESAPI's HMAC
//! sessions with AES-CFB parameter encryption (`execute_with_nullauth_session`).

mod common;
use common::{Sim, scratch};
use sha2::Digest as _;
use std::str::FromStr;
use tss_esapi::abstraction::{ak, ek};
use tss_esapi::attributes::{
    NvIndexAttributesBuilder, ObjectAttributesBuilder, SessionAttributesBuilder,
};
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{NvIndexTpmHandle, PcrHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::{
    AsymmetricAlgorithm, HashingAlgorithm, PublicAlgorithm, SignatureSchemeAlgorithm,
};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::{Hierarchy, NvAuth, Provision};
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Data, Digest, DigestValues, EccScheme, HashScheme, HashcheckTicket, KeyedHashScheme,
    MaxNvBuffer, NvPublicBuilder, PcrSelectionListBuilder, PcrSlot, PublicBuilder,
    PublicKeyedHashParameters, SensitiveData, SignatureScheme, SymmetricDefinition,
    SymmetricDefinitionObject,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::Marshall;
use tss_esapi::{
    Context, constants::tss::TPM2_RH_NULL, constants::tss::TPM2_ST_HASHCHECK,
    tss2_esys::TPMT_TK_HASHCHECK,
};

fn context(sim: &Sim) -> Context {
    let tcti = TctiNameConf::from_str(&sim.tcti()).expect("tcti string");
    let mut ctx = Context::new(tcti).expect("ESAPI context over mssim");
    ctx.startup(tss_esapi::constants::StartupType::Clear)
        .expect("startup");
    ctx
}

fn null_ticket() -> HashcheckTicket {
    HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
        tag: TPM2_ST_HASHCHECK,
        hierarchy: TPM2_RH_NULL,
        digest: Default::default(),
    })
    .expect("null ticket")
}

fn sha256(data: &[u8]) -> Vec<u8> {
    sha2::Sha256::digest(data).to_vec()
}

#[test]
fn random_and_pcrs() {
    let sim = Sim::start(&scratch("esapi-pcr"), None);
    let mut ctx = context(&sim);
    let a = ctx.get_random(16).expect("random");
    let b = ctx.get_random(16).expect("random");
    assert_eq!(a.len(), 16);
    assert_ne!(a.value(), b.value());
    let mut vals = DigestValues::new();
    vals.set(
        HashingAlgorithm::Sha256,
        Digest::try_from(vec![0x42; 32]).unwrap(),
    );
    ctx.execute_with_nullauth_session(|ctx| ctx.pcr_extend(PcrHandle::Pcr16, vals))
        .expect("extend");
    let sel = PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &[PcrSlot::Slot16])
        .build()
        .unwrap();
    let (_, _, digests) = ctx.pcr_read(sel).expect("read");
    let mut input = vec![0u8; 32];
    input.extend_from_slice(&[0x42; 32]);
    assert_eq!(digests.value()[0].value(), sha256(&input).as_slice());
}

#[test]
fn keys_sign_verify_and_seal() {
    let sim = Sim::start(&scratch("esapi-keys"), None);
    let mut ctx = context(&sim);
    let srk = create_srk(&mut ctx);
    let sign_pub = tss_esapi::utils::create_unrestricted_signing_ecc_public(
        EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)),
        EccCurve::NistP256,
    )
    .unwrap();
    let key = create_loaded(&mut ctx, srk, sign_pub, None);
    let digest = Digest::try_from(sha256(b"esapi message")).unwrap();
    let sig = ctx
        .execute_with_nullauth_session(|ctx| {
            ctx.sign(key, digest.clone(), SignatureScheme::Null, null_ticket())
        })
        .expect("sign");
    ctx.execute_with_nullauth_session(|ctx| ctx.verify_signature(key, digest, sig.clone()))
        .expect("verify");
    let other = Digest::try_from(sha256(b"other message")).unwrap();
    assert!(
        ctx.execute_with_nullauth_session(|ctx| ctx.verify_signature(key, other, sig))
            .is_err(),
        "wrong digest verified"
    );
    ctx.flush_context(key.into()).unwrap();
    // Seal and unseal.
    let secret = SensitiveData::try_from(b"sealed via esapi".to_vec()).unwrap();
    let item = create_loaded(&mut ctx, srk, sealed_data_public(None), Some(secret));
    let out = ctx
        .execute_with_nullauth_session(|ctx| ctx.unseal(item.into()))
        .expect("unseal");
    assert_eq!(out.value(), b"sealed via esapi");
}

#[test]
fn ek_ak_quote_and_credential() {
    let sim = Sim::start(&scratch("esapi-ek"), None);
    let mut ctx = context(&sim);
    let (ek, ak, _) = ek_and_ak(&mut ctx);
    // Quote PCR 0 and 16 and check the signature over the attestation with the TPM.
    let sel = PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &[PcrSlot::Slot0, PcrSlot::Slot16])
        .build()
        .unwrap();
    let nonce = Data::try_from(vec![7u8; 16]).unwrap();
    let (attest, sig) = ctx
        .execute_with_nullauth_session(|ctx| ctx.quote(ak, nonce, SignatureScheme::Null, sel))
        .expect("quote");
    let digest = Digest::try_from(sha256(&attest.marshall().unwrap())).unwrap();
    ctx.execute_with_nullauth_session(|ctx| ctx.verify_signature(ak, digest, sig))
        .expect("quote signature");
    assert_eq!(attest.extra_data().value(), &[7u8; 16]);
    // MakeCredential to the EK for the AK's name, ActivateCredential under PolicySecret(endorsement).
    let (_, ak_name, _) = ctx.read_public(ak).unwrap();
    let cred = Digest::try_from(b"credential-0001".to_vec()).unwrap();
    let (id, secret) = ctx
        .execute_without_session(|ctx| ctx.make_credential(ek, cred.clone(), ak_name))
        .expect("make credential");
    let session = ctx
        .start_auth_session(
            None,
            None,
            None,
            SessionType::Policy,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )
        .unwrap()
        .expect("policy session");
    let (attrs, mask) = SessionAttributesBuilder::new()
        .with_decrypt(true)
        .with_encrypt(true)
        .build();
    ctx.tr_sess_set_attributes(session, attrs, mask).unwrap();
    let policy = PolicySession::try_from(session).unwrap();
    ctx.execute_with_nullauth_session(|ctx| {
        ctx.policy_secret(
            policy,
            tss_esapi::handles::AuthHandle::Endorsement,
            Default::default(),
            Default::default(),
            Default::default(),
            None,
        )
    })
    .expect("policy secret");
    let got = ctx
        .execute_with_sessions((Some(AuthSession::Password), Some(session), None), |ctx| {
            ctx.activate_credential(ak, ek, id, secret)
        })
        .expect("activate credential");
    assert_eq!(got.value(), cred.value());
}

#[test]
fn nv_define_write_read() {
    let sim = Sim::start(&scratch("esapi-nv"), None);
    let mut ctx = context(&sim);
    let index = NvIndexTpmHandle::new(0x0150_0100).unwrap();
    let public = NvPublicBuilder::new()
        .with_nv_index(index)
        .with_index_name_algorithm(HashingAlgorithm::Sha256)
        .with_index_attributes(
            NvIndexAttributesBuilder::new()
                .with_owner_write(true)
                .with_owner_read(true)
                .build()
                .unwrap(),
        )
        .with_data_area_size(32)
        .build()
        .unwrap();
    let handle = ctx
        .execute_with_nullauth_session(|ctx| ctx.nv_define_space(Provision::Owner, None, public))
        .expect("define");
    let data = MaxNvBuffer::try_from(b"esapi nv data".to_vec()).unwrap();
    ctx.execute_with_nullauth_session(|ctx| ctx.nv_write(NvAuth::Owner, handle, data, 0))
        .expect("write");
    let back = ctx
        .execute_with_nullauth_session(|ctx| ctx.nv_read(NvAuth::Owner, handle, 13, 0))
        .expect("read");
    assert_eq!(back.value(), b"esapi nv data");
}

/// The TCG storage root key template under the owner hierarchy.
fn create_srk(ctx: &mut Context) -> tss_esapi::handles::KeyHandle {
    let public = tss_esapi::utils::create_restricted_decryption_rsa_public(
        SymmetricDefinitionObject::AES_128_CFB,
        tss_esapi::interface_types::key_bits::RsaKeyBits::Rsa2048,
        tss_esapi::structures::RsaExponent::default(),
    )
    .unwrap();
    ctx.execute_with_nullauth_session(|ctx| {
        ctx.create_primary(Hierarchy::Owner, public, None, None, None, None)
    })
    .expect("SRK")
    .key_handle
}

/// The RSA EK (default template) and an RSASSA AK under it: (EK, AK, AK public).
fn ek_and_ak(
    ctx: &mut Context,
) -> (
    tss_esapi::handles::KeyHandle,
    tss_esapi::handles::KeyHandle,
    tss_esapi::structures::Public,
) {
    let ek = ek::create_ek_object(ctx, AsymmetricAlgorithm::Rsa, None).expect("EK");
    let ak_res = ak::create_ak(
        ctx,
        ek,
        HashingAlgorithm::Sha256,
        SignatureSchemeAlgorithm::RsaSsa,
        None,
        None,
    )
    .expect("AK");
    let public = ak_res.out_public.clone();
    let ak = ak::load_ak(ctx, ek, None, ak_res.out_private, ak_res.out_public).expect("load AK");
    (ek, ak, public)
}

/// A sealed-data object: authorised by its password, or only by `policy` when given.
fn sealed_data_public(policy: Option<Digest>) -> tss_esapi::structures::Public {
    let attrs = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_user_with_auth(policy.is_none())
        .build()
        .unwrap();
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_auth_policy(policy.unwrap_or_default())
        .with_object_attributes(attrs)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
        .unwrap()
}

/// Creates `public` (with `sensitive` data if given) under `parent` and loads it.
fn create_loaded(
    ctx: &mut Context,
    parent: tss_esapi::handles::KeyHandle,
    public: tss_esapi::structures::Public,
    sensitive: Option<SensitiveData>,
) -> tss_esapi::handles::KeyHandle {
    let created = ctx
        .execute_with_nullauth_session(|ctx| {
            ctx.create(parent, public, None, sensitive, None, None)
        })
        .expect("create");
    ctx.execute_with_nullauth_session(|ctx| {
        ctx.load(parent, created.out_private, created.out_public)
    })
    .expect("load")
}

/// The TPM response code kind of a failed call.
fn rc_kind<T: std::fmt::Debug>(
    r: tss_esapi::Result<T>,
) -> tss_esapi::constants::response_code::Tss2ResponseCodeKind {
    match r {
        Err(tss_esapi::Error::Tss2Error(code)) => code.kind().expect("a known response code"),
        other => panic!("expected a TPM error, got {other:?}"),
    }
}

/// Writes the key's public part as PEM (DER SubjectPublicKeyInfo from ESAPI, PEM by OpenSSL).
fn export_pem(
    ctx: &mut Context,
    dir: &std::path::Path,
    key: tss_esapi::handles::KeyHandle,
    name: &str,
) -> String {
    let (public, _, _) = ctx.read_public(key).unwrap();
    let spki =
        picky_asn1_x509::SubjectPublicKeyInfo::try_from(public).expect("RSA or ECC public key");
    let der = picky_asn1_der::to_vec(&spki).unwrap();
    std::fs::write(dir.join(format!("{name}.der")), der).unwrap();
    let pem = format!("{name}.pem");
    let out = common::host(
        dir,
        &[
            "openssl",
            "pkey",
            "-pubin",
            "-inform",
            "DER",
            "-in",
            &format!("{name}.der"),
            "-out",
            &pem,
        ],
    );
    assert!(
        out.status.success(),
        "openssl pkey: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    pem
}

/// DER ECDSA-Sig-Value { r INTEGER, s INTEGER } for OpenSSL.
fn ecdsa_der(sig: &tss_esapi::structures::Signature) -> Vec<u8> {
    let tss_esapi::structures::Signature::EcDsa(s) = sig else {
        panic!("not ECDSA: {sig:?}")
    };
    let int = |v: &[u8]| {
        let v: Vec<u8> = v.iter().copied().skip_while(|b| *b == 0).collect();
        let mut out = vec![0x02];
        let pad = v.first().is_none_or(|b| b & 0x80 != 0);
        out.push((v.len() + usize::from(pad)) as u8);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(&v);
        out
    };
    let body = [int(s.signature_r().value()), int(s.signature_s().value())].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

fn openssl_verifies(dir: &std::path::Path, pem: &str, sig: &[u8], data: &[u8]) -> bool {
    std::fs::write(dir.join("sig.bin"), sig).unwrap();
    std::fs::write(dir.join("data.bin"), data).unwrap();
    let out = common::host(
        dir,
        &[
            "openssl",
            "dgst",
            "-sha256",
            "-verify",
            pem,
            "-signature",
            "sig.bin",
            "data.bin",
        ],
    );
    String::from_utf8_lossy(&out.stdout).contains("Verified OK")
}

#[test]
fn certify_and_openssl_verifies_rsa_and_ecc_signatures() {
    let dir = scratch("esapi-openssl");
    let sim = Sim::start(&dir, None);
    let mut ctx = context(&sim);
    let srk = create_srk(&mut ctx);
    let ecc = create_loaded(
        &mut ctx,
        srk,
        tss_esapi::utils::create_unrestricted_signing_ecc_public(
            EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)),
            EccCurve::NistP256,
        )
        .unwrap(),
        None,
    );
    let rsa = create_loaded(
        &mut ctx,
        srk,
        tss_esapi::utils::create_unrestricted_signing_rsa_public(
            tss_esapi::structures::RsaScheme::RsaSsa(HashScheme::new(HashingAlgorithm::Sha256)),
            tss_esapi::interface_types::key_bits::RsaKeyBits::Rsa2048,
            tss_esapi::structures::RsaExponent::default(),
        )
        .unwrap(),
        None,
    );
    let ecc_pem = export_pem(&mut ctx, &dir, ecc, "ecc");
    let rsa_pem = export_pem(&mut ctx, &dir, rsa, "rsa");
    let message = b"signed by the vTPM, checked by OpenSSL";
    let digest = Digest::try_from(sha256(message)).unwrap();
    for (key, pem) in [(ecc, &ecc_pem), (rsa, &rsa_pem)] {
        let sig = ctx
            .execute_with_nullauth_session(|ctx| {
                ctx.sign(key, digest.clone(), SignatureScheme::Null, null_ticket())
            })
            .expect("sign");
        let bytes = match &sig {
            tss_esapi::structures::Signature::RsaSsa(s) => s.signature().value().to_vec(),
            other => ecdsa_der(other),
        };
        assert!(
            openssl_verifies(&dir, pem, &bytes, message),
            "{pem}: OpenSSL rejects the signature"
        );
        assert!(
            !openssl_verifies(&dir, pem, &bytes, b"another message"),
            "{pem}: OpenSSL accepts a wrong message"
        );
    }
    // Certify: the ECC key vouches for the RSA key's name; OpenSSL checks the attestation.
    let (_, rsa_name, _) = ctx.read_public(rsa).unwrap();
    let (attest, sig) = ctx
        .execute_with_sessions(
            (
                Some(AuthSession::Password),
                Some(AuthSession::Password),
                None,
            ),
            |ctx| {
                ctx.certify(
                    rsa.into(),
                    ecc,
                    Data::try_from(b"qualifying".to_vec()).unwrap(),
                    SignatureScheme::Null,
                )
            },
        )
        .expect("certify");
    let tss_esapi::structures::AttestInfo::Certify { info } = attest.attested() else {
        panic!("not a certify attestation: {attest:?}")
    };
    assert_eq!(info.name().value(), rsa_name.value(), "certified name");
    assert_eq!(attest.extra_data().value(), b"qualifying");
    assert!(
        openssl_verifies(
            &dir,
            &ecc_pem,
            &ecdsa_der(&sig),
            &attest.marshall().unwrap()
        ),
        "certify signature"
    );
}

#[test]
fn quote_checks_on_the_host_like_tpm2_checkquote() {
    let sim = Sim::start(&scratch("esapi-checkquote"), None);
    let mut ctx = context(&sim);
    let (_, ak, ak_public) = ek_and_ak(&mut ctx);
    let mut vals = DigestValues::new();
    vals.set(
        HashingAlgorithm::Sha256,
        Digest::try_from(vec![0x5a; 32]).unwrap(),
    );
    ctx.execute_with_nullauth_session(|ctx| ctx.pcr_extend(PcrHandle::Pcr23, vals))
        .expect("extend");
    let sel = PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &[PcrSlot::Slot0, PcrSlot::Slot23])
        .build()
        .unwrap();
    let nonce = b"fresh nonce 0042".to_vec();
    let (attest, sig) = ctx
        .execute_with_nullauth_session(|ctx| {
            ctx.quote(
                ak,
                Data::try_from(nonce.clone()).unwrap(),
                SignatureScheme::Null,
                sel.clone(),
            )
        })
        .expect("quote");
    // What tpm2_checkquote checks: the signature by the AK's public key (RSA here, with the
    // `rsa` crate), the nonce, and the PCR digest against PCR values read separately.
    let tss_esapi::structures::Public::Rsa { unique, .. } = &ak_public else {
        panic!("RSA AK")
    };
    let key = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(unique.value()),
        rsa::BigUint::from(65537u32),
    )
    .unwrap();
    let tss_esapi::structures::Signature::RsaSsa(s) = &sig else {
        panic!("RSASSA quote: {sig:?}")
    };
    let body = attest.marshall().unwrap();
    let verify = |body: &[u8]| {
        key.verify(
            rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
            &sha256(body),
            s.signature().value(),
        )
        .is_ok()
    };
    assert!(verify(&body), "quote signature does not verify");
    let mut forged = body.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert!(!verify(&forged), "a changed attestation verifies");
    assert_eq!(attest.extra_data().value(), nonce.as_slice());
    let tss_esapi::structures::AttestInfo::Quote { info } = attest.attested() else {
        panic!("not a quote")
    };
    let (_, _, digests) = ctx.pcr_read(sel).unwrap();
    let concat: Vec<u8> = digests
        .value()
        .iter()
        .flat_map(|d| d.value().to_vec())
        .collect();
    assert_eq!(
        info.pcr_digest().value(),
        sha256(&concat).as_slice(),
        "PCR digest in the quote"
    );
}

#[test]
fn seal_under_a_pcr_policy_unseals_until_the_pcr_changes() {
    let sim = Sim::start(&scratch("esapi-pcr-policy"), None);
    let mut ctx = context(&sim);
    let srk = create_srk(&mut ctx);
    let sel = PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &[PcrSlot::Slot16])
        .build()
        .unwrap();
    let start_policy = |ctx: &mut Context, kind: SessionType| {
        let s = ctx
            .start_auth_session(
                None,
                None,
                None,
                kind,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )
            .unwrap()
            .expect("session");
        PolicySession::try_from(s).unwrap()
    };
    // The policy digest from a trial session equals the one computed by hand (Part 3 §23.7):
    // H(0^32 || TPM_CC_PolicyPCR || TPML_PCR_SELECTION || H(PCR values)).
    let (_, _, digests) = ctx.pcr_read(sel.clone()).unwrap();
    let pcr_digest = sha256(digests.value()[0].value());
    let trial = start_policy(&mut ctx, SessionType::Trial);
    ctx.policy_pcr(
        trial,
        Digest::try_from(pcr_digest.clone()).unwrap(),
        sel.clone(),
    )
    .unwrap();
    let policy = ctx.policy_get_digest(trial).unwrap();
    ctx.flush_context(SessionHandle::from(trial).into())
        .unwrap();
    let mut input = vec![0u8; 32];
    input.extend_from_slice(&0x17fu32.to_be_bytes());
    input.extend_from_slice(&[0, 0, 0, 1, 0x00, 0x0b, 3, 0x00, 0x00, 0x01]);
    input.extend_from_slice(&pcr_digest);
    assert_eq!(
        policy.value(),
        sha256(&input).as_slice(),
        "PolicyPCR digest"
    );
    let public = sealed_data_public(Some(policy));
    let item = create_loaded(
        &mut ctx,
        srk,
        public,
        Some(SensitiveData::try_from(b"pcr-bound".to_vec()).unwrap()),
    );
    let unseal = |ctx: &mut Context| {
        let session = start_policy(ctx, SessionType::Policy);
        ctx.policy_pcr(session, Digest::default(), sel.clone())
            .unwrap();
        let r = ctx.execute_with_session(Some(AuthSession::from(session)), |ctx| {
            ctx.unseal(item.into())
        });
        ctx.flush_context(SessionHandle::from(session).into())
            .unwrap();
        r
    };
    assert_eq!(
        unseal(&mut ctx).expect("unseal under the policy").value(),
        b"pcr-bound"
    );
    let mut vals = DigestValues::new();
    vals.set(
        HashingAlgorithm::Sha256,
        Digest::try_from(vec![1; 32]).unwrap(),
    );
    ctx.execute_with_nullauth_session(|ctx| ctx.pcr_extend(PcrHandle::Pcr16, vals))
        .unwrap();
    assert_eq!(
        rc_kind(unseal(&mut ctx)),
        tss_esapi::constants::response_code::Tss2ResponseCodeKind::PolicyFail
    );
}

#[test]
fn nv_counter_evict_control_and_clear() {
    use tss_esapi::constants::response_code::Tss2ResponseCodeKind as Kind;
    let sim = Sim::start(&scratch("esapi-counter"), None);
    let mut ctx = context(&sim);
    // A counter: unreadable until first incremented, then counts up by one.
    let index = NvIndexTpmHandle::new(0x0150_0200).unwrap();
    let public = NvPublicBuilder::new()
        .with_nv_index(index)
        .with_index_name_algorithm(HashingAlgorithm::Sha256)
        .with_index_attributes(
            NvIndexAttributesBuilder::new()
                .with_nv_index_type(tss_esapi::constants::NvIndexType::Counter)
                .with_owner_write(true)
                .with_owner_read(true)
                .build()
                .unwrap(),
        )
        .with_data_area_size(8)
        .build()
        .unwrap();
    let nv = ctx
        .execute_with_nullauth_session(|ctx| ctx.nv_define_space(Provision::Owner, None, public))
        .expect("define counter");
    let read = |ctx: &mut Context| {
        ctx.execute_with_nullauth_session(|ctx| ctx.nv_read(NvAuth::Owner, nv, 8, 0))
            .map(|b| u64::from_be_bytes(b.value().try_into().unwrap()))
    };
    assert_eq!(rc_kind(read(&mut ctx)), Kind::NvUninitialized);
    ctx.execute_with_nullauth_session(|ctx| ctx.nv_increment(NvAuth::Owner, nv))
        .expect("increment");
    let first = read(&mut ctx).expect("read counter");
    ctx.execute_with_nullauth_session(|ctx| ctx.nv_increment(NvAuth::Owner, nv))
        .expect("increment");
    assert_eq!(read(&mut ctx).unwrap(), first + 1);
    // Evict control: the SRK becomes persistent, is listed, and is removed again.
    let srk = create_srk(&mut ctx);
    let (_, srk_name, _) = ctx.read_public(srk).unwrap();
    let persistent = tss_esapi::interface_types::dynamic_handles::Persistent::Persistent(
        tss_esapi::handles::PersistentTpmHandle::new(0x8100_0100).unwrap(),
    );
    let listed = |ctx: &mut Context| {
        let (data, _) = ctx
            .get_capability(
                tss_esapi::constants::CapabilityType::Handles,
                0x8100_0000,
                32,
            )
            .unwrap();
        let tss_esapi::structures::CapabilityData::Handles(list) = data else {
            panic!("handles")
        };
        list.iter().any(|h| u32::from(*h) == 0x8100_0100)
    };
    assert!(!listed(&mut ctx));
    let p = ctx
        .execute_with_nullauth_session(|ctx| {
            ctx.evict_control(Provision::Owner, srk.into(), persistent)
        })
        .expect("evict control");
    assert!(listed(&mut ctx), "persistent SRK not listed");
    let (_, name, _) = ctx.read_public(p.into()).unwrap();
    assert_eq!(name.value(), srk_name.value());
    ctx.execute_with_nullauth_session(|ctx| ctx.evict_control(Provision::Owner, p, persistent))
        .expect("evict again removes it");
    assert!(!listed(&mut ctx), "removed persistent SRK still listed");
    // Clear (lockout authorisation): a new storage seed, owner NV gone.
    ctx.execute_with_nullauth_session(|ctx| ctx.clear(tss_esapi::handles::AuthHandle::Lockout))
        .expect("clear");
    let srk2 = create_srk(&mut ctx);
    let (_, name2, _) = ctx.read_public(srk2).unwrap();
    assert_ne!(name2.value(), srk_name.value(), "the SRK survived Clear");
    let (data, _) = ctx
        .get_capability(
            tss_esapi::constants::CapabilityType::Handles,
            0x0100_0000,
            32,
        )
        .unwrap();
    let tss_esapi::structures::CapabilityData::Handles(list) = data else {
        panic!("handles")
    };
    assert!(list.is_empty(), "owner NV index survived Clear: {list:?}");
}

#[test]
fn hmac_aes_and_rsa_agree_with_host_crypto() {
    use hmac::Mac as _;
    let sim = Sim::start(&scratch("esapi-crypto"), None);
    let mut ctx = context(&sim);
    let srk = create_srk(&mut ctx);
    // HMAC with a key the host knows.
    let hmac_key = b"an hmac key known to the host".to_vec();
    let public = PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(
            ObjectAttributesBuilder::new()
                .with_fixed_tpm(true)
                .with_fixed_parent(true)
                .with_user_with_auth(true)
                .with_sign_encrypt(true)
                .build()
                .unwrap(),
        )
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(
            KeyedHashScheme::HMAC_SHA_256,
        ))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
        .unwrap();
    let key = create_loaded(
        &mut ctx,
        srk,
        public,
        Some(SensitiveData::try_from(hmac_key.clone()).unwrap()),
    );
    let data = b"data to authenticate".to_vec();
    let tpm = ctx
        .execute_with_nullauth_session(|ctx| {
            ctx.hmac(
                key.into(),
                tss_esapi::structures::MaxBuffer::try_from(data.clone()).unwrap(),
                HashingAlgorithm::Sha256,
            )
        })
        .expect("hmac");
    let mut host = hmac::Hmac::<sha2::Sha256>::new_from_slice(&hmac_key).unwrap();
    host.update(&data);
    assert_eq!(
        tpm.value(),
        host.finalize().into_bytes().as_slice(),
        "HMAC differs from the host's"
    );
    // AES-128-CFB: a round trip, and chaining through the returned IV equals one call.
    let public = PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::SymCipher)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(
            ObjectAttributesBuilder::new()
                .with_fixed_tpm(true)
                .with_fixed_parent(true)
                .with_sensitive_data_origin(true)
                .with_user_with_auth(true)
                .with_decrypt(true)
                .with_sign_encrypt(true)
                .build()
                .unwrap(),
        )
        .with_symmetric_cipher_parameters(tss_esapi::structures::SymmetricCipherParameters::new(
            SymmetricDefinitionObject::AES_128_CFB,
        ))
        .with_symmetric_cipher_unique_identifier(Digest::default())
        .build()
        .unwrap();
    let aes = create_loaded(&mut ctx, srk, public, None);
    let plain: Vec<u8> = (0..100u8).collect();
    let iv = tss_esapi::structures::InitialValue::try_from(vec![0u8; 16]).unwrap();
    let mut crypt = |decrypt: bool, data: &[u8], iv: tss_esapi::structures::InitialValue| {
        ctx.execute_with_nullauth_session(|ctx| {
            ctx.encrypt_decrypt_2(
                aes,
                decrypt,
                tss_esapi::interface_types::algorithm::SymmetricMode::Cfb,
                tss_esapi::structures::MaxBuffer::try_from(data.to_vec()).unwrap(),
                iv,
            )
        })
        .expect("encrypt_decrypt_2")
    };
    let (cipher, _) = crypt(false, &plain, iv.clone());
    assert_ne!(cipher.value(), plain.as_slice());
    let (back, _) = crypt(true, cipher.value(), iv.clone());
    assert_eq!(back.value(), plain.as_slice(), "AES-CFB round trip");
    let (c1, iv1) = crypt(false, &plain[..48], iv.clone());
    let (c2, _) = crypt(false, &plain[48..], iv1);
    assert_eq!(
        [c1.value(), c2.value()].concat(),
        cipher.value(),
        "CFB chaining through ivOut"
    );
    // Three transient slots (SRK, HMAC, AES): make room for the RSA key.
    ctx.flush_context(key.into()).unwrap();
    ctx.flush_context(aes.into()).unwrap();
    // RSA-OAEP: the host encrypts to the TPM's public key; the TPM decrypts.
    let public = tss_esapi::utils::create_unrestricted_encryption_decryption_rsa_public(
        tss_esapi::interface_types::key_bits::RsaKeyBits::Rsa2048,
        tss_esapi::structures::RsaExponent::default(),
    )
    .unwrap();
    let rsa_key = create_loaded(&mut ctx, srk, public, None);
    let (public, _, _) = ctx.read_public(rsa_key).unwrap();
    let tss_esapi::structures::Public::Rsa { unique, .. } = &public else {
        panic!("RSA")
    };
    let host_key = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(unique.value()),
        rsa::BigUint::from(65537u32),
    )
    .unwrap();
    let secret = b"a secret for the vTPM".to_vec();
    let mut rng = rand::thread_rng();
    let cipher = host_key
        .encrypt(&mut rng, rsa::Oaep::new::<sha2::Sha256>(), &secret)
        .unwrap();
    let scheme =
        tss_esapi::structures::RsaDecryptionScheme::Oaep(HashScheme::new(HashingAlgorithm::Sha256));
    let got = ctx
        .execute_with_nullauth_session(|ctx| {
            ctx.rsa_decrypt(
                rsa_key,
                tss_esapi::structures::PublicKeyRsa::try_from(cipher).unwrap(),
                scheme,
                Data::default(),
            )
        })
        .expect("rsa_decrypt");
    assert_eq!(
        got.value(),
        secret.as_slice(),
        "TPM decryption of a host OAEP ciphertext"
    );
    let tpm_cipher = ctx
        .execute_with_nullauth_session(|ctx| {
            ctx.rsa_encrypt(
                rsa_key,
                tss_esapi::structures::PublicKeyRsa::try_from(secret.clone()).unwrap(),
                scheme,
                Data::default(),
            )
        })
        .expect("rsa_encrypt");
    let again = ctx
        .execute_with_nullauth_session(|ctx| {
            ctx.rsa_decrypt(rsa_key, tpm_cipher, scheme, Data::default())
        })
        .expect("rsa_decrypt of the TPM's own ciphertext");
    assert_eq!(again.value(), secret.as_slice());
}
