//! `/Users`, `/Groups` and `/.search`: thin handlers over the domain's resource service.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use scim_proto::list::ListParams;
use scim_proto::resource::Projection;
use scim_proto::schema::LIST_RESPONSE_SCHEMA;
use scim_proto::{AttrPath, ResourceKind, ScimError};
use scimd_domain::events::Cause;
use scimd_domain::provisioning::UserState;
use scimd_domain::resources::{EtagCondition, StoredResource};
use serde_json::{Value, json};

use super::{ScimCaller, Segment};
use crate::AppState;
use crate::edge::{ScimFailure, ScimJson, filter_subject, read_json, subject_of};

type Reply = Result<Response, ScimFailure>;

/// Decoded query-string pairs (`+` is a space: Entra encodes filters that way). A pair whose
/// percent-encoded bytes are not UTF-8 is refused: decoding it with replacement characters would
/// run a filter nobody sent.
pub(crate) fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, ScimError> {
    let raw = raw.unwrap_or("");
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes()).into_owned().collect();
    if pairs.iter().any(|(k, v)| k.contains('\u{fffd}') || v.contains('\u{fffd}')) && !percent_decodes_to_utf8(raw) {
        return Err(ScimError::invalid_value(
            "the query string is not valid UTF-8 once percent-decoded; encode the filter's text as UTF-8",
        ));
    }
    Ok(pairs)
}

/// Whether every percent-encoded sequence of `raw` decodes to UTF-8.
fn percent_decodes_to_utf8(raw: &str) -> bool {
    raw.split(['&', '=']).all(|part| {
        let bytes: Vec<u8> = percent_encoding::percent_decode(part.as_bytes()).collect();
        std::str::from_utf8(&bytes).is_ok()
    })
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// The projection asked for by `attributes` / `excludedAttributes`.
fn projection(attributes: Option<&str>, excluded: Option<&str>, kind: ResourceKind) -> Result<Projection, ScimFailure> {
    Ok(Projection::parse(attributes, excluded, kind)?)
}

/// Whether the response needs a Group's members or a User's groups.
fn wants_relations(projection: &Projection, kind: ResourceKind) -> bool {
    let name = match kind {
        ResourceKind::User => "groups",
        ResourceKind::Group => "members",
    };
    projection.includes(&AttrPath::simple(name), kind)
}

/// An `If-Match` / `If-None-Match` condition; a header that is not visible ASCII is refused rather
/// than ignored, so that a conditional write never silently becomes unconditional.
fn etag_header(headers: &HeaderMap, name: header::HeaderName) -> Result<Option<EtagCondition>, ScimFailure> {
    match headers.get(&name) {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(text) => Ok(Some(EtagCondition::parse(text))),
            Err(_) => {
                Err(ScimError::invalid_syntax(format!("{name} must be a list of entity tags such as W/\"3\"")).into())
            }
        },
    }
}

fn render(res: StoredResource, caller: &ScimCaller, projection: &Projection) -> Value {
    let kind = res.kind;
    projection.apply(res.into_scim(&caller.base_url), kind)
}

fn resource_reply(status: StatusCode, res: StoredResource, caller: &ScimCaller, projection: &Projection) -> Response {
    let location = Some(format!("{}{}/{}", caller.base_url, res.kind.endpoint(), res.id));
    let etag = Some(res.etag());
    ScimJson { status, body: render(res, caller, projection), location, etag }.into_response()
}

