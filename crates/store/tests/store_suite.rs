//! The store suite: what every backend of the domain's `Store` must do, checked through the trait
//! alone, so that one suite holds each backend to the same contract. Every test runs on SQLite
//! and, when `SCIMD_TEST_POSTGRES_URL` is set (`.ci/run` sets it), on PostgreSQL too, each in a
//! fresh schema.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use scim_proto::ResourceKind;
use scimd_domain::access::Role;
use scimd_domain::access::accounts::{Account, Session};
use scimd_domain::access::api_keys::ApiKey;
use scimd_domain::access::audit::{AuditEntry, AuditQuery};
use scimd_domain::events::{Cause, Event, EventQuery, Idp, Outcome};
use scimd_domain::provisioning::Profile;
use scimd_domain::resources::StoredResource;
use scimd_domain::store::{ResourceWrite, Step, Store, StoreError};
use scimd_domain::tenant::Tenant;
use scimd_store::postgres::{create_schema, drop_schema};
use scimd_store::{PostgresStore, SqliteStore};
use serde_json::json;
use time::{Duration, OffsetDateTime, macros::datetime};

/// A store under test, with whatever keeps its database alive.
struct Backend {
    name: &'static str,
    store: Arc<dyn Store>,
    _keep: Option<tempfile::TempDir>,
}

/// Every backend this machine can run, each on a fresh database.
async fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let sqlite = SqliteStore::open(dir.path()).expect("open SQLite");
    let mut all = vec![Backend { name: "sqlite", store: Arc::new(sqlite), _keep: Some(dir) }];
    match std::env::var("SCIMD_TEST_POSTGRES_URL") {
        Ok(url) => {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let schema = format!("scimd_test_{}_suite{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
            drop_schema(&url, &schema).await.expect("drop an old schema");
            let url = create_schema(&url, &schema).await.expect("create a schema");
            let store = PostgresStore::connect(&url, 4).await.expect("connect to PostgreSQL");
            all.push(Backend { name: "postgres", store: Arc::new(store), _keep: None });
        }
        Err(_) => eprintln!("store suite: PostgreSQL skipped; set SCIMD_TEST_POSTGRES_URL=postgres://… to run it too"),
    }
    all
}

const T0: OffsetDateTime = datetime!(2026-12-01 09:00 UTC);

fn tenant(id: &str, name: &str) -> Tenant {
    Tenant { id: id.into(), name: name.into(), token_lifetime_days: 365, created_at: T0 }
}

fn account(id: &str, email: &str, role: Role) -> Account {
    Account {
        id: id.into(),
        email: email.into(),
        password_hash: "$argon2id$x".into(),
        role,
        created_at: T0,
        last_sign_in_at: None,
    }
}

fn key(id: &str, account_id: &str, at: OffsetDateTime) -> ApiKey {
    ApiKey {
        id: id.into(),
        prefix: format!("scimdk_{id}"),
        hash: format!("hash-{id}"),
        name: format!("key {id}"),
        account_id: account_id.into(),
        created_at: at,
        last_used_at: None,
        revoked_at: None,
    }
}

fn event(tenant: &str, at: OffsetDateTime, outcome: Outcome) -> Event {
    Event {
        id: 0,
        at,
        tenant_id: Some(tenant.into()),
        token_id: None,
        request_id: "req".into(),
        idp: Idp::Okta,
        method: "POST".into(),
        path: "/scim/v2/Users".into(),
        operation: "create".into(),
        subject: Some("alice".into()),
        mentions: vec![],
        outcome,
        cause: if outcome == Outcome::Accepted { Cause::Ok } else { Cause::ProfileFull },
        status: if outcome == Outcome::Accepted { 201 } else { 403 },
        detail: None,
        duration_ms: 3,
    }
}

#[tokio::test]
async fn settings_are_kept_and_overwritten() {
    for b in backends().await {
        let s = &b.store;
        assert_eq!(s.setting("k").await.expect("read"), None, "{}", b.name);
        s.set_setting("k", "one").await.expect("write");
        s.set_setting("k", "two").await.expect("overwrite");
        assert_eq!(s.setting("k").await.expect("read").as_deref(), Some("two"), "{}", b.name);
    }
}

#[tokio::test]
async fn tenant_names_are_unique() {
    for b in backends().await {
        let s = &b.store;
        s.insert_tenant(&tenant("t1", "acme")).await.expect("insert");
        assert_eq!(s.tenant_by_name("acme").await.expect("by name").map(|t| t.id).as_deref(), Some("t1"));
        let again = s.insert_tenant(&tenant("t2", "acme")).await;
        assert!(
            matches!(again, Err(StoreError::Conflict { ref attribute }) if attribute == "name"),
            "{}: {again:?}",
            b.name
        );
        assert_eq!(s.tenants().await.expect("list").len(), 1);
    }
}

