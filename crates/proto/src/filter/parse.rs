//! Filter parsing: RFC 7644 §3.4.2.2 text to [`Filter`].
//!
//! ```text
//! FILTER    = attrExp / logExp / valuePath / *1"not" "(" FILTER ")"
//! valuePath = attrPath "[" valFilter "]"
//! attrExp   = (attrPath SP "pr") / (attrPath SP compareOp SP compValue)
//! logExp    = FILTER SP ("and" / "or") SP FILTER
//! compValue = false / null / true / number / string      ; JSON literals
//! ```
//!
//! `and` binds tighter than `or`; both associate to the left. Keywords, operators and the
//! literals `true`/`false`/`null` are case-insensitive. Whitespace is any run of Unicode white
//! space, and may be left out where nothing is ambiguous (`not(`, `"x")`).
//!
//! One extension, because identity providers send it: a value path followed by a
//! sub-attribute comparison, `emails[type eq "work"].value eq "x"`, reads as
//! `emails[type eq "work" and value eq "x"]`.
//!
//! The input is hostile: its length, its nesting and its number of comparisons are capped, and
//! `and`/`or` chains are parsed in a loop, so no input can exhaust the stack.

use serde_json::Number;

use super::{CompValue, CompareOp, Filter};
use crate::error::ScimError;
use crate::path::{AttrPath, is_attr_name};

/// Longest filter accepted, in characters.
pub const MAX_FILTER_LEN: usize = 4096;
/// Deepest nesting of parentheses, `not (...)` and value paths accepted.
pub const MAX_FILTER_DEPTH: usize = 32;
/// Most comparisons (`attr op value` and `attr pr`) one filter may contain. Also bounds the
/// depth of the left-leaning `and`/`or` trees, which are walked recursively.
pub const MAX_FILTER_TERMS: usize = 200;

/// The length and nesting a deployment accepts in clients' filters: at most
/// [`MAX_FILTER_LEN`] and [`MAX_FILTER_DEPTH`], the protocol core's own bounds; an operator may
/// set them lower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterLimits {
    /// Longest filter, in characters.
    pub max_len: usize,
    /// Deepest nesting of parentheses, `not (...)` and value filters.
    pub max_depth: usize,
}

impl FilterLimits {
    /// The protocol core's bounds.
    pub const MAX: FilterLimits = FilterLimits { max_len: MAX_FILTER_LEN, max_depth: MAX_FILTER_DEPTH };

    /// These limits, each capped at the protocol core's bound.
    pub fn capped(self) -> FilterLimits {
        FilterLimits { max_len: self.max_len.min(MAX_FILTER_LEN), max_depth: self.max_depth.min(MAX_FILTER_DEPTH) }
    }
}

impl Default for FilterLimits {
    fn default() -> Self {
        FilterLimits::MAX
    }
}

/// Parses a filter such as `userName eq "bjensen" and emails[type eq "work"]`.
///
/// Errors are `400 invalidFilter` whose detail names the 1-based character position and what
/// was expected there.
pub fn parse(text: &str) -> Result<Filter, ScimError> {
    parse_limited(text, FilterLimits::MAX)
}

/// [`parse`] within a deployment's (possibly lower) [`FilterLimits`].
pub fn parse_limited(text: &str, limits: FilterLimits) -> Result<Filter, ScimError> {
    let limits = limits.capped();
    check_length(text, Syntax::Filter, limits.max_len)?;
    parse_unbounded(text, limits.max_depth)
}

/// Parses a filter this process printed itself (with [`Filter`]'s `Display`), such as the
/// store's re-parse inside SQLite: the same grammar and the same nesting
/// ([`MAX_FILTER_DEPTH`]) and comparison ([`MAX_FILTER_TERMS`]) limits as [`parse`], but no
/// [`MAX_FILTER_LEN`] limit, because printing a valid filter can lengthen it (`not(a pr)`
/// prints as `not (a pr)`, `1E3` as `1000.0`). Do not use it for text from clients.
pub fn parse_trusted(text: &str) -> Result<Filter, ScimError> {
    parse_unbounded(text, MAX_FILTER_DEPTH)
}

/// [`parse`] without the length check.
fn parse_unbounded(text: &str, max_depth: usize) -> Result<Filter, ScimError> {
    let mut parser = Parser::new(text, Syntax::Filter, max_depth);
    let filter = parser.or_expr(None, 0, None)?;
    parser.skip_ws();
    match parser.peek() {
        None => Ok(filter),
        Some(c @ (')' | ']')) => {
            let opener = if c == ')' { '(' } else { '[' };
            Err(parser.error(parser.pos, format!("unbalanced '{c}': there is no '{opener}' to close")))
        }
        Some(_) => Err(parser.error(
            parser.pos,
            format!("expected 'and', 'or' or the end of the filter, found {}", parser.found(parser.pos)),
        )),
    }
}

