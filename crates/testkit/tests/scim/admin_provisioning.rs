//! The admin API's provisioning endpoints: regions, profiles, mappings (with dry run), tenant
//! settings, and administrator preserve / restore; their validation, and tenant isolation.

use scimd_testkit::{Client, Response, TestServer};
use serde_json::{Value, json};

use crate::support::{assert_scim_error, patch_op, user};

const PROVISIONING: &str = "urn:scimd:params:scim:schemas:extension:provisioning:1.0:User";

/// Asserts an admin error: status, stable code, and a message containing `says`.
fn assert_admin_error(r: &Response, status: u16, code: &str, says: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.body["error"]["code"], code, "{}", r.text);
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(says), "the message should contain {says:?}: {message}");
}

fn id(r: &Response) -> String {
    r.body["id"].as_str().unwrap_or_else(|| panic!("an id in {}", r.text)).to_owned()
}

/// The tenant's catch-all mapping and default profile, as every new tenant has them.
async fn starting_rules(a: &Client, tenant: &str) -> (Value, Value) {
    let mappings = a.get(&format!("/tenants/{tenant}/mappings")).await;
    assert_eq!(mappings.status, 200, "{}", mappings.text);
    let profiles = a.get(&format!("/tenants/{tenant}/profiles")).await;
    assert_eq!(profiles.status, 200, "{}", profiles.text);
    (mappings.body["mappings"][0].clone(), profiles.body["profiles"][0].clone())
}

