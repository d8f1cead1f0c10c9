//! The provisioning doctor against a running server: each of the seven causes produced through
//! real SCIM traffic (and state changes through the service), and the doctor reporting exactly
//! that finding with its evidence and fix; a healthy tenant reporting none. Time moves only
//! through the test clock.

use reqwest::Method;
use scimd_domain::clock::Clock;
use scimd_domain::doctor::{Finding, Report, Severity, codes};
use scimd_domain::provisioning::admin::MappingChange;
use scimd_domain::provisioning::{Health, HoldSettings, TenantSettings};
use scimd_domain::token::TokenRequest;
use scimd_testkit::{Client, Response, TestServer};
use serde_json::{Value, json};
use time::Duration;

use crate::support::{PATCH_OP, user};

const OKTA: &str = "Okta SCIM Client 1.0.0";
const ENTRA: &str = "Azure AD SCIM Client";

/// A request as Okta sends it (the User-Agent tells the doctor which IdP to word the fix for).
async fn okta(c: &Client, method: Method, path: &str, body: Option<&Value>) -> Response {
    c.send(method, path, body, &[("User-Agent", OKTA)]).await
}

async fn create(c: &Client, body: &Value) -> Response {
    okta(c, Method::POST, "/Users", Some(body)).await
}

fn with_email(user_name: &str, email: &str) -> Value {
    let mut u = user(user_name);
    u["emails"] = json!([{ "value": email, "type": "work", "primary": true }]);
    u
}

async fn doctor(s: &TestServer, user: Option<&str>) -> Report {
    s.flush_events().await;
    s.service.doctor(&s.tenant, user).await.expect("doctor")
}

/// The error and warning findings, as (code, severity).
fn problems(r: &Report) -> Vec<(&'static str, Severity)> {
    r.findings.iter().filter(|f| f.severity > Severity::Info).map(|f| (f.code, f.severity)).collect()
}

/// The one finding with this code.
fn finding<'r>(r: &'r Report, code: &str) -> &'r Finding {
    let found: Vec<&Finding> = r.findings.iter().filter(|f| f.code == code).collect();
    assert_eq!(found.len(), 1, "exactly one {code} in {:#?}", r.findings);
    found[0]
}

fn fix_mentions(f: &Finding, text: &str) {
    assert!(f.fix.iter().any(|s| s.contains(text)), "a fix step mentions {text:?}: {:#?}", f.fix);
}

#[tokio::test]
async fn a_healthy_tenant_has_no_error_or_warning() {
    let s = TestServer::start().await;
    let c = s.scim();
    for name in ["ann", "ben", "cid"] {
        assert_eq!(create(&c, &user(name)).await.status, 201);
        s.clock.advance(Duration::minutes(5));
    }
    let r = doctor(&s, None).await;
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert_eq!((r.exit_code(), r.status(), r.idp.map(|i| i.as_str())), (0, "healthy", Some("okta")));
    assert_eq!(r.events_examined, 3);

    // The admin API serves the same report.
    let api = s.admin().get(&format!("/tenants/{}/doctor", s.tenant.id)).await;
    assert_eq!(api.status, 200, "{}", api.text);
    assert_eq!((api.body["status"].as_str(), api.body["exit_code"].as_u64()), (Some("healthy"), Some(0)));
    assert_eq!(api.body["findings"], json!([]));
    assert_eq!(api.body["window_days"], 7);
}

#[tokio::test]
async fn a_tenant_nothing_has_reached_yet_is_told_how_to_connect() {
    let s = TestServer::start().await;
    let r = doctor(&s, None).await;
    assert_eq!(problems(&r), vec![]);
    let f = finding(&r, codes::NO_REQUESTS_YET);
    assert_eq!(f.severity, Severity::Info);
    fix_mentions(f, "/scim/v2");
}

// ---- cause 1: not assigned to the SCIM app --------------------------------------------------

