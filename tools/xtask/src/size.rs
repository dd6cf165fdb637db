//! `cargo xtask size`: the trusted core's size in lines of code, against its peers' budgets.

use anyhow::Result;
use std::path::Path;

/// The crates that run in the hypervisor's privileged context, i.e. the trusted core.
const CORE: &[&str] = &[
    "kernel/hw",
    "kernel/core",
    "kernel/vmm",
    "kernel/ipc",
    "kernel/tpm",
    "kernel/hypervisor",
    "kernel/abi",
    "policy/engine",
];

/// Published sizes of comparable kernels (lines of code), for the side-by-side line.
const PEERS: &[(&str, u64)] = &[("Muen", 6_000), ("seL4", 9_000), ("Hedron", 11_000), ("NOVA", 14_000)];

/// Files of core crates that never run in the hypervisor: the ABI's domain-side hardware layer
/// (`guest` feature, compiled only into domains) and the TPM crate's host-side swtpm harness
/// (`host` feature, compiled only into host tests and tools).
const NOT_CORE: &[&str] = &["kernel/abi/src/guest.rs", "kernel/tpm/src/host.rs"];

/// Code lines of one file: not blank, not a comment, and not in the trailing `#[cfg(test)]`
/// module (private or `pub(crate)`, which other modules' tests share).
pub(crate) fn code_lines(src: &str) -> u64 {
    let test_mod = ["#[cfg(test)]\nmod tests", "#[cfg(test)]\npub(crate) mod tests"];
    let body = test_mod.iter().filter_map(|m| src.find(m)).min().map_or(src, |i| &src[..i]);
    body.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("//")).count() as u64
}

fn crate_lines(dir: &Path) -> u64 {
    fn walk(dir: &Path, total: &mut u64) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, total);
            } else if p.extension().is_some_and(|x| x == "rs" || x == "s") && !NOT_CORE.iter().any(|n| p.ends_with(n)) {
                *total += std::fs::read_to_string(&p).map_or(0, |s| code_lines(&s));
            }
        }
    }
    let mut total = 0;
    walk(&dir.join("src"), &mut total);
    total
}

pub(crate) fn report() -> Result<()> {
    let root = warden_rig::workspace_root();
    let mut total = 0;
    println!("{:<22} {:>7}", "trusted core crate", "lines");
    for c in CORE {
        let n = crate_lines(&root.join(c));
        total += n;
        println!("{c:<22} {n:>7}");
    }
    println!("{:<22} {total:>7}", "total");
    let peers: Vec<String> = PEERS.iter().map(|(n, l)| format!("{n} ~{}k", l / 1000)).collect();
    println!("peers (published core sizes): {}", peers.join(", "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::code_lines;

    #[test]
    fn counts_code_only() {
        let src = "//! doc\n\nfn a() {}\n  // note\nlet x = 1;\n#[cfg(test)]\nmod tests {\n fn t() {}\n}\n";
        assert_eq!(code_lines(src), 2);
        assert_eq!(code_lines(&src.replace("\nmod tests", "\npub(crate) mod tests")), 2);
    }
}
