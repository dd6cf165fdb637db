//! Resolution and expansion: from statements to the expanded policy model with provenance.

use std::collections::{BTreeMap, HashMap};

use smallvec::SmallVec;

use warden_policy::schema::{CLASSES, Class, KINDS, Kind};

use crate::diag::{Code, Diagnostic, Origin, suggest};
use crate::syntax::{ClassPerms, Item, Name, Perms, RuleKind, Stmt, Target};

/// A declared type. Types are sorted by name; the index is the engine's `TypeId`.
#[derive(Debug, Clone)]
pub struct TypeDecl {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: Kind,
    /// Attributes it belongs to (indices into [`Model::attrs`]).
    pub attrs: Vec<usize>,
    /// Declaration.
    pub origin: Origin,
}

/// A declared attribute.
#[derive(Debug, Clone)]
pub struct AttrDecl {
    /// Name.
    pub name: String,
    /// Member types, ascending.
    pub members: Vec<u32>,
    /// Declaration.
    pub origin: Origin,
}

/// A role: a named bundle of class permissions.
#[derive(Debug, Clone)]
pub struct RoleDecl {
    /// Name.
    pub name: String,
    /// `(class, perms, line in the role body)`.
    pub body: Vec<(Class, u64, Origin)>,
    /// Declaration.
    pub origin: Origin,
}

/// What produced a grant of permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleOrigin {
    /// An `allow`/`auditallow`/`dontaudit`/`neverallow` statement.
    Plain,
    /// A `grant ROLE to ... over ...` statement, through the role body line at `line`.
    Role {
        /// Role name.
        role: String,
        /// The role body line.
        line: Origin,
    },
}

/// One rule (after role expansion: a `grant` of a role with three lines is three rules).
#[derive(Debug, Clone)]
pub struct RuleInfo {
    /// allow / auditallow / dontaudit / neverallow (grants are `Allow`).
    pub kind: RuleKindPub,
    /// Where the statement is.
    pub origin: Origin,
    /// The statement, canonically printed.
    pub text: String,
    /// Role provenance.
    pub via: RuleOrigin,
    /// The source names as written (for "via attribute" explanations).
    pub src: Vec<String>,
    /// The target names as written (`self`/`other` as such).
    pub tgt: Vec<String>,
    /// Class.
    pub class: Class,
    /// Permissions.
    pub perms: u64,
}

/// Public mirror of the rule keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKindPub {
    /// `allow` (or a role grant).
    Allow,
    /// `auditallow`.
    AuditAllow,
    /// `dontaudit`.
    DontAudit,
    /// `neverallow`.
    NeverAllow,
}

impl RuleKindPub {
    /// Keyword.
    #[must_use]
    pub fn keyword(self) -> &'static str {
        match self {
            RuleKindPub::Allow => "allow",
            RuleKindPub::AuditAllow => "auditallow",
            RuleKindPub::DontAudit => "dontaudit",
            RuleKindPub::NeverAllow => "neverallow",
        }
    }
}

/// Access vectors for one (subject, target, class) with the rules behind each bit.
#[derive(Debug, Clone, Default)]
pub struct AvEntry {
    /// Granted permissions.
    pub allow: u64,
    /// Granted permissions to audit anyway.
    pub auditallow: u64,
    /// Denied permissions not to audit.
    pub dontaudit: u64,
    /// The part of `allow` granted only between domains of one category (subject and target
    /// both in a `separate` set).
    pub same: u64,
    /// `(rule index, permissions it contributed)`: nearly always one rule, so kept inline
    /// (a separate allocation per access vector dominated the compile of large policies).
    pub why: SmallVec<[(usize, u64); 1]>,
}

/// A `assert noflow` statement.
#[derive(Debug, Clone)]
pub struct NoFlow {
    /// Sources.
    pub from: Vec<u32>,
    /// Destinations.
    pub to: Vec<u32>,
    /// Types paths may not pass through.
    pub excluding: Vec<u32>,
    /// `across categories`: only flows into another category count.
    pub across: bool,
    /// Statement.
    pub origin: Origin,
    /// Statement text.
    pub text: String,
}

/// An `expect allow|deny` statement.
#[derive(Debug, Clone)]
pub struct Expect {
    /// `true` for `expect allow`.
    pub allow: bool,
    /// `(subject, target)` pairs.
    pub pairs: Vec<(u32, u32)>,
    /// Class.
    pub class: Class,
    /// Permissions.
    pub perms: u64,
    /// Statement.
    pub origin: Origin,
    /// Statement text.
    pub text: String,
}

