//! `wardenpol`: the Warden policy authoring tool (compile, check, query, flow, diff, test, fmt, graph).
//!
//! Exit codes (for scripts; documented in `policy/README.md`): 0 success; 1 policy errors,
//! failed assertions or expectations, `fmt --check` finding unformatted input, and the negative
//! answers: `decide` denying any requested permission, `flow` finding a flow (0 = no flow: the
//! isolation holds, as for `assert noflow`), `query` matching nothing; 2 usage or I/O errors.
#![forbid(unsafe_code)]

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};
use warden_policy_compiler::check::{expectation_diag, expectations};
use warden_policy_compiler::diag::{render, to_json};
use warden_policy_compiler::query::{self, Filter, QueryError};
use warden_policy_compiler::{Compiled, Diagnostic, Options, compile_defined, format_source};

/// The `-D` values and `--verbose` of this run, set once in `main` before any policy is compiled.
static SETTINGS: std::sync::OnceLock<(Vec<(String, bool)>, bool)> = std::sync::OnceLock::new();

/// Compiles with the booleans given by `-D`.
pub(crate) fn compile(src: &str) -> Result<Compiled, Vec<Diagnostic>> {
    let (defines, verbose) = SETTINGS.get().map_or((&[][..], false), |(d, v)| (d.as_slice(), *v));
    compile_defined(src, Options { lints: true, verbose }, defines)
}

fn parse_define(s: &str) -> Result<(String, bool), String> {
    let (name, value) = s.split_once('=').ok_or_else(|| format!("`{s}`: expected NAME=true or NAME=false"))?;
    let value = match value {
        "true" | "1" => true,
        "false" | "0" => false,
        v => return Err(format!("`{v}`: a boolean is true, false, 1 or 0")),
    };
    Ok((name.to_string(), value))
}

mod audit;

