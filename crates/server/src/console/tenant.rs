//! A tenant's pages: dashboard, users, deployment settings (tokens), SCIM mappings, profiles,
//! storage, the provisioning log, health (the doctor) and webhooks.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use scimd_domain::DomainError;
use scimd_domain::access::audit::{Change, redacted};
use scimd_domain::doctor::{Finding, Report};
use scimd_domain::events::{Cause, Event, EventQuery, Outcome};
use scimd_domain::provisioning::admin::{MappingChange, validate_condition};
use scimd_domain::provisioning::{
    DeletePolicy, HoldSettings, Mapping, Profile, Region, TenantSettings, UserSearch, UserState,
};
use scimd_domain::resources::StoredResource;
use scimd_domain::tenant::Tenant;
use scimd_domain::token::TokenRequest;
use serde::Deserialize;
use serde_json::Value;

use super::session::Signed;
use super::view::{Frame, maybe_when, pretty, when};
use super::{ConsoleError, ConsoleForm, ConsoleQuery, PageResult, render, render_with};
use crate::AppState;
use crate::admin::provisioning::placement_json;
use crate::scim::advertised_base;

/// The tenant of the path, if the signed-in account may see it, with the page's frame.
async fn open(
    state: &AppState,
    signed: &Signed,
    tenant_id: &str,
    section: &'static str,
    title: &str,
) -> Result<(Tenant, Frame), ConsoleError> {
    let tenant = state.service.tenant_for(&signed.principal, tenant_id).await.map_err(|e| {
        let frame = Frame::new(signed, "", "Not available");
        ConsoleError::from(e).within(frame)
    })?;
    let frame = Frame::tenant(signed, &tenant, section, title);
    Ok((tenant, frame))
}

/// Sends the browser back to a page after a change.
fn back(tenant: &Tenant, page: &str, done: &str) -> Response {
    Redirect::to(&format!("/console/t/{}/{page}?done={done}", tenant.id)).into_response()
}

/// `?done=` of a page: which change just succeeded (fixed messages only, nothing reflected).
#[derive(Deserialize, Default)]
pub struct Done {
    done: Option<String>,
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "token-revoked" => "The token was revoked: it no longer works.",
        "mapping-saved" => "The mapping was saved.",
        "mapping-moved" => "The order of the mappings was changed.",
        "mapping-deleted" => "The mapping was deleted.",
        "profile-saved" => "The profile was saved.",
        "profile-deleted" => "The profile was deleted.",
        "webhook-added" => "The webhook was added.",
        "webhook-deleted" => "The webhook was deleted.",
        "settings-saved" => "The provisioning settings were saved.",
        "user-created" => "The user was created.",
        "user-preserved" => {
            "The user was preserved: its seat is free, its data kept, and the identity provider can no longer re-activate it."
        }
        "user-restored" => "The user was restored and is managed by the identity provider again.",
        "user-purged" => "The user was purged: its data is gone and its email is free.",
        "regions-saved" => "The tenant's regions were saved.",
        _ => return None,
    })
}

/// A doctor finding as pages show it.
pub struct FindingView {
    pub severity: &'static str,
    pub code: &'static str,
    pub title: String,
    pub fix: Vec<String>,
    pub evidence: String,
}

impl FindingView {
    fn of(f: &Finding) -> FindingView {
        FindingView {
            severity: f.severity.as_str(),
            code: f.code,
            title: f.title.clone(),
            fix: f.fix.clone(),
            evidence: pretty(&f.evidence),
        }
    }
}

fn report_findings(report: &Report) -> Vec<FindingView> {
    report.findings.iter().map(FindingView::of).collect()
}

// ---- dashboard ----------------------------------------------------------------------------

/// One bar segment of the activity chart (SVG coordinates).
pub struct Bar {
    pub x: u32,
    pub y: u32,
    pub height: u32,
    pub outcome: &'static str,
    pub label: String,
}

/// A day's label under the chart.
pub struct DayLabel {
    pub x: u32,
    pub text: String,
    pub total: u64,
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct DashboardPage {
    frame: Frame,
    banner: Option<FindingView>,
    status: &'static str,
    active: u64,
    pending: u64,
    preserved: u64,
    profiles_near_limit: Vec<String>,
    bars: Vec<Bar>,
    days: Vec<DayLabel>,
    week_total: u64,
}

const OUTCOMES: [Outcome; 5] =
    [Outcome::Accepted, Outcome::Held, Outcome::Refused, Outcome::Unauthenticated, Outcome::Failed];

async fn count_in(state: &AppState, tenant: &Tenant, s: UserState) -> Result<u64, DomainError> {
    let search = UserSearch { state: Some(s), limit: 1, ..UserSearch::default() };
    Ok(state.service.search_users(tenant, search).await?.0)
}

/// `GET /console/t/{tenant}`.
pub async fn dashboard(State(state): State<AppState>, signed: Signed, Path(id): Path<String>) -> PageResult {
    let (tenant, frame) = open(&state, &signed, &id, "dashboard", "Dashboard").await?;
    let report = state.service.doctor(&tenant, None).await?;
    let activity = state.service.activity(&tenant, 7).await?;
    let today = state.service.now();
    let day_names: Vec<String> =
        (0..7).rev().map(|back| when(today - time::Duration::days(back))[..10].to_owned()).collect();
    let total_of = |day: &str| activity.iter().filter(|a| a.day == day).map(|a| a.count).sum::<u64>();
    let max = day_names.iter().map(|d| total_of(d)).max().unwrap_or(0).max(1);
    let (chart_height, bar_width, step) = (140u64, 44u32, 76u32);
    let mut bars = Vec::new();
    let mut days = Vec::new();
    for (i, day) in day_names.iter().enumerate() {
        let x = 24 + step * i as u32;
        let mut top = chart_height;
        for outcome in OUTCOMES {
            let count: u64 = activity.iter().filter(|a| &a.day == day && a.outcome == outcome).map(|a| a.count).sum();
            if count == 0 {
                continue;
            }
            let height = (count * chart_height / max).max(2);
            top = top.saturating_sub(height);
            bars.push(Bar {
                x,
                y: top as u32 + 10,
                height: height as u32,
                outcome: outcome.as_str(),
                label: format!("{day}: {count} {}", outcome.as_str()),
            });
        }
        days.push(DayLabel { x: x + bar_width / 2, text: day[5..].to_owned(), total: total_of(day) });
    }
    let profiles = state.service.profiles(&tenant).await?;
    let profiles_near_limit = profiles
        .iter()
        .filter(|p| p.max_users > 0 && u64::from(p.active_users) * 10 >= u64::from(p.max_users) * 9)
        .map(|p| format!("{} ({} of {} seats)", p.name, p.active_users, p.max_users))
        .collect();
    let page = DashboardPage {
        banner: report.findings.first().map(FindingView::of),
        status: report.status(),
        active: count_in(&state, &tenant, UserState::Active).await?,
        pending: count_in(&state, &tenant, UserState::Pending).await?,
        preserved: count_in(&state, &tenant, UserState::Preserved).await?,
        profiles_near_limit,
        week_total: activity.iter().map(|a| a.count).sum(),
        bars,
        days,
        frame,
    };
    Ok(render(&page))
}

// ---- users --------------------------------------------------------------------------------

/// A user as lists show it.
pub struct UserRow {
    pub id: String,
    pub user_name: String,
    pub display_name: String,
    pub state: &'static str,
    pub cause: String,
    pub profile: String,
    pub region: String,
    pub since: String,
}

/// The name of the object with this id among `(id, name)` pairs, else the id itself.
fn name_in<'a>(id: &str, mut pairs: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    pairs.find(|(i, _)| i.as_str() == id).map_or_else(|| id.to_owned(), |(_, n)| n.clone())
}

