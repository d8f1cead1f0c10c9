//! The provisioning log at the edge: one middleware around the whole router turns every request
//! under `/scim` into exactly one event, whatever answered it (a handler, an extractor's
//! rejection, the 404 or 405 fallback, a panic).
//!
//! What only the inside knows travels in two places: extractors and handlers fill the request's
//! [`NoteSlot`] (tenant and token once authenticated, the subject once the body or path is read),
//! and responses built from errors carry an [`EventNote`] in their extensions (cause, detail).
//! Everything else (request id, method, path, operation, IdP, status, timing) the middleware
//! sees itself.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{OriginalUri, Request, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use scim_proto::filter::{CompValue, CompareOp, Filter};
use scim_proto::json::get_ci;
use scimd_domain::DomainError;
use scimd_domain::events::{Cause, Event, Idp, Outcome};
use serde_json::Value;
use time::OffsetDateTime;

use crate::AppState;
use crate::events::EventRecorder;
use crate::metrics::Metrics;

/// The request-id header: taken from the request when usable, always sent back.
pub const REQUEST_ID: &str = "x-request-id";
/// Longest request id taken from a client.
const MAX_REQUEST_ID: usize = 64;
/// Longest subject kept (a hostile body may carry a megabyte of userName).
const MAX_SUBJECT: usize = 256;
/// Longest path kept.
const MAX_PATH: usize = 2048;
/// Longest detail kept (details may quote a filter of up to 4096 characters).
const MAX_DETAIL: usize = 4096;

/// What the inside of the request knows about its event; every field is optional and the
/// middleware fills the gaps.
#[derive(Debug, Clone, Default)]
pub struct EventNote {
    /// The tenant an authenticated token belongs to.
    pub tenant_id: Option<String>,
    /// That token's id.
    pub token_id: Option<String>,
    /// Whom the request was about.
    pub subject: Option<String>,
    /// Other identifiers of the subject the request carried (externalId, emails).
    pub mentions: Vec<String>,
    /// Why it ended as it did; by default derived from the status.
    pub cause: Option<Cause>,
    /// How it ended; by default derived from the status.
    pub outcome: Option<Outcome>,
    /// The error detail answered, or a note on a success.
    pub detail: Option<String>,
}

impl EventNote {
    /// A note for an error response: its cause and the detail sent to the client.
    pub fn failure(cause: Cause, detail: impl Into<String>) -> Self {
        EventNote { cause: Some(cause), detail: Some(detail.into()), ..Default::default() }
    }

    /// Takes every field `other` sets.
    fn merge(&mut self, other: EventNote) {
        fn over<T>(mine: &mut Option<T>, theirs: Option<T>) {
            if theirs.is_some() {
                *mine = theirs;
            }
        }
        over(&mut self.tenant_id, other.tenant_id);
        over(&mut self.token_id, other.token_id);
        over(&mut self.subject, other.subject);
        if !other.mentions.is_empty() {
            self.mentions = other.mentions;
        }
        over(&mut self.cause, other.cause);
        over(&mut self.outcome, other.outcome);
        over(&mut self.detail, other.detail);
    }
}

/// The request's note, shared between the middleware and whatever handles the request. A slot
/// that no middleware put in the request (a router used without it) is detached: writes to it go
/// nowhere.
#[derive(Debug, Clone, Default)]
pub struct NoteSlot(Arc<Mutex<EventNote>>);

