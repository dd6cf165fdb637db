//! Tidy checks run as ordinary tests: unsafe code stays in the hardware layer, and every source
//! file says what it is.

use std::path::{Path, PathBuf};

/// Crates allowed to contain `unsafe` (the hardware-access layer), by folder.
const HARDWARE_LAYER: &[&str] = &["kernel/hw"];

/// The domain side of the hardware layer: single modules of otherwise safe crates that must issue
/// instructions a domain needs (VMMCALL, the entry symbol, the global allocator). The crate root
/// denies unsafe code and allows it on exactly this module: (crate folder, module file).
const GUEST_HARDWARE_MODULES: &[(&str, &str)] = &[("kernel/abi", "src/guest.rs")];

/// Folders whose crates are checked; each must exist (a missing one fails the test rather than
/// being skipped, so a renamed or misspelled area cannot drop its crates from the checks).
const AREAS: &[&str] = &["kernel", "mgmt", "policy", "vtpm", "tests", "tools"];

fn root() -> PathBuf {
    warden_rig::workspace_root()
}

fn crates() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
        for e in entries.map(|e| e.unwrap_or_else(|e| panic!("{}: {e}", dir.display()))) {
            let p = e.path();
            let name = e.file_name();
            if p.is_dir() && name != "target" && name != "corpus" && name != "artifacts" {
                if p.join("Cargo.toml").is_file() && p.join("src").is_dir() {
                    out.push(p.clone());
                }
                walk(&p, out);
            }
        }
    }
    let mut out = Vec::new();
    for area in AREAS {
        let dir = root().join(area);
        assert!(dir.is_dir(), "tidy: listed area `{area}` does not exist at {}", dir.display());
        walk(&dir, &mut out);
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && e.file_name() != "target" {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn is_hardware_layer(krate: &Path) -> bool {
    HARDWARE_LAYER.iter().any(|h| krate == root().join(h))
}

#[test]
fn every_crate_outside_the_hardware_layer_forbids_unsafe() {
    let mut missing = Vec::new();
    let all = crates();
    assert!(all.len() >= 5, "found too few crates: {all:?}");
    for krate in all.iter().filter(|k| !is_hardware_layer(k)) {
        let mut roots = vec![krate.join("src/lib.rs"), krate.join("src/main.rs")];
        if let Ok(bins) = std::fs::read_dir(krate.join("src/bin")) {
            roots.extend(bins.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "rs")));
        }
        let guest_module = GUEST_HARDWARE_MODULES.iter().find(|(c, _)| *krate == root().join(c));
        for r in roots.iter().filter(|r| r.is_file()) {
            let text = std::fs::read_to_string(r).unwrap();
            if let Some((_, module)) = guest_module {
                let stem = Path::new(module).file_stem().unwrap().to_str().unwrap();
                let allows: Vec<usize> = text.match_indices("#[allow(unsafe_code)]").map(|(i, _)| i).collect();
                let scoped = allows.iter().all(|&i| {
                    text[i..].lines().nth(1).is_some_and(|l| l.trim() == format!("pub mod {stem};"))
                });
                if !text.contains("#![deny(unsafe_code)]") || allows.len() != 1 || !scoped {
                    missing.push(format!("{} (must deny unsafe and allow it only on `mod {stem}`)", r.strip_prefix(root()).unwrap().display()));
                }
                continue;
            }
            if !text.contains("#![forbid(unsafe_code)]") {
                missing.push(r.strip_prefix(root()).unwrap().display().to_string());
            }
        }
    }
    assert!(missing.is_empty(), "crate roots without #![forbid(unsafe_code)]: {missing:#?}");
}

#[test]
fn every_unsafe_block_in_the_hardware_layer_says_why() {
    let mut bad = Vec::new();
    let mut files = Vec::new();
    for h in HARDWARE_LAYER {
        rust_files(&root().join(h), &mut files);
    }
    files.extend(GUEST_HARDWARE_MODULES.iter().map(|(c, m)| root().join(c).join(m)));
    {
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (i, l) in lines.iter().enumerate() {
                let code = l.split("//").next().unwrap_or("");
                if !(code.contains("unsafe {") || code.trim_start().starts_with("unsafe {")) {
                    continue;
                }
                // The justification is in the comment block just above (attributes may sit between).
                let above = lines[i.saturating_sub(8)..i].join("\n");
                if !above.contains("SAFETY:") && !l.contains("SAFETY:") {
                    bad.push(format!("{}:{}", f.strip_prefix(root()).unwrap().display(), i + 1));
                }
            }
        }
    }
    assert!(bad.is_empty(), "unsafe blocks without a // SAFETY: comment: {bad:#?}");
}

#[test]
fn every_source_file_starts_with_a_doc_line() {
    let mut bad = Vec::new();
    for krate in crates() {
        let mut files = Vec::new();
        rust_files(&krate, &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            if !first.starts_with("//!") {
                bad.push(f.strip_prefix(root()).unwrap().display().to_string());
            }
        }
    }
    assert!(bad.is_empty(), "files without a leading //! line: {bad:#?}");
}

/// The documentation cites only what the repository holds: every relative Markdown link in the
/// top-level pages and `docs/` resolves to a file, and no page cites the design notes kept
/// outside the repository (`DESIGN.md`; its measured facts are in `docs/qemu-facts.md`).
#[test]
fn documentation_cites_only_sources_in_the_repository() {
    let mut pages = vec![root().join("README.md"), root().join("ARCHITECTURE.md")];
    let docs = std::fs::read_dir(root().join("docs")).expect("docs/");
    pages.extend(docs.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "md")));
    assert!(pages.len() >= 8, "documentation pages missing: {pages:?}");
    let mut bad = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        if text.contains("DESIGN.md") {
            bad.push(format!("{}: cites DESIGN.md, which is not in the repository", page.display()));
        }
        for link in text.split("](").skip(1).filter_map(|rest| rest.split(')').next()) {
            let file = link.split('#').next().unwrap_or_default();
            if file.is_empty() || file.contains("://") || file.starts_with("mailto:") {
                continue;
            }
            if !page.parent().unwrap().join(file).exists() {
                bad.push(format!("{}: link to missing {link}", page.display()));
            }
        }
    }
    // Every scenario a page tells the reader to boot exists.
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for name in text.split("--scenario ").skip(1).filter_map(|r| r.split(|c: char| !(c.is_alphanumeric() || c == '-')).next()) {
            if name != "NAME" && !root().join("tests/scenarios").join(format!("{name}.toml")).is_file() {
                bad.push(format!("{}: no scenario `{name}`", page.display()));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
