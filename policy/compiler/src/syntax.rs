//! Policy source syntax: lexer, parser, and template expansion into a flat statement list.
// A syntax error ends parsing, so a large `Err` is built once per run, not per token.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::rc::Rc;

use crate::diag::{Code, Diagnostic, Frame, Origin, Span};

/// Lexical token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    Ident(String),
    Colon,
    Semi,
    Comma,
    LBrace,
    RBrace,
    LParen,
    RParen,
    Arrow,
    Star,
    /// `-` before a name in a type set: set difference.
    Minus,
    /// `~`: complement of a type set.
    Tilde,
    /// `!`: negation of a boolean in `if (!name)`.
    Bang,
    /// `=` in `bool name = true;`.
    Eq,
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Colon => "`:`".into(),
            Tok::Semi => "`;`".into(),
            Tok::Comma => "`,`".into(),
            Tok::LBrace => "`{`".into(),
            Tok::RBrace => "`}`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::Arrow => "`->`".into(),
            Tok::Star => "`*`".into(),
            Tok::Minus => "`-`".into(),
            Tok::Tilde => "`~`".into(),
            Tok::Bang => "`!`".into(),
            Tok::Eq => "`=`".into(),
            Tok::Eof => "end of file".into(),
        }
    }
}

/// A token with its origin.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) origin: Origin,
}

/// A comment, kept for the formatter.
#[derive(Debug, Clone)]
pub(crate) struct Comment {
    pub(crate) span: Span,
    pub(crate) text: String,
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

/// Splits source into tokens and comments.
pub(crate) fn lex(src: &str) -> Result<(Vec<Token>, Vec<Comment>), Diagnostic> {
    let mut toks = Vec::new();
    let mut comments = Vec::new();
    let b = src.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = src[i..].chars().next().unwrap_or(' ');
        let start = i;
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        if src[i..].starts_with("//") {
            let end = src[i..].find('\n').map_or(src.len(), |n| i + n);
            comments.push(Comment { span: start..end, text: src[start..end].trim_end().to_string() });
            i = end;
            continue;
        }
        if src[i..].starts_with("/*") {
            let Some(n) = src[i + 2..].find("*/") else {
                return Err(Diagnostic::error(
                    Code::E0001,
                    "unterminated block comment",
                    Origin::plain(start..start + 2),
                    "comment starts here",
                )
                .with_help("close it with `*/`"));
            };
            let end = i + 2 + n + 2;
            comments.push(Comment { span: start..end, text: src[start..end].to_string() });
            i = end;
            continue;
        }
        let tok = match c {
            ':' => Tok::Colon,
            ';' => Tok::Semi,
            ',' => Tok::Comma,
            '{' => Tok::LBrace,
            '}' => Tok::RBrace,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '*' => Tok::Star,
            '-' if src[i..].starts_with("->") => {
                i += 1;
                Tok::Arrow
            }
            '-' => Tok::Minus,
            '~' => Tok::Tilde,
            '!' => Tok::Bang,
            '=' => Tok::Eq,
            c if is_ident(c) => {
                let end = src[i..].find(|ch: char| !is_ident(ch)).map_or(src.len(), |n| i + n);
                let t = Tok::Ident(src[i..end].to_string());
                i = end - 1;
                t
            }
            other => return Err(odd_character(&toks, other, start)),
        };
        i += 1;
        toks.push(Token { tok, origin: Origin::plain(start..i) });
    }
    toks.push(Token { tok: Tok::Eof, origin: Origin::plain(src.len()..src.len()) });
    Ok((toks, comments))
}