#[derive(Parser, Debug)]
#[command(name = "wardenpol", version, about = "Warden MAC policy tool")]
struct Cli {
    /// Output format of every command.
    #[arg(long, value_enum, default_value_t = Format::Text, global = true)]
    format: Format,
    /// Set a policy boolean for this run: `-D name=true` (or `false`, `1`, `0`), overriding
    /// its `bool name = ...;` declaration (repeatable).
    #[arg(short = 'D', long = "define", value_name = "NAME=VALUE", value_parser = parse_define, global = true)]
    defines: Vec<(String, bool)>,
    /// List every violation of each neverallow, not only the first.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Compile source to a binary policy (and optionally a JSON dump of the expanded policy).
    Compile {
        input: PathBuf,
        /// Binary output.
        #[arg(short, long)]
        output: PathBuf,
        /// Also write the expanded policy as JSON here.
        #[arg(long)]
        dump: Option<PathBuf>,
    },
    /// Compile and run every check: neverallow, assertions, Chinese Wall coherence, lints.
    Check { input: PathBuf },
    /// Who can do what to whom; `--explain` shows the rule, attribute, role and span behind
    /// every permission.
    Query {
        input: PathBuf,
        #[arg(short, long)]
        source: Option<String>,
        #[arg(short, long)]
        target: Option<String>,
        #[arg(short, long)]
        class: Option<String>,
        #[arg(short, long)]
        perm: Option<String>,
        #[arg(long)]
        explain: bool,
    },
    /// Can information flow from FROM to TO through any chain of permissions?
    Flow {
        input: PathBuf,
        from: String,
        to: String,
        /// Trusted types paths may not pass through (repeatable).
        #[arg(long)]
        exclude: Vec<String>,
        /// Only flows into another category count (two domains of one type included), as in
        /// `assert noflow ... across categories`.
        #[arg(long)]
        across_categories: bool,
    },
    /// Semantic difference of permissions and of reachability. Policies whose checks fail
    /// (neverallow, noflow) are still compared, and the failures reported (exit 1).
    Diff {
        old: PathBuf,
        new: PathBuf,
        /// Trusted hubs: flows are compared with paths through them cut (repeatable).
        #[arg(long)]
        exclude: Vec<String>,
    },
    /// Run the `expect` lines of a policy.
    Test { input: PathBuf },
    /// Canonical formatting (to stdout unless --write or --check).
    Fmt {
        input: PathBuf,
        /// Rewrite the file in place.
        #[arg(long, conflicts_with = "check")]
        write: bool,
        /// Exit 1 if the file is not canonically formatted.
        #[arg(long)]
        check: bool,
    },
    /// DOT graph of types and flows; `-o x.svg` renders SVG with Graphviz.
    Graph {
        input: PathBuf,
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Only what information from these types reaches (repeatable).
        #[arg(long)]
        from: Vec<String>,
        /// Only what reaches these types (repeatable; with --from: the paths between).
        #[arg(long)]
        to: Vec<String>,
        /// Only types of these kinds (repeatable).
        #[arg(long)]
        kind: Vec<String>,
        /// Draw each attribute's members in a box.
        #[arg(long)]
        cluster_by_attribute: bool,
    },
    /// Decode audit records (an audit-read dump, raw records, or `audit-hex` console lines)
    /// into `avc:` lines or JSON, with names from the policy given.
    Audit {
        input: PathBuf,
        /// The policy (source `.wpol` or binary) whose type names to print.
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Ask a compiled binary policy, through the engine the hypervisor uses.
    Decide {
        binary: PathBuf,
        subject: String,
        target: String,
        class: String,
        /// Permission names (comma-separated) or `*`.
        perms: String,
    },
}

/// Failures that end the tool with exit code 2.
#[derive(Debug, thiserror::Error)]
enum ToolError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Query(#[from] QueryError),
    #[error("{path}: not a loadable policy: {err}{}", source_hint(path, err))]
    Load { path: PathBuf, err: warden_policy::LoadError },
    #[error("graphviz `dot` failed or is not installed: {0}")]
    Graphviz(String),
}

/// A policy source given where a compiled binary is expected: say how to get the binary.
fn source_hint(path: &Path, err: &warden_policy::LoadError) -> String {
    if *err == warden_policy::LoadError::BadMagic && path.extension().is_some_and(|e| e == "wpol") {
        format!(" (this is policy source: compile it first, `wardenpol compile {} -o POLICY.bin`)", path.display())
    } else {
        String::new()
    }
}

/// What a command produced: exit status 0 or 1.
enum Outcome {
    Ok,
    PolicyFailed,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = SETTINGS.set((cli.defines.clone(), cli.verbose));
    match run(&cli) {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::PolicyFailed) => ExitCode::from(1),
        Err(e) => {
            if cli.format == Format::Json {
                println!("{}", json!({"error": e.to_string()}));
            } else {
                eprintln!("error: {e}");
            }
            ExitCode::from(2)
        }
    }
}

struct Source {
    name: String,
    text: String,
}

