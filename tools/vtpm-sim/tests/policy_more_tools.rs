//! The newer policy assertions with stock tpm2-tools against `vtpm-sim`: a write-once NV index
//! (tpm2_policynvwritten, the example of its manual page), with the policy digest the tools
//! compute checked against Part 3's formula, and a second write refused.

mod common;
use common::{Sim, scratch};
use sha2::{Digest, Sha256};

fn sha256(parts: &[&[u8]]) -> Vec<u8> {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().to_vec()
}

#[test]
fn write_once_nv_index_with_policynvwritten() {
    let dir = scratch("policy-more-tools");
    let sim = Sim::start(&dir, None);
    sim.tool(&["tpm2_startup", "-c"]);
    // The write policy: PolicyCommandCode(NV_Write) then PolicyNvWritten(NO).
    sim.tool(&["tpm2_startauthsession", "-S", "trial.ctx"]);
    sim.tool(&[
        "tpm2_policycommandcode",
        "-S",
        "trial.ctx",
        "TPM2_CC_NV_Write",
    ]);
    sim.tool(&[
        "tpm2_policynvwritten",
        "-S",
        "trial.ctx",
        "-L",
        "nvwrite.policy",
        "c",
    ]);
    sim.tool(&["tpm2_flushcontext", "trial.ctx"]);
    let cc = sha256(&[&[0; 32], &0x16Cu32.to_be_bytes(), &0x137u32.to_be_bytes()]);
    let want = sha256(&[&cc, &0x18Fu32.to_be_bytes(), &[0]]);
    assert_eq!(sim.read("nvwrite.policy"), want, "policy digest per Part 3");
    sim.tool(&[
        "tpm2_nvdefine",
        "0x01000000",
        "-s",
        "1",
        "-a",
        "authread|policywrite",
        "-p",
        "nvrdpass",
        "-L",
        "nvwrite.policy",
    ]);
    sim.write("aa.bin", &[0xAA]);
    sim.write("bb.bin", &[0xBB]);
    let write = |data: &str| {
        sim.tool(&["tpm2_startauthsession", "-S", "s.ctx", "--policy-session"]);
        sim.tool(&["tpm2_policycommandcode", "-S", "s.ctx", "TPM2_CC_NV_Write"]);
        sim.tool(&["tpm2_policynvwritten", "-S", "s.ctx", "c"]);
        let out = sim.try_tool(&[
            "tpm2_nvwrite",
            "0x01000000",
            "-i",
            data,
            "-P",
            "session:s.ctx",
        ]);
        sim.tool(&["tpm2_flushcontext", "s.ctx"]);
        out
    };
    let first = write("aa.bin");
    assert!(
        first.status.success(),
        "first write: {}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = write("bb.bin");
    assert!(
        !second.status.success(),
        "the index is written: no second write"
    );
    let err = String::from_utf8_lossy(&second.stderr).to_lowercase();
    assert!(err.contains("0x99d") || err.contains("policy"), "{err}");
    sim.tool(&[
        "tpm2_nvread",
        "0x01000000",
        "-P",
        "nvrdpass",
        "-o",
        "out.bin",
    ]);
    assert_eq!(sim.read("out.bin"), [0xAA]);
}
