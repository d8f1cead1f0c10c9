//! SCIM resources of a tenant: create, read, replace, patch, delete, list and search, applying
//! the protocol core (validation, PATCH, filters) to what the store keeps.

use std::collections::{HashMap, HashSet};

use scim_proto::list::ListParams;
use scim_proto::patch::PatchRequest;
use scim_proto::resource::{check_immutable, prepare};
use scim_proto::schema::{PROVISIONING_SCHEMA, ResourceKind};
use scim_proto::{Filter, ScimError, ScimType};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::clock::format_time;
use crate::query::{CursorPage, CursorPosition, ListQuery, Page};
use crate::store::StoreError;
use crate::tenant::Tenant;
use crate::{DomainError, Result, Service};

/// A resource as stored: its canonical document (no `id`, no `meta`) and its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResource {
    /// The resource's id (server-assigned, stable).
    pub id: String,
    /// User or Group.
    pub kind: ResourceKind,
    /// The canonical document; a Group's carries `members`, and when relations were loaded a
    /// User's carries `groups`.
    pub doc: Value,
    /// `meta.created`.
    pub created: OffsetDateTime,
    /// `meta.lastModified`.
    pub modified: OffsetDateTime,
    /// Incremented by every change; the ETag is derived from it.
    pub version: u64,
    /// A User's provisioning state (profile, region, lifecycle); `None` for Groups.
    pub placement: Option<crate::provisioning::Placement>,
}

impl StoredResource {
    /// The weak ETag of this version (`W/"3"`), also `meta.version`.
    pub fn etag(&self) -> String {
        format!("W/\"{}\"", self.version)
    }

    /// The SCIM representation: `schemas`, `id`, the attributes and `meta`, with `$ref`s and
    /// `meta.location` under `base_url` (the tenant's SCIM base URL, no trailing slash).
    pub fn to_scim(&self, base_url: &str) -> Value {
        self.clone().into_scim(base_url)
    }

    /// [`Self::to_scim`], moving the document's values instead of copying them (a list renders
    /// a hundred of these per request).
    pub fn into_scim(self, base_url: &str) -> Value {
        let meta = json!({
            "resourceType": self.kind.name(),
            "created": format_time(self.created),
            "lastModified": format_time(self.modified),
            "location": format!("{base_url}{}/{}", self.kind.endpoint(), self.id),
            "version": self.etag(),
        });
        let doc = match self.doc {
            Value::Object(doc) => doc,
            _ => Map::new(),
        };
        let mut out = Map::with_capacity(doc.len() + 3);
        // `schemas` first and `id` next, wherever the document keeps them.
        out.insert("schemas".into(), Value::Null);
        out.insert("id".into(), Value::String(self.id));
        for (key, value) in doc {
            let value = match key.as_str() {
                "members" => with_refs(value, base_url, None),
                "groups" => with_refs(value, base_url, Some("/Groups")),
                _ => value,
            };
            out.insert(key, value);
        }
        if out.get("schemas").is_some_and(Value::is_null) {
            out.shift_remove("schemas");
        }
        if let Some(p) = &self.placement {
            let mut ext = serde_json::Map::new();
            ext.insert("state".into(), Value::String(p.state.as_str().into()));
            ext.insert("since".into(), Value::String(format_time(p.since)));
            if let Some(cause) = p.pending_cause {
                ext.insert("pendingCause".into(), Value::String(cause.as_str().into()));
            }
            if let Some(id) = &p.profile_id {
                ext.insert("profileId".into(), Value::String(id.clone()));
            }
            if let Some(id) = &p.region_id {
                ext.insert("regionId".into(), Value::String(id.clone()));
            }
            if let Some(Value::Array(schemas)) = out.get_mut("schemas") {
                schemas.push(Value::String(PROVISIONING_SCHEMA.into()));
            }
            out.insert(PROVISIONING_SCHEMA.into(), Value::Object(ext));
        }
        out.insert("meta".into(), meta);
        Value::Object(out)
    }
}

/// Adds `$ref` to member / group references: under `endpoint`, or as their `type` says.
fn with_refs(mut list: Value, base_url: &str, endpoint: Option<&str>) -> Value {
    for obj in list.as_array_mut().into_iter().flatten().filter_map(Value::as_object_mut) {
        let endpoint = endpoint.unwrap_or(match obj.get("type").and_then(Value::as_str) {
            Some("Group") => "/Groups",
            _ => "/Users",
        });
        if let Some(id) = obj.get("value").and_then(Value::as_str) {
            let r = format!("{base_url}{endpoint}/{id}");
            obj.insert("$ref".into(), Value::String(r));
        }
    }
    list
}

