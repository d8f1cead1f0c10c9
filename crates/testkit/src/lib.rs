//! Test kit: start a real scimd server in-process on a free port, over a temporary database, with
//! a manual clock; and a small HTTP client for it. Test code only.
//!
//! The database is SQLite, or PostgreSQL when `SCIMD_TEST_BACKEND=postgres` (with
//! `SCIMD_TEST_POSTGRES_URL`): each server then gets a schema of its own, so the whole suite runs
//! on either backend and parallel tests never share state.

#![warn(missing_docs)]

use std::sync::Arc;

use reqwest::Method;
use scimd_domain::access::{Principal, Role};
use scimd_domain::clock::{ManualClock, SystemRandom};
use scimd_domain::events::{Event, EventQuery};
use scimd_domain::rate_limit::RateLimit;
use scimd_domain::store::Store;
use scimd_domain::tenant::Tenant;
use scimd_domain::token::TokenRequest;
use scimd_domain::{Limits, Service};
use scimd_server::{AppState, EventRecorder, Metrics, Settings};
use scimd_store::{PostgresStore, SqliteStore};
use serde_json::Value;
use tokio::sync::oneshot;

/// The password of every console account the kit makes.
pub const PASSWORD: &str = "correct horse battery staple";

/// The operator token of every test server.
pub const OPERATOR_TOKEN: &str = "scimdop_test-operator-token-0123456789";

/// A running server with one tenant and its token.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The domain service behind the server, for setting up state directly.
    pub service: Service,
    /// The server's clock; advance it to test expiry.
    pub clock: Arc<ManualClock>,
    /// The tenant created at start.
    pub tenant: Tenant,
    /// The tenant's SCIM token.
    pub token: String,
    /// The server's provisioning log writer.
    pub recorder: EventRecorder,
    /// The server's metrics (its own registry), e.g. to count a webhook delivery.
    pub metrics: Metrics,
    /// The PostgreSQL URL of the server's schema, when it runs on PostgreSQL: more nodes can
    /// start on it.
    pub database_url: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

/// The PostgreSQL server the kit uses (`SCIMD_TEST_POSTGRES_URL`) when `SCIMD_TEST_BACKEND` is
/// `postgres`; `None` runs on SQLite.
pub fn postgres_url() -> Option<String> {
    let wanted = std::env::var("SCIMD_TEST_BACKEND").is_ok_and(|b| b.eq_ignore_ascii_case("postgres"));
    if !wanted {
        return None;
    }
    let url = std::env::var("SCIMD_TEST_POSTGRES_URL")
        .expect("SCIMD_TEST_BACKEND=postgres needs SCIMD_TEST_POSTGRES_URL=postgres://user@host:port/db");
    Some(url)
}

/// Whether the kit's servers run on PostgreSQL.
pub fn on_postgres() -> bool {
    postgres_url().is_some()
}

/// A fresh PostgreSQL schema for one server, as the URL that uses it. Schemas left by test
/// processes that have ended are dropped first (once per process).
pub async fn fresh_postgres_schema(url: &str) -> String {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    SWEPT.get_or_init(|| sweep_schemas(url)).await;
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let schema = format!("scimd_test_{}_{n}", std::process::id());
    scimd_store::postgres::create_schema(url, &schema).await.expect("create a PostgreSQL schema")
}

/// Drops the schemas of test processes that are no longer running.
async fn sweep_schemas(url: &str) {
    let Ok((client, connection)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await else { return };
    tokio::spawn(connection);
    let Ok(rows) = client.query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'scimd\\_test\\_%'", &[]).await
    else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let pid = name.split('_').nth(2).unwrap_or_default();
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).await;
        }
    }
}

/// Opens the database of a test server: SQLite in `dir`, or a fresh PostgreSQL schema.
async fn open_store(dir: &std::path::Path) -> (Arc<dyn Store>, Option<String>) {
    match postgres_url() {
        Some(url) => {
            let url = fresh_postgres_schema(&url).await;
            let store = PostgresStore::connect(&url, 6).await.expect("connect to PostgreSQL");
            (Arc::new(store), Some(url))
        }
        None => (Arc::new(SqliteStore::open(dir).expect("open store")), None),
    }
}

