//! Hierarchy and clock administration with stock tpm2-tools against `vtpm-sim`:
//! tpm2_changeeps / tpm2_changepps (the hierarchy's primary changes, the others' do not),
//! tpm2_setprimarypolicy (the owner hierarchy then answers to that policy), tpm2_setclock and
//! tpm2_clockrateadjust (seen by tpm2_readclock), and tpm2_nvundefine of a policy-delete index
//! (TPM2_NV_UndefineSpaceSpecial).

mod common;
use common::{Sim, scratch};

/// outPublic of a fresh ECC primary in `hier` (the tool's default template), flushed after.
fn primary_public(sim: &Sim, hier: &str, out: &str) -> Vec<u8> {
    sim.tool(&[
        "tpm2_createprimary",
        "-Q",
        "-C",
        hier,
        "-G",
        "ecc",
        "-c",
        "p.ctx",
    ]);
    sim.tool(&["tpm2_readpublic", "-Q", "-c", "p.ctx", "-o", out]);
    sim.flush();
    sim.read(out)
}

fn clock(sim: &Sim) -> u64 {
    let out = sim.stdout(&["tpm2_readclock"]);
    out.lines()
        .find_map(|l| l.trim().strip_prefix("clock: "))
        .unwrap_or_else(|| panic!("no clock in {out}"))
        .trim()
        .parse()
        .expect("clock value")
}

#[test]
fn seeds_primary_policy_clock_and_policy_delete_with_tpm2_tools() {
    let sim = Sim::started("admin-tools");

    // New endorsement and platform seeds.
    for (tool, hier, other) in [("tpm2_changeeps", "e", "o"), ("tpm2_changepps", "p", "e")] {
        let before = primary_public(&sim, hier, "before.pub");
        let other_before = primary_public(&sim, other, "other1.pub");
        assert_eq!(
            primary_public(&sim, hier, "again.pub"),
            before,
            "deterministic"
        );
        sim.tool(&[tool]);
        assert_ne!(
            primary_public(&sim, hier, "after.pub"),
            before,
            "{tool}: new primary"
        );
        assert_eq!(
            primary_public(&sim, other, "other2.pub"),
            other_before,
            "{tool}: other hierarchy untouched"
        );
    }

    // The owner hierarchy under a policy: PolicyCommandCode(NV_DefineSpace).
    sim.tool(&["tpm2_startauthsession", "-S", "t.ctx"]);
    sim.tool(&[
        "tpm2_policycommandcode",
        "-S",
        "t.ctx",
        "-L",
        "owner.policy",
        "TPM2_CC_NV_DefineSpace",
    ]);
    sim.tool(&["tpm2_flushcontext", "t.ctx"]);
    sim.tool(&[
        "tpm2_setprimarypolicy",
        "-C",
        "o",
        "-L",
        "owner.policy",
        "-g",
        "sha256",
    ]);
    sim.tool(&["tpm2_startauthsession", "--policy-session", "-S", "s.ctx"]);
    sim.tool(&[
        "tpm2_policycommandcode",
        "-S",
        "s.ctx",
        "TPM2_CC_NV_DefineSpace",
    ]);
    sim.tool(&[
        "tpm2_nvdefine",
        "0x01500010",
        "-C",
        "o",
        "-s",
        "8",
        "-a",
        "ownerread|ownerwrite",
        "-P",
        "session:s.ctx",
    ]);
    sim.tool(&["tpm2_flushcontext", "s.ctx"]);
    sim.tool(&["tpm2_nvreadpublic", "0x01500010"]);

    // Clock: forward only.
    let target: u64 = 1 << 40;
    sim.tool(&["tpm2_setclock", &target.to_string()]);
    let now = clock(&sim);
    assert!(now >= target && now < target + 60_000, "clock {now}");
    let back = sim.try_tool(&["tpm2_setclock", "1000"]);
    assert!(!back.status.success(), "ClockSet backwards must fail");
    sim.tool(&["tpm2_clockrateadjust", "ss"]);
    assert!(clock(&sim) >= now);

    // A policy-delete platform index, deleted through its policy.
    sim.tool(&["tpm2_startauthsession", "-S", "t.ctx"]);
    sim.tool(&["tpm2_policyauthvalue", "-S", "t.ctx"]);
    sim.tool(&[
        "tpm2_policycommandcode",
        "-S",
        "t.ctx",
        "-L",
        "delete.policy",
        "TPM2_CC_NV_UndefineSpaceSpecial",
    ]);
    sim.tool(&["tpm2_flushcontext", "t.ctx"]);
    sim.tool(&[
        "tpm2_nvdefine",
        "0x01400001",
        "-C",
        "p",
        "-s",
        "8",
        "-a",
        "ppread|ppwrite|authread|authwrite|platformcreate|policydelete",
        "-L",
        "delete.policy",
    ]);
    let plain = sim.try_tool(&["tpm2_nvundefine", "-C", "p", "0x01400001"]);
    assert!(
        !plain.status.success(),
        "NV_UndefineSpace refuses a policy-delete index"
    );
    sim.tool(&["tpm2_startauthsession", "--policy-session", "-S", "s.ctx"]);
    sim.tool(&["tpm2_policyauthvalue", "-S", "s.ctx"]);
    sim.tool(&[
        "tpm2_policycommandcode",
        "-S",
        "s.ctx",
        "TPM2_CC_NV_UndefineSpaceSpecial",
    ]);
    sim.tool(&["tpm2_nvundefine", "-S", "s.ctx", "0x01400001"]);
    let gone = sim.try_tool(&["tpm2_nvreadpublic", "0x01400001"]);
    assert!(!gone.status.success(), "the index is gone");
}