/// An `If-Match` / `If-None-Match` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtagCondition {
    /// `*`
    Any,
    /// A list of entity tags, compared weakly.
    Tags(Vec<String>),
}

impl EtagCondition {
    /// Parses a header value.
    pub fn parse(header: &str) -> Self {
        if header.trim() == "*" {
            return EtagCondition::Any;
        }
        EtagCondition::Tags(header.split(',').map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect())
    }

    /// Whether the condition names this resource's current version. Weak comparison: SCIM
    /// versions are weak ETags, and RFC 7644 §3.14 uses them with If-Match.
    pub fn matches(&self, res: &StoredResource) -> bool {
        let strip = |t: &str| t.trim_start_matches("W/").trim_matches('"').to_owned();
        match self {
            EtagCondition::Any => true,
            EtagCondition::Tags(tags) => {
                let current = strip(&res.etag());
                tags.iter().any(|t| strip(t) == current)
            }
        }
    }
}

/// How long a write keeps trying again after losing races with other writes of the same
/// resource (a group that many requests change at once) before it answers busy.
const WRITE_RETRY_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);

/// The attempts of a write that may lose races: each retry after a short pause that grows, with
/// jitter so that the writers of one resource stop colliding in lockstep; none after the budget.
struct Attempts {
    started: std::time::Instant,
    made: u32,
}

impl Attempts {
    fn new() -> Self {
        Attempts { started: std::time::Instant::now(), made: 0 }
    }

    /// Whether to make another attempt, pausing first unless it is the first.
    async fn another(&mut self, service: &Service) -> bool {
        if self.made > 0 {
            if self.started.elapsed() >= WRITE_RETRY_BUDGET {
                return false;
            }
            let mut jitter = [0u8; 1];
            service.random.fill(&mut jitter);
            let millis = (1u64 << self.made.min(5)) + u64::from(jitter[0] % 16);
            tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
        }
        self.made += 1;
        true
    }
}

fn not_found(kind: ResourceKind, id: &str) -> DomainError {
    // The same words whether the id does not exist or belongs to another tenant.
    ScimError::not_found(format!("{} {id} not found", kind.name())).into()
}

fn check_if_match(cond: Option<&EtagCondition>, current: &StoredResource) -> Result<()> {
    match cond {
        Some(c) if !c.matches(current) => Err(ScimError::precondition_failed(format!(
            "If-Match does not match the current version {} of {} {}: fetch the resource again and \
             retry with its ETag",
            current.etag(),
            current.kind.name(),
            current.id
        ))
        .into()),
        _ => Ok(()),
    }
}

impl Service {
    /// Creates a resource from a POST body.
    pub async fn create_resource(&self, tenant: &Tenant, kind: ResourceKind, body: Value) -> Result<StoredResource> {
        if kind == ResourceKind::User {
            let doc = prepare(kind, body).map_err(crate::provisioning::service::no_user_name)?;
            let mut attempts = Attempts::new();
            while attempts.another(self).await {
                match self.provision_new_user(tenant, doc.clone(), crate::provisioning::Manager::Idp).await {
                    // A user it takes over changed meanwhile: decide again.
                    Err(DomainError::Store(StoreError::VersionMismatch)) => continue,
                    other => return other,
                }
            }
            return Err(busy(kind, "(new)"));
        }
        let mut doc = prepare(kind, body)?;
        self.resolve_members(tenant, kind, None, &mut doc, &HashSet::new()).await?;
        let now = self.clock.now();
        let res =
            StoredResource { id: self.new_id(), kind, doc, created: now, modified: now, version: 1, placement: None };
        let write = crate::store::ResourceWrite::Insert(res.clone());
        self.provision_logged(tenant, None, &[], &write).await.map_err(|e| write_error(store_error(e), &res))?;
        Ok(res)
    }

    /// Reads a resource; `relations` adds a Group's `members` or a User's `groups`.
    pub async fn get_resource(
        &self,
        tenant: &Tenant,
        kind: ResourceKind,
        id: &str,
        relations: bool,
    ) -> Result<StoredResource> {
        self.store.resource(&tenant.id, kind, id, relations).await?.ok_or_else(|| not_found(kind, id))
    }