fn user_row(u: &StoredResource, profiles: &[Profile], regions: &[Region]) -> UserRow {
    let text = |key: &str| u.doc.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let p = u.placement.as_ref();

    UserRow {
        id: u.id.clone(),
        user_name: text("userName"),
        display_name: text("displayName"),
        state: p.map_or("", |p| p.state.as_str()),
        cause: p.and_then(|p| p.pending_cause).map(|c| c.as_str().to_owned()).unwrap_or_default(),
        profile: p
            .and_then(|p| p.profile_id.as_deref())
            .map(|id| name_in(id, profiles.iter().map(|x| (&x.id, &x.name))))
            .unwrap_or_default(),
        region: p
            .and_then(|p| p.region_id.as_deref())
            .map(|id| name_in(id, regions.iter().map(|x| (&x.id, &x.name))))
            .unwrap_or_default(),
        since: p.map(|p| when(p.since)).unwrap_or_default(),
    }
}

/// The users page's search.
#[derive(Deserialize, Default)]
pub struct UserQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    profile: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    page: u32,
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage {
    frame: Frame,
    query: UserQuery,
    states: [&'static str; 4],
    profiles: Vec<Profile>,
    regions: Vec<Region>,
    pending: Vec<UserRow>,
    rows: Vec<UserRow>,
    total: u64,
    first: u64,
    last: u64,
    prev_link: Option<String>,
    next_link: Option<String>,
    filtered: bool,
}

impl UserQuery {
    fn page_link(&self, page: u32) -> String {
        let q = self;
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        format!(
            "?q={}&state={}&profile={}&region={}&page={page}",
            enc(&q.q),
            enc(&q.state),
            enc(&q.profile),
            enc(&q.region)
        )
    }
}

const USERS_PER_PAGE: u32 = 50;

/// `GET /console/t/{tenant}/users?q=&state=&profile=&region=&page=`.
pub async fn users(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    ConsoleQuery(query): ConsoleQuery<UserQuery>,
) -> PageResult {
    let (tenant, frame) = open(&state, &signed, &id, "users", "Users").await?;
    let profiles = state.service.profiles(&tenant).await?;
    let regions = state.service.tenant_regions(&tenant).await?;
    let user_state = match query.state.as_str() {
        "" => None,
        s => Some(
            serde_json::from_value::<UserState>(Value::String(s.to_owned()))
                .map_err(|_| ConsoleError::status(StatusCode::BAD_REQUEST, format!("\"{s}\" is not a user state")))?,
        ),
    };
    let non_empty = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let search = UserSearch {
        text: non_empty(&query.q),
        state: user_state,
        profile_id: non_empty(&query.profile),
        region_id: non_empty(&query.region),
        offset: query.page.saturating_mul(USERS_PER_PAGE),
        limit: USERS_PER_PAGE,
    };
    let filtered = search != UserSearch { offset: search.offset, limit: USERS_PER_PAGE, ..UserSearch::default() };
    let (total, found) = state.service.search_users(&tenant, search.clone()).await?;
    let pending = if filtered || query.page > 0 {
        Vec::new()
    } else {
        state.service.pending_users(&tenant).await?.iter().take(20).map(|u| user_row(u, &profiles, &regions)).collect()
    };
    let rows: Vec<UserRow> = found.iter().map(|u| user_row(u, &profiles, &regions)).collect();
    let first = u64::from(search.offset) + u64::from(!rows.is_empty());
    let last = u64::from(search.offset) + rows.len() as u64;
    let page = UsersPage {
        prev_link: query.page.checked_sub(1).map(|p| query.page_link(p)),
        next_link: (last < total).then(|| query.page_link(query.page + 1)),
        frame,
        query,
        states: ["active", "pending", "preserved", "deleted"],
        profiles,
        regions,
        pending,
        rows,
        total,
        first,
        last,
        filtered,
    };
    Ok(render(&page))
}

/// A provisioning log entry as lists show it.
pub struct EventRow {
    pub id: i64,
    pub at: String,
    pub request: String,
    pub subject: String,
    pub outcome: &'static str,
    pub cause: &'static str,
    pub status: u16,
    pub detail: String,
    pub idp: &'static str,
}

fn event_row(e: &Event) -> EventRow {
    EventRow {
        id: e.id,
        at: when(e.at),
        request: format!("{} {}", e.method, e.path),
        subject: e.subject.clone().unwrap_or_default(),
        outcome: e.outcome.as_str(),
        cause: e.cause.as_str(),
        status: e.status,
        detail: e.detail.clone().unwrap_or_default(),
        idp: e.idp.as_str(),
    }
}

#[derive(Template)]
#[template(path = "console/user.html")]
struct UserPage {
    frame: Frame,
    notice: Option<&'static str>,
    error: Option<String>,
    row: UserRow,
    managed_by: String,
    preserved_by: String,
    claimed_email: String,
    attributes: String,
    timeline: Vec<EventRow>,
}

/// `GET /console/t/{tenant}/users/{user}`: attributes, placement and the user's timeline.
pub async fn user(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Path((id, user_id)): Path<(String, String)>,
    ConsoleQuery(done): ConsoleQuery<Done>,
) -> PageResult {
    let (tenant, frame) = open(&state, &signed, &id, "users", "User").await?;
    let user = state.service.any_user(&tenant, &user_id).await.map_err(|e| match e {
        DomainError::Scim(_) => {
            ConsoleError::status(StatusCode::NOT_FOUND, "This tenant has no user with this id.").within(frame.clone())
        }
        other => other.into(),
    })?;
    let profiles = state.service.profiles(&tenant).await?;
    let regions = state.service.tenant_regions(&tenant).await?;
    let base = advertised_base(&state, &headers).unwrap_or_else(|| "/scim/v2".into());
    let row = user_row(&user, &profiles, &regions);
    // The log names a user by id once it exists, and by userName in the request that created it.
    let mut timeline = Vec::new();
    for subject in [row.id.clone(), row.user_name.clone()].into_iter().filter(|s| !s.is_empty()) {
        let query = EventQuery {
            tenant_id: Some(tenant.id.clone()),
            subject: Some(subject),
            limit: 100,
            ..EventQuery::default()
        };
        timeline.extend(state.service.events(&query).await?);
    }
    timeline.sort_by_key(|e| std::cmp::Reverse(e.id));
    timeline.dedup_by_key(|e| e.id);
    let p = user.placement.as_ref();
    let page = UserPage {
        frame: Frame { title: format!("User {}", row.user_name), ..frame },
        notice: notice(done.done.as_deref()),
        error: None,
        managed_by: p.map(|p| format!("{:?}", p.managed_by).to_lowercase()).unwrap_or_default(),
        preserved_by: p.and_then(|p| p.preserved_by).map(|a| format!("{a:?}").to_lowercase()).unwrap_or_default(),
        claimed_email: p.and_then(|p| p.claimed_email.clone()).unwrap_or_default(),
        attributes: pretty(&user.to_scim(&base)),
        timeline: timeline.iter().map(event_row).collect(),
        row,
    };
    Ok(render(&page))
}

/// What an admin does to one user: preserve, restore or purge.
#[derive(Deserialize)]
pub struct UserAction {
    action: String,
}

/// `POST /console/t/{tenant}/users/{user}`: preserve (seat freed, data kept, the IdP can no
/// longer re-activate it), restore (re-activated, IdP-managed again) or purge (gone).
pub async fn user_action(
    State(state): State<AppState>,
    signed: Signed,
    Path((id, user_id)): Path<(String, String)>,
    ConsoleForm(form): ConsoleForm<UserAction>,
) -> PageResult {
    let (tenant, frame) = open(&state, &signed, &id, "users", "User").await?;
    let service = &state.service;
    let before = service.any_user(&tenant, &user_id).await.ok().map(|u| placement_json(&u));
    let audit = |action| Change { before: before.clone(), ..signed.change(Some(&tenant.id), action, &user_id) };
    let result = match form.action.as_str() {
        "preserve" => service
            .audited(audit("user.preserve"), async {
                service.admin_preserve_user(&tenant, &user_id).await.map(|u| placement_json(&u))
            })
            .await
            .map(|_| "user-preserved"),
        "restore" => service
            .audited(audit("user.restore"), async {
                service.restore_user(&tenant, &user_id).await.map(|u| placement_json(&u))
            })
            .await
            .map(|_| "user-restored"),
        "purge" => {
            service.audited(audit("user.purge"), service.purge_user(&tenant, &user_id)).await.map(|()| "user-purged")
        }
        other => {
            return Err(ConsoleError::status(StatusCode::BAD_REQUEST, format!("\"{other}\" is not a user action"))
                .within(frame));
        }
    };
    match result {
        Ok("user-purged") => Ok(back(&tenant, "users", "user-purged")),
        Ok(done) => Ok(Redirect::to(&format!("/console/t/{}/users/{user_id}?done={done}", tenant.id)).into_response()),
        Err(e) => Err(ConsoleError::from(e).within(frame)),
    }
}

/// The add-a-user form.
#[derive(Deserialize)]
pub struct NewUserForm {
    user_name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    display_name: String,
}

/// `POST /console/t/{tenant}/users`: a user made by hand, under the same rules as a SCIM create;
/// the IdP takes it over when it first writes to it.
pub async fn create_user(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    ConsoleForm(form): ConsoleForm<NewUserForm>,
) -> PageResult {
    let (tenant, frame) = open(&state, &signed, &id, "users", "Users").await?;
    let mut body = serde_json::json!({ "userName": form.user_name.trim() });
    if !form.email.trim().is_empty() {
        body["emails"] = serde_json::json!([{ "value": form.email.trim(), "type": "work", "primary": true }]);
    }
    if !form.display_name.trim().is_empty() {
        body["displayName"] = Value::String(form.display_name.trim().to_owned());
    }
    let audit = signed.change(Some(&tenant.id), "user.create", form.user_name.trim());
    let op = async { state.service.admin_create_user(&tenant, body).await.map(|u| u.id) };
    match state.service.audited(audit, op).await {
        Ok(user_id) => {
            Ok(Redirect::to(&format!("/console/t/{}/users/{user_id}?done=user-created", tenant.id)).into_response())
        }
        Err(e) => Err(ConsoleError::from(e).within(frame)),
    }
}

// ---- deployment settings: the SCIM base URL and tokens -------------------------------------

/// A token as the deployment page shows it.
pub struct TokenRow {
    pub id: String,
    pub prefix: String,
    pub state: &'static str,
    pub created: String,
    pub expires: String,
    pub revoked: String,
    pub last_used: String,
    pub idp: String,
}

#[derive(Template)]
#[template(path = "console/deployment.html")]
struct DeploymentPage {
    frame: Frame,
    notice: Option<&'static str>,
    error: Option<String>,
    base_url: String,
    tokens: Vec<TokenRow>,
    lifetime_days: u32,
    new_token: Option<(String, String)>,
    settings: TenantSettings,
}

async fn deployment_page(
    state: &AppState,
    headers: &HeaderMap,
    tenant: &Tenant,
    frame: Frame,
    notice: Option<&'static str>,
    error: Option<String>,
    new_token: Option<(String, String)>,
) -> Result<DeploymentPage, ConsoleError> {
    let now = state.service.now();
    let tokens = state.service.tokens(&tenant.id).await?;
    let tokens = tokens
        .iter()
        .map(|t| TokenRow {
            id: t.id.clone(),
            prefix: t.prefix.clone(),
            state: match t.state_at(now) {
                scimd_domain::token::TokenState::Active => "active",
                scimd_domain::token::TokenState::Expired => "expired",
                scimd_domain::token::TokenState::Revoked => "revoked",
            },
            created: when(t.created_at),
            expires: when(t.expires_at),
            revoked: maybe_when(t.revoked_at),
            last_used: maybe_when(t.last_used_at),
            idp: scimd_domain::events::Idp::from_user_agent(t.last_used_agent.as_deref()).as_str().to_owned(),
        })
        .collect();
    Ok(DeploymentPage {
        frame,
        notice,
        error,
        base_url: advertised_base(state, headers).unwrap_or_else(|| "/scim/v2".into()),
        tokens,
        lifetime_days: tenant.token_lifetime_days,
        new_token,
        settings: state.service.settings(tenant).await?,
    })
}

/// `GET /console/t/{tenant}/deployment`.
pub async fn deployment(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
    ConsoleQuery(done): ConsoleQuery<Done>,
) -> PageResult {
    let (tenant, frame) = open(&state, &signed, &id, "deployment", "Deployment settings").await?;
    let page = deployment_page(&state, &headers, &tenant, frame, notice(done.done.as_deref()), None, None).await?;
    Ok(render(&page))
}

/// The New Token form.
#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    lifetime_days: String,
    #[serde(default)]
    keep_old_hours: String,
}