impl NoteSlot {
    /// The request's slot, or a detached one.
    pub fn of(extensions: &Extensions) -> NoteSlot {
        extensions.get::<NoteSlot>().cloned().unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut EventNote)) {
        // A poisoned note is still a note: the log should record the request that panicked.
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Records who called.
    pub fn caller(&self, tenant_id: &str, token_id: &str) {
        self.update(|n| {
            n.tenant_id = Some(tenant_id.to_owned());
            n.token_id = Some(token_id.to_owned());
        });
    }

    /// Records whom the request is about, when known (a body's userName outranks a path's id).
    pub fn subject(&self, subject: Option<String>) {
        if let Some(s) = subject {
            self.update(|n| n.subject = Some(truncate(&s, MAX_SUBJECT)));
        }
    }

    /// Records that a write was accepted but its user is held as pending, and why.
    pub fn held(&self, cause: Cause) {
        self.update(|n| {
            n.outcome = Some(Outcome::Held);
            n.cause = Some(cause);
            n.detail = Some(format!("accepted and held as pending: {}", cause.as_str()));
        });
    }

    /// Records the other identifiers a resource body carries for its subject.
    pub fn mentions(&self, body: &Value) {
        let found = mentions_of(body);
        if !found.is_empty() {
            self.update(|n| n.mentions = found);
        }
    }

    /// Records the resource id of the path unless something better is known already.
    pub fn subject_if_unknown(&self, id: &str) {
        self.update(|n| {
            if n.subject.is_none() {
                n.subject = Some(truncate(id, MAX_SUBJECT));
            }
        });
    }

    fn update_get<T>(&self, f: impl FnOnce(&EventNote) -> T) -> T {
        f(&self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn take(&self) -> EventNote {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Whom a resource body is about: `userName`, else `externalId`, else `displayName`, else the
/// primary (else first) email.
pub fn subject_of(body: &Value) -> Option<String> {
    let map = body.as_object()?;
    let text = |key: &str| get_ci(map, key).and_then(Value::as_str).filter(|s| !s.trim().is_empty());
    if let Some(s) = text("userName").or_else(|| text("externalId")).or_else(|| text("displayName")) {
        return Some(s.to_owned());
    }
    let emails = get_ci(map, "emails")?.as_array()?;
    fn value(e: &Value) -> Option<&str> {
        e.as_object().and_then(|m| get_ci(m, "value")).and_then(Value::as_str)
    }
    let primary = emails.iter().find(|e| {
        e.as_object().and_then(|m| get_ci(m, "primary")).is_some_and(|p| p == &Value::Bool(true) || p == "True")
    });
    primary.and_then(value).or_else(|| emails.iter().find_map(value)).map(str::to_owned)
}

/// The identifiers a resource body carries besides its subject: `externalId` and every email
/// value, lower case, without spaces (a few at most, each bounded).
pub fn mentions_of(body: &Value) -> Vec<String> {
    let Some(map) = body.as_object() else { return Vec::new() };
    let mut out: Vec<String> = Vec::new();
    let mut push = |v: &str| {
        let v = v.trim().to_lowercase();
        let usable = !v.is_empty() && v.len() <= MAX_SUBJECT && !v.contains(char::is_whitespace);
        if usable && !out.contains(&v) && out.len() < 8 {
            out.push(v);
        }
    };
    if let Some(id) = get_ci(map, "externalId").and_then(Value::as_str) {
        push(id);
    }
    for e in get_ci(map, "emails").and_then(Value::as_array).into_iter().flatten() {
        if let Some(v) = e.as_object().and_then(|m| get_ci(m, "value")).and_then(Value::as_str) {
            push(v);
        }
    }
    out
}

/// Whom a list request is about: the value of a filter `userName eq "…"` (also externalId,
/// displayName, emails), the way IdPs look a user up before creating it. That lookup is the first
/// sign of a user reaching scimd, so it is worth a subject.
pub fn filter_subject(filter: Option<&Filter>) -> Option<String> {
    match filter? {
        Filter::Compare(path, CompareOp::Eq, CompValue::Str(value)) => {
            let named =
                ["userName", "externalId", "displayName", "emails"].iter().any(|n| path.name.eq_ignore_ascii_case(n));
            let sub_ok = path.sub.as_deref().is_none_or(|s| s.eq_ignore_ascii_case("value"));
            (named && sub_ok).then(|| value.clone())
        }
        _ => None,
    }
}

/// The operation a request asks for, from its method and path as the SCIM router reads them;
/// `unknown` where no endpoint serves that method and path.
pub fn operation(method: &Method, path: &str) -> &'static str {
    let Some(rest) = path.strip_prefix("/scim/v2/") else { return "unknown" };
    let segments: Vec<&str> = rest.split('/').collect();
    let m = if method == Method::HEAD { &Method::GET } else { method };
    let (get, post, put, patch, delete) =
        (m == Method::GET, m == Method::POST, m == Method::PUT, m == Method::PATCH, m == Method::DELETE);
    match segments.as_slice() {
        ["Users"] if get => "list Users",
        ["Users"] if post => "create User",
        ["Groups"] if get => "list Groups",
        ["Groups"] if post => "create Group",
        ["Users", ".search"] if post => "search Users",
        ["Groups", ".search"] if post => "search Groups",
        ["Users", id] if !id.is_empty() && get => "get User",
        ["Users", id] if !id.is_empty() && put => "replace User",
        ["Users", id] if !id.is_empty() && patch => "patch User",
        ["Users", id] if !id.is_empty() && delete => "delete User",
        ["Groups", id] if !id.is_empty() && get => "get Group",
        ["Groups", id] if !id.is_empty() && put => "replace Group",
        ["Groups", id] if !id.is_empty() && patch => "patch Group",
        ["Groups", id] if !id.is_empty() && delete => "delete Group",
        [".search"] if post => "search",
        ["Bulk"] if post => "bulk",
        ["ServiceProviderConfig"] if get => "get ServiceProviderConfig",
        ["ResourceTypes"] if get => "list ResourceTypes",
        ["ResourceTypes", name] if !name.is_empty() && get => "get ResourceType",
        ["Schemas"] if get => "list Schemas",
        ["Schemas", id] if !id.is_empty() && get => "get Schema",
        _ => "unknown",
    }
}

/// The cause of a response no note explains (a success, or a rejection built outside scimd's
/// error path).
fn cause_for_status(status: u16) -> Cause {
    match status {
        ..=399 => Cause::Ok,
        401 => Cause::UnknownToken,
        404 => Cause::NotFound,
        405 => Cause::MethodNotAllowed,
        412 => Cause::PreconditionFailed,
        413 => Cause::PayloadTooLarge,
        415 => Cause::UnsupportedMediaType,
        500.. => Cause::InternalError,
        _ => Cause::InvalidRequest,
    }
}

/// How a request ended, by its status: 2xx and 3xx accepted, 401 unauthenticated, 5xx failed,
/// any other 4xx refused.
fn outcome_for_status(status: u16) -> Outcome {
    match status {
        ..=399 => Outcome::Accepted,
        401 => Outcome::Unauthenticated,
        500.. => Outcome::Failed,
        _ => Outcome::Refused,
    }
}

/// How a request that failed with `error` (answered with `status`) ended. A provisioning rule's
/// refusal is `refused` whatever its status: a 503 for an unhealthy region is the rule working,
/// not scimd failing.
pub fn outcome_of(error: &DomainError, status: u16) -> Outcome {
    match error {
        DomainError::Refused(_) => Outcome::Refused,
        _ => outcome_for_status(status),
    }
}

/// A client's request id when it is 1 to 64 visible ASCII characters (anything else could forge
/// log lines or bloat the log); `None` otherwise.
fn incoming_request_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(REQUEST_ID)?.to_str().ok()?;
    let usable = !value.is_empty() && value.len() <= MAX_REQUEST_ID && value.bytes().all(|b| b.is_ascii_graphic());
    usable.then(|| value.to_owned())
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

/// The status recorded for a request whose client went away before it was answered (nginx's
/// convention; never sent).
pub const CLIENT_CLOSED: u16 = 499;

/// The middleware: gives every request an id (echoed in `X-Request-Id`) and records one event
/// for every request under `/scim`. Handlers never wait for the event to be written.
pub async fn record_events(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let request_id = incoming_request_id(request.headers()).unwrap_or_else(|| state.service.new_id());
    // The path as the client sent it, before a nested router strips its prefix.
    let path = match request.extensions().get::<OriginalUri>() {
        Some(OriginalUri(uri)) => uri.path().to_owned(),
        None => request.uri().path().to_owned(),
    };
    if !is_scim_traffic(&path) {
        let mut response = next.run(request).await;
        set_request_id(&mut response, &request_id);
        return response;
    }
    let slot = NoteSlot::default();
    request.extensions_mut().insert(slot.clone());
    let mut pending = Pending {
        recorder: state.recorder.clone(),
        metrics: state.metrics.clone(),
        started: Instant::now(),
        at: state.service.now(),
        request_id: request_id.clone(),
        idp: Idp::from_user_agent(request.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok())),
        method: request.method().clone(),
        path,
        slot,
        recorded: false,
    };
    // Kept only to name the tenant of a refused request; a HeaderValue clone shares its bytes.
    let authorization = request.headers().get(header::AUTHORIZATION).cloned();

    let mut response = next.run(request).await;
    let duration = pending.started.elapsed();
    set_request_id(&mut response, &request_id);

    if let Some(from_response) = response.extensions_mut().remove::<EventNote>() {
        pending.slot.update(|n| n.merge(from_response));
    }
    let identified = pending.slot.update_get(|n| n.tenant_id.is_some());
    if !identified && authorization.is_some() {
        // Refused before (or without) authentication: expired and revoked tokens, wrong paths and
        // discovery requests still name their tenant. A read, never a write; the note stays in
        // its slot meanwhile, so a client that goes away now still leaves a complete event.
        let header = authorization.as_ref().map(|v| v.to_str().unwrap_or(""));
        if let Some(token) = state.service.identify_token(header).await {
            pending.slot.update(|n| {
                n.tenant_id = Some(token.tenant_id);
                n.token_id = Some(token.id);
            });
        }
    }
    let note = pending.slot.take();
    pending.record(response.status().as_u16(), note, duration);
    response
}

/// An event in the making. Dropped unrecorded means the request was cancelled before it was
/// answered (the client went away and the server dropped the handler); it is still recorded then,
/// since the request reached scimd and may have taken effect.
struct Pending {
    recorder: EventRecorder,
    metrics: Metrics,
    started: Instant,
    at: OffsetDateTime,
    request_id: String,
    idp: Idp,
    method: Method,
    path: String,
    slot: NoteSlot,
    recorded: bool,
}

impl Pending {
    fn record(&mut self, status: u16, note: EventNote, duration: std::time::Duration) {
        self.recorded = true;
        let operation = operation(&self.method, &self.path);
        let cause = note.cause.unwrap_or_else(|| match operation {
            "unknown" if status == 404 => Cause::UnknownPath,
            _ => cause_for_status(status),
        });
        let event = Event {
            id: 0,
            at: self.at,
            tenant_id: note.tenant_id,
            token_id: note.token_id,
            request_id: std::mem::take(&mut self.request_id),
            idp: self.idp,
            method: self.method.as_str().to_owned(),
            path: truncate(&self.path, MAX_PATH),
            operation: operation.to_owned(),
            subject: note.subject,
            mentions: note.mentions,
            outcome: note.outcome.unwrap_or_else(|| outcome_for_status(status)),
            cause,
            status,
            detail: note.detail.map(|d| truncate(&d, MAX_DETAIL)),
            duration_ms: u32::try_from(duration.as_millis()).unwrap_or(u32::MAX),
        };
        // From the very event the log keeps, so metrics and log always agree.
        self.metrics.request(&event, duration);
        self.recorder.record(event);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.recorded {
            return;
        }
        let note = EventNote {
            outcome: Some(Outcome::Failed),
            ..EventNote::failure(
                Cause::InternalError,
                "the client closed the connection before scimd answered; the request may or may not have \
                 taken effect (the identity provider's retry settles it)",
            )
        };
        let mut known = self.slot.take();
        known.merge(note);
        let duration = self.started.elapsed();
        self.record(CLIENT_CLOSED, known, duration);
    }
}

/// Whether a path is (meant as) SCIM traffic: everything but the admin API, the console and the
/// health endpoints. An IdP configured with a wrong base URL (`https://host/` so that it calls
/// `/Users`) is exactly what the log must show.
fn is_scim_traffic(path: &str) -> bool {
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    !(under("/admin") || under("/console") || path == "/healthz" || path == "/readyz" || path == "/metrics")
}

fn set_request_id(response: &mut Response, request_id: &str) {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn operations_follow_the_router() {
        let op = |m: Method, p: &str| operation(&m, p);
        assert_eq!(op(Method::POST, "/scim/v2/Users"), "create User");
        assert_eq!(op(Method::GET, "/scim/v2/Users"), "list Users");
        assert_eq!(op(Method::PATCH, "/scim/v2/Groups/abc"), "patch Group");
        assert_eq!(op(Method::POST, "/scim/v2/Users/.search"), "search Users");
        assert_eq!(op(Method::GET, "/scim/v2/Users/.search"), "get User");
        assert_eq!(op(Method::POST, "/scim/v2/.search"), "search");
        assert_eq!(op(Method::POST, "/scim/v2/Bulk"), "bulk");
        assert_eq!(op(Method::HEAD, "/scim/v2/ServiceProviderConfig"), "get ServiceProviderConfig");
        assert_eq!(op(Method::GET, "/scim/Users"), "unknown");
        assert_eq!(op(Method::GET, "/scim/v2/Userz"), "unknown");
        assert_eq!(op(Method::DELETE, "/scim/v2/Users"), "unknown");
        assert_eq!(op(Method::GET, "/scim/v2/Users/a/b"), "unknown");
    }

    #[test]
    fn subjects_from_bodies() {
        assert_eq!(subject_of(&json!({"UserName": "alice", "externalId": "x"})), Some("alice".into()));
        assert_eq!(subject_of(&json!({"externalId": "x", "displayName": "d"})), Some("x".into()));
        assert_eq!(subject_of(&json!({"displayName": "Team"})), Some("Team".into()));
        let emails = json!({"emails": [{"value": "a@x"}, {"value": "b@x", "primary": true}]});
        assert_eq!(subject_of(&emails), Some("b@x".into()));
        assert_eq!(subject_of(&json!({"emails": [{"value": "a@x"}]})), Some("a@x".into()));
        assert_eq!(subject_of(&json!({"Operations": []})), None);
        assert_eq!(subject_of(&json!("text")), None);
    }

    #[test]
    fn subjects_from_lookup_filters() {
        let parse = |f: &str| scim_proto::filter::parse(f).unwrap();
        assert_eq!(filter_subject(Some(&parse("userName eq \"alice\""))), Some("alice".into()));
        assert_eq!(filter_subject(Some(&parse("emails.value eq \"a@x\""))), Some("a@x".into()));
        assert_eq!(filter_subject(Some(&parse("title eq \"x\""))), None);
        assert_eq!(filter_subject(Some(&parse("userName sw \"a\""))), None);
        assert_eq!(filter_subject(None), None);
    }

    #[test]
    fn request_ids_from_clients_are_checked() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(REQUEST_ID, HeaderValue::from_str(v).unwrap());
            incoming_request_id(&h)
        };
        assert_eq!(with("abc-123"), Some("abc-123".into()));
        assert_eq!(with(&"a".repeat(64)), Some("a".repeat(64)));
        assert_eq!(with(&"a".repeat(65)), None);
        assert_eq!(with("has space"), None);
        assert_eq!(incoming_request_id(&HeaderMap::new()), None);
    }

    #[test]
    fn outcomes_and_truncation() {
        assert_eq!(outcome_for_status(201), Outcome::Accepted);
        assert_eq!(outcome_for_status(304), Outcome::Accepted);
        assert_eq!(outcome_for_status(401), Outcome::Unauthenticated);
        assert_eq!(outcome_for_status(409), Outcome::Refused);
        assert_eq!(outcome_for_status(503), Outcome::Failed);
        assert_eq!(truncate("héllo", 2), "hé");
        assert_eq!(truncate("hi", 5), "hi");
    }
}