/// A `separate SET;` statement.
#[derive(Debug, Clone)]
pub struct Separation {
    /// Members, ascending.
    pub members: Vec<u32>,
    /// Statement.
    pub origin: Origin,
}

/// A conflict set.
#[derive(Debug, Clone)]
pub struct ConflictSet {
    /// Name.
    pub name: String,
    /// Members, ascending.
    pub members: Vec<u32>,
    /// Statement.
    pub origin: Origin,
}

/// A build -> run transition.
#[derive(Debug, Clone)]
pub struct Transition {
    /// Build label.
    pub build: u32,
    /// Run label.
    pub run: u32,
    /// Statement.
    pub origin: Origin,
}

/// A map keyed by type or attribute name. The names come from the policy's author, who gains
/// nothing by making the compiler's own hash table slow: foldhash instead of SipHash, which
/// was about 6 % of the 100,000-type compile.
pub(crate) type NameMap<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// The fully expanded policy.
#[derive(Debug, Clone, Default)]
pub struct Model {
    /// Types, sorted by name.
    pub types: Vec<TypeDecl>,
    /// Attributes in declaration order.
    pub attrs: Vec<AttrDecl>,
    /// Roles in declaration order.
    pub roles: Vec<RoleDecl>,
    /// Every rule.
    pub rules: Vec<RuleInfo>,
    /// Expanded access vectors.
    pub av: BTreeMap<(u32, u32, Class), AvEntry>,
    /// Expanded neverallows: `(rule, subject, target, class, perms)`.
    pub neverallows: Vec<(usize, u32, u32, Class, u64)>,
    /// Transitions.
    pub transitions: Vec<Transition>,
    /// Conflict sets.
    pub conflicts: Vec<ConflictSet>,
    /// Flow assertions.
    pub noflows: Vec<NoFlow>,
    /// Expectations.
    pub expects: Vec<Expect>,
    /// `separate` statements: types whose rules among themselves hold within one category.
    pub separations: Vec<Separation>,
    /// Names used anywhere other than their declaration (for the unused-type lint).
    pub mentioned: Vec<bool>,
    pub(crate) type_index: NameMap<u32>,
    pub(crate) attr_index: NameMap<usize>,
}

impl Model {
    /// Type id by name.
    #[must_use]
    pub fn type_id(&self, name: &str) -> Option<u32> {
        self.type_index.get(name).copied()
    }

    /// Types named by a type or attribute name.
    #[must_use]
    pub fn resolve_name(&self, name: &str) -> Option<Vec<u32>> {
        if let Some(t) = self.type_id(name) {
            return Some(vec![t]);
        }
        self.attr_index.get(name).map(|&a| self.attrs[a].members.clone())
    }

    /// Type name.
    #[must_use]
    pub fn name(&self, t: u32) -> &str {
        &self.types[t as usize].name
    }

    fn all_names(&self) -> impl Iterator<Item = &str> {
        self.types.iter().map(|t| t.name.as_str()).chain(self.attrs.iter().map(|a| a.name.as_str()))
    }
}

/// Permission names of `bits` in class `c`, space-separated.
#[must_use]
pub fn perm_names(c: Class, bits: u64) -> Vec<&'static str> {
    c.info().perms.iter().filter(|p| bits & (1 << p.bit) != 0).map(|p| p.name).collect()
}

struct Resolver {
    m: Model,
    errors: Vec<Diagnostic>,
}

/// Resolves and expands statements. Returns the model or every error found.
pub(crate) fn build(items: &[Item]) -> Result<Model, Vec<Diagnostic>> {
    let mut r = Resolver { m: Model::default(), errors: Vec::new() };
    r.declare(items);
    r.rules(items);
    r.separate();
    if r.errors.is_empty() { Ok(r.m) } else { Err(r.errors) }
}

