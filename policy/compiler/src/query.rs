//! Questions about a compiled policy: who can do what (with explanations), flows, diffs, graphs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{Value, json};
use warden_policy::schema::{CLASSES, Class};

use crate::Compiled;
use crate::check::hop_text;
use crate::diag::{location, location_chain, suggest};
use crate::flow::{Hop, Reach};
use crate::model::{Model, RuleKindPub, RuleOrigin, perm_names};

/// A name given on the command line that the policy does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// Unknown type or attribute (with a suggestion).
    UnknownName(String, Option<String>),
    /// Unknown class.
    UnknownClass(String, Option<String>),
    /// Unknown permission of a class.
    UnknownPerm(String, String),
    /// A permission filter without a class filter that no class has.
    PermWithoutClass(String),
    /// Unknown kind.
    UnknownKind(String),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hint = |s: &Option<String>| s.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
        // A newcomer's next question is "then what is there?": list the valid names.
        let classes = || CLASSES.iter().map(|c| c.name).collect::<Vec<_>>().join(", ");
        match self {
            QueryError::UnknownName(n, s) => write!(f, "unknown type or attribute `{n}`{}", hint(s)),
            QueryError::UnknownClass(n, s) => write!(f, "unknown class `{n}`{}; classes: {}", hint(s), classes()),
            QueryError::UnknownPerm(c, p) => {
                let perms = Class::by_name(c).map(|c| perm_names(c, c.all().0).join(", ")).unwrap_or_default();
                write!(f, "class `{c}` has no permission `{p}`; `{c}` permissions: {perms}")
            }
            QueryError::PermWithoutClass(p) => write!(f, "no class has a permission `{p}`; classes: {}", classes()),
            QueryError::UnknownKind(k) => write!(
                f,
                "unknown kind `{k}`; kinds: {}",
                warden_policy::schema::KINDS.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

impl std::error::Error for QueryError {}

/// Resolves a type or attribute name given on the command line.
///
/// # Errors
/// [`QueryError::UnknownName`].
pub fn resolve(m: &Model, name: &str) -> Result<Vec<u32>, QueryError> {
    m.resolve_name(name).ok_or_else(|| {
        let names = m.types.iter().map(|t| t.name.as_str()).chain(m.attrs.iter().map(|a| a.name.as_str()));
        QueryError::UnknownName(name.to_string(), suggest(name, names).map(str::to_string))
    })
}

/// Filters of `wardenpol query`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Source type or attribute.
    pub source: Option<String>,
    /// Target type or attribute.
    pub target: Option<String>,
    /// Class.
    pub class: Option<String>,
    /// Permission.
    pub perm: Option<String>,
}

impl Filter {
    /// The filter in words, for "nothing matches" messages.
    #[must_use]
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [("source", &self.source), ("target", &self.target), ("class", &self.class), ("perm", &self.perm)]
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} `{v}`")))
            .collect();
        if parts.is_empty() { "(no filter)".into() } else { parts.join(", ") }
    }
}

/// Why one permission is granted.
#[derive(Debug, Clone)]
pub struct Why {
    /// The rule (index into [`Model::rules`]).
    pub rule: usize,
    /// The attribute through which the subject matched, if not named directly.
    pub via_source: Option<String>,
    /// The attribute (or `self`/`other`) through which the target matched.
    pub via_target: Option<String>,
}

/// One answer row.
#[derive(Debug, Clone)]
pub struct Row {
    /// Subject.
    pub source: u32,
    /// Target.
    pub target: u32,
    /// Class.
    pub class: Class,
    /// Allowed permissions (after the permission filter).
    pub perms: u64,
    /// Per permission bit, the rules behind it.
    pub why: Vec<(u8, Vec<Why>)>,
}

fn via(m: &Model, names: &[String], t: u32) -> Option<String> {
    if names.iter().any(|n| n == m.name(t)) {
        return None;
    }
    names.iter().find(|n| m.resolve_name(n).is_some_and(|v| v.contains(&t)) || *n == "self" || *n == "other").cloned()
}

