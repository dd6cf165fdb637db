//! Warden policy compiler: `.wpol` source -> checked, expanded model -> binary for the engine.
//!
//! Pipeline: [`syntax`] (lex, parse, expand templates) -> [`model`] (resolve names, expand
//! attributes, `self`/`other` and roles, keeping the rule behind every permission) -> [`check`]
//! (neverallow, `assert noflow`, lints) -> [`Compiled::to_binary`] (the format of
//! [`warden_policy::format`]). Analyses for `wardenpol` live in [`flow`] and [`query`].
//!
//! **Invariant:** no input makes the compiler panic; `fuzz_compile` is the fuzz entry point.
#![forbid(unsafe_code)]

pub mod check;
pub mod diag;
mod flask;
pub mod flow;
pub mod model;
mod print;
pub mod query;
mod syntax;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use warden_policy::encode::{Image, encode};

pub use diag::{Code, Diagnostic, Severity};
pub use model::Model;

/// A policy that compiled: no errors, maybe warnings.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The expanded policy.
    pub model: Model,
    /// The information-flow graph.
    pub graph: flow::Graph,
    /// Lint warnings.
    pub warnings: Vec<Diagnostic>,
    /// SHA-256 of the source text.
    pub source_hash: [u8; 32],
    /// The encoded binary, once asked for (compiling already encodes it to run the loader).
    binary: std::cell::OnceCell<Vec<u8>>,
}

/// Options for [`compile_with`].
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Run the lints (they cost a pass over the policy).
    pub lints: bool,
    /// List every violation of a neverallow, not only the first.
    pub verbose: bool,
}

/// Compiles source text with lints on.
///
/// # Errors
/// Every error found (syntax errors stop at the first; resolution errors are collected).
pub fn compile(src: &str) -> Result<Compiled, Vec<Diagnostic>> {
    compile_with(src, Options { lints: true, verbose: false })
}

/// Compiles source text.
///
/// # Errors
/// See [`compile`].
pub fn compile_with(src: &str, opts: Options) -> Result<Compiled, Vec<Diagnostic>> {
    compile_defined(src, opts, &[])
}

/// Compiles source text with booleans set from outside (`wardenpol -D name=true`): the
/// `if` branches are chosen here, so the binary holds one fixed policy.
///
/// # Errors
/// See [`compile`]; also a define that names no `bool` of the policy.
pub fn compile_defined(src: &str, opts: Options, defines: &[(String, bool)]) -> Result<Compiled, Vec<Diagnostic>> {
    let (c, errors) = analyse(src, opts, defines)?;
    if !errors.is_empty() {
        return Err(errors);
    }
    // One validation: what the compiler accepts is what the hypervisor loads, because the last
    // step of every compile is the hypervisor's own loader on the bytes it would receive.
    if let Err(e) = warden_policy::Policy::load(c.binary()) {
        return Err(vec![
            Diagnostic::error(
                Code::E0090,
                format!("the compiled policy fails the hypervisor's loader: {e}"),
                diag::Origin::plain(0..0),
                "this policy",
            )
            .with_note("this is a compiler bug: every check the loader makes should be a compile error first"),
        ]);
    }
    Ok(c)
}

/// Resolves and expands a policy even if its whole-policy checks fail (for `wardenpol diff`,
/// which compares a policy with the change that broke it): the expanded policy and the check
/// errors (hypervisor label, neverallow, noflow). Never a binary.
///
/// # Errors
/// Syntax and resolution errors: there is no expanded policy to return.
pub fn analyse(src: &str, opts: Options, defines: &[(String, bool)]) -> Result<(Compiled, Vec<Diagnostic>), Vec<Diagnostic>> {
    let items = syntax::parse_expanded(src, defines).map_err(|d| vec![d])?;
    let model = model::build(&items)?;
    let graph = flow::Graph::new(&model);
    let mut errors = Vec::new();
    check::hypervisor_label(&model, &mut errors);
    check::neverallow(&model, opts.verbose, &mut errors);
    check::noflow(&model, &graph, &mut errors);
    let mut warnings = Vec::new();
    if opts.lints && errors.is_empty() {
        check::lints(&model, &mut warnings);
    }
    // The binary records what it was built from: the source and, if any, the `-D` values
    // (they choose `if` branches, so they are part of the policy's identity).
    let mut h = Sha256::new();
    h.update(src.as_bytes());
    for (name, value) in defines {
        h.update(format!("\0-D {name}={value}").as_bytes());
    }
    let binary = std::cell::OnceCell::new();
    Ok((Compiled { model, graph, warnings, source_hash: h.finalize().into(), binary }, errors))
}

