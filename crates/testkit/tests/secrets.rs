//! Secrets never leak: SCIM tokens, the operator token, API keys, console passwords, webhook
//! secrets and users' passwords are used (rightly and wrongly) against a real server while
//! every log line it writes, at every level, is captured; then the logs, the provisioning log,
//! the audit log, every response body (but the one that issues a secret) and the database
//! files are searched for each secret. Tokens and passwords at rest are hashes.
//!
//! Its own test binary: the log capture is process-wide.

use std::io::Write;
use std::sync::{Arc, Mutex};

use reqwest::Method;
use scimd_domain::access::{Principal, Role};
use scimd_testkit::{Client, Console, OPERATOR_TOKEN, PASSWORD, Response, TestServer, on_postgres};
use serde_json::json;

/// Every log line of the process, whatever its level or target.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const USER_PASSWORD: &str = "Hunter2-user-password-9f3a";
const WEBHOOK_SECRET: &str = "whsec-never-shown-again-7c1e";
const WRONG_PASSWORD: &str = "Wrong-console-password-5d2b";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_logs_events_errors_or_the_database() {
    let logs = Captured::default();
    let writer = logs.clone();
    // Everything at every level, but for the directives the scimd binary always applies.
    let filter = scimd_server::secret_safe_log_filter(tracing_subscriber::EnvFilter::new("trace"));
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(move || writer.clone()).init();

    let s = TestServer::start().await;
    let scim = s.scim();
    let admin = s.admin();
    let mut bodies: Vec<String> = Vec::new();
    let mut keep = |r: Response| {
        bodies.push(format!("{} {}", r.status, r.text));
        r
    };

    // A second SCIM token, issued by the admin API: the one answer allowed to carry a secret.
    let issued =
        admin.post(&format!("/tenants/{}/tokens", s.tenant.id), &json!({ "keep_old_for_seconds": 3600 })).await;
    assert_eq!(issued.status, 201, "{}", issued.text);
    let second_token = issued.body["token"].as_str().unwrap().to_owned();
    assert!(issued.text.contains(&second_token), "the search below would find a secret where it is");
    // An API key of a tenant administrator, and a console account's password.
    let account =
        s.service.create_account("admin@acme.test", PASSWORD, Role::TenantAdmin(s.tenant.id.clone())).await.unwrap();
    let api_key = s.service.create_api_key(&Principal::account(&account), "ci").await.unwrap().secret;

    // Users with passwords, by create, PUT, PATCH and bulk; a filter and a search naming one.
    let mut user = json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "pat",
        "password": USER_PASSWORD, "emails": [{ "value": "pat@example.com", "primary": true }] });
    let created = keep(scim.post("/Users", &user).await);
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    user["displayName"] = json!("Pat");
    keep(scim.put(&format!("/Users/{id}"), &user).await);
    let patch = json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "replace", "path": "password", "value": USER_PASSWORD }, { "op": "replace", "value": { "password": USER_PASSWORD } }] });
    keep(scim.patch(&format!("/Users/{id}"), &patch).await);
    let bad_patch = json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "replace", "path": "password", "value": [USER_PASSWORD] }] });
    keep(scim.patch(&format!("/Users/{id}"), &bad_patch).await);
    let mut wrong_type = user.clone();
    wrong_type["password"] = json!({ "nested": USER_PASSWORD });
    keep(scim.post("/Users", &wrong_type).await);
    let bulk = json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
        { "method": "POST", "path": "/Users", "bulkId": "a", "data": { "userName": "bulky", "password": USER_PASSWORD } },
        { "method": "PATCH", "path": format!("/Users/{id}"), "data": patch },
    ] });
    keep(scim.post("/Bulk", &bulk).await);
    keep(scim.get(&format!("/Users?filter=password%20eq%20%22{USER_PASSWORD}%22")).await);
    keep(scim.get(&format!("/Users/{id}?attributes=password")).await);

    // Tokens used wrongly: near misses, another scheme, in the query string.
    for token in
        [format!("{}x", s.token), s.token[..s.token.len() - 1].to_owned(), format!("{second_token}{second_token}")]
    {
        keep(Client::new(&s.scim_url(), Some(&token)).get("/Users").await);
    }
    let basic = format!("Basic {}", s.token);
    keep(Client::new(&s.scim_url(), None).send(Method::GET, "/Users", None, &[("authorization", &basic)]).await);
    keep(Client::new(&s.scim_url(), None).get(&format!("/Users?access_token={}", s.token)).await);
    keep(
        Client::new(
            &format!("{}/admin/api/v1", s.scim_url().trim_end_matches("/scim/v2")),
            Some(&format!("{api_key}0")),
        )
        .get("/tenants")
        .await,
    );
    keep(
        Client::new(
            &format!("{}/admin/api/v1", s.scim_url().trim_end_matches("/scim/v2")),
            Some(&format!("{OPERATOR_TOKEN}0")),
        )
        .get("/tenants")
        .await,
    );

    // Secrets used rightly, so that every path that handles them runs.
    keep(Client::new(&s.scim_url(), Some(&second_token)).get("/Users").await);
    let tenant_admin =
        Client::new(&format!("{}/admin/api/v1", s.scim_url().trim_end_matches("/scim/v2")), Some(&api_key));
    keep(tenant_admin.get(&format!("/tenants/{}/events", s.tenant.id)).await);
    let webhook = keep(
        admin
            .post(
                &format!("/tenants/{}/webhooks", s.tenant.id),
                &json!({ "url": "http://127.0.0.1:9/hook", "secret": WEBHOOK_SECRET }),
            )
            .await,
    );
    assert_eq!(webhook.status, 201, "{}", webhook.text);
    keep(admin.get(&format!("/tenants/{}/webhooks", s.tenant.id)).await);
    let base = s.scim_url().trim_end_matches("/scim/v2").to_owned();
    assert!(Console::sign_in(&base, "admin@acme.test", WRONG_PASSWORD).await.is_err());
    let console = Console::sign_in(&base, "admin@acme.test", PASSWORD).await.expect("signs in");
    bodies.push(console.get("/console").await.html);

    // What is kept: the provisioning log and the audit log.
    s.flush_events().await;
    let events = serde_json::to_string(&s.events().await.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>()).unwrap();
    let audit = admin.get("/audit?limit=500").await;
    assert_eq!(audit.status, 200, "{}", audit.text);
    let kept_events = admin.get(&format!("/tenants/{}/events?limit=1000", s.tenant.id)).await;
    assert_eq!(kept_events.status, 200, "{}", kept_events.text);
    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(logs.contains("TRACE") || logs.contains("DEBUG"), "the capture saw the detailed log levels");

    let secrets = [
        ("the SCIM token", s.token.as_str()),
        ("a second SCIM token", second_token.as_str()),
        ("the operator token", OPERATOR_TOKEN),
        ("an API key", api_key.as_str()),
        ("a console password", PASSWORD),
        ("a wrong console password", WRONG_PASSWORD),
        ("a user's password", USER_PASSWORD),
        ("a webhook secret", WEBHOOK_SECRET),
    ];
    let places = [
        ("the server's logs", logs.as_str()),
        ("the provisioning log", events.as_str()),
        ("the provisioning log over the admin API", kept_events.text.as_str()),
        ("the audit log", audit.text.as_str()),
        ("the response bodies", &bodies.join("\n")),
    ];
    for (secret_name, secret) in secrets {
        for (place, text) in places {
            assert!(!text.contains(secret), "{secret_name} appears in {place}");
        }
    }
    // The token's own prefix (its public id part) may be logged; nothing past it.
    assert!(!logs.contains(&s.token[s.token.len() - 12..]), "a part of the SCIM token's secret is in the logs");

    // At rest: tokens, API keys and passwords are hashes (a webhook secret must be kept to sign).
    if !on_postgres() {
        let mut stored = Vec::new();
        for entry in std::fs::read_dir(s.data_dir()).unwrap() {
            stored.extend(std::fs::read(entry.unwrap().path()).unwrap_or_default());
        }
        let stored = String::from_utf8_lossy(&stored);
        // The search does find what is stored as it is: the webhook secret, kept to sign with.
        assert!(stored.contains(WEBHOOK_SECRET), "the database files were not all read");
        for (secret_name, secret) in secrets.iter().filter(|(name, _)| *name != "a webhook secret") {
            assert!(!stored.contains(secret), "{secret_name} is stored in the database as it is");
        }
    }
}