impl TestServer {
    /// Starts a server with default limits, but no rate limit: suites run requests as fast as a
    /// debug build can. The rate limit's own tests use [`Self::start_with`].
    pub async fn start() -> Self {
        Self::start_with(Limits { rate: RateLimit::UNLIMITED, ..Limits::default() }).await
    }

    /// Starts a server with the given limits.
    pub async fn start_with(limits: Limits) -> Self {
        Self::start_configured(limits, Settings::default()).await
    }

    /// Starts a server with the given limits and HTTP settings.
    pub async fn start_configured(limits: Limits, settings: Settings) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (store, database_url) = open_store(dir.path()).await;
        let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
        let service = Service::new(store, clock.clone(), Arc::new(SystemRandom), limits);
        service.ensure_operator_token(Some(OPERATOR_TOKEN)).await.expect("operator token");
        let tenant = service.create_tenant("acme").await.expect("tenant");
        let token = service.issue_token(&tenant.id, TokenRequest::default()).await.expect("token").secret;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let (tx, rx) = oneshot::channel::<()>();
        let state = AppState::new(service.clone(), None, settings);
        let recorder = state.recorder.clone();
        let metrics = state.metrics.clone();
        let task = tokio::spawn(async move {
            let _ = scimd_server::serve(listener, state, async {
                let _ = rx.await;
            })
            .await;
        });
        TestServer {
            base,
            service,
            clock,
            tenant,
            token,
            recorder,
            metrics,
            database_url,
            shutdown: Some(tx),
            task: Some(task),
            _dir: dir,
        }
    }

    /// Waits until every event recorded so far is in the database.
    pub async fn flush_events(&self) {
        self.recorder.flush().await;
    }

    /// Every event in the database, oldest first, after writing those still queued.
    pub async fn events(&self) -> Vec<Event> {
        self.flush_events().await;
        let query = EventQuery { limit: u32::MAX, ..Default::default() };
        let mut events = self.service.store.events(&query).await.expect("read events");
        events.reverse();
        events
    }

    /// The SCIM base URL.
    pub fn scim_url(&self) -> String {
        format!("{}/scim/v2", self.base)
    }

    /// A client authenticated with the tenant's token.
    pub fn scim(&self) -> Client {
        Client::new(&self.scim_url(), Some(&self.token))
    }

    /// A client with any (or no) token.
    pub fn scim_with(&self, token: Option<&str>) -> Client {
        Client::new(&self.scim_url(), token)
    }

    /// A client for the admin API with the operator token.
    pub fn admin(&self) -> Client {
        Client::new(&format!("{}/admin/api/v1", self.base), Some(OPERATOR_TOKEN))
    }

    /// Creates another tenant with a token.
    pub async fn new_tenant(&self, name: &str) -> (Tenant, String) {
        let tenant = self.service.create_tenant(name).await.expect("tenant");
        let token = self.service.issue_token(&tenant.id, TokenRequest::default()).await.expect("token").secret;
        (tenant, token)
    }

    /// The directory of the server's database (SQLite only).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Runs a statement directly on the server's database (SQLite or PostgreSQL), for state no
    /// API can make, such as a row left by an older version.
    pub async fn execute_sql(&self, statement: &str) {
        match &self.database_url {
            Some(url) => {
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
                tokio::spawn(connection);
                client.batch_execute(statement).await.expect("run SQL");
            }
            None => {
                let db = rusqlite::Connection::open(self.data_dir().join("scimd.db")).expect("open db");
                db.execute_batch(statement).expect("run SQL");
            }
        }
    }

    /// The single number a `SELECT count(*) …` on the server's database returns.
    pub async fn count_sql(&self, query: &str) -> i64 {
        match &self.database_url {
            Some(url) => {
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
                tokio::spawn(connection);
                client.query_one(query, &[]).await.expect("run SQL").get(0)
            }
            None => {
                let db = rusqlite::Connection::open(self.data_dir().join("scimd.db")).expect("open db");
                db.query_row(query, [], |r| r.get(0)).expect("run SQL")
            }
        }
    }

    /// Makes a console account with the password [`PASSWORD`].
    pub async fn account(&self, email: &str, role: Role) -> String {
        self.service.create_account(email, PASSWORD, role).await.expect("account");
        email.to_owned()
    }

    /// A console session signed in as an operator (made on first use).
    pub async fn operator_console(&self) -> Console {
        let email = "operator@scimd.test";
        if self.service.store.account_by_email(email).await.expect("account lookup").is_none() {
            self.account(email, Role::Operator).await;
        }
        Console::sign_in(&self.base, email, PASSWORD).await.expect("operator signs in")
    }

    /// A console session signed in as an admin of `tenant` (made on first use).
    pub async fn tenant_console(&self, tenant: &Tenant) -> Console {
        let email = format!("admin-{}@scimd.test", tenant.name);
        if self.service.store.account_by_email(&email).await.expect("account lookup").is_none() {
            self.account(&email, Role::TenantAdmin(tenant.id.clone())).await;
        }
        Console::sign_in(&self.base, &email, PASSWORD).await.expect("tenant admin signs in")
    }

    /// An admin API client with an API key of the tenant's admin account (made on first use).
    pub async fn tenant_admin_api(&self, tenant: &Tenant) -> Client {
        let email = format!("admin-{}@scimd.test", tenant.name);
        let account = match self.service.store.account_by_email(&email).await.expect("account lookup") {
            Some(account) => account,
            None => self
                .service
                .create_account(&email, PASSWORD, Role::TenantAdmin(tenant.id.clone()))
                .await
                .expect("account"),
        };
        let key = self.service.create_api_key(&Principal::account(&account), "tests").await.expect("API key");
        Client::new(&format!("{}/admin/api/v1", self.base), Some(&key.secret))
    }

    /// Stops accepting connections and waits for in-flight requests to finish.
    pub async fn stop(mut self) {
        self.shut_down().await;
    }

    /// Stops the server as [`TestServer::stop`] does, but keeps the database for inspection.
    pub async fn shut_down(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A response: status, headers and body (JSON when it parses, else `Value::Null`; `text` always).
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body as JSON (`Null` when it is not JSON).
    pub body: Value,
    /// The body as text.
    pub text: String,
}