/// Parses the `valFilter "]"` of a PATCH path (RFC 7644 §3.5.2) whose `[` is at byte `open` of
/// `text`, with paths relative to `parent`. Returns the filter and the byte offset just past
/// the `]`. Errors are `400 invalidPath`, with positions counted in the whole path.
pub(crate) fn value_filter(text: &str, parent: &AttrPath, open: usize) -> Result<(Filter, usize), ScimError> {
    check_length(text, Syntax::Path, MAX_FILTER_LEN)?;
    let mut parser = Parser::new(text, Syntax::Path, MAX_FILTER_DEPTH);
    parser.pos = open + '['.len_utf8();
    let filter = parser.or_expr(Some(parent), 1, Some("'['"))?;
    parser.close(']', open)?;
    Ok((filter, parser.pos))
}

/// What is being parsed; decides the error's `scimType` and wording.
#[derive(Debug, Clone, Copy)]
enum Syntax {
    Filter,
    Path,
}

impl Syntax {
    fn noun(self) -> &'static str {
        match self {
            Syntax::Filter => "filter",
            Syntax::Path => "path",
        }
    }

    fn error(self, detail: String) -> ScimError {
        match self {
            Syntax::Filter => ScimError::invalid_filter(detail),
            Syntax::Path => ScimError::invalid_path(detail),
        }
    }
}

fn check_length(text: &str, syntax: Syntax, max_len: usize) -> Result<(), ScimError> {
    // A character is at least one byte, so only long inputs need counting.
    if text.len() > max_len {
        let chars = text.chars().count();
        if chars > max_len {
            return Err(syntax
                .error(format!("invalid {}: it is {chars} characters long; the limit is {max_len}", syntax.noun())));
        }
    }
    Ok(())
}

/// Characters that end a bare word (an operator, a keyword or an unquoted value).
fn is_delimiter(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | '"')
}

/// Characters of an attribute path: names, `$ref`, and URNs such as `urn:...:2.0:User:`.
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '$' | ':' | '.')
}

