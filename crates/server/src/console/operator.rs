//! Operator pages: tenants (with their health at a glance), storage regions, email claims,
//! console accounts and the audit log. Every handler refuses anyone but an operator (403).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use scimd_domain::DomainError;
use scimd_domain::access::Role;
use scimd_domain::access::audit::{AuditQuery, Change, redacted};
use scimd_domain::provisioning::Health;
use scimd_domain::provisioning::admin::RegionChange;
use serde::Deserialize;

use super::session::Signed;
use super::view::{Frame, maybe_when, pretty, when};
use super::{ConsoleError, ConsoleForm, ConsoleQuery, PageResult, render, render_with};
use crate::AppState;

/// The frame of an operator page, or 403 for anyone else.
fn operator_frame(signed: &Signed, section: &'static str, title: &str) -> Result<Frame, ConsoleError> {
    signed
        .principal
        .require_operator()
        .map_err(|e| ConsoleError::from(e).within(Frame::new(signed, "", "Not available")))?;
    Ok(Frame::new(signed, section, title))
}

/// A tenant with its doctor status.
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub created: String,
    pub status: &'static str,
    pub worst: String,
}

#[derive(Template)]
#[template(path = "console/operator_tenants.html")]
struct TenantsPage {
    frame: Frame,
    error: Option<String>,
    rows: Vec<TenantRow>,
}

async fn tenants_page(state: &AppState, frame: Frame, error: Option<String>) -> Result<TenantsPage, ConsoleError> {
    let mut rows = Vec::new();
    for t in state.service.tenants().await? {
        let report = state.service.doctor(&t, None).await?;
        rows.push(TenantRow {
            worst: report.findings.first().map(|f| f.title.clone()).unwrap_or_default(),
            status: report.status(),
            id: t.id,
            name: t.name,
            created: when(t.created_at),
        });
    }
    Ok(TenantsPage { frame, error, rows })
}

/// `GET /console/operator/tenants`.
pub async fn tenants(State(state): State<AppState>, signed: Signed) -> PageResult {
    let frame = operator_frame(&signed, "tenants", "Tenants")?;
    Ok(render(&tenants_page(&state, frame, None).await?))
}

/// The new-tenant form.
#[derive(Deserialize)]
pub struct TenantForm {
    name: String,
}

/// `POST /console/operator/tenants`.
pub async fn create_tenant(
    State(state): State<AppState>,
    signed: Signed,
    ConsoleForm(form): ConsoleForm<TenantForm>,
) -> PageResult {
    let frame = operator_frame(&signed, "tenants", "Tenants")?;
    let name = form.name.trim();
    match state.service.audited(signed.change(None, "tenant.create", name), state.service.create_tenant(name)).await {
        Ok(t) => Ok(Redirect::to(&format!("/console/t/{}", t.id)).into_response()),
        Err(DomainError::Invalid(m) | DomainError::Conflict(m)) => {
            Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &tenants_page(&state, frame, Some(m)).await?))
        }
        Err(e) => Err(e.into()),
    }
}

/// A region with its health and probe.
pub struct RegionRow {
    pub id: String,
    pub name: String,
    pub health: &'static str,
    pub since: String,
    pub default: bool,
    pub probe_url: String,
    pub last_probe: String,
    pub last_result: String,
}

