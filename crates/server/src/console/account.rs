//! The signed-in person's own page: who they are and their API keys for automation (scoped like
//! their account, shown once, revocable).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use scimd_domain::DomainError;
use serde::Deserialize;

use super::session::Signed;
use super::view::{Frame, maybe_when, when};
use super::{ConsoleForm, PageResult, render, render_with};
use crate::AppState;

/// An API key as listed.
pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created: String,
    pub last_used: String,
    pub revoked: bool,
}

#[derive(Template)]
#[template(path = "console/account.html")]
struct AccountPage {
    frame: Frame,
    role: String,
    keys: Vec<KeyRow>,
    new_key: Option<String>,
    error: Option<String>,
}

async fn page_with(
    state: &AppState,
    signed: &Signed,
    new_key: Option<String>,
    error: Option<String>,
) -> Result<AccountPage, DomainError> {
    let keys = state
        .service
        .api_keys(&signed.principal)
        .await?
        .into_iter()
        .map(|k| KeyRow {
            created: when(k.created_at),
            last_used: maybe_when(k.last_used_at),
            revoked: k.revoked_at.is_some(),
            id: k.id,
            name: k.name,
            prefix: k.prefix,
        })
        .collect();
    let role = match signed.principal.role.tenant_id() {
        Some(t) => format!("tenant admin of {}", state.service.tenant(t).await.map(|t| t.name).unwrap_or_default()),
        None => "operator".to_owned(),
    };
    Ok(AccountPage { frame: Frame::new(signed, "account", "Your account"), role, keys, new_key, error })
}

/// `GET /console/account`.
pub async fn page(State(state): State<AppState>, signed: Signed) -> PageResult {
    Ok(render(&page_with(&state, &signed, None, None).await?))
}

/// The new-key form.
#[derive(Deserialize)]
pub struct KeyForm {
    name: String,
}

/// `POST /console/account/api-keys`: the key is on this answer only.
pub async fn create_key(
    State(state): State<AppState>,
    signed: Signed,
    ConsoleForm(form): ConsoleForm<KeyForm>,
) -> PageResult {
    let audit = signed.change(None, "api_key.create", &form.name);
    let mut secret = None;
    let op = async {
        let issued = state.service.create_api_key(&signed.principal, &form.name).await?;
        secret = Some(issued.secret);
        Ok(issued.key)
    };
    match state.service.audited(audit, op).await {
        Ok(_) => Ok(render(&page_with(&state, &signed, secret, None).await?)),
        Err(DomainError::Invalid(m)) => {
            Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page_with(&state, &signed, None, Some(m)).await?))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /console/account/api-keys/{key}/revoke`.
pub async fn revoke_key(State(state): State<AppState>, signed: Signed, Path(id): Path<String>) -> PageResult {
    let audit = signed.change(None, "api_key.revoke", &id);
    state.service.audited(audit, state.service.revoke_api_key(&signed.principal, &id)).await?;
    Ok(Redirect::to("/console/account").into_response())
}