/// A recursive-descent parser over the text, with a byte cursor.
struct Parser<'a> {
    text: &'a str,
    /// Byte offset of the next character; always on a character boundary.
    pos: usize,
    /// Comparisons parsed so far, against [`MAX_FILTER_TERMS`].
    terms: usize,
    syntax: Syntax,
    /// Deepest nesting accepted, at most [`MAX_FILTER_DEPTH`].
    max_depth: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, syntax: Syntax, max_depth: usize) -> Self {
        Parser { text, pos: 0, terms: 0, syntax, max_depth }
    }

    /// An error at byte offset `at`, reported as a 1-based character position.
    fn error(&self, at: usize, message: impl std::fmt::Display) -> ScimError {
        let position = self.text.get(..at).map_or(0, |s| s.chars().count()) + 1;
        self.syntax.error(format!("invalid {} at position {position}: {message}", self.syntax.noun()))
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// Byte offset where the run of characters satisfying `keep` starting at the cursor ends.
    fn scan(&self, keep: impl Fn(char) -> bool) -> usize {
        let rest = self.rest();
        self.pos + rest.find(|c| !keep(c)).unwrap_or(rest.len())
    }

    /// The bare word at the cursor (possibly empty).
    fn word(&self) -> &'a str {
        let end = self.scan(|c| !is_delimiter(c));
        self.text.get(self.pos..end).unwrap_or("")
    }

    /// Describes the token at byte offset `at` for an error message.
    fn found(&self, at: usize) -> String {
        let rest = self.text.get(at..).unwrap_or("");
        let token = match rest.chars().next() {
            None => return format!("the end of the {}", self.syntax.noun()),
            Some('"') => &rest[..string_token_len(rest)],
            Some(c) if is_delimiter(c) && !c.is_whitespace() => &rest[..c.len_utf8()],
            Some(_) => rest.split(is_delimiter).next().unwrap_or(rest),
        };
        format!("'{}'", shorten(token))
    }

    /// Consumes the keyword `kw` (case-insensitive) if it is the next word.
    fn keyword(&mut self, kw: &str) -> bool {
        let save = self.pos;
        self.skip_ws();
        let word = self.word();
        if word.eq_ignore_ascii_case(kw) {
            self.pos += word.len();
            true
        } else {
            self.pos = save;
            false
        }
    }

    /// `FILTER *("or" FILTER)`, left-associative. `scope` is the parent attribute inside a
    /// value path; `after` names what came before, for error messages.
    fn or_expr(&mut self, scope: Option<&AttrPath>, depth: usize, after: Option<&str>) -> Result<Filter, ScimError> {
        let mut left = self.and_expr(scope, depth, after)?;
        // A loop, not recursion: a long chain must not grow the stack.
        while self.keyword("or") {
            let right = self.and_expr(scope, depth, Some("'or'"))?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// `factor *("and" factor)`, left-associative.
    fn and_expr(&mut self, scope: Option<&AttrPath>, depth: usize, after: Option<&str>) -> Result<Filter, ScimError> {
        let mut left = self.factor(scope, depth, after)?;
        while self.keyword("and") {
            let right = self.factor(scope, depth, Some("'and'"))?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// A parenthesised filter, `not (...)`, a value path or a comparison.
    fn factor(&mut self, scope: Option<&AttrPath>, depth: usize, after: Option<&str>) -> Result<Filter, ScimError> {
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            Some('(') => {
                self.enter(depth, start)?;
                self.pos += 1;
                let inner = self.or_expr(scope, depth + 1, Some("'('"))?;
                self.close(')', start)?;
                Ok(inner)
            }
            // `$` for `$ref`, a sub-attribute name that value paths use bare: `groups[$ref pr]`.
            Some(c) if c.is_ascii_alphabetic() || c == '$' => {
                let end = self.scan(is_path_char);
                let word = &self.text[start..end];
                if word.eq_ignore_ascii_case("not") {
                    self.pos = end;
                    self.skip_ws();
                    if self.peek() != Some('(') {
                        return Err(self.error(
                            self.pos,
                            format!(
                                "expected '(' after 'not' (write not (expression)), found {}",
                                self.found(self.pos)
                            ),
                        ));
                    }
                    self.enter(depth, start)?;
                    let open = self.pos;
                    self.pos += 1;
                    let inner = self.or_expr(scope, depth + 1, Some("'('"))?;
                    self.close(')', open)?;
                    return Ok(Filter::Not(Box::new(inner)));
                }
                if word.eq_ignore_ascii_case("and") || word.eq_ignore_ascii_case("or") {
                    // Reserved: `a pr or or b pr` is a typo, not an attribute named `or`.
                    return Err(self.expected_expression(start, after));
                }
                let path = AttrPath::parse(word).map_err(|e| self.error(start, e.detail))?;
                self.pos = end;
                self.attr_expr(path, start, scope, depth)
            }
            _ => Err(self.expected_expression(start, after)),
        }
    }

    /// The error for a missing expression at byte `at`, which follows `after`.
    fn expected_expression(&self, at: usize, after: Option<&str>) -> ScimError {
        let after = after.map(|a| format!(" after {a}")).unwrap_or_default();
        self.error(at, format!("expected an attribute path, 'not' or '('{after}, found {}", self.found(at)))
    }

    /// What follows an attribute path that starts at byte `start`: `[...]` or a condition.
    fn attr_expr(
        &mut self,
        path: AttrPath,
        start: usize,
        scope: Option<&AttrPath>,
        depth: usize,
    ) -> Result<Filter, ScimError> {
        let save = self.pos;
        self.skip_ws();
        if self.peek() != Some('[') {
            self.pos = save;
            if let Some(parent) = scope
                && (path.schema.is_some() || path.sub.is_some())
            {
                return Err(self.error(
                    start,
                    format!(
                        "inside '{parent}[...]' paths are relative to '{parent}': name its sub-attribute \
                         alone (e.g. 'value'), without a schema URN or '.'; found '{path}'"
                    ),
                ));
            }
            return self.condition(path, start);
        }
        let open = self.pos;
        if let Some(parent) = scope {
            return Err(
                self.error(open, format!("value filters cannot be nested: '{path}[' appears inside '{parent}[...]'"))
            );
        }
        if path.sub.is_some() {
            return Err(self.error(
                start,
                format!("a value filter '[...]' follows a multi-valued attribute, not the sub-attribute '{path}'"),
            ));
        }
        self.enter(depth, open)?;
        self.pos += 1;
        let inner = self.or_expr(Some(&path), depth + 1, Some("'['"))?;
        self.close(']', open)?;
        if self.peek() != Some('.') {
            return Ok(Filter::ValuePath(path, Box::new(inner)));
        }
        // The extension: `emails[type eq "work"].value eq "x"` is the element filter
        // `type eq "work" and value eq "x"`.
        self.pos += 1;
        let sub_start = self.pos;
        let sub_end = self.scan(is_path_char);
        let name = &self.text[sub_start..sub_end];
        if !is_attr_name(name) {
            return Err(self.error(
                sub_start,
                format!("expected a sub-attribute name of '{path}' after '].', found {}", self.found(sub_start)),
            ));
        }
        self.pos = sub_end;
        let condition = self.condition(AttrPath::simple(name), sub_start)?;
        Ok(Filter::ValuePath(path, Box::new(Filter::And(Box::new(inner), Box::new(condition)))))
    }

    /// `pr` or `compareOp compValue` after the path that starts at byte `start`.
    fn condition(&mut self, path: AttrPath, start: usize) -> Result<Filter, ScimError> {
        self.terms += 1;
        if self.terms > MAX_FILTER_TERMS {
            return Err(self.error(
                start,
                format!(
                    "the {} has more than {MAX_FILTER_TERMS} comparisons; split it into several requests",
                    self.syntax.noun()
                ),
            ));
        }
        self.skip_ws();
        let op_start = self.pos;
        let word = self.word();
        if word.eq_ignore_ascii_case("pr") {
            self.pos += word.len();
            return Ok(Filter::Present(path));
        }
        let Some(op) = CompareOp::from_keyword(word) else {
            return Err(self.error(
                op_start,
                format!(
                    "expected a comparison operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) after '{path}', found {}",
                    self.found(op_start)
                ),
            ));
        };
        self.pos += word.len();
        let value = self.comp_value(op)?;
        Ok(Filter::Compare(path, op, value))
    }

    /// `compValue`: a JSON string, number, `true`, `false` or `null`.
    fn comp_value(&mut self, op: CompareOp) -> Result<CompValue, ScimError> {
        self.skip_ws();
        let start = self.pos;
        if self.peek() == Some('"') {
            return self.string().map(CompValue::Str);
        }
        let word = self.word();
        let expected = "a \"quoted string\", a number, true, false or null";
        if word.is_empty() {
            return Err(
                self.error(start, format!("expected a value after '{op}' ({expected}), found {}", self.found(start)))
            );
        }
        let value = if word.eq_ignore_ascii_case("true") {
            CompValue::Bool(true)
        } else if word.eq_ignore_ascii_case("false") {
            CompValue::Bool(false)
        } else if word.eq_ignore_ascii_case("null") {
            CompValue::Null
        } else if word.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '-' | '+' | '.')) {
            let Some(number) = json_number(word) else {
                return Err(self.error(
                    start,
                    format!(
                        "'{}' is not a valid number: use JSON syntax such as 42, -1.5 or 2e10, within the range of a \
                         64-bit float",
                        shorten(word)
                    ),
                ));
            };
            CompValue::Number(number)
        } else if word.starts_with('\'') {
            return Err(self.error(
                start,
                format!("strings are quoted with double quotes, not single quotes: found {}", self.found(start)),
            ));
        } else {
            // Some clients send unquoted strings (`externalId eq jyoung`). Accepting them would
            // make `eq true` and `eq "true"` ambiguous, so say exactly how to fix the request.
            return Err(self.error(
                start,
                format!(
                    "expected a value after '{op}' ({expected}), found the bare word '{w}': \
                     string values must be quoted, e.g. \"{w}\"",
                    w = shorten(word)
                ),
            ));
        };
        self.pos += word.len();
        Ok(value)
    }

    /// A JSON string; the cursor is on the opening quote.
    fn string(&mut self) -> Result<String, ScimError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let at = self.pos;
            let Some(c) = self.peek() else {
                return Err(self.error(open, "unterminated string: add the closing '\"'"));
            };
            self.pos += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\\' => out.push(self.escape(at)?),
                c if u32::from(c) < 0x20 => {
                    return Err(self.error(
                        at,
                        format!(
                            "control character U+{:04X} must be escaped inside a string (\\n, \\t or \\u{:04x})",
                            u32::from(c),
                            u32::from(c)
                        ),
                    ));
                }
                c => out.push(c),
            }
        }
    }

    /// The character of the escape sequence whose backslash is at byte `at`; the cursor is
    /// just past the backslash.
    fn escape(&mut self, at: usize) -> Result<char, ScimError> {
        let Some(c) = self.peek() else {
            return Err(self.error(at, "unterminated escape sequence at the end of the filter"));
        };
        self.pos += c.len_utf8();
        Ok(match c {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let unit = self.hex4(at)?;
                match unit {
                    0xD800..=0xDBFF => {
                        // A high surrogate must be followed by `\u` and a low surrogate.
                        let low_at = self.pos;
                        let low = if self.rest().starts_with("\\u") {
                            self.pos += 2;
                            self.hex4(low_at)?
                        } else {
                            0
                        };
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(self.error(
                                at,
                                format!(
                                    "\\u{unit:04x} is a lone surrogate: it must be followed by a \\uDC00-\\uDFFF escape"
                                ),
                            ));
                        }
                        let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                        char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER)
                    }
                    0xDC00..=0xDFFF => {
                        return Err(self.error(
                            at,
                            format!("\\u{unit:04x} is a lone surrogate: it must follow a \\uD800-\\uDBFF escape"),
                        ));
                    }
                    // Not a surrogate, so always a valid scalar value.
                    _ => char::from_u32(unit).unwrap_or(char::REPLACEMENT_CHARACTER),
                }
            }
            other => {
                return Err(self.error(
                    at,
                    format!(
                        "invalid escape '\\{other}' in string: valid escapes are \\\" \\\\ \\/ \\b \\f \\n \\r \\t and \\uXXXX"
                    ),
                ));
            }
        })
    }

    /// Four hex digits after `\u`; `at` is the escape's backslash.
    fn hex4(&mut self, at: usize) -> Result<u32, ScimError> {
        let digits = self.rest().get(..4).filter(|d| d.chars().all(|c| c.is_ascii_hexdigit()));
        let Some(digits) = digits else {
            return Err(self.error(at, "\\u must be followed by four hex digits, e.g. \\u00e9"));
        };
        self.pos += 4;
        u32::from_str_radix(digits, 16).map_err(|_| self.error(at, "\\u must be followed by four hex digits"))
    }

    /// Counts one more level of nesting at byte `at`.
    fn enter(&self, depth: usize, at: usize) -> Result<(), ScimError> {
        if depth >= self.max_depth {
            return Err(self.error(
                at,
                format!(
                    "the {} nests parentheses, 'not' and value filters more than {} levels deep",
                    self.syntax.noun(),
                    self.max_depth
                ),
            ));
        }
        Ok(())
    }

    /// Consumes `close` (`)` or `]`), which ends the group opened at byte `open`.
    fn close(&mut self, close: char, open: usize) -> Result<(), ScimError> {
        self.skip_ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(());
        }
        let opener = self.text.get(open..).and_then(|s| s.chars().next()).unwrap_or('(');
        let open_position = self.text.get(..open).map_or(0, |s| s.chars().count()) + 1;
        Err(self.error(
            self.pos,
            format!(
                "expected 'and', 'or' or '{close}' to close the '{opener}' at position {open_position}, found {}",
                self.found(self.pos)
            ),
        ))
    }
}

