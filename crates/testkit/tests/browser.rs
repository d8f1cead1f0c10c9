//! The console in a real browser: headless Chromium driven through chromedriver (WebDriver),
//! against real in-process servers. Each test signs in as a person would, clicks and types, and
//! checks what the page shows and what the SCIM side then does. The tests also take the
//! screenshots under `docs/screenshots/` (written to `target/screenshots/`, and copied into the
//! docs when `SCIMD_UPDATE_SCREENSHOTS=1`).
//!
//! Needs `chromium` and `chromium-driver` (Debian). Without them the tests skip with a message,
//! unless `SCIMD_TEST_BROWSER=required` (as `.ci/run` sets), where a missing browser fails.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use scimd_domain::access::Role;
use scimd_testkit::{PASSWORD, TestServer};
use serde_json::{Value, json};

/// A chromedriver of our own, stopped when the test ends.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

fn find_program(names: &[&str]) -> Option<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    names
        .iter()
        .find_map(|name| path.split(':').map(|dir| format!("{dir}/{name}")).find(|p| std::path::Path::new(p).is_file()))
}

/// A browser session, or `None` (skip) when this machine has no Chromium.
async fn browser() -> Option<(Driver, Client)> {
    let (Some(driver), Some(chromium)) =
        (find_program(&["chromedriver"]), find_program(&["chromium", "chromium-browser", "google-chrome"]))
    else {
        assert!(
            std::env::var("SCIMD_TEST_BROWSER").as_deref() != Ok("required"),
            "SCIMD_TEST_BROWSER=required but chromium / chromedriver are not installed"
        );
        eprintln!(
            "skipping the browser test: install chromium and chromium-driver (apt-get install chromium chromium-driver)"
        );
        return None;
    };
    let port = free_port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver { child, port };
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900",
                "--lang=en-US", "--no-first-run", "--disable-quic",
                // No calls home: this machine's network is closed, and refused connections slow Chromium.
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
            ],
        },
    });
    let Value::Object(capabilities) = capabilities else { unreachable!() };
    let started = Instant::now();
    loop {
        let attempt = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await;
        match attempt {
            Ok(client) => return Some((driver, client)),
            Err(e) if started.elapsed() > Duration::from_secs(30) => panic!("chromedriver did not start: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Waits until the element matching `css` contains `text` (htmx swaps pages asynchronously).
async fn wait_text(c: &Client, css: &str, text: &str) -> String {
    let started = Instant::now();
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && let Ok(t) = e.text().await
            && t.contains(text)
        {
            return t;
        }
        if started.elapsed() > Duration::from_secs(15) {
            let source = c.source().await.unwrap_or_default();
            panic!("no {css} containing {text:?} after 15 s; the page is:\n{source}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn type_into(c: &Client, css: &str, text: &str) {
    let field = c.find(Locator::Css(css)).await.expect(css);
    field.clear().await.expect("clear");
    field.send_keys(text).await.expect("type");
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css)).await.expect(css).click().await.expect("click");
}

async fn sign_in(c: &Client, s: &TestServer, email: &str) {
    c.goto(&format!("{}/console", s.base)).await.expect("open the console");
    wait_text(c, "h1", "Sign in").await;
    type_into(c, "#email", email).await;
    type_into(c, "#password", PASSWORD).await;
    click(c, "button[type=submit]").await;
    wait_text(c, "header.top", email).await;
}

/// Saves a screenshot of the whole window as `name.png`.
async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&target).expect("screenshot directory");
    std::fs::write(target.join(format!("{name}.png")), &png).expect("write screenshot");
    if std::env::var("SCIMD_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
        std::fs::create_dir_all(&docs).expect("docs/screenshots");
        std::fs::write(docs.join(format!("{name}.png")), &png).expect("write docs screenshot");
    }
}

fn user(name: &str, email: &str, department: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "userName": name,
        "displayName": format!("{name} Example"),
        "emails": [{ "value": email, "type": "work", "primary": true }],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { "department": department },
    })
}

