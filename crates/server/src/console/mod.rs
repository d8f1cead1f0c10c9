//! The admin console at `/console`: server-rendered pages (askama templates compiled into the
//! binary) with a pinned, vendored htmx. Tenant admins see their tenant; operators see every
//! tenant, the regions, the email claims, the accounts and the audit log.
//!
//! Every page is one handler that renders one template; htmx requests get the same page and swap
//! its body, so there is no second code path for fragments. Changes go through the same domain
//! calls, permission checks and audit log as the admin API.

mod account;
mod operator;
mod session;
mod tenant;
mod view;

use askama::Template;
use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use scimd_domain::DomainError;
use serde::de::DeserializeOwned;

use crate::AppState;
pub use session::SignInLimiter;
use session::Signed;
use view::Frame;

/// The `/console` router.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/sign-in", get(session::sign_in_page).post(session::sign_in))
        .route("/sign-out", post(session::sign_out))
        .route("/setup", get(session::setup_page).post(session::setup))
        .route("/account", get(account::page))
        .route("/account/api-keys", post(account::create_key))
        .route("/account/api-keys/{key_id}/revoke", post(account::revoke_key))
        .route("/t/{tenant}", get(tenant::dashboard))
        .route("/t/{tenant}/users", get(tenant::users).post(tenant::create_user))
        .route("/t/{tenant}/users/{user}", get(tenant::user).post(tenant::user_action))
        .route("/t/{tenant}/deployment", get(tenant::deployment))
        .route("/t/{tenant}/tokens", post(tenant::create_token))
        .route("/t/{tenant}/settings", post(tenant::save_settings))
        .route("/t/{tenant}/tokens/{token}/revoke", post(tenant::revoke_token))
        .route("/t/{tenant}/mappings", get(tenant::mappings).post(tenant::save_mapping))
        .route("/t/{tenant}/mappings/check", post(tenant::check_condition))
        .route("/t/{tenant}/mappings/dry-run", post(tenant::dry_run))
        .route("/t/{tenant}/mappings/{mapping}/move", post(tenant::move_mapping))
        .route("/t/{tenant}/mappings/{mapping}/delete", post(tenant::delete_mapping))
        .route("/t/{tenant}/profiles", get(tenant::profiles).post(tenant::save_profile))
        .route("/t/{tenant}/profiles/{profile}/delete", post(tenant::delete_profile))
        .route("/t/{tenant}/storage", get(tenant::storage).post(tenant::restrict_regions))
        .route("/t/{tenant}/log", get(tenant::log))
        .route("/t/{tenant}/log/{event}", get(tenant::log_entry))
        .route("/t/{tenant}/health", get(tenant::health))
        .route("/t/{tenant}/webhooks", get(tenant::webhooks).post(tenant::create_webhook))
        .route("/t/{tenant}/webhooks/{webhook}", get(tenant::webhook))
        .route("/t/{tenant}/webhooks/{webhook}/test", post(tenant::test_webhook))
        .route("/t/{tenant}/webhooks/{webhook}/delete", post(tenant::delete_webhook))
        .route("/operator/tenants", get(operator::tenants).post(operator::create_tenant))
        .route("/operator/regions", get(operator::regions).post(operator::create_region))
        .route("/operator/regions/{region}", post(operator::set_region_health))
        .route("/operator/regions/{region}/probe", post(operator::set_region_probe))
        .route("/operator/regions/{region}/default", post(operator::set_default_region))
        .route("/operator/claims", get(operator::claims))
        .route("/operator/claims/release", post(operator::release_claim))
        .route("/operator/accounts", get(operator::accounts).post(operator::create_account))
        .route("/operator/accounts/{account}/delete", post(operator::delete_account))
        .route("/operator/audit", get(operator::audit))
        .route("/assets/{file}", get(asset))
        .fallback(|| async { ConsoleError::status(StatusCode::NOT_FOUND, "There is no console page at this address.") })
        .layer(axum::middleware::from_fn_with_state(state, session::guard))
        .layer(axum::middleware::from_fn(security_headers))
}

/// `/console`: a tenant admin's dashboard, or an operator's tenant list.
async fn home(signed: Signed) -> Response {
    match signed.principal.role.tenant_id() {
        Some(tenant) => Redirect::to(&format!("/console/t/{tenant}")).into_response(),
        None => Redirect::to("/console/operator/tenants").into_response(),
    }
}

