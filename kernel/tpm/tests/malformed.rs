//! Responses are untrusted: every malformed or hostile response becomes a typed error.

use warden_tpm::client::Command as Cc;
use warden_tpm::{Error, HashAlg, Tpm, Transport};

/// Replies with canned bytes, whatever the command.
struct Canned(Vec<u8>);

impl Transport for Canned {
    type Error = ();
    fn execute(&mut self, _cmd: &[u8], rsp: &mut [u8]) -> Result<usize, ()> {
        let n = self.0.len().min(rsp.len());
        rsp[..n].copy_from_slice(&self.0[..n]);
        Ok(self.0.len())
    }
}

fn rsp(tag: u16, rc: u32, body: &[u8]) -> Vec<u8> {
    let mut v = tag.to_be_bytes().to_vec();
    v.extend_from_slice(&u32::try_from(10 + body.len()).unwrap().to_be_bytes());
    v.extend_from_slice(&rc.to_be_bytes());
    v.extend_from_slice(body);
    v
}

#[test]
fn hostile_pcr_read_responses() {
    // PCR_Read(sha256, PCR 20) answered in various wrong ways.
    let sel_sha256_20 = [0, 0, 0, 1, 0, 0x0b, 3, 0, 0, 0x10];
    let sel_sha1_20 = [0, 0, 0, 1, 0, 0x04, 3, 0, 0, 0x10];
    let sel_sha256_21 = [0, 0, 0, 1, 0, 0x0b, 3, 0, 0, 0x20];
    let one_digest = |n: u8| {
        let mut v = vec![0, 0, 0, 1, 0, n];
        v.extend(std::iter::repeat_n(0xab, n as usize));
        v
    };
    let body = |sel: &[u8], digests: &[u8]| [&[0, 0, 0, 7][..], sel, digests].concat();
    let cases: Vec<(&str, Vec<u8>, Error<()>)> = vec![
        (
            "error rc",
            rsp(0x8001, 0x101, &[]),
            Error::Tpm(Cc::PcrRead, 0x101),
        ),
        (
            "short header",
            vec![0x80, 0x01, 0, 0],
            Error::Malformed(
                Cc::PcrRead,
                tpm2_protocol::TpmError::UnexpectedEnd {
                    offset: 0,
                    needed: 10,
                    available: 4,
                },
            ),
        ),
        (
            "bad tag",
            rsp(0x1234, 0, &[]),
            Error::Malformed(Cc::PcrRead, tpm2_protocol_err(&rsp(0x1234, 0, &[]))),
        ),
        (
            "truncated body",
            rsp(0x8001, 0, &[0, 0, 0, 7, 0, 0]),
            Error::Malformed(Cc::PcrRead, tpm2_protocol_err_body(&[0, 0, 0, 7, 0, 0])),
        ),
        (
            "other bank",
            rsp(0x8001, 0, &body(&sel_sha1_20, &one_digest(20))),
            Error::Unexpected(Cc::PcrRead, "the requested PCR was not returned"),
        ),
        (
            "other pcr",
            rsp(0x8001, 0, &body(&sel_sha256_21, &one_digest(32))),
            Error::Unexpected(Cc::PcrRead, "the requested PCR was not returned"),
        ),
        (
            "short digest",
            rsp(0x8001, 0, &body(&sel_sha256_20, &one_digest(20))),
            Error::Unexpected(Cc::PcrRead, "PCR value has the wrong length"),
        ),
        (
            "no digest",
            rsp(0x8001, 0, &body(&sel_sha256_20, &[0, 0, 0, 0])),
            Error::Unexpected(Cc::PcrRead, "not exactly one PCR value"),
        ),
    ];
    for (name, bytes, expect) in cases {
        let got = Tpm::new(Canned(bytes)).pcr_read(20, HashAlg::Sha256);
        assert_eq!(got, Err(expect), "{name}");
    }
    // And the well-formed answer is accepted.
    let ok = rsp(0x8001, 0, &body(&sel_sha256_20, &one_digest(32)));
    assert_eq!(
        Tpm::new(Canned(ok))
            .pcr_read(20, HashAlg::Sha256)
            .unwrap()
            .as_bytes(),
        [0xab; 32]
    );
}