#[tokio::test]
async fn cause_1_a_user_no_request_ever_mentioned_is_not_assigned_in_the_idp() {
    let s = TestServer::start().await;
    let c = s.scim();
    assert_eq!(create(&c, &with_email("bob", "bob@corp.com")).await.status, 201);

    let r = doctor(&s, Some("alice@corp.com")).await;
    let f = &r.findings[0];
    assert_eq!((f.code, f.severity), (codes::NEVER_HEARD_OF, Severity::Error));
    assert!(f.title.contains("alice@corp.com") && f.title.contains("not assigned to the SCIM app"), "{}", f.title);
    assert_eq!(f.evidence["user"], "alice@corp.com");
    fix_mentions(f, "Assignments tab");
    assert_eq!(problems(&r), vec![(codes::NEVER_HEARD_OF, Severity::Error)]);
    assert_eq!(r.exit_code(), 2);

    // A user that exists: its state, profile and region; by email as well as by userName.
    for query in ["bob", "BOB@corp.com"] {
        let r = doctor(&s, Some(query)).await;
        let f = &r.findings[0];
        assert_eq!((f.code, f.severity), (codes::USER_FOUND, Severity::Info), "{query}");
        assert_eq!(f.evidence["state"], "active");
        assert_eq!(f.evidence["profile"]["name"], "Default");
        assert_eq!(f.evidence["region"]["name"], "default");
        assert_eq!(f.evidence["recent_requests"][0]["operation"], "create User");
        assert_eq!(r.exit_code(), 0);
    }

    // By externalId (what Okta and Entra ID key users on).
    let mut eve = user("eve");
    eve["externalId"] = json!("00u1abcd");
    assert_eq!(create(&c, &eve).await.status, 201);
    let r = doctor(&s, Some("00u1abcd")).await;
    assert_eq!(
        (r.findings[0].code, r.findings[0].evidence["user"]["userName"].as_str()),
        (codes::USER_FOUND, Some("eve"))
    );
    assert_eq!(
        r.findings[0].evidence["recent_requests"][0]["operation"], "create User",
        "events found by userName too"
    );

    // Looked up by the IdP but never created.
    let lookup = okta(&c, Method::GET, "/Users?filter=userName%20eq%20%22carol%22", None).await;
    assert_eq!(lookup.status, 200);
    let r = doctor(&s, Some("carol")).await;
    assert_eq!((r.findings[0].code, r.findings[0].severity), (codes::USER_NOT_CREATED, Severity::Warning));

    // Entra ID wording for a tenant whose IdP is Entra ID; through the admin API.
    let (beta, token) = s.new_tenant("beta").await;
    let b = s.scim_with(Some(&token));
    let r = b.send(Method::POST, "/Users", Some(&user("dan")), &[("User-Agent", ENTRA)]).await;
    assert_eq!(r.status, 201);
    s.flush_events().await;
    let api = s.admin().get(&format!("/tenants/{}/doctor?user=erin%40beta.com", beta.id)).await;
    assert_eq!(api.status, 200, "{}", api.text);
    assert_eq!(api.body["idp"], "entra_id");
    assert_eq!(api.body["user"], "erin@beta.com");
    assert_eq!(api.body["findings"][0]["code"], "never_heard_of");
    assert!(api.body["findings"][0]["fix"][0].as_str().unwrap().contains("Users and groups"), "{}", api.text);
}

#[tokio::test]
async fn cause_1_an_idp_that_called_regularly_and_went_quiet_has_stalled() {
    let s = TestServer::start().await;
    let c = s.scim();
    // A rhythm: ten contacts ten minutes apart.
    for i in 0..10 {
        assert_eq!(create(&c, &user(&format!("u{i}"))).await.status, 201);
        s.clock.advance(Duration::minutes(10));
    }
    assert_eq!(problems(&doctor(&s, None).await), vec![], "ten minutes of quiet is the usual rhythm");
    s.clock.advance(Duration::hours(3));
    let r = doctor(&s, None).await;
    assert_eq!(problems(&r), vec![(codes::STALLED, Severity::Warning)]);
    let f = finding(&r, codes::STALLED);
    assert_eq!(f.evidence["usual_interval_seconds"], 600);
    assert_eq!(f.evidence["silent_for_seconds"], (3 * 60 + 10) * 60);
    assert_eq!(f.evidence["accepted_in_window"], 10);
    fix_mentions(f, "Dashboard > Tasks");
    assert_eq!(r.exit_code(), 1);
    // The IdP calls again: no longer stalled.
    assert_eq!(okta(&c, Method::GET, "/Users", None).await.status, 200);
    assert_eq!(problems(&doctor(&s, None).await), vec![]);
}