    /// Adds `members` or `groups` to a resource just written, for its response. A user created
    /// just now (version 1) is in no group yet, so it needs no read.
    pub async fn with_relations(&self, tenant: &Tenant, mut res: StoredResource) -> StoredResource {
        if res.kind == ResourceKind::User && res.version == 1 {
            return res;
        }
        // The write is done: failing to read its relations must not report it failed, so the
        // response then shows the resource as written (the store leaves it unchanged).
        let _ = self.store.load_relations(&tenant.id, &mut res).await;
        res
    }

    /// Replaces a resource from a PUT body. A User body without `active` keeps the current value
    /// (IdPs that PUT partial objects must not deactivate users by accident).
    pub async fn replace_resource(
        &self,
        tenant: &Tenant,
        kind: ResourceKind,
        id: &str,
        body: Value,
        if_match: Option<&EtagCondition>,
    ) -> Result<StoredResource> {
        let mut doc = prepare(kind, body)?;
        self.resolve_members(tenant, kind, Some(id), &mut doc, &HashSet::new()).await?;
        let mut attempts = Attempts::new();
        while attempts.another(self).await {
            let current = self.get_resource(tenant, kind, id, false).await?;
            check_if_match(if_match, &current)?;
            let mut next = doc.clone();
            if kind == ResourceKind::User {
                keep_active(&current.doc, &mut next);
            }
            check_immutable(kind, &current.doc, &next)?;
            if let Some(saved) = self.save_version(tenant, &current, next).await? {
                return Ok(saved);
            }
        }
        Err(busy(kind, id))
    }

    /// Applies a PATCH body atomically.
    pub async fn patch_resource(
        &self,
        tenant: &Tenant,
        kind: ResourceKind,
        id: &str,
        body: Value,
        if_match: Option<&EtagCondition>,
    ) -> Result<StoredResource> {
        let patch = PatchRequest::parse(body)?;
        let mut attempts = Attempts::new();
        while attempts.another(self).await {
            let current = self.get_resource(tenant, kind, id, kind == ResourceKind::Group).await?;
            check_if_match(if_match, &current)?;
            let mut doc = current.doc.clone();
            if let Some(obj) = doc.as_object_mut() {
                obj.insert("id".into(), Value::String(current.id.clone()));
            }
            patch.apply(&mut doc, kind)?;
            if let Some(obj) = doc.as_object_mut() {
                obj.remove("id");
            }
            if doc == current.doc {
                return Ok(current);
            }
            check_immutable(kind, &current.doc, &doc)?;
            let known = member_ids(&current.doc);
            self.resolve_members(tenant, kind, Some(id), &mut doc, &known).await?;
            if let Some(saved) = self.save_version(tenant, &current, doc).await? {
                return Ok(saved);
            }
        }
        Err(busy(kind, id))
    }

    /// Stores `doc` as the next version of `current`; `None` when another write got there first
    /// (the caller reads again and retries). Users go through their lifecycle rules.
    async fn save_version(
        &self,
        tenant: &Tenant,
        current: &StoredResource,
        doc: Value,
    ) -> Result<Option<StoredResource>> {
        if current.kind == ResourceKind::User {
            return match self.update_user(tenant, current, doc).await {
                Ok(saved) => Ok(Some(saved)),
                Err(DomainError::Store(StoreError::VersionMismatch)) => Ok(None),
                Err(e) => Err(e),
            };
        }
        let res = StoredResource {
            doc,
            modified: self.clock.now().max(current.modified),
            version: current.version + 1,
            ..current.clone()
        };
        let write = crate::store::ResourceWrite::Update { res: res.clone(), expected_version: current.version };
        match self.provision_logged(tenant, None, &[], &write).await.map_err(store_error) {
            Ok(()) => Ok(Some(res)),
            Err(StoreError::VersionMismatch) => Ok(None),
            Err(StoreError::NotFound) => Err(not_found(res.kind, &res.id)),
            Err(e) => Err(write_error(e, &res)),
        }
    }

