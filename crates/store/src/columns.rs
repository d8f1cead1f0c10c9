//! What every backend stores beside a resource's document, in plain values: the indexed columns,
//! the placement columns, relation items and sort keys. Both backends write and read through these,
//! so a resource means the same on SQLite and PostgreSQL; only the SQL differs.

use std::collections::HashMap;

use scim_proto::schema::AttrType;
use scim_proto::{AttrPath, ResourceKind};
use scimd_domain::events::Cause;
use scimd_domain::provisioning::{Actor, Manager, Placement, UserState};
use scimd_domain::resources::StoredResource;
use serde_json::{Value, json};
use time::OffsetDateTime;

/// The columns a resource is written with, in the order of [`IndexedColumns`] and
/// [`PlacementColumns`]: insert and update are built from this one list, so they never disagree.
pub(crate) const WRITTEN: [&str; 17] = [
    "user_name",
    "user_name_fold",
    "external_id",
    "display_name",
    "display_name_fold",
    "active",
    "modified",
    "version",
    "doc",
    "state",
    "state_since",
    "profile_id",
    "region_id",
    "pending_cause",
    "preserved_by",
    "managed_by",
    "claimed_email",
];

/// Users SCIM may see: users the IdP deleted under the preserve policy are kept but hidden.
pub(crate) const VISIBLE: &str = "(r.state IS NULL OR r.state <> 'deleted')";

/// The columns an event row is read with, in the order the row readers expect.
pub(crate) const EVENT_COLUMNS: &str = "id, at, tenant_id, token_id, request_id, idp, method, path, operation, subject, \
     outcome, cause, status, detail, duration_ms, mentions";

/// The columns a resource row is read with, in the order the row readers expect.
pub(crate) const RESOURCE_COLUMNS: &str = "r.id, r.kind, r.doc, r.created, r.modified, r.version, r.state, \
     r.state_since, r.profile_id, r.region_id, r.pending_cause, r.preserved_by, r.managed_by, r.claimed_email";

/// A user's placement as column values (all `None` for a Group).
#[derive(Debug, Default)]
pub(crate) struct PlacementColumns {
    pub state: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub profile_id: Option<String>,
    pub region_id: Option<String>,
    pub pending_cause: Option<String>,
    pub preserved_by: Option<String>,
    pub managed_by: Option<String>,
    pub claimed_email: Option<String>,
}

fn actor_name(a: Actor) -> &'static str {
    match a {
        Actor::Admin => "admin",
        Actor::Idp => "idp",
    }
}

impl PlacementColumns {
    /// The columns of a placement.
    pub fn of(placement: Option<&Placement>) -> Self {
        let Some(p) = placement else { return PlacementColumns::default() };
        PlacementColumns {
            state: Some(p.state.as_str().to_owned()),
            since: Some(p.since),
            profile_id: p.profile_id.clone(),
            region_id: p.region_id.clone(),
            pending_cause: p.pending_cause.map(|c| c.as_str().to_owned()),
            preserved_by: p.preserved_by.map(|a| actor_name(a).to_owned()),
            managed_by: Some(
                match p.managed_by {
                    Manager::Admin => "admin",
                    Manager::Idp => "idp",
                }
                .to_owned(),
            ),
            claimed_email: p.claimed_email.clone(),
        }
    }

    /// The placement these columns describe; `None` for a Group (no state).
    pub fn placement(self) -> Option<Placement> {
        let state = self.state.as_deref().and_then(UserState::parse)?;
        let actor = |name: Option<&str>| match name {
            Some("admin") => Some(Actor::Admin),
            Some("idp") => Some(Actor::Idp),
            _ => None,
        };
        Some(Placement {
            state,
            since: self.since.unwrap_or(OffsetDateTime::UNIX_EPOCH),
            profile_id: self.profile_id,
            region_id: self.region_id,
            pending_cause: self.pending_cause.as_deref().and_then(Cause::parse),
            preserved_by: actor(self.preserved_by.as_deref()),
            managed_by: match self.managed_by.as_deref() {
                Some("admin") => Manager::Admin,
                _ => Manager::Idp,
            },
            claimed_email: self.claimed_email,
        })
    }
}

