//! Filters to SQL, for both backends. Attributes that IdPs query (`id`, `externalId`, `userName`,
//! `displayName`, `active`, `meta.created`, `meta.lastModified`, emails, group membership) compile
//! to predicates on indexed columns. Every predicate is two-valued (never NULL), so `not` means
//! exactly what it means in memory.
//!
//! Any other part of a filter is evaluated by the protocol core's own evaluator: inside SQLite as
//! the `scim_match` function; on PostgreSQL, which cannot run our code, the SQL keeps a superset
//! of the matches (that part reads as TRUE) and the store evaluates the whole filter on those
//! candidates ([`Sql::residual`]).

use scim_proto::schema::{GROUP_SCHEMA, USER_SCHEMA};
use scim_proto::{AttrPath, CompValue, CompareOp, Filter, ResourceKind};
use scimd_domain::clock::parse_time;
use scimd_domain::query::{CursorPosition, ListQuery};
use scimd_domain::store::StoreError;
use time::OffsetDateTime;

use crate::columns::{VISIBLE, fold};

/// The SQL a backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `?` parameters, 0/1 booleans, times as fixed-width text, `scim_match` for the rest.
    Sqlite,
    /// `$n` parameters, real booleans and timestamps, the rest evaluated by the store.
    Postgres,
}

/// A parameter value, turned into the backend's own type when bound.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
    /// A boolean (SQLite binds 0 or 1).
    Bool(bool),
    /// A time (SQLite binds its fixed-width text form).
    Time(OffsetDateTime),
}

/// SQL text with its positional parameters.
#[derive(Debug)]
pub(crate) struct Sql {
    pub dialect: Dialect,
    pub text: String,
    pub params: Vec<Param>,
    /// Set when part of the filter is not in the SQL (PostgreSQL): the rows it selects are
    /// candidates, and the filter must be evaluated on each.
    pub residual: bool,
}

impl Sql {
    /// Empty SQL in `dialect`.
    pub fn new(dialect: Dialect) -> Self {
        Sql { dialect, text: String::new(), params: Vec::new(), residual: false }
    }

    /// Appends text.
    pub fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// Appends a parameter's placeholder and keeps its value.
    pub fn param(&mut self, value: Param) {
        self.params.push(value);
        match self.dialect {
            Dialect::Sqlite => self.text.push('?'),
            Dialect::Postgres => self.text.push_str(&format!("${}", self.params.len())),
        }
    }

    /// A predicate that always holds, or never does.
    fn constant(&mut self, holds: bool) {
        self.push(match (self.dialect, holds) {
            (Dialect::Sqlite, true) => "1",
            (Dialect::Sqlite, false) => "0",
            (Dialect::Postgres, true) => "TRUE",
            (Dialect::Postgres, false) => "FALSE",
        });
    }
}

/// How a column compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColType {
    /// Text folded to lower case (caseExact = false).
    Folded,
    /// Text compared as is (caseExact = true).
    Exact,
    /// 0 / 1.
    Bool,
    /// A timestamp in scimd's fixed-width text form.
    Time,
}

#[derive(Debug, Clone, Copy)]
struct Column {
    expr: &'static str,
    ty: ColType,
}

/// A multi-valued attribute kept in a table of its own.
#[derive(Debug, Clone, Copy)]
enum Relation {
    Emails,
    Members,
    Groups,
}

impl Relation {
    fn exists_prefix(self) -> &'static str {
        match self {
            Relation::Emails => "EXISTS (SELECT 1 FROM resource_emails e WHERE e.resource_seq = r.seq",
            Relation::Members => {
                "EXISTS (SELECT 1 FROM group_members m WHERE m.tenant_id = r.tenant_id AND m.group_id = r.id"
            }
            Relation::Groups => {
                "EXISTS (SELECT 1 FROM group_members m WHERE m.tenant_id = r.tenant_id AND m.member_id = r.id"
            }
        }
    }

    /// The column of a sub-attribute of an element; `None` means "evaluate in memory".
    fn column(self, sub: &str) -> Result<Option<Column>, StoreError> {
        let sub = sub.to_ascii_lowercase();
        Ok(match (self, sub.as_str()) {
            (Relation::Emails, "value") => Some(Column { expr: "e.value_fold", ty: ColType::Folded }),
            (Relation::Emails, "type") => Some(Column { expr: "e.type_fold", ty: ColType::Folded }),
            (Relation::Emails, "primary") => Some(Column { expr: "e.is_primary", ty: ColType::Bool }),
            (Relation::Emails, _) => None,
            (Relation::Members, "value") => Some(Column { expr: "m.member_id", ty: ColType::Exact }),
            (Relation::Members, "type") => Some(Column { expr: "lower(m.member_kind)", ty: ColType::Folded }),
            (Relation::Groups, "value") => Some(Column { expr: "m.group_id", ty: ColType::Exact }),
            (rel, other) => {
                let attr = if matches!(rel, Relation::Members) { "members" } else { "groups" };
                return Err(StoreError::Unsupported(format!(
                    "filtering on {attr}.{other} is not supported; filter on {attr}.value (the member's id){}",
                    if matches!(rel, Relation::Members) { " or members.type" } else { "" }
                )));
            }
        })
    }
}