#[tokio::test]
async fn accounts_sessions_and_api_keys_keep_their_contract() {
    for b in backends().await {
        let s = &b.store;
        s.insert_tenant(&tenant("t1", "acme")).await.expect("tenant");
        assert!(!s.has_operator_account().await.expect("any operator"));
        s.insert_account(&account("a1", "ops@x.test", Role::Operator)).await.expect("operator");
        s.insert_account(&account("a2", "it@x.test", Role::TenantAdmin("t1".into()))).await.expect("admin");
        let dup = s.insert_account(&account("a3", "ops@x.test", Role::Operator)).await;
        assert!(
            matches!(dup, Err(StoreError::Conflict { ref attribute }) if attribute == "email"),
            "{}: {dup:?}",
            b.name
        );
        assert!(s.has_operator_account().await.expect("any operator"));
        let admin = s.account_by_email("it@x.test").await.expect("by email").expect("found");
        assert_eq!(admin.role, Role::TenantAdmin("t1".into()));
        s.touch_account("a2", T0 + Duration::hours(1)).await.expect("touch");
        assert_eq!(
            s.account("a2").await.expect("by id").and_then(|a| a.last_sign_in_at),
            Some(T0 + Duration::hours(1))
        );

        let session = Session {
            hash: "h1".into(),
            account_id: "a2".into(),
            csrf: "c".into(),
            created_at: T0,
            expires_at: T0 + Duration::hours(12),
        };
        s.insert_session(&session).await.expect("session");
        let (found, who) = s.session("h1").await.expect("lookup").expect("found");
        assert_eq!((found, who.email.as_str()), (session.clone(), "it@x.test"));
        assert_eq!(s.prune_sessions(T0 + Duration::hours(11)).await.expect("prune"), 0);
        assert_eq!(s.prune_sessions(T0 + Duration::hours(13)).await.expect("prune"), 1);
        assert!(s.session("h1").await.expect("lookup").is_none());

        s.insert_api_key(&key("k1", "a2", T0)).await.expect("key");
        s.insert_api_key(&key("k2", "a2", T0 + Duration::minutes(1))).await.expect("key");
        let keys = s.api_keys("a2").await.expect("list");
        assert_eq!(keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(), ["k2", "k1"], "{}: newest first", b.name);
        let (k, owner) = s.api_key_by_prefix("scimdk_k1").await.expect("by prefix").expect("found");
        assert_eq!((k.hash.as_str(), owner.id.as_str()), ("hash-k1", "a2"));
        assert!(
            matches!(s.revoke_api_key("a1", "k1", T0).await, Err(StoreError::NotFound)),
            "{}: not a1's key",
            b.name
        );
        let revoked = s.revoke_api_key("a2", "k1", T0 + Duration::hours(2)).await.expect("revoke");
        assert_eq!(revoked.revoked_at, Some(T0 + Duration::hours(2)));
        // Revoking again keeps the first moment.
        let again = s.revoke_api_key("a2", "k1", T0 + Duration::hours(3)).await.expect("revoke again");
        assert_eq!(again.revoked_at, Some(T0 + Duration::hours(2)));

        // An account goes with its sessions and keys.
        s.insert_session(&Session { hash: "h2".into(), ..session }).await.expect("session");
        s.delete_account("a2").await.expect("delete");
        assert!(s.session("h2").await.expect("lookup").is_none(), "{}", b.name);
        assert!(s.api_key_by_prefix("scimdk_k2").await.expect("lookup").is_none(), "{}", b.name);
        assert!(matches!(s.delete_account("a2").await, Err(StoreError::NotFound)));
    }
}

#[tokio::test]
async fn the_first_operator_is_made_once_and_only_with_the_code() {
    for b in backends().await {
        let s = &b.store;
        s.set_setting("setup", "code-hash").await.expect("code");
        let first = account("a1", "first@x.test", Role::Operator);
        assert!(!s.create_first_operator(&first, "setup", "wrong").await.expect("refused"), "{}", b.name);
        assert!(s.create_first_operator(&first, "setup", "code-hash").await.expect("made"), "{}", b.name);
        let second = account("a2", "second@x.test", Role::Operator);
        assert!(!s.create_first_operator(&second, "setup", "code-hash").await.expect("spent"), "{}", b.name);
        assert_eq!(s.accounts().await.expect("list").len(), 1);
    }
}