/// The JSON number `text` (RFC 8259 §6 syntax), as `serde_json` would read it: an integer when
/// it has no fraction or exponent and fits 64 bits, a finite `f64` otherwise.
///
/// The digits are converted by the standard library rather than `serde_json`, whose default
/// float parser may be off by one unit in the last place, so that printing and parsing again
/// gives back the same number.
fn json_number(text: &str) -> Option<Number> {
    let bytes = text.as_bytes();
    let digits_from = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut i = usize::from(bytes.first() == Some(&b'-'));
    i = match bytes.get(i) {
        Some(b'0') => i + 1,
        Some(b'1'..=b'9') => digits_from(i + 1),
        _ => return None,
    };
    let integer = i == bytes.len();
    if bytes.get(i) == Some(&b'.') {
        let end = digits_from(i + 1);
        if end == i + 1 {
            return None;
        }
        i = end;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let end = digits_from(i);
        if end == i {
            return None;
        }
        i = end;
    }
    if i != bytes.len() {
        return None;
    }
    if integer {
        if let Ok(n) = text.parse::<i64>() {
            return Some(n.into());
        }
        if let Ok(n) = text.parse::<u64>() {
            return Some(n.into());
        }
    }
    text.parse::<f64>().ok().and_then(Number::from_f64)
}

