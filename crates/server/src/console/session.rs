//! Signing in and staying signed in: the session cookie (HttpOnly, SameSite=Lax, Secure when the
//! public URL is https), the CSRF check every change must pass, sign-in rate limiting, sign-out
//! and the one-time set-up of the first operator.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use askama::Template;
use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, FromRequestParts, OriginalUri, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use scimd_domain::access::Principal;
use scimd_domain::access::accounts::{NewSession, SignedIn, normalise_account_email};
use scimd_domain::access::audit::Change;
use scimd_domain::token::hashes_match;
use serde::Deserialize;
use time::{Duration, OffsetDateTime};

use super::{ConsoleError, ConsoleForm, ConsoleQuery, PageResult, render_with};
use crate::AppState;

const SESSION_COOKIE: &str = "scimd_session";
/// The sign-in and set-up forms' CSRF value, sent both as this cookie and as a form field.
const FORM_COOKIE: &str = "scimd_form";
/// Largest form body the console reads.
const MAX_FORM: usize = 256 * 1024;
/// Failed sign-ins allowed per email, and per client address, in one window.
const MAX_FAILURES: u32 = 5;
/// The window of failed sign-ins.
const FAILURE_WINDOW: Duration = Duration::minutes(15);

/// Who is signed in, for a console handler (set by [`guard`]).
#[derive(Clone)]
pub struct Signed {
    /// The account, as a principal.
    pub principal: Principal,
    /// The session's CSRF token, for the forms the page renders.
    pub csrf: String,
}

impl Signed {
    /// An audit record of a change this person makes (`before` left to the caller).
    pub fn change<'a>(&'a self, tenant_id: Option<&'a str>, action: &'static str, target: &'a str) -> Change<'a> {
        Change { principal: &self.principal, tenant_id, action, target, before: None }
    }
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<SignedIn>()
            .map(|s| Signed { principal: s.principal.clone(), csrf: s.session.csrf.clone() })
            .ok_or_else(|| ConsoleError::status(StatusCode::UNAUTHORIZED, "Sign in to open this page."))
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn secure(state: &AppState) -> &'static str {
    if state.public_url.as_deref().is_some_and(|u| u.starts_with("https://")) { "; Secure" } else { "" }
}

fn set_cookie(state: &AppState, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let text = format!("{name}={value}; Path=/console; HttpOnly; SameSite=Lax; Max-Age={max_age}{}", secure(state));
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static(""))
}

/// Where the sign-in page sends someone back to: only a console path of this server.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with("/console")
                && !n.contains("//")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n
        }
        _ => "/console",
    }
}

fn forbidden_form() -> Response {
    ConsoleError::status(
        StatusCode::FORBIDDEN,
        "This form was sent without its security token (CSRF), so nothing was changed. Reload the page and try again.",
    )
    .into_response()
}

/// Runs before every console handler: public pages pass; every other page needs a live session
/// (else it sends the browser to sign in); every change (any method but GET and HEAD) must carry
/// the session's CSRF token, in the `X-CSRF-Token` header (htmx) or the `csrf` form field.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // Inside `nest`, the URI has lost its `/console` prefix; decide on the whole path.
    let original = req.extensions().get::<OriginalUri>().map(|u| u.0.clone()).unwrap_or_else(|| req.uri().clone());
    let path = original.path().to_owned();
    let reading = matches!(*req.method(), Method::GET | Method::HEAD);
    let public = ["/console/sign-in", "/console/setup"].contains(&path.as_str());
    if path.starts_with("/console/assets/") || (public && reading) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let (parts, body) = if reading {
        (parts, body)
    } else {
        match buffered(parts, body).await {
            Ok(read) => read,
            Err(too_large) => return too_large,
        }
    };
    let form_token = parts.extensions.get::<FormToken>().map(|t| t.0.clone());
    if public {
        // Before a session exists: the form's token must equal its cookie (double submit).
        let cookie = cookie(&parts.headers, FORM_COOKIE).unwrap_or("");
        return match form_token {
            Some(t) if !cookie.is_empty() && hashes_match(&t, cookie) => {
                next.run(Request::from_parts(parts, body)).await
            }
            _ => forbidden_form(),
        };
    }
    let signed = match cookie(&parts.headers, SESSION_COOKIE) {
        Some(secret) => match state.service.session(secret).await {
            Ok(s) => s,
            Err(e) => return ConsoleError::from(e).into_response(),
        },
        None => None,
    };
    let Some(signed) = signed else {
        let target = original.path_and_query().map(|p| p.as_str()).unwrap_or("/console");
        let target = if reading { target } else { "/console" };
        let location =
            format!("/console/sign-in?next={}", form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>());
        return if parts.headers.contains_key("hx-request") {
            ([("hx-redirect", location)], StatusCode::UNAUTHORIZED).into_response()
        } else {
            Redirect::to(&location).into_response()
        };
    };
    if !reading {
        let header = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let sent = header.or(form_token).unwrap_or_default();
        if !hashes_match(&sent, &signed.session.csrf) {
            return forbidden_form();
        }
    }
    let mut req = Request::from_parts(parts, body);
    req.extensions_mut().insert(signed);
    next.run(req).await
}

