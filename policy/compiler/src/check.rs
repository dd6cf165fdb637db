//! Whole-policy checks: neverallow, noflow assertions, expectations, and lints.

use std::collections::HashMap;

use warden_policy::schema::{Class, Kind};

use crate::diag::{Code, Diagnostic, Origin};
use crate::flow::{Graph, Hop};
use crate::model::{Model, RuleKindPub, RuleOrigin, perm_names};

/// The origin to show for a rule: for a role grant, the `grant` statement.
fn rule_origin(m: &Model, r: usize) -> Origin {
    m.rules[r].origin.clone()
}

fn perms_text(c: Class, bits: u64) -> String {
    let n = perm_names(c, bits);
    if n.len() == 1 { n[0].to_string() } else { format!("{{ {} }}", n.join(" ")) }
}

/// The hypervisor labels itself with the one type of kind `hypervisor`: the loader refuses a
/// policy with none or several (`LoadError::HypervisorCount`), so the compiler says so first,
/// with the declarations.
pub(crate) fn hypervisor_label(m: &Model, out: &mut Vec<Diagnostic>) {
    let mut hv: Vec<_> = m.types.iter().filter(|t| t.kind == Kind::Hypervisor).collect();
    hv.sort_by_key(|t| t.origin.span.start);
    match hv.as_slice() {
        [_] => {}
        [] => out.push(
            Diagnostic::error(
                Code::E0024,
                "the policy declares no type of kind `hypervisor`",
                Origin::plain(0..0),
                "in this policy",
            )
            .with_note("the hypervisor labels itself with that type (`hypervisor` rules target it), and refuses to boot a policy without one")
            .with_help("declare it, e.g. `type xen_t: hypervisor;` (Xen's `xen_t`)"),
        ),
        [first, rest @ ..] => {
            let mut d = Diagnostic::error(
                Code::E0024,
                format!("the policy declares {} types of kind `hypervisor`", hv.len()),
                rest[0].origin.clone(),
                "another hypervisor type",
            )
            .with_label(first.origin.clone(), "first hypervisor type");
            for t in &rest[1..] {
                d = d.with_label(t.origin.clone(), "another hypervisor type");
            }
            out.push(d.with_note("there is one hypervisor: its label must be unambiguous").with_help(
                "keep one `hypervisor` type; Xen's `xen_t` and its `xen_*` pseudo-domains all map to it",
            ));
        }
    }
}

/// neverallow: every expanded neverallow triple against the allowed vectors.
pub(crate) fn neverallow(m: &Model, verbose: bool, out: &mut Vec<Diagnostic>) {
    // One diagnostic per neverallow rule, naming the first few violating grants.
    let mut by_rule: HashMap<usize, Vec<(u32, u32, Class, u64)>> = HashMap::new();
    for &(r, s, t, c, p) in &m.neverallows {
        if let Some(e) = m.av.get(&(s, t, c)) {
            let bad = e.allow & p;
            if bad != 0 {
                by_rule.entry(r).or_default().push((s, t, c, bad));
            }
        }
    }
    let mut rules: Vec<_> = by_rule.into_iter().collect();
    rules.sort_by_key(|(r, _)| *r);
    for (r, hits) in rules {
        let (s, t, c, bad) = hits[0];
        let mut d = Diagnostic::error(
            Code::E0020,
            format!(
                "neverallow violated: `{}` is allowed `{}` {} on `{}`",
                m.name(s),
                c.name(),
                perms_text(c, bad),
                m.name(t)
            ),
            rule_origin(m, r),
            "this neverallow",
        );
        let e = &m.av[&(s, t, c)];
        for &(gr, bits) in &e.why {
            if bits & bad != 0 && m.rules[gr].kind == RuleKindPub::Allow {
                let label = match &m.rules[gr].via {
                    RuleOrigin::Plain => format!("grants {}", perms_text(c, bits & bad)),
                    RuleOrigin::Role { role, .. } => {
                        format!("grants {} through role `{role}`", perms_text(c, bits & bad))
                    }
                };
                d = d.with_label(rule_origin(m, gr), label);
                if let RuleOrigin::Role { line, .. } = &m.rules[gr].via {
                    d = d.with_label(line.clone(), "role line");
                }
            }
        }
        if hits.len() > 1 && verbose {
            for &(s, t, c, bad) in &hits[1..] {
                d = d.with_note(format!(
                    "also violated: `{}` is allowed `{}` {} on `{}`",
                    m.name(s),
                    c.name(),
                    perms_text(c, bad),
                    m.name(t)
                ));
            }
        } else if hits.len() > 1 {
            d = d.with_note(format!("{} more violation(s) of this neverallow (`--verbose` lists them)", hits.len() - 1));
        }
        d = d.with_help("neverallow cannot be switched off: remove or narrow the allow, or reconsider the neverallow");
        out.push(d);
    }
}

