//! Property test: on randomly generated policies, the compiled engine decides exactly what a
//! naive evaluator written directly from the rules decides (seeded, deterministic).

use std::collections::BTreeSet;

use warden_policy::schema::{ALL_CLASSES, Class, Kind};
use warden_policy::{ChineseWall, PermSet, Policy, TypeId};
use warden_policy_compiler::Code;

mod support;

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
}

#[derive(Debug, Clone)]
enum Tgt {
    Names(Vec<String>),
    SelfT,
    Other,
}

#[derive(Debug, Clone)]
struct Rule {
    kw: &'static str,
    src: Vec<String>,
    tgt: Tgt,
    class: Class,
    perms: u64,
    all: bool,
}

/// A generated policy, as data the reference evaluator reads directly.
#[derive(Debug, Default)]
struct Gen {
    types: Vec<(String, Kind)>,
    attrs: Vec<(String, Vec<String>)>,
    rules: Vec<Rule>,
    roles: Vec<(String, Vec<(Class, u64)>)>,
    grants: Vec<(usize, Vec<String>, Tgt)>,
    transitions: Vec<(String, String)>,
    conflict: Option<Vec<String>>,
    noflows: Vec<(Vec<String>, Vec<String>, Vec<String>)>,
}

impl Gen {
    fn members(&self, name: &str) -> Vec<String> {
        if self.types.iter().any(|(n, _)| n == name) {
            return vec![name.to_string()];
        }
        self.attrs.iter().find(|(a, _)| a == name).map(|(_, m)| m.clone()).unwrap_or_default()
    }
    fn expand(&self, names: &[String]) -> BTreeSet<String> {
        names.iter().flat_map(|n| self.members(n)).collect()
    }
    fn matches(&self, src: &[String], tgt: &Tgt, s: &str, t: &str) -> bool {
        let subjects = self.expand(src);
        if !subjects.contains(s) {
            return false;
        }
        match tgt {
            Tgt::Names(n) => self.expand(n).contains(t),
            Tgt::SelfT => s == t,
            Tgt::Other => s != t && subjects.contains(t),
        }
    }
    /// The reference: allow / auditallow / dontaudit for one key, straight from the rules.
    fn vectors(&self, s: &str, t: &str, c: Class) -> (u64, u64, u64) {
        let (mut a, mut aa, mut da) = (0, 0, 0);
        for r in &self.rules {
            if r.class == c && self.matches(&r.src, &r.tgt, s, t) {
                match r.kw {
                    "allow" => a |= r.perms,
                    "auditallow" => aa |= r.perms,
                    "dontaudit" => da |= r.perms,
                    _ => {}
                }
            }
        }
        for (role, src, tgt) in &self.grants {
            if self.matches(src, tgt, s, t) {
                for &(rc, bits) in &self.roles[*role].1 {
                    if rc == c {
                        a |= bits;
                    }
                }
            }
        }
        (a, aa, da)
    }

    /// Whether some neverallow is violated, straight from the rules.
    fn neverallow_violated(&self) -> bool {
        self.rules.iter().filter(|r| r.kw == "neverallow").any(|r| {
            self.types.iter().any(|(s, _)| {
                self.types.iter().any(|(t, tk)| {
                    *tk == r.class.target_kind()
                        && self.matches(&r.src, &r.tgt, s, t)
                        && self.vectors(s, t, r.class).0 & r.perms != 0
                })
            })
        })
    }

