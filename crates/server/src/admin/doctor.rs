//! The provisioning doctor of a tenant: `GET /tenants/{id}/doctor[?user=&days=]`.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use scimd_domain::doctor::{DoctorOptions, MAX_WINDOW_DAYS};

use super::Caller;
use super::input::{Reply, from_one_to, invalid};
use crate::AppState;
use crate::edge::AdminFailure;

/// Reads `user` and `days`; unknown parameters are refused so that a typo is never ignored.
fn parse_query(raw: Option<&str>) -> Result<DoctorOptions, AdminFailure> {
    let mut options = DoctorOptions::default();
    for (name, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if value.is_empty() {
            continue;
        }
        match name.as_ref() {
            "user" => options.user = Some(value.into_owned()),
            "days" => {
                options.window_days = from_one_to("days", &value, MAX_WINDOW_DAYS)?;
            }
            other => return Err(invalid(format!("unknown parameter \"{other}\"; allowed: user, days"))),
        }
    }
    Ok(options)
}

/// `GET /tenants/{id}/doctor?user=&days=`: the report (findings with severity, code, title,
/// evidence and fix) over the last `days` (default 7), about one user when `user` is given.
pub async fn tenant_doctor(
    caller: Caller,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Reply {
    let tenant = caller.tenant(&state, path).await?;
    let mut options = parse_query(raw.as_deref())?;
    options.base_url = crate::scim::advertised_base(&state, &headers);
    let report = state.service.doctor_with(&tenant, options).await?;
    Ok(Json(report).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_parse_and_refuse_what_they_do_not_know() {
        let o = parse_query(Some("user=alice%40corp.com&days=3")).unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!((o.user.as_deref(), o.window_days), (Some("alice@corp.com"), 3));
        assert_eq!(parse_query(None).map(|o| o.window_days).ok(), Some(7));
        let err = |raw: &str| parse_query(Some(raw)).err().map(|e| e.message).unwrap_or_default();
        assert!(err("days=0").contains("between 1 and"));
        assert!(err("days=x").contains("between 1 and"));
        assert!(err("usr=a").contains("unknown parameter"));
    }
}
