//! The newer policy assertions with stock tpm2-tools against `vtpm-sim`: a write-once NV index
//! (tpm2_policynvwritten, the example of its manual page), with the policy digest the tools
//! compute checked against Part 3's formula, and a second write refused.

mod common;
use common::{Sim, sha256};

#[test]
fn write_once_nv_index_with_policynvwritten() {
    let sim = Sim::started("policy-more-tools");
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

/// tpm2_policyduplicationselect: a key whose policy names only its new parent duplicates to
/// that parent and to no other; the trial digest is Part 3's formula.
#[test]
fn duplication_select_names_the_new_parent() {
    let sim = Sim::started("policy-more-dupsel");
    let run = |args: &[&str]| {
        sim.tool(args);
        sim.tool(&["tpm2_flushcontext", "-t"]);
    };
    // No session is open yet: flushing them too (as primary does) changes nothing.
    sim.primary("o", "ecc", "prim.ctx");
    run(&[
        "tpm2_createprimary",
        "-C",
        "e",
        "-G",
        "ecc",
        "-c",
        "parent.ctx",
    ]);
    run(&[
        "tpm2_createprimary",
        "-C",
        "p",
        "-G",
        "ecc",
        "-c",
        "other.ctx",
    ]);
    run(&["tpm2_readpublic", "-c", "parent.ctx", "-n", "parent.name"]);
    sim.tool(&["tpm2_startauthsession", "-S", "trial.ctx"]);
    sim.tool(&[
        "tpm2_policyduplicationselect",
        "-S",
        "trial.ctx",
        "-n",
        "parent.name",
        "-N",
        "parent.name",
        "-L",
        "dup.policy",
    ]);
    sim.tool(&["tpm2_flushcontext", "trial.ctx"]);
    let parent_name = sim.read("parent.name");
    let want = sha256(&[&[0; 32], &0x188u32.to_be_bytes(), &parent_name, &[0]]);
    assert_eq!(sim.read("dup.policy"), want, "policy digest per Part 3");
    run(&[
        "tpm2_create",
        "-C",
        "prim.ctx",
        "-G",
        "ecc",
        "-L",
        "dup.policy",
        "-a",
        "sensitivedataorigin|userwithauth|sign",
        "-u",
        "key.pub",
        "-r",
        "key.priv",
    ]);
    run(&[
        "tpm2_load",
        "-C",
        "prim.ctx",
        "-u",
        "key.pub",
        "-r",
        "key.priv",
        "-c",
        "key.ctx",
    ]);
    run(&["tpm2_readpublic", "-c", "key.ctx", "-n", "key.name"]);
    let duplicate = |parent: &str| {
        sim.tool(&["tpm2_startauthsession", "--policy-session", "-S", "s.ctx"]);
        sim.tool(&[
            "tpm2_policyduplicationselect",
            "-S",
            "s.ctx",
            "-n",
            "key.name",
            "-N",
            "parent.name",
        ]);
        let out = sim.try_tool(&[
            "tpm2_duplicate",
            "-C",
            parent,
            "-c",
            "key.ctx",
            "-p",
            "session:s.ctx",
            "-G",
            "null",
            "-r",
            "dup.priv",
            "-s",
            "dup.seed",
        ]);
        sim.tool(&["tpm2_flushcontext", "-t"]);
        sim.tool(&["tpm2_flushcontext", "s.ctx"]);
        out
    };
    let to_other = duplicate("other.ctx");
    let err = String::from_utf8_lossy(&to_other.stderr).to_lowercase();
    assert!(
        !to_other.status.success() && err.contains("0x99d"),
        "the policy names another parent (TPM_RC_POLICY_FAIL): {err}"
    );
    let to_parent = duplicate("parent.ctx");
    assert!(
        to_parent.status.success(),
        "{}",
        String::from_utf8_lossy(&to_parent.stderr)
    );
    assert!(!sim.read("dup.priv").is_empty());
}

/// tpm2_policytemplate with tpm2_setprimarypolicy (its manual page's example): the owner
/// hierarchy's policy admits CreatePrimary with the one template whose hash it names.
#[test]
fn policytemplate_restricts_createprimary() {
    let sim = Sim::started("policy-more-template");
    sim.tool(&[
        "tpm2_createprimary",
        "-C",
        "o",
        "-G",
        "ecc",
        "-c",
        "prim.ctx",
        "--template-data",
        "template.data",
    ]);
    sim.flush();
    let hash = sha256(&[&sim.read("template.data")]);
    sim.write("template.hash", &hash);
    sim.tool(&["tpm2_startauthsession", "-S", "t.ctx", "-g", "sha256"]);
    sim.tool(&[
        "tpm2_policytemplate",
        "-S",
        "t.ctx",
        "-L",
        "policy.template",
        "--template-hash",
        "template.hash",
    ]);
    sim.tool(&["tpm2_flushcontext", "t.ctx"]);
    let want = sha256(&[&[0; 32], &0x190u32.to_be_bytes(), &hash]);
    assert_eq!(
        sim.read("policy.template"),
        want,
        "policy digest per Part 3"
    );
    sim.tool(&[
        "tpm2_setprimarypolicy",
        "-C",
        "o",
        "-g",
        "sha256",
        "-L",
        "policy.template",
    ]);
    let create = |extra: &[&str]| {
        sim.tool(&[
            "tpm2_startauthsession",
            "-S",
            "s.ctx",
            "-g",
            "sha256",
            "--policy-session",
        ]);
        sim.tool(&[
            "tpm2_policytemplate",
            "-S",
            "s.ctx",
            "--template-hash",
            "template.hash",
        ]);
        let mut args = vec![
            "tpm2_createprimary",
            "-C",
            "o",
            "-G",
            "ecc",
            "-c",
            "prim2.ctx",
            "-P",
            "session:s.ctx",
        ];
        args.extend_from_slice(extra);
        let out = sim.try_tool(&args);
        sim.tool(&["tpm2_flushcontext", "s.ctx"]);
        sim.flush();
        out
    };
    let same = create(&[]);
    assert!(
        same.status.success(),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
    let other = create(&[
        "-a",
        "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|decrypt",
    ]);
    let err = String::from_utf8_lossy(&other.stderr).to_lowercase();
    assert!(
        !other.status.success() && err.contains("0x99d"),
        "another template is refused (TPM_RC_POLICY_FAIL): {err}"
    );
}