/// One email of a User, as indexed.
pub(crate) struct EmailRow {
    pub value_fold: Option<String>,
    pub type_fold: Option<String>,
    /// `None` when the element says nothing about `primary`.
    pub primary: Option<bool>,
}

/// One member of a Group, as stored.
pub(crate) struct Member {
    pub id: String,
    pub kind: ResourceKind,
    /// The display name the client sent, if any.
    pub display: Option<String>,
}

/// The columns a resource is found by, and the document as stored.
pub(crate) struct IndexedColumns {
    pub user_name: Option<String>,
    pub user_name_fold: Option<String>,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub display_name_fold: Option<String>,
    pub active: Option<bool>,
    pub emails: Vec<EmailRow>,
    /// A Group's members (kept in `group_members`, not in the document).
    pub members: Vec<Member>,
    pub doc: String,
}

/// Case folding for caseExact=false attributes; the filter evaluator folds the same way.
pub(crate) fn fold(s: &str) -> String {
    s.to_lowercase()
}

impl IndexedColumns {
    /// The columns of a resource.
    pub fn of(res: &StoredResource) -> Self {
        let text = |key: &str| res.doc.get(key).and_then(Value::as_str).map(str::to_owned);
        let user_name = if res.kind == ResourceKind::User { text("userName") } else { None };
        let display_name = text("displayName");
        let emails = match res.doc.get("emails").and_then(Value::as_array) {
            Some(list) if res.kind == ResourceKind::User => list
                .iter()
                .filter(|e| e.is_object())
                .map(|e| EmailRow {
                    value_fold: e.get("value").and_then(Value::as_str).map(fold),
                    type_fold: e.get("type").and_then(Value::as_str).map(fold),
                    primary: e.get("primary").and_then(Value::as_bool),
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut doc = res.doc.clone();
        let members = match doc.as_object_mut().and_then(|o| o.remove("members")) {
            Some(Value::Array(list)) if res.kind == ResourceKind::Group => list
                .iter()
                .filter_map(|m| {
                    let id = m.get("value")?.as_str()?.to_owned();
                    let kind = m
                        .get("type")
                        .and_then(Value::as_str)
                        .and_then(ResourceKind::from_name)
                        .unwrap_or(ResourceKind::User);
                    let display = m.get("display").and_then(Value::as_str).map(str::to_owned);
                    Some(Member { id, kind, display })
                })
                .collect(),
            _ => Vec::new(),
        };
        if let Some(obj) = doc.as_object_mut() {
            obj.remove("groups");
        }
        IndexedColumns {
            user_name_fold: user_name.as_deref().map(fold),
            user_name,
            external_id: text("externalId"),
            display_name_fold: display_name.as_deref().map(fold),
            display_name,
            active: if res.kind == ResourceKind::User { res.doc.get("active").and_then(Value::as_bool) } else { None },
            emails,
            members,
            doc: doc.to_string(),
        }
    }
}

/// One relation row: (owner id, related id, type, display).
pub(crate) type RelationRow = (String, String, String, Option<String>);

/// The query for the relation rows of resources of `kind`, with the tenant as `tenant` and the
/// owners' ids selected by `owners` (`IN (…)` or `= ANY($2)`), in the order they are served.
pub(crate) fn relations_sql(kind: ResourceKind, tenant: &str, owners: &str) -> String {
    match kind {
        ResourceKind::Group => format!(
            "SELECT m.group_id, m.member_id, m.member_kind, COALESCE(m.display, r.display_name, r.user_name)
             FROM group_members m
             LEFT JOIN resources r ON r.tenant_id = m.tenant_id AND r.id = m.member_id
             WHERE m.tenant_id = {tenant} AND m.group_id {owners}
             ORDER BY m.group_id, r.seq"
        ),
        ResourceKind::User => format!(
            "SELECT m.member_id, g.id, 'direct', g.display_name
             FROM group_members m
             JOIN resources g ON g.tenant_id = m.tenant_id AND g.id = m.group_id
             WHERE m.tenant_id = {tenant} AND m.member_id {owners}
             ORDER BY m.member_id, g.seq"
        ),
    }
}

/// Sets `members` on Groups or `groups` on Users from relation rows in their order.
pub(crate) fn attach_relations(kind: ResourceKind, list: &mut [StoredResource], rows: Vec<RelationRow>) {
    let key = match kind {
        ResourceKind::Group => "members",
        ResourceKind::User => "groups",
    };
    let mut by_owner: HashMap<String, Vec<Value>> = HashMap::new();
    for (owner, value, kind, display) in rows {
        let mut item = json!({ "value": value });
        if let Some(display) = display {
            item["display"] = Value::String(display);
        }
        item["type"] = Value::String(kind);
        by_owner.entry(owner).or_default().push(item);
    }
    for res in list.iter_mut() {
        if let (Some(items), Some(obj)) = (by_owner.remove(&res.id), res.doc.as_object_mut()) {
            obj.insert(key.into(), Value::Array(items));
        }
    }
}

/// The value a resource sorts by.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SortKey {
    /// Text, folded unless the attribute is caseExact.
    Text(String),
    /// A boolean as 0 or 1.
    Integer(i64),
    /// A number that is not an integer.
    Real(f64),
}

impl SortKey {
    /// Orders keys of one attribute; mixed kinds (which a schema rules out) order numbers first.
    pub fn compare(&self, other: &SortKey) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        let number = |k: &SortKey| match k {
            SortKey::Integer(i) => Some(*i as f64),
            SortKey::Real(r) => Some(*r),
            SortKey::Text(_) => None,
        };
        match (self, other) {
            (SortKey::Text(a), SortKey::Text(b)) => a.cmp(b),
            (SortKey::Integer(a), SortKey::Integer(b)) => a.cmp(b),
            _ => match (number(self), number(other)) {
                (Some(a), Some(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            },
        }
    }
}

/// The value a resource sorts by (RFC 7644 §3.4.2.3): a multi-valued attribute sorts by its
/// primary (else first) value; strings that are not caseExact sort case-insensitively.
pub(crate) fn sort_key(doc: &Value, kind: ResourceKind, path: &AttrPath) -> Option<SortKey> {
    let rt = kind.resource_type();
    let resolved = rt.resolve(path);
    let case_exact = resolved.is_some_and(|r| r.leaf().case_exact);
    let container = match resolved {
        Some(r) if r.in_extension => get_ci(doc, &r.schema.id),
        _ => Some(doc),
    };
    let mut value = container.and_then(|c| get_ci(c, &path.name));
    if let Some(Value::Array(items)) = value {
        value = items.iter().find(|i| i.get("primary").and_then(Value::as_bool) == Some(true)).or(items.first());
    }
    let sub = path.sub.as_deref().or(match resolved {
        Some(r) if r.attr.kind == AttrType::Complex && r.sub.is_none() => Some("value"),
        _ => None,
    });
    if let (Some(sub), Some(v @ Value::Object(_))) = (sub, value) {
        value = get_ci(v, sub);
    }
    match value {
        Some(Value::String(s)) if case_exact => Some(SortKey::Text(s.clone())),
        Some(Value::String(s)) => Some(SortKey::Text(fold(s))),
        Some(Value::Bool(b)) => Some(SortKey::Integer(i64::from(*b))),
        Some(Value::Number(n)) => {
            Some(n.as_i64().map(SortKey::Integer).unwrap_or(SortKey::Real(n.as_f64().unwrap_or(0.0))))
        }
        _ => None,
    }
}

/// Looks a key up case-insensitively (attribute names are case-insensitive).
fn get_ci<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    scim_proto::json::get_ci(obj.as_object()?, key)
}