/// Runs a query.
///
/// # Errors
/// Unknown names in the filter.
pub fn query(c: &Compiled, f: &Filter) -> Result<Vec<Row>, QueryError> {
    let m = &c.model;
    let src = f.source.as_deref().map(|n| resolve(m, n)).transpose()?;
    let tgt = f.target.as_deref().map(|n| resolve(m, n)).transpose()?;
    let class = match &f.class {
        Some(n) => Some(Class::by_name(n).ok_or_else(|| {
            QueryError::UnknownClass(n.clone(), suggest(n, CLASSES.iter().map(|c| c.name)).map(str::to_string))
        })?),
        None => None,
    };
    if let (Some(c), Some(p)) = (class, &f.perm)
        && c.perm(p).is_none()
    {
        return Err(QueryError::UnknownPerm(c.name().to_string(), p.clone()));
    }
    if let (None, Some(p)) = (class, &f.perm)
        && !CLASSES.iter().any(|c| c.perm(p).is_some())
    {
        return Err(QueryError::PermWithoutClass(p.clone()));
    }
    let mut rows = Vec::new();
    for (&(s, t, cl), e) in &m.av {
        if src.as_ref().is_some_and(|v| !v.contains(&s))
            || tgt.as_ref().is_some_and(|v| !v.contains(&t))
            || class.is_some_and(|c| c != cl)
        {
            continue;
        }
        let mut perms = e.allow;
        if let Some(p) = &f.perm {
            perms &= cl.perm(p).map_or(0, |s| s.0);
        }
        if perms == 0 {
            continue;
        }
        let mut why = Vec::new();
        for bit in 0..64u8 {
            if perms & (1 << bit) == 0 {
                continue;
            }
            let ws = e
                .why
                .iter()
                .filter(|(r, b)| b & (1 << bit) != 0 && m.rules[*r].kind == RuleKindPub::Allow)
                .map(|&(r, _)| Why {
                    rule: r,
                    via_source: via(m, &m.rules[r].src, s),
                    via_target: via(m, &m.rules[r].tgt, t),
                })
                .collect();
            why.push((bit, ws));
        }
        rows.push(Row { source: s, target: t, class: cl, perms, why });
    }
    Ok(rows)
}

fn why_text(m: &Model, file: &str, src: &str, w: &Why) -> String {
    let r = &m.rules[w.rule];
    let mut s = format!("{}  `{}`", location_chain(file, src, &r.origin), r.text.lines().next().unwrap_or(""));
    if let RuleOrigin::Role { role, line } = &r.via {
        let _ = write!(s, " [role `{role}`, {}]", location(file, src, line));
    }
    if let Some(a) = &w.via_source {
        let _ = write!(s, " [source via `{a}`]");
    }
    if let Some(a) = &w.via_target {
        let _ = write!(s, " [target via `{a}`]");
    }
    s
}

/// Renders query rows as text.
#[must_use]
pub fn rows_text(c: &Compiled, file: &str, src: &str, rows: &[Row], explain: bool) -> String {
    let m = &c.model;
    let mut out = String::new();
    for r in rows {
        let names = perm_names(r.class, r.perms);
        let _ = writeln!(
            out,
            "allow {} {}: {} {{ {} }};",
            m.name(r.source),
            m.name(r.target),
            r.class.name(),
            names.join(" ")
        );
        if explain {
            for (bit, ws) in &r.why {
                let p = r.class.info().perms[*bit as usize].name;
                for w in ws {
                    let _ = writeln!(out, "    {p:<12} <- {}", why_text(m, file, src, w));
                }
            }
        }
    }
    out
}