// ---- cause 2: wrong SCIM base URL -----------------------------------------------------------

#[tokio::test]
async fn cause_2_a_wrong_base_url_shows_the_paths_used_and_the_right_one() {
    let s = TestServer::start().await;
    let without_v2 = Client::new(&format!("{}/scim", s.base), Some(&s.token));
    for name in ["amy", "ada"] {
        assert_eq!(create(&without_v2, &user(name)).await.status, 404);
    }
    let r = doctor(&s, None).await;
    assert_eq!(problems(&r), vec![(codes::WRONG_URL, Severity::Error)]);
    let f = finding(&r, codes::WRONG_URL);
    assert_eq!(f.evidence["requests"], 2);
    assert_eq!(f.evidence["paths"][0]["path"], "/scim/Users");
    assert_eq!(f.evidence["paths"][0]["hint"], "the base URL is missing /v2");
    assert_eq!(f.evidence["correct_base_path"], "/scim/v2");
    fix_mentions(f, "SCIM connector base URL");

    // Through the admin API the right base URL is the server's own.
    let api = s.admin().get(&format!("/tenants/{}/doctor", s.tenant.id)).await;
    let wrong = api.body["findings"].as_array().unwrap().iter().find(|f| f["code"] == "wrong_url").cloned();
    let wrong = wrong.expect("wrong_url over the API");
    assert_eq!(wrong["evidence"]["correct_base_url"], format!("{}/scim/v2", s.base));
    assert!(wrong["fix"][0].as_str().unwrap().contains(&format!("{}/scim/v2", s.base)));

    // Once the IdP uses the right URL, the finding is history.
    assert_eq!(create(&s.scim(), &user("amy")).await.status, 201);
    let r = doctor(&s, None).await;
    assert_eq!(problems(&r), vec![]);
    assert_eq!(finding(&r, codes::WRONG_URL).severity, Severity::Info);
}

// ---- cause 3: the token ---------------------------------------------------------------------

#[tokio::test]
async fn cause_3_an_expired_token_still_presented_is_named_with_its_prefix() {
    let s = TestServer::start().await;
    let short = s
        .service
        .issue_token(
            &s.tenant.id,
            TokenRequest { expires_at: Some(s.clock.now() + Duration::hours(1)), ..Default::default() },
        )
        .await
        .unwrap();
    let idp = s.scim_with(Some(&short.secret));
    assert_eq!(okta(&idp, Method::GET, "/Users", None).await.status, 200);
    s.clock.advance(Duration::hours(2));
    assert_eq!(okta(&idp, Method::GET, "/Users", None).await.status, 401);
    // The admin issues a new token in scimd but has not pasted it into the IdP yet.
    let current = s.service.issue_token(&s.tenant.id, TokenRequest::default()).await.unwrap();
    assert_eq!(okta(&idp, Method::GET, "/Users", None).await.status, 401);

    let r = doctor(&s, None).await;
    assert_eq!(problems(&r), vec![(codes::TOKEN_EXPIRED_IN_USE, Severity::Error)]);
    let f = finding(&r, codes::TOKEN_EXPIRED_IN_USE);
    assert!(f.title.contains(&short.record.prefix), "{}", f.title);
    assert_eq!(f.evidence["requests"], 2);
    assert_eq!(f.evidence["tokens"][0]["prefix"], short.record.prefix);
    assert_eq!(f.evidence["tokens"][0]["still_presented"], true);
    assert!(f.evidence["tokens"][0]["expired_at"].is_string());
    assert_eq!(f.evidence["current_token"]["prefix"], current.record.prefix);
    fix_mentions(f, &current.record.prefix);
    fix_mentions(f, "API Token");

    // The new token pasted: the old one is no longer presented.
    assert_eq!(okta(&s.scim_with(Some(&current.secret)), Method::GET, "/Users", None).await.status, 200);
    let r = doctor(&s, None).await;
    assert_eq!(problems(&r), vec![]);
    assert_eq!(finding(&r, codes::TOKEN_EXPIRED_IN_USE).severity, Severity::Info);
}

