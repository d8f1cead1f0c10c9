//! The console over HTTP: sign-in and its rate limit, sessions, the CSRF check on every change
//! form, tenant isolation (403, never a leak), the audit log, API keys and the same permissions
//! on the admin API, and the operator's email claims. Browser-level flows are in `tests/browser`.

use scimd_domain::access::Role;
use scimd_domain::access::audit::AuditQuery;
use scimd_testkit::{Console, PASSWORD, TestServer};
use serde_json::json;

use super::support::{create_user, user};

#[tokio::test]
async fn sign_in_opens_a_session_and_sign_out_ends_it() {
    let s = TestServer::start().await;
    let wrong = Console::sign_in(&s.base, "nobody@scimd.test", PASSWORD).await.err().expect("refused");
    assert_eq!(wrong.status, 401);
    assert!(wrong.html.contains("The email or the password is wrong."));
    s.account("ops@scimd.test", Role::Operator).await;
    let bad_password = Console::sign_in(&s.base, "ops@scimd.test", "not the password").await.err().expect("refused");
    assert_eq!(bad_password.status, 401);
    // Unknown account and wrong password read alike (but for the echoed email and the form's token).
    let same = |p: &scimd_testkit::Page, email: &str| {
        p.html.replace(email, "X").replace(&p.input("csrf").unwrap_or_default(), "T")
    };
    assert_eq!(same(&wrong, "nobody@scimd.test"), same(&bad_password, "ops@scimd.test"));

    let console = Console::sign_in(&s.base, "OPS@scimd.test", PASSWORD).await.expect("signed in");
    let home = console.get("/console").await;
    assert_eq!((home.status, home.location.as_deref()), (303, Some("/console/operator/tenants")));
    let page = console.get("/console/operator/tenants").await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains("acme"));
    for (name, value) in [
        ("content-security-policy", "frame-ancestors 'none'"),
        ("x-content-type-options", "nosniff"),
        ("cache-control", "no-store"),
    ] {
        let header = page.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(header.contains(value), "{name}: {header}");
    }

    let out = console.post("/console/sign-out", &[]).await;
    assert_eq!(out.status, 303);
    let after = console.get("/console/operator/tenants").await;
    assert_eq!(after.status, 303);
    assert!(after.location.unwrap_or_default().starts_with("/console/sign-in?next=%2Fconsole%2Foperator%2Ftenants"));
}

#[tokio::test]
async fn the_session_cookie_is_http_only_and_same_site() {
    let s = TestServer::start().await;
    s.account("ops@scimd.test", Role::Operator).await;
    let form = reqwest::get(format!("{}/console/sign-in", s.base)).await.expect("sign-in page");
    let cookie = form.headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
}

#[tokio::test]
async fn sign_in_is_rate_limited_per_email_until_the_window_passes() {
    let s = TestServer::start().await;
    s.account("ops@scimd.test", Role::Operator).await;
    for _ in 0..5 {
        let page = Console::sign_in(&s.base, "ops@scimd.test", "guess guess guess").await.err().expect("refused");
        assert_eq!(page.status, 401);
    }
    // The right password is refused too while the window lasts.
    let blocked = Console::sign_in(&s.base, "ops@scimd.test", PASSWORD).await.err().expect("blocked");
    assert_eq!(blocked.status, 429);
    assert!(blocked.html.contains("Too many failed sign-ins"));
    let retry: i64 =
        blocked.headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!((1..=900).contains(&retry), "Retry-After {retry}");
    s.clock.advance(time::Duration::minutes(16));
    assert!(Console::sign_in(&s.base, "ops@scimd.test", PASSWORD).await.is_ok());
}