impl Resolver {
    fn dup(&mut self, what: &str, n: &Name, prev: &Origin) {
        // Two uses of one template declare the same name from the same line of its body:
        // point at the two uses, not twice at that line.
        if n.origin.span == prev.span
            && let (Some(second), Some(first)) = (n.origin.chain.first(), prev.chain.first())
        {
            let at = |o: &Origin, f: &crate::diag::Frame| Origin {
                span: f.use_span.clone(),
                chain: std::rc::Rc::new(o.chain[1..].to_vec()),
            };
            self.errors.push(
                Diagnostic::error(
                    Code::E0010,
                    format!("{what} `{}` is defined more than once", n.text),
                    at(&n.origin, second),
                    format!("this use of template `{}` declares `{}` again", second.template, n.text),
                )
                .with_label(at(prev, first), format!("this use of template `{}` declared it first", first.template))
                .with_label(Origin::plain(n.origin.span.clone()), "declared by this line of the template")
                .with_help("give the uses different arguments, or move the declaration out of the template"),
            );
            return;
        }
        self.errors.push(
            Diagnostic::error(
                Code::E0010,
                format!("{what} `{}` is defined more than once", n.text),
                n.origin.clone(),
                "redefined here",
            )
            .with_label(prev.clone(), "first defined here"),
        );
    }

    /// Names that end up in the binary must satisfy the loader (`format::valid_name`).
    fn valid(&mut self, n: &Name) -> bool {
        if warden_policy::format::valid_name(n.text.as_bytes()) {
            return true;
        }
        self.errors.push(
            Diagnostic::error(
                Code::E0001,
                format!("`{}` is not a valid name", n.text),
                n.origin.clone(),
                "invalid name",
            )
            .with_help(
                "names are letters, digits and `_`, start with a letter or `_`, and have at most 255 characters",
            ),
        );
        false
    }