/// Describes a path hop by hop, for diagnostics and `wardenpol flow`.
#[must_use]
pub fn hop_text(m: &Model, h: &Hop) -> String {
    let (s, t, c) = h.key;
    let p = &c.info().perms[h.perm as usize];
    let dir = if h.from == s { "writes to" } else { "reads from" };
    let actor = m.name(s);
    let other = m.name(t);
    format!(
        "{} -> {}: `{actor}` {dir} `{other}` via {} {} ({})",
        m.name(h.from),
        m.name(h.to),
        c.name(),
        p.name,
        p.flow.name()
    )
}

/// noflow assertions.
pub(crate) fn noflow(m: &Model, g: &Graph, out: &mut Vec<Diagnostic>) {
    for a in &m.noflows {
        let path = if a.across {
            crate::flow::cross_category_path(m, &a.from, &a.to, &a.excluding)
        } else {
            g.shortest_path(m, &a.from, &a.to, &a.excluding)
        };
        if let Some(path) = path {
            let first = path.first().map_or(0, |h| h.from);
            let last = path.last().map_or(0, |h| h.to);
            let mut d = Diagnostic::error(
                Code::E0021,
                format!(
                    "assertion failed: information can flow from `{}` to `{}` in {} hop(s)",
                    m.name(first),
                    m.name(last),
                    path.len()
                ),
                a.origin.clone(),
                "this assertion",
            );
            for (i, h) in path.iter().enumerate() {
                d = d.with_label(m.rules[h.rule].origin.clone(), format!("hop {}: {}", i + 1, hop_text(m, h)));
            }
            d = d.with_help(if a.across {
                "remove a permission on the path, `separate` the types it joins, or exclude a trusted type with `excluding`"
            } else {
                "remove a permission on the path, or exclude a trusted type with `excluding`"
            });
            out.push(d);
        }
    }
}

/// Result of one expectation.
#[derive(Debug, Clone)]
pub struct ExpectResult {
    /// The statement.
    pub text: String,
    /// Where.
    pub origin: Origin,
    /// Passed?
    pub ok: bool,
    /// On failure: the first offending pair and the permissions that break it.
    pub failure: Option<(u32, u32, u64)>,
}

/// Evaluates `expect` statements.
#[must_use]
pub fn expectations(m: &Model) -> Vec<ExpectResult> {
    m.expects
        .iter()
        .map(|e| {
            let mut failure = None;
            for &(s, t) in &e.pairs {
                let allowed = m.av.get(&(s, t, e.class)).map_or(0, |v| v.allow);
                let bad = if e.allow { e.perms & !allowed } else { e.perms & allowed };
                if bad != 0 {
                    failure = Some((s, t, bad));
                    break;
                }
            }
            ExpectResult { text: e.text.clone(), origin: e.origin.clone(), ok: failure.is_none(), failure }
        })
        .collect()
}