#[tokio::test]
async fn cause_3_a_replaced_token_still_presented_and_no_valid_token() {
    let s = TestServer::start().await;
    let c = s.scim();
    assert_eq!(okta(&c, Method::GET, "/Users", None).await.status, 200);
    let original = s.service.tokens(&s.tenant.id).await.unwrap().remove(0);
    s.service.issue_token(&s.tenant.id, TokenRequest::default()).await.unwrap();
    assert_eq!(okta(&c, Method::GET, "/Users", None).await.status, 401);
    let r = doctor(&s, None).await;
    assert_eq!(problems(&r), vec![(codes::TOKEN_REVOKED_IN_USE, Severity::Error)]);
    let f = finding(&r, codes::TOKEN_REVOKED_IN_USE);
    assert_eq!(f.evidence["tokens"][0]["prefix"], original.prefix);
    assert!(f.evidence["tokens"][0]["replaced_at"].is_string(), "{:#?}", f.evidence);

    // Every token revoked: nothing can authenticate.
    for t in s.service.tokens(&s.tenant.id).await.unwrap() {
        let _ = s.service.revoke_token(&s.tenant.id, &t.id).await;
    }
    let r = doctor(&s, None).await;
    assert_eq!(
        problems(&r),
        vec![(codes::TOKEN_REVOKED_IN_USE, Severity::Error), (codes::NO_VALID_TOKEN, Severity::Error)]
    );
    fix_mentions(finding(&r, codes::NO_VALID_TOKEN), "scimd token new --tenant acme");
}