    fn declare(&mut self, items: &[Item]) {
        // Attributes first, so types may name attributes declared later in the file.
        let mut attr_origin: NameMap<Origin> = NameMap::default();
        for it in items {
            if let Stmt::Attribute { name } = &it.stmt {
                if !self.valid(name) {
                    continue;
                }
                if let Some(prev) = attr_origin.get(&name.text).cloned() {
                    self.dup("attribute", name, &prev);
                    continue;
                }
                attr_origin.insert(name.text.clone(), name.origin.clone());
                self.m.attr_index.insert(name.text.clone(), self.m.attrs.len());
                self.m.attrs.push(AttrDecl {
                    name: name.text.clone(),
                    members: Vec::new(),
                    origin: name.origin.clone(),
                });
            }
        }
        let mut decls: Vec<(&Name, Kind, Vec<usize>)> = Vec::new();
        let mut seen: HashMap<&str, Origin, foldhash::fast::RandomState> = HashMap::default();
        for it in items {
            let Stmt::Type { name, kind, attrs } = &it.stmt else { continue };
            if !self.valid(name) {
                continue;
            }
            if let Some(prev) = seen.get(name.text.as_str()).cloned() {
                self.dup("type", name, &prev);
                continue;
            }
            if let Some(a) = attr_origin.get(&name.text).cloned() {
                self.errors.push(
                    Diagnostic::error(
                        Code::E0010,
                        format!("`{}` is already an attribute", name.text),
                        name.origin.clone(),
                        "type declared here",
                    )
                    .with_label(a, "attribute declared here")
                    .with_help("types and attributes share one namespace"),
                );
                continue;
            }
            if matches!(name.text.as_str(), "self" | "other") {
                self.errors.push(Diagnostic::error(
                    Code::E0010,
                    format!("`{}` is reserved", name.text),
                    name.origin.clone(),
                    "reserved word",
                ));
                continue;
            }
            let Some(k) = Kind::by_name(&kind.text) else {
                let mut d = Diagnostic::error(
                    Code::E0005,
                    format!("unknown kind `{}`", kind.text),
                    kind.origin.clone(),
                    "not a kind",
                )
                .with_note(format!("kinds: {}", KINDS.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")));
                if let Some(s) = suggest(&kind.text, KINDS.iter().map(|k| k.name())) {
                    d = d.with_help(format!("did you mean `{s}`?"));
                }
                self.errors.push(d);
                continue;
            };
            let mut ai = Vec::new();
            for a in attrs {
                match self.m.attr_index.get(&a.text) {
                    Some(&i) => ai.push(i),
                    None => {
                        let mut d = Diagnostic::error(
                            Code::E0002,
                            format!("unknown attribute `{}`", a.text),
                            a.origin.clone(),
                            "not declared",
                        );
                        if let Some(s) = suggest(&a.text, self.m.attrs.iter().map(|x| x.name.as_str())) {
                            d = d.with_help(format!("did you mean `{s}`?"));
                        } else {
                            d = d.with_help(format!("declare it with `attribute {};`", a.text));
                        }
                        self.errors.push(d);
                    }
                }
            }
            seen.insert(&name.text, name.origin.clone());
            decls.push((name, k, ai));
        }
        decls.sort_by(|a, b| a.0.text.cmp(&b.0.text));
        for (i, (n, k, ai)) in decls.into_iter().enumerate() {
            for &a in &ai {
                self.m.attrs[a].members.push(i as u32);
            }
            self.m.type_index.insert(n.text.clone(), i as u32);
            self.m.types.push(TypeDecl { name: n.text.clone(), kind: k, attrs: ai, origin: n.origin.clone() });
        }
        self.m.mentioned = vec![false; self.m.types.len()];

        let mut role_origin: HashMap<String, Origin> = HashMap::new();
        for it in items {
            let Stmt::Role { name, body } = &it.stmt else { continue };
            if let Some(prev) = role_origin.get(&name.text).cloned() {
                self.dup("role", name, &prev);
                continue;
            }
            role_origin.insert(name.text.clone(), name.origin.clone());
            let mut lines = Vec::new();
            for cp in body {
                if let Some((c, bits)) = self.class_perms(cp) {
                    lines.push((c, bits, join_cp(cp)));
                }
            }
            self.m.roles.push(RoleDecl { name: name.text.clone(), body: lines, origin: it.origin.clone() });
        }
    }

    fn class_perms(&mut self, cp: &ClassPerms) -> Option<(Class, u64)> {
        let Some(c) = Class::by_name(&cp.class.text) else {
            let mut d = Diagnostic::error(
                Code::E0003,
                format!("unknown class `{}`", cp.class.text),
                cp.class.origin.clone(),
                "not a class",
            );
            if let Some(s) = suggest(&cp.class.text, CLASSES.iter().map(|c| c.name)) {
                d = d.with_help(format!("did you mean `{s}`?"));
            } else {
                d = d.with_note(format!("classes: {}", CLASSES.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")));
            }
            self.errors.push(d);
            return None;
        };
        let mut bits = 0u64;
        let mut ok = true;
        match &cp.perms {
            Perms::All(_) => bits = c.all().0,
            Perms::List(l) => {
                for p in l {
                    match c.perm(&p.text) {
                        Some(s) => bits |= s.0,
                        None => {
                            ok = false;
                            let mut d = Diagnostic::error(
                                Code::E0004,
                                format!("class `{}` has no permission `{}`", c.name(), p.text),
                                p.origin.clone(),
                                "unknown permission",
                            );
                            let owners: Vec<&str> =
                                CLASSES.iter().filter(|ci| ci.perm(&p.text).is_some()).map(|ci| ci.name).collect();
                            if let Some(s) = suggest(&p.text, c.info().perms.iter().map(|p| p.name)) {
                                d = d.with_help(format!("did you mean `{s}`?"));
                            } else if !owners.is_empty() {
                                d = d.with_help(format!(
                                    "`{}` is a permission of class {}",
                                    p.text,
                                    owners.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", ")
                                ));
                            }
                            d = d.with_note(format!(
                                "`{}` permissions: {}",
                                c.name(),
                                c.info().perms.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
                            ));
                            self.errors.push(d);
                        }
                    }
                }
            }
        }
        ok.then_some((c, bits))
    }

    /// Resolves a type set (see `syntax::Parser::type_set`). `*` stands for every type of
    /// kind `wild` (every type if `None`): as a source, every domain; as a target, every type
    /// the class applies to. `-NAME` entries are removed from the union of the others.
    fn names_of_kind(&mut self, names: &[Name], wild: Option<Kind>) -> Option<Vec<u32>> {
        // Borrowed, not cloned: this runs for every rule of the policy.
        let minus: Vec<Name> = names
            .iter()
            .filter_map(|n| n.text.strip_prefix('-').map(|t| Name { text: t.to_string(), origin: n.origin.clone() }))
            .collect();
        let mut out = Vec::new();
        let mut ok = true;
        let mut rest: Vec<&Name> = Vec::with_capacity(names.len());
        for n in names.iter().filter(|n| !n.text.starts_with('-')) {
            if n.text == "*" {
                out.extend(
                    (0..self.m.types.len() as u32).filter(|&t| wild.is_none_or(|k| self.m.types[t as usize].kind == k)),
                );
            } else {
                rest.push(n);
            }
        }
        match self.names(&rest) {
            Some(v) => out.extend(v),
            None => ok = false,
        }
        if !minus.is_empty() {
            let Some(mut removed) = self.names(&minus.iter().collect::<Vec<_>>()) else { return None };
            removed.sort_unstable();
            out.retain(|t| removed.binary_search(t).is_err());
        }
        out.sort_unstable();
        out.dedup();
        ok.then_some(out)
    }

    fn names(&mut self, names: &[&Name]) -> Option<Vec<u32>> {
        let mut out = Vec::new();
        let mut ok = true;
        for n in names {
            if let Some(t) = self.m.type_index.get(&n.text) {
                self.m.mentioned[*t as usize] = true;
                out.push(*t);
            } else if let Some(&a) = self.m.attr_index.get(&n.text) {
                out.extend(self.m.attrs[a].members.iter().copied());
                for &t in &self.m.attrs[a].members {
                    self.m.mentioned[t as usize] = true;
                }
            } else {
                ok = false;
                let msg = if matches!(n.text.as_str(), "self" | "other") {
                    format!("`{}` is only valid as a rule target", n.text)
                } else {
                    format!("unknown type or attribute `{}`", n.text)
                };
                let code = if matches!(n.text.as_str(), "self" | "other") { Code::E0013 } else { Code::E0002 };
                let label = if code == Code::E0013 { "stands for the subject, not a type" } else { "not declared" };
                let mut d = Diagnostic::error(code, msg, n.origin.clone(), label);
                if code == Code::E0013 {
                    d = d.with_help(format!(
                        "`{}` is the whole target: `allow guests {}: evtchn send;`, not inside a list or as a source",
                        n.text, n.text
                    ));
                }
                if code == Code::E0002 {
                    if let Some(s) = suggest(&n.text, self.m.all_names()) {
                        d = d.with_help(format!("did you mean `{s}`?"));
                    } else {
                        d = d.with_help(format!("declare it with `type {}: KIND;` or `attribute {};`", n.text, n.text));
                    }
                }
                self.errors.push(d);
            }
        }
        out.sort_unstable();
        out.dedup();
        ok.then_some(out)
    }

    /// Expands a target for subject `s`.
    fn targets(s: u32, src: &[u32], tgt: &TargetSet) -> Vec<u32> {
        match tgt {
            TargetSet::Types(v) => v.clone(),
            TargetSet::SelfT => vec![s],
            TargetSet::Other => src.iter().copied().filter(|&t| t != s).collect(),
        }
    }

    fn target(&mut self, t: &Target, wild: Option<Kind>) -> Option<TargetSet> {
        Some(match t {
            Target::Names(n) => TargetSet::Types(self.names_of_kind(n, wild)?),
            Target::SelfT(_) => TargetSet::SelfT,
            Target::Other(_) => TargetSet::Other,
        })
    }

    fn check_subjects(&mut self, names: &[Name], subjects: &[u32]) -> bool {
        let mut ok = true;
        for &s in subjects {
            let td = &self.m.types[s as usize];
            if td.kind != Kind::Domain {
                ok = false;
                let at = names.iter().find(|n| {
                    n.text == td.name
                        || self.m.attr_index.get(&n.text).is_some_and(|&a| self.m.attrs[a].members.contains(&s))
                });
                let at = at.map_or_else(|| names[0].origin.clone(), |n| n.origin.clone());
                let via = names.iter().find(|n| n.text != td.name && self.m.attr_index.contains_key(&n.text));
                let mut d = Diagnostic::error(
                    Code::E0012,
                    format!("subject `{}` is a {}, not a domain", td.name, td.kind),
                    at,
                    "only domains act",
                )
                .with_label(td.origin.clone(), format!("`{}` declared as {} here", td.name, td.kind));
                if let Some(v) = via {
                    d = d.with_note(format!("`{}` is a member of attribute `{}`", td.name, v.text));
                }
                self.errors.push(d);
            }
        }
        ok
    }

    fn check_kinds(&mut self, t: &Target, set: &TargetSet, subjects: &[u32], c: Class) -> bool {
        let kind = c.target_kind();
        let cands: Vec<u32> = match set {
            TargetSet::Types(v) => v.clone(),
            // self/other reach only subjects, which are domains.
            _ => subjects.to_vec(),
        };
        let mut ok = true;
        for tt in cands {
            let td = &self.m.types[tt as usize];
            if td.kind == kind {
                continue;
            }
            ok = false;
            let (at, via) = match t {
                Target::Names(ns) => {
                    let n = ns.iter().find(|n| n.text == td.name).or_else(|| {
                        ns.iter().find(|n| {
                            self.m.attr_index.get(&n.text).is_some_and(|&a| self.m.attrs[a].members.contains(&tt))
                        })
                    });
                    let n = n.unwrap_or(&ns[0]);
                    (n.origin.clone(), (n.text != td.name).then(|| n.text.clone()))
                }
                Target::SelfT(o) | Target::Other(o) => (o.clone(), None),
            };
            let mut d = Diagnostic::error(
                Code::E0011,
                format!("class `{}` does not apply to `{}`: it is a {}, not a {}", c.name(), td.name, td.kind, kind),
                at,
                format!("`{}` targets {}s", c.name(), kind),
            )
            .with_label(td.origin.clone(), format!("`{}` declared as {} here", td.name, td.kind));
            if let Some(v) = via {
                d = d.with_note(format!("`{}` is a member of attribute `{v}`", td.name));
            }
            let fits: Vec<&str> = CLASSES.iter().filter(|ci| ci.target_kind == td.kind).map(|ci| ci.name).collect();
            if !fits.is_empty() {
                d = d.with_help(format!("classes for {} targets: {}", td.kind, fits.join(", ")));
            }
            self.errors.push(d);
            break;
        }
        ok
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one call site per rule form; a struct would only rename the arguments"
    )]
    fn push_rule(
        &mut self,
        it: &Item,
        kind: RuleKindPub,
        via: RuleOrigin,
        src: &[Name],
        tgt: &Target,
        c: Class,
        perms: u64,
    ) -> usize {
        let tgt_names = match tgt {
            Target::Names(n) => n.iter().map(|n| n.text.clone()).collect(),
            Target::SelfT(_) => vec!["self".into()],
            Target::Other(_) => vec!["other".into()],
        };
        self.m.rules.push(RuleInfo {
            kind,
            origin: it.origin.clone(),
            text: crate::print::stmt(&it.stmt),
            via,
            src: src.iter().map(|n| n.text.clone()).collect(),
            tgt: tgt_names,
            class: c,
            perms,
        });
        self.m.rules.len() - 1
    }

    fn expand(&mut self, rule: usize, kind: RuleKindPub, subjects: &[u32], tset: &TargetSet, c: Class, perms: u64) {
        for &s in subjects {
            // Iterated in place: `Self::targets` would allocate once per subject.
            let (list, one): (&[u32], [u32; 1]) = match tset {
                TargetSet::Types(v) => (v, [0]),
                TargetSet::SelfT | TargetSet::Other => (subjects, [s]),
            };
            let ts: &[u32] = if matches!(tset, TargetSet::SelfT) { &one } else { list };
            for &t in ts {
                if matches!(tset, TargetSet::Other) && t == s {
                    continue;
                }
                if kind == RuleKindPub::NeverAllow {
                    self.m.neverallows.push((rule, s, t, c, perms));
                    continue;
                }
                let e = self.m.av.entry((s, t, c)).or_default();
                match kind {
                    RuleKindPub::Allow => e.allow |= perms,
                    RuleKindPub::AuditAllow => e.auditallow |= perms,
                    RuleKindPub::DontAudit => e.dontaudit |= perms,
                    RuleKindPub::NeverAllow => {}
                }
                e.why.push((rule, perms));
            }
        }
    }

    fn rules(&mut self, items: &[Item]) {
        for it in items {
            match &it.stmt {
                Stmt::Rule { kind, src, tgt, cp } => {
                    let cpr = self.class_perms(cp);
                    let kind_of_target = cpr.map(|(c, _)| c.target_kind());
                    let (subjects, tset) = (self.names_of_kind(src, Some(Kind::Domain)), self.target(tgt, kind_of_target));
                    let (Some(subjects), Some(tset), Some((c, bits))) = (subjects, tset, cpr) else { continue };
                    if !self.check_subjects(src, &subjects) || !self.check_kinds(tgt, &tset, &subjects, c) {
                        continue;
                    }
                    let k = match kind {
                        RuleKind::Allow => RuleKindPub::Allow,
                        RuleKind::AuditAllow => RuleKindPub::AuditAllow,
                        RuleKind::DontAudit => RuleKindPub::DontAudit,
                        RuleKind::NeverAllow => RuleKindPub::NeverAllow,
                    };
                    let r = self.push_rule(it, k, RuleOrigin::Plain, src, tgt, c, bits);
                    self.expand(r, k, &subjects, &tset, c, bits);
                }
                Stmt::Grant { role, src, tgt } => {
                    let Some(ri) = self.m.roles.iter().position(|r| r.name == role.text) else {
                        let mut d = Diagnostic::error(
                            Code::E0006,
                            format!("unknown role `{}`", role.text),
                            role.origin.clone(),
                            "not declared",
                        );
                        if let Some(s) = suggest(&role.text, self.m.roles.iter().map(|r| r.name.as_str())) {
                            d = d.with_help(format!("did you mean `{s}`?"));
                        }
                        self.errors.push(d);
                        continue;
                    };
                    let body = self.m.roles[ri].body.clone();
                    let first_kind = body.first().map(|(c, _, _)| c.target_kind());
                    let subjects = self.names_of_kind(src, Some(Kind::Domain));
                    let (Some(subjects), Some(mut tset)) = (subjects, self.target(tgt, first_kind)) else { continue };
                    if !self.check_subjects(src, &subjects) {
                        continue;
                    }
                    for (c, bits, line) in body {
                        if Some(c.target_kind()) != first_kind {
                            // `*` means the types this line's class applies to; names resolved
                            // without error above, so this cannot fail.
                            let Some(t) = self.target(tgt, Some(c.target_kind())) else { break };
                            tset = t;
                        }
                        if !self.check_kinds(tgt, &tset, &subjects, c) {
                            break;
                        }
                        let via = RuleOrigin::Role { role: role.text.clone(), line };
                        let r = self.push_rule(it, RuleKindPub::Allow, via, src, tgt, c, bits);
                        self.expand(r, RuleKindPub::Allow, &subjects, &tset, c, bits);
                    }
                }
                Stmt::Transition { build, run } => {
                    let (Some(b), Some(r)) = (self.single(build), self.single(run)) else { continue };
                    let mut bad = false;
                    for (n, t) in [(build, b), (run, r)] {
                        if self.m.types[t as usize].kind != Kind::Domain {
                            bad = true;
                            self.errors.push(
                                Diagnostic::error(
                                    Code::E0023,
                                    format!("`{}` is not a domain type", n.text),
                                    n.origin.clone(),
                                    "labels of domains only",
                                )
                                .with_label(self.m.types[t as usize].origin.clone(), "declared here"),
                            );
                        }
                    }
                    if b == r {
                        bad = true;
                        self.errors.push(Diagnostic::error(
                            Code::E0023,
                            "a build label must differ from its run label",
                            it.origin.clone(),
                            "same label twice",
                        ));
                    }
                    if let Some(prev) = self.m.transitions.iter().find(|t| t.build == b) {
                        bad = true;
                        self.errors.push(
                            Diagnostic::error(
                                Code::E0023,
                                format!("build label `{}` already has a run label", build.text),
                                build.origin.clone(),
                                "second transition",
                            )
                            .with_label(prev.origin.clone(), "first transition here"),
                        );
                    }
                    if !bad {
                        self.m.transitions.push(Transition { build: b, run: r, origin: it.origin.clone() });
                    }
                }
                Stmt::Conflict { name, members } => {
                    if !self.valid(name) {
                        continue;
                    }
                    if let Some(prev) = self.m.conflicts.iter().find(|c| c.name == name.text) {
                        let o = prev.origin.clone();
                        self.dup("conflict set", name, &o);
                        continue;
                    }
                    let Some(ms) = self.names_of_kind(members, Some(Kind::Domain)) else { continue };
                    let mut bad = false;
                    for &t in &ms {
                        let td = &self.m.types[t as usize];
                        if td.kind != Kind::Domain {
                            bad = true;
                            self.errors.push(
                                Diagnostic::error(
                                    Code::E0022,
                                    format!("conflict set `{}` contains `{}`, a {}", name.text, td.name, td.kind),
                                    it.origin.clone(),
                                    "only domain types can run",
                                )
                                .with_label(td.origin.clone(), "declared here"),
                            );
                        }
                    }
                    if ms.len() < 2 {
                        bad = true;
                        self.errors.push(
                            Diagnostic::error(
                                Code::E0022,
                                format!("conflict set `{}` has fewer than two types", name.text),
                                it.origin.clone(),
                                "nothing to conflict with",
                            )
                            .with_help("a conflict set lists the types that may never run at the same time"),
                        );
                    }
                    if !bad {
                        self.m.conflicts.push(ConflictSet {
                            name: name.text.clone(),
                            members: ms,
                            origin: it.origin.clone(),
                        });
                    }
                }
                Stmt::Separate { members } => {
                    let Some(ms) = self.names_of_kind(members, Some(Kind::Domain)) else { continue };
                    if let Some(&t) = ms.iter().find(|&&t| self.m.types[t as usize].kind != Kind::Domain) {
                        let td = &self.m.types[t as usize];
                        self.errors.push(
                            Diagnostic::error(
                                Code::E0012,
                                format!("`{}` is a {}: only domains carry a category", td.name, td.kind),
                                it.origin.clone(),
                                "separate domains only",
                            )
                            .with_label(td.origin.clone(), "declared here"),
                        );
                        continue;
                    }
                    self.m.separations.push(Separation { members: ms, origin: it.origin.clone() });
                }
                Stmt::NoFlow { from, to, excluding, across } => {
                    let (f, t, x) =
                        (self.names_of_kind(from, None), self.names_of_kind(to, None), self.names_of_kind(excluding, None));
                    let (Some(from), Some(to), Some(excluding)) = (f, t, x) else { continue };
                    self.m.noflows.push(NoFlow {
                        from,
                        to,
                        excluding,
                        across: *across,
                        origin: it.origin.clone(),
                        text: crate::print::stmt(&it.stmt),
                    });
                }
                Stmt::Expect { allow, src, tgt, cp } => {
                    let cpr = self.class_perms(cp);
                    let kind_of_target = cpr.map(|(c, _)| c.target_kind());
                    let (subjects, tset) = (self.names_of_kind(src, Some(Kind::Domain)), self.target(tgt, kind_of_target));
                    let (Some(subjects), Some(tset), Some((c, bits))) = (subjects, tset, cpr) else { continue };
                    if !self.check_kinds(tgt, &tset, &subjects, c) {
                        continue;
                    }
                    let pairs = subjects
                        .iter()
                        .flat_map(|&s| Self::targets(s, &subjects, &tset).into_iter().map(move |t| (s, t)))
                        .collect();
                    self.m.expects.push(Expect {
                        allow: *allow,
                        pairs,
                        class: c,
                        perms: bits,
                        origin: it.origin.clone(),
                        text: crate::print::stmt(&it.stmt),
                    });
                }
                _ => {}
            }
        }
    }

    /// Applies the `separate` statements: what a rule grants between two members of one set
    /// holds only between domains of one category.
    fn separate(&mut self) {
        let n = self.m.types.len();
        for sep in &self.m.separations {
            let mut member = vec![false; n];
            for &t in &sep.members {
                member[t as usize] = true;
            }
            for (&(s, t, _), e) in &mut self.m.av {
                if member[s as usize] && member[t as usize] {
                    e.same = e.allow;
                }
            }
        }
    }

    fn single(&mut self, n: &Name) -> Option<u32> {
        match self.m.type_index.get(&n.text) {
            Some(&t) => {
                self.m.mentioned[t as usize] = true;
                Some(t)
            }
            None => {
                let mut d = Diagnostic::error(
                    Code::E0002,
                    format!("unknown type `{}`", n.text),
                    n.origin.clone(),
                    "not a declared type",
                );
                if self.m.attr_index.contains_key(&n.text) {
                    d = d.with_help("transitions take single types, not attributes");
                } else if let Some(s) = suggest(&n.text, self.m.types.iter().map(|t| t.name.as_str())) {
                    d = d.with_help(format!("did you mean `{s}`?"));
                }
                self.errors.push(d);
                None
            }
        }
    }
}

enum TargetSet {
    Types(Vec<u32>),
    SelfT,
    Other,
}

fn join_cp(cp: &ClassPerms) -> Origin {
    let end = match &cp.perms {
        Perms::All(o) => o.span.end,
        Perms::List(l) => l.last().map_or(cp.class.origin.span.end, |n| n.origin.span.end),
    };
    Origin { span: cp.class.origin.span.start..end, chain: cp.class.origin.chain.clone() }
}