/// The vendored files, cached for a year: their names change with their content's version.
async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind): (&'static [u8], &str) = match file.as_str() {
        "htmx-2.0.11.min.js" => (include_bytes!("../../assets/htmx-2.0.11.min.js"), "text/javascript"),
        "console-1.js" => (include_bytes!("../../assets/console.js"), "text/javascript"),
        "console-1.css" => (include_bytes!("../../assets/console.css"), "text/css"),
        _ => return ConsoleError::status(StatusCode::NOT_FOUND, "No such file.").into_response(),
    };
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "public, max-age=31536000, immutable")], body)
        .into_response()
}

/// Headers every console answer carries: no framing, no inline script, no sniffing, no caching
/// of pages that show tenant data.
async fn security_headers(req: Request, next: Next) -> Response {
    let changing = !matches!(*req.method(), axum::http::Method::GET | axum::http::Method::HEAD);
    let mut resp = next.run(req).await;
    let rendered = !resp.status().is_redirection();
    let h = resp.headers_mut();
    // A page rendered as the answer to a form (a secret shown once, a form shown again with its
    // error) must not become a history entry: its URL only answers POST.
    if changing && rendered {
        h.insert("hx-push-url", HeaderValue::from_static("false"));
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    resp
}

/// Renders a page; a template failure (a bug) is logged and answered with the error page.
pub(crate) fn render(page: &impl Template) -> Response {
    render_with(StatusCode::OK, page)
}

/// Renders a page with a status (e.g. 422 for a form shown again with its error).
pub(crate) fn render_with(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, Html(String::from("<h1>scimd could not render this page</h1>")))
                .into_response()
        }
    }
}

/// A console request that failed: rendered as a page, never a stack trace.
#[derive(Debug)]
pub struct ConsoleError {
    status: StatusCode,
    message: String,
    frame: Option<Box<Frame>>,
}

impl ConsoleError {
    /// A failure with a status and a message for the reader.
    pub fn status(status: StatusCode, message: impl Into<String>) -> Self {
        ConsoleError { status, message: message.into(), frame: None }
    }

    /// Shown inside the console's navigation.
    pub fn within(mut self, frame: Frame) -> Self {
        self.frame = Some(Box::new(frame));
        self
    }
}

impl From<DomainError> for ConsoleError {
    fn from(e: DomainError) -> Self {
        let (status, message) = match e {
            DomainError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            DomainError::Conflict(m) => (StatusCode::CONFLICT, m),
            DomainError::Invalid(m) => (StatusCode::UNPROCESSABLE_ENTITY, m),
            DomainError::Forbidden(_) => (
                StatusCode::FORBIDDEN,
                "Your account cannot open this page: it belongs to another tenant or to operators.".into(),
            ),
            DomainError::Auth(a) => (StatusCode::UNAUTHORIZED, a.to_string()),
            DomainError::Refused(r) => {
                (StatusCode::from_u16(r.error.status).unwrap_or(StatusCode::CONFLICT), r.error.detail)
            }
            DomainError::Scim(s) => (StatusCode::from_u16(s.status).unwrap_or(StatusCode::BAD_REQUEST), s.detail),
            DomainError::Store(inner) => {
                tracing::error!(error = %inner, "store failure");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "scimd could not complete this because of an internal error; retry later.".into(),
                )
            }
        };
        ConsoleError::status(status, message)
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    frame: Option<&'a Frame>,
    status: u16,
    reason: &'a str,
    message: &'a str,
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            frame: self.frame.as_deref(),
            status: self.status.as_u16(),
            reason: self.status.canonical_reason().unwrap_or("Error"),
            message: &self.message,
        };
        render_with(self.status, &page)
    }
}

/// What a console handler answers.
pub type PageResult = Result<Response, ConsoleError>;

/// A form body; one that cannot be read is answered with a console page, not axum's plain text.
pub struct ConsoleForm<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ConsoleForm<T> {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(value)) => Ok(ConsoleForm(value)),
            Err(e) => Err(ConsoleError::status(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("This form could not be read ({}). Reload the page and try again.", e.body_text()),
            )),
        }
    }
}

/// A page's query string; one that cannot be read is answered with a console page.
pub struct ConsoleQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ConsoleQuery<T> {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ConsoleQuery(value)),
            Err(e) => Err(ConsoleError::status(
                StatusCode::BAD_REQUEST,
                format!("This address has a parameter scimd cannot read ({}).", e.body_text()),
            )),
        }
    }
}
