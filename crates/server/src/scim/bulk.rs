//! `POST /Bulk` (RFC 7644 §3.7): the body under the bulk payload limit, parsed by the protocol
//! core, run by the domain, rendered as a BulkResponse here (the only place that knows URLs).

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use scim_proto::ScimError;
use scim_proto::bulk::BulkRequest;
use scim_proto::schema::BULK_RESPONSE_SCHEMA;
use scimd_domain::DomainError;
use scimd_domain::bulk::BulkResult;
use scimd_domain::events::{Cause, Outcome};
use serde_json::{Value, json};

use super::ScimCaller;
use crate::AppState;
use crate::edge::{BodyError, EventNote, ScimFailure, ScimJson, outcome_of, read_json, scim_error};

/// `POST /Bulk`.
pub async fn bulk(
    State(state): State<AppState>,
    caller: ScimCaller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ScimFailure> {
    let limits = state.service.limits;
    let body = read_json(&headers, body, limits.max_bulk_payload).await.map_err(|e| match e {
        // Named after the advertised limit, so the client knows which one it hit.
        BodyError::TooLarge { limit } => ScimError::new(
            413,
            format!("the bulk request is larger than maxPayloadSize ({limit} bytes); split it into smaller requests"),
        ),
        other => ScimError::from(other),
    })?;
    let request = BulkRequest::parse(&body, limits.max_bulk_operations)?;
    // The request owns copies of the operations' data: free the raw body (up to
    // maxPayloadSize) before the operations run.
    drop(body);
    let count = request.operations.len();
    let outcome = state.service.bulk(&caller.tenant, &request).await;
    let operations: Vec<Value> = outcome.results.iter().map(|r| render(r, &caller.base_url)).collect();
    let mut response =
        ScimJson::ok(json!({ "schemas": [BULK_RESPONSE_SCHEMA], "Operations": operations })).into_response();
    response.extensions_mut().insert(bulk_note(count, &outcome.results));
    Ok(response)
}

/// The one event of a bulk request: subject `N operations`; cause `ok` when every operation that
/// ran succeeded, else the first failed operation's (in request order) cause and outcome
/// (`refused`, or `failed` for a server error; even when other operations succeeded, so that
/// filtering the log by `refused` finds every request with a failure), and a detail that counts the failures and quotes
/// the first. The response is 200 either way, as RFC 7644 wants; the event is what shows the
/// failure.
fn bulk_note(count: usize, results: &[BulkResult]) -> EventNote {
    let subject = Some(format!("{count} operation{}", if count == 1 { "" } else { "s" }));
    let failures: Vec<(&BulkResult, &DomainError)> =
        results.iter().filter_map(|r| r.outcome.as_ref().err().map(|e| (r, e))).collect();
    let Some((first, error)) = failures.first() else {
        return EventNote { subject, cause: Some(Cause::Ok), ..Default::default() };
    };
    // A store failure was logged when the operation was rendered; scim_error would log it again.
    let (outcome, detail) = match error {
        DomainError::Store(_) => (Outcome::Failed, "internal error".to_owned()),
        e => {
            let err = scim_error(e);
            (outcome_of(e, err.status), err.detail)
        }
    };
    EventNote {
        subject,
        cause: Some(error.cause()),
        outcome: Some(outcome),
        detail: Some(format!(
            "{} of {count} operations failed; the first, operation {} ({}): {detail}",
            failures.len(),
            first.index + 1,
            first.method.name(),
        )),
        ..Default::default()
    }
}

/// One BulkResponse operation: `status` as a string, `location` and `version` on success, the
/// SCIM error body as `response` on failure.
fn render(result: &BulkResult, base_url: &str) -> Value {
    let mut out = json!({ "method": result.method.name() });
    if let Some(b) = &result.bulk_id {
        out["bulkId"] = Value::String(b.clone());
    }
    match &result.outcome {
        Ok(done) => {
            out["status"] = Value::String(done.status.to_string());
            out["location"] = Value::String(format!("{base_url}{}/{}", done.kind.endpoint(), done.id));
            if let Some(v) = &done.version {
                out["version"] = Value::String(v.clone());
            }
        }
        Err(e) => {
            let err = scim_error(e);
            out["status"] = Value::String(err.status.to_string());
            out["response"] = err.to_json();
        }
    }
    out
}
