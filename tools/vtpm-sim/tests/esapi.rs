//! The same kinds of flows through the `tss-esapi` crate (ESAPI over the mssim TCTI): random,
//! PCRs, primaries and keys, sign/verify, EK and AK with quote, credential activation under
//! the EK's policy, seal/unseal and NV. Every call goes through ESAPI's HMAC sessions with
//! AES-CFB parameter encryption (`execute_with_nullauth_session`).

mod common;
use common::{Sim, scratch};
use sha2::Digest as _;
use std::str::FromStr;
use tss_esapi::abstraction::{ak, ek};
use tss_esapi::attributes::{
    NvIndexAttributesBuilder, ObjectAttributesBuilder, SessionAttributesBuilder,
};
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{NvIndexTpmHandle, PcrHandle};
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
    let srk_pub = tss_esapi::utils::create_restricted_decryption_rsa_public(
        SymmetricDefinitionObject::AES_128_CFB,
        tss_esapi::interface_types::key_bits::RsaKeyBits::Rsa2048,
        tss_esapi::structures::RsaExponent::default(),
    )
    .unwrap();
    let srk = ctx
        .execute_with_nullauth_session(|ctx| {
            ctx.create_primary(Hierarchy::Owner, srk_pub.clone(), None, None, None, None)
        })
        .expect("SRK")
        .key_handle;
    let sign_pub = tss_esapi::utils::create_unrestricted_signing_ecc_public(
        EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)),
        EccCurve::NistP256,
    )
    .unwrap();
    let created = ctx
        .execute_with_nullauth_session(|ctx| ctx.create(srk, sign_pub, None, None, None, None))
        .expect("create");
    let key = ctx
        .execute_with_nullauth_session(|ctx| {
            ctx.load(srk, created.out_private.clone(), created.out_public.clone())
        })
        .expect("load");
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
    let seal_pub = PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(
            ObjectAttributesBuilder::new()
                .with_fixed_tpm(true)
                .with_fixed_parent(true)
                .with_user_with_auth(true)
                .build()
                .unwrap(),
        )
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
        .unwrap();
    let secret = SensitiveData::try_from(b"sealed via esapi".to_vec()).unwrap();
    let sealed = ctx
        .execute_with_nullauth_session(|ctx| {
            ctx.create(srk, seal_pub, None, Some(secret), None, None)
        })
        .expect("seal");
    let item = ctx
        .execute_with_nullauth_session(|ctx| ctx.load(srk, sealed.out_private, sealed.out_public))
        .expect("load sealed");
    let out = ctx
        .execute_with_nullauth_session(|ctx| ctx.unseal(item.into()))
        .expect("unseal");
    assert_eq!(out.value(), b"sealed via esapi");
}

#[test]
fn ek_ak_quote_and_credential() {
    let sim = Sim::start(&scratch("esapi-ek"), None);
    let mut ctx = context(&sim);
    let ek = ek::create_ek_object(&mut ctx, AsymmetricAlgorithm::Rsa, None).expect("EK");
    let ak_res = ak::create_ak(
        &mut ctx,
        ek,
        HashingAlgorithm::Sha256,
        SignatureSchemeAlgorithm::RsaSsa,
        None,
        None,
    )
    .expect("AK");
    let ak =
        ak::load_ak(&mut ctx, ek, None, ak_res.out_private, ak_res.out_public).expect("load AK");
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