#[tokio::test]
async fn the_audit_log_pages_back_newest_first() {
    for b in backends().await {
        let s = &b.store;
        for (i, tenant) in ["t1", "t2", "t1"].iter().enumerate() {
            let entry = AuditEntry {
                id: 0,
                at: T0 + Duration::minutes(i as i64),
                actor: "ops@x.test".into(),
                tenant_id: Some((*tenant).into()),
                action: "profile.update".into(),
                target: format!("p{i}"),
                before: Some(json!({ "max_users": i })),
                after: None,
            };
            s.append_audit(&entry).await.expect("append");
        }
        let all = s.audit_log(&AuditQuery { limit: 10, ..AuditQuery::default() }).await.expect("read");
        assert_eq!(all.iter().map(|e| e.target.as_str()).collect::<Vec<_>>(), ["p2", "p1", "p0"], "{}", b.name);
        assert_eq!(all[0].before, Some(json!({ "max_users": 2 })));
        let t1 = s.audit_log(&AuditQuery { tenant_id: Some("t1".into()), limit: 10, ..AuditQuery::default() }).await;
        assert_eq!(t1.expect("read").len(), 2);
        let older = s.audit_log(&AuditQuery { before_id: Some(all[0].id), limit: 1, ..AuditQuery::default() }).await;
        assert_eq!(older.expect("read").iter().map(|e| e.target.as_str()).collect::<Vec<_>>(), ["p1"]);
    }
}

#[tokio::test]
async fn events_are_counted_per_day_and_outcome() {
    for b in backends().await {
        let s = &b.store;
        let day1 = datetime!(2026-12-05 10:00 UTC);
        let day2 = datetime!(2026-12-06 23:59 UTC);
        s.insert_events(&[
            event("t1", day1, Outcome::Accepted),
            event("t1", day1, Outcome::Accepted),
            event("t1", day2, Outcome::Refused),
            event("t2", day2, Outcome::Accepted),
        ])
        .await
        .expect("insert");
        let activity = s.activity("t1", datetime!(2026-12-05 00:00 UTC)).await.expect("activity");
        let seen: Vec<(String, Outcome, u64)> = activity.into_iter().map(|a| (a.day, a.outcome, a.count)).collect();
        assert_eq!(
            seen,
            [("2026-12-05".to_owned(), Outcome::Accepted, 2), ("2026-12-06".to_owned(), Outcome::Refused, 1)],
            "{}",
            b.name
        );
        let later = s.activity("t1", datetime!(2026-12-06 00:00 UTC)).await.expect("activity");
        assert_eq!(later.len(), 1);
        let refused = EventQuery {
            tenant_id: Some("t1".into()),
            outcome: Some(Outcome::Refused),
            limit: 10,
            ..EventQuery::default()
        };
        assert_eq!(s.events(&refused).await.expect("events").len(), 1);
    }
}

#[tokio::test]
async fn a_job_lease_has_one_holder_until_it_runs_out() {
    for b in backends().await {
        let s = &b.store;
        let term = std::time::Duration::from_millis(400);
        assert!(s.hold_lease("jobs", "node-a", term).await.expect("take"), "{}", b.name);
        assert!(!s.hold_lease("jobs", "node-b", term).await.expect("refused"), "{}: b took a's lease", b.name);
        assert!(s.hold_lease("jobs", "node-a", term).await.expect("renew"), "{}: a cannot renew", b.name);
        assert!(s.hold_lease("other", "node-b", term).await.expect("another job"), "{}", b.name);
        // node-a stops renewing (it died): once the term runs out, node-b takes the job over.
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        assert!(s.hold_lease("jobs", "node-b", term).await.expect("take over"), "{}: no takeover", b.name);
        assert!(!s.hold_lease("jobs", "node-a", term).await.expect("refused"), "{}: a came back", b.name);
    }
}

/// A tenant's initial sync: many user creates at once, each taking a seat of the tenant's one
/// profile and claiming an email. They contend on the profile's counter; every one of them lands
/// (none gives up as busy) and the count is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_into_one_profile_all_land_with_an_exact_seat_count() {
    const CREATES: u32 = 48;
    for b in backends().await {
        let store = b.store.clone();
        store.insert_tenant(&tenant("t1", "acme")).await.expect("tenant");
        let profile =
            Profile { id: "p".into(), tenant_id: "t1".into(), name: "std".into(), max_users: 0, active_users: 0 };
        store.insert_profile(&profile).await.expect("profile");
        let writes: Vec<_> = (0..CREATES)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let user = StoredResource {
                        id: format!("u{i}"),
                        kind: ResourceKind::User,
                        doc: json!({ "userName": format!("user{i}") }),
                        created: T0,
                        modified: T0,
                        version: 1,
                        placement: None,
                    };
                    let steps = [
                        Step::TakeSeat { profile_id: "p".into() },
                        Step::ClaimEmail { email: format!("user{i}@acme.test"), user_id: user.id.clone() },
                    ];
                    store.provision("t1", &steps, &ResourceWrite::Insert(user)).await
                })
            })
            .collect();
        for write in writes {
            if let Err(e) = write.await.expect("task") {
                panic!("{}: a create gave up: {e:?}", b.name);
            }
        }
        let seats = store.profile("t1", "p").await.expect("read").expect("profile").active_users;
        assert_eq!(seats, CREATES, "{}", b.name);
    }
}