/// Where a path leads: a column, a related table, or nowhere indexed.
enum Target {
    Column(Column),
    Related(Relation, Option<String>),
    Memory,
}

fn is_core(path: &AttrPath, kind: ResourceKind) -> bool {
    let core = if kind == ResourceKind::User { USER_SCHEMA } else { GROUP_SCHEMA };
    path.schema.as_deref().is_none_or(|s| s.eq_ignore_ascii_case(core))
}

fn target(path: &AttrPath, kind: ResourceKind) -> Result<Target, StoreError> {
    if !is_core(path, kind) {
        return Ok(Target::Memory);
    }
    let name = path.name.to_ascii_lowercase();
    let sub = path.sub.as_deref().map(str::to_ascii_lowercase);
    let col = |expr, ty| Ok(Target::Column(Column { expr, ty }));
    match (kind, name.as_str(), sub.as_deref()) {
        (_, "id", None) => col("r.id", ColType::Exact),
        (_, "externalid", None) => col("r.external_id", ColType::Exact),
        (_, "displayname", None) => col("r.display_name_fold", ColType::Folded),
        (ResourceKind::User, "username", None) => col("r.user_name_fold", ColType::Folded),
        (ResourceKind::User, "active", None) => col("r.active", ColType::Bool),
        (_, "meta", Some("created")) => col("r.created", ColType::Time),
        (_, "meta", Some("lastmodified")) => col("r.modified", ColType::Time),
        (_, "meta", Some("resourcetype")) => col("lower(r.kind)", ColType::Folded),
        (_, "meta", other) => Err(StoreError::Unsupported(format!(
            "filtering on meta{} is not supported; filter on meta.created, meta.lastModified or meta.resourceType",
            other.map(|s| format!(".{s}")).unwrap_or_default()
        ))),
        (ResourceKind::User, "emails", sub) => Ok(Target::Related(Relation::Emails, sub.map(str::to_owned))),
        (ResourceKind::User, "groups", sub) => Ok(Target::Related(Relation::Groups, sub.map(str::to_owned))),
        (ResourceKind::Group, "members", sub) => Ok(Target::Related(Relation::Members, sub.map(str::to_owned))),
        _ => Ok(Target::Memory),
    }
}

/// Whether any part of the filter can use an index; a filter that cannot is evaluated in one
/// `scim_match` call rather than one per leaf.
fn uses_index(filter: &Filter, kind: ResourceKind) -> bool {
    match filter {
        Filter::And(a, b) | Filter::Or(a, b) => uses_index(a, kind) || uses_index(b, kind),
        Filter::Not(a) => uses_index(a, kind),
        Filter::Present(p) | Filter::Compare(p, _, _) | Filter::ValuePath(p, _) => {
            !matches!(target(p, kind), Ok(Target::Memory))
        }
    }
}

/// The id as cursor paging orders it: by its bytes on both databases (PostgreSQL's default
/// collation would order it by language rules), so that a position compares as it sorts.
fn cursor_id(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "r.id",
        Dialect::Postgres => "r.id COLLATE \"C\"",
    }
}

/// Appends the condition "after this position in cursor order" (RFC 9865 paging).
pub(crate) fn after_cursor(at: &CursorPosition, out: &mut Sql) {
    out.push(" AND (r.created > ");
    out.param(Param::Time(at.created));
    out.push(" OR (r.created = ");
    out.param(Param::Time(at.created));
    out.push(&format!(" AND {} > ", cursor_id(out.dialect)));
    out.param(Param::Text(at.id.clone()));
    out.push("))");
}