/// The `csrf` field of a form body, found while the body is buffered.
#[derive(Clone)]
struct FormToken(String);

async fn buffered(mut parts: Parts, body: Body) -> Result<(Parts, Body), Response> {
    let Ok(bytes) = to_bytes(body, MAX_FORM).await else {
        return Err(ConsoleError::status(StatusCode::PAYLOAD_TOO_LARGE, "This form is larger than scimd accepts.")
            .into_response());
    };
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form && let Some((_, v)) = form_urlencoded::parse(&bytes).find(|(k, _)| k == "csrf") {
        parts.extensions.insert(FormToken(v.into_owned()));
    }
    Ok((parts, Body::from(bytes)))
}

/// Failed sign-ins per email and per client address, in fixed windows.
#[derive(Default)]
pub struct SignInLimiter {
    failures: Mutex<HashMap<String, (OffsetDateTime, u32)>>,
}

/// Most keys the limiter keeps; past it, the oldest windows are forgotten first.
const MAX_KEYS: usize = 100_000;

impl SignInLimiter {
    /// Counts an attempt against `keys` before its password is checked (so that a burst of
    /// parallel attempts cannot all pass the check); `Err` with the seconds to wait when one of
    /// them is already over the limit. A successful sign-in gives its email's attempt back.
    fn attempt(&self, keys: &[String], now: OffsetDateTime) -> Result<(), i64> {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let blocked = keys
            .iter()
            .filter_map(|k| map.get(k))
            .filter(|(start, n)| *n >= MAX_FAILURES && now - *start < FAILURE_WINDOW)
            .map(|(start, _)| (*start + FAILURE_WINDOW - now).whole_seconds().max(1))
            .max();
        if let Some(wait) = blocked {
            return Err(wait);
        }
        if map.len() >= MAX_KEYS {
            map.retain(|_, (start, _)| now - *start < FAILURE_WINDOW);
            if map.len() >= MAX_KEYS {
                let mut starts: Vec<OffsetDateTime> = map.values().map(|(start, _)| *start).collect();
                starts.sort_unstable();
                let cutoff = starts[starts.len() / 2];
                map.retain(|_, (start, _)| *start > cutoff);
            }
        }
        for k in keys {
            let entry = map.entry(k.clone()).or_insert((now, 0));
            if now - entry.0 >= FAILURE_WINDOW {
                *entry = (now, 0);
            }
            entry.1 += 1;
        }
        Ok(())
    }

    /// Gives a successful attempt back: the account's failures are forgotten, and the address
    /// keeps only its failures (an office behind one address signs in many times a day).
    fn succeed(&self, keys: &[String]) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for k in keys {
            if k.starts_with("email:") {
                map.remove(k);
            } else if let Some(entry) = map.get_mut(k) {
                entry.1 = entry.1.saturating_sub(1);
            }
        }
    }
}

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage<'a> {
    form_token: &'a str,
    next: &'a str,
    email: &'a str,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "console/setup.html")]
struct SetupPage<'a> {
    form_token: &'a str,
    code: &'a str,
    email: &'a str,
    error: Option<String>,
}

/// A fresh form token, as the page's field and its cookie.
fn form_token(state: &AppState) -> (String, HeaderValue) {
    let mut bytes = [0u8; 24];
    state.service.random.fill(&mut bytes);
    let token = hex::encode(bytes);
    let cookie = set_cookie(state, FORM_COOKIE, &token, 3600);
    (token, cookie)
}

fn with_form_cookie(mut resp: Response, cookie: HeaderValue) -> Response {
    resp.headers_mut().append(header::SET_COOKIE, cookie);
    resp
}

/// `?next=` of the sign-in page.
#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// `GET /console/sign-in`.
pub async fn sign_in_page(State(state): State<AppState>, ConsoleQuery(q): ConsoleQuery<NextQuery>) -> Response {
    let (token, cookie) = form_token(&state);
    let page = SignInPage { form_token: &token, next: safe_next(q.next.as_deref()), email: "", error: None };
    with_form_cookie(render_with(StatusCode::OK, &page), cookie)
}

/// The sign-in form.
#[derive(Deserialize)]
pub struct SignInForm {
    email: String,
    password: String,
    next: Option<String>,
}

