//! Test kit: start a real scimd server in-process on a free port, over a temporary SQLite
//! database, with a manual clock; and a small HTTP client for it. Test code only.

#![warn(missing_docs)]

use std::sync::Arc;

use reqwest::Method;
use scimd_domain::clock::{ManualClock, SystemRandom};
use scimd_domain::events::{Event, EventQuery};
use scimd_domain::tenant::Tenant;
use scimd_domain::token::TokenRequest;
use scimd_domain::{Limits, Service};
use scimd_server::{AppState, EventRecorder, Metrics, Settings};
use scimd_store::SqliteStore;
use serde_json::Value;
use tokio::sync::oneshot;

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
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server with default limits.
    pub async fn start() -> Self {
        Self::start_with(Limits::default()).await
    }

    /// Starts a server with the given limits.
    pub async fn start_with(limits: Limits) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = SqliteStore::open(dir.path()).expect("open store");
        let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
        let service = Service::new(Arc::new(store), clock.clone(), Arc::new(SystemRandom), limits);
        service.ensure_operator_token(Some(OPERATOR_TOKEN)).await.expect("operator token");
        let tenant = service.create_tenant("acme").await.expect("tenant");
        let token = service.issue_token(&tenant.id, TokenRequest::default()).await.expect("token").secret;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let (tx, rx) = oneshot::channel::<()>();
        let state = AppState::new(service.clone(), None, Settings::default());
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