async fn list(kinds: &[ResourceKind], state: &AppState, caller: &ScimCaller, params: ListParams) -> Reply {
    caller.note.subject(filter_subject(params.filter.as_ref()));
    let service = &state.service;
    let query = service.list_query(kinds, &params)?;
    // Each resource is projected by its own type's schema.
    let projections = kinds
        .iter()
        .map(|k| Ok((*k, projection(params.attributes.as_deref(), params.excluded_attributes.as_deref(), *k)?)))
        .collect::<Result<Vec<_>, ScimFailure>>()?;
    let relations = projections.iter().any(|(k, p)| wants_relations(p, *k));
    let page = match kinds {
        [one] => service.list_resources(&caller.tenant, *one, &query, relations).await?,
        _ => service.search_all(&caller.tenant, &query, relations).await?,
    };
    let resources: Vec<Value> = page
        .resources
        .into_iter()
        .filter_map(|r| projections.iter().find(|(k, _)| *k == r.kind).map(|(_, p)| render(r, caller, p)))
        .collect();
    let mut body = json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": page.total,
        "itemsPerPage": resources.len(),
    });
    // Moved in, not through `json!`, which would copy every resource's tree once more.
    body["Resources"] = Value::Array(resources);
    // Cursor paging (RFC 9865) answers where the next page starts instead of startIndex; the
    // last page has no nextCursor.
    match (&query.cursor, &page.next) {
        (None, _) => body["startIndex"] = json!(query.start_index),
        (Some(_), Some(next)) => body["nextCursor"] = json!(next.encode()),
        (Some(_), None) => {}
    }
    Ok(ScimJson::ok(body).into_response())
}

async fn list_from_query(kind: ResourceKind, state: AppState, caller: ScimCaller, raw: Option<String>) -> Reply {
    let pairs = query_pairs(raw.as_deref())?;
    let filter_limits = state.service.limits.filter;
    let params = ListParams::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), filter_limits)?;
    list(&[kind], &state, &caller, params).await
}

async fn search(kinds: &[ResourceKind], state: AppState, caller: ScimCaller, headers: HeaderMap, body: Body) -> Reply {
    let body = read_json(&headers, body, state.service.limits.max_body).await.map_err(ScimError::from)?;
    let params = ListParams::from_search_request(&body, state.service.limits.filter)?;
    list(kinds, &state, &caller, params).await
}

async fn create(
    kind: ResourceKind,
    state: AppState,
    caller: ScimCaller,
    raw: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let pairs = query_pairs(raw.as_deref())?;
    let projection = projection(param(&pairs, "attributes"), param(&pairs, "excludedAttributes"), kind)?;
    let body = read_json(&headers, body, state.service.limits.max_body).await.map_err(ScimError::from)?;
    caller.note.subject(subject_of(&body));
    caller.note.mentions(&body);
    let res = state.service.create_resource(&caller.tenant, kind, body).await?;
    note_held(&caller, &res);
    let res = with_relations(&state, &caller, res, &projection).await;
    Ok(resource_reply(StatusCode::CREATED, res, &caller, &projection))
}

/// A write that left its user pending is logged as held, with the cause it waits on.
fn note_held(caller: &ScimCaller, res: &StoredResource) {
    if let Some(p) = res.placement.as_ref().filter(|p| p.state == UserState::Pending) {
        caller.note.held(p.pending_cause.unwrap_or(Cause::Ok));
    }
}

/// Adds a written resource's relations when the response shows them.
async fn with_relations(
    state: &AppState,
    caller: &ScimCaller,
    res: StoredResource,
    projection: &Projection,
) -> StoredResource {
    if !wants_relations(projection, res.kind) {
        return res;
    }
    state.service.with_relations(&caller.tenant, res).await
}

async fn get_one(
    kind: ResourceKind,
    state: AppState,
    caller: ScimCaller,
    id: String,
    raw: Option<String>,
    headers: HeaderMap,
) -> Reply {
    let pairs = query_pairs(raw.as_deref())?;
    let projection = projection(param(&pairs, "attributes"), param(&pairs, "excludedAttributes"), kind)?;
    let res = state.service.get_resource(&caller.tenant, kind, &id, wants_relations(&projection, kind)).await?;
    if etag_header(&headers, header::IF_NONE_MATCH)?.is_some_and(|c| c.matches(&res)) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, res.etag())]).into_response());
    }
    Ok(resource_reply(StatusCode::OK, res, &caller, &projection))
}

/// Which write a handler performs.
#[derive(Clone, Copy)]
enum Write {
    Replace,
    Patch,
}