/// Turns a failed expectation into a diagnostic.
#[must_use]
pub fn expectation_diag(m: &Model, r: &ExpectResult, class: Class, allow: bool) -> Option<Diagnostic> {
    let (s, t, bad) = r.failure?;
    let mut d = Diagnostic::error(
        Code::E0030,
        format!(
            "expectation failed: `{}` {} `{}` {} on `{}`",
            m.name(s),
            if allow { "is not allowed" } else { "is allowed" },
            class.name(),
            perms_text(class, bad),
            m.name(t)
        ),
        r.origin.clone(),
        "this expectation",
    );
    if !allow && let Some(e) = m.av.get(&(s, t, class)) {
        for &(gr, bits) in &e.why {
            if bits & bad != 0 && m.rules[gr].kind == RuleKindPub::Allow {
                match &m.rules[gr].via {
                    RuleOrigin::Plain => d = d.with_label(m.rules[gr].origin.clone(), "granted here"),
                    RuleOrigin::Role { role, line } => {
                        d = d
                            .with_label(m.rules[gr].origin.clone(), format!("granted here through role `{role}`"))
                            .with_label(line.clone(), "role line");
                    }
                }
            }
        }
    }
    Some(d)
}

/// Lints (warnings): unused types, empty attributes, shadowed rules, dead rules inside conflict
/// sets, builders that keep construction rights (build, writemem, setvcpu) on the run label.
pub(crate) fn lints(m: &Model, out: &mut Vec<Diagnostic>) {
    let mut in_av = vec![false; m.types.len()];
    for &(s, t, _) in m.av.keys() {
        in_av[s as usize] = true;
        in_av[t as usize] = true;
    }
    for (i, td) in m.types.iter().enumerate() {
        // The hypervisor type is used by the hypervisor itself (its own label), rules or not.
        if !in_av[i] && !m.mentioned[i] && td.kind != Kind::Hypervisor {
            out.push(
                Diagnostic::warning(
                    Code::W0001,
                    format!("type `{}` is never used", td.name),
                    td.origin.clone(),
                    "declared here",
                )
                .with_help("no rule, conflict set, transition or assertion mentions it"),
            );
        }
    }
    for a in &m.attrs {
        if a.members.is_empty() {
            out.push(
                Diagnostic::warning(
                    Code::W0002,
                    format!("attribute `{}` has no members", a.name),
                    a.origin.clone(),
                    "empty attribute",
                )
                .with_help("rules over it grant nothing"),
            );
        }
    }

    // Shadowed: every bit an allow rule contributes is also contributed by other rules.
    let n = m.rules.len();
    let mut needed = vec![false; n];
    let mut touched = vec![false; n];
    let mut cover: Vec<HashMap<usize, usize>> = vec![HashMap::new(); n];
    // Of two rules that grant exactly the same thing, only the later one is redundant: a rule
    // counts as covering `r` if it comes first, reaches more entries, or grants more bits.
    let mut size = vec![0usize; n];
    for e in m.av.values() {
        for &(r, _) in &e.why {
            size[r] += 1;
        }
    }
    for e in m.av.values() {
        for (i, &(r, bits)) in e.why.iter().enumerate() {
            if m.rules[r].kind != RuleKindPub::Allow {
                continue;
            }
            touched[r] = true;
            let mut others = 0u64;
            for (j, &(r2, b2)) in e.why.iter().enumerate() {
                let counts = r2 < r || size[r2] > size[r] || b2 & !bits != 0;
                if i != j && r2 != r && counts && m.rules[r2].kind == RuleKindPub::Allow {
                    others |= b2;
                    if b2 & bits == bits {
                        *cover[r].entry(r2).or_default() += 1;
                    }
                }
            }
            if bits & !others != 0 {
                needed[r] = true;
            }
        }
    }
    for r in 0..n {
        // Role grants are reported on the grant, once: skip the per-line rules.
        if !touched[r] || needed[r] || m.rules[r].via != RuleOrigin::Plain {
            continue;
        }
        let mut d = Diagnostic::warning(
            Code::W0003,
            "rule is shadowed: every permission it grants is granted elsewhere",
            m.rules[r].origin.clone(),
            "redundant rule",
        );
        if let Some((&r2, _)) = cover[r].iter().max_by_key(|(r2, c)| (**c, std::cmp::Reverse(**r2))) {
            d = d.with_label(m.rules[r2].origin.clone(), "covered by this rule");
        }
        out.push(d.with_help("remove it, or narrow the broader rule"));
    }

    // Dead rules: members of one conflict set can never run together, so a rule between two
    // of them is dead (and suggests a mistake in the set or the rule).
    let mut reported = vec![false; n];
    for cs in &m.conflicts {
        for &a in &cs.members {
            for &b in &cs.members {
                if a == b {
                    continue;
                }
                for &c in warden_policy::schema::ALL_CLASSES {
                    let Some(e) = m.av.get(&(a, b, c)) else {
                        continue;
                    };
                    if e.allow == 0 {
                        continue;
                    }
                    for &(r, _) in &e.why {
                        if reported[r] || m.rules[r].kind != RuleKindPub::Allow {
                            continue;
                        }
                        reported[r] = true;
                        out.push(
                            Diagnostic::warning(
                                Code::W0004,
                                format!(
                                    "dead rule: `{}` and `{}` are in conflict set `{}` and never run together",
                                    m.name(a),
                                    m.name(b),
                                    cs.name
                                ),
                                m.rules[r].origin.clone(),
                                format!("lets `{}` use `{}` on `{}`", m.name(a), c.name(), m.name(b)),
                            )
                            .with_label(cs.origin.clone(), "conflict set"),
                        );
                    }
                }
            }
        }
    }

    // A domain under construction carries its build label: if only the run label is in a
    // conflict set, two competitors can coexist while one of them is being built.
    for tr in &m.transitions {
        for cs in &m.conflicts {
            if cs.members.contains(&tr.run) && !cs.members.contains(&tr.build) {
                out.push(
                    Diagnostic::warning(
                        Code::W0006,
                        format!(
                            "`{}` is in conflict set `{}` but its build label `{}` is not",
                            m.name(tr.run),
                            cs.name,
                            m.name(tr.build)
                        ),
                        tr.origin.clone(),
                        "transition",
                    )
                    .with_label(cs.origin.clone(), "conflict set")
                    .with_help(format!(
                        "add `{}` to `{}` so the wall also holds while it is being built",
                        m.name(tr.build),
                        cs.name
                    )),
                );
            }
        }
    }

    // A builder's access should end at the transition: warn if whoever may transition a build
    // label also holds build or introspection rights on the run label.
    for tr in &m.transitions {
        for (&(s, t, c), e) in &m.av {
            if t != tr.build || c != Class::Domain || e.allow & warden_policy::perms::domain::TRANSITION.0 == 0 {
                continue;
            }
            for c2 in [Class::Domain, Class::Introspect] {
                let Some(run) = m.av.get(&(s, tr.run, c2)) else {
                    continue;
                };
                // The rights that construct a domain; introspection granted on purpose by a
                // role (checkpoint, migrate) is a separate decision and not flagged.
                let risky = if c2 == Class::Domain {
                    run.allow & warden_policy::perms::domain::BUILD.0
                } else {
                    run.allow
                        & (warden_policy::perms::introspect::WRITEMEM | warden_policy::perms::introspect::SETVCPU).0
                };
                if risky != 0 && m.types[s as usize].kind == Kind::Domain {
                    let r = run
                        .why
                        .iter()
                        .find(|w| m.rules[w.0].kind == RuleKindPub::Allow && w.1 & risky != 0)
                        .map_or(0, |w| w.0);
                    out.push(
                        Diagnostic::warning(
                            Code::W0005,
                            format!(
                                "builder `{}` keeps `{}` {} on run label `{}`",
                                m.name(s),
                                c2.name(),
                                perms_text(c2, risky),
                                m.name(tr.run)
                            ),
                            m.rules[r].origin.clone(),
                            "access survives the transition",
                        )
                        .with_label(tr.origin.clone(), "transition"),
                    );
                }
            }
        }
    }
}