    /// Whether some noflow assertion fails: depth-first search per source over edges derived
    /// from the reference vectors and the schema's flow map.
    fn noflow_fails(&self) -> bool {
        let names: Vec<&str> = self.types.iter().map(|(n, _)| n.as_str()).collect();
        let idx = |n: &str| names.iter().position(|x| *x == n).unwrap();
        let mut adj = vec![Vec::new(); names.len()];
        for (s, _) in &self.types {
            for (t, tk) in &self.types {
                if s == t {
                    continue;
                }
                for &c in ALL_CLASSES {
                    if c.target_kind() != *tk {
                        continue;
                    }
                    let a = self.vectors(s, t, c).0;
                    for p in c.info().perms.iter().filter(|p| a & (1 << p.bit) != 0) {
                        if p.flow.forward() {
                            adj[idx(s)].push(idx(t));
                        }
                        if p.flow.backward() {
                            adj[idx(t)].push(idx(s));
                        }
                    }
                }
            }
        }
        self.noflows.iter().any(|(from, to, ex)| {
            let (from, to, ex) = (self.expand(from), self.expand(to), self.expand(ex));
            from.iter().any(|a| {
                let start = idx(a);
                let mut seen = vec![false; names.len()];
                let mut stack = vec![start];
                seen[start] = true;
                let mut hit = false;
                while let Some(u) = stack.pop() {
                    for &v in &adj[u] {
                        if v != start && to.contains(names[v]) {
                            hit = true;
                        }
                        if !seen[v] {
                            seen[v] = true;
                            if !ex.contains(names[v]) {
                                stack.push(v);
                            }
                        }
                    }
                }
                hit
            })
        })
    }

