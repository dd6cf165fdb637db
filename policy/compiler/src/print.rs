//! Canonical printing of statements (used by `fmt`, and to quote rules in explanations).

use crate::syntax::{ClassPerms, Comment, Item, Name, Perms, Stmt, Target, Tok, Token};

fn list(names: &[Name]) -> String {
    if names.len() == 1 {
        names[0].text.clone()
    } else {
        format!("{{ {} }}", names.iter().map(|n| n.text.as_str()).collect::<Vec<_>>().join(" "))
    }
}

fn comma(names: &[Name]) -> String {
    names.iter().map(|n| n.text.as_str()).collect::<Vec<_>>().join(", ")
}

fn target(t: &Target) -> String {
    match t {
        Target::Names(n) => list(n),
        Target::SelfT(_) => "self".into(),
        Target::Other(_) => "other".into(),
    }
}

fn cp(c: &ClassPerms) -> String {
    match &c.perms {
        Perms::All(_) => format!("{} *", c.class.text),
        Perms::List(l) => format!("{} {}", c.class.text, list(l)),
    }
}

/// One statement, canonically formatted (multi-line for roles and templates).
pub(crate) fn stmt(s: &Stmt) -> String {
    match s {
        Stmt::Attribute { name } => format!("attribute {};", name.text),
        Stmt::Type { name, kind, attrs } => {
            let mut s = format!("type {}: {}", name.text, kind.text);
            for a in attrs {
                s.push_str(", ");
                s.push_str(&a.text);
            }
            s.push(';');
            s
        }
        Stmt::Rule { kind, src, tgt, cp: c } => format!("{} {} {}: {};", kind.keyword(), list(src), target(tgt), cp(c)),
        Stmt::Expect { allow, src, tgt, cp: c } => {
            format!("expect {} {} {}: {};", if *allow { "allow" } else { "deny" }, list(src), target(tgt), cp(c))
        }
        Stmt::Role { name, body } => {
            let mut s = format!("role {} {{\n", name.text);
            for c in body {
                s.push_str(&format!("    {};\n", cp(c)));
            }
            s.push('}');
            s
        }
        Stmt::Grant { role, src, tgt } => format!("grant {} to {} over {};", role.text, list(src), target(tgt)),
        Stmt::Transition { build, run } => format!("transition {} -> {};", build.text, run.text),
        Stmt::Conflict { name, members } => format!(
            "conflict {} {{ {} }};",
            name.text,
            members.iter().map(|n| n.text.as_str()).collect::<Vec<_>>().join(" ")
        ),
        Stmt::NoFlow { from, to, excluding } => {
            let mut s = format!("assert noflow {} -> {}", list(from), list(to));
            if !excluding.is_empty() {
                s.push_str(&format!(" excluding {}", list(excluding)));
            }
            s.push(';');
            s
        }
        Stmt::Use { name, args } => format!("use {}({});", name.text, comma(args)),
        Stmt::Template { name, params, body } => {
            let mut s = format!("template {}({}) {{\n", name.text, comma(params));
            // The body is raw tokens: parse it to print it; if it does not parse on its own
            // (it only has to parse after substitution), print its tokens as they are.
            let mut toks = body.clone();
            toks.push(Token { tok: Tok::Eof, origin: Default::default() });
            match crate::syntax::parse_tokens(&toks) {
                Ok(items) => {
                    for it in items {
                        for line in stmt(&it.stmt).lines() {
                            s.push_str(&format!("    {line}\n"));
                        }
                    }
                }
                Err(_) => {
                    s.push_str("    ");
                    s.push_str(&body.iter().map(tok_text).collect::<Vec<_>>().join(" "));
                    s.push('\n');
                }
            }
            s.push('}');
            s
        }
    }
}

fn tok_text(t: &Token) -> String {
    match &t.tok {
        Tok::Ident(s) => s.clone(),
        Tok::Colon => ":".into(),
        Tok::Semi => ";".into(),
        Tok::Comma => ",".into(),
        Tok::LBrace => "{".into(),
        Tok::RBrace => "}".into(),
        Tok::LParen => "(".into(),
        Tok::RParen => ")".into(),
        Tok::Arrow => "->".into(),
        Tok::Star => "*".into(),
        Tok::Eof => String::new(),
    }
}

/// Formats a whole file: canonical statements, comments kept before the statement they precede
/// (or trailing on its line), at most one blank line between statements, blank lines kept
/// where the author put them.
pub(crate) fn file(src: &str, items: &[Item], comments: &[Comment]) -> String {
    let mut out = String::new();
    let mut ci = 0;
    let mut last_end = 0usize;
    let blank_between = |a: usize, b: usize| src.get(a..b).is_some_and(|g| g.matches('\n').count() >= 2);
    for it in items {
        let start = it.origin.span.start;
        while ci < comments.len() && comments[ci].span.start < start {
            let c = &comments[ci];
            if !out.is_empty() && blank_between(last_end, c.span.start) {
                out.push('\n');
            }
            out.push_str(&c.text);
            out.push('\n');
            last_end = c.span.end;
            ci += 1;
        }
        if !out.is_empty() && blank_between(last_end, start) {
            out.push('\n');
        }
        out.push_str(&stmt(&it.stmt));
        last_end = it.origin.span.end;
        // A comment on the same line as the end of the statement stays there.
        while ci < comments.len()
            && comments[ci].span.start >= last_end
            && src.get(last_end..comments[ci].span.start).is_some_and(|gap| !gap.contains('\n'))
        {
            out.push_str("  ");
            out.push_str(&comments[ci].text);
            last_end = comments[ci].span.end;
            ci += 1;
        }
        // Comments inside a statement (e.g. in a role body) move after it.
        while ci < comments.len() && comments[ci].span.start < it.origin.span.end {
            out.push('\n');
            out.push_str(&comments[ci].text);
            ci += 1;
        }
        out.push('\n');
    }
    while ci < comments.len() {
        if !out.is_empty() && blank_between(last_end, comments[ci].span.start) {
            out.push('\n');
        }
        out.push_str(&comments[ci].text);
        out.push('\n');
        last_end = comments[ci].span.end;
        ci += 1;
    }
    out
}