/// Canonically formats source text (comments kept).
///
/// # Errors
/// A syntax error.
pub fn format_source(src: &str) -> Result<String, Box<Diagnostic>> {
    let (items, comments) = syntax::parse(src).map_err(Box::new)?;
    Ok(print::file(src, &items, &comments))
}

impl Compiled {
    /// The engine's view of this policy.
    #[must_use]
    pub fn image(&self) -> Image {
        let m = &self.model;
        Image {
            source_hash: self.source_hash,
            types: m.types.iter().map(|t| (t.name.clone(), t.kind)).collect(),
            av: m
                .av
                .iter()
                .filter(|(_, e)| e.allow | e.auditallow | e.dontaudit != 0)
                .map(|(&(subject, target, class), e)| warden_policy::encode::Av {
                    subject,
                    target,
                    class,
                    allow: e.allow & !e.same,
                    allow_same: e.allow & e.same,
                    auditallow: e.auditallow,
                    dontaudit: e.dontaudit,
                })
                .collect(),
            transitions: m.transitions.iter().map(|t| (t.build, t.run)).collect(),
            conflict_sets: m.conflicts.iter().map(|c| (c.name.clone(), c.members.clone())).collect(),
        }
    }

    /// The binary policy.
    #[must_use]
    pub fn to_binary(&self) -> Vec<u8> {
        self.binary().to_vec()
    }

    /// The binary policy, encoded once.
    #[must_use]
    pub fn binary(&self) -> &[u8] {
        self.binary.get_or_init(|| encode(&self.image()))
    }

    /// JSON dump of the expanded policy (what `wardenpol compile --dump` writes).
    #[must_use]
    pub fn dump_json(&self) -> Value {
        let m = &self.model;
        let hex = |h: &[u8]| h.iter().map(|b| format!("{b:02x}")).collect::<String>();
        json!({
            "schema_hash": hex(&warden_policy::schema::hash()),
            "source_hash": hex(&self.source_hash),
            "types": m.types.iter().map(|t| json!({
                "name": t.name, "kind": t.kind.name(),
                "attributes": t.attrs.iter().map(|&a| m.attrs[a].name.as_str()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "attributes": m.attrs.iter().map(|a| json!({
                "name": a.name, "members": a.members.iter().map(|&t| m.name(t)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "roles": m.roles.iter().map(|r| json!({
                "name": r.name,
                "grants": r.body.iter().map(|(c, bits, _)| json!({"class": c.name(), "perms": model::perm_names(*c, *bits)})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "access_vectors": m.av.iter().map(|(&(s, t, c), e)| json!({
                "source": m.name(s), "target": m.name(t), "class": c.name(),
                "allow": model::perm_names(c, e.allow),
                "auditallow": model::perm_names(c, e.auditallow),
                "dontaudit": model::perm_names(c, e.dontaudit),
            })).collect::<Vec<_>>(),
            "transitions": m.transitions.iter().map(|t| json!({"build": m.name(t.build), "run": m.name(t.run)})).collect::<Vec<_>>(),
            "conflict_sets": m.conflicts.iter().map(|c| json!({
                "name": c.name, "members": c.members.iter().map(|&t| m.name(t)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }
}

/// Fuzz entry point for the whole front end: any bytes must give a policy or diagnostics,
/// never a panic, and a policy that compiles must load in the engine.
pub fn fuzz_compile(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let _ = format_source(src);
    match compile(src) {
        Ok(c) => {
            let bin = c.to_binary();
            // The compiler's own output must always pass the loader: a failure is a bug.
            assert!(warden_policy::Policy::load(&bin).is_ok(), "compiled policy does not load");
            let _ = diag::render("fuzz.wpol", src, &c.warnings);
        }
        Err(ds) => {
            let _ = diag::render("fuzz.wpol", src, &ds);
        }
    }
}