/// Each user's provisioning state, read over SCIM as the IdP would.
async fn states(c: &Client, user_names: &[&str]) -> Vec<String> {
    let r = c.get(&format!("/Users?count=100&attributes=userName,{PROVISIONING}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let resources = r.body["Resources"].as_array().cloned().unwrap_or_default();
    user_names
        .iter()
        .map(|name| {
            let u = resources.iter().find(|u| u["userName"] == *name).unwrap_or(&Value::Null);
            u[PROVISIONING]["state"].as_str().unwrap_or("absent").to_owned()
        })
        .collect()
}

#[tokio::test]
async fn regions_round_trip_with_validation() {
    let s = TestServer::start().await;
    let a = s.admin();
    let list = a.get("/regions").await;
    assert_eq!(list.status, 200, "{}", list.text);
    let default_id = list.body["default_region_id"].as_str().unwrap().to_owned();
    assert_eq!(list.body["regions"][0]["name"], "default");
    assert_eq!(list.body["regions"][0]["default"], true);

    let created = a.post("/regions", &json!({ "name": "eu-west" })).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["health"], "healthy", "healthy unless said otherwise");
    assert_eq!(created.body["default"], false);
    let eu = id(&created);
    assert_eq!(a.get(&format!("/regions/{eu}")).await.body["name"], "eu-west");

    assert_admin_error(&a.post("/regions", &json!({ "name": "eu-west" })).await, 409, "conflict", "eu-west");
    assert_admin_error(&a.post("/regions", &json!({ "name": "  " })).await, 400, "invalid_request", "not blank");
    assert_admin_error(&a.post("/regions", &json!({})).await, 400, "invalid_request", "\"name\"");
    let bad = a.post("/regions", &json!({ "name": "us", "health": "sideways" })).await;
    assert_admin_error(&bad, 400, "invalid_request", "healthy, degraded, down");
    assert_admin_error(
        &a.post("/regions", &json!({ "name": "us", "helth": "down" })).await,
        400,
        "invalid_request",
        "helth",
    );
    assert_admin_error(&a.get("/regions/no-such-region").await, 404, "not_found", "no-such-region");

    let r = a.patch(&format!("/regions/{eu}"), &json!({ "name": "eu-central", "health": "degraded" })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.body["name"].as_str(), r.body["health"].as_str()), (Some("eu-central"), Some("degraded")));
    let r = a
        .patch(
            &format!("/regions/{eu}"),
            &json!({ "probe_url": "http://probe.internal/health", "probe_interval_seconds": 60 }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (r.body["probe_url"].as_str(), r.body["probe_interval_seconds"].as_u64()),
        (Some("http://probe.internal/health"), Some(60))
    );
    // A refused field refuses the whole change: the name sent with it is not applied either.
    let r = a.patch(&format!("/regions/{eu}"), &json!({ "name": "renamed", "probe_interval_seconds": 1 })).await;
    assert_admin_error(&r, 400, "invalid_request", "probe_interval_seconds");
    let r = a.patch(&format!("/regions/{eu}"), &json!({ "name": "renamed", "probe_url": "ftp://x" })).await;
    assert_admin_error(&r, 400, "invalid_request", "probe_url");
    assert_admin_error(
        &a.patch(&format!("/regions/{eu}"), &json!({ "health": "sick" })).await,
        400,
        "invalid_request",
        "health",
    );
    assert_admin_error(
        &a.patch(&format!("/regions/{eu}"), &json!({ "name": "default" })).await,
        409,
        "conflict",
        "default",
    );
    let r = a.get(&format!("/regions/{eu}")).await;
    assert_eq!(
        (r.body["name"].as_str(), r.body["health"].as_str()),
        (Some("eu-central"), Some("degraded")),
        "nothing changed"
    );
    let r = a.patch(&format!("/regions/{eu}"), &json!({ "probe_url": null })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["probe_url"].is_null() && r.body["probe_interval_seconds"].is_null(), "{}", r.text);
    assert_admin_error(&a.patch("/regions/no-such-region", &json!({ "health": "down" })).await, 404, "not_found", "");

    // The default region: what new tenants' catch-all mapping points to.
    assert_eq!(a.get("/regions/default").await.body["id"], default_id.as_str());
    let r = a.put("/regions/default", &json!({ "region_id": "no-such-region" })).await;
    assert_admin_error(&r, 400, "invalid_request", "region_id");
    let r = a.put("/regions/default", &json!({ "region_id": eu })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["default"], true);
    let list = a.get("/regions").await;
    assert_eq!(list.body["default_region_id"], eu.as_str());
    let tenant = id(&a.post("/tenants", &json!({ "name": "later" })).await);
    let (catch_all, _) = starting_rules(&a, &tenant).await;
    assert_eq!(catch_all["region_id"], eu.as_str(), "a tenant created now maps to the new default");
    let (catch_all, _) = starting_rules(&a, &s.tenant.id).await;
    assert_eq!(catch_all["region_id"], default_id.as_str(), "existing tenants keep theirs");

    let scim_token = Client::new(&format!("{}/admin/api/v1", s.base), Some(&s.token));
    assert_eq!(scim_token.get("/regions").await.status, 401, "a SCIM token is not the operator's");
}

#[tokio::test]
async fn a_region_made_healthy_by_patch_activates_the_users_held_for_it() {
    let s = TestServer::start().await;
    let a = s.admin();
    let region = a.get("/regions/default").await.body["id"].as_str().unwrap().to_owned();
    let settings = json!({ "hold": { "region_unhealthy": true } });
    assert_eq!(a.put(&format!("/tenants/{}/settings", s.tenant.id), &settings).await.status, 200);
    assert_eq!(a.patch(&format!("/regions/{region}"), &json!({ "health": "down" })).await.body["health"], "down");
    let c = s.scim();
    assert_eq!(c.post("/Users", &user("held")).await.status, 201);
    assert_eq!(states(&c, &["held"]).await, ["pending"]);
    assert_eq!(a.patch(&format!("/regions/{region}"), &json!({ "health": "healthy" })).await.status, 200);
    assert_eq!(states(&c, &["held"]).await, ["active"]);
}

#[tokio::test]
async fn profiles_round_trip_with_usage() {
    let s = TestServer::start().await;
    let a = s.admin();
    let base = format!("/tenants/{}/profiles", s.tenant.id);
    let (_, default) = starting_rules(&a, &s.tenant.id).await;
    assert_eq!((default["name"].as_str(), default["max_users"].as_u64()), (Some("Default"), Some(0)));
    assert!(default["utilisation"].is_null(), "unlimited has no utilisation: {default}");
    crate::support::create_user(&s.scim(), "counted").await;
    let default_id = default["id"].as_str().unwrap();
    let r = a.get(&format!("{base}/{default_id}")).await;
    assert_eq!((r.body["active_users"].as_u64(), r.body["utilisation"].is_null()), (Some(1), true), "{}", r.text);

    let gold = a.post(&base, &json!({ "name": "Gold", "max_users": 4 })).await;
    assert_eq!(gold.status, 201, "{}", gold.text);
    assert_eq!((gold.body["active_users"].as_u64(), gold.body["utilisation"].as_f64()), (Some(0), Some(0.0)));
    let gold = id(&gold);
    assert_admin_error(&a.post(&base, &json!({ "name": "Gold", "max_users": 1 })).await, 409, "conflict", "Gold");
    assert_admin_error(
        &a.post(&base, &json!({ "name": "", "max_users": 1 })).await,
        400,
        "invalid_request",
        "not blank",
    );
    assert_admin_error(&a.post(&base, &json!({ "name": "Silver" })).await, 400, "invalid_request", "max_users");
    let r = a.post(&base, &json!({ "name": "Silver", "max_users": -1 })).await;
    assert_admin_error(&r, 400, "invalid_request", "0 for unlimited");
    assert_admin_error(
        &a.post(&base, &json!({ "name": "Silver", "max_users": 1, "seats": 2 })).await,
        400,
        "invalid_request",
        "seats",
    );

    // Users mapped to Gold take its seats; utilisation follows.
    let mapping = json!({ "name": "to gold", "priority": 1, "profile_id": gold });
    assert_eq!(a.post(&format!("/tenants/{}/mappings", s.tenant.id), &mapping).await.status, 201);
    crate::support::create_user(&s.scim(), "golden").await;
    let r = a.get(&format!("{base}/{gold}")).await;
    assert_eq!((r.body["active_users"].as_u64(), r.body["utilisation"].as_f64()), (Some(1), Some(0.25)), "{}", r.text);

    let r = a.patch(&format!("{base}/{gold}"), &json!({ "name": "Platinum", "max_users": 2 })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.body["name"].as_str(), r.body["utilisation"].as_f64()), (Some("Platinum"), Some(0.5)));
    assert_admin_error(
        &a.patch(&format!("{base}/{gold}"), &json!({ "name": "Default" })).await,
        409,
        "conflict",
        "Default",
    );
    assert_admin_error(
        &a.patch(&format!("{base}/{gold}"), &json!({ "max_users": "many" })).await,
        400,
        "invalid_request",
        "max_users",
    );
    let list = a.get(&base).await;
    let names: Vec<&str> =
        list.body["profiles"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["Default", "Platinum"], "{}", list.text);

    assert_admin_error(&a.get(&format!("{base}/no-such-profile")).await, 404, "not_found", "no-such-profile");
    assert_admin_error(
        &a.patch(&format!("{base}/no-such-profile"), &json!({ "max_users": 1 })).await,
        404,
        "not_found",
        "",
    );
    // A profile in use cannot go; the answer says what still uses it.
    let r = a.delete(&format!("{base}/{gold}")).await;
    assert_admin_error(&r, 409, "conflict", "\"to gold\"");
    assert_admin_error(&a.delete(&format!("{base}/no-such-profile")).await, 404, "not_found", "");
    let spare = a.post(&base, &json!({ "name": "Spare", "max_users": 3 })).await;
    let spare = spare.body["id"].as_str().unwrap().to_owned();
    assert_eq!(a.delete(&format!("{base}/{spare}")).await.status, 204, "an unused profile is deleted");
    assert_admin_error(&a.get(&format!("{base}/{spare}")).await, 404, "not_found", "");
    assert_admin_error(&a.get("/tenants/no-such-tenant/profiles").await, 404, "not_found", "no-such-tenant");
}