#[derive(Template)]
#[template(path = "console/operator_regions.html")]
struct RegionsPage {
    frame: Frame,
    error: Option<String>,
    healths: [&'static str; 3],
    rows: Vec<RegionRow>,
}

async fn regions_page(state: &AppState, frame: Frame, error: Option<String>) -> Result<RegionsPage, ConsoleError> {
    let default = state.service.default_region().await?;
    let rows = state
        .service
        .regions()
        .await?
        .into_iter()
        .map(|r| RegionRow {
            default: r.id == default.id,
            health: r.health.as_str(),
            since: when(r.health_since),
            probe_url: r.probe_url.clone().unwrap_or_default(),
            last_probe: maybe_when(r.last_probe_at),
            last_result: r.last_probe_result.clone().unwrap_or_default(),
            id: r.id,
            name: r.name,
        })
        .collect();
    Ok(RegionsPage { frame, error, healths: ["healthy", "degraded", "down"], rows })
}

/// `GET /console/operator/regions`.
pub async fn regions(State(state): State<AppState>, signed: Signed) -> PageResult {
    let frame = operator_frame(&signed, "regions", "Storage regions")?;
    Ok(render(&regions_page(&state, frame, None).await?))
}

/// The new-region form.
#[derive(Deserialize)]
pub struct RegionForm {
    name: String,
}

/// `POST /console/operator/regions`: a new, healthy region.
pub async fn create_region(
    State(state): State<AppState>,
    signed: Signed,
    ConsoleForm(form): ConsoleForm<RegionForm>,
) -> PageResult {
    let frame = operator_frame(&signed, "regions", "Storage regions")?;
    let name = form.name.trim();
    let op = state.service.create_region(name, Health::Healthy);
    match state.service.audited(signed.change(None, "region.create", name), op).await {
        Ok(_) => Ok(Redirect::to("/console/operator/regions").into_response()),
        Err(DomainError::Invalid(m) | DomainError::Conflict(m)) => {
            Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &regions_page(&state, frame, Some(m)).await?))
        }
        Err(e) => Err(e.into()),
    }
}

/// The probe form: an http(s) URL (empty removes the probe) and its interval.
#[derive(Deserialize)]
pub struct ProbeForm {
    #[serde(default)]
    probe_url: String,
    #[serde(default)]
    probe_interval_seconds: String,
}

