//! Diagnostics: rustc-style errors and warnings with codes, spans, notes and hints.

use std::ops::Range;
use std::rc::Rc;

use codespan_reporting::diagnostic::{Diagnostic as CsDiag, Label};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::{self, Config};
use serde_json::{Value, json};

/// A byte range in the source file.
pub type Span = Range<usize>;

/// One step of a template expansion: the template's name and where it was used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Template name.
    pub template: String,
    /// The `use` statement.
    pub use_span: Span,
}

/// Where a piece of policy came from: its span plus the template uses that produced it
/// (innermost first). Empty chain = written directly in the file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    /// The span (inside a template body if the chain is non-empty).
    pub span: Span,
    /// Template expansion chain, innermost first.
    pub chain: Rc<Vec<Frame>>,
}

impl Origin {
    /// A span written directly in the file.
    #[must_use]
    pub fn plain(span: Span) -> Origin {
        // One shared empty chain: `Rc::default()` would allocate for every name in the file.
        thread_local!(static DIRECT: Rc<Vec<Frame>> = Rc::default());
        Origin { span, chain: DIRECT.with(Rc::clone) }
    }
}

/// Error or warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Fails the build (exit 1).
    Error,
    /// Reported; does not fail the build.
    Warning,
}

/// Stable diagnostic codes; `wardenpol` documents each in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum Code {
    /// Syntax error.
    E0001,
    /// Unknown type or attribute.
    E0002,
    /// Unknown class.
    E0003,
    /// Unknown permission.
    E0004,
    /// Unknown kind.
    E0005,
    /// Unknown role.
    E0006,
    /// Unknown template, wrong arity or runaway expansion.
    E0007,
    /// Duplicate definition.
    E0010,
    /// Class does not apply to the target's kind.
    E0011,
    /// Subject is not a domain.
    E0012,
    /// Misused `self`/`other`.
    E0013,
    /// neverallow violated.
    E0020,
    /// noflow assertion failed.
    E0021,
    /// Incoherent Chinese Wall conflict set.
    E0022,
    /// Bad build -> run transition.
    E0023,
    /// Not exactly one type of kind `hypervisor`.
    E0024,
    /// Expectation failed (`wardenpol test`).
    E0030,
    /// The compiled binary fails the engine's loader (a compiler bug: please report it).
    E0090,
    /// Unused type.
    W0001,
    /// Empty attribute.
    W0002,
    /// Rule shadowed by broader rules.
    W0003,
    /// Dead rule between members of a conflict set.
    W0004,
    /// Builder keeps access to a run label.
    W0005,
    /// A run label is walled off but its build label is not.
    W0006,
}

impl Code {
    /// The code as printed, e.g. `E0002`.
    #[must_use]
    pub fn as_str(self) -> String {
        format!("{self:?}")
    }
}

/// A label pointing into the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// Where.
    pub origin: Origin,
    /// What to say there.
    pub message: String,
}