#[tokio::test]
async fn cause_3_a_token_expiring_within_30_days_is_a_warning() {
    let s = TestServer::start().await;
    let soon = s
        .service
        .issue_token(
            &s.tenant.id,
            TokenRequest { expires_at: Some(s.clock.now() + Duration::days(10)), ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(create(&s.scim_with(Some(&soon.secret)), &user("ann")).await.status, 201);
    let r = doctor(&s, None).await;
    assert_eq!(problems(&r), vec![(codes::TOKEN_EXPIRING, Severity::Warning)]);
    let f = finding(&r, codes::TOKEN_EXPIRING);
    assert_eq!(f.evidence["prefix"], soon.record.prefix);
    assert_eq!(f.evidence["days_left"], 10);
    fix_mentions(f, "--keep-old-for");
    assert_eq!(r.exit_code(), 1);
}

// ---- cause 4: mappings ----------------------------------------------------------------------

#[tokio::test]
async fn cause_4_no_mapping_matched_names_the_users_and_the_failed_clause() {
    let s = TestServer::start().await;
    let catch_all = s.service.mappings(&s.tenant).await.unwrap().remove(0);
    let off = MappingChange { enabled: Some(false), ..Default::default() };
    s.service.update_mapping(&s.tenant, &catch_all.id, off).await.unwrap();
    let profile = s.service.profiles(&s.tenant).await.unwrap().remove(0);
    let engineers = MappingChange {
        name: Some("Acme engineers".into()),
        filter: Some(Some("title co \"Engineer\"".into())),
        profile_id: Some(profile.id),
        ..Default::default()
    };
    s.service.create_mapping(&s.tenant, engineers).await.unwrap();
    let c = s.scim();
    let mut bob = user("bob");
    bob["title"] = json!("Accountant");
    bob["externalId"] = json!("ext-bob");
    bob["emails"] = json!([{ "value": "bob@acme.example", "type": "work" }]);
    assert_eq!(create(&c, &bob).await.status, 400);

    let r = doctor(&s, None).await;
    // Refused users, and the static check that predicted it.
    assert_eq!(
        problems(&r),
        vec![(codes::NO_MAPPING_MATCHED, Severity::Error), (codes::NO_CATCH_ALL, Severity::Warning)]
    );
    let f = finding(&r, codes::NO_MAPPING_MATCHED);
    assert_eq!(f.evidence["example_subjects"], json!(["bob"]));
    assert_eq!(f.evidence["refused"], 1);
    let detail = f.evidence["detail"].as_str().unwrap();
    assert!(detail.contains("\"Acme engineers\": title co \"Engineer\" (user has \"Accountant\")"), "{detail}");
    fix_mentions(f, "/mappings/dry-run");
    fix_mentions(f, "Provisioning > To App");
    fix_mentions(finding(&r, codes::NO_CATCH_ALL), "Enable the catch-all mapping \"Allow any user\"");

    // The user asked about: refused, with the cause; also when asked about by another
    // identifier the request carried (its email or externalId), not only its userName.
    for name in ["bob", "BOB@acme.example", "ext-bob"] {
        let r = doctor(&s, Some(name)).await;
        assert_eq!(
            (r.findings[0].code, r.findings[0].evidence["cause"].as_str()),
            (codes::USER_REFUSED, Some("no_mapping_matched")),
            "asked about {name}"
        );
    }

    // The IdP sends the attribute the mapping expects: the refusal is settled.
    bob["title"] = json!("Senior Engineer");
    assert_eq!(create(&c, &bob).await.status, 201);
    let r = doctor(&s, None).await;
    assert_eq!(problems(&r), vec![(codes::NO_CATCH_ALL, Severity::Warning)]);
    assert_eq!(finding(&r, codes::NO_MAPPING_MATCHED).severity, Severity::Info);
}

#[tokio::test]
async fn cause_4_static_checks_unreachable_mapping_and_unhealthy_target() {
    let s = TestServer::start().await;
    let profile = s.service.profiles(&s.tenant).await.unwrap().remove(0);
    let late = MappingChange {
        name: Some("Finance".into()),
        priority: Some(2_000_000),
        filter: Some(Some("department eq \"Finance\"".into())),
        profile_id: Some(profile.id.clone()),
        ..Default::default()
    };
    s.service.create_mapping(&s.tenant, late).await.unwrap();
    assert_eq!(create(&s.scim(), &user("ann")).await.status, 201);
    let r = doctor(&s, None).await;
    assert_eq!(problems(&r), vec![(codes::UNREACHABLE_MAPPING, Severity::Warning)]);
    let f = finding(&r, codes::UNREACHABLE_MAPPING);
    assert!(f.title.contains("\"Finance\"") && f.title.contains("\"Allow any user\""), "{}", f.title);
    assert_eq!(f.evidence["unreachable"][0]["priority"], 2_000_000);

    let region = s.service.create_region("eu-south", Health::Degraded).await.unwrap();
    let target = MappingChange {
        name: Some("Italy".into()),
        priority: Some(10),
        filter: Some(Some("addresses.country eq \"IT\"".into())),
        profile_id: Some(profile.id),
        region_id: Some(region.id),
        ..Default::default()
    };
    s.service.create_mapping(&s.tenant, target).await.unwrap();
    let r = doctor(&s, None).await;
    assert_eq!(
        problems(&r),
        vec![(codes::UNREACHABLE_MAPPING, Severity::Warning), (codes::MAPPING_REGION_UNHEALTHY, Severity::Warning)]
    );
    let f = finding(&r, codes::MAPPING_REGION_UNHEALTHY);
    assert_eq!(f.evidence["region"]["name"], "eu-south");
    assert_eq!(f.evidence["mappings"], json!(["Italy"]));
}

// ---- cause 5: profile full ------------------------------------------------------------------

#[tokio::test]
async fn cause_5_a_full_profile_names_the_refused_and_held_users() {
    let s = TestServer::start().await;
    let profile = s.service.create_profile(&s.tenant, "Limited", 1).await.unwrap();
    // The catch-all sends everyone to the limited profile.
    let catch_all = s.service.mappings(&s.tenant).await.unwrap().remove(0);
    let limited = MappingChange { profile_id: Some(profile.id.clone()), ..Default::default() };
    s.service.update_mapping(&s.tenant, &catch_all.id, limited).await.unwrap();
    let c = s.scim();
    assert_eq!(create(&c, &user("one")).await.status, 201);
    // Full, nobody refused yet: predicted.
    assert_eq!(problems(&doctor(&s, None).await), vec![(codes::PROFILE_FULL, Severity::Warning)]);

    assert_eq!(create(&c, &user("two")).await.status, 403);
    let r = doctor(&s, None).await;
    assert_eq!(problems(&r), vec![(codes::PROFILE_FULL, Severity::Error)]);
    let f = finding(&r, codes::PROFILE_FULL);
    assert_eq!(f.evidence["profile"]["name"], "Limited");
    assert_eq!(f.evidence["utilisation_percent"], 100);
    assert_eq!(f.evidence["example_subjects"], json!(["two"]));
    fix_mentions(f, "Raise Max users of profile \"Limited\"");
    fix_mentions(f, "Dashboard > Tasks");

    // Held users count too.
    let hold = TenantSettings { hold: HoldSettings { profile_full: true, ..Default::default() }, ..Default::default() };
    s.service.set_settings(&s.tenant, hold).await.unwrap();
    assert_eq!(create(&c, &user("three")).await.status, 201);
    let r = doctor(&s, Some("three")).await;
    assert_eq!(r.findings[0].evidence["state"], "pending");
    assert_eq!(r.findings[0].evidence["pending_cause"], "profile_full");
    assert_eq!(finding(&r, codes::PROFILE_FULL).evidence["pending_users"]["count"], 1);

    // Room again: the held user is activated; the refused one stands until the IdP retries it.
    s.service.update_profile(&s.tenant, &profile.id, None, Some(10)).await.unwrap();
    let r = doctor(&s, None).await;
    assert_eq!(problems(&r), vec![(codes::PROFILE_FULL, Severity::Error)]);
    assert!(
        finding(&r, codes::PROFILE_FULL).title.contains("has room now"),
        "{}",
        finding(&r, codes::PROFILE_FULL).title
    );
    assert_eq!(create(&c, &user("two")).await.status, 201);
    let r = doctor(&s, None).await;
    assert_eq!(problems(&r), vec![]);

    // Full again (three of three), nobody refused: predicted.
    s.service.update_profile(&s.tenant, &profile.id, None, Some(3)).await.unwrap();
    assert_eq!(problems(&doctor(&s, None).await), vec![(codes::PROFILE_FULL, Severity::Warning)]);
    // At 90 %: predicted.
    s.service.update_profile(&s.tenant, &profile.id, None, Some(10)).await.unwrap();
    for name in ["four", "five", "six", "seven", "eight", "nine"] {
        assert_eq!(create(&c, &user(name)).await.status, 201);
    }
    let r = doctor(&s, None).await;
    assert_eq!(problems(&r), vec![(codes::PROFILE_NEARLY_FULL, Severity::Warning)]);
    assert_eq!(finding(&r, codes::PROFILE_NEARLY_FULL).evidence["utilisation_percent"], 90);
}

// ---- cause 6: email conflicts ---------------------------------------------------------------

#[tokio::test]
async fn cause_6_an_email_in_use_in_this_tenant_names_the_holder() {
    let s = TestServer::start().await;
    let c = s.scim();
    assert_eq!(create(&c, &with_email("a", "same@corp.com")).await.status, 201);
    assert_eq!(create(&c, &with_email("b", "SAME@corp.com")).await.status, 409);
    let r = doctor(&s, None).await;
    assert_eq!(problems(&r), vec![(codes::EMAIL_IN_USE_IN_TENANT, Severity::Error)]);
    let f = finding(&r, codes::EMAIL_IN_USE_IN_TENANT);
    assert_eq!(f.evidence["example_subjects"], json!(["b"]));
    assert_eq!(f.evidence["requests"], 1);
    assert_eq!(f.evidence["emails"][0]["email"], "same@corp.com");
    assert_eq!(f.evidence["emails"][0]["held_by"]["userName"], "a");
    fix_mentions(f, "different email");
}

#[tokio::test]
async fn cause_6_an_email_held_by_a_preserved_user_links_restore_and_purge() {
    let s = TestServer::start().await;
    let c = s.scim();
    let old = create(&c, &with_email("old", "back@corp.com")).await;
    let old_id = old.body["id"].as_str().unwrap().to_owned();
    let eve = create(&c, &with_email("eve", "eve@corp.com")).await;
    let eve_id = eve.body["id"].as_str().unwrap().to_owned();
    let off = json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "replace", "value": { "active": false } }] });
    assert_eq!(okta(&c, Method::PATCH, &format!("/Users/{old_id}"), Some(&off)).await.status, 200);
    // Another user of the tenant is given the preserved user's email.
    let taken = okta(&c, Method::PUT, &format!("/Users/{eve_id}"), Some(&with_email("eve", "back@corp.com"))).await;
    assert_eq!(taken.status, 409, "{}", taken.text);
    let r = doctor(&s, None).await;
    assert_eq!(problems(&r), vec![(codes::EMAIL_HELD_BY_PRESERVED_USER, Severity::Error)]);
    let f = finding(&r, codes::EMAIL_HELD_BY_PRESERVED_USER);
    let holder = &f.evidence["emails"][0];
    assert_eq!(
        (holder["held_by"]["id"].as_str(), holder["held_by"]["state"].as_str()),
        (Some(old_id.as_str()), Some("preserved"))
    );
    assert_eq!(holder["purge"], format!("DELETE /admin/api/v1/tenants/{}/users/{old_id}", s.tenant.id));
    assert_eq!(f.evidence["example_subjects"], json!(["eve"]));
    fix_mentions(f, "purge");
}