/// Whether the filter matches few rows found through an index whatever the data: an `eq` on an
/// identifier IdPs look resources up by (`userName`, `externalId`, `id`, `emails.value`, a
/// Group's `displayName`), alone or under an `and`. Such a query costs what a lookup by id costs.
pub(crate) fn is_lookup(filter: &Filter, kind: ResourceKind) -> bool {
    match filter {
        Filter::And(a, b) => is_lookup(a, kind) || is_lookup(b, kind),
        Filter::Compare(path, CompareOp::Eq, _) => match target(path, kind) {
            Ok(Target::Column(col)) => match col.expr {
                "r.id" | "r.external_id" | "r.user_name_fold" => true,
                // Unique in practice for groups; many users may share a display name.
                "r.display_name_fold" => kind == ResourceKind::Group,
                _ => false,
            },
            Ok(Target::Related(Relation::Emails, Some(sub))) => sub.eq_ignore_ascii_case("value"),
            _ => false,
        },
        _ => false,
    }
}

/// Appends the SQL of `filter` for resources of `kind` (aliased `r`).
pub(crate) fn compile(filter: &Filter, kind: ResourceKind, out: &mut Sql) -> Result<(), StoreError> {
    if !uses_index(filter, kind) {
        return in_memory(filter, out);
    }
    match filter {
        Filter::And(a, b) | Filter::Or(a, b) => {
            let op = if matches!(filter, Filter::And(..)) { " AND " } else { " OR " };
            out.push("(");
            compile(a, kind, out)?;
            out.push(op);
            compile(b, kind, out)?;
            out.push(")");
            Ok(())
        }
        // The negation of a superset is not one: on PostgreSQL a `not` over anything evaluated
        // in memory is evaluated in memory whole.
        Filter::Not(a) if out.dialect == Dialect::Postgres && has_residual(a, kind) => in_memory(filter, out),
        Filter::Not(a) => {
            out.push("(NOT ");
            compile(a, kind, out)?;
            out.push(")");
            Ok(())
        }
        Filter::Present(path) => leaf(filter, path, None, kind, out),
        Filter::Compare(path, op, value) => leaf(filter, path, Some((*op, value)), kind, out),
        Filter::ValuePath(path, inner) => match target(path, kind)? {
            Target::Related(rel, None) if relation_compiles(inner, rel)? => {
                out.push(rel.exists_prefix());
                out.push(" AND ");
                compile_element(inner, rel, out)?;
                out.push(")");
                Ok(())
            }
            _ => in_memory(filter, out),
        },
    }
}

/// Whether compiling `filter` leaves any part to the in-memory evaluator.
fn has_residual(filter: &Filter, kind: ResourceKind) -> bool {
    let mut probe = Sql::new(Dialect::Postgres);
    compile(filter, kind, &mut probe).is_err() || probe.residual
}

fn in_memory(filter: &Filter, out: &mut Sql) -> Result<(), StoreError> {
    match out.dialect {
        Dialect::Sqlite => {
            out.push("scim_match(r.kind, r.doc, ");
            out.param(Param::Text(filter.to_string()));
            out.push(")");
        }
        Dialect::Postgres => {
            out.residual = true;
            out.constant(true);
        }
    }
    Ok(())
}

fn leaf(
    filter: &Filter,
    path: &AttrPath,
    cmp: Option<(CompareOp, &CompValue)>,
    kind: ResourceKind,
    out: &mut Sql,
) -> Result<(), StoreError> {
    match target(path, kind)? {
        Target::Column(col) => predicate(col, cmp, out),
        Target::Related(rel, sub) => {
            let Some(col) = rel.column(sub.as_deref().unwrap_or("value"))? else { return in_memory(filter, out) };
            // Any element matches; `ne` also holds when there is no element (as in memory).
            if matches!(cmp, Some((CompareOp::Ne, _))) {
                out.push("(NOT ");
                out.push(rel.exists_prefix());
                out.push(") OR ");
                out.push(rel.exists_prefix());
                out.push(" AND ");
                predicate(col, cmp, out)?;
                out.push("))");
            } else {
                out.push(rel.exists_prefix());
                out.push(" AND ");
                predicate(col, cmp, out)?;
                out.push(")");
            }
            Ok(())
        }
        Target::Memory => in_memory(filter, out),
    }
}