    /// Deletes a resource.
    pub async fn delete_resource(
        &self,
        tenant: &Tenant,
        kind: ResourceKind,
        id: &str,
        if_match: Option<&EtagCondition>,
    ) -> Result<()> {
        if kind == ResourceKind::User {
            let mut attempts = Attempts::new();
            while attempts.another(self).await {
                let current = self.get_resource(tenant, kind, id, false).await?;
                check_if_match(if_match, &current)?;
                match self.delete_user(tenant, &current).await {
                    Err(DomainError::Store(StoreError::VersionMismatch)) if if_match.is_some() => {
                        return Err(ScimError::precondition_failed(format!(
                            "User {id} changed while it was being deleted: fetch it again and retry with its ETag"
                        ))
                        .into());
                    }
                    // Changed meanwhile (e.g. by a group membership): read it again.
                    Err(DomainError::Store(StoreError::VersionMismatch)) => continue,
                    other => return other,
                }
            }
            return Err(busy(kind, id));
        }
        let expected = match if_match {
            Some(cond) => {
                let current = self.get_resource(tenant, kind, id, false).await?;
                check_if_match(Some(cond), &current)?;
                Some(current.version)
            }
            None => None,
        };
        let write = crate::store::ResourceWrite::Delete {
            kind,
            id: id.to_owned(),
            expected_version: expected,
            at: self.clock.now(),
        };
        match self.provision_logged(tenant, None, &[], &write).await.map_err(store_error) {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(not_found(kind, id)),
            Err(StoreError::VersionMismatch) => Err(ScimError::precondition_failed(format!(
                "{} {id} changed while it was being deleted: fetch it again and retry with its ETag",
                kind.name()
            ))
            .into()),
            Err(e) => Err(e.into()),
        }
    }

    /// Turns list parameters into a store query for one resource type, checking the filter and
    /// sort attribute against its schemas and bounding the page size.
    pub fn list_query(&self, kinds: &[ResourceKind], params: &ListParams) -> Result<ListQuery> {
        if let Some(filter) = &params.filter {
            validate_filter_any(filter, kinds)?;
        }
        if let Some(sort_by) = &params.sort_by
            && !kinds.iter().any(|k| k.resource_type().resolve(sort_by).is_some())
        {
            return Err(ScimError::invalid_value(format!(
                "sortBy \"{sort_by}\" is not an attribute of {}",
                kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(" or ")
            ))
            .into());
        }
        Ok(ListQuery {
            filter: params.filter.clone(),
            sort_by: params.sort_by.clone(),
            descending: params.descending,
            start_index: params.start_index.max(1),
            count: params.count.unwrap_or(self.limits.default_page_size).min(self.limits.max_page_size),
            cursor: cursor_page(kinds, params)?,
        })
    }

    /// Lists one resource type.
    pub async fn list_resources(
        &self,
        tenant: &Tenant,
        kind: ResourceKind,
        query: &ListQuery,
        relations: bool,
    ) -> Result<Page> {
        self.store.query(&tenant.id, kind, query, relations).await.map_err(query_error)
    }

    /// Searches Users then Groups as one ordered result (`POST /.search` at the root).
    pub async fn search_all(&self, tenant: &Tenant, query: &ListQuery, relations: bool) -> Result<Page> {
        // list_query refuses a cursor for more than one resource type.
        debug_assert!(query.cursor.is_none());
        let users = self.list_resources(tenant, ResourceKind::User, query, relations).await?;
        let room = query.count - users.resources.len() as u64;
        let groups_start = query.start_index.saturating_sub(users.total).max(1);
        let group_query = ListQuery { start_index: groups_start, count: room, ..query.clone() };
        let groups = self.list_resources(tenant, ResourceKind::Group, &group_query, relations).await?;
        // Groups fill whatever room the users left on this page.
        let mut resources = users.resources;
        resources.extend(groups.resources);
        Ok(Page::indexed(users.total + groups.total, resources))
    }

    /// Checks a Group's `members` against the tenant: each must be an existing User or Group of
    /// the same tenant (never the group itself); `type` is set from what the member really is.
    /// Members in `known` (already members, read with the group) are not looked up again, so
    /// that adding one member to a large group costs one lookup. The store re-checks existence
    /// inside the write, so a member deleted meanwhile cannot slip in.
    async fn resolve_members(
        &self,
        tenant: &Tenant,
        kind: ResourceKind,
        group_id: Option<&str>,
        doc: &mut Value,
        known: &HashSet<&str>,
    ) -> Result<()> {
        if kind != ResourceKind::Group {
            return Ok(());
        }
        let Some(members) = doc.get_mut("members").and_then(Value::as_array_mut) else { return Ok(()) };
        let ids: Vec<String> = members
            .iter()
            .filter_map(|m| m.get("value").and_then(Value::as_str))
            .filter(|id| !known.contains(id))
            .map(str::to_owned)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let found: HashMap<String, ResourceKind> = self.store.resource_kinds(&tenant.id, &ids).await?;
        for member in members.iter_mut() {
            let Some(obj) = member.as_object_mut() else { continue };
            let id = obj.get("value").and_then(Value::as_str).unwrap_or_default().to_owned();
            if Some(id.as_str()) == group_id {
                return Err(ScimError::invalid_value(format!(
                    "a group cannot be a member of itself (members value \"{id}\")"
                ))
                .into());
            }
            if known.contains(id.as_str()) {
                continue;
            }
            let Some(member_kind) = found.get(&id) else {
                return Err(ScimError::invalid_value(format!(
                    "members: no User or Group with id \"{id}\" exists in this tenant; add members by the id \
                     scimd returned when they were created"
                ))
                .into());
            };
            obj.insert("type".into(), Value::String(member_kind.name().to_owned()));
            obj.remove("$ref");
        }
        Ok(())
    }
}