/// Byte length of the string token at the start of `rest` (which starts with `"`), up to and
/// including its closing quote, or all of `rest` if it is unterminated.
fn string_token_len(rest: &str) -> usize {
    let mut escaped = false;
    for (i, c) in rest.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return i + 1,
            _ => {}
        }
    }
    rest.len()
}

/// `token`, cut to a readable length for an error message.
fn shorten(token: &str) -> String {
    const MAX: usize = 40;
    match token.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &token[..cut]),
        None => token.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Filter {
        parse(text).unwrap_or_else(|e| panic!("{text}: {}", e.detail))
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(f) => panic!("{text} parsed as {f:?}"),
            Err(e) => {
                assert_eq!(e.status, 400);
                assert_eq!(e.scim_type, Some(crate::ScimType::InvalidFilter));
                e.detail
            }
        }
    }

    fn path(text: &str) -> AttrPath {
        AttrPath::parse(text).unwrap()
    }

    fn cmp(attr: &str, op: CompareOp, value: CompValue) -> Filter {
        Filter::Compare(path(attr), op, value)
    }

    fn s(text: &str) -> CompValue {
        CompValue::Str(text.to_owned())
    }

    fn pr(attr: &str) -> Filter {
        Filter::Present(path(attr))
    }

    fn and(a: Filter, b: Filter) -> Filter {
        Filter::And(Box::new(a), Box::new(b))
    }

    fn or(a: Filter, b: Filter) -> Filter {
        Filter::Or(Box::new(a), Box::new(b))
    }

    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    #[test]
    fn every_operator() {
        for op in CompareOp::ALL {
            assert_eq!(p(&format!("userName {op} \"x\"")), cmp("userName", op, s("x")));
            let upper = op.as_str().to_uppercase();
            assert_eq!(p(&format!("userName {upper} \"x\"")), cmp("userName", op, s("x")));
        }
        assert_eq!(p("title pr"), pr("title"));
        assert_eq!(p("title PR"), pr("title"));
    }

    #[test]
    fn literals() {
        assert_eq!(p("active eq true"), cmp("active", CompareOp::Eq, CompValue::Bool(true)));
        assert_eq!(p("active eq False"), cmp("active", CompareOp::Eq, CompValue::Bool(false)));
        assert_eq!(p("title eq NULL"), cmp("title", CompareOp::Eq, CompValue::Null));
        let int = |n: i64| CompValue::Number(n.into());
        let float = |f: f64| CompValue::Number(Number::from_f64(f).unwrap());
        for (text, want) in [
            ("0", int(0)),
            ("-0", int(0)),
            ("42", int(42)),
            ("-7", int(-7)),
            ("18446744073709551615", CompValue::Number(u64::MAX.into())),
            ("99999999999999999999", float(1e20)),
            ("1.5", float(1.5)),
            ("-0.25", float(-0.25)),
            ("2e10", float(2e10)),
            ("1E-3", float(1e-3)),
            ("-1.5e+3", float(-1500.0)),
            ("1.0", float(1.0)),
        ] {
            assert_eq!(p(&format!("x eq {text}")), cmp("x", CompareOp::Eq, want), "{text}");
        }
        for bad in ["01", "1.", ".5", "+1", "1e", "1e+", "-", "-a", "1.2.3", "0x10", "1e400", "--1", "1.5x"] {
            let e = err(&format!("x eq {bad}"));
            assert!(e.contains("position 6") && e.contains("not a valid number"), "{bad}: {e}");
        }
    }

    #[test]
    fn strings_and_escapes() {
        let cases = [
            (r#""plain""#, "plain"),
            (r#""""#, ""),
            (r#""a\"b""#, "a\"b"),
            (r#""a\\b""#, "a\\b"),
            (r#""a\/b""#, "a/b"),
            (r#""\b\f\n\r\t""#, "\u{8}\u{c}\n\r\t"),
            (r#""\u00e9\u00C9""#, "éÉ"),
            (r#""\ud83d\ude00""#, "😀"),
            ("\"ünïcödé 😀 ]) and\"", "ünïcödé 😀 ]) and"),
        ];
        for (lit, want) in cases {
            assert_eq!(p(&format!("x eq {lit}")), cmp("x", CompareOp::Eq, s(want)), "{lit}");
        }
        for (bad, why) in [
            (r#""abc"#, "unterminated string"),
            (r#""a\qb""#, "invalid escape '\\q'"),
            (r#""\u12""#, "four hex digits"),
            (r#""\ud83d""#, "lone surrogate"),
            (r#""\ud83d\u0041""#, "lone surrogate"),
            (r#""\ude00""#, "lone surrogate"),
            ("\"a\tb\"", "control character U+0009"),
            ("\"a\\", "unterminated escape"),
        ] {
            let e = err(&format!("x eq {bad}"));
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn precedence_and_associativity() {
        let (a, b, c) = (pr("a"), pr("b"), pr("c"));
        assert_eq!(p("a pr or b pr and c pr"), or(a.clone(), and(b.clone(), c.clone())));
        assert_eq!(p("a pr and b pr or c pr"), or(and(a.clone(), b.clone()), c.clone()));
        assert_eq!(p("a pr or b pr or c pr"), or(or(a.clone(), b.clone()), c.clone()));
        assert_eq!(p("a pr and b pr and c pr"), and(and(a.clone(), b.clone()), c.clone()));
        assert_eq!(p("(a pr or b pr) and c pr"), and(or(a.clone(), b.clone()), c.clone()));
        assert_eq!(p("a pr AND (b pr OR c pr)"), and(a.clone(), or(b.clone(), c.clone())));
        assert_eq!(p("((a pr))"), a);
    }

    #[test]
    fn not_and_whitespace() {
        let inner = or(pr("a"), pr("b"));
        let want = and(pr("c"), Filter::Not(Box::new(inner)));
        assert_eq!(p("c pr and not (a pr or b pr)"), want);
        assert_eq!(p("  c pr\tand NOT(a pr or b pr)  "), want);
        assert_eq!(p("c pr and not(a pr or b pr)"), want);
        assert_eq!(p("(userName eq \"x\")and(title pr)"), and(cmp("userName", CompareOp::Eq, s("x")), pr("title")));
        assert_eq!(p("not (not (a pr))"), Filter::Not(Box::new(Filter::Not(Box::new(pr("a"))))));
        assert!(err("not a pr").contains("expected '(' after 'not'"));
    }

    #[test]
    fn paths() {
        let f = p(&format!("{ENTERPRISE}:department eq \"Finance\""));
        assert_eq!(f, cmp(&format!("{ENTERPRISE}:department"), CompareOp::Eq, s("Finance")));
        let Filter::Compare(path, ..) = p(&format!("{ENTERPRISE}:manager.value eq \"x\"")) else { panic!() };
        assert_eq!(path.schema.as_deref(), Some(ENTERPRISE));
        assert_eq!((path.name.as_str(), path.sub.as_deref()), ("manager", Some("value")));
        assert_eq!(p("name.givenName sw \"B\""), cmp("name.givenName", CompareOp::Sw, s("B")));
        assert_eq!(
            p("meta.lastModified gt \"2011-05-13T04:42:34Z\"").to_string(),
            "meta.lastModified gt \"2011-05-13T04:42:34Z\""
        );
        assert_eq!(p("members.$ref pr"), pr("members.$ref"));
        assert_eq!(
            p("urn:ietf:params:scim:schemas:core:2.0:User:name.familyName co \"O'Malley\""),
            cmp("urn:ietf:params:scim:schemas:core:2.0:User:name.familyName", CompareOp::Co, s("O'Malley"))
        );
    }

    #[test]
    fn value_paths() {
        let inner = and(cmp("type", CompareOp::Eq, s("work")), cmp("value", CompareOp::Co, s("@corp")));
        let want = Filter::ValuePath(path("emails"), Box::new(inner.clone()));
        assert_eq!(p("emails[type eq \"work\" and value co \"@corp\"]"), want);
        assert_eq!(p("emails [ type eq \"work\" and value co \"@corp\" ]"), want);
        let f = p("userType eq \"Employee\" and emails[type eq \"work\" and value co \"@corp\"] or title pr");
        assert_eq!(f, or(and(cmp("userType", CompareOp::Eq, s("Employee")), want), pr("title")));
        let f = p(&format!("{ENTERPRISE}:manager[value eq \"1\"]"));
        assert!(matches!(f, Filter::ValuePath(ref p, _) if p.schema.as_deref() == Some(ENTERPRISE)));
        assert_eq!(p("groups[$ref pr]"), Filter::ValuePath(path("groups"), Box::new(pr("$ref"))));
        let f = p("emails[not (type eq \"work\") and (primary eq true or display pr)]");
        assert!(matches!(f, Filter::ValuePath(..)));
    }

    #[test]
    fn value_path_with_trailing_sub_attribute() {
        let work = cmp("type", CompareOp::Eq, s("work"));
        let want = Filter::ValuePath(path("emails"), Box::new(and(work.clone(), cmp("value", CompareOp::Eq, s("x")))));
        assert_eq!(p("emails[type eq \"work\"].value eq \"x\""), want);
        let want_pr = Filter::ValuePath(path("emails"), Box::new(and(work, pr("value"))));
        assert_eq!(p("emails[type eq \"work\"].value pr"), want_pr);
        let f = p("emails[type eq \"work\"].value eq \"x\" and title pr");
        assert_eq!(f, and(want, pr("title")));
        assert!(err("emails[type eq \"work\"].1x eq \"x\"").contains("expected a sub-attribute name"));
        assert!(err("emails[type eq \"work\"].value").contains("expected a comparison operator"));
    }

    #[test]
    fn invalid_value_paths() {
        assert!(err("emails[value[x eq 1]]").contains("cannot be nested"));
        assert!(err("emails[type eq \"a\" and x[y pr]]").contains("cannot be nested"));
        assert!(err("emails[emails.type eq \"work\"]").contains("relative"));
        assert!(err(&format!("emails[{ENTERPRISE}:type eq \"work\"]")).contains("relative to 'emails'"));
        assert!(err("name.givenName[x pr]").contains("not the sub-attribute"));
        assert!(err("emails[type eq \"work\"").contains("to close the '[' at position 7"));
        assert!(err("emails[]").contains("expected an attribute path, 'not' or '(' after '['"));
    }

    #[test]
    fn error_positions_and_messages() {
        assert_eq!(
            err("userName equals \"x\""),
            "invalid filter at position 10: expected a comparison operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) \
             after 'userName', found 'equals'"
        );
        assert_eq!(
            err("externalId eq jyoung"),
            "invalid filter at position 15: expected a value after 'eq' (a \"quoted string\", a number, true, \
             false or null), found the bare word 'jyoung': string values must be quoted, e.g. \"jyoung\""
        );
        // Positions count characters, not bytes.
        assert!(
            err("x eq \"é\" nd y pr").starts_with("invalid filter at position 10: expected 'and', 'or' or the end")
        );
        assert!(err("").contains("position 1: expected an attribute path, 'not' or '(', found the end of the filter"));
        assert!(err("   ").contains("position 4"));
        assert!(err("userName eq").contains("position 12: expected a value after 'eq'"));
        assert!(err("userName").contains("found the end of the filter"));
        assert!(err("a pr and").contains("after 'and', found the end"));
        assert!(
            err("a pr or or b pr")
                .contains("position 9: expected an attribute path, 'not' or '(' after 'or', found 'or'")
        );
        assert!(err("a pr)").contains("position 5: unbalanced ')'"));
        assert!(err("(a pr").contains("expected 'and', 'or' or ')' to close the '(' at position 1, found the end"));
        assert!(err("a eq 'x'").contains("double quotes, not single quotes"));
        assert!(err("\"x\" eq a").contains("position 1: expected an attribute path, 'not' or '(', found '\"x\"'"));
        assert!(err("a eq \"x\" \"y\"").contains("found '\"y\"'"));
        assert!(err("1abc eq 1").contains("position 1"));
        assert!(err("a.b.c eq 1").contains("not a valid attribute path"));
        assert!(err("userName==\"x\"").contains("found '=='"));
        assert!(err("a eq (1)").contains("expected a value after 'eq'"));
    }

    #[test]
    fn limits() {
        let long = format!("userName eq \"{}\"", "x".repeat(MAX_FILTER_LEN));
        assert!(err(&long).contains("characters long; the limit is 4096"));

        let chain = vec!["a eq 1"; 10_000].join(" or ");
        assert!(err(&chain).contains("limit is 4096"));
        let terms = vec!["a pr"; MAX_FILTER_TERMS + 1].join(" or ");
        assert!(terms.len() < MAX_FILTER_LEN);
        assert!(err(&terms).contains("more than 200 comparisons"));
        let terms = vec!["a pr"; MAX_FILTER_TERMS].join(" and ");
        assert!(parse(&terms).is_ok());

        let deep = format!("{}a pr{}", "(".repeat(1000), ")".repeat(1000));
        assert!(err(&deep).contains("more than 32 levels deep"));
        let deep = format!("{}a pr{}", "not(".repeat(500), ")".repeat(500));
        assert!(err(&deep).contains("more than 32 levels deep"));
        let ok = format!("{}a pr{}", "(".repeat(MAX_FILTER_DEPTH), ")".repeat(MAX_FILTER_DEPTH));
        assert!(parse(&ok).is_ok());
        let too_deep = format!("{}a pr{}", "(".repeat(MAX_FILTER_DEPTH + 1), ")".repeat(MAX_FILTER_DEPTH + 1));
        assert!(err(&too_deep).contains("position 33"));
        let nested = format!("emails[{}type pr{}]", "(".repeat(MAX_FILTER_DEPTH - 1), ")".repeat(MAX_FILTER_DEPTH - 1));
        assert!(parse(&nested).is_ok());
        let nested = format!("emails[{}type pr{}]", "(".repeat(MAX_FILTER_DEPTH), ")".repeat(MAX_FILTER_DEPTH));
        assert!(err(&nested).contains("levels deep"));
    }

    #[test]
    fn rfc_7644_examples() {
        for text in [
            r#"userName Eq "john""#,
            r#"Username eq "john""#,
            r#"name.familyName co "O'Malley""#,
            r#"userName sw "J""#,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
            r#"title pr"#,
            r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
            r#"title pr and userType eq "Employee""#,
            r#"title pr or userType eq "Intern""#,
            r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
            r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType eq "Employee" and (emails.type eq "work")"#,
            r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
            r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
        ] {
            p(text);
        }
    }

    #[test]
    fn value_filter_for_patch_paths() {
        let parent = path("members");
        let text = "members[value eq \"2819c223\"].display";
        let (f, end) = value_filter(text, &parent, 7).unwrap();
        assert_eq!(f, cmp("value", CompareOp::Eq, s("2819c223")));
        assert_eq!(&text[end..], ".display");
        let e = value_filter("members[value eq]", &parent, 7).unwrap_err();
        assert_eq!(e.scim_type, Some(crate::ScimType::InvalidPath));
        assert!(e.detail.starts_with("invalid path at position 17: expected a value after 'eq'"), "{}", e.detail);
    }
}