#[tokio::test]
async fn cause_6_an_email_in_use_elsewhere_reveals_nothing_about_the_other_tenant() {
    let s = TestServer::start().await;
    let (other, token) = s.new_tenant("othercorp").await;
    let theirs = create(&s.scim_with(Some(&token)), &with_email("Secret.Owner", "shared@corp.com")).await;
    assert_eq!(theirs.status, 201);
    let their_id = theirs.body["id"].as_str().unwrap().to_owned();
    assert_eq!(create(&s.scim(), &with_email("mine", "shared@corp.com")).await.status, 409);
    let r = doctor(&s, None).await;
    assert_eq!(problems(&r), vec![(codes::EMAIL_IN_USE_ELSEWHERE, Severity::Error)]);
    let f = finding(&r, codes::EMAIL_IN_USE_ELSEWHERE);
    assert_eq!(f.evidence["emails"], json!(["shared@corp.com"]));
    assert_eq!(f.evidence["example_subjects"], json!(["mine"]));
    fix_mentions(f, "operator");
    let everything = serde_json::to_string(&r).unwrap();
    for secret in [other.id.as_str(), "othercorp", their_id.as_str(), "Secret.Owner", "secret.owner"] {
        assert!(!everything.contains(secret), "the report leaks {secret}");
    }
}