/// `POST /console/operator/regions/{region}/probe`.
pub async fn set_region_probe(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    ConsoleForm(form): ConsoleForm<ProbeForm>,
) -> PageResult {
    let frame = operator_frame(&signed, "regions", "Storage regions")?;
    let interval = match form.probe_interval_seconds.trim() {
        "" => None,
        t => match t.parse() {
            Ok(n) => Some(n),
            Err(_) => {
                let error = Some("The probe interval must be a whole number of seconds.".to_owned());
                return Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &regions_page(&state, frame, error).await?));
            }
        },
    };
    let url = Some(form.probe_url.trim().to_owned()).filter(|u| !u.is_empty());
    let update = RegionChange { probe_url: Some(url), probe_interval_seconds: interval, ..RegionChange::default() };
    let before = redacted(&state.service.region(&id).await?);
    let audit = Change { before: Some(before), ..signed.change(None, "region.update", &id) };
    match state.service.audited(audit, state.service.update_region(&id, update)).await {
        Ok(_) => Ok(Redirect::to("/console/operator/regions").into_response()),
        Err(DomainError::Invalid(m)) => {
            Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &regions_page(&state, frame, Some(m)).await?))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /console/operator/regions/{region}/default`: new tenants' catch-all mapping points here.
pub async fn set_default_region(State(state): State<AppState>, signed: Signed, Path(id): Path<String>) -> PageResult {
    operator_frame(&signed, "regions", "Storage regions")?;
    let before = Some(serde_json::json!({ "region_id": state.service.default_region().await?.id }));
    let audit = Change { before, ..signed.change(None, "region.set_default", &id) };
    let op = async { state.service.set_default_region(&id).await.map(|()| serde_json::json!({ "region_id": id })) };
    state.service.audited(audit, op).await?;
    Ok(Redirect::to("/console/operator/regions").into_response())
}

/// The set-health form.
#[derive(Deserialize)]
pub struct HealthForm {
    health: String,
}

/// `POST /console/operator/regions/{region}`: sets a region's health (healthy activates the
/// users held for it).
pub async fn set_region_health(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    ConsoleForm(form): ConsoleForm<HealthForm>,
) -> PageResult {
    operator_frame(&signed, "regions", "Storage regions")?;
    let health: Health = serde_json::from_value(serde_json::Value::String(form.health.clone()))
        .map_err(|_| ConsoleError::status(StatusCode::BAD_REQUEST, "Health must be healthy, degraded or down."))?;
    let before = redacted(&state.service.region(&id).await?);
    let audit = Change { before: Some(before), ..signed.change(None, "region.update", &id) };
    let update = RegionChange { health: Some(health), ..RegionChange::default() };
    state.service.audited(audit, state.service.update_region(&id, update)).await?;
    Ok(Redirect::to("/console/operator/regions").into_response())
}

/// The claim lookup.
#[derive(Deserialize, Default)]
pub struct ClaimQuery {
    #[serde(default)]
    email: String,
    #[serde(default)]
    released: Option<String>,
}

/// A claim as the page shows it.
pub struct ClaimView {
    pub email: String,
    pub tenant: String,
    pub tenant_id: String,
    pub user_id: String,
    pub user_name: String,
    pub user_state: String,
    pub since: String,
    pub stale: bool,
}

#[derive(Template)]
#[template(path = "console/operator_claims.html")]
struct ClaimsPage {
    frame: Frame,
    email: String,
    searched: bool,
    claim: Option<ClaimView>,
    released: bool,
    error: Option<String>,
}

async fn claims_page(
    state: &AppState,
    signed: &Signed,
    frame: Frame,
    email: String,
    error: Option<String>,
    released: bool,
) -> Result<ClaimsPage, ConsoleError> {
    let searched = !email.trim().is_empty();
    let claim = if searched { state.service.lookup_email_claim(&signed.principal, &email).await? } else { None };
    let claim = claim.map(|c| ClaimView {
        email: c.claim.email.clone(),
        tenant: c.tenant_name.clone(),
        tenant_id: c.claim.tenant_id.clone(),
        user_id: c.claim.user_id.clone(),
        user_name: c.user_name.clone().unwrap_or_else(|| "(no such user any more)".into()),
        user_state: c.user_state.map(|s| s.as_str().to_owned()).unwrap_or_default(),
        since: when(c.claim.claimed_at),
        stale: c.stale,
    });
    Ok(ClaimsPage { frame, email, searched, claim, released, error })
}

/// `GET /console/operator/claims?email=`: who holds an email cloud-wide.
pub async fn claims(
    State(state): State<AppState>,
    signed: Signed,
    ConsoleQuery(q): ConsoleQuery<ClaimQuery>,
) -> PageResult {
    let frame = operator_frame(&signed, "claims", "Email claims")?;
    let released = q.released.is_some();
    Ok(render(&claims_page(&state, &signed, frame, q.email, None, released).await?))
}

/// The release form.
#[derive(Deserialize)]
pub struct ReleaseForm {
    email: String,
}

/// `POST /console/operator/claims/release`: releases a stale claim.
pub async fn release_claim(
    State(state): State<AppState>,
    signed: Signed,
    ConsoleForm(form): ConsoleForm<ReleaseForm>,
) -> PageResult {
    let frame = operator_frame(&signed, "claims", "Email claims")?;
    let audit = signed.change(None, "email_claim.release", &form.email);
    match state.service.audited(audit, state.service.release_stale_claim(&signed.principal, &form.email)).await {
        Ok(claim) => {
            let email: String = form_urlencoded::byte_serialize(claim.email.as_bytes()).collect();
            Ok(Redirect::to(&format!("/console/operator/claims?email={email}&released=1")).into_response())
        }
        Err(DomainError::Conflict(m)) => {
            let page = claims_page(&state, &signed, frame, form.email, Some(m), false).await?;
            Ok(render_with(StatusCode::CONFLICT, &page))
        }
        Err(DomainError::NotFound(m)) => {
            let page = claims_page(&state, &signed, frame, form.email, Some(m), false).await?;
            Ok(render_with(StatusCode::NOT_FOUND, &page))
        }
        Err(e) => Err(e.into()),
    }
}

/// An account as listed.
pub struct AccountRow {
    pub id: String,
    pub email: String,
    pub role: &'static str,
    pub tenant: String,
    pub last_sign_in: String,
}

#[derive(Template)]
#[template(path = "console/operator_accounts.html")]
struct AccountsPage {
    frame: Frame,
    error: Option<String>,
    rows: Vec<AccountRow>,
    tenants: Vec<scimd_domain::tenant::Tenant>,
}

async fn accounts_page(state: &AppState, frame: Frame, error: Option<String>) -> Result<AccountsPage, ConsoleError> {
    let tenants = state.service.tenants().await?;
    let rows = state
        .service
        .accounts()
        .await?
        .into_iter()
        .map(|a| AccountRow {
            role: a.role.as_str(),
            tenant: a
                .role
                .tenant_id()
                .map(|id| tenants.iter().find(|t| t.id == id).map_or_else(|| id.to_owned(), |t| t.name.clone()))
                .unwrap_or_default(),
            last_sign_in: maybe_when(a.last_sign_in_at),
            id: a.id,
            email: a.email,
        })
        .collect();
    Ok(AccountsPage { frame, error, rows, tenants })
}

/// `GET /console/operator/accounts`.
pub async fn accounts(State(state): State<AppState>, signed: Signed) -> PageResult {
    let frame = operator_frame(&signed, "accounts", "Accounts")?;
    Ok(render(&accounts_page(&state, frame, None).await?))
}

/// The new-account form.
#[derive(Deserialize)]
pub struct AccountForm {
    email: String,
    password: String,
    /// `operator`, or the id of the tenant the account administers.
    #[serde(default)]
    scope: String,
}

/// `POST /console/operator/accounts`: an operator or a tenant admin, chosen explicitly.
pub async fn create_account(
    State(state): State<AppState>,
    signed: Signed,
    ConsoleForm(form): ConsoleForm<AccountForm>,
) -> PageResult {
    let frame = operator_frame(&signed, "accounts", "Accounts")?;
    let role = match form.scope.trim() {
        "operator" => Role::Operator,
        "" => {
            let error = Some("Choose the account's role.".to_owned());
            return Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &accounts_page(&state, frame, error).await?));
        }
        t => Role::TenantAdmin(t.to_owned()),
    };
    let tenant = role.tenant_id().map(str::to_owned);
    let audit = signed.change(tenant.as_deref(), "account.create", &form.email);
    match state.service.audited(audit, state.service.create_account(&form.email, &form.password, role)).await {
        Ok(_) => Ok(Redirect::to("/console/operator/accounts").into_response()),
        Err(DomainError::Invalid(m) | DomainError::Conflict(m) | DomainError::NotFound(m)) => {
            Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &accounts_page(&state, frame, Some(m)).await?))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /console/operator/accounts/{account}/delete`.
