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
        Stmt::Role { .. } | Stmt::Template { .. } | Stmt::If { .. } => {
            let (header, entries) = block(s).unwrap_or_default();
            let mut out = header;
            for (_, text) in entries {
                if text == ELSE {
                    out.push_str("} else {\n");
                    continue;
                }
                for line in text.lines() {
                    out.push_str(&format!("    {line}\n"));
                }
            }
            out.push('}');
            out
        }
        Stmt::Bool { name, value } => format!("bool {} = {};", name.text, value.text),
        Stmt::Grant { role, src, tgt } => format!("grant {} to {} over {};", role.text, list(src), target(tgt)),
        Stmt::Transition { build, run } => format!("transition {} -> {};", build.text, run.text),
        Stmt::Conflict { name, members } => format!(
            "conflict {} {{ {} }};",
            name.text,
            members.iter().map(|n| n.text.as_str()).collect::<Vec<_>>().join(" ")
        ),
        Stmt::Separate { members } => format!("separate {};", list(members)),
        Stmt::NoFlow { from, to, excluding, across } => {
            let mut s = format!("assert noflow {} -> {}", list(from), list(to));
            if *across {
                s.push_str(" across categories");
            }
            if !excluding.is_empty() {
                s.push_str(&format!(" excluding {}", list(excluding)));
            }
            s.push(';');
            s
        }
        Stmt::Use { name, args } => format!("use {}({});", name.text, comma(args)),
    }
}

/// A multi-line statement as its opening line and its body entries, each with the source
/// offset where it starts (so the formatter can put comments back between entries); `None`
/// for single-line statements. A template body that does not parse on its own (it only has to
/// parse after substitution) is one entry: its tokens as they are.
fn block(s: &Stmt) -> Option<(String, Vec<(usize, String)>)> {
    match s {
        Stmt::Role { name, body } => Some((
            format!("role {} {{\n", name.text),
            body.iter().map(|c| (c.class.origin.span.start, format!("{};", cp(c)))).collect(),
        )),
        Stmt::Template { name, params, body } => {
            let mut toks = body.clone();
            toks.push(Token { tok: Tok::Eof, origin: Default::default() });
            let entries = match crate::syntax::parse_tokens(&toks) {
                Ok(items) => items.iter().map(|it| (it.origin.span.start, stmt(&it.stmt))).collect(),
                Err(_) => {
                    let start = body.first().map_or(0, |t| t.origin.span.start);
                    vec![(start, body.iter().map(tok_text).collect::<Vec<_>>().join(" "))]
                }
            };
            Some((format!("template {}({}) {{\n", name.text, comma(params)), entries))
        }
        Stmt::If { negated, cond, then, otherwise } => {
            let mut entries: Vec<(usize, String)> = then.iter().map(|it| (it.origin.span.start, stmt(&it.stmt))).collect();
            if let Some((at, items)) = otherwise {
                entries.push((at.span.start, ELSE.to_string()));
                entries.extend(items.iter().map(|it| (it.origin.span.start, stmt(&it.stmt))));
            }
            Some((format!("if ({}{}) {{\n", if *negated { "!" } else { "" }, cond.text), entries))
        }
        _ => None,
    }
}

/// The body entry that stands for `} else {` between the branches of an `if`.
const ELSE: &str = "\u{0}else";

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
        Tok::Minus => "-".into(),
        Tok::Tilde => "~".into(),
        Tok::Bang => "!".into(),
        Tok::Eq => "=".into(),
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
        match block(&it.stmt) {
            Some((header, entries)) => {
                // The statement ends with its closing brace; comments before it are the body's.
                let close = it.origin.span.end.saturating_sub(1);
                block_with_comments(src, header, &entries, close, comments, &mut ci, &mut out);
            }
            None => out.push_str(&stmt(&it.stmt)),
        }
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
        // Comments inside a single-line statement move after it.
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

/// Prints a role or template body with the comments written inside it kept in place: a comment
/// before an entry stays on its own line before it, a comment on an entry's line stays trailing
/// on that line, comments after the last entry stay before the closing brace. (`ci` advances
/// past every comment before the closing brace.)
fn block_with_comments(
    src: &str,
    header: String,
    entries: &[(usize, String)],
    close: usize,
    comments: &[Comment],
    ci: &mut usize,
    out: &mut String,
) {
    out.push_str(&header);
    let mut prev: Option<(usize, bool)> = None; // (start, single-line) of the last entry printed
    let mut next = entries.iter().peekable();
    loop {
        let entry_start = next.peek().map_or(close, |(start, _)| *start);
        while *ci < comments.len() && comments[*ci].span.start < entry_start.min(close) {
            let c = &comments[*ci];
            let same_line = prev
                .is_some_and(|(start, single)| single && src.get(start..c.span.start).is_some_and(|g| !g.contains('\n')));
            if same_line {
                out.pop();
                out.push_str("  ");
                out.push_str(&c.text);
                out.push('\n');
            } else {
                out.push_str("    ");
                out.push_str(&c.text);
                out.push('\n');
            }
            *ci += 1;
        }
        let Some((start, text)) = next.next() else { break };
        if text == ELSE {
            out.push_str("} else {\n");
            prev = None;
            continue;
        }
        for line in text.lines() {
            out.push_str(&format!("    {line}\n"));
        }
        prev = Some((*start, !text.contains('\n')));
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    /// (what, input, canonical output): comments stay where the author put them.
    const CASES: &[(&str, &str, &str)] = &[
        (
            "comment lines inside a role body stay before their entry and before the brace",
            "role r {\n// a\ndomain {pause};\n  introspect *;\n// z\n}\n",
            "role r {\n    // a\n    domain pause;\n    introspect *;\n    // z\n}\n",
        ),
        (
            "a trailing comment stays on its entry's line",
            "role r { domain pause; // p\n introspect *; }\n",
            "role r {\n    domain pause;  // p\n    introspect *;\n}\n",
        ),
        (
            "comments inside a template body stay in place",
            "template t($x) {\n/* c */ type $x: domain; // d\nallow $x self: evtchn send; }\n",
            "template t($x) {\n    /* c */\n    type $x: domain;  // d\n    allow $x self: evtchn send;\n}\n",
        ),
        (
            "a comment after a role stays after it",
            "role r { introspect *; } // after\ntype a_t: domain;\n",
            "role r {\n    introspect *;\n}  // after\ntype a_t: domain;\n",
        ),
    ];

    #[test]
    fn comments_keep_their_place() {
        for (what, input, expected) in CASES {
            let once = crate::format_source(input).unwrap();
            assert_eq!(&once, expected, "{what}");
            assert_eq!(crate::format_source(&once).unwrap(), once, "{what}: not idempotent");
        }
    }
}