/// One diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Stable code.
    pub code: Code,
    /// One-line message.
    pub message: String,
    /// The primary location.
    pub primary: Mark,
    /// Further locations (e.g. the rules behind a neverallow violation, path hops).
    pub secondary: Vec<Mark>,
    /// Free-form notes.
    pub notes: Vec<String>,
    /// A hint on how to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A new error.
    #[must_use]
    pub fn error(code: Code, message: impl Into<String>, at: Origin, label: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            primary: Mark { origin: at, message: label.into() },
            secondary: Vec::new(),
            notes: Vec::new(),
            help: None,
        }
    }

    /// A new warning.
    #[must_use]
    pub fn warning(code: Code, message: impl Into<String>, at: Origin, label: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, message, at, label) }
    }

    /// Adds a secondary label.
    #[must_use]
    pub fn with_label(mut self, at: Origin, message: impl Into<String>) -> Diagnostic {
        self.secondary.push(Mark { origin: at, message: message.into() });
        self
    }

    /// Adds a note.
    #[must_use]
    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    /// Sets the hint.
    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Whether this is an error.
    #[must_use]
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Line and column (both 1-based, columns in characters) of a byte offset.
#[must_use]
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..floor_char_boundary(src, offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// `file:line:col` of an origin.
#[must_use]
pub fn location(file: &str, src: &str, o: &Origin) -> String {
    let (l, c) = line_col(src, o.span.start);
    format!("{file}:{l}:{c}")
}

/// `file:line:col`, followed by the template uses that produced the origin, if any.
#[must_use]
pub fn location_chain(file: &str, src: &str, o: &Origin) -> String {
    let mut s = location(file, src, o);
    for f in o.chain.iter() {
        let (l, c) = line_col(src, f.use_span.start);
        s.push_str(&format!(" (in template `{}` used at {file}:{l}:{c})", f.template));
    }
    s
}

fn clamp(src: &str, s: &Span) -> Span {
    let a = floor_char_boundary(src, s.start.min(src.len()));
    let b = floor_char_boundary(src, s.end.min(src.len())).max(a);
    a..b
}

/// Renders diagnostics as rustc-style text (no colour), each followed by a blank line.
#[must_use]
pub fn render(file: &str, src: &str, diags: &[Diagnostic]) -> String {
    let files = SimpleFile::new(file, src);
    let config = Config::default();
    let mut out = String::new();
    for d in diags {
        let sev = match d.severity {
            Severity::Error => CsDiag::error(),
            Severity::Warning => CsDiag::warning(),
        };
        let mut labels = vec![Label::primary((), clamp(src, &d.primary.origin.span)).with_message(&d.primary.message)];
        let mut notes = Vec::new();
        push_chain(src, &d.primary.origin, &mut labels);
        for m in &d.secondary {
            labels.push(Label::secondary((), clamp(src, &m.origin.span)).with_message(&m.message));
            push_chain(src, &m.origin, &mut labels);
        }
        notes.extend(d.notes.iter().cloned());
        if let Some(h) = &d.help {
            notes.push(format!("help: {h}"));
        }
        let cs = sev.with_code(d.code.as_str()).with_message(&d.message).with_labels(labels).with_notes(notes);
        let mut buf = codespan_reporting::term::termcolor::NoColor::new(Vec::new());
        // Writing into a Vec cannot fail; a rendering error would only drop this one message.
        if term::emit_to_write_style(&mut buf, &config, &files, &cs).is_ok() {
            out.push_str(&String::from_utf8_lossy(&buf.into_inner()));
        }
    }
    out
}

fn push_chain(src: &str, o: &Origin, labels: &mut Vec<Label<()>>) {
    for f in o.chain.iter() {
        labels.push(
            Label::secondary((), clamp(src, &f.use_span))
                .with_message(format!("in this use of template `{}`", f.template)),
        );
    }
}

/// One diagnostic as JSON.
#[must_use]
pub fn to_json(file: &str, src: &str, d: &Diagnostic) -> Value {
    let mark = |m: &Mark| {
        let (line, col) = line_col(src, m.origin.span.start);
        json!({
            "file": file, "line": line, "column": col,
            "start": m.origin.span.start, "end": m.origin.span.end,
            "message": m.message,
            "expansion": m.origin.chain.iter().map(|f| {
                let (l, c) = line_col(src, f.use_span.start);
                json!({"template": f.template, "line": l, "column": c})
            }).collect::<Vec<_>>(),
        })
    };
    json!({
        "severity": match d.severity { Severity::Error => "error", Severity::Warning => "warning" },
        "code": d.code.as_str(),
        "message": d.message,
        "primary": mark(&d.primary),
        "secondary": d.secondary.iter().map(mark).collect::<Vec<_>>(),
        "notes": d.notes,
        "help": d.help,
    })
}

/// "did you mean" candidate: the closest name within a small edit distance.
#[must_use]
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = strsim::damerau_levenshtein(name, c);
        let limit = (name.len().max(c.len()) / 3).max(1);
        if d <= limit && best.is_none_or(|(bd, bc)| d < bd || (d == bd && c < bc)) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}