    fn source(&self) -> String {
        let list = |v: &[String]| {
            if v.len() == 1 { v[0].clone() } else { format!("{{ {} }}", v.join(" ")) }
        };
        let tgt = |t: &Tgt| match t {
            Tgt::Names(n) => list(n),
            Tgt::SelfT => "self".into(),
            Tgt::Other => "other".into(),
        };
        let perms = |c: Class, bits: u64, all: bool| {
            if all {
                return "*".to_string();
            }
            let names: Vec<&str> = c.info().perms.iter().filter(|p| bits & (1 << p.bit) != 0).map(|p| p.name).collect();
            list(&names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        let mut s = String::new();
        for (a, _) in &self.attrs {
            s.push_str(&format!("attribute {a};\n"));
        }
        for (n, k) in &self.types {
            let attrs: Vec<&str> = self.attrs.iter().filter(|(_, m)| m.contains(n)).map(|(a, _)| a.as_str()).collect();
            let extra: String = attrs.iter().map(|a| format!(", {a}")).collect();
            s.push_str(&format!("type {n}: {}{extra};\n", k.name()));
        }
        for r in &self.rules {
            s.push_str(&format!(
                "{} {} {}: {} {};\n",
                r.kw,
                list(&r.src),
                tgt(&r.tgt),
                r.class.name(),
                perms(r.class, r.perms, r.all)
            ));
        }
        for (name, body) in &self.roles {
            s.push_str(&format!("role {name} {{\n"));
            for &(c, bits) in body {
                s.push_str(&format!("    {} {};\n", c.name(), perms(c, bits, false)));
            }
            s.push_str("}\n");
        }
        for (role, src, t) in &self.grants {
            s.push_str(&format!("grant {} to {} over {};\n", self.roles[*role].0, list(src), tgt(t)));
        }
        for (b, r) in &self.transitions {
            s.push_str(&format!("transition {b} -> {r};\n"));
        }
        if let Some(m) = &self.conflict {
            s.push_str(&format!("conflict wall {{ {} }};\n", m.join(" ")));
        }
        for (f, t, x) in &self.noflows {
            let ex = if x.is_empty() { String::new() } else { format!(" excluding {}", list(x)) };
            s.push_str(&format!("assert noflow {} -> {}{ex};\n", list(f), list(t)));
        }
        s
    }
}

fn random_perms(rng: &mut Rng, c: Class) -> (u64, bool) {
    if rng.chance(10) {
        return (c.all().0, true);
    }
    let n = c.info().perms.len();
    let mut bits = 0;
    while bits == 0 {
        for i in 0..n {
            if rng.chance(30) {
                bits |= 1 << i;
            }
        }
    }
    (bits, false)
}

fn pick(rng: &mut Rng, pool: &[String]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    let k = 1 + rng.below(pool.len().min(3));
    for _ in 0..k {
        let n = pool[rng.below(pool.len())].clone();
        if !v.contains(&n) {
            v.push(n);
        }
    }
    v
}

fn generate(seed: u64) -> Gen {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut g = Gen::default();
    let nd = 2 + rng.below(6);
    let nv = rng.below(3);
    let doms: Vec<String> = (0..nd).map(|i| format!("d{i}")).collect();
    let vtpms: Vec<String> = (0..nv).map(|i| format!("v{i}")).collect();
    g.types.extend(doms.iter().map(|d| (d.clone(), Kind::Domain)));
    g.types.extend(vtpms.iter().map(|v| (v.clone(), Kind::Vtpm)));
    // Exactly one hypervisor type is required; now and then none or two, which must be refused.
    let hvs = match rng.below(20) {
        0 => 0,
        1 => 2,
        _ => 1,
    };
    g.types.extend((0..hvs).map(|i| (format!("hv{i}"), Kind::Hypervisor)));
    // Attributes over domains (possibly empty) and over vTPMs.
    let mut dom_names = doms.clone();
    for i in 0..rng.below(3) {
        let m: Vec<String> = doms.iter().filter(|_| rng.chance(50)).cloned().collect();
        g.attrs.push((format!("ad{i}"), m));
        dom_names.push(format!("ad{i}"));
    }
    let mut vtpm_names = vtpms.clone();
    if nv > 0 && rng.chance(50) {
        g.attrs.push(("av".into(), vtpms.clone()));
        vtpm_names.push("av".into());
    }
    let domain_classes = [Class::Domain, Class::Introspect, Class::Evtchn, Class::Grant];
    for _ in 0..rng.below(12) {
        let kw = ["allow", "allow", "allow", "auditallow", "dontaudit"][rng.below(5)];
        let src = pick(&mut rng, &dom_names);
        let (class, tgt) = if nv > 0 && rng.chance(20) {
            (Class::Vtpm, Tgt::Names(pick(&mut rng, &vtpm_names)))
        } else {
            let c = domain_classes[rng.below(4)];
            let t = match rng.below(6) {
                0 => Tgt::SelfT,
                1 => Tgt::Other,
                _ => Tgt::Names(pick(&mut rng, &dom_names)),
            };
            (c, t)
        };
        let (perms, all) = random_perms(&mut rng, class);
        g.rules.push(Rule { kw, src, tgt, class, perms, all });
    }
    if rng.chance(40) {
        let src = pick(&mut rng, &dom_names);
        let c = domain_classes[rng.below(4)];
        let t = if rng.chance(20) { Tgt::Other } else { Tgt::Names(pick(&mut rng, &dom_names)) };
        let (perms, all) = random_perms(&mut rng, c);
        g.rules.push(Rule { kw: "neverallow", src, tgt: t, class: c, perms, all });
    }
    let all_names: Vec<String> = dom_names.iter().chain(&vtpm_names).cloned().collect();
    for _ in 0..rng.below(3) {
        let ex = if rng.chance(30) { pick(&mut rng, &all_names) } else { Vec::new() };
        g.noflows.push((pick(&mut rng, &all_names), pick(&mut rng, &all_names), ex));
    }
    for r in 0..rng.below(3) {
        let body = (0..1 + rng.below(2))
            .map(|_| {
                let c = domain_classes[rng.below(4)];
                (c, random_perms(&mut rng, c).0)
            })
            .collect();
        g.roles.push((format!("role{r}"), body));
    }
    for _ in 0..rng.below(3) {
        if g.roles.is_empty() {
            break;
        }
        let role = rng.below(g.roles.len());
        let t = if rng.chance(20) { Tgt::SelfT } else { Tgt::Names(pick(&mut rng, &dom_names)) };
        g.grants.push((role, pick(&mut rng, &dom_names), t));
    }
    if nd >= 3 && rng.chance(50) {
        g.transitions.push((doms[0].clone(), doms[1].clone()));
    }
    if nd >= 3 && rng.chance(60) {
        g.conflict = Some(vec![doms[nd - 1].clone(), doms[nd - 2].clone()]);
    }
    g
}

#[test]
fn engine_equals_reference_on_random_policies() {
    let (mut compiled, mut rejected, mut hv_refused) = (0, 0, 0);
    for seed in 0..400u64 {
        let mut g = generate(seed);
        let hvs = g.types.iter().filter(|(_, k)| *k == Kind::Hypervisor).count();
        if hvs != 1 {
            // Refused by the compiler, with E0024 among the errors, as the loader would.
            let e = warden_policy_compiler::compile(&g.source()).expect_err("hypervisor count");
            assert!(e.iter().any(|d| d.code == Code::E0024), "seed {seed}: {e:?}");
            hv_refused += 1;
            g.types.retain(|(_, k)| *k != Kind::Hypervisor);
            g.types.push(("hv0".into(), Kind::Hypervisor));
        }
        let src = g.source();
        let (want_e20, want_e21) = (g.neverallow_violated(), g.noflow_fails());
        let c = match warden_policy_compiler::compile(&src) {
            Ok(c) => {
                assert!(
                    !want_e20 && !want_e21,
                    "seed {seed}: compiled, but the reference finds a violation (neverallow {want_e20}, noflow {want_e21})\n{src}"
                );
                c
            }
            Err(e) => {
                let codes: Vec<Code> = e.iter().map(|d| d.code).collect();
                assert!(
                    codes.iter().all(|c| matches!(c, Code::E0020 | Code::E0021)),
                    "seed {seed}: generated policy does not compile:\n{src}\n{}",
                    warden_policy_compiler::diag::render("gen.wpol", &src, &e)
                );
                assert_eq!(
                    (codes.contains(&Code::E0020), codes.contains(&Code::E0021)),
                    (want_e20, want_e21),
                    "seed {seed}\n{src}"
                );
                rejected += 1;
                // Check the decisions of the same rules without the failing checks.
                let mut g = g;
                g.rules.retain(|r| r.kw != "neverallow");
                g.noflows.clear();
                let src = g.source();
                let c = warden_policy_compiler::compile(&src).unwrap_or_else(|e| panic!("seed {seed}: {e:?}"));
                check_engine(seed, &g, &src, &c);
                continue;
            }
        };
        compiled += 1;
        check_engine(seed, &g, &src, &c);
    }
    assert!(
        compiled > 100 && rejected > 50 && hv_refused > 10,
        "generator coverage: {compiled} compiled, {rejected} rejected, {hv_refused} without one hypervisor type"
    );
}

/// The same text laid out at random: each space or newline becomes one of a few runs of
/// whitespace, and spaces appear before `;`, `:` and `,` (all insignificant to the lexer).
fn scramble(rng: &mut Rng, src: &str) -> String {
    let mut out = String::new();
    for ch in src.chars() {
        match ch {
            ' ' | '\n' => out.push_str([" ", "  ", "\n", " \t ", "\n    "][rng.below(5)]),
            ';' | ':' | ',' => {
                out.push_str(["", " ", "\t"][rng.below(3)]);
                out.push(ch);
            }
            _ => out.push(ch),
        }
    }
    out
}

/// The formatter property over the same random policies, each also laid out at random: `fmt`
/// is idempotent, `compile(fmt(p)) == compile(p)` (binary byte for byte, expectations,
/// warnings, or errors), and the scrambled layout formats back to the canonical text.
#[test]
fn fmt_preserves_meaning_on_random_policies() {
    for seed in 0..400u64 {
        let src = generate(seed).source();
        let scrambled = scramble(&mut Rng(seed + 11), &src);
        support::assert_fmt_preserves(&format!("seed {seed}"), &src);
        support::assert_fmt_preserves(&format!("seed {seed} (scrambled)"), &scrambled);
        let (canonical, back) = (
            warden_policy_compiler::format_source(&src).unwrap(),
            warden_policy_compiler::format_source(&scrambled).unwrap(),
        );
        assert_eq!(back, canonical, "seed {seed}: the scrambled layout formats differently\n{scrambled}");
    }
}

fn check_engine(seed: u64, g: &Gen, src: &str, c: &warden_policy_compiler::Compiled) {
    {
        let bin = c.to_binary();
        let p = Policy::load(&bin).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let mut rng = Rng(seed + 7);
        for (s, _) in &g.types {
            for (t, tk) in &g.types {
                for &cl in ALL_CLASSES {
                    let (sid, tid) = (p.type_by_name(s).unwrap(), p.type_by_name(t).unwrap());
                    let (a, aa, da) = if cl.target_kind() == *tk { g.vectors(s, t, cl) } else { (0, 0, 0) };
                    for _ in 0..4 {
                        let req = rng.next() & cl.all().0;
                        let d = p.decide(sid, tid, cl, PermSet(req));
                        let allowed = req & a;
                        let audit = (req & !a & !da) | (allowed & aa);
                        assert_eq!(
                            (d.allowed.0, d.audit.0),
                            (allowed, audit),
                            "seed {seed}: decide({s}, {t}, {}, {req:#x}) differs\n{src}",
                            cl.name()
                        );
                    }
                }
            }
        }
        // Transitions and the Chinese Wall, against the generated declarations.
        for (b, r) in &g.transitions {
            let (bid, rid) = (p.type_by_name(b).unwrap(), p.type_by_name(r).unwrap());
            assert_eq!(p.run_label_of(bid), Some(rid), "seed {seed}");
        }
        if let Some(m) = &g.conflict {
            let (x, y) = (p.type_by_name(&m[0]).unwrap(), p.type_by_name(&m[1]).unwrap());
            let mut cw = ChineseWall::<8>::new(p).unwrap();
            cw.started(x).unwrap();
            assert_eq!(cw.may_start(y).map_err(|c| c.with), Err(x), "seed {seed}");
            cw.stopped(x).unwrap();
            assert!(cw.may_start(y).is_ok(), "seed {seed}");
        }
        // All-pairs reachability agrees with the path search, pair by pair.
        let reach = warden_policy_compiler::flow::Reach::new(&c.graph);
        let n = c.model.types.len() as u32;
        for a in 0..n {
            for b in 0..n {
                if a == b {
                    continue;
                }
                let path = c.graph.shortest_path(&c.model, &[a], &[b], &[]);
                assert_eq!(reach.reaches(a, b), path.is_some(), "seed {seed}: reach({a}, {b})\n{src}");
                if let Some(path) = path {
                    // Every hop is an allowed permission whose flow goes that way.
                    for h in &path {
                        let (s, t, cl) = h.key;
                        let d = p.decide(TypeId(s), TypeId(t), cl, PermSet(1 << h.perm));
                        assert!(!d.allowed.is_empty(), "seed {seed}: hop not allowed");
                        let flow = cl.info().perms[h.perm as usize].flow;
                        assert!(
                            (h.from == s && flow.forward()) || (h.from == t && flow.backward()),
                            "seed {seed}: hop against the flow map"
                        );
                    }
                    assert_eq!((path[0].from, path[path.len() - 1].to), (a, b));
                }
            }
        }
    }
}

/// One validation: whatever `compile` accepts, the hypervisor's loader loads, over the fuzz
/// corpus, the examples, the scenario policies and random policies (with and without a
/// hypervisor type); and the compiler never reaches its internal E0090 (a check the loader
/// makes that the compiler did not make first).
#[test]
fn compile_ok_implies_load_ok() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut sources = Vec::new();
    for dir in ["fuzz/corpus/fuzz_compile", "examples", "scenarios"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            if let Ok(s) = std::fs::read_to_string(e.path()) {
                sources.push((e.path().display().to_string(), s));
            }
        }
    }
    for seed in 0..400u64 {
        sources.push((format!("seed {seed}"), generate(seed).source()));
    }
    let mut loaded = 0;
    for (name, src) in &sources {
        match warden_policy_compiler::compile(src) {
            Ok(c) => {
                Policy::load(&c.to_binary()).unwrap_or_else(|e| panic!("{name}: compiled but does not load: {e}"));
                loaded += 1;
            }
            Err(e) => assert!(e.iter().all(|d| d.code != Code::E0090), "{name}: {e:?}"),
        }
    }
    assert!(loaded > 150, "too few policies compiled: {loaded}");
}