#[tokio::test]
async fn an_admin_creates_a_token_reads_its_expiry_and_rotation_refuses_the_old_one() {
    let Some((_driver, c)) = browser().await else { return };
    let s = TestServer::start().await;
    let email = s.account("admin@acme.test", Role::TenantAdmin(s.tenant.id.clone())).await;
    sign_in(&c, &s, &email).await;
    click(&c, "nav.side a[href$='/deployment']").await;
    wait_text(&c, "h1", "Deployment settings").await;
    assert!(wait_text(&c, "#base-url", "/scim/v2").await.starts_with("http://127.0.0.1:"));

    click(&c, "#new-token-button").await;
    let first = wait_text(&c, "#new-token", "scimd_").await;
    let expires = c.find(Locator::Id("new-token-expires")).await.expect("expiry").text().await.expect("text");
    let expected = (s.service.now() + time::Duration::days(365)).date().to_string();
    assert!(expires.starts_with(&expected), "expires {expires}, expected {expected}");
    // The table lists it with the same expiry.
    let prefix = &first[..14];
    let row = wait_text(&c, &format!("tr[data-token='{prefix}']"), "active").await;
    assert!(row.contains(&expected), "{row}");
    screenshot(&c, "deployment").await;

    let scim = |token: &str| s.scim_with(Some(token));
    assert_eq!(scim(&first).get("/Users").await.status, 200);
    assert_eq!(scim(&s.token).get("/Users").await.status, 401, "the token made at start was replaced");

    // Rotate: the new token works, the previous one is refused over SCIM.
    click(&c, "#new-token-button").await;
    let started = Instant::now();
    let second = loop {
        let shown = wait_text(&c, "#new-token", "scimd_").await;
        if shown != first {
            break shown;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "no new token shown");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(scim(&second).get("/Users").await.status, 200);
    let refused = scim(&first).get("/Users").await;
    assert_eq!(refused.status, 401);
    assert!(refused.text.contains("replaced by a newer token"), "{}", refused.text);
    c.close().await.expect("close");
}

#[tokio::test]
async fn a_mapping_with_a_syntax_error_is_refused_inline_then_fixed() {
    let Some((_driver, c)) = browser().await else { return };
    let s = TestServer::start().await;
    let email = s.account("admin@acme.test", Role::TenantAdmin(s.tenant.id.clone())).await;
    sign_in(&c, &s, &email).await;
    click(&c, "nav.side a[href$='/mappings']").await;
    wait_text(&c, "h1", "SCIM mappings").await;

    type_into(&c, "#name", "Sales team").await;
    let condition = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"Sales";
    type_into(&c, "#filter", condition).await;
    // Checked as it is typed.
    let check = wait_text(&c, "#filter-check", "✗").await;
    assert!(check.contains("not a valid SCIM filter"), "{check}");
    // Saving anyway is refused with the reason, and the form keeps what was typed.
    click(&c, "#editor button[type=submit]").await;
    let error = wait_text(&c, ".notice.error", "not a valid SCIM filter").await;
    assert!(!error.is_empty());
    let kept = c.find(Locator::Id("filter")).await.expect("filter").prop("value").await.expect("value");
    assert_eq!(kept.as_deref(), Some(condition));
    assert_eq!(s.service.mappings(&s.tenant).await.expect("mappings").len(), 1, "nothing saved");

    // Fixed: valid as typed, then saved.
    let fixed = format!("{condition}\"");
    type_into(&c, "#filter", &fixed).await;
    wait_text(&c, "#filter-check", "✓ A valid SCIM filter").await;
    click(&c, "#editor button[type=submit]").await;
    wait_text(&c, ".notice.ok", "The mapping was saved.").await;
    wait_text(&c, "#mappings", "Sales team").await;
    let saved = s.service.mappings(&s.tenant).await.expect("mappings");
    assert!(saved.iter().any(|m| m.name == "Sales team" && m.filter.as_deref() == Some(fixed.as_str())));

    // Move it first, then test a user against the mappings.
    click(&c, "button[aria-label='Move Sales team up']").await;
    wait_text(&c, ".notice.ok", "order").await;
    let first_row = wait_text(&c, "#mappings tbody tr:first-child", "Sales team").await;
    assert!(first_row.contains("department"));
    click(&c, "#dry-run button[type=submit]").await;
    let verdict = wait_text(&c, "#dry-run-result", "would land").await;
    assert!(verdict.contains("Sales team"), "{verdict}");
    screenshot(&c, "mappings").await;
    c.close().await.expect("close");
}

#[tokio::test]
async fn a_user_pushed_over_scim_is_found_in_users_and_in_the_log() {
    let Some((_driver, c)) = browser().await else { return };
    let s = TestServer::start().await;
    for (name, dept) in [("alice@acme.test", "Sales"), ("bob@acme.test", "Finance"), ("carol@acme.test", "Sales")] {
        let created = s.scim().post("/Users", &user(name, name, dept)).await;
        assert_eq!(created.status, 201, "{}", created.text);
    }
    let refused = s.scim().post("/Users", &json!({"userName": 42})).await;
    assert_eq!(refused.status, 400);
    s.flush_events().await;
    let email = s.account("admin@acme.test", Role::TenantAdmin(s.tenant.id.clone())).await;
    sign_in(&c, &s, &email).await;
    wait_text(&c, "h1", "Dashboard").await;
    wait_text(&c, ".cards", "3").await;
    screenshot(&c, "dashboard").await;

    click(&c, "nav.side a[href$='/users']").await;
    wait_text(&c, "h1", "Users").await;
    type_into(&c, "#q", "bob").await;
    click(&c, "form.filters button[type=submit]").await;
    wait_text(&c, ".count", "1–1 of 1 users").await;
    wait_text(&c, "table.list", "bob@acme.test").await;
    type_into(&c, "#q", "").await;
    click(&c, "form.filters button[type=submit]").await;
    wait_text(&c, ".count", "of 3 users").await;
    screenshot(&c, "users").await;

    click(&c, "table.list a[href*='/users/']").await;
    wait_text(&c, "h1", "User ").await;
    let timeline = wait_text(&c, "main", "Provisioning timeline").await;
    assert!(timeline.contains("POST /scim/v2/Users"), "{timeline}");
    screenshot(&c, "user").await;

    click(&c, "nav.side a[href$='/log']").await;
    wait_text(&c, "h1", "Provisioning log").await;
    let log = wait_text(&c, "#log", "alice@acme.test").await;
    assert!(log.contains("invalid_request"), "the refused request is logged too: {log}");
    screenshot(&c, "log").await;
    click(&c, "#log tbody tr:first-child a").await;
    wait_text(&c, "h1", "Log entry").await;
    c.close().await.expect("close");
}

#[tokio::test]
async fn a_full_profile_is_named_on_the_health_page() {
    let Some((_driver, c)) = browser().await else { return };
    let s = TestServer::start().await;
    let email = s.account("admin@acme.test", Role::TenantAdmin(s.tenant.id.clone())).await;
    sign_in(&c, &s, &email).await;
    click(&c, "nav.side a[href$='/profiles']").await;
    wait_text(&c, "h1", "Profiles").await;
    let profile = s.service.profiles(&s.tenant).await.expect("profiles").remove(0);
    type_into(&c, &format!("#max-{}", profile.id), "1").await;
    click(&c, &format!("button[form='profile-{}']", profile.id)).await;
    wait_text(&c, ".notice.ok", "The profile was saved.").await;

    assert_eq!(s.scim().post("/Users", &user("dan@acme.test", "dan@acme.test", "Ops")).await.status, 201);
    let full = s.scim().post("/Users", &user("erin@acme.test", "erin@acme.test", "Ops")).await;
    assert_eq!(full.status, 403, "{}", full.text);
    s.flush_events().await;

    c.refresh().await.expect("reload");
    let row = wait_text(&c, &format!("tr[data-profile='{}']", profile.name), "1 of 1").await;
    assert!(row.contains("nearly full"), "{row}");
    screenshot(&c, "profiles").await;

    click(&c, "nav.side a[href$='/health']").await;
    let findings = wait_text(&c, "main", "profile_full").await;
    assert!(findings.contains(&profile.name), "the finding names the profile: {findings}");
    assert!(findings.contains("Max users") || findings.contains("limit"), "and says how to fix it: {findings}");
    screenshot(&c, "health").await;

    click(&c, "nav.side a[href$='/storage']").await;
    wait_text(&c, "h1", "Storage").await;
    screenshot(&c, "storage").await;
    click(&c, "nav.side a[href$='/webhooks']").await;
    wait_text(&c, "h1", "Webhooks").await;
    type_into(&c, "#url", "https://hooks.example.com/scimd").await;
    click(&c, "form.inline button[type=submit]").await;
    wait_text(&c, ".new-secret", "shown only once").await;
    screenshot(&c, "webhooks").await;
    c.close().await.expect("close");
}

#[tokio::test]
async fn a_tenant_admin_cannot_reach_another_tenant_or_the_operator_pages() {
    let Some((_driver, c)) = browser().await else { return };
    let s = TestServer::start().await;
    let (other, _) = s.new_tenant("globex").await;
    let email = s.account("admin@acme.test", Role::TenantAdmin(s.tenant.id.clone())).await;
    sign_in(&c, &s, &email).await;
    let nav = wait_text(&c, "nav.side", "Dashboard").await;
    assert!(!nav.contains("Operator"), "no operator navigation for a tenant admin");
    for path in [
        format!("/console/t/{}/users", other.id),
        "/console/operator/tenants".into(),
        "/console/operator/claims".into(),
    ] {
        c.goto(&format!("{}{path}", s.base)).await.expect("open");
        let text = wait_text(&c, "main", "Forbidden").await;
        assert!(text.contains("cannot open this page"), "{text}");
        assert!(!text.contains("globex"));
    }
    c.close().await.expect("close");
}

#[tokio::test]
async fn a_change_form_without_its_csrf_token_is_refused() {
    let Some((_driver, c)) = browser().await else { return };
    let s = TestServer::start().await;
    let email = s.account("ops@scimd.test", Role::Operator).await;
    sign_in(&c, &s, &email).await;
    wait_text(&c, "h1", "Tenants").await;
    screenshot(&c, "operator-tenants").await;
    // Strip the token from the form and from htmx's headers, as a forged cross-site form would lack it.
    c.execute(
        "document.body.removeAttribute('hx-headers'); document.querySelectorAll('input[name=csrf]').forEach(e => e.remove());",
        vec![],
    )
    .await
    .expect("strip the token");
    type_into(&c, "#tenant-name", "forged").await;
    click(&c, "form.inline button[type=submit]").await;
    wait_text(&c, "main", "without its security token").await;
    assert!(s.service.find_tenant("forged").await.is_err(), "nothing was created");

    // With the token (a fresh page), the same form works.
    c.goto(&format!("{}/console/operator/tenants", s.base)).await.expect("reload");
    type_into(&c, "#tenant-name", "initech").await;
    click(&c, "form.inline button[type=submit]").await;
    wait_text(&c, "h1", "Dashboard").await;
    assert!(s.service.find_tenant("initech").await.is_ok());

    for (page, name) in [("regions", "operator-regions"), ("audit", "operator-audit")] {
        c.goto(&format!("{}/console/operator/{page}", s.base)).await.expect("open");
        wait_text(&c, "main", "").await;
        screenshot(&c, name).await;
    }
    c.goto(&format!("{}/console/operator/claims?email=nobody%40acme.test", s.base)).await.expect("open");
    wait_text(&c, "main", "it is free").await;
    screenshot(&c, "operator-claims").await;
    click(&c, "form[action='/console/sign-out'] button").await;
    wait_text(&c, "h1", "Sign in").await;
    screenshot(&c, "sign-in").await;
    c.close().await.expect("close");
}