// ---- cause 7: storage region ----------------------------------------------------------------

#[tokio::test]
async fn cause_7_an_unhealthy_region_names_the_refused_and_held_users() {
    let s = TestServer::start().await;
    let region = s.service.default_region().await.unwrap();
    s.service.set_region_health(&region.id, Health::Down).await.unwrap();
    let c = s.scim();
    // Predicted before anyone is refused.
    assert_eq!(problems(&doctor(&s, None).await), vec![(codes::MAPPING_REGION_UNHEALTHY, Severity::Warning)]);

    assert_eq!(create(&c, &user("carol")).await.status, 503);
    let r = doctor(&s, None).await;
    assert_eq!(problems(&r), vec![(codes::REGION_UNHEALTHY, Severity::Error)]);
    let f = finding(&r, codes::REGION_UNHEALTHY);
    assert_eq!(
        (f.evidence["region"]["name"].as_str(), f.evidence["region"]["health"].as_str()),
        (Some("default"), Some("down"))
    );
    assert_eq!(f.evidence["example_subjects"], json!(["carol"]));
    fix_mentions(f, "Retry-After");

    let hold =
        TenantSettings { hold: HoldSettings { region_unhealthy: true, ..Default::default() }, ..Default::default() };
    s.service.set_settings(&s.tenant, hold).await.unwrap();
    assert_eq!(create(&c, &user("dave")).await.status, 201);
    let r = doctor(&s, None).await;
    assert_eq!(finding(&r, codes::REGION_UNHEALTHY).evidence["pending_users"]["count"], 1);

    // Healthy again: the held user is activated and the IdP's retry succeeds.
    s.service.set_region_health(&region.id, Health::Healthy).await.unwrap();
    assert_eq!(create(&c, &user("carol")).await.status, 201);
    let r = doctor(&s, None).await;
    assert_eq!(problems(&r), vec![]);
    assert_eq!(finding(&r, codes::REGION_UNHEALTHY).severity, Severity::Info);
    assert_eq!(doctor(&s, Some("dave")).await.findings[0].evidence["state"], "active");
}