pub async fn delete_account(State(state): State<AppState>, signed: Signed, Path(id): Path<String>) -> PageResult {
    let frame = operator_frame(&signed, "accounts", "Accounts")?;
    let account = state.service.account(&id).await?;
    let tenant = account.role.tenant_id().map(str::to_owned);
    let audit = Change { before: Some(redacted(&account)), ..signed.change(tenant.as_deref(), "account.delete", &id) };
    match state.service.audited(audit, state.service.delete_account(&signed.principal, &id)).await {
        Ok(()) => Ok(Redirect::to("/console/operator/accounts").into_response()),
        Err(DomainError::Conflict(m)) => {
            Ok(render_with(StatusCode::CONFLICT, &accounts_page(&state, frame, Some(m)).await?))
        }
        Err(e) => Err(e.into()),
    }
}

/// An audit entry as listed.
pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub tenant: String,
    pub action: String,
    pub target: String,
    pub before: String,
    pub after: String,
}

#[derive(Template)]
#[template(path = "console/operator_audit.html")]
struct AuditPage {
    frame: Frame,
    rows: Vec<AuditRow>,
    older: Option<i64>,
}

/// `?before=` of the audit page.
#[derive(Deserialize, Default)]
pub struct AuditPaging {
    before: Option<i64>,
}

/// `GET /console/operator/audit?before=`.
pub async fn audit(
    State(state): State<AppState>,
    signed: Signed,
    ConsoleQuery(q): ConsoleQuery<AuditPaging>,
) -> PageResult {
    let frame = operator_frame(&signed, "audit", "Audit log")?;
    let tenants = state.service.tenants().await?;
    let entries = state.service.audit_log(AuditQuery { tenant_id: None, before_id: q.before, limit: 100 }).await?;
    let older = (entries.len() == 100).then(|| entries.last().map_or(0, |e| e.id));
    let show = |v: &Option<serde_json::Value>| v.as_ref().map(pretty).unwrap_or_default();
    let rows = entries
        .iter()
        .map(|e| AuditRow {
            at: when(e.at),
            actor: e.actor.clone(),
            tenant: e
                .tenant_id
                .as_ref()
                .map(|id| tenants.iter().find(|t| &t.id == id).map_or_else(|| id.clone(), |t| t.name.clone()))
                .unwrap_or_default(),
            action: e.action.clone(),
            target: e.target.clone(),
            before: show(&e.before),
            after: show(&e.after),
        })
        .collect();
    Ok(render(&AuditPage { frame, rows, older }))
}