#[tokio::test]
async fn the_set_up_link_creates_the_first_operator_once() {
    let s = TestServer::start().await;
    let code = s.service.console_setup_code().await.expect("code").expect("no operator yet");
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let form = http.get(format!("{}/console/setup?code={code}", s.base)).send().await.expect("setup page");
    assert_eq!(form.status(), 200);
    let cookie = form.headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let form_cookie = cookie.split(';').next().unwrap_or_default().to_owned();
    let html = form.text().await.expect("html");
    let token =
        html.split("name=\"csrf\" value=\"").nth(1).and_then(|r| r.split('"').next()).expect("token").to_owned();
    let body = format!(
        "csrf={token}&code={code}&email=first%40scimd.test&password=a+long+password+1&confirm=a+long+password+1"
    );
    let post = |body: String| {
        http.post(format!("{}/console/setup", s.base))
            .header("Cookie", &form_cookie)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let done = post(body.clone()).await.expect("setup");
    assert_eq!(done.status(), 303);
    assert!(
        done.headers().get_all("set-cookie").iter().any(|c| c.to_str().unwrap_or("").starts_with("scimd_session="))
    );
    let again = post(body.replace("first%40", "second%40")).await.expect("setup again");
    assert_eq!(again.status(), 422);
    assert!(again.text().await.unwrap_or_default().contains("has been used"));
    assert!(s.service.console_setup_code().await.expect("code").is_none(), "an operator exists now");
    assert!(Console::sign_in(&s.base, "first@scimd.test", "a long password 1").await.is_ok());
}

/// The whole audit log.
fn everything() -> AuditQuery {
    AuditQuery { limit: 500, ..AuditQuery::default() }
}

/// Every console page an operator can open for the tenant, and the operator's own.
fn pages(tenant: &str) -> Vec<String> {
    let mut pages: Vec<String> =
        ["", "/users", "/deployment", "/mappings", "/profiles", "/storage", "/log", "/health", "/webhooks"]
            .iter()
            .map(|p| format!("/console/t/{tenant}{p}"))
            .collect();
    pages
        .extend(["tenants", "regions", "claims", "accounts", "audit"].iter().map(|p| format!("/console/operator/{p}")));
    pages.push("/console/account".into());
    pages
}

#[tokio::test]
async fn every_change_form_refuses_a_missing_or_wrong_csrf_token() {
    let s = TestServer::start().await;
    let console = s.operator_console().await;
    // Something behind every kind of form: a user, a webhook, an API key.
    let alice = create_user(&s.scim(), "alice@acme.test").await;
    let hook =
        console.post(&format!("/console/t/{}/webhooks", s.tenant.id), &[("url", "http://127.0.0.1:9/hook")]).await;
    assert_eq!(hook.status, 200);
    assert_eq!(console.post("/console/account/api-keys", &[("name", "ci")]).await.status, 200);
    let audit_before = s.service.audit_log(everything()).await.expect("audit").len();

    let mut checked = std::collections::BTreeSet::new();
    for page in pages(&s.tenant.id).into_iter().chain([format!("/console/t/{}/users/{alice}", s.tenant.id)]) {
        let p = console.get(&page).await;
        assert_eq!(p.status, 200, "{page}");
        for (action, fields) in p.post_forms() {
            let without: Vec<(&str, &str)> =
                fields.iter().filter(|(k, _)| k != "csrf").map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let refused = console.post_raw(&action, &without).await;
            assert_eq!(refused.status, 403, "{action} without a token");
            assert!(refused.html.contains("security token"), "{action}");
            let mut wrong = without.clone();
            wrong.push(("csrf", "0123456789abcdef0123456789abcdef0123456789a"));
            assert_eq!(console.post_raw(&action, &wrong).await.status, 403, "{action} with a wrong token");
            checked.insert(action.split('/').filter(|seg| seg.len() != 36).collect::<Vec<_>>().join("/"));
        }
    }
    // The forms of every kind were found and tried.
    for kind in [
        "tokens", "revoke", "mappings", "move", "profiles", "webhooks", "test", "delete", "sign-out", "api-keys",
        "tenants", "regions", "accounts",
    ] {
        assert!(checked.iter().any(|a| a.contains(kind)), "no {kind} form among {checked:?}");
    }
    let audit_after = s.service.audit_log(everything()).await.expect("audit").len();
    assert_eq!(audit_before, audit_after, "nothing changed");
    // The same forms work with the token: the check is what refused them.
    let ok =
        console.post(&format!("/console/t/{}/profiles", s.tenant.id), &[("name", "Gold"), ("max_users", "5")]).await;
    assert_eq!(ok.status, 303);
}

#[tokio::test]
async fn a_tenant_admin_sees_only_their_tenant_and_never_learns_of_others() {
    let s = TestServer::start().await;
    let (other, _) = s.new_tenant("globex").await;
    let admin = s.tenant_console(&s.tenant).await;
    assert_eq!(admin.get("/console").await.location.as_deref(), Some(format!("/console/t/{}", s.tenant.id).as_str()));
    for page in pages(&s.tenant.id).iter().filter(|p| p.contains("/console/t/")) {
        assert_eq!(admin.get(page).await.status, 200, "{page}");
    }
    let missing = "01900000-0000-7000-8000-000000000000";
    for page in pages(&other.id).iter().filter(|p| p.contains("/console/t/")) {
        let existing = admin.get(page).await;
        let absent = admin.get(&page.replace(&other.id, missing)).await;
        assert_eq!((existing.status, absent.status), (403, 403), "{page}");
        assert_eq!(existing.html, absent.html, "the answer must not tell whether the tenant exists");
        assert!(!existing.html.contains("globex"));
    }
    for page in pages(&s.tenant.id).iter().filter(|p| p.contains("/operator/")) {
        assert_eq!(admin.get(page).await.status, 403, "{page}");
    }
    // Changes too, with a valid CSRF token.
    let change = admin.post(&format!("/console/t/{}/profiles", other.id), &[("name", "x"), ("max_users", "1")]).await;
    assert_eq!(change.status, 403);
    assert_eq!(admin.post("/console/operator/tenants", &[("name", "evil")]).await.status, 403);
    assert!(s.service.find_tenant("evil").await.is_err());
}

#[tokio::test]
async fn console_changes_are_audited_with_before_and_after() {
    let s = TestServer::start().await;
    let admin = s.tenant_console(&s.tenant).await;
    let tenant = &s.tenant.id;
    assert_eq!(
        admin.post(&format!("/console/t/{tenant}/profiles"), &[("name", "Gold"), ("max_users", "5")]).await.status,
        303
    );
    let gold =
        s.service.profiles(&s.tenant).await.expect("profiles").into_iter().find(|p| p.name == "Gold").expect("gold");
    let saved = admin
        .post(&format!("/console/t/{tenant}/profiles"), &[("id", &gold.id), ("name", "Gold"), ("max_users", "10")])
        .await;
    assert_eq!(saved.status, 303);
    let log = s.service.audit_log(everything()).await.expect("audit");
    let update = log.iter().find(|e| e.action == "profile.update").expect("update audited");
    assert_eq!(update.actor, "admin-acme@scimd.test");
    assert_eq!(update.tenant_id.as_deref(), Some(tenant.as_str()));
    assert_eq!(update.before.as_ref().map(|b| b["max_users"].clone()), Some(json!(5)));
    assert_eq!(update.after.as_ref().map(|a| a["max_users"].clone()), Some(json!(10)));
    assert!(log.iter().any(|e| e.action == "profile.create" && e.before.is_none()));
    // The operator reads it in the console.
    let ops = s.operator_console().await;
    let page = ops.get("/console/operator/audit").await;
    assert!(page.html.contains("profile.update") && page.html.contains("admin-acme@scimd.test"));
}

#[tokio::test]
async fn api_keys_carry_their_accounts_scope_on_the_admin_api() {
    let s = TestServer::start().await;
    let (other, _) = s.new_tenant("globex").await;
    let admin = s.tenant_console(&s.tenant).await;
    let page = admin.post("/console/account/api-keys", &[("name", "automation")]).await;
    assert_eq!(page.status, 200);
    let key = page
        .html
        .split("<code id=\"new-key\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .expect("key shown")
        .to_owned();
    assert!(key.starts_with("scimdk_"));
    let api = scimd_testkit::Client::new(&format!("{}/admin/api/v1", s.base), Some(&key));
    let me = api.get("/me").await;
    assert_eq!(
        (me.body["role"].as_str(), me.body["tenant_id"].as_str()),
        (Some("tenant_admin"), Some(s.tenant.id.as_str()))
    );
    assert_eq!(api.get(&format!("/tenants/{}/profiles", s.tenant.id)).await.status, 200);
    let listed = api.get("/tenants").await;
    assert_eq!(listed.body["tenants"].as_array().map(Vec::len), Some(1));
    let foreign = api.get(&format!("/tenants/{}/profiles", other.id)).await;
    let missing = api.get("/tenants/01900000-0000-7000-8000-000000000000/profiles").await;
    assert_eq!((foreign.status, missing.status), (403, 403));
    assert_eq!(foreign.body, missing.body);
    for operator_only in ["/regions", "/events", "/accounts", "/audit", "/claims/a@b.c"] {
        assert_eq!(api.get(operator_only).await.status, 403, "{operator_only}");
    }
    assert_eq!(api.post("/tenants", &json!({"name": "x"})).await.status, 403);
    // A change through the key is audited under the key's name.
    let created =
        api.post(&format!("/tenants/{}/profiles", s.tenant.id), &json!({"name": "Api", "max_users": 3})).await;
    assert_eq!(created.status, 201);
    let log = s.service.audit_log(everything()).await.expect("audit");
    assert!(log.iter().any(|e| e.action == "profile.create" && e.actor.starts_with("api key scimdk_")));
    // Revoked: refused at once.
    let keys = api.get("/me/api-keys").await;
    let id = keys.body["api_keys"][0]["id"].as_str().expect("key id").to_owned();
    assert_eq!(api.delete(&format!("/me/api-keys/{id}")).await.status, 204);
    assert_eq!(api.get("/me").await.status, 401);
    assert_eq!(
        scimd_testkit::Client::new(&format!("{}/admin/api/v1", s.base), Some("scimdk_nothing")).get("/me").await.status,
        401
    );
}

#[tokio::test]
async fn operators_look_up_email_claims_and_release_only_stale_ones() {
    let s = TestServer::start().await;
    let mut bob = user("bob");
    bob["emails"] = json!([{ "value": "bob@acme.test", "type": "work", "primary": true }]);
    assert_eq!(s.scim().post("/Users", &bob).await.status, 201);
    let ops = s.operator_console().await;
    let page = ops.get("/console/operator/claims?email=BOB%40acme.test").await;
    assert!(page.html.contains("bob@acme.test") && page.html.contains("the user still holds it"), "{}", page.html);
    let refused = ops.post("/console/operator/claims/release", &[("email", "bob@acme.test")]).await;
    assert_eq!(refused.status, 409);
    assert!(refused.html.contains("still exists"));

    // A claim whose user vanished (e.g. from before a bug fix) blocks the email everywhere.
    s.execute_sql(&format!(
        "INSERT INTO email_claims (email, tenant_id, user_id, claimed_at) \
         VALUES ('ghost@acme.test', '{}', 'gone', '2026-01-01T00:00:00.000000Z')",
        s.tenant.id
    ))
    .await;
    let (globex, token) = s.new_tenant("globex").await;
    let elsewhere = s.scim_with(Some(&token));
    let mut ghost = user("ghost");
    ghost["emails"] = json!([{ "value": "ghost@acme.test", "type": "work", "primary": true }]);
    let blocked = elsewhere.post("/Users", &ghost).await;
    assert_eq!(blocked.status, 409, "{}", blocked.text);
    let page = ops.get("/console/operator/claims?email=ghost%40acme.test").await;
    assert!(page.html.contains("Release stale claim"));
    let released = ops.post("/console/operator/claims/release", &[("email", "ghost@acme.test")]).await;
    assert_eq!(released.status, 303);
    assert_eq!(elsewhere.post("/Users", &ghost).await.status, 201);
    let claim = s.service.store.email_claim("ghost@acme.test").await.expect("claim").expect("claimed anew");
    assert_eq!(claim.tenant_id, globex.id);
    let log = s.service.audit_log(everything()).await.expect("audit");
    assert!(log.iter().any(|e| e.action == "email_claim.release" && e.target == "ghost@acme.test"));
}

#[tokio::test]
async fn the_console_does_what_the_admin_api_does_settings_users_and_regions() {
    let s = TestServer::start().await;
    let admin = s.tenant_console(&s.tenant).await;
    let t = &s.tenant.id;
    // Provisioning settings.
    let saved = admin
        .post(&format!("/console/t/{t}/settings"), &[("hold_profile_full", "on"), ("delete_policy", "purge")])
        .await;
    assert_eq!(saved.status, 303);
    let settings = s.service.settings(&s.tenant).await.expect("settings");
    assert!(settings.hold.profile_full && !settings.hold.no_mapping_matched);
    assert_eq!(serde_json::to_value(settings.delete_policy).ok(), Some(json!("purge")));
    let page = admin.get(&format!("/console/t/{t}/deployment")).await;
    assert!(page.html.contains("name=\"hold_profile_full\" checked"));

    // A user by hand, preserved, restored, purged.
    let made = admin
        .post(&format!("/console/t/{t}/users"), &[("user_name", "hand@acme.test"), ("email", "hand@acme.test")])
        .await;
    assert_eq!(made.status, 303, "{}", made.html);
    let location = made.location.expect("to the user's page");
    let user_id = location.split("/users/").nth(1).and_then(|r| r.split('?').next()).expect("user id").to_owned();
    let user_page = format!("/console/t/{t}/users/{user_id}");
    assert!(admin.get(&location).await.html.contains("The user was created."));
    assert_eq!(admin.post(&user_page, &[("action", "preserve")]).await.status, 303);
    assert!(admin.get(&user_page).await.html.contains("s-preserved"));
    assert_eq!(admin.post(&user_page, &[("action", "restore")]).await.status, 303);
    assert!(admin.get(&user_page).await.html.contains("s-active"));
    assert_eq!(admin.post(&user_page, &[("action", "purge")]).await.status, 303);
    assert_eq!(admin.get(&user_page).await.status, 404);

    // Regions are the operators': a tenant admin may not restrict the tenant's regions.
    assert_eq!(admin.post(&format!("/console/t/{t}/storage"), &[]).await.status, 403);
    let ops = s.operator_console().await;
    assert_eq!(ops.post("/console/operator/regions", &[("name", "eu-west")]).await.status, 303);
    let eu = s.service.find_region("eu-west").await.expect("created");
    let probe = ops
        .post(
            &format!("/console/operator/regions/{}/probe", eu.id),
            &[("probe_url", "http://127.0.0.1:9/health"), ("probe_interval_seconds", "60")],
        )
        .await;
    assert_eq!(probe.status, 303, "{}", probe.html);
    assert_eq!(s.service.region(&eu.id).await.expect("region").probe_interval_seconds, Some(60));
    assert_eq!(ops.post(&format!("/console/operator/regions/{}/default", eu.id), &[]).await.status, 303);
    assert_eq!(s.service.default_region().await.expect("default").id, eu.id);
    let restricted = ops.post(&format!("/console/t/{t}/storage"), &[("region", &eu.id)]).await;
    // The tenant's catch-all mapping points to the old default region, so this is refused, with why.
    assert_eq!(restricted.status, 409, "{}", restricted.html);
    assert!(restricted.html.contains("mapping"), "says which mapping is in the way");
    let page = ops.get(&format!("/console/t/{t}/storage")).await;
    assert!(page.html.contains("Regions this tenant may use"));
    // The same through the admin API: a tenant admin's key is refused, as in the console.
    let api = s.tenant_admin_api(&s.tenant).await;
    assert_eq!(api.put(&format!("/tenants/{t}/regions"), &json!({ "region_ids": [] })).await.status, 403);
}

#[tokio::test]
async fn the_admin_api_searches_users_and_reads_one_and_the_activity() {
    let s = TestServer::start().await;
    create_user(&s.scim(), "alice").await;
    let bob = create_user(&s.scim(), "bob").await;
    let api = s.admin();
    let t = &s.tenant.id;
    let found = api.get(&format!("/tenants/{t}/users?q=BO&state=active")).await;
    assert_eq!(found.status, 200, "{}", found.text);
    assert_eq!(found.body["total"], 1);
    assert_eq!(found.body["users"][0]["id"], bob.as_str());
    assert_eq!(api.get(&format!("/tenants/{t}/users")).await.body["total"], 2);
    assert_eq!(api.get(&format!("/tenants/{t}/users?state=nope")).await.status, 400);
    assert_eq!(api.get(&format!("/tenants/{t}/users?colour=red")).await.status, 400);
    let one = api.get(&format!("/tenants/{t}/users/{bob}")).await;
    assert_eq!((one.body["user_name"].as_str(), one.body["scim"]["userName"].as_str()), (Some("bob"), Some("bob")));
    assert_eq!(api.get(&format!("/tenants/{t}/users/nobody")).await.status, 404);
    s.flush_events().await;
    let activity = api.get(&format!("/tenants/{t}/activity")).await;
    let accepted: u64 = activity.body["days"]
        .as_array()
        .map(|days| days.iter().filter(|d| d["outcome"] == "accepted").filter_map(|d| d["count"].as_u64()).sum())
        .unwrap_or(0);
    assert_eq!(accepted, 2);
}

#[tokio::test]
async fn a_session_ends_after_twelve_hours_and_is_pruned() {
    let s = TestServer::start().await;
    let console = s.operator_console().await;
    assert_eq!(console.get("/console/operator/tenants").await.status, 200);
    s.clock.advance(time::Duration::hours(11));
    assert_eq!(console.get("/console/operator/tenants").await.status, 200);
    s.clock.advance(time::Duration::hours(2));
    let expired = console.get("/console/operator/tenants").await;
    assert_eq!(expired.status, 303);
    assert!(expired.location.unwrap_or_default().starts_with("/console/sign-in"));
    // Sessions nobody comes back to are deleted on the log's pruning schedule.
    let other = s.operator_console().await;
    s.clock.advance(time::Duration::hours(13));
    s.recorder.prune_now().await.expect("prune");
    assert_eq!(s.count_sql("SELECT count(*) FROM sessions").await, 0);
    assert_eq!(other.get("/console/operator/tenants").await.status, 303);
}

#[tokio::test]
async fn tenant_admins_cannot_aim_webhooks_inside_the_cloud_network() {
    let s = TestServer::start().await;
    let admin = s.tenant_console(&s.tenant).await;
    let t = &s.tenant.id;
    for url in ["http://127.0.0.1:9/hook", "http://169.254.169.254/latest", "http://10.0.0.5/", "http://localhost/x"] {
        let page = admin.post(&format!("/console/t/{t}/webhooks"), &[("url", url)]).await;
        assert_eq!(page.status, 422, "{url}");
        assert!(page.html.contains("public address"), "{url}");
    }
    let api = s.tenant_admin_api(&s.tenant).await;
    assert_eq!(api.post(&format!("/tenants/{t}/webhooks"), &json!({ "url": "http://127.0.0.1:9/" })).await.status, 400);
    assert_eq!(
        api.post(&format!("/tenants/{t}/webhooks"), &json!({ "url": "https://hooks.example.com/x" })).await.status,
        201
    );
    // An operator may (an internal receiver is theirs to choose); a tenant admin may not test-send to it.
    let made = s.admin().post(&format!("/tenants/{t}/webhooks"), &json!({ "url": "http://127.0.0.1:9/ops" })).await;
    assert_eq!(made.status, 201);
    let hook = made.body["id"].as_str().expect("id").to_owned();
    assert_eq!(api.post(&format!("/tenants/{t}/webhooks/{hook}/test"), &json!({})).await.status, 400);
    assert_eq!(admin.post(&format!("/console/t/{t}/webhooks/{hook}/test"), &[]).await.status, 422);
}

#[tokio::test]
async fn accounts_keep_an_operator_and_nobody_deletes_their_own() {
    let s = TestServer::start().await;
    let ops = s.operator_console().await;
    let me = s.service.store.account_by_email("operator@scimd.test").await.expect("lookup").expect("me");
    let own = ops.post(&format!("/console/operator/accounts/{}/delete", me.id), &[]).await;
    assert_eq!(own.status, 409);
    assert!(own.html.contains("signed in with"));
    // Through the API with the operator token: the last operator stays.
    let last = s.admin().delete(&format!("/accounts/{}", me.id)).await;
    assert_eq!(last.status, 409, "{}", last.text);
    assert!(last.text.contains("last operator"));
    // A role must be chosen: an empty choice does not make an operator.
    let none = ops
        .post("/console/operator/accounts", &[("email", "x@scimd.test"), ("password", PASSWORD), ("scope", "")])
        .await;
    assert_eq!(none.status, 422);
    let made = ops
        .post(
            "/console/operator/accounts",
            &[("email", "ta@scimd.test"), ("password", PASSWORD), ("scope", &s.tenant.id)],
        )
        .await;
    assert_eq!(made.status, 303);
    let ta = s.service.store.account_by_email("ta@scimd.test").await.expect("lookup").expect("made");
    assert_eq!(ta.role, Role::TenantAdmin(s.tenant.id.clone()));
    assert_eq!(s.admin().delete(&format!("/accounts/{}", ta.id)).await.status, 204);
    let log = s.service.audit_log(everything()).await.expect("audit");
    let deleted = log.iter().find(|e| e.action == "account.delete").expect("audited");
    assert_eq!(deleted.tenant_id.as_deref(), Some(s.tenant.id.as_str()));
    assert_eq!(deleted.before.as_ref().map(|b| b["email"].clone()), Some(json!("ta@scimd.test")));
    assert!(deleted.before.as_ref().is_some_and(|b| b.get("password_hash").is_none()));
}

#[tokio::test]
async fn console_traffic_stays_out_of_the_provisioning_log() {
    let s = TestServer::start().await;
    let before = s.events().await.len();
    let ops = s.operator_console().await;
    ops.get("/console/operator/tenants").await;
    ops.get("/console/assets/console-1.css").await;
    ops.get("/console/nope").await;
    assert_eq!(s.events().await.len(), before);
}

#[tokio::test]
async fn unreadable_forms_and_addresses_get_a_console_page() {
    let s = TestServer::start().await;
    let ops = s.operator_console().await;
    let form = ops.post("/console/operator/tenants", &[]).await;
    assert_eq!(form.status, 422);
    assert!(form.html.contains("This form could not be read") && form.html.contains("<main"), "{}", form.html);
    let query = ops.get(&format!("/console/t/{}/users?page=many", s.tenant.id)).await;
    assert_eq!(query.status, 400);
    assert!(query.html.contains("cannot read"), "{}", query.html);
}

#[tokio::test]
async fn two_people_racing_the_set_up_link_make_one_operator() {
    let s = TestServer::start().await;
    let code = s.service.console_setup_code().await.expect("code").expect("no operator yet");
    let (a, b) = tokio::join!(
        s.service.set_up_first_operator(&code, "a@scimd.test", PASSWORD),
        s.service.set_up_first_operator(&code, "b@scimd.test", PASSWORD),
    );
    assert_eq!(u8::from(a.is_ok()) + u8::from(b.is_ok()), 1, "{a:?} {b:?}");
    let operators =
        s.service.accounts().await.expect("accounts").into_iter().filter(|a| a.role == Role::Operator).count();
    assert_eq!(operators, 1);
}