// ---- the admin API --------------------------------------------------------------------------

#[tokio::test]
async fn the_admin_api_validates_its_parameters_and_is_documented() {
    let s = TestServer::start().await;
    let admin = s.admin();
    let path = format!("/tenants/{}/doctor", s.tenant.id);
    assert_eq!(admin.get(&format!("{path}?days=30")).await.body["window_days"], 30);
    for bad in ["?days=0", "?days=366", "?days=week", "?usr=alice"] {
        let r = admin.get(&format!("{path}{bad}")).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (400, Some("invalid_request")), "{bad}: {}", r.text);
    }
    assert_eq!(admin.get("/tenants/no-such-tenant/doctor").await.status, 404);
    assert_eq!(Client::new(&format!("{}/admin/api/v1", s.base), None).get(&path).await.status, 401);
    let doc = Client::new(&format!("{}/admin/api/v1", s.base), None).get("/openapi.json").await.body;
    assert_eq!(doc["paths"]["/tenants/{id}/doctor"]["get"]["operationId"], "tenantDoctor");
    let documented = doc["components"]["schemas"]["Finding"]["properties"]["code"]["enum"].clone();
    assert_eq!(documented, json!(codes::ALL), "every finding code is documented");
}

#[tokio::test]
async fn changes_pushed_now_and_then_are_no_rhythm_and_quiet_is_not_a_stall() {
    let s = TestServer::start().await;
    let c = s.scim();
    // Three changes an hour apart, then a long quiet day: how an IdP that pushes only changes looks.
    for i in 0..3 {
        assert_eq!(create(&c, &user(&format!("change{i}"))).await.status, 201);
        s.clock.advance(Duration::hours(1));
    }
    s.clock.advance(Duration::hours(20));
    assert_eq!(problems(&doctor(&s, None).await), vec![]);
    // A week with no request at all is worth knowing, not a warning.
    s.clock.advance(Duration::days(8));
    let r = doctor(&s, None).await;
    assert_eq!(problems(&r), vec![]);
    assert_eq!(finding(&r, codes::STALLED).severity, Severity::Info);
}