/// Renders query rows as JSON.
#[must_use]
pub fn rows_json(c: &Compiled, file: &str, src: &str, rows: &[Row]) -> Value {
    let m = &c.model;
    Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "source": m.name(r.source), "target": m.name(r.target), "class": r.class.name(),
                    "perms": perm_names(r.class, r.perms),
                    "explain": r.why.iter().map(|(bit, ws)| json!({
                        "perm": r.class.info().perms[*bit as usize].name,
                        "rules": ws.iter().map(|w| {
                            let rule = &m.rules[w.rule];
                            let (line, col) = crate::diag::line_col(src, rule.origin.span.start);
                            json!({
                                "file": file, "line": line, "column": col, "rule": rule.text,
                                "role": match &rule.via { RuleOrigin::Role { role, .. } => Some(role.clone()), RuleOrigin::Plain => None },
                                "source_via": w.via_source, "target_via": w.via_target,
                                "templates": rule.origin.chain.iter().map(|f| f.template.clone()).collect::<Vec<_>>(),
                            })
                        }).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// A path as text, one hop per line with the rule and its location.
#[must_use]
pub fn path_text(c: &Compiled, file: &str, src: &str, path: &[Hop]) -> String {
    let m = &c.model;
    let mut out = String::new();
    for (i, h) in path.iter().enumerate() {
        let r = &m.rules[h.rule];
        let _ = writeln!(out, "  {}. {}", i + 1, hop_text(m, h));
        let _ =
            writeln!(out, "     {}  `{}`", location_chain(file, src, &r.origin), r.text.lines().next().unwrap_or(""));
        if let RuleOrigin::Role { role, line } = &r.via {
            let _ = writeln!(out, "     through role `{role}` at {}", location(file, src, line));
        }
    }
    out
}

/// A path as JSON.
#[must_use]
pub fn path_json(c: &Compiled, file: &str, src: &str, path: &[Hop]) -> Value {
    let m = &c.model;
    Value::Array(
        path.iter()
            .map(|h| {
                let r = &m.rules[h.rule];
                let (line, col) = crate::diag::line_col(src, r.origin.span.start);
                json!({
                    "from": m.name(h.from), "to": m.name(h.to),
                    "subject": m.name(h.key.0), "target": m.name(h.key.1),
                    "class": h.key.2.name(), "perm": h.key.2.info().perms[h.perm as usize].name,
                    "flow": h.key.2.info().perms[h.perm as usize].flow.name(),
                    "rule": r.text, "file": file, "line": line, "column": col,
                })
            })
            .collect(),
    )
}

/// Semantic difference between two policies.
#[derive(Debug, Clone, Default)]
pub struct Diff {
    /// `(source, target, class, perm)` granted only by the new policy.
    pub added: Vec<(String, String, String, String)>,
    /// Granted only by the old policy.
    pub removed: Vec<(String, String, String, String)>,
    /// Types only in the new / old policy.
    pub types_added: Vec<String>,
    /// Types removed.
    pub types_removed: Vec<String>,
    /// Flows `(from, to)` possible only under the new policy.
    pub flows_opened: Vec<(String, String)>,
    /// Flows possible only under the old policy.
    pub flows_closed: Vec<(String, String)>,
    /// Direct flows (one permission) `(from, to)` only in the new policy between types that
    /// could already reach each other through others (hubs): a new channel that per-pair
    /// reachability alone does not show.
    pub channels_opened: Vec<(String, String)>,
}

impl Diff {
    /// Whether the policies are equivalent.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.types_added.is_empty() && self.types_removed.is_empty()
    }
}

fn grants(m: &Model) -> BTreeSet<(String, String, String, String)> {
    let mut out = BTreeSet::new();
    for (&(s, t, c), e) in &m.av {
        for p in perm_names(c, e.allow) {
            out.insert((m.name(s).to_string(), m.name(t).to_string(), c.name().to_string(), p.to_string()));
        }
    }
    out
}

/// Pairs of distinct types between which information flows, paths avoiding `excluding`.
fn flows(c: &Compiled, excluding: &[String]) -> BTreeSet<(String, String)> {
    let m = &c.model;
    let x: Vec<u32> = excluding.iter().filter_map(|n| m.resolve_name(n)).flatten().collect();
    let mut out = BTreeSet::new();
    if x.is_empty() {
        let reach = Reach::new(&c.graph);
        let n = m.types.len() as u32;
        for a in 0..n {
            for b in 0..n {
                if a != b && reach.reaches(a, b) {
                    out.insert((m.name(a).to_string(), m.name(b).to_string()));
                }
            }
        }
        return out;
    }
    // With exclusions: one search per source, never expanding an excluded type.
    let n = m.types.len();
    let blocked = crate::flow::mask(n, &x);
    for a in 0..n {
        let mut seen = vec![false; n];
        seen[a] = true;
        let mut stack = vec![a];
        while let Some(u) = stack.pop() {
            if u != a && blocked[u] {
                continue;
            }
            for e in &c.graph.out[u] {
                let v = e.to as usize;
                if !seen[v] {
                    seen[v] = true;
                    out.insert((m.name(a as u32).to_string(), m.name(e.to).to_string()));
                    stack.push(v);
                }
            }
        }
    }
    out
}

/// Pairs of distinct types joined by one flow edge.
fn direct(c: &Compiled) -> BTreeSet<(String, String)> {
    let m = &c.model;
    let mut out = BTreeSet::new();
    for (a, es) in c.graph.out.iter().enumerate() {
        for e in es {
            out.insert((m.name(a as u32).to_string(), m.name(e.to).to_string()));
        }
    }
    out
}

/// The semantic difference between two compiled policies. Flows are compared with paths
/// through `excluding` (trusted hubs) cut, so a change that adds a channel between two types a
/// hub already joins still shows as an opened flow.
#[must_use]
pub fn diff(old: &Compiled, new: &Compiled, excluding: &[String]) -> Diff {
    let (go, gn) = (grants(&old.model), grants(&new.model));
    let to = old.model.types.iter().map(|t| t.name.clone()).collect::<BTreeSet<_>>();
    let tn = new.model.types.iter().map(|t| t.name.clone()).collect::<BTreeSet<_>>();
    let (fo, fnew) = (flows(old, excluding), flows(new, excluding));
    let opened: BTreeSet<(String, String)> = fnew.difference(&fo).cloned().collect();
    let channels_opened =
        direct(new).difference(&direct(old)).filter(|p| !opened.contains(*p) && !excluding.contains(&p.0) && !excluding.contains(&p.1)).cloned().collect();
    Diff {
        added: gn.difference(&go).cloned().collect(),
        removed: go.difference(&gn).cloned().collect(),
        types_added: tn.difference(&to).cloned().collect(),
        types_removed: to.difference(&tn).cloned().collect(),
        flows_opened: opened.into_iter().collect(),
        flows_closed: fo.difference(&fnew).cloned().collect(),
        channels_opened,
    }
}

/// Renders a diff as text, grouped by (source, target, class).
#[must_use]
pub fn diff_text(d: &Diff) -> String {
    let mut out = String::new();
    for t in &d.types_added {
        let _ = writeln!(out, "+ type {t}");
    }
    for t in &d.types_removed {
        let _ = writeln!(out, "- type {t}");
    }
    for (sign, set) in [("+", &d.added), ("-", &d.removed)] {
        let mut grouped: BTreeMap<(&str, &str, &str), Vec<&str>> = BTreeMap::new();
        for (s, t, c, p) in set {
            grouped.entry((s, t, c)).or_default().push(p);
        }
        for ((s, t, c), ps) in grouped {
            let _ = writeln!(out, "{sign} allow {s} {t}: {c} {{ {} }};", ps.join(" "));
        }
    }
    for (a, b) in &d.flows_opened {
        let _ = writeln!(out, "! this change opens a flow from {a} to {b}");
    }
    for (a, b) in &d.channels_opened {
        let _ = writeln!(out, "! this change opens a direct flow from {a} to {b} (they were already joined through other types)");
    }
    for (a, b) in &d.flows_closed {
        let _ = writeln!(out, "  this change closes the flow from {a} to {b}");
    }
    if out.is_empty() {
        out.push_str("no semantic difference\n");
    }
    out
}

/// Renders a diff as JSON.
#[must_use]
pub fn diff_json(d: &Diff) -> Value {
    let g = |v: &Vec<(String, String, String, String)>| {
        v.iter().map(|(s, t, c, p)| json!({"source": s, "target": t, "class": c, "perm": p})).collect::<Vec<_>>()
    };
    let f = |v: &Vec<(String, String)>| v.iter().map(|(a, b)| json!({"from": a, "to": b})).collect::<Vec<_>>();
    json!({
        "types_added": d.types_added, "types_removed": d.types_removed,
        "added": g(&d.added), "removed": g(&d.removed),
        "flows_opened": f(&d.flows_opened), "flows_closed": f(&d.flows_closed),
        "channels_opened": f(&d.channels_opened),
    })
}

/// What `wardenpol graph` draws: all of it by default.
#[derive(Debug, Clone, Default)]
pub struct GraphFilter {
    /// Only types that information from these reaches (and these).
    pub from: Vec<u32>,
    /// Only types whose information reaches these (and these).
    pub to: Vec<u32>,
    /// Only types of these kinds.
    pub kinds: Vec<warden_policy::Kind>,
    /// One box per attribute around its members (a type in several: its first attribute).
    pub cluster_by_attribute: bool,
}

/// The types reachable from `start` along the flow edges (forward) or against them.
fn reachable(c: &Compiled, start: &[u32], forward: bool) -> Vec<bool> {
    let n = c.model.types.len();
    let mut rev: Vec<Vec<u32>> = vec![Vec::new(); n];
    if !forward {
        for (a, es) in c.graph.out.iter().enumerate() {
            for e in es {
                rev[e.to as usize].push(a as u32);
            }
        }
    }
    let mut seen = vec![false; n];
    let mut stack: Vec<u32> = start.to_vec();
    for &s in start {
        seen[s as usize] = true;
    }
    while let Some(u) = stack.pop() {
        let next: Vec<u32> =
            if forward { c.graph.out[u as usize].iter().map(|e| e.to).collect() } else { rev[u as usize].clone() };
        for v in next {
            if !seen[v as usize] {
                seen[v as usize] = true;
                stack.push(v);
            }
        }
    }
    seen
}

/// Graphviz DOT: types as nodes (shape by kind, clustered conflict sets), one edge per
/// (from, to) pair carrying information, labelled with the classes involved.
#[must_use]
pub fn dot(c: &Compiled) -> String {
    dot_filtered(c, &GraphFilter::default())
}

/// [`dot`] restricted by `f`: a 24-type policy has a hundred and more edges, and the question
/// is usually "where can this go" or "what reaches that".
#[must_use]
pub fn dot_filtered(c: &Compiled, f: &GraphFilter) -> String {
    let m = &c.model;
    let n = m.types.len();
    let mut keep = vec![true; n];
    if !f.from.is_empty() {
        let r = reachable(c, &f.from, true);
        keep.iter_mut().zip(r).for_each(|(k, r)| *k &= r);
    }
    if !f.to.is_empty() {
        let r = reachable(c, &f.to, false);
        keep.iter_mut().zip(r).for_each(|(k, r)| *k &= r);
    }
    if !f.kinds.is_empty() {
        for (i, t) in m.types.iter().enumerate() {
            keep[i] &= f.kinds.contains(&t.kind);
        }
    }
    let mut out = String::from("digraph warden_policy {\n    rankdir=LR;\n    node [fontname=\"monospace\"];\n");
    if f.cluster_by_attribute {
        for (ai, a) in m.attrs.iter().enumerate() {
            let members: Vec<u32> =
                a.members.iter().copied().filter(|&t| keep[t as usize] && m.types[t as usize].attrs.first() == Some(&ai)).collect();
            if members.is_empty() {
                continue;
            }
            let _ = writeln!(out, "    subgraph cluster_attr_{ai} {{\n        label=\"{}\"; style=rounded;", a.name);
            for t in members {
                let _ = writeln!(out, "        \"{}\";", m.name(t));
            }
            out.push_str("    }\n");
        }
    }
    for t in m.types.iter().enumerate().filter(|(i, _)| keep[*i]).map(|(_, t)| t) {
        let shape = match t.kind {
            warden_policy::Kind::Domain => "box",
            warden_policy::Kind::Hypervisor => "doubleoctagon",
            warden_policy::Kind::Vtpm | warden_policy::Kind::TpmLocality => "cylinder",
            _ => "ellipse",
        };
        let _ = writeln!(out, "    \"{}\" [shape={shape}, tooltip=\"{}\"];", t.name, t.kind);
    }
    for (i, cs) in m.conflicts.iter().enumerate() {
        let _ = writeln!(
            out,
            "    subgraph cluster_{i} {{\n        label=\"conflict set {}\"; style=dashed; color=red;",
            cs.name
        );
        for &t in cs.members.iter().filter(|&&t| keep[t as usize]) {
            let _ = writeln!(out, "        \"{}\";", m.name(t));
        }
        out.push_str("    }\n");
    }
    let mut edges: BTreeMap<(u32, u32), BTreeSet<&str>> = BTreeMap::new();
    for (from, es) in c.graph.out.iter().enumerate() {
        for e in es.iter().filter(|e| keep[from] && keep[e.to as usize]) {
            edges.entry((from as u32, e.to)).or_default().insert(e.key.2.name());
        }
    }
    for ((a, b), classes) in edges {
        let _ = writeln!(
            out,
            "    \"{}\" -> \"{}\" [label=\"{}\"];",
            m.name(a),
            m.name(b),
            classes.into_iter().collect::<Vec<_>>().join(",")
        );
    }
    out.push_str("}\n");
    out
}