/// The client's address, when the server was started with connection info (it always is by
/// [`crate::serve`]).
pub struct ClientAddr(Option<SocketAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)))
    }
}

/// `POST /console/sign-in`: at most 5 failures per email and per client address every 15
/// minutes; the same answer for an unknown email and a wrong password.
pub async fn sign_in(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ConsoleForm(form): ConsoleForm<SignInForm>,
) -> Response {
    let now = state.service.clock.now();
    // Only well-formed emails are keys (bounded in size); every attempt also counts per address.
    let email_key = normalise_account_email(&form.email).ok().map(|e| format!("email:{e}"));
    let keys: Vec<String> = email_key.iter().cloned().chain(client.map(|a| format!("ip:{}", a.ip()))).collect();
    let next = safe_next(form.next.as_deref()).to_owned();
    let (token, form_cookie) = form_token(&state);
    let again = |status: StatusCode, error: String| {
        let page = SignInPage { form_token: &token, next: &next, email: form.email.trim(), error: Some(error) };
        with_form_cookie(render_with(status, &page), form_cookie.clone())
    };
    if let Err(wait) = state.sign_in_limiter.attempt(&keys, now) {
        let minutes = (wait + 59) / 60;
        let mut resp = again(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many failed sign-ins. Try again in {minutes} minute(s)."),
        );
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return resp;
    }
    match state.service.sign_in(&form.email, &form.password).await {
        Ok(Some((session, _))) => {
            state.sign_in_limiter.succeed(&keys);
            signed_in(&state, &session, &next)
        }
        Ok(None) => again(StatusCode::UNAUTHORIZED, "The email or the password is wrong.".into()),
        Err(e) => ConsoleError::from(e).into_response(),
    }
}

fn signed_in(state: &AppState, session: &NewSession, next: &str) -> Response {
    let max_age = (session.session.expires_at - session.session.created_at).whole_seconds();
    let mut resp = Redirect::to(next).into_response();
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(state, SESSION_COOKIE, &session.secret, max_age));
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(state, FORM_COOKIE, "", 0));
    resp
}

/// `POST /console/sign-out`.
pub async fn sign_out(State(state): State<AppState>, req: Request) -> PageResult {
    if let Some(signed) = req.extensions().get::<SignedIn>() {
        state.service.sign_out(&signed.session).await?;
    }
    let mut resp = Redirect::to("/console/sign-in").into_response();
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(&state, SESSION_COOKIE, "", 0));
    Ok(resp)
}

/// `?code=` of the set-up page.
#[derive(Deserialize)]
pub struct SetupQuery {
    code: Option<String>,
}

/// `GET /console/setup?code=`: the first operator's account, while none exists.
pub async fn setup_page(State(state): State<AppState>, ConsoleQuery(q): ConsoleQuery<SetupQuery>) -> PageResult {
    let code = q.code.unwrap_or_default();
    if !state.service.setup_code_valid(&code).await? {
        return Err(ConsoleError::status(
            StatusCode::FORBIDDEN,
            "This set-up link has been used or replaced. Sign in, or restart scimd for a new link while no operator exists.",
        ));
    }
    let (token, cookie) = form_token(&state);
    let page = SetupPage { form_token: &token, code: &code, email: "", error: None };
    Ok(with_form_cookie(render_with(StatusCode::OK, &page), cookie))
}

/// The set-up form.
#[derive(Deserialize)]
pub struct SetupForm {
    code: String,
    email: String,
    password: String,
    confirm: String,
}

/// `POST /console/setup`: creates the first operator and signs them in.
pub async fn setup(State(state): State<AppState>, ConsoleForm(form): ConsoleForm<SetupForm>) -> PageResult {
    let (token, cookie) = form_token(&state);
    let again = |error: String| {
        let page = SetupPage { form_token: &token, code: &form.code, email: form.email.trim(), error: Some(error) };
        with_form_cookie(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page), cookie.clone())
    };
    if form.password != form.confirm {
        return Ok(again("The two passwords differ.".into()));
    }
    match state.service.set_up_first_operator(&form.code, &form.email, &form.password).await {
        Ok(account) => {
            let principal = Principal::account(&account);
            let audit = Change {
                principal: &principal,
                tenant_id: None,
                action: "account.create",
                target: &account.email,
                before: None,
            };
            state.service.audited(audit, async { Ok(&account) }).await?;
            match state.service.sign_in(&form.email, &form.password).await? {
                Some((session, _)) => Ok(signed_in(&state, &session, "/console")),
                None => Ok(Redirect::to("/console/sign-in").into_response()),
            }
        }
        Err(scimd_domain::DomainError::Invalid(m)) => Ok(again(m)),
        Err(e) => Err(e.into()),
    }
}