/// `POST /console/t/{tenant}/tokens`: the new token is on this answer only.
pub async fn create_token(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
    ConsoleForm(form): ConsoleForm<TokenForm>,
) -> PageResult {
    let (tenant, frame) = open(&state, &signed, &id, "deployment", "Deployment settings").await?;
    let number = |text: &str, what: &str| -> Result<Option<u32>, String> {
        match text.trim() {
            "" => Ok(None),
            t => t.parse().map(Some).map_err(|_| format!("{what} must be a whole number")),
        }
    };
    let parsed =
        number(&form.lifetime_days, "The lifetime").and_then(|l| Ok((l, number(&form.keep_old_hours, "The overlap")?)));
    let (lifetime_days, keep_old_hours) = match parsed {
        Ok(v) => v,
        Err(message) => {
            let page = deployment_page(&state, &headers, &tenant, frame, None, Some(message), None).await?;
            return Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
    };
    let request = TokenRequest {
        lifetime_days,
        expires_at: None,
        keep_old_for: keep_old_hours.filter(|h| *h > 0).map(|h| time::Duration::hours(i64::from(h))),
    };
    let audit = signed.change(Some(&tenant.id), "token.create", &tenant.id);
    let mut secret = None;
    let op = async {
        let issued = state.service.issue_token(&tenant.id, request).await?;
        secret = Some(issued.secret);
        Ok(issued.record)
    };
    match state.service.audited(audit, op).await {
        Ok(record) => {
            let shown = (secret.unwrap_or_default(), when(record.expires_at));
            let page = deployment_page(&state, &headers, &tenant, frame, None, None, Some(shown)).await?;
            Ok(render(&page))
        }
        Err(DomainError::Invalid(message)) => {
            let page = deployment_page(&state, &headers, &tenant, frame, None, Some(message), None).await?;
            Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /console/t/{tenant}/tokens/{token}/revoke`.
pub async fn revoke_token(
    State(state): State<AppState>,
    signed: Signed,
    Path((id, token_id)): Path<(String, String)>,
) -> PageResult {
    let (tenant, _) = open(&state, &signed, &id, "deployment", "Deployment settings").await?;
    let before = state.service.tokens(&tenant.id).await?.into_iter().find(|t| t.id == token_id).map(|t| redacted(&t));
    let audit = Change { before, ..signed.change(Some(&tenant.id), "token.revoke", &token_id) };
    state.service.audited(audit, state.service.revoke_token(&tenant.id, &token_id)).await?;
    Ok(back(&tenant, "deployment", "token-revoked"))
}

/// The provisioning settings form (checkboxes are absent when unticked).
#[derive(Deserialize)]
pub struct SettingsForm {
    hold_no_mapping_matched: Option<String>,
    hold_profile_full: Option<String>,
    hold_region_unhealthy: Option<String>,
    delete_policy: String,
    remap_on_update: Option<String>,
}

/// `POST /console/t/{tenant}/settings`: what happens to refused users, to deleted users, and to
/// users whose mapped attributes change.
pub async fn save_settings(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    ConsoleForm(form): ConsoleForm<SettingsForm>,
) -> PageResult {
    let (tenant, _) = open(&state, &signed, &id, "deployment", "Deployment settings").await?;
    let delete_policy = match form.delete_policy.as_str() {
        "purge" => DeletePolicy::Purge,
        "preserve" => DeletePolicy::Preserve,
        other => {
            return Err(ConsoleError::status(StatusCode::BAD_REQUEST, format!("\"{other}\" is not a delete policy")));
        }
    };
    let settings = TenantSettings {
        hold: HoldSettings {
            no_mapping_matched: form.hold_no_mapping_matched.is_some(),
            profile_full: form.hold_profile_full.is_some(),
            region_unhealthy: form.hold_region_unhealthy.is_some(),
        },
        delete_policy,
        remap_on_update: form.remap_on_update.is_some(),
    };
    let before = redacted(&state.service.settings(&tenant).await?);
    let audit = Change { before: Some(before), ..signed.change(Some(&tenant.id), "settings.update", &tenant.id) };
    state.service.audited(audit, state.service.set_settings(&tenant, settings)).await?;
    Ok(back(&tenant, "deployment", "settings-saved"))
}

// ---- mappings -------------------------------------------------------------------------------

/// A mapping as the list shows it.
pub struct MappingRow {
    pub id: String,
    pub name: String,
    pub filter: String,
    pub profile: String,
    pub region: String,
    pub enabled: bool,
}

/// The mapping editor's values.
#[derive(Deserialize, Default, Clone)]
pub struct MappingForm {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    filter: String,
    #[serde(default)]
    profile_id: String,
    #[serde(default)]
    region_id: String,
    #[serde(default)]
    enabled: Option<String>,
}

/// One mapping's line in a dry run's trace.
pub struct TraceRow {
    pub name: String,
    pub result: &'static str,
    pub failed: Vec<String>,
}

/// A dry run's outcome.
pub struct DryRunView {
    pub verdict: String,
    pub matched: bool,
    pub trace: Vec<TraceRow>,
}

#[derive(Template)]
#[template(path = "console/mappings.html")]
struct MappingsPage {
    frame: Frame,
    notice: Option<&'static str>,
    error: Option<String>,
    rows: Vec<MappingRow>,
    profiles: Vec<Profile>,
    regions: Vec<Region>,
    form: MappingForm,
    editing: bool,
    sample: String,
    dry_run: Option<DryRunView>,
}

#[derive(Template)]
#[template(path = "console/condition_check.html")]
struct ConditionCheck {
    ok: bool,
    message: String,
}

#[derive(Template)]
#[template(path = "console/dry_run.html")]
struct DryRunFragment {
    dry_run: DryRunView,
}

const SAMPLE_USER: &str = r#"{
  "userName": "alice@example.com",
  "emails": [{"value": "alice@example.com", "type": "work", "primary": true}],
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales"}
}"#;

struct MappingsView {
    notice: Option<&'static str>,
    error: Option<String>,
    form: MappingForm,
    editing: bool,
    sample: String,
    dry_run: Option<DryRunView>,
}

async fn mappings_page(
    state: &AppState,
    tenant: &Tenant,
    frame: Frame,
    view: MappingsView,
) -> Result<MappingsPage, ConsoleError> {
    let mappings = state.service.mappings(tenant).await?;
    let profiles = state.service.profiles(tenant).await?;
    let regions = state.service.tenant_regions(tenant).await?;
    let rows = mappings
        .iter()
        .map(|m| MappingRow {
            id: m.id.clone(),
            name: m.name.clone(),
            filter: m.filter.clone().unwrap_or_default(),
            profile: name_in(&m.profile_id, profiles.iter().map(|p| (&p.id, &p.name))),
            region: name_in(&m.region_id, regions.iter().map(|r| (&r.id, &r.name))),
            enabled: m.enabled,
        })
        .collect();
    Ok(MappingsPage {
        frame,
        notice: view.notice,
        error: view.error,
        rows,
        profiles,
        regions,
        form: view.form,
        editing: view.editing,
        sample: view.sample,
        dry_run: view.dry_run,
    })
}

/// `?edit=` of the mappings page.
#[derive(Deserialize, Default)]
pub struct MappingsQuery {
    edit: Option<String>,
    done: Option<String>,
}

fn form_of(m: &Mapping) -> MappingForm {
    MappingForm {
        id: m.id.clone(),
        name: m.name.clone(),
        filter: m.filter.clone().unwrap_or_default(),
        profile_id: m.profile_id.clone(),
        region_id: m.region_id.clone(),
        enabled: m.enabled.then(|| "on".into()),
    }
}

/// `GET /console/t/{tenant}/mappings[?edit=<id>]`.
pub async fn mappings(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    ConsoleQuery(q): ConsoleQuery<MappingsQuery>,
) -> PageResult {
    let (tenant, frame) = open(&state, &signed, &id, "mappings", "SCIM mappings").await?;
    let form = match &q.edit {
        Some(mapping_id) => form_of(&state.service.mapping(&tenant, mapping_id).await?),
        None => MappingForm { enabled: Some("on".into()), ..MappingForm::default() },
    };
    let view = MappingsView {
        notice: notice(q.done.as_deref()),
        error: None,
        editing: q.edit.is_some(),
        form,
        sample: SAMPLE_USER.into(),
        dry_run: None,
    };
    Ok(render(&mappings_page(&state, &tenant, frame, view).await?))
}

/// `POST /console/t/{tenant}/mappings`: creates a mapping, or saves the one named by `id`.
/// A condition that is not a valid SCIM filter is shown again with the parser's reason.
pub async fn save_mapping(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    ConsoleForm(form): ConsoleForm<MappingForm>,
) -> PageResult {
    let (tenant, frame) = open(&state, &signed, &id, "mappings", "SCIM mappings").await?;
    let filter = Some(form.filter.trim().to_owned()).filter(|f| !f.is_empty());
    let change = MappingChange {
        name: Some(form.name.trim().to_owned()),
        priority: None,
        filter: Some(filter),
        profile_id: Some(form.profile_id.clone()),
        region_id: Some(form.region_id.clone()).filter(|r| !r.is_empty()),
        enabled: Some(form.enabled.is_some()),
    };
    let editing = !form.id.is_empty();
    let result = if editing {
        let before = state.service.mapping(&tenant, &form.id).await.map(|m| redacted(&m));
        match before {
            Ok(before) => {
                let audit =
                    Change { before: Some(before), ..signed.change(Some(&tenant.id), "mapping.update", &form.id) };
                state.service.audited(audit, state.service.update_mapping(&tenant, &form.id, change)).await
            }
            Err(e) => Err(e),
        }
    } else {
        // New mappings go last, after the catch-all's priority if it has the highest.
        let last = state.service.mappings(&tenant).await?.iter().map(|m| m.priority).max();
        let change = MappingChange { priority: Some(last.map_or(100, |p| p.saturating_add(10))), ..change };
        let audit = signed.change(Some(&tenant.id), "mapping.create", &form.name);
        state.service.audited(audit, state.service.create_mapping(&tenant, change)).await
    };
    match result {
        Ok(_) => Ok(back(&tenant, "mappings", "mapping-saved")),
        Err(DomainError::Invalid(message) | DomainError::NotFound(message) | DomainError::Conflict(message)) => {
            let view = MappingsView {
                notice: None,
                error: Some(message),
                editing,
                form,
                sample: SAMPLE_USER.into(),
                dry_run: None,
            };
            Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &mappings_page(&state, &tenant, frame, view).await?))
        }
        Err(e) => Err(e.into()),
    }
}

/// The condition field, checked as it is typed.
#[derive(Deserialize)]
pub struct ConditionForm {
    #[serde(default)]
    filter: String,
}

/// `POST /console/t/{tenant}/mappings/check`: a fragment saying whether the condition parses.
pub async fn check_condition(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    ConsoleForm(form): ConsoleForm<ConditionForm>,
) -> PageResult {
    open(&state, &signed, &id, "mappings", "SCIM mappings").await?;
    let check = match form.filter.trim() {
        "" => {
            ConditionCheck { ok: true, message: "No condition: this mapping matches every user (a catch-all).".into() }
        }
        text => match validate_condition(text) {
            Ok(()) => ConditionCheck { ok: true, message: "A valid SCIM filter.".into() },
            Err(e) => ConditionCheck { ok: false, message: e.to_string() },
        },
    };
    Ok(render(&check))
}

/// The dry-run form.
#[derive(Deserialize)]
pub struct DryRunForm {
    user: String,
}

/// `POST /console/t/{tenant}/mappings/dry-run`: where this user would land, and why.
pub async fn dry_run(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
    ConsoleForm(form): ConsoleForm<DryRunForm>,
) -> PageResult {
    let (tenant, frame) = open(&state, &signed, &id, "mappings", "SCIM mappings").await?;
    let view = match serde_json::from_str::<Value>(&form.user) {
        Ok(user @ Value::Object(_)) => match state.service.dry_run(&tenant, user).await {
            Ok((mapping, trace)) => {
                let profiles = state.service.profiles(&tenant).await?;
                let verdict = match &mapping {
                    Some(m) => {
                        let profile =
                            profiles.iter().find(|p| p.id == m.profile_id).map_or(m.profile_id.as_str(), |p| &p.name);
                        format!("This user would land in the profile \"{profile}\" through the mapping \"{}\".", m.name)
                    }
                    None => "No mapping matches this user: it would be refused (no_mapping_matched).".into(),
                };
                let trace = trace
                    .iter()
                    .map(|t| TraceRow {
                        name: t.name.clone(),
                        result: t.result,
                        failed: t
                            .failed
                            .iter()
                            .map(|f| {
                                let actual = if f.actual.is_empty() {
                                    "the user has no value there".to_owned()
                                } else {
                                    format!("the user has {}", Value::Array(f.actual.clone()))
                                };
                                format!("{} — {actual}", f.clause)
                            })
                            .collect(),
                    })
                    .collect();
                Ok(DryRunView { matched: mapping.is_some(), verdict, trace })
            }
            Err(e @ DomainError::Store(_)) => return Err(e.into()),
            Err(e) => Err(e.to_string()),
        },
        Ok(_) => Err("The test user must be a JSON object, like the example.".to_owned()),
        Err(e) => Err(format!("The test user is not valid JSON: {e}")),
    };
    if headers.contains_key("hx-request") {
        let dry_run = view.unwrap_or_else(|message| DryRunView { verdict: message, matched: false, trace: Vec::new() });
        return Ok(render(&DryRunFragment { dry_run }));
    }
    let (dry_run, error) = match view {
        Ok(v) => (Some(v), None),
        Err(m) => (None, Some(m)),
    };
    let view = MappingsView {
        notice: None,
        error,
        editing: false,
        form: MappingForm { enabled: Some("on".into()), ..MappingForm::default() },
        sample: form.user,
        dry_run,
    };
    Ok(render(&mappings_page(&state, &tenant, frame, view).await?))
}

/// The reorder buttons.
#[derive(Deserialize)]
pub struct MoveForm {
    direction: String,
}

/// `POST /console/t/{tenant}/mappings/{mapping}/move`: swaps a mapping with its neighbour.
pub async fn move_mapping(
    State(state): State<AppState>,
    signed: Signed,
    Path((id, mapping_id)): Path<(String, String)>,
    ConsoleForm(form): ConsoleForm<MoveForm>,
) -> PageResult {
    let (tenant, _) = open(&state, &signed, &id, "mappings", "SCIM mappings").await?;
    let mappings = state.service.mappings(&tenant).await?;
    let Some(at) = mappings.iter().position(|m| m.id == mapping_id) else {
        return Err(ConsoleError::from(DomainError::NotFound("this tenant has no such mapping".into())));
    };
    let other = match form.direction.as_str() {
        "up" => at.checked_sub(1),
        _ => Some(at + 1).filter(|i| *i < mappings.len()),
    };
    if let Some(other) = other {
        // Renumbered in steps of 10 with the two swapped, so equal priorities cannot tie.
        let mut order: Vec<&Mapping> = mappings.iter().collect();
        order.swap(at, other);
        for (i, m) in order.iter().enumerate() {
            let priority = (i as i64 + 1) * 10;
            if m.priority != priority {
                let audit =
                    Change { before: Some(redacted(m)), ..signed.change(Some(&tenant.id), "mapping.update", &m.id) };
                let change = MappingChange { priority: Some(priority), ..MappingChange::default() };
                state.service.audited(audit, state.service.update_mapping(&tenant, &m.id, change)).await?;
            }
        }
    }
    Ok(back(&tenant, "mappings", "mapping-moved"))
}

/// `POST /console/t/{tenant}/mappings/{mapping}/delete`.
pub async fn delete_mapping(
    State(state): State<AppState>,
    signed: Signed,
    Path((id, mapping_id)): Path<(String, String)>,
) -> PageResult {
    let (tenant, _) = open(&state, &signed, &id, "mappings", "SCIM mappings").await?;
    let before = redacted(&state.service.mapping(&tenant, &mapping_id).await?);
    let audit = Change { before: Some(before), ..signed.change(Some(&tenant.id), "mapping.delete", &mapping_id) };
    state.service.audited(audit, state.service.delete_mapping(&tenant, &mapping_id)).await?;
    Ok(back(&tenant, "mappings", "mapping-deleted"))
}

// ---- profiles -----------------------------------------------------------------------------

/// A profile with its utilisation.
pub struct ProfileRow {
    pub id: String,
    pub name: String,
    pub max_users: u32,
    pub active: u32,
    pub percent: u64,
    pub warn: bool,
}

#[derive(Template)]
#[template(path = "console/profiles.html")]
struct ProfilesPage {
    frame: Frame,
    notice: Option<&'static str>,
    error: Option<String>,
    rows: Vec<ProfileRow>,
}

async fn profiles_page(
    state: &AppState,
    tenant: &Tenant,
    frame: Frame,
    notice: Option<&'static str>,
    error: Option<String>,
) -> Result<ProfilesPage, ConsoleError> {
    let rows = state
        .service
        .profiles(tenant)
        .await?
        .iter()
        .map(|p| {
            let percent = match p.max_users {
                0 => 0,
                max => (u64::from(p.active_users) * 100 / u64::from(max)).min(100),
            };
            ProfileRow {
                id: p.id.clone(),
                name: p.name.clone(),
                max_users: p.max_users,
                active: p.active_users,
                percent,
                warn: p.max_users > 0 && percent >= 90,
            }
        })
        .collect();
    Ok(ProfilesPage { frame, notice, error, rows })
}

/// `GET /console/t/{tenant}/profiles`.
pub async fn profiles(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    ConsoleQuery(done): ConsoleQuery<Done>,
) -> PageResult {
    let (tenant, frame) = open(&state, &signed, &id, "profiles", "Profiles").await?;
    Ok(render(&profiles_page(&state, &tenant, frame, notice(done.done.as_deref()), None).await?))
}

/// The profile form (create when `id` is empty).
#[derive(Deserialize)]
pub struct ProfileForm {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    max_users: String,
}

/// `POST /console/t/{tenant}/profiles`: creates a profile or changes one (name, Max users).
pub async fn save_profile(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    ConsoleForm(form): ConsoleForm<ProfileForm>,
) -> PageResult {
    let (tenant, frame) = open(&state, &signed, &id, "profiles", "Profiles").await?;
    let Ok(max_users) = form.max_users.trim().parse::<u32>() else {
        let error = Some("Max users must be a whole number (0 for unlimited).".to_owned());
        let page = profiles_page(&state, &tenant, frame, None, error).await?;
        return Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page));
    };
    let name = form.name.trim();
    let result = if form.id.is_empty() {
        let audit = signed.change(Some(&tenant.id), "profile.create", name);
        state.service.audited(audit, state.service.create_profile(&tenant, name, max_users)).await
    } else {
        match state.service.profile(&tenant, &form.id).await {
            Ok(before) => {
                let audit = Change {
                    before: Some(redacted(&before)),
                    ..signed.change(Some(&tenant.id), "profile.update", &form.id)
                };
                let op = state.service.update_profile(&tenant, &form.id, Some(name), Some(max_users));
                state.service.audited(audit, op).await
            }
            Err(e) => Err(e),
        }
    };
    match result {
        Ok(_) => Ok(back(&tenant, "profiles", "profile-saved")),
        Err(DomainError::Invalid(m) | DomainError::Conflict(m)) => {
            let page = profiles_page(&state, &tenant, frame, None, Some(m)).await?;
            Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /console/t/{tenant}/profiles/{profile}/delete`: only an unused profile can go.
pub async fn delete_profile(
    State(state): State<AppState>,
    signed: Signed,
    Path((id, profile_id)): Path<(String, String)>,
) -> PageResult {
    let (tenant, frame) = open(&state, &signed, &id, "profiles", "Profiles").await?;
    let before = redacted(&state.service.profile(&tenant, &profile_id).await?);
    let audit = Change { before: Some(before), ..signed.change(Some(&tenant.id), "profile.delete", &profile_id) };
    match state.service.audited(audit, state.service.delete_profile(&tenant, &profile_id)).await {
        Ok(()) => Ok(back(&tenant, "profiles", "profile-deleted")),
        Err(DomainError::Conflict(m)) => {
            let page = profiles_page(&state, &tenant, frame, None, Some(m)).await?;
            Ok(render_with(StatusCode::CONFLICT, &page))
        }
        Err(e) => Err(e.into()),
    }
}

// ---- storage --------------------------------------------------------------------------------

/// A region as a tenant sees it.
pub struct RegionRow {
    pub id: String,
    pub name: String,
    pub health: &'static str,
    pub since: String,
    pub probe: String,
    pub users: u64,
}

#[derive(Template)]
#[template(path = "console/storage.html")]
struct StoragePage {
    frame: Frame,
    notice: Option<&'static str>,
    error: Option<String>,
    rows: Vec<RegionRow>,
    /// For operators: every region, and whether this tenant may use it.
    choices: Vec<(Region, bool)>,
    restricted: bool,
}

/// `GET /console/t/{tenant}/storage`: the regions this tenant may use, their health, its users.
pub async fn storage(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    ConsoleQuery(done): ConsoleQuery<Done>,
) -> PageResult {
    let (tenant, frame) = open(&state, &signed, &id, "storage", "Storage").await?;
    let allowed = state.service.tenant_regions(&tenant).await?;
    let all = state.service.regions().await?;
    let restricted = allowed.len() < all.len();
    let choices = if signed.principal.is_operator() {
        all.into_iter().map(|r| (allowed.iter().any(|a| a.id == r.id), r)).map(|(on, r)| (r, on)).collect()
    } else {
        Vec::new()
    };
    let mut rows = Vec::new();
    for r in allowed {
        let search = UserSearch { region_id: Some(r.id.clone()), limit: 1, ..UserSearch::default() };
        rows.push(RegionRow {
            users: state.service.search_users(&tenant, search).await?.0,
            id: r.id.clone(),
            name: r.name.clone(),
            health: r.health.as_str(),
            since: when(r.health_since),
            // Probes name the cloud's internal endpoints: operators only.
            probe: match (&r.last_probe_at, &r.last_probe_result, signed.principal.is_operator()) {
                (Some(at), Some(result), true) => format!("{result} at {}", when(*at)),
                _ => String::new(),
            },
        });
    }
    Ok(render(&StoragePage { frame, notice: notice(done.done.as_deref()), error: None, rows, choices, restricted }))
}

/// `POST /console/t/{tenant}/storage` (operators): the regions this tenant may use; none ticked
/// lifts the restriction.
pub async fn restrict_regions(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    axum::extract::RawForm(raw): axum::extract::RawForm,
) -> PageResult {
    let (tenant, frame) = open(&state, &signed, &id, "storage", "Storage").await?;
    signed.principal.require_operator().map_err(|e| ConsoleError::from(e).within(frame.clone()))?;
    let ids: Vec<String> =
        form_urlencoded::parse(&raw).filter(|(k, _)| k == "region").map(|(_, v)| v.into_owned()).collect();
    let before = Some(serde_json::json!({ "region_ids": state.service.restricted_region_ids(&tenant).await? }));
    let audit = Change { before, ..signed.change(Some(&tenant.id), "tenant.restrict_regions", &tenant.id) };
    state
        .service
        .audited(audit, state.service.restrict_tenant_regions(&tenant, &ids))
        .await
        .map_err(|e| ConsoleError::from(e).within(frame))?;
    Ok(back(&tenant, "storage", "regions-saved"))
}

// ---- the provisioning log -------------------------------------------------------------------

/// The log page's filters.
#[derive(Deserialize, Default)]
pub struct LogQuery {
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    cause: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    before: Option<i64>,
}

#[derive(Template)]
#[template(path = "console/log.html")]
struct LogPage {
    frame: Frame,
    query: LogQuery,
    outcomes: Vec<&'static str>,
    causes: Vec<&'static str>,
    rows: Vec<EventRow>,
    older: Option<String>,
}

/// A `datetime-local` value (`2026-12-07T15:04`, UTC) or an RFC 3339 time.
fn form_time(text: &str, what: &str) -> Result<Option<time::OffsetDateTime>, ConsoleError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let full = if text.len() == 16 { format!("{text}:00Z") } else { text.to_owned() };
    scimd_domain::clock::parse_time(&full).map(Some).ok_or_else(|| {
        ConsoleError::status(StatusCode::BAD_REQUEST, format!("{what} must be a date and time, e.g. 2026-12-07T15:04"))
    })
}

/// `GET /console/t/{tenant}/log?outcome=&cause=&user=&since=&until=&before=`.
pub async fn log(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    ConsoleQuery(q): ConsoleQuery<LogQuery>,
) -> PageResult {
    let (tenant, frame) = open(&state, &signed, &id, "log", "Provisioning log").await?;
    let bad =
        |what: &str, value: &str| ConsoleError::status(StatusCode::BAD_REQUEST, format!("\"{value}\" is not {what}"));
    let query = EventQuery {
        tenant_id: Some(tenant.id.clone()),
        outcome: match q.outcome.as_str() {
            "" => None,
            o => Some(Outcome::parse(o).ok_or_else(|| bad("an outcome", o))?),
        },
        cause: match q.cause.as_str() {
            "" => None,
            c => Some(Cause::parse(c).ok_or_else(|| bad("a cause", c))?),
        },
        subject: Some(q.user.trim().to_owned()).filter(|s| !s.is_empty()),
        since: form_time(&q.since, "From")?,
        until: form_time(&q.until, "Until")?,
        before_id: q.before,
        limit: 100,
    };
    let events = state.service.events(&query).await?;
    let older = (events.len() == 100).then(|| {
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let last = events.last().map_or(0, |e| e.id);
        format!(
            "?outcome={}&cause={}&user={}&since={}&until={}&before={last}",
            enc(&q.outcome),
            enc(&q.cause),
            enc(&q.user),
            enc(&q.since),
            enc(&q.until)
        )
    });
    let page = LogPage {
        frame,
        outcomes: OUTCOMES.iter().map(|o| o.as_str()).collect(),
        causes: Cause::ALL.iter().map(|c| c.as_str()).collect(),
        rows: events.iter().map(event_row).collect(),
        query: q,
        older,
    };
    Ok(render(&page))
}

#[derive(Template)]
#[template(path = "console/log_entry.html")]
struct LogEntryPage {
    frame: Frame,
    row: EventRow,
    operation: String,
    request_id: String,
    duration_ms: u32,
    mentions: String,
}

/// `GET /console/t/{tenant}/log/{event}`: one entry, whole.
pub async fn log_entry(
    State(state): State<AppState>,
    signed: Signed,
    Path((id, event_id)): Path<(String, String)>,
) -> PageResult {
    let (tenant, frame) = open(&state, &signed, &id, "log", "Log entry").await?;
    let event_id: i64 = event_id
        .parse()
        .map_err(|_| ConsoleError::status(StatusCode::NOT_FOUND, "The provisioning log has no such entry."))?;
    let event =
        state.service.event(&tenant, event_id).await.map_err(|e| ConsoleError::from(e).within(frame.clone()))?;
    let page = LogEntryPage {
        frame: Frame { title: format!("Log entry {event_id}"), ..frame },
        operation: event.operation.clone(),
        request_id: event.request_id.clone(),
        duration_ms: event.duration_ms,
        mentions: event.mentions.join(", "),
        row: event_row(&event),
    };
    Ok(render(&page))
}

// ---- health ---------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/health.html")]
struct HealthPage {
    frame: Frame,
    status: &'static str,
    window_days: u32,
    events_examined: usize,
    generated: String,
    findings: Vec<FindingView>,
}

/// `GET /console/t/{tenant}/health`: the doctor's findings with their fixes.
pub async fn health(
    State(state): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let (tenant, frame) = open(&state, &signed, &id, "health", "Health").await?;
    let options = scimd_domain::doctor::DoctorOptions {
        base_url: advertised_base(&state, &headers),
        ..scimd_domain::doctor::DoctorOptions::default()
    };
    let report = state.service.doctor_with(&tenant, options).await?;
    let page = HealthPage {
        frame,
        status: report.status(),
        window_days: report.window_days,
        events_examined: report.events_examined,
        generated: when(report.generated_at),
        findings: report_findings(&report),
    };
    Ok(render(&page))
}

// ---- webhooks -------------------------------------------------------------------------------

/// A webhook as listed.
pub struct WebhookRow {
    pub id: String,
    pub url: String,
    pub enabled: bool,
    pub created: String,
}

#[derive(Template)]
#[template(path = "console/webhooks.html")]
struct WebhooksPage {
    frame: Frame,
    notice: Option<&'static str>,
    error: Option<String>,
    rows: Vec<WebhookRow>,
    new_secret: Option<String>,
}

async fn webhooks_page(
    state: &AppState,
    tenant: &Tenant,
    frame: Frame,
    notice: Option<&'static str>,
    error: Option<String>,
    new_secret: Option<String>,
) -> Result<WebhooksPage, ConsoleError> {
    let rows = state
        .service
        .webhooks(tenant)
        .await?
        .iter()
        .map(|w| WebhookRow { id: w.id.clone(), url: w.url.clone(), enabled: w.enabled, created: when(w.created_at) })
        .collect();
    Ok(WebhooksPage { frame, notice, error, rows, new_secret })
}

/// `GET /console/t/{tenant}/webhooks`.
pub async fn webhooks(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    ConsoleQuery(done): ConsoleQuery<Done>,
) -> PageResult {
    let (tenant, frame) = open(&state, &signed, &id, "webhooks", "Webhooks").await?;
    Ok(render(&webhooks_page(&state, &tenant, frame, notice(done.done.as_deref()), None, None).await?))
}

/// The add-a-webhook form.
#[derive(Deserialize)]
pub struct WebhookForm {
    url: String,
}

/// `POST /console/t/{tenant}/webhooks`: its generated secret is shown on this answer only.
pub async fn create_webhook(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    ConsoleForm(form): ConsoleForm<WebhookForm>,
) -> PageResult {
    let (tenant, frame) = open(&state, &signed, &id, "webhooks", "Webhooks").await?;
    let url = form.url.trim();
    if let Err(DomainError::Invalid(m)) = scimd_domain::webhooks::check_target(&signed.principal, url) {
        let page = webhooks_page(&state, &tenant, frame, None, Some(m), None).await?;
        return Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page));
    }
    let audit = signed.change(Some(&tenant.id), "webhook.create", url);
    match state.service.audited(audit, state.service.create_webhook(&tenant, url, None, true)).await {
        Ok(hook) => Ok(render(&webhooks_page(&state, &tenant, frame, None, None, Some(hook.secret)).await?)),
        Err(DomainError::Invalid(m) | DomainError::Conflict(m)) => {
            let page = webhooks_page(&state, &tenant, frame, None, Some(m), None).await?;
            Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(e) => Err(e.into()),
    }
}

/// A delivery as the webhook's page lists it.
pub struct DeliveryRow {
    pub event_type: String,
    pub attempts: u32,
    pub delivered: String,
    pub last_attempt: String,
    pub last_status: String,
    pub last_error: String,
}

#[derive(Template)]
#[template(path = "console/webhook.html")]
struct WebhookPage {
    frame: Frame,
    hook: WebhookRow,
    test: Option<(bool, String)>,
    deliveries: Vec<DeliveryRow>,
}

async fn webhook_page(
    state: &AppState,
    signed: &Signed,
    id: &str,
    webhook_id: &str,
    test: Option<(bool, String)>,
) -> PageResult {
    let (tenant, frame) = open(state, signed, id, "webhooks", "Webhook").await?;
    let hook =
        state.service.webhook(&tenant, webhook_id).await.map_err(|e| ConsoleError::from(e).within(frame.clone()))?;
    let deliveries = state
        .service
        .webhook_deliveries(&tenant, &hook.id, 100)
        .await?
        .iter()
        .map(|d| DeliveryRow {
            event_type: d.event_type.clone(),
            attempts: d.attempts,
            delivered: maybe_when(d.delivered_at),
            last_attempt: maybe_when(d.last_attempt_at),
            last_status: d.last_status.map(|s| s.to_string()).unwrap_or_default(),
            last_error: d.last_error.clone().unwrap_or_default(),
        })
        .collect();
    let page = WebhookPage {
        frame: Frame { title: format!("Webhook {}", hook.url), ..frame },
        hook: WebhookRow {
            id: hook.id.clone(),
            url: hook.url.clone(),
            enabled: hook.enabled,
            created: when(hook.created_at),
        },
        test,
        deliveries,
    };
    Ok(render(&page))
}

/// `GET /console/t/{tenant}/webhooks/{webhook}`: its delivery log.
pub async fn webhook(
    State(state): State<AppState>,
    signed: Signed,
    Path((id, webhook_id)): Path<(String, String)>,
) -> PageResult {
    webhook_page(&state, &signed, &id, &webhook_id, None).await
}

/// `POST /console/t/{tenant}/webhooks/{webhook}/test`: sends a `test` event now.
pub async fn test_webhook(
    State(state): State<AppState>,
    signed: Signed,
    Path((id, webhook_id)): Path<(String, String)>,
) -> PageResult {
    let (tenant, _) = open(&state, &signed, &id, "webhooks", "Webhook").await?;
    let hook = state.service.webhook(&tenant, &webhook_id).await?;
    scimd_domain::webhooks::check_target(&signed.principal, &hook.url)?;
    let (_, attempt) = crate::jobs::test_send(&state.service, &hook).await?;
    let result = match (attempt.delivered(), attempt.status, &attempt.error) {
        (true, Some(status), _) => (true, format!("Delivered: the receiver answered {status}.")),
        (_, Some(status), _) => (false, format!("Not delivered: the receiver answered {status}.")),
        (_, None, Some(error)) => (false, format!("Not delivered: {error}.")),
        _ => (false, "Not delivered.".to_owned()),
    };
    webhook_page(&state, &signed, &id, &webhook_id, Some(result)).await
}

/// `POST /console/t/{tenant}/webhooks/{webhook}/delete`.
pub async fn delete_webhook(
    State(state): State<AppState>,
    signed: Signed,
    Path((id, webhook_id)): Path<(String, String)>,
) -> PageResult {
    let (tenant, _) = open(&state, &signed, &id, "webhooks", "Webhooks").await?;
    let hook = state.service.webhook(&tenant, &webhook_id).await?;
    let audit = Change { before: Some(redacted(&hook)), ..signed.change(Some(&tenant.id), "webhook.delete", &hook.id) };
    state.service.audited(audit, state.service.delete_webhook(&tenant, &hook.id)).await?;
    Ok(back(&tenant, "webhooks", "webhook-deleted"))
}