/// The ids of a Group document's members.
fn member_ids(doc: &Value) -> HashSet<&str> {
    doc.get("members")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(|m| m.get("value").and_then(Value::as_str)).collect())
        .unwrap_or_default()
}

/// Keeps the current `active` when a replacement omits it.
fn keep_active(current: &Value, next: &mut Value) {
    if let (Some(active), Some(obj)) = (current.get("active"), next.as_object_mut()) {
        obj.entry("active").or_insert_with(|| active.clone());
    }
}

/// Checks that every attribute of a filter exists in at least one of the resource types.
fn validate_filter_any(filter: &Filter, kinds: &[ResourceKind]) -> Result<()> {
    let mut first_error = None;
    for kind in kinds {
        match filter.validate(kind.resource_type()) {
            Ok(()) => return Ok(()),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.map_or_else(|| ScimError::invalid_filter("no resource type to filter").into(), Into::into))
}

fn write_error(e: StoreError, res: &StoredResource) -> DomainError {
    match e {
        StoreError::Conflict { attribute } if attribute == "members" => ScimError::invalid_value(
            "members: a member was deleted while this group was being written; read the group again and retry",
        )
        .into(),
        StoreError::Conflict { attribute } => {
            let value = res.doc.get(&attribute).and_then(Value::as_str).unwrap_or_default();
            ScimError::uniqueness(format!(
                "{attribute} \"{value}\" is already used by another {kind} of this tenant ({attribute} is \
                 unique, compared case-insensitively); update that {kind} instead, or send a different {attribute}",
                kind = res.kind.name(),
            ))
            .into()
        }
        other => other.into(),
    }
}

/// A group write goes through the provisioning transaction (for its lifecycle event) but has no
/// steps that can refuse; a refusal would be a bug, reported as a store failure.
fn store_error(e: crate::store::ProvisionError) -> StoreError {
    match e {
        crate::store::ProvisionError::Store(e) => e,
        crate::store::ProvisionError::Refused(r) => StoreError::Backend(format!("unexpected refusal: {r:?}")),
    }
}

fn query_error(e: StoreError) -> DomainError {
    match e {
        StoreError::Unsupported(detail) => ScimError::invalid_filter(detail).into(),
        other => other.into(),
    }
}

fn busy(kind: ResourceKind, id: &str) -> DomainError {
    ScimError::new(409, format!("{} {id} is being changed by other requests right now; retry", kind.name())).into()
}

/// The cursor page a list asks for (RFC 9865), checked: cursor paging is in creation order
/// (`meta.created`, then `id`) on one resource type, and replaces `startIndex`.
fn cursor_page(kinds: &[ResourceKind], params: &ListParams) -> Result<Option<CursorPage>> {
    let Some(cursor) = params.cursor.as_deref() else { return Ok(None) };
    if params.start_index_given {
        return Err(ScimError::invalid_value(
            "cursor and startIndex cannot be combined: page with cursor (nextCursor of the page before) or with \
             startIndex, not both",
        )
        .into());
    }
    if params.sort_by.is_some() {
        return Err(ScimError::invalid_value(
            "cursor paging returns resources in creation order and cannot be sorted: drop sortBy, or page with \
             startIndex",
        )
        .into());
    }
    if kinds.len() > 1 {
        return Err(ScimError::invalid_value(
            "cursor paging is offered on /Users and /Groups (and their /.search), not across both: page this \
             search with startIndex",
        )
        .into());
    }
    if cursor.is_empty() {
        return Ok(Some(CursorPage::First));
    }
    CursorPosition::decode(cursor).map(|p| Some(CursorPage::After(p))).ok_or_else(|| {
        ScimError::bad_request(
            ScimType::InvalidCursor,
            "this cursor was not given out by this service: send the nextCursor of the page before as it was \
             received, or an empty cursor for the first page",
        )
        .into()
    })
}