/// Whether every leaf inside a value filter has a column in the related table.
fn relation_compiles(filter: &Filter, rel: Relation) -> Result<bool, StoreError> {
    Ok(match filter {
        Filter::And(a, b) | Filter::Or(a, b) => relation_compiles(a, rel)? && relation_compiles(b, rel)?,
        Filter::Not(a) => relation_compiles(a, rel)?,
        Filter::Present(p) | Filter::Compare(p, _, _) => {
            p.sub.is_none() && p.schema.is_none() && rel.column(&p.name)?.is_some()
        }
        Filter::ValuePath(..) => false,
    })
}

fn compile_element(filter: &Filter, rel: Relation, out: &mut Sql) -> Result<(), StoreError> {
    match filter {
        Filter::And(a, b) | Filter::Or(a, b) => {
            out.push("(");
            compile_element(a, rel, out)?;
            out.push(if matches!(filter, Filter::And(..)) { " AND " } else { " OR " });
            compile_element(b, rel, out)?;
            out.push(")");
            Ok(())
        }
        Filter::Not(a) => {
            out.push("(NOT ");
            compile_element(a, rel, out)?;
            out.push(")");
            Ok(())
        }
        Filter::Present(p) | Filter::Compare(p, _, _) => {
            let col = rel.column(&p.name)?.ok_or_else(|| StoreError::Unsupported(format!("cannot filter on {p}")))?;
            let cmp = match filter {
                Filter::Compare(_, op, v) => Some((*op, v)),
                _ => None,
            };
            predicate(col, cmp, out)
        }
        Filter::ValuePath(p, _) => Err(StoreError::Unsupported(format!("nested value path {p}"))),
    }
}

/// A two-valued predicate on one column; `cmp` is `None` for `pr`.
fn predicate(col: Column, cmp: Option<(CompareOp, &CompValue)>, out: &mut Sql) -> Result<(), StoreError> {
    let mut c = col.expr.to_owned();
    let Some((op, value)) = cmp else {
        match col.ty {
            ColType::Folded | ColType::Exact => out.push(&format!("({c} IS NOT NULL AND {c} <> '')")),
            ColType::Bool | ColType::Time => out.push(&format!("({c} IS NOT NULL)")),
        }
        return Ok(());
    };
    let textual = matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew);
    let param = match (col.ty, value) {
        (_, CompValue::Null) => {
            match op {
                CompareOp::Eq => out.push(&format!("({c} IS NULL)")),
                CompareOp::Ne => out.push(&format!("({c} IS NOT NULL)")),
                _ => out.constant(false),
            }
            return Ok(());
        }
        (ColType::Folded, CompValue::Str(s)) => Param::Text(fold(s)),
        (ColType::Exact, CompValue::Str(s)) => Param::Text(s.clone()),
        (ColType::Bool, CompValue::Bool(b)) => Param::Bool(*b),
        (ColType::Bool, CompValue::Str(s)) if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") => {
            Param::Bool(s.eq_ignore_ascii_case("true"))
        }
        // A time compared as text is compared in scimd's fixed-width text form.
        (ColType::Time, CompValue::Str(s)) if textual => {
            if out.dialect == Dialect::Postgres {
                c = format!("to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
            }
            Param::Text(s.clone())
        }
        (ColType::Time, CompValue::Str(s)) => match parse_time(s) {
            Some(t) => Param::Time(t),
            None => {
                return Err(StoreError::Unsupported(format!(
                    "\"{s}\" is not a date-time: compare meta.created and meta.lastModified with an RFC 3339 \
                     date-time such as \"2026-01-31T12:00:00Z\""
                )));
            }
        },
        // A value of another type never equals the attribute; `ne` therefore always holds.
        _ => {
            out.constant(op == CompareOp::Ne);
            return Ok(());
        }
    };
    let ordering = matches!(op, CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le);
    if col.ty == ColType::Bool && !matches!(op, CompareOp::Eq | CompareOp::Ne) {
        out.constant(false);
        return Ok(());
    }
    let text = matches!(param, Param::Text(_));
    let pg = out.dialect == Dialect::Postgres;
    match op {
        CompareOp::Eq => {
            out.push(&format!("({c} IS NOT NULL AND {c} = "));
            out.param(param);
            out.push(")");
        }
        CompareOp::Ne => {
            out.push(&format!("({c} IS NULL OR {c} <> "));
            out.param(param);
            out.push(")");
        }
        _ if ordering => {
            let sym = match op {
                CompareOp::Gt => ">",
                CompareOp::Ge => ">=",
                CompareOp::Lt => "<",
                _ => "<=",
            };
            out.push(&format!("({c} IS NOT NULL AND {c} {sym} "));
            out.param(param);
            out.push(")");
        }
        CompareOp::Co if text => {
            out.push(&format!("({c} IS NOT NULL AND {}({c}, ", if pg { "strpos" } else { "instr" }));
            out.param(param);
            out.push(") > 0)");
        }
        CompareOp::Sw if text => {
            out.push(&format!("({c} IS NOT NULL AND substr({c}, 1, length("));
            out.param(param.clone());
            out.push(")) = ");
            out.param(param);
            out.push(")");
        }
        CompareOp::Ew if text && pg => {
            out.push(&format!("({c} IS NOT NULL AND right({c}, length("));
            out.param(param.clone());
            out.push(")) = ");
            out.param(param);
            out.push(")");
        }
        CompareOp::Ew if text => {
            // substr(x, -0) is not the empty suffix, so the empty string is handled apart.
            out.push(&format!("({c} IS NOT NULL AND (length("));
            out.param(param.clone());
            out.push(&format!(") = 0 OR (length({c}) >= length("));
            out.param(param.clone());
            out.push(&format!(") AND substr({c}, -length("));
            out.param(param.clone());
            out.push(")) = ");
            out.param(param);
            out.push(")))");
        }
        _ => out.constant(false),
    }
    Ok(())
}

