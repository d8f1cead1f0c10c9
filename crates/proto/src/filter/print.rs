//! Filter printing: [`Filter`] to canonical text that [`parse`](super::parse) reads back to an
//! equal AST.
//!
//! Keywords and operators are lower case, strings are JSON-escaped, numbers are printed as
//! `serde_json` prints them, and parentheses appear only where the parser's precedence (`and`
//! over `or`) and left associativity need them. `not` is always `not (...)`.
//!
//! Every AST the parser produces prints back to itself. Hand-built ASTs print too, but those
//! the grammar cannot express (a value path inside a value path, a keyword used as an attribute
//! name) do not parse back.

use std::fmt::{self, Write};

use super::{CompValue, Filter};

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_filter(f, self, Prec::Or)
    }
}

impl fmt::Display for CompValue {
    /// The value as a JSON literal: `null`, `true`, `42`, `"a \"quoted\" string"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Null => f.write_str("null"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Number(n) => write!(f, "{n}"),
            CompValue::Str(s) => write_json_string(f, s),
        }
    }
}

/// How tightly an expression binds: `or` loosest, then `and`, then everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Prec {
    Or,
    And,
    Atom,
}

fn prec(filter: &Filter) -> Prec {
    match filter {
        Filter::Or(..) => Prec::Or,
        Filter::And(..) => Prec::And,
        _ => Prec::Atom,
    }
}

/// Writes `filter` where an expression binding at least as tightly as `min` may stand without
/// parentheses.
fn write_filter(f: &mut fmt::Formatter<'_>, filter: &Filter, min: Prec) -> fmt::Result {
    if prec(filter) < min {
        f.write_char('(')?;
        write_filter(f, filter, Prec::Or)?;
        return f.write_char(')');
    }
    match filter {
        // The parser associates to the left, so a right operand of the same operator needs
        // parentheses to keep its shape: `a or (b or c)`.
        Filter::Or(left, right) => {
            write_filter(f, left, Prec::Or)?;
            f.write_str(" or ")?;
            write_filter(f, right, Prec::And)
        }
        Filter::And(left, right) => {
            write_filter(f, left, Prec::And)?;
            f.write_str(" and ")?;
            write_filter(f, right, Prec::Atom)
        }
        Filter::Not(inner) => {
            f.write_str("not (")?;
            write_filter(f, inner, Prec::Or)?;
            f.write_char(')')
        }
        Filter::Present(path) => write!(f, "{path} pr"),
        Filter::Compare(path, op, value) => write!(f, "{path} {op} {value}"),
        Filter::ValuePath(path, inner) => {
            write!(f, "{path}[")?;
            write_filter(f, inner, Prec::Or)?;
            f.write_char(']')
        }
    }
}

/// Writes `s` as a JSON string: quotes, backslashes and control characters escaped, everything
/// else (including non-ASCII) as is.
fn write_json_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            '\u{8}' => f.write_str("\\b")?,
            '\u{c}' => f.write_str("\\f")?,
            c if u32::from(c) < 0x20 => write!(f, "\\u{:04x}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;
    use crate::filter::CompareOp;
    use crate::path::AttrPath;

    fn pr(name: &str) -> Filter {
        Filter::Present(AttrPath::simple(name))
    }

    fn and(a: Filter, b: Filter) -> Filter {
        Filter::And(Box::new(a), Box::new(b))
    }

    fn or(a: Filter, b: Filter) -> Filter {
        Filter::Or(Box::new(a), Box::new(b))
    }

    fn not(a: Filter) -> Filter {
        Filter::Not(Box::new(a))
    }

    #[test]
    fn minimal_parentheses() {
        let (a, b, c) = (pr("a"), pr("b"), pr("c"));
        let cases = [
            (or(or(a.clone(), b.clone()), c.clone()), "a pr or b pr or c pr"),
            (or(a.clone(), or(b.clone(), c.clone())), "a pr or (b pr or c pr)"),
            (and(and(a.clone(), b.clone()), c.clone()), "a pr and b pr and c pr"),
            (and(a.clone(), and(b.clone(), c.clone())), "a pr and (b pr and c pr)"),
            (or(a.clone(), and(b.clone(), c.clone())), "a pr or b pr and c pr"),
            (or(and(a.clone(), b.clone()), c.clone()), "a pr and b pr or c pr"),
            (and(or(a.clone(), b.clone()), c.clone()), "(a pr or b pr) and c pr"),
            (and(a.clone(), or(b.clone(), c.clone())), "a pr and (b pr or c pr)"),
            (not(or(a.clone(), b.clone())), "not (a pr or b pr)"),
            (and(not(a.clone()), b.clone()), "not (a pr) and b pr"),
            (Filter::ValuePath(AttrPath::simple("emails"), Box::new(or(a.clone(), b.clone()))), "emails[a pr or b pr]"),
        ];
        for (filter, text) in cases {
            assert_eq!(filter.to_string(), text);
            assert_eq!(parse(text).unwrap(), filter, "{text}");
        }
    }

    #[test]
    fn values_are_json() {
        let cmp = |v: CompValue| Filter::Compare(AttrPath::simple("x"), CompareOp::Eq, v).to_string();
        assert_eq!(cmp(CompValue::Null), "x eq null");
        assert_eq!(cmp(CompValue::Bool(false)), "x eq false");
        assert_eq!(cmp(CompValue::Number(42.into())), "x eq 42");
        assert_eq!(cmp(CompValue::Number((-7).into())), "x eq -7");
        let float = serde_json::Number::from_f64(1.5e300).unwrap();
        assert_eq!(cmp(CompValue::Number(float.clone())), format!("x eq {float}"));
        let tricky = "a\"b\\c/d\n\u{1}é😀";
        let text = cmp(CompValue::Str(tricky.into()));
        assert_eq!(text, format!("x eq {}", serde_json::to_string(tricky).unwrap()));
        assert_eq!(
            parse(&text).unwrap(),
            Filter::Compare(AttrPath::simple("x"), CompareOp::Eq, CompValue::Str(tricky.into()))
        );
    }

    #[test]
    fn canonical_text_round_trips() {
        for text in [
            "userName Eq \"john\"",
            "NOT(title PR)AND userType eq \"Employee\"",
            "emails[type eq \"work\"].value eq \"x\"",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq \"x\" or x lt -1.5e3",
            "a pr and (b pr or c pr and (d pr or e pr))",
        ] {
            let filter = parse(text).unwrap();
            let printed = filter.to_string();
            assert_eq!(parse(&printed).unwrap(), filter, "{text} -> {printed}");
            assert_eq!(parse(&printed).unwrap().to_string(), printed);
        }
        assert_eq!(
            parse("NOT(title PR)AND userType EQ \"Employee\"").unwrap().to_string(),
            "not (title pr) and userType eq \"Employee\""
        );
    }
}
