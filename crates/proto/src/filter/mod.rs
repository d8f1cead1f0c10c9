//! The SCIM filter language (RFC 7644 §3.4.2.2): an AST first, SQL second.
//!
//! The same AST is parsed from text ([`parse`]), printed back ([`fmt::Display`]), evaluated in
//! memory against a JSON resource ([`Filter::matches`]), checked against a resource type
//! ([`Filter::validate`]) and compiled to SQL by the store.

use std::fmt;
use std::str::FromStr;

use crate::error::ScimError;
use crate::path::AttrPath;

mod eval;
mod explain;
mod parse;
mod print;
mod validate;

pub use eval::{compare_values, values_of};
pub use explain::{Explanation, FailedClause};
pub(crate) use parse::value_filter;
pub use parse::{
    FilterLimits, MAX_FILTER_DEPTH, MAX_FILTER_LEN, MAX_FILTER_TERMS, parse, parse_limited, parse_trusted,
};

/// A filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `a and b`
    And(Box<Filter>, Box<Filter>),
    /// `a or b`
    Or(Box<Filter>, Box<Filter>),
    /// `not (a)`
    Not(Box<Filter>),
    /// `attr pr`
    Present(AttrPath),
    /// `attr op value`
    Compare(AttrPath, CompareOp, CompValue),
    /// `attr[filter]`: some element of the multi-valued `attr` matches `filter`, whose paths are
    /// relative to the element (`emails[type eq "work"]`).
    ValuePath(AttrPath, Box<Filter>),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `eq`: equal.
    Eq,
    /// `ne`: not equal.
    Ne,
    /// `co`: contains.
    Co,
    /// `sw`: starts with.
    Sw,
    /// `ew`: ends with.
    Ew,
    /// `gt`: greater than.
    Gt,
    /// `ge`: greater than or equal to.
    Ge,
    /// `lt`: less than.
    Lt,
    /// `le`: less than or equal to.
    Le,
}

impl CompareOp {
    /// Every operator, in RFC order.
    pub const ALL: [CompareOp; 9] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ];

    /// The operator keyword, lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    /// The operator for a keyword, compared case-insensitively (`EQ` is `eq`).
    pub fn from_keyword(word: &str) -> Option<CompareOp> {
        CompareOp::ALL.into_iter().find(|op| op.as_str().eq_ignore_ascii_case(word))
    }

    /// True for the ordering operators `gt`, `ge`, `lt` and `le`.
    pub fn is_ordering(self) -> bool {
        matches!(self, CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le)
    }

    /// True for the substring operators `co`, `sw` and `ew`.
    pub fn is_substring(self) -> bool {
        matches!(self, CompareOp::Co | CompareOp::Sw | CompareOp::Ew)
    }
}

/// A comparison value: `false`, `null`, `true`, a number or a string (RFC 7644 `compValue`).
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// A JSON number: an integer when it has no fraction or exponent and fits 64 bits.
    Number(serde_json::Number),
    /// A JSON string, unescaped.
    Str(String),
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Filter {
    type Err = ScimError;

    /// Same as [`parse`].
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse(text)
    }
}