#[tokio::test]
async fn mappings_round_trip_reorder_and_validation() {
    let s = TestServer::start().await;
    let a = s.admin();
    let base = format!("/tenants/{}/mappings", s.tenant.id);
    let (catch_all, profile) = starting_rules(&a, &s.tenant.id).await;
    let (catch_all, profile) =
        (catch_all["id"].as_str().unwrap().to_owned(), profile["id"].as_str().unwrap().to_owned());
    let default_region = a.get("/regions/default").await.body["id"].as_str().unwrap().to_owned();

    let finance = json!({
        "name": "finance",
        "priority": 10,
        "filter": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"Finance\"",
        "profile_id": profile,
    });
    let created = a.post(&base, &finance).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["region_id"], default_region.as_str(), "the default region when none is named");
    assert_eq!(created.body["enabled"], true);
    let finance_id = id(&created);
    assert_eq!(a.get(&format!("{base}/{finance_id}")).await.body["name"], "finance");
    let order = |r: &Response| -> Vec<String> {
        r.body["mappings"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(order(&a.get(&base).await), ["finance", "Allow any user"]);

    // A bad condition is refused with where and why.
    let r = a.post(&base, &json!({ "name": "broken", "filter": "department eq Finance", "profile_id": profile })).await;
    assert_admin_error(&r, 400, "invalid_request", "position 15");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("quoted"), "{}", r.text);
    let r = a.post(&base, &json!({ "name": "x", "profile_id": "no-such-profile" })).await;
    assert_admin_error(&r, 400, "invalid_request", "\"profile_id\"");
    let r = a.post(&base, &json!({ "name": "x", "profile_id": profile, "region_id": "no-such-region" })).await;
    assert_admin_error(&r, 400, "invalid_request", "\"region_id\"");
    assert_admin_error(&a.post(&base, &json!({ "profile_id": profile })).await, 400, "invalid_request", "\"name\"");
    assert_admin_error(&a.post(&base, &json!({ "name": "x" })).await, 400, "invalid_request", "\"profile_id\"");
    assert_admin_error(
        &a.post(&base, &json!({ "name": " ", "profile_id": profile })).await,
        400,
        "invalid_request",
        "not blank",
    );
    let r = a.post(&base, &json!({ "name": "x", "profile_id": profile, "priority": "first" })).await;
    assert_admin_error(&r, 400, "invalid_request", "priority");
    assert_admin_error(
        &a.post(&base, &json!({ "name": "x", "profile_id": profile, "filtr": "a pr" })).await,
        400,
        "invalid_request",
        "filtr",
    );
    assert_eq!(order(&a.get(&base).await).len(), 2, "nothing was created");

    // Reorder: the catch-all moves ahead of finance.
    let r = a.patch(&format!("{base}/{catch_all}"), &json!({ "priority": 5 })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(order(&a.get(&base).await), ["Allow any user", "finance"]);
    let r = a.patch(&format!("{base}/{finance_id}"), &json!({ "filter": "title eq" })).await;
    assert_admin_error(&r, 400, "invalid_request", "position");
    let r = a.patch(&format!("{base}/{finance_id}"), &json!({ "region_id": "no-such-region" })).await;
    assert_admin_error(&r, 400, "invalid_request", "\"region_id\"");
    assert!(
        a.get(&format!("{base}/{finance_id}")).await.body["filter"].as_str().unwrap().contains("Finance"),
        "unchanged"
    );
    let r =
        a.patch(&format!("{base}/{finance_id}"), &json!({ "filter": null, "enabled": false, "name": "anyone" })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["filter"].is_null() && r.body["enabled"] == false && r.body["name"] == "anyone", "{}", r.text);

    assert_eq!(a.delete(&format!("{base}/{finance_id}")).await.status, 204);
    assert_admin_error(&a.get(&format!("{base}/{finance_id}")).await, 404, "not_found", "");
    assert_admin_error(&a.delete(&format!("{base}/{finance_id}")).await, 404, "not_found", "");
    assert_admin_error(
        &a.patch(&format!("{base}/{finance_id}"), &json!({ "priority": 1 })).await,
        404,
        "not_found",
        "",
    );
    assert_eq!(order(&a.get(&base).await), ["Allow any user"]);
}

#[tokio::test]
async fn dry_run_returns_where_the_user_lands_and_the_trace() {
    let s = TestServer::start().await;
    let a = s.admin();
    let base = format!("/tenants/{}/mappings", s.tenant.id);
    let (catch_all, profile) = starting_rules(&a, &s.tenant.id).await;
    let finance = json!({
        "name": "finance",
        "priority": 1,
        "filter": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"Finance\"",
        "profile_id": profile["id"],
    });
    assert_eq!(a.post(&base, &finance).await.status, 201);
    let mut u = user("hana");
    u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] = json!({ "department": "Sales" });
    let r = a.post(&format!("{base}/dry-run"), &u).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["mapping"]["name"], "Allow any user");
    assert_eq!(r.body["profile_id"], catch_all["profile_id"]);
    assert_eq!(r.body["region_id"], catch_all["region_id"]);
    assert_eq!(r.body["trace"][0]["name"], "finance");
    assert_eq!(r.body["trace"][0]["result"], "failed");
    assert_eq!(r.body["trace"][0]["failed"][0]["actual"], json!(["Sales"]));
    assert_eq!(r.body["trace"][1]["result"], "matched");

    let catch_all_id = catch_all["id"].as_str().unwrap();
    assert_eq!(a.patch(&format!("{base}/{catch_all_id}"), &json!({ "enabled": false })).await.status, 200);
    let r = a.post(&format!("{base}/dry-run"), &u).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.body["mapping"].is_null() && r.body["profile_id"].is_null() && r.body["region_id"].is_null(),
        "{}",
        r.text
    );
    assert_eq!(r.body["trace"][1]["result"], "disabled");
    assert_eq!(s.scim().get("/Users?count=0").await.body["totalResults"], 0, "a dry run writes nothing");

    assert_admin_error(
        &a.post(&format!("{base}/dry-run"), &json!(["not", "a", "user"])).await,
        400,
        "invalid_request",
        "",
    );
    assert_admin_error(&a.post("/tenants/no-such-tenant/mappings/dry-run", &u).await, 404, "not_found", "");
}