/// The error for a character the language does not use. A newcomer from SELinux/FLASK meets
/// this inside a construct Warden does not have (`constrain ... (u1 == u2)`, `if (a && b)`, m4
/// quotes): name the construct and what to write instead, not just the character.
fn odd_character(toks: &[Token], c: char, at: usize) -> Diagnostic {
    let here = Origin::plain(at..at + c.len_utf8());
    let stmt_start = toks.iter().rposition(|t| matches!(t.tok, Tok::Semi | Tok::RBrace | Tok::LBrace)).map_or(0, |i| i + 1);
    let first = toks.get(stmt_start).and_then(|t| match &t.tok {
        Tok::Ident(s) => Some((s.as_str(), t.origin.clone())),
        _ => None,
    });
    if let Some((kw, origin)) = &first
        && let Some(a) = crate::flask::advice(kw)
    {
        return Diagnostic::error(Code::E0001, a.message, origin.clone(), "not a Warden statement")
            .with_label(here, "the parser stopped here")
            .with_help(a.help);
    }
    if matches!(first, Some(("if", _))) && matches!(c, '&' | '|' | '=' | '^') {
        return Diagnostic::error(Code::E0001, "conditions are one boolean", here, "operators are not supported")
            .with_help("write `if (name)` or `if (!name)`; nest `if`s for `&&`, repeat the block for `||`");
    }
    if matches!(c, '`' | '\'') {
        let a = crate::flask::advice("define").map_or("", |a| a.help);
        return Diagnostic::error(Code::E0001, "m4 quoting is not part of the policy language", here, "m4 quote")
            .with_help(a);
    }
    Diagnostic::error(
        Code::E0001,
        format!("unexpected character `{}`", c.escape_debug()),
        here,
        "not part of the policy language",
    )
}

/// A name as written, with where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Name {
    pub(crate) text: String,
    pub(crate) origin: Origin,
}

/// A target of a rule.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Names(Vec<Name>),
    SelfT(Origin),
    Other(Origin),
}

/// A permission list.
#[derive(Debug, Clone)]
pub(crate) enum Perms {
    All(Origin),
    List(Vec<Name>),
}

/// Access-vector rule kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RuleKind {
    Allow,
    AuditAllow,
    DontAudit,
    NeverAllow,
}

impl RuleKind {
    pub(crate) fn keyword(self) -> &'static str {
        match self {
            RuleKind::Allow => "allow",
            RuleKind::AuditAllow => "auditallow",
            RuleKind::DontAudit => "dontaudit",
            RuleKind::NeverAllow => "neverallow",
        }
    }
}

/// `CLASS PERMS` as used in rules and role bodies.
#[derive(Debug, Clone)]
pub(crate) struct ClassPerms {
    pub(crate) class: Name,
    pub(crate) perms: Perms,
}

/// A statement after template expansion.
#[derive(Debug, Clone)]
pub(crate) enum Stmt {
    Attribute { name: Name },
    Type { name: Name, kind: Name, attrs: Vec<Name> },
    Rule { kind: RuleKind, src: Vec<Name>, tgt: Target, cp: ClassPerms },
    Role { name: Name, body: Vec<ClassPerms> },
    Grant { role: Name, src: Vec<Name>, tgt: Target },
    Transition { build: Name, run: Name },
    Conflict { name: Name, members: Vec<Name> },
    NoFlow { from: Vec<Name>, to: Vec<Name>, excluding: Vec<Name>, across: bool },
    /// `separate SET;`: rules among the members hold only within one category.
    Separate { members: Vec<Name> },
    Expect { allow: bool, src: Vec<Name>, tgt: Target, cp: ClassPerms },
    Template { name: Name, params: Vec<Name>, body: Vec<Token> },
    Use { name: Name, args: Vec<Name> },
    /// `bool NAME = true|false;`: a compile-time switch (`-D NAME=...` overrides the value).
    Bool { name: Name, value: Name },
    /// `if ([!]NAME) { ... } [else { ... }]`: chosen at compile time; the policy stays fixed.
    If { negated: bool, cond: Name, then: Vec<Item>, otherwise: Option<(Origin, Vec<Item>)> },
}

/// A statement with its whole-statement origin.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) stmt: Stmt,
    pub(crate) origin: Origin,
}

struct Parser<'t> {
    toks: &'t [Token],
    pos: usize,
}

type PResult<T> = Result<T, Diagnostic>;