/// tpm2_pcrallocate switches from the SHA-1 bank to SHA-256 only; the change shows after the
/// next power cycle and Startup(CLEAR) (the `--state` folder keeps it), in tpm2_getcap pcrs
/// and in what tpm2_pcrread returns.
#[test]
fn pcrallocate_takes_effect_after_restart() {
    let dir = scratch("admin-tools-pcr");
    let state = dir.join("state");
    let banks = |sim: &Sim| {
        let out = sim.stdout(&["tpm2_getcap", "pcrs"]);
        let allocated = |name: &str| {
            let line = out
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("- {name}:")))
                .unwrap_or_else(|| panic!("no {name} bank in {out}"));
            line.contains('0')
        };
        (allocated("sha1"), allocated("sha256"))
    };
    {
        let sim = Sim::start(&dir, Some(&state));
        sim.tool(&["tpm2_startup", "-c"]);
        assert_eq!(banks(&sim), (true, true));
        sim.tool(&["tpm2_pcrallocate", "sha1:none+sha256:all"]);
        assert_eq!(
            banks(&sim),
            (true, true),
            "not before the next Startup(CLEAR)"
        );
        assert!(sha1_value_shown(&sim), "SHA-1 PCR 0 readable before");
        sim.tool(&["tpm2_shutdown", "-c"]);
    }
    let sim = Sim::start(&dir, Some(&state));
    sim.tool(&["tpm2_startup", "-c"]);
    assert_eq!(banks(&sim), (false, true));
    assert!(
        !sha1_value_shown(&sim),
        "PCR_Read returns no SHA-1 digest any more"
    );
}

/// Whether tpm2_pcrread shows a SHA-1 value for PCR 0 (its YAML lists "sha1:" and then
/// "0 : 0x..." lines per bank).
fn sha1_value_shown(sim: &Sim) -> bool {
    let out = sim.stdout(&["tpm2_pcrread", "sha1:0+sha256:0"]);
    let sha1 = out.split("sha256:").next().unwrap_or("");
    assert!(out.contains("sha256:"), "{out}");
    sha1.lines().any(|l| l.trim_start().starts_with("0 :"))
}