impl Response {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A small HTTP client bound to a base URL and an optional bearer token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client for `base`.
    pub fn new(base: &str, token: Option<&str>) -> Self {
        Client { http: reqwest::Client::new(), base: base.to_owned(), token: token.map(str::to_owned) }
    }

    /// Sends a request with a JSON body (as `application/scim+json`) and extra headers.
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>, headers: &[(&str, &str)]) -> Response {
        let mut req = self.request(method, path, headers);
        if let Some(body) = body {
            req = req.header("Content-Type", "application/scim+json").body(body.to_string());
        }
        Self::finish(req).await
    }

    /// Sends raw bytes with the given headers (and no Content-Type unless given).
    pub async fn send_raw(&self, method: Method, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Response {
        Self::finish(self.request(method, path, headers).body(body)).await
    }

    fn request(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req
    }

    async fn finish(req: reqwest::RequestBuilder) -> Response {
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("response body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Response { status, headers, body, text }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Response {
        self.send(Method::GET, path, None, &[]).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.send(Method::POST, path, Some(body), &[]).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> Response {
        self.send(Method::PUT, path, Some(body), &[]).await
    }

    /// `PATCH path` with a JSON body.
    pub async fn patch(&self, path: &str, body: &Value) -> Response {
        self.send(Method::PATCH, path, Some(body), &[]).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Response {
        self.send(Method::DELETE, path, None, &[]).await
    }
}

/// A page the console answered.
#[derive(Debug)]
pub struct Page {
    /// HTTP status.
    pub status: u16,
    /// Where a redirect points.
    pub location: Option<String>,
    /// The HTML.
    pub html: String,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
}

impl Page {
    /// The value of the first `<input name="NAME" value="...">` of the page.
    pub fn input(&self, name: &str) -> Option<String> {
        let at = self.html.find(&format!("name=\"{name}\" value=\""))?;
        let rest = &self.html[at + name.len() + 15..];
        Some(rest[..rest.find('"')?].to_owned())
    }

    /// Every change form of the page: its action and its fields' names and values.
    pub fn post_forms(&self) -> Vec<(String, Vec<(String, String)>)> {
        let mut forms = Vec::new();
        for chunk in self.html.split("<form").skip(1) {
            let Some(head_end) = chunk.find('>') else { continue };
            let head = &chunk[..head_end];
            if !head.contains("method=\"post\"") {
                continue;
            }
            let Some(action) = attribute(head, "action") else { continue };
            let body = &chunk[..chunk.find("</form>").unwrap_or(chunk.len())];
            let fields = body
                .split("<input")
                .skip(1)
                .filter_map(|input| {
                    let tag = &input[..input.find('>')?];
                    Some((attribute(tag, "name")?, attribute(tag, "value").unwrap_or_default()))
                })
                .collect();
            forms.push((action, fields));
        }
        forms
    }
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let at = tag.find(&format!(" {name}=\""))?;
    let rest = &tag[at + name.len() + 3..];
    Some(rest[..rest.find('"')?].replace("&amp;", "&"))
}

/// A browser-like client of the console: keeps the session cookie, sends the CSRF token.
pub struct Console {
    http: reqwest::Client,
    base: String,
    cookie: String,
    /// The session's CSRF token.
    pub csrf: String,
}

impl Console {
    fn http() -> reqwest::Client {
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
    }

    /// Signs in through the sign-in form; `Err` carries the page when it refused.
    pub async fn sign_in(base: &str, email: &str, password: &str) -> Result<Console, Page> {
        let http = Self::http();
        let form_page = fetch(http.get(format!("{base}/console/sign-in"))).await;
        let form_token = form_page.input("csrf").expect("sign-in form token");
        let form_cookie = set_cookie(&form_page, "scimd_form").expect("form cookie");
        let body =
            encode(&[("csrf", form_token.as_str()), ("email", email), ("password", password), ("next", "/console")]);
        let page = fetch(
            http.post(format!("{base}/console/sign-in"))
                .header("Cookie", format!("scimd_form={form_cookie}"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body),
        )
        .await;
        let Some(session) = set_cookie(&page, "scimd_session").filter(|_| page.status == 303) else { return Err(page) };
        let mut console =
            Console { http, base: base.to_owned(), cookie: format!("scimd_session={session}"), csrf: String::new() };
        console.csrf = console.get("/console/account").await.input("csrf").expect("csrf token on the page");
        Ok(console)
    }

    /// `GET` a console path.
    pub async fn get(&self, path: &str) -> Page {
        fetch(self.http.get(format!("{}{path}", self.base)).header("Cookie", &self.cookie)).await
    }

    /// `POST` a form with the session's CSRF token.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// `POST` exactly these fields (no CSRF token unless given).
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        fetch(
            self.http
                .post(format!("{}{path}", self.base))
                .header("Cookie", &self.cookie)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(encode(fields)),
        )
        .await
    }
}

fn encode(fields: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish()
}

fn set_cookie(page: &Page, name: &str) -> Option<String> {
    page.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap_or("").to_owned()))
        .filter(|v| !v.is_empty())
}

async fn fetch(req: reqwest::RequestBuilder) -> Page {
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let location = headers.get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let html = resp.text().await.expect("response body");
    Page { status, location, html, headers }
}