#[tokio::test]
async fn settings_round_trip_and_unknown_fields_are_refused() {
    let s = TestServer::start().await;
    let a = s.admin();
    let path = format!("/tenants/{}/settings", s.tenant.id);
    let defaults = json!({
        "hold": { "no_mapping_matched": false, "profile_full": false, "region_unhealthy": false },
        "delete_policy": "preserve",
        "remap_on_update": false,
    });
    assert_eq!(a.get(&path).await.body, defaults);
    let r = a.put(&path, &json!({ "hold": { "profile_full": true }, "delete_policy": "purge" })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let expected = json!({
        "hold": { "no_mapping_matched": false, "profile_full": true, "region_unhealthy": false },
        "delete_policy": "purge",
        "remap_on_update": false,
    });
    assert_eq!(r.body, expected, "omitted fields take their defaults");
    assert_eq!(a.get(&path).await.body, expected);

    assert_admin_error(
        &a.put(&path, &json!({ "remap_on_updte": true })).await,
        400,
        "invalid_request",
        "remap_on_updte",
    );
    assert_admin_error(
        &a.put(&path, &json!({ "hold": { "profile_ful": true } })).await,
        400,
        "invalid_request",
        "profile_ful",
    );
    assert_admin_error(&a.put(&path, &json!({ "delete_policy": "shred" })).await, 400, "invalid_request", "shred");
    assert_admin_error(&a.put(&path, &json!([])).await, 400, "invalid_request", "object");
    assert_eq!(a.get(&path).await.body, expected, "refused changes change nothing");
    assert_admin_error(&a.get("/tenants/no-such-tenant/settings").await, 404, "not_found", "");
}

#[tokio::test]
async fn preserve_and_restore_through_the_api() {
    let s = TestServer::start().await;
    let a = s.admin();
    let c = s.scim();
    let uid = crate::support::create_user(&c, "frank").await;
    let users = format!("/tenants/{}/users", s.tenant.id);

    let r = a.post(&format!("{users}/{uid}/preserve"), &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (&r.body["id"], &r.body["state"], &r.body["preserved_by"]),
        (&json!(uid), &json!("preserved"), &json!("admin"))
    );
    assert_eq!(r.body["user_name"], "frank");
    assert_eq!(c.get(&format!("/Users/{uid}")).await.body["active"], false);
    let (_, profile) = starting_rules(&a, &s.tenant.id).await;
    assert_eq!(profile["active_users"], 0, "the seat is released");

    let reactivate = patch_op(json!([{ "op": "replace", "path": "active", "value": true }]));
    let r = c.patch(&format!("/Users/{uid}"), &reactivate).await;
    assert_scim_error(&r, 403, None);
    assert!(r.body["detail"].as_str().unwrap().contains("preserved by an administrator"), "{}", r.text);
    assert_eq!(c.get(&format!("/Users/{uid}")).await.body["active"], false, "the refusal changed nothing");

    let r = a.post(&format!("{users}/{uid}/restore"), &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((&r.body["state"], &r.body["preserved_by"]), (&json!("active"), &Value::Null), "{}", r.text);
    assert_eq!(c.get(&format!("/Users/{uid}")).await.body["active"], true);
    // Restored: the IdP manages the user again.
    let deactivate = patch_op(json!([{ "op": "replace", "path": "active", "value": false }]));
    assert_eq!(c.patch(&format!("/Users/{uid}"), &deactivate).await.status, 200);
    assert_eq!(c.patch(&format!("/Users/{uid}"), &reactivate).await.status, 200);

    assert_admin_error(&a.post(&format!("{users}/no-such-user/preserve"), &json!({})).await, 404, "not_found", "");
    assert_admin_error(&a.post(&format!("{users}/no-such-user/restore"), &json!({})).await, 404, "not_found", "");
    assert_admin_error(&a.get(&format!("{users}/{uid}/preserve")).await, 405, "method_not_allowed", "GET");
}

#[tokio::test]
async fn another_tenants_ids_are_not_found_under_this_tenant() {
    let s = TestServer::start().await;
    let a = s.admin();
    let (other, token_b) = s.new_tenant("beta").await;
    let (b_mapping, b_profile) = starting_rules(&a, &other.id).await;
    let (b_mapping, b_profile) = (b_mapping["id"].as_str().unwrap(), b_profile["id"].as_str().unwrap());
    let b_user = crate::support::create_user(&s.scim_with(Some(&token_b)), "beta.user").await;
    let mine = format!("/tenants/{}", s.tenant.id);

    assert_admin_error(&a.get(&format!("{mine}/profiles/{b_profile}")).await, 404, "not_found", "");
    assert_admin_error(
        &a.patch(&format!("{mine}/profiles/{b_profile}"), &json!({ "max_users": 1 })).await,
        404,
        "not_found",
        "",
    );
    assert_admin_error(&a.delete(&format!("{mine}/profiles/{b_profile}")).await, 404, "not_found", "");
    assert_admin_error(&a.get(&format!("{mine}/mappings/{b_mapping}")).await, 404, "not_found", "");
    assert_admin_error(
        &a.patch(&format!("{mine}/mappings/{b_mapping}"), &json!({ "enabled": false })).await,
        404,
        "not_found",
        "",
    );
    assert_admin_error(&a.delete(&format!("{mine}/mappings/{b_mapping}")).await, 404, "not_found", "");
    assert_admin_error(&a.post(&format!("{mine}/users/{b_user}/preserve"), &json!({})).await, 404, "not_found", "");
    assert_admin_error(&a.post(&format!("{mine}/users/{b_user}/restore"), &json!({})).await, 404, "not_found", "");
    // Nor can this tenant's mappings point at the other tenant's profile.
    let r = a.post(&format!("{mine}/mappings"), &json!({ "name": "steal", "profile_id": b_profile })).await;
    assert_admin_error(&r, 400, "invalid_request", "\"profile_id\"");
    let (my_mapping, _) = starting_rules(&a, &s.tenant.id).await;
    let my_mapping = my_mapping["id"].as_str().unwrap();
    let r = a.patch(&format!("{mine}/mappings/{my_mapping}"), &json!({ "profile_id": b_profile })).await;
    assert_admin_error(&r, 400, "invalid_request", "\"profile_id\"");

    // Tenant B is untouched.
    let r = a.get(&format!("/tenants/{}/mappings/{b_mapping}", other.id)).await;
    assert_eq!((r.status, &r.body["enabled"]), (200, &json!(true)), "{}", r.text);
    let r = a.get(&format!("/tenants/{}/profiles/{b_profile}", other.id)).await;
    assert_eq!((r.body["max_users"].as_u64(), r.body["active_users"].as_u64()), (Some(0), Some(1)), "{}", r.text);
    let r = s.scim_with(Some(&token_b)).get(&format!("/Users/{b_user}")).await;
    assert_eq!(r.body["active"], true);
}

#[tokio::test]
async fn raising_max_users_activates_pending_users_in_arrival_order() {
    let s = TestServer::start().await;
    let a = s.admin();
    let t = format!("/tenants/{}", s.tenant.id);
    let limited = id(&a.post(&format!("{t}/profiles"), &json!({ "name": "Limited", "max_users": 1 })).await);
    let mapping = json!({ "name": "everyone limited", "priority": 1, "profile_id": limited });
    assert_eq!(a.post(&format!("{t}/mappings"), &mapping).await.status, 201);
    assert_eq!(a.put(&format!("{t}/settings"), &json!({ "hold": { "profile_full": true } })).await.status, 200);
    let c = s.scim();
    for name in ["u0", "u1", "u2"] {
        let r = c.post("/Users", &user(name)).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    assert_eq!(states(&c, &["u0", "u1", "u2"]).await, ["active", "pending", "pending"]);

    let r = a.patch(&format!("{t}/profiles/{limited}"), &json!({ "max_users": 2 })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        states(&c, &["u0", "u1", "u2"]).await,
        ["active", "active", "pending"],
        "oldest first, never above the limit"
    );
    let r = a.get(&format!("{t}/profiles/{limited}")).await;
    assert_eq!((r.body["active_users"].as_u64(), r.body["utilisation"].as_f64()), (Some(2), Some(1.0)), "{}", r.text);
}

#[tokio::test]
async fn openapi_documents_the_provisioning_endpoints_and_every_ref_resolves() {
    let s = TestServer::start().await;
    let doc = Client::new(&format!("{}/admin/api/v1", s.base), None).get("/openapi.json").await.body;
    let expected: &[(&str, &[&str])] = &[
        ("/regions", &["get", "post"]),
        ("/regions/default", &["get", "put"]),
        ("/regions/{region_id}", &["get", "patch"]),
        ("/tenants/{id}/profiles", &["get", "post"]),
        ("/tenants/{id}/profiles/{profile_id}", &["get", "patch", "delete"]),
        ("/tenants/{id}/mappings", &["get", "post"]),
        ("/tenants/{id}/mappings/dry-run", &["post"]),
        ("/tenants/{id}/mappings/{mapping_id}", &["get", "patch", "delete"]),
        ("/tenants/{id}/settings", &["get", "put"]),
        ("/tenants/{id}/users/{user_id}/preserve", &["post"]),
        ("/tenants/{id}/users/{user_id}/restore", &["post"]),
    ];
    for (path, methods) in expected {
        for method in *methods {
            let op = &doc["paths"][path][method];
            assert!(op["operationId"].is_string(), "{method} {path} documented");
            assert!(op["responses"]["401"].is_object(), "{method} {path} documents the operator token");
        }
    }
    fn refs<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("a local $ref: {r}"));
        assert!(doc.pointer(pointer).is_some(), "{r} resolves");
    }
}

#[tokio::test]
async fn a_profile_with_users_cannot_be_deleted() {
    let s = TestServer::start().await;
    let a = s.admin();
    let base = format!("/tenants/{}/profiles", s.tenant.id);
    let default = s.service.profiles(&s.tenant).await.unwrap().remove(0);
    // Users are in the Default profile; retarget the catch-all so no mapping points at it.
    let other =
        a.post(&base, &json!({ "name": "Other", "max_users": 0 })).await.body["id"].as_str().unwrap().to_owned();
    assert_eq!(s.scim().post("/Users", &crate::support::user("kept")).await.status, 201);
    let catch_all = s.service.mappings(&s.tenant).await.unwrap().remove(0);
    let r =
        a.patch(&format!("/tenants/{}/mappings/{}", s.tenant.id, catch_all.id), &json!({ "profile_id": other })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = a.delete(&format!("{base}/{}", default.id)).await;
    assert_admin_error(&r, 409, "conflict", "still has users");
}

#[tokio::test]
async fn users_created_by_hand_and_tenant_regions_through_the_api() {
    let s = TestServer::start().await;
    let a = s.admin();
    let r = a
        .post(
            &format!("/tenants/{}/users", s.tenant.id),
            &json!({ "userName": "hand.made", "emails": [{ "value": "hand@corp.com" }] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["managed_by"], "admin");
    assert_eq!(r.body["state"], "active");
    let bad = a.post(&format!("/tenants/{}/users", s.tenant.id), &json!({ "displayName": "no userName" })).await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    let found = s.scim().get("/Users?filter=userName%20eq%20%22hand.made%22").await;
    assert_eq!(found.body["totalResults"], 1);

    let regions = format!("/tenants/{}/regions", s.tenant.id);
    let r = a.get(&regions).await;
    assert_eq!(r.body["restricted"], false, "{}", r.text);
    let eu = a.post("/regions", &json!({ "name": "eu-west" })).await.body["id"].as_str().unwrap().to_owned();
    let r = a.put(&regions, &json!({ "region_ids": [eu] })).await;
    assert_admin_error(&r, 409, "conflict", "Allow any user");
    let r = a.put(&regions, &json!({ "region_ids": ["nope"] })).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let default = s.service.default_region().await.unwrap();
    let r = a.put(&regions, &json!({ "region_ids": [default.id.clone(), eu.clone()] })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["restricted"], true);
    assert_eq!(r.body["regions"].as_array().unwrap().len(), 2);
    assert_eq!(a.put(&regions, &json!({ "region_ids": [] })).await.body["restricted"], false);
}

#[tokio::test]
async fn an_administrator_reaches_users_the_idp_deleted_and_can_purge_them() {
    let s = TestServer::start().await;
    let a = s.admin();
    let c = s.scim();
    let mut body = user("gone");
    body["emails"] = json!([{ "value": "gone@corp.com" }]);
    let uid = c.post("/Users", &body).await.body["id"].as_str().unwrap().to_owned();
    let users = format!("/tenants/{}/users", s.tenant.id);
    assert_eq!(a.post(&format!("{users}/{uid}/preserve"), &json!({})).await.status, 200);
    assert_eq!(c.delete(&format!("/Users/{uid}")).await.status, 204, "the IdP deletes it (preserve policy)");
    // Hidden from SCIM, still reachable by the administrator: restore hands it back to the IdP.
    let r = a.post(&format!("{users}/{uid}/restore"), &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["state"], "active");
    assert_eq!(c.get(&format!("/Users/{uid}")).await.status, 200, "visible again");
    // Purge releases the email claim whatever the state.
    assert_eq!(c.delete(&format!("/Users/{uid}")).await.status, 204);
    assert_eq!(a.delete(&format!("{users}/{uid}")).await.status, 204);
    assert_admin_error(&a.delete(&format!("{users}/{uid}")).await, 404, "not_found", "");
    let (_, other) = s.new_tenant("elsewhere").await;
    let again = s.scim_with(Some(&other)).post("/Users", &body).await;
    assert_eq!(again.status, 201, "the claim was released: {}", again.text);
}

#[tokio::test]
async fn pending_users_are_listed_oldest_first() {
    let s = TestServer::start().await;
    let a = s.admin();
    let catch_all = s.service.mappings(&s.tenant).await.unwrap().remove(0);
    let path = format!("/tenants/{}/mappings/{}", s.tenant.id, catch_all.id);
    assert_eq!(a.patch(&path, &json!({ "enabled": false })).await.status, 200);
    let settings = format!("/tenants/{}/settings", s.tenant.id);
    assert_eq!(a.put(&settings, &json!({ "hold": { "no_mapping_matched": true } })).await.status, 200);
    for name in ["first", "second"] {
        assert_eq!(s.scim().post("/Users", &user(name)).await.status, 201);
    }
    let r = a.get(&format!("/tenants/{}/users/pending", s.tenant.id)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let names: Vec<&str> = r.body["users"].as_array().unwrap().iter().filter_map(|u| u["user_name"].as_str()).collect();
    assert_eq!(names, ["first", "second"]);
    assert_eq!(r.body["users"][0]["pending_cause"], "no_mapping_matched");
    // A mapping that matches clears the cause: both are activated, in order.
    assert_eq!(a.patch(&path, &json!({ "enabled": true })).await.status, 200);
    let r = a.get(&format!("/tenants/{}/users/pending", s.tenant.id)).await;
    assert_eq!(r.body["users"].as_array().unwrap().len(), 0, "{}", r.text);
}
