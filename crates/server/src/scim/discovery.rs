//! Discovery (RFC 7644 §4): `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas`. Public, as
//! RFC 7644 allows, so that an IdP can read them before its token is configured.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use scim_proto::schema::{LIST_RESPONSE_SCHEMA, all_schemas};
use scim_proto::{ResourceKind, ScimError};
use serde_json::{Value, json};

use super::Segment;
use super::auth::base_url;
use crate::AppState;
use crate::edge::{ScimFailure, ScimJson};

/// The SCIM base URL of the request.
pub struct BaseUrl(pub String);

impl FromRequestParts<AppState> for BaseUrl {
    type Rejection = ScimFailure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(BaseUrl(base_url(state, parts)))
    }
}

const KINDS: [ResourceKind; 2] = [ResourceKind::User, ResourceKind::Group];

fn with_meta(mut body: Value, resource_type: &str, location: String) -> Value {
    body["meta"] = json!({ "resourceType": resource_type, "location": location });
    body
}

fn list(resources: Vec<Value>) -> ScimJson {
    ScimJson::ok(json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": resources.len(),
        "itemsPerPage": resources.len(),
        "startIndex": 1,
        "Resources": resources,
    }))
}

/// `GET /ServiceProviderConfig`: what this server supports, with its limits.
pub async fn service_provider_config(State(state): State<AppState>, BaseUrl(base): BaseUrl) -> ScimJson {
    let limits = state.service.limits;
    ScimJson::ok(with_meta(
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": { "supported": true },
            "bulk": {
                "supported": true,
                "maxOperations": limits.max_bulk_operations,
                "maxPayloadSize": limits.max_bulk_payload,
            },
            "filter": { "supported": true, "maxResults": limits.max_page_size },
            "changePassword": { "supported": false },
            "sort": { "supported": true },
            "etag": { "supported": true },
            // RFC 9865. No cursorTimeout: a cursor is a position, not a snapshot, and never expires.
            "pagination": {
                "cursor": true,
                "index": true,
                "defaultPaginationMethod": "index",
                "defaultPageSize": limits.default_page_size,
                "maxPageSize": limits.max_page_size,
            },
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "A tenant's SCIM token, sent as 'Authorization: Bearer <token>'. \
                                The token selects the tenant.",
                "primary": true,
            }],
        }),
        "ServiceProviderConfig",
        format!("{base}/ServiceProviderConfig"),
    ))
}

fn resource_type_json(kind: ResourceKind, base: &str) -> Value {
    with_meta(kind.resource_type().to_json(), "ResourceType", format!("{base}/ResourceTypes/{}", kind.name()))
}

/// `GET /ResourceTypes`.
pub async fn resource_types(BaseUrl(base): BaseUrl) -> ScimJson {
    list(KINDS.iter().map(|k| resource_type_json(*k, &base)).collect())
}

/// `GET /ResourceTypes/{name}`.
pub async fn resource_type(BaseUrl(base): BaseUrl, Segment(name): Segment) -> Result<ScimJson, ScimFailure> {
    KINDS
        .iter()
        .find(|k| k.name().eq_ignore_ascii_case(&name))
        .map(|k| ScimJson::ok(resource_type_json(*k, &base)))
        .ok_or_else(|| ScimError::not_found(format!("no resource type named {name}; there are User and Group")).into())
}

fn schema_json(schema: &scim_proto::schema::Schema, base: &str) -> Value {
    with_meta(schema.to_json(), "Schema", format!("{base}/Schemas/{}", schema.id))
}

/// `GET /Schemas`.
pub async fn schemas(BaseUrl(base): BaseUrl) -> ScimJson {
    list(all_schemas().map(|s| schema_json(s, &base)).collect())
}

/// `GET /Schemas/{urn}`.
pub async fn schema(BaseUrl(base): BaseUrl, Segment(id): Segment) -> Result<ScimJson, ScimFailure> {
    all_schemas()
        .find(|s| s.id.eq_ignore_ascii_case(&id))
        .map(|s| ScimJson::ok(schema_json(s, &base)))
        .ok_or_else(|| ScimError::not_found(format!("no schema {id}")).into())
}