fn read(path: &Path) -> Result<Source, ToolError> {
    let text = fs::read_to_string(path).map_err(|source| ToolError::Read { path: path.to_path_buf(), source })?;
    Ok(Source { name: path.display().to_string(), text })
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Prints diagnostics in the chosen format (text to `to_stderr` or stdout).
fn report(fmt: Format, src: &Source, diags: &[Diagnostic], to_stderr: bool) {
    match fmt {
        Format::Text => {
            let text = render(&src.name, &src.text, diags);
            if to_stderr { eprint!("{text}") } else { print!("{text}") }
        }
        Format::Json => print_json(&json!({
            "file": src.name,
            "ok": !diags.iter().any(Diagnostic::is_error),
            "diagnostics": diags.iter().map(|d| to_json(&src.name, &src.text, d)).collect::<Vec<_>>(),
        })),
    }
}

/// Resolves and expands (whole-policy check errors returned, not fatal), or reports the
/// syntax/resolution errors and says so.
fn analysed(fmt: Format, src: &Source) -> Option<(Compiled, Vec<Diagnostic>)> {
    let (defines, verbose) = SETTINGS.get().map_or((&[][..], false), |(d, v)| (d.as_slice(), *v));
    match warden_policy_compiler::analyse(&src.text, Options { lints: false, verbose }, defines) {
        Ok(r) => Some(r),
        Err(errs) => {
            report(fmt, src, &errs, fmt == Format::Text);
            None
        }
    }
}

/// Compiles, or reports the errors and says so.
fn compiled(fmt: Format, src: &Source) -> Option<Compiled> {
    match compile(&src.text) {
        Ok(c) => Some(c),
        Err(errs) => {
            report(fmt, src, &errs, fmt == Format::Text);
            if fmt == Format::Text {
                let n = errs.iter().filter(|d| d.is_error()).count();
                eprintln!("error: {} failed with {n} error(s)", src.name);
            }
            None
        }
    }
}

fn write_file(path: &Path, data: &[u8]) -> Result<(), ToolError> {
    fs::write(path, data).map_err(|source| ToolError::Write { path: path.to_path_buf(), source })
}

fn run(cli: &Cli) -> Result<Outcome, ToolError> {
    let fmt = cli.format;
    match &cli.cmd {
        Cmd::Compile { input, output, dump } => {
            let src = read(input)?;
            let Some(c) = compiled(fmt, &src) else { return Ok(Outcome::PolicyFailed) };
            let bin = c.to_binary();
            write_file(output, &bin)?;
            if let Some(d) = dump {
                let text = serde_json::to_string_pretty(&c.dump_json()).unwrap_or_default();
                write_file(d, text.as_bytes())?;
            }
            let p = warden_policy::Policy::load(&bin).map_err(|err| ToolError::Load { path: output.clone(), err })?;
            let hash: String = p.hash().iter().map(|b| format!("{b:02x}")).collect();
            match fmt {
                Format::Text => {
                    eprint!("{}", render(&src.name, &src.text, &c.warnings));
                    println!("{}: {} types, {} access vectors, {} bytes, sha256 {hash}", output.display(), c.model.types.len(), c.model.av.len(), bin.len());
                }
                Format::Json => print_json(&json!({
                    "output": output.display().to_string(), "bytes": bin.len(), "sha256": hash,
                    "types": c.model.types.len(), "access_vectors": c.model.av.len(),
                    "warnings": c.warnings.iter().map(|d| to_json(&src.name, &src.text, d)).collect::<Vec<_>>(),
                })),
            }
            Ok(Outcome::Ok)
        }
        Cmd::Check { input } => {
            let src = read(input)?;
            match compile(&src.text) {
                Ok(c) => {
                    report(fmt, &src, &c.warnings, false);
                    if fmt == Format::Text {
                        println!("{}: ok ({} types, {} warning(s))", src.name, c.model.types.len(), c.warnings.len());
                    }
                    Ok(Outcome::Ok)
                }
                Err(errs) => {
                    report(fmt, &src, &errs, false);
                    if fmt == Format::Text {
                        println!("{}: {} error(s)", src.name, errs.iter().filter(|d| d.is_error()).count());
                    }
                    Ok(Outcome::PolicyFailed)
                }
            }
        }
        Cmd::Query { input, source, target, class, perm, explain } => {
            let src = read(input)?;
            let Some(c) = compiled(fmt, &src) else { return Ok(Outcome::PolicyFailed) };
            let f = Filter { source: source.clone(), target: target.clone(), class: class.clone(), perm: perm.clone() };
            let rows = query::query(&c, &f)?;
            match fmt {
                Format::Text if rows.is_empty() => println!("no permission matches {}", f.describe()),
                Format::Text => print!("{}", query::rows_text(&c, &src.name, &src.text, &rows, *explain)),
                Format::Json => print_json(&query::rows_json(&c, &src.name, &src.text, &rows)),
            }
            // Like grep: nothing found is exit 1.
            Ok(if rows.is_empty() { Outcome::PolicyFailed } else { Outcome::Ok })
        }
        Cmd::Flow { input, from, to, exclude, across_categories } => {
            let src = read(input)?;
            let Some(c) = compiled(fmt, &src) else { return Ok(Outcome::PolicyFailed) };
            let m = &c.model;
            let f = query::resolve(m, from)?;
            let t = query::resolve(m, to)?;
            let mut x = Vec::new();
            for e in exclude {
                x.extend(query::resolve(m, e)?);
            }
            for (name, ids) in exclude.iter().zip(exclude.iter().map(|e| query::resolve(m, e))) {
                // Excluding an endpoint would silently do nothing: paths may start and end there.
                if ids.as_ref().is_ok_and(|ids| ids.iter().any(|i| f.contains(i) || t.contains(i))) {
                    eprintln!("warning: `--exclude {name}` names a source or destination; paths still start and end there");
                }
            }
            let path = if *across_categories {
                warden_policy_compiler::flow::cross_category_path(m, &f, &t, &x)
            } else {
                c.graph.shortest_path(m, &f, &t, &x)
            };
            match (fmt, &path) {
                (Format::Text, Some(p)) => {
                    println!("flow: {from} -> {to}: YES, shortest path has {} hop(s):", p.len());
                    print!("{}", query::path_text(&c, &src.name, &src.text, p));
                }
                (Format::Text, None) => {
                    println!("flow: {from} -> {to}: NO: no chain of permissions carries information from {from} to {to}");
                    println!("  (exhaustive search over {} types and {} flow edges)", m.types.len(), c.graph.edge_count());
                }
                (Format::Json, p) => print_json(&json!({
                    "from": from, "to": to, "exclude": exclude, "flow": p.is_some(),
                    "path": p.as_ref().map(|p| query::path_json(&c, &src.name, &src.text, p)),
                })),
            }
            // Like `assert noflow`: a flow is the failing answer.
            Ok(if path.is_some() { Outcome::PolicyFailed } else { Outcome::Ok })
        }
        Cmd::Diff { old, new, exclude } => {
            let (so, sn) = (read(old)?, read(new)?);
            // A policy that fails its checks is still compared: the change that broke it is
            // what the user wants to see.
            let (Some((co, eo)), Some((cn, en))) = (analysed(fmt, &so), analysed(fmt, &sn)) else {
                return Ok(Outcome::PolicyFailed);
            };
            for n in exclude {
                if co.model.resolve_name(n).is_none() && cn.model.resolve_name(n).is_none() {
                    query::resolve(&cn.model, n)?;
                }
            }
            let d = query::diff(&co, &cn, exclude);
            match fmt {
                Format::Text => {
                    print!("{}", query::diff_text(&d));
                    for (src, errs) in [(&so, &eo), (&sn, &en)] {
                        if !errs.is_empty() {
                            println!("note: {} fails its checks ({} error(s)):", src.name, errs.len());
                            print!("{}", render(&src.name, &src.text, errs));
                        }
                    }
                }
                Format::Json => {
                    let mut v = query::diff_json(&d);
                    v["old_errors"] = json!(eo.iter().map(|e| to_json(&so.name, &so.text, e)).collect::<Vec<_>>());
                    v["new_errors"] = json!(en.iter().map(|e| to_json(&sn.name, &sn.text, e)).collect::<Vec<_>>());
                    print_json(&v);
                }
            }
            Ok(if eo.is_empty() && en.is_empty() { Outcome::Ok } else { Outcome::PolicyFailed })
        }
        Cmd::Test { input } => {
            let src = read(input)?;
            let Some(c) = compiled(fmt, &src) else { return Ok(Outcome::PolicyFailed) };
            let results = expectations(&c.model);
            let mut failed = Vec::new();
            for (r, e) in results.iter().zip(&c.model.expects) {
                if let Some(d) = expectation_diag(&c.model, r, e.class, e.allow) {
                    failed.push(d);
                }
            }
            match fmt {
                Format::Text => {
                    for r in &results {
                        let loc = warden_policy_compiler::diag::location_chain(&src.name, &src.text, &r.origin);
                        println!("{} {loc} {}", if r.ok { "ok  " } else { "FAIL" }, r.text);
                    }
                    print!("{}", render(&src.name, &src.text, &failed));
                    println!("{} expectation(s): {} passed, {} failed", results.len(), results.len() - failed.len(), failed.len());
                }
                Format::Json => print_json(&json!({
                    "passed": results.len() - failed.len(), "failed": failed.len(),
                    "results": results.iter().map(|r| json!({"expect": r.text, "ok": r.ok})).collect::<Vec<_>>(),
                    "diagnostics": failed.iter().map(|d| to_json(&src.name, &src.text, d)).collect::<Vec<_>>(),
                })),
            }
            Ok(if failed.is_empty() { Outcome::Ok } else { Outcome::PolicyFailed })
        }
        Cmd::Fmt { input, write, check } => {
            let src = read(input)?;
            let out = match format_source(&src.text) {
                Ok(o) => o,
                Err(d) => {
                    report(fmt, &src, &[*d], fmt == Format::Text);
                    return Ok(Outcome::PolicyFailed);
                }
            };
            let same = out == src.text;
            if *write {
                if !same {
                    write_file(input, out.as_bytes())?;
                }
            } else if *check {
                if fmt == Format::Json {
                    print_json(&json!({"file": src.name, "formatted": same}));
                } else if !same {
                    println!("{}: not canonically formatted (run `wardenpol fmt --write`)", src.name);
                }
                return Ok(if same { Outcome::Ok } else { Outcome::PolicyFailed });
            } else if fmt == Format::Json {
                print_json(&json!({"file": src.name, "formatted": out}));
            } else {
                print!("{out}");
            }
            Ok(Outcome::Ok)
        }
        Cmd::Graph { input, output, from, to, kind, cluster_by_attribute } => {
            let src = read(input)?;
            let Some(c) = compiled(fmt, &src) else { return Ok(Outcome::PolicyFailed) };
            let filter = query::GraphFilter {
                from: from.iter().map(|n| query::resolve(&c.model, n)).collect::<Result<Vec<_>, _>>()?.concat(),
                to: to.iter().map(|n| query::resolve(&c.model, n)).collect::<Result<Vec<_>, _>>()?.concat(),
                kinds: kind
                    .iter()
                    .map(|k| warden_policy::Kind::by_name(k).ok_or_else(|| QueryError::UnknownKind(k.clone())))
                    .collect::<Result<Vec<_>, _>>()?,
                cluster_by_attribute: *cluster_by_attribute,
            };
            let dot = query::dot_filtered(&c, &filter);
            match output {
                None => print!("{dot}"),
                Some(p) if p.extension().is_some_and(|e| e == "svg") => {
                    let svg = render_svg(&dot)?;
                    write_file(p, &svg)?;
                }
                Some(p) => write_file(p, dot.as_bytes())?,
            }
            Ok(Outcome::Ok)
        }
        Cmd::Decide { binary, subject, target, class, perms } => decide(fmt, binary, subject, target, class, perms),
        Cmd::Audit { input, policy } => audit::run(fmt, input, policy.as_deref()),
    }
}

fn render_svg(dot: &str) -> Result<Vec<u8>, ToolError> {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| ToolError::Graphviz(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(dot.as_bytes()).map_err(|e| ToolError::Graphviz(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| ToolError::Graphviz(e.to_string()))?;
    if !out.status.success() {
        return Err(ToolError::Graphviz(format!("exit status {}", out.status)));
    }
    Ok(out.stdout)
}

fn decide(fmt: Format, binary: &Path, subject: &str, target: &str, class: &str, perms: &str) -> Result<Outcome, ToolError> {
    use warden_policy::{Class, PermSet, Policy};
    let bytes = fs::read(binary).map_err(|source| ToolError::Read { path: binary.to_path_buf(), source })?;
    let p = Policy::load(&bytes).map_err(|err| ToolError::Load { path: binary.to_path_buf(), err })?;
    let ty = |n: &str| p.type_by_name(n).ok_or_else(|| QueryError::UnknownName(n.to_string(), None));
    let (s, t) = (ty(subject)?, ty(target)?);
    let c = Class::by_name(class).ok_or_else(|| QueryError::UnknownClass(class.to_string(), None))?;
    let mut set = PermSet::EMPTY;
    if perms == "*" {
        set = c.all();
    } else {
        for n in perms.split(',').filter(|n| !n.is_empty()) {
            set |= c.perm(n).ok_or_else(|| QueryError::UnknownPerm(c.name().to_string(), n.to_string()))?;
        }
    }
    let d = p.decide(s, t, c, set);
    let names = |ps: PermSet| c.info().perms.iter().filter(|pi| ps.contains(pi.set())).map(|pi| pi.name).collect::<Vec<_>>();
    match fmt {
        Format::Text => {
            for pi in c.info().perms.iter().filter(|pi| set.contains(pi.set())) {
                let verdict = if d.allowed.contains(pi.set()) { "allow" } else { "deny " };
                let audit = if d.audit.contains(pi.set()) { " (audited)" } else { "" };
                println!("{verdict} {subject} {target}: {class} {}{audit}", pi.name);
            }
        }
        Format::Json => print_json(&json!({"allowed": names(d.allowed), "audit": names(d.audit)})),
    }
    // allow 0 / deny 1: a script can write `wardenpol decide ... && start_guest`.
    Ok(if d.all_allowed(set) { Outcome::Ok } else { Outcome::PolicyFailed })
}