#[allow(clippy::too_many_arguments)]
async fn write(
    op: Write,
    kind: ResourceKind,
    state: AppState,
    caller: ScimCaller,
    id: String,
    raw: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let pairs = query_pairs(raw.as_deref())?;
    let projection = projection(param(&pairs, "attributes"), param(&pairs, "excludedAttributes"), kind)?;
    let body = read_json(&headers, body, state.service.limits.max_body).await.map_err(ScimError::from)?;
    caller.note.subject(subject_of(&body));
    caller.note.mentions(&body);
    let if_match = etag_header(&headers, header::IF_MATCH)?;
    let service = &state.service;
    let res = match op {
        Write::Replace => service.replace_resource(&caller.tenant, kind, &id, body, if_match.as_ref()).await?,
        Write::Patch => service.patch_resource(&caller.tenant, kind, &id, body, if_match.as_ref()).await?,
    };
    note_held(&caller, &res);
    let res = with_relations(&state, &caller, res, &projection).await;
    Ok(resource_reply(StatusCode::OK, res, &caller, &projection))
}

async fn delete(kind: ResourceKind, state: AppState, caller: ScimCaller, id: String, headers: HeaderMap) -> Reply {
    let if_match = etag_header(&headers, header::IF_MATCH)?;
    state.service.delete_resource(&caller.tenant, kind, &id, if_match.as_ref()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

macro_rules! resource_handlers {
    ($kind:expr, $list:ident, $search:ident, $create:ident, $get:ident, $replace:ident, $patch:ident, $delete:ident) => {
        /// `GET` the collection.
        pub async fn $list(State(s): State<AppState>, c: ScimCaller, RawQuery(q): RawQuery) -> Reply {
            list_from_query($kind, s, c, q).await
        }
        /// `POST .search` on the collection.
        pub async fn $search(State(s): State<AppState>, c: ScimCaller, h: HeaderMap, b: Body) -> Reply {
            search(&[$kind], s, c, h, b).await
        }
        /// `POST` to the collection.
        pub async fn $create(
            State(s): State<AppState>,
            c: ScimCaller,
            RawQuery(q): RawQuery,
            h: HeaderMap,
            b: Body,
        ) -> Reply {
            create($kind, s, c, q, h, b).await
        }
        /// `GET` one resource.
        pub async fn $get(
            State(s): State<AppState>,
            c: ScimCaller,
            Segment(id): Segment,
            RawQuery(q): RawQuery,
            h: HeaderMap,
        ) -> Reply {
            get_one($kind, s, c, id, q, h).await
        }
        /// `PUT` one resource.
        pub async fn $replace(
            State(s): State<AppState>,
            c: ScimCaller,
            Segment(id): Segment,
            RawQuery(q): RawQuery,
            h: HeaderMap,
            b: Body,
        ) -> Reply {
            write(Write::Replace, $kind, s, c, id, q, h, b).await
        }
        /// `PATCH` one resource.
        pub async fn $patch(
            State(s): State<AppState>,
            c: ScimCaller,
            Segment(id): Segment,
            RawQuery(q): RawQuery,
            h: HeaderMap,
            b: Body,
        ) -> Reply {
            write(Write::Patch, $kind, s, c, id, q, h, b).await
        }
        /// `DELETE` one resource.
        pub async fn $delete(State(s): State<AppState>, c: ScimCaller, Segment(id): Segment, h: HeaderMap) -> Reply {
            delete($kind, s, c, id, h).await
        }
    };
}

resource_handlers!(
    ResourceKind::User,
    list_users,
    search_users,
    create_user,
    get_user,
    replace_user,
    patch_user,
    delete_user
);
resource_handlers!(
    ResourceKind::Group,
    list_groups,
    search_groups,
    create_group,
    get_group,
    replace_group,
    patch_group,
    delete_group
);

/// `POST /.search` at the root: Users and Groups together.
pub async fn search_all(State(s): State<AppState>, c: ScimCaller, h: HeaderMap, b: Body) -> Reply {
    search(&[ResourceKind::User, ResourceKind::Group], s, c, h, b).await
}