const KEYWORDS: &[&str] = &[
    "attribute",
    "type",
    "allow",
    "auditallow",
    "dontaudit",
    "neverallow",
    "role",
    "grant",
    "transition",
    "conflict",
    "assert",
    "expect",
    "template",
    "use",
    "bool",
    "if",
    "separate",
];

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        self.skip();
        t
    }

    /// Moves past the current token without copying it (its name would be a fresh `String`).
    fn skip(&mut self) {
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
    }

    fn unexpected(&self, what: &str) -> Diagnostic {
        let t = self.peek();
        Diagnostic::error(
            Code::E0001,
            format!("expected {what}, found {}", t.tok.describe()),
            t.origin.clone(),
            format!("expected {what}"),
        )
    }

    fn expect(&mut self, tok: Tok, what: &str) -> PResult<Token> {
        if self.peek().tok == tok {
            Ok(self.bump())
        } else {
            let mut d = self.unexpected(what);
            if tok == Tok::Semi && self.pos > 0 {
                // Point at the end of the previous token: that is where the `;` belongs.
                let prev = &self.toks[self.pos - 1].origin;
                d = Diagnostic::error(
                    Code::E0001,
                    format!("expected `;`, found {}", self.peek().tok.describe()),
                    Origin { span: prev.span.end..prev.span.end, chain: prev.chain.clone() },
                    "expected `;` here",
                )
                .with_label(self.peek().origin.clone(), "unexpected token")
                .with_help("every statement ends with `;`");
            }
            Err(d)
        }
    }

    fn name(&mut self, what: &str) -> PResult<Name> {
        match &self.peek().tok {
            Tok::Ident(s) => {
                let n = Name { text: s.clone(), origin: self.peek().origin.clone() };
                self.skip();
                Ok(n)
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn keyword(&mut self, kw: &str) -> PResult<Token> {
        match &self.peek().tok {
            Tok::Ident(s) if s == kw => Ok(self.bump()),
            _ => Err(self.unexpected(&format!("`{kw}`"))),
        }
    }

    /// `NAME` or `{ NAME [,] NAME ... }`.
    fn name_list(&mut self, what: &str) -> PResult<Vec<Name>> {
        if self.peek().tok == Tok::LBrace { self.braced(what, false) } else { Ok(vec![self.name(what)?]) }
    }

    /// `{ ELEM [,] ELEM ... }`, not empty; with `sets`, an element may also be `*` or `-NAME`.
    fn braced(&mut self, what: &str, sets: bool) -> PResult<Vec<Name>> {
        let open = self.expect(Tok::LBrace, "`{`")?;
        let mut v = Vec::new();
        loop {
            match self.peek().tok {
                Tok::RBrace => {
                    self.skip();
                    break;
                }
                Tok::Comma => {
                    self.skip();
                }
                Tok::Star if sets => {
                    let t = self.bump();
                    v.push(Name { text: "*".into(), origin: t.origin });
                }
                Tok::Minus if sets => {
                    let m = self.bump();
                    let n = self.name(what)?;
                    let origin = Origin { span: m.origin.span.start..n.origin.span.end, chain: n.origin.chain };
                    v.push(Name { text: format!("-{}", n.text), origin });
                }
                Tok::Ident(_) => v.push(self.name(what)?),
                _ => {
                    let expected = if sets { format!("{what}, `*`, `-NAME` or `}}`") } else { format!("{what} or `}}`") };
                    return Err(self.unexpected(&expected).with_label(open.origin, "list opened here"));
                }
            }
        }
        if v.is_empty() {
            return Err(Diagnostic::error(Code::E0001, format!("empty list of {what}s"), open.origin, "nothing in here"));
        }
        Ok(v)
    }

    /// A type set: `NAME`, `*` (every type), `~SET` (every type not in it), or
    /// `{ ELEM ... }` where an element is a name, `*`, or `-NAME` (removed from the union of
    /// the others). Kept as names: `*`, and `-` glued to the name it removes; `~x` is written
    /// canonically as `{ * -x }`.
    fn type_set(&mut self, what: &str) -> PResult<Vec<Name>> {
        match self.peek().tok {
            Tok::Star => {
                let t = self.bump();
                Ok(vec![Name { text: "*".into(), origin: t.origin }])
            }
            Tok::Tilde => {
                let t = self.bump();
                let inner = self.type_set(what)?;
                let mut v = vec![Name { text: "*".into(), origin: t.origin }];
                for n in inner {
                    if n.text == "*" {
                        return Err(Diagnostic::error(Code::E0001, "`~*` is the empty set", n.origin, "complement of everything"));
                    }
                    if n.text.starts_with('-') {
                        return Err(Diagnostic::error(
                            Code::E0001,
                            "`-` inside `~{ ... }` is not supported",
                            n.origin,
                            "difference inside a complement",
                        )
                        .with_help("name the types to exclude: `~{ a b }` is every type but `a` and `b`"));
                    }
                    v.push(Name { text: format!("-{}", n.text), origin: n.origin });
                }
                Ok(v)
            }
            Tok::LBrace => {
                let open = self.peek().origin.clone();
                let v = self.braced(what, true)?;
                if v.iter().all(|n| n.text.starts_with('-')) {
                    return Err(Diagnostic::error(
                        Code::E0001,
                        "a type set of only removals is empty",
                        open,
                        "nothing to remove from",
                    )
                    .with_help("start from `*` or an attribute: `{ * -dom0_t }`"));
                }
                Ok(v)
            }
            _ => Ok(vec![self.name(what)?]),
        }
    }

    fn target(&mut self) -> PResult<Target> {
        if let Tok::Ident(s) = &self.peek().tok {
            if s == "self" {
                return Ok(Target::SelfT(self.bump().origin));
            }
            if s == "other" {
                return Ok(Target::Other(self.bump().origin));
            }
        }
        Ok(Target::Names(self.type_set("target type or attribute")?))
    }

    fn class_perms(&mut self) -> PResult<ClassPerms> {
        let class = self.name("class")?;
        let perms = if self.peek().tok == Tok::Star {
            Perms::All(self.bump().origin)
        } else {
            Perms::List(self.name_list("permission")?)
        };
        Ok(ClassPerms { class, perms })
    }

    /// `{ ITEM ... }` of an `if` branch; returns the items and the closing brace.
    fn block_items(&mut self) -> PResult<(Vec<Item>, Origin)> {
        let open = self.expect(Tok::LBrace, "`{`")?;
        let mut items = Vec::new();
        loop {
            match self.peek().tok {
                Tok::RBrace => return Ok((items, self.bump().origin)),
                Tok::Eof => {
                    return Err(Diagnostic::error(Code::E0001, "unclosed `if` block", open.origin, "opened here")
                        .with_help("add the missing `}`"));
                }
                _ => items.push(self.item()?),
            }
        }
    }

    fn comma_names(&mut self, what: &str, end: &Tok) -> PResult<Vec<Name>> {
        let mut v = Vec::new();
        while self.peek().tok != *end {
            v.push(self.name(what)?);
            if self.peek().tok == Tok::Comma {
                self.skip();
            } else {
                break;
            }
        }
        Ok(v)
    }

    fn item(&mut self) -> PResult<Item> {
        let first = self.peek().clone();
        let Tok::Ident(kw) = &first.tok else {
            return Err(self.unexpected("a statement (`type`, `allow`, ...)"));
        };
        let kw = kw.clone();
        let stmt = match kw.as_str() {
            "attribute" => {
                self.skip();
                let name = self.name("attribute name")?;
                Stmt::Attribute { name }
            }
            "type" => {
                self.skip();
                let name = self.name("type name")?;
                self.expect(Tok::Colon, "`:` and a kind")?;
                let kind = self.name("kind")?;
                let mut attrs = Vec::new();
                while self.peek().tok == Tok::Comma {
                    self.skip();
                    attrs.push(self.name("attribute")?);
                }
                Stmt::Type { name, kind, attrs }
            }
            "allow" | "auditallow" | "dontaudit" | "neverallow" | "expect" => {
                self.skip();
                let (kind, expect) = match kw.as_str() {
                    "allow" => (RuleKind::Allow, None),
                    "auditallow" => (RuleKind::AuditAllow, None),
                    "dontaudit" => (RuleKind::DontAudit, None),
                    "neverallow" => (RuleKind::NeverAllow, None),
                    _ => {
                        let w = self.name("`allow` or `deny`")?;
                        match w.text.as_str() {
                            "allow" => (RuleKind::Allow, Some(true)),
                            "deny" => (RuleKind::Allow, Some(false)),
                            _ => {
                                return Err(Diagnostic::error(
                                    Code::E0001,
                                    format!("expected `allow` or `deny`, found `{}`", w.text),
                                    w.origin,
                                    "expected `allow` or `deny`",
                                ));
                            }
                        }
                    }
                };
                let src = self.type_set("source type or attribute")?;
                let tgt = self.target()?;
                self.expect(Tok::Colon, "`:` and a class")?;
                let cp = self.class_perms()?;
                match expect {
                    Some(allow) => Stmt::Expect { allow, src, tgt, cp },
                    None => Stmt::Rule { kind, src, tgt, cp },
                }
            }
            "role" => {
                self.skip();
                let name = self.name("role name")?;
                if self.peek().tok == Tok::Semi || matches!(&self.peek().tok, Tok::Ident(s) if s == "types") {
                    return Err(Diagnostic::error(
                        Code::E0001,
                        "SELinux roles (`role r;`, `role r types t;`) are not Warden roles",
                        join(&first.origin, &name.origin),
                        "a SELinux role",
                    )
                    .with_note("a Warden role is a named bundle of permissions: `role lifecycle { domain { pause unpause }; }`, given with `grant lifecycle to mgmt_t over guests;`")
                    .with_help("drop SELinux role declarations: Warden labels are types only; Xen's per-user `vm_r` roles become an attribute per user"));
                }
                self.expect(Tok::LBrace, "`{`")?;
                let mut body = Vec::new();
                while self.peek().tok != Tok::RBrace {
                    if self.peek().tok == Tok::Eof {
                        return Err(self.unexpected("`}`"));
                    }
                    body.push(self.class_perms()?);
                    self.expect(Tok::Semi, "`;`")?;
                }
                let close = self.bump();
                return Ok(Item { stmt: Stmt::Role { name, body }, origin: join(&first.origin, &close.origin) });
            }
            "grant" => {
                self.skip();
                let role = self.name("role name")?;
                self.keyword("to")?;
                let src = self.type_set("type or attribute")?;
                self.keyword("over")?;
                let tgt = self.target()?;
                Stmt::Grant { role, src, tgt }
            }
            "transition" => {
                self.skip();
                let build = self.name("build label")?;
                self.expect(Tok::Arrow, "`->`")?;
                let run = self.name("run label")?;
                Stmt::Transition { build, run }
            }
            "conflict" => {
                self.skip();
                let name = self.name("conflict set name")?;
                let members = self.type_set("type or attribute")?;
                Stmt::Conflict { name, members }
            }
            "assert" => {
                self.skip();
                self.keyword("noflow")?;
                let from = self.type_set("type or attribute")?;
                self.expect(Tok::Arrow, "`->`")?;
                let to = self.type_set("type or attribute")?;
                let across = matches!(&self.peek().tok, Tok::Ident(s) if s == "across");
                if across {
                    self.skip();
                    self.keyword("categories")?;
                }
                let mut excluding = Vec::new();
                if matches!(&self.peek().tok, Tok::Ident(s) if s == "excluding") {
                    self.skip();
                    excluding = self.type_set("type or attribute")?;
                }
                Stmt::NoFlow { from, to, excluding, across }
            }
            "separate" => {
                self.skip();
                let members = self.type_set("domain type or attribute")?;
                Stmt::Separate { members }
            }
            "template" => {
                self.skip();
                let name = self.name("template name")?;
                self.expect(Tok::LParen, "`(`")?;
                let params = self.comma_names("parameter", &Tok::RParen)?;
                self.expect(Tok::RParen, "`)`")?;
                let open = self.expect(Tok::LBrace, "`{`")?;
                let mut depth = 1;
                let mut body = Vec::new();
                loop {
                    let t = self.bump();
                    match t.tok {
                        Tok::LBrace => depth += 1,
                        Tok::RBrace => {
                            depth -= 1;
                            if depth == 0 {
                                return Ok(Item {
                                    stmt: Stmt::Template { name, params, body },
                                    origin: join(&first.origin, &t.origin),
                                });
                            }
                        }
                        Tok::Eof => {
                            return Err(Diagnostic::error(
                                Code::E0001,
                                "unclosed template body",
                                open.origin,
                                "opened here",
                            )
                            .with_help("add the missing `}`"));
                        }
                        _ => {}
                    }
                    body.push(t);
                }
            }
            "bool" => {
                self.skip();
                let name = self.name("boolean name")?;
                if matches!(&self.peek().tok, Tok::Ident(v) if v == "true" || v == "false") {
                    return Err(self
                        .unexpected("`=`")
                        .with_help(format!("Warden writes `bool {} = {};` (SELinux's form has no `=`)", name.text, tok_name(&self.peek().tok))));
                }
                self.expect(Tok::Eq, "`=` and `true` or `false`")?;
                let value = self.name("`true` or `false`")?;
                if !matches!(value.text.as_str(), "true" | "false") {
                    return Err(Diagnostic::error(
                        Code::E0001,
                        format!("a boolean is `true` or `false`, not `{}`", value.text),
                        value.origin,
                        "not a boolean value",
                    ));
                }
                Stmt::Bool { name, value }
            }
            "if" => {
                self.skip();
                self.expect(Tok::LParen, "`(`")?;
                let negated = self.peek().tok == Tok::Bang;
                if negated {
                    self.skip();
                }
                let cond = self.name("boolean name")?;
                if matches!(self.peek().tok, Tok::Ident(_)) || matches!(&self.peek().tok, Tok::Bang | Tok::Eq) {
                    return Err(self
                        .unexpected("`)`")
                        .with_help("conditions are one boolean, `(name)` or `(!name)`: nest `if`s for `&&`"));
                }
                self.expect(Tok::RParen, "`)`")?;
                let (then, close) = self.block_items()?;
                let mut end = close;
                let mut otherwise = None;
                if matches!(&self.peek().tok, Tok::Ident(s) if s == "else") {
                    let e = self.bump();
                    let (items, close) = self.block_items()?;
                    end = close;
                    otherwise = Some((e.origin, items));
                }
                return Ok(Item { stmt: Stmt::If { negated, cond, then, otherwise }, origin: join(&first.origin, &end) });
            }
            "use" => {
                self.skip();
                let name = self.name("template name")?;
                self.expect(Tok::LParen, "`(`")?;
                let args = self.comma_names("argument", &Tok::RParen)?;
                self.expect(Tok::RParen, "`)`")?;
                Stmt::Use { name, args }
            }
            _ => {
                if let Some(a) = crate::flask::advice(&kw) {
                    return Err(Diagnostic::error(Code::E0001, a.message, first.origin.clone(), "not a Warden statement")
                        .with_help(a.help));
                }
                let mut d = Diagnostic::error(
                    Code::E0001,
                    format!("unknown statement `{kw}`"),
                    first.origin.clone(),
                    "expected a statement keyword",
                );
                if let Some(s) = crate::diag::suggest(&kw, KEYWORDS.iter().copied()) {
                    d = d.with_help(format!("did you mean `{s}`?"));
                }
                return Err(d);
            }
        };
        let semi = self.expect(Tok::Semi, "`;`")?;
        Ok(Item { stmt, origin: join(&first.origin, &semi.origin) })
    }
}

fn join(a: &Origin, b: &Origin) -> Origin {
    if a.chain == b.chain {
        Origin { span: a.span.start..b.span.end.max(a.span.start), chain: a.chain.clone() }
    } else {
        a.clone()
    }
}

fn tok_name(t: &Tok) -> &str {
    match t {
        Tok::Ident(s) => s,
        _ => "",
    }
}

/// Parses a token stream (ending in `Eof`) into statements.
pub(crate) fn parse_tokens(toks: &[Token]) -> Result<Vec<Item>, Diagnostic> {
    let mut p = Parser { toks, pos: 0 };
    let mut items = Vec::new();
    while p.peek().tok != Tok::Eof {
        items.push(p.item()?);
    }
    Ok(items)
}

/// Parses source without expanding templates (for the formatter).
pub(crate) fn parse(src: &str) -> Result<(Vec<Item>, Vec<Comment>), Diagnostic> {
    let (toks, comments) = lex(src)?;
    Ok((parse_tokens(&toks)?, comments))
}

const MAX_DEPTH: usize = 16;
const MAX_ITEMS: usize = 1 << 20;

/// Parses and expands every `use` of a template (templates may be defined anywhere in the
/// file) and every `if` (booleans are declared at the top level; `defines` override them).
pub(crate) fn parse_expanded(src: &str, defines: &[(String, bool)]) -> Result<Vec<Item>, Diagnostic> {
    let (items, _) = parse(src)?;
    let mut bools: HashMap<String, (bool, Origin)> = HashMap::new();
    for it in &items {
        if let Stmt::Bool { name, value } = &it.stmt {
            if let Some((_, prev)) = bools.get(&name.text) {
                return Err(Diagnostic::error(
                    Code::E0010,
                    format!("boolean `{}` is declared twice", name.text),
                    name.origin.clone(),
                    "second declaration",
                )
                .with_label(prev.clone(), "first declaration"));
            }
            bools.insert(name.text.clone(), (value.text == "true", name.origin.clone()));
        }
    }
    for (name, value) in defines {
        match bools.get_mut(name) {
            Some(b) => b.0 = *value,
            None => {
                let mut d = Diagnostic::error(
                    Code::E0002,
                    format!("`-D {name}`: the policy declares no boolean `{name}`"),
                    Origin::plain(0..0),
                    "in this policy",
                );
                if let Some(s) = crate::diag::suggest(name, bools.keys().map(String::as_str)) {
                    d = d.with_help(format!("did you mean `{s}`?"));
                } else {
                    d = d.with_help(format!("declare it: `bool {name} = false;`"));
                }
                return Err(d);
            }
        }
    }
    let bools: HashMap<String, bool> = bools.into_iter().map(|(k, (v, _))| (k, v)).collect();
    let mut templates: HashMap<String, (Vec<Name>, Vec<Token>, Origin)> = HashMap::new();
    for it in &items {
        if let Stmt::Template { name, params, body } = &it.stmt {
            if let Some((_, _, prev)) = templates.get(&name.text) {
                return Err(Diagnostic::error(
                    Code::E0010,
                    format!("template `{}` is defined twice", name.text),
                    name.origin.clone(),
                    "second definition",
                )
                .with_label(prev.clone(), "first definition"));
            }
            for (i, p) in params.iter().enumerate() {
                if !p.text.starts_with('$') || p.text.len() < 2 || p.text[1..].contains('$') {
                    return Err(Diagnostic::error(
                        Code::E0001,
                        format!("template parameter `{}` must be written `$name`", p.text),
                        p.origin.clone(),
                        "parameter",
                    )
                    .with_help(format!("write `${}`", p.text.trim_start_matches('$'))));
                }
                if params[..i].iter().any(|q| q.text == p.text) {
                    return Err(Diagnostic::error(
                        Code::E0010,
                        format!("parameter `{}` appears twice", p.text),
                        p.origin.clone(),
                        "repeated",
                    ));
                }
            }
            templates.insert(name.text.clone(), (params.clone(), body.clone(), name.origin.clone()));
        }
    }
    let mut out = Vec::new();
    expand_into(items, &Scope { templates: &templates, bools: &bools }, &Rc::new(Vec::new()), &mut out)?;
    Ok(out)
}

/// What expansion looks names up in.
struct Scope<'a> {
    templates: &'a HashMap<String, (Vec<Name>, Vec<Token>, Origin)>,
    bools: &'a HashMap<String, bool>,
}

fn expand_into(items: Vec<Item>, scope: &Scope<'_>, chain: &Rc<Vec<Frame>>, out: &mut Vec<Item>) -> Result<(), Diagnostic> {
    let templates = scope.templates;
    for it in items {
        match it.stmt {
            Stmt::Bool { ref name, .. } if !chain.is_empty() => {
                return Err(Diagnostic::error(
                    Code::E0007,
                    "booleans are declared at the top level, not inside templates",
                    name.origin.clone(),
                    "inside a template",
                ));
            }
            Stmt::Bool { .. } => {}
            Stmt::If { negated, cond, then, otherwise } => {
                let Some(&v) = scope.bools.get(&cond.text) else {
                    let mut d = Diagnostic::error(
                        Code::E0002,
                        format!("unknown boolean `{}`", cond.text),
                        cond.origin.clone(),
                        "not declared",
                    );
                    if let Some(s) = crate::diag::suggest(&cond.text, scope.bools.keys().map(String::as_str)) {
                        d = d.with_help(format!("did you mean `{s}`?"));
                    } else {
                        d = d.with_help(format!("declare it at the top level: `bool {} = false;`", cond.text));
                    }
                    return Err(d);
                };
                let chosen = if v != negated { then } else { otherwise.map(|(_, items)| items).unwrap_or_default() };
                expand_into(chosen, scope, chain, out)?;
            }
            Stmt::Template { ref name, .. } if !chain.is_empty() => {
                return Err(Diagnostic::error(
                    Code::E0007,
                    "templates cannot be defined inside templates",
                    name.origin.clone(),
                    "nested definition",
                ));
            }
            Stmt::Template { .. } => {}
            Stmt::Use { name, args } => {
                let Some((params, body, def)) = templates.get(&name.text) else {
                    let mut d = Diagnostic::error(
                        Code::E0007,
                        format!("unknown template `{}`", name.text),
                        name.origin.clone(),
                        "not defined in this file",
                    );
                    if let Some(s) = crate::diag::suggest(&name.text, templates.keys().map(String::as_str)) {
                        d = d.with_help(format!("did you mean `{s}`?"));
                    }
                    return Err(d);
                };
                if params.len() != args.len() {
                    return Err(Diagnostic::error(
                        Code::E0007,
                        format!(
                            "template `{}` takes {} argument(s) but {} were given",
                            name.text,
                            params.len(),
                            args.len()
                        ),
                        it.origin.clone(),
                        "wrong number of arguments",
                    )
                    .with_label(def.clone(), "template defined here"));
                }
                if chain.len() >= MAX_DEPTH || chain.iter().any(|f| f.template == name.text) {
                    return Err(Diagnostic::error(
                        Code::E0007,
                        format!("template `{}` expands itself", name.text),
                        it.origin.clone(),
                        "recursive use",
                    )
                    .with_note("templates may not use themselves, directly or indirectly"));
                }
                let mut frames = vec![Frame { template: name.text.clone(), use_span: it.origin.span.clone() }];
                frames.extend(chain.iter().cloned());
                let inner = Rc::new(frames);
                let mut toks: Vec<Token> = body
                    .iter()
                    .map(|t| Token {
                        tok: substitute(&t.tok, params, &args),
                        origin: Origin { span: t.origin.span.clone(), chain: inner.clone() },
                    })
                    .collect();
                toks.push(Token {
                    tok: Tok::Eof,
                    origin: Origin { span: it.origin.span.clone(), chain: chain.clone() },
                });
                let sub = parse_tokens(&toks)?;
                if out.len() + sub.len() > MAX_ITEMS {
                    return Err(Diagnostic::error(
                        Code::E0007,
                        "template expansion is too large",
                        it.origin.clone(),
                        "expands to over a million statements",
                    ));
                }
                expand_into(sub, scope, &inner, out)?;
            }
            _ => {
                for n in names_of(&it.stmt) {
                    if n.text.contains('$') {
                        return Err(Diagnostic::error(
                            Code::E0001,
                            format!("`{}` is not a template parameter here", n.text),
                            n.origin.clone(),
                            "`$` only appears in template parameters",
                        )
                        .with_help("parameters are `$name` inside `template NAME($name) { ... }`"));
                    }
                }
                out.push(it);
            }
        }
    }
    Ok(())
}

/// Replaces `$param` occurrences (longest parameter first) inside an identifier.
fn substitute(tok: &Tok, params: &[Name], args: &[Name]) -> Tok {
    let Tok::Ident(s) = tok else { return tok.clone() };
    if !s.contains('$') {
        return tok.clone();
    }
    let mut order: Vec<usize> = (0..params.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(params[i].text.len()));
    let mut out = String::new();
    let mut rest = s.as_str();
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        match order.iter().find(|&&i| rest.starts_with(params[i].text.as_str())) {
            Some(&i) => {
                out.push_str(&args[i].text);
                rest = &rest[params[i].text.len()..];
            }
            None => {
                out.push('$');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Tok::Ident(out)
}

/// Every name a statement mentions (for checks that apply to all of them).
pub(crate) fn names_of(s: &Stmt) -> Vec<&Name> {
    let mut v: Vec<&Name> = Vec::new();
    fn tgt(t: &Target) -> Vec<&Name> {
        match t {
            Target::Names(n) => n.iter().collect(),
            _ => Vec::new(),
        }
    }
    fn cp(c: &ClassPerms) -> Vec<&Name> {
        let mut v = vec![&c.class];
        if let Perms::List(l) = &c.perms {
            v.extend(l.iter());
        }
        v
    }
    match s {
        Stmt::Attribute { name } => v.push(name),
        Stmt::Type { name, kind, attrs } => {
            v.push(name);
            v.push(kind);
            v.extend(attrs.iter());
        }
        Stmt::Rule { src, tgt: t, cp: c, .. } | Stmt::Expect { src, tgt: t, cp: c, .. } => {
            v.extend(src.iter());
            v.extend(tgt(t));
            v.extend(cp(c));
        }
        Stmt::Role { name, body } => {
            v.push(name);
            for c in body {
                v.extend(cp(c));
            }
        }
        Stmt::Grant { role, src, tgt: t } => {
            v.push(role);
            v.extend(src.iter());
            v.extend(tgt(t));
        }
        Stmt::Transition { build, run } => {
            v.push(build);
            v.push(run);
        }
        Stmt::Conflict { name, members } => {
            v.push(name);
            v.extend(members.iter());
        }
        Stmt::Separate { members } => v.extend(members.iter()),
        Stmt::NoFlow { from, to, excluding, .. } => {
            v.extend(from.iter());
            v.extend(to.iter());
            v.extend(excluding.iter());
        }
        Stmt::Template { name, .. } | Stmt::Use { name, .. } => v.push(name),
        Stmt::Bool { name, value } => {
            v.push(name);
            v.push(value);
        }
        Stmt::If { cond, .. } => v.push(cond),
    }
    v
}
