//! Why a filter did or did not match a resource: the clauses that failed, with the values the
//! resource had. This is what a mapping's dry run and its refusals show an administrator.

use serde::Serialize;
use serde_json::Value;

use super::Filter;
use super::eval::values_of;
use crate::schema::ResourceType;

/// One clause that did not hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedClause {
    /// The clause, printed as a filter (`department eq "Finance"`).
    pub clause: String,
    /// The attribute it tests.
    pub attribute: String,
    /// The values the resource has there (empty: the attribute is absent).
    pub actual: Vec<Value>,
}

/// How a filter fared against a resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// Whether the filter matched.
    pub matched: bool,
    /// When it did not: the clauses that made it fail (each failing branch of an `or`, the first
    /// failing side of an `and`).
    pub failed: Vec<FailedClause>,
}

/// Clauses reported at most, so that an explanation stays readable.
const MAX_CLAUSES: usize = 10;

impl Filter {
    /// Explains the outcome of [`Filter::matches`] on `resource`.
    pub fn explain(&self, resource: &Value, rt: &ResourceType) -> Explanation {
        if self.matches(resource, rt) {
            return Explanation { matched: true, failed: Vec::new() };
        }
        let mut failed = Vec::new();
        collect(self, resource, rt, &mut failed);
        failed.truncate(MAX_CLAUSES);
        Explanation { matched: false, failed }
    }
}

/// Collects the clauses that make `filter` (which does not match) fail.
fn collect(filter: &Filter, resource: &Value, rt: &ResourceType, out: &mut Vec<FailedClause>) {
    if out.len() >= MAX_CLAUSES {
        return;
    }
    match filter {
        Filter::And(a, b) => {
            // The first side that fails is reason enough.
            let failing = if a.matches(resource, rt) { b } else { a };
            collect(failing, resource, rt, out);
        }
        Filter::Or(a, b) => {
            collect(a, resource, rt, out);
            collect(b, resource, rt, out);
        }
        Filter::Not(inner) => out.push(clause(filter, inner_path(inner), resource, rt)),
        Filter::Present(path) | Filter::Compare(path, _, _) | Filter::ValuePath(path, _) => {
            out.push(clause(filter, Some(path), resource, rt));
        }
    }
}

/// The first attribute a clause tests, for showing the resource's value.
fn inner_path(filter: &Filter) -> Option<&crate::path::AttrPath> {
    match filter {
        Filter::And(a, _) | Filter::Or(a, _) => inner_path(a),
        Filter::Not(inner) => inner_path(inner),
        Filter::Present(p) | Filter::Compare(p, _, _) | Filter::ValuePath(p, _) => Some(p),
    }
}

fn clause(filter: &Filter, path: Option<&crate::path::AttrPath>, resource: &Value, rt: &ResourceType) -> FailedClause {
    FailedClause {
        clause: filter.to_string(),
        attribute: path.map(ToString::to_string).unwrap_or_default(),
        actual: path.map(|p| values_of(resource, rt, p).into_iter().cloned().collect()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::filter::parse;
    use crate::schema::ResourceKind;

    #[test]
    fn names_the_failing_clause_and_the_users_value() {
        let rt = ResourceKind::User.resource_type();
        let user = json!({
            "userName": "alice",
            "company": "Acme",
            "title": "Accountant",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { "department": "Sales" }
        });
        let f = parse("company eq \"Acme\" and title co \"Engineer\"").unwrap();
        let e = f.explain(&user, rt);
        assert!(!e.matched);
        assert_eq!(e.failed.len(), 1);
        assert_eq!(e.failed[0].clause, "title co \"Engineer\"");
        assert_eq!(e.failed[0].actual, vec![json!("Accountant")]);

        let f = parse(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"Finance\" or nickName pr",
        )
        .unwrap();
        let e = f.explain(&user, rt);
        assert_eq!(e.failed.len(), 2);
        assert_eq!(e.failed[0].actual, vec![json!("Sales")]);
        assert!(e.failed[1].actual.is_empty(), "nickName is absent");

        assert!(parse("company eq \"acme\"").unwrap().explain(&user, rt).matched);
    }
}