/// The ORDER BY of a query: the sort attribute, then insertion order. Resources without a value
/// come last ascending and first descending (RFC 7644 §3.4.2.3). Returns `false` when the sort
/// attribute has no column and the dialect cannot compute its key (PostgreSQL): the rows are
/// then in insertion order and the store sorts them with [`crate::columns::sort_key`].
pub(crate) fn order_by(query: &ListQuery, kind: ResourceKind, out: &mut Sql) -> Result<bool, StoreError> {
    if query.cursor.is_some() {
        out.push(&format!(" ORDER BY r.created, {}", cursor_id(out.dialect)));
        return Ok(true);
    }
    out.push(" ORDER BY ");
    let mut sorted = true;
    if let Some(path) = &query.sort_by {
        let dir = if query.descending { "DESC" } else { "ASC" };
        match target(path, kind)? {
            Target::Column(col) => out.push(&format!("{c} IS NULL {dir}, {c} {dir}, ", c = col.expr)),
            // Memberships live outside the document, so they cannot order it.
            Target::Related(Relation::Members | Relation::Groups, _) => {
                return Err(StoreError::Unsupported(format!(
                    "sorting by {path} is not supported: sort by an attribute of the resource itself"
                )));
            }
            Target::Related(Relation::Emails, _) | Target::Memory => match out.dialect {
                Dialect::Sqlite => {
                    out.push("scim_sort_key(r.kind, r.doc, ");
                    out.param(Param::Text(path.to_string()));
                    out.push(&format!(") IS NULL {dir}, scim_sort_key(r.kind, r.doc, "));
                    out.param(Param::Text(path.to_string()));
                    out.push(&format!(") {dir}, "));
                }
                Dialect::Postgres => sorted = false,
            },
        }
    }
    out.push("r.seq");
    Ok(sorted)
}

/// The `FROM … WHERE …` of a list query: a tenant's visible resources of one kind that match
/// the query's filter (or, with [`Sql::residual`], the candidates for it).
pub(crate) fn list_from(
    dialect: Dialect,
    tenant: &str,
    kind: ResourceKind,
    query: &ListQuery,
) -> Result<Sql, StoreError> {
    let mut sql = Sql::new(dialect);
    sql.push(" FROM resources r WHERE r.tenant_id = ");
    sql.param(Param::Text(tenant.to_owned()));
    sql.push(" AND r.kind = ");
    sql.param(Param::Text(kind.name().to_owned()));
    sql.push(" AND ");
    sql.push(VISIBLE);
    if let Some(f) = &query.filter {
        sql.push(" AND ");
        compile(f, kind, &mut sql)?;
    }
    Ok(sql)
}