#[test]
fn overrunning_transport_is_reported() {
    let mut big = rsp(0x8001, 0, &[]);
    big.resize(10_000, 0);
    assert_eq!(
        Tpm::new(Canned(big)).get_random(&mut [0; 4]),
        Err(Error::ResponseOverrun(Cc::GetRandom, 10_000))
    );
}

#[test]
fn quote_without_our_nonce_is_rejected() {
    // A syntactically valid quote response whose extraData is not the nonce we sent.
    let attest = [
        &[0xff, 0x54, 0x43, 0x47, 0x80, 0x18][..], // magic, TPM_ST_ATTEST_QUOTE
        &[0, 0],                                   // qualifiedSigner
        &[0, 2, 0xde, 0xad],                       // extraData
        &[0; 17],                                  // clockInfo
        &[0; 8],                                   // firmwareVersion
        &[0, 0, 0, 0],                             // pcrSelect: empty
        &[0, 0],                                   // pcrDigest: empty
    ]
    .concat();
    let mut params = (u16::try_from(attest.len()).unwrap())
        .to_be_bytes()
        .to_vec();
    params.extend_from_slice(&attest);
    params.extend_from_slice(&[0, 0x10]); // TPMT_SIGNATURE: TPM_ALG_NULL
    let mut body = u32::try_from(params.len()).unwrap().to_be_bytes().to_vec();
    body.extend_from_slice(&params);
    body.extend_from_slice(&[0, 0, 1, 0, 0]); // empty password session response
    let sel = warden_tpm::PcrSelection {
        banks: warden_tpm::Banks::from_algs(&[HashAlg::Sha256]),
        pcrs: 1 << 20,
    };
    let got = Tpm::new(Canned(rsp(0x8002, 0, &body))).quote(0x8101_0100, &[1, 2, 3], sel);
    assert_eq!(
        got,
        Err(Error::Unexpected(
            Cc::Quote,
            "quote does not carry the nonce"
        ))
    );
    let long = [0u8; 65];
    assert_eq!(
        Tpm::new(Canned(vec![])).quote(0x8101_0100, &long, sel),
        Err(Error::NonceTooLong(65))
    );
}

fn tpm2_protocol_err(bytes: &[u8]) -> tpm2_protocol::TpmError {
    tpm2_protocol::frame::TpmResponse::cast(bytes)
        .err()
        .or_else(|| {
            tpm2_protocol::frame::TpmResponse::cast(bytes)
                .ok()
                .and_then(|r| r.rc().err())
        })
        .expect("expected a cast error")
}

fn tpm2_protocol_err_body(body: &[u8]) -> tpm2_protocol::TpmError {
    let r = rsp(0x8001, 0, body);
    tpm2_protocol::frame::TpmResponse::cast(&r)
        .unwrap()
        .unmarshal::<tpm2_protocol::frame::TpmPcrReadResponse>()
        .unwrap_err()
}

#[test]
fn fuzz_seed_corpus_for_responses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/response");
    let mut n = 0;
    for f in std::fs::read_dir(&dir).unwrap() {
        warden_tpm::client::fuzz_response(&std::fs::read(f.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n > 0, "empty corpus in {}", dir.display());
}

/// Without cargo-fuzz (nightly) on CI: a deterministic mutation run over both seed corpora
/// (bit flips, truncations, length-field inflation) through the fuzz entry points.
#[test]
fn mutated_seeds_never_panic() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (corpus, run) in [
        ("eventlog", warden_tpm::eventlog::fuzz_parse as fn(&[u8])),
        ("response", warden_tpm::client::fuzz_response),
    ] {
        for f in std::fs::read_dir(root.join(corpus)).unwrap() {
            let seed = std::fs::read(f.unwrap().path()).unwrap();
            for _ in 0..2000 {
                let mut m = seed.clone();
                if m.is_empty() {
                    break;
                }
                for _ in 0..=(next() % 3) {
                    let i = (next() as usize) % m.len();
                    match next() % 3 {
                        0 => m[i] ^= 1 << (next() % 8),
                        1 => m[i] = 0xff,
                        _ => m.truncate(i.max(1)),
                    }
                }
                run(&m);
            }
        }
    }
}
