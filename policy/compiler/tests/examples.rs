//! The example policies through the whole pipeline: every expectation holds in the binary the
//! hypervisor loads (not only in the compiler's model), `fmt` is idempotent and preserves
//! meaning, and every fuzz corpus file runs through the fuzz entry points.

use std::path::{Path, PathBuf};

use warden_policy::{PermSet, Policy, TypeId};
use warden_policy_compiler::{compile, format_source};

mod support;

fn dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn files(rel: &str, ext: Option<&str>) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && ext.is_none_or(|x| p.extension().is_some_and(|e| e == x)))
        .collect();
    v.sort();
    v
}

#[test]
fn expectations_hold_in_the_engine() {
    let mut checked = 0;
    for f in files("../examples", Some("wpol")) {
        let src = std::fs::read_to_string(&f).unwrap();
        let Ok(c) = compile(&src) else { continue };
        let bin = c.to_binary();
        let p = Policy::load(&bin).unwrap();
        for e in &c.model.expects {
            for &(s, t) in &e.pairs {
                let d = p.decide(TypeId(s), TypeId(t), e.class, PermSet(e.perms));
                if e.allow {
                    assert_eq!(d.allowed.0, e.perms, "{}: {}", f.display(), e.text);
                } else {
                    assert!(d.allowed.is_empty(), "{}: {}", f.display(), e.text);
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 15, "too few expectations checked: {checked}");
}

/// Every example, good, bad or unformatted: `fmt` is idempotent and `compile(fmt(p))` equals
/// `compile(p)` (the loaded binary byte for byte, expectations, warnings; or the same errors).
#[test]
fn fmt_is_idempotent_and_preserves_meaning() {
    let mut examples = files("../examples", Some("wpol"));
    examples.extend(files("../examples", Some("txt")));
    examples.extend(files("../scenarios", Some("wpol")));
    assert!(examples.len() >= 17, "examples missing: {examples:?}");
    let mut changed = 0;
    for f in &examples {
        let src = std::fs::read_to_string(f).unwrap();
        support::assert_fmt_preserves(&f.display().to_string(), &src);
        changed += usize::from(format_source(&src).is_ok_and(|once| once != src));
    }
    assert!(changed >= 1, "no example exercises the formatter (all already canonical)");
}

#[test]
fn fuzz_corpora_run_on_stable() {
    let compile_corpus = files("../fuzz/corpus/fuzz_compile", None);
    let load_corpus = files("../fuzz/corpus/fuzz_load", None);
    assert!(compile_corpus.len() >= 5 && load_corpus.len() >= 3, "seed corpora missing");
    for f in compile_corpus {
        warden_policy_compiler::fuzz_compile(&std::fs::read(f).unwrap());
    }
    for f in load_corpus {
        warden_policy::fuzz_load(&std::fs::read(f).unwrap());
    }
}

/// Acceptance: a three-hop path is found with its spans, the reverse direction is proved
/// empty, and `assert noflow` fails the build as soon as a change opens a flow.
#[test]
fn noflow_fails_the_build_when_a_change_opens_a_flow() {
    let base = std::fs::read_to_string(dir("../examples/flow.wpol")).unwrap();
    let c = compile(&base).unwrap();
    let m = &c.model;
    let id = |n: &str| m.type_id(n).unwrap();
    let path = c.graph.shortest_path(m, &[id("secret_t")], &[id("public_t")], &[]).expect("planted path");
    let rules: Vec<&str> = path.iter().map(|h| m.rules[h.rule].text.as_str()).collect();
    assert_eq!(
        rules,
        [
            "allow relay1_t secret_t: grant map_ro;",
            "allow relay1_t relay2_t: evtchn { alloc send };",
            "allow relay2_t public_t: introspect writemem;"
        ]
    );
    for h in &path {
        let span = &m.rules[h.rule].origin.span;
        assert!(base[span.clone()].starts_with("allow "), "hop span points at its rule");
    }
    assert!(c.graph.shortest_path(m, &[id("public_t")], &[id("secret_t")], &[]).is_none());

    let guarded = format!("{base}\nassert noflow public_t -> secret_t;\n");
    compile(&guarded).expect("no flow from public_t to secret_t yet");
    let opened = format!("{guarded}allow public_t relay1_t: evtchn send;\nallow relay1_t secret_t: grant map_rw;\n");
    let errs = compile(&opened).expect_err("the change opens a flow");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].code, warden_policy_compiler::Code::E0021);
    assert_eq!(errs[0].secondary.len(), 2, "two hops, each pointing at its rule");

    // The same change, seen by `diff`.
    let changed =
        compile(&format!("{base}allow public_t relay1_t: evtchn send;\nallow relay1_t secret_t: grant map_rw;\n"))
            .unwrap();
    let d = warden_policy_compiler::query::diff(&c, &changed, &[]);
    assert!(d.flows_opened.contains(&("public_t".to_string(), "secret_t".to_string())), "{d:?}");
}
