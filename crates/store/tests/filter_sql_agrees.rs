//! Differential property test: the SQL a filter compiles to selects exactly the users the
//! in-memory evaluator matches, on generated users and generated filters. On SQLite, and on
//! PostgreSQL (where the parts with no column run in the evaluator over the SQL's candidates)
//! when `SCIMD_TEST_POSTGRES_URL` is set.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use proptest::prelude::*;
use scim_proto::{AttrPath, CompValue, CompareOp, Filter, ResourceKind};
use scimd_domain::query::ListQuery;
use scimd_domain::resources::StoredResource;
use scimd_domain::store::Store;
use scimd_domain::tenant::Tenant;
use scimd_store::postgres::{create_schema, drop_schema};
use scimd_store::{PostgresStore, SqliteStore};
use serde_json::{Value, json};

const NAMES: &[&str] = &["alice", "Alice", "BOB", "carol", "Émile", "zoë"];
const EMAILS: &[&str] = &["a@corp.com", "A@Corp.com", "b@home.net", "c@corp.com"];
const TITLES: &[&str] = &["Engineer", "engineer", "Senior Engineer", "Manager", ""];
const FRAGMENTS: &[&str] = &["al", "AL", "ice", "corp", "@corp.com", "Eng", "engineer", "b", "", "zoë", "ÉMILE"];

fn user_strategy() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(NAMES),
        prop::option::of(prop::sample::select(&["ext-1", "EXT-1", "ext-2"][..])),
        prop::option::of(prop::sample::select(NAMES)),
        prop::option::of(any::<bool>()),
        prop::collection::vec(
            (
                prop::sample::select(EMAILS),
                prop::option::of(prop::sample::select(&["work", "home", "Work"][..])),
                prop::option::of(any::<bool>()),
            ),
            0..3,
        ),
        prop::option::of(prop::sample::select(TITLES)),
        prop::option::of(prop::sample::select(NAMES)),
    )
        .prop_map(|(name, ext, display, active, emails, title, given)| {
            let mut u = json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name });
            if let Some(e) = ext {
                u["externalId"] = json!(e);
            }
            if let Some(d) = display {
                u["displayName"] = json!(d);
            }
            if let Some(a) = active {
                u["active"] = json!(a);
            }
            if !emails.is_empty() {
                u["emails"] = Value::Array(
                    emails
                        .into_iter()
                        .map(|(value, ty, primary)| {
                            let mut e = json!({ "value": value });
                            if let Some(p) = primary {
                                e["primary"] = json!(p);
                            }
                            if let Some(t) = ty {
                                e["type"] = json!(t);
                            }
                            e
                        })
                        .collect(),
                );
            }
            if let Some(t) = title {
                u["title"] = json!(t);
            }
            if let Some(g) = given {
                u["name"] = json!({ "givenName": g });
            }
            u
        })
}

/// Sort keys with a column (userName, displayName, externalId) and without one.
const SORT_PATHS: &[&str] =
    &["userName", "displayName", "externalId", "title", "name.givenName", "emails", "emails.value", "active"];

fn string_op() -> impl Strategy<Value = CompareOp> {
    prop::sample::select(&CompareOp::ALL[..])
}

fn text_value() -> impl Strategy<Value = CompValue> {
    prop_oneof![
        prop::sample::select(NAMES).prop_map(|s| CompValue::Str(s.to_owned())),
        prop::sample::select(EMAILS).prop_map(|s| CompValue::Str(s.to_owned())),
        prop::sample::select(TITLES).prop_map(|s| CompValue::Str(s.to_owned())),
        prop::sample::select(FRAGMENTS).prop_map(|s| CompValue::Str(s.to_owned())),
        prop::sample::select(&["ext-1", "EXT-1", "ext"][..]).prop_map(|s| CompValue::Str(s.to_owned())),
    ]
}

fn leaf() -> impl Strategy<Value = Filter> {
    let text_paths = prop::sample::select(
        &[
            "userName",
            "USERNAME",
            "externalId",
            "displayName",
            "title",
            "name.givenName",
            "emails",
            "emails.value",
            "emails.type",
        ][..],
    );
    prop_oneof![
        (text_paths.clone(), string_op(), text_value()).prop_map(|(p, op, v)| Filter::Compare(
            AttrPath::parse(p).unwrap(),
            op,
            v
        )),
        (prop::sample::select(&[CompareOp::Eq, CompareOp::Ne][..]), any::<bool>()).prop_map(|(op, b)| Filter::Compare(
            AttrPath::simple("active"),
            op,
            CompValue::Bool(b)
        )),
        text_paths.prop_map(|p| Filter::Present(AttrPath::parse(p).unwrap())),
        Just(Filter::Present(AttrPath::simple("active"))),
        Just(Filter::Present(AttrPath::with_sub("emails", "primary"))),
        (prop::sample::select(&["value", "type"][..]), string_op(), text_value(), any::<bool>(), any::<bool>())
            .prop_map(|(sub, op, v, primary, with_primary)| {
                let inner = Filter::Compare(AttrPath::simple(sub), op, v);
                let inner = if with_primary {
                    Filter::And(
                        Box::new(inner),
                        Box::new(Filter::Compare(AttrPath::simple("primary"), CompareOp::Eq, CompValue::Bool(primary))),
                    )
                } else {
                    inner
                };
                Filter::ValuePath(AttrPath::simple("emails"), Box::new(inner))
            }),
    ]
}

fn filter_strategy() -> impl Strategy<Value = Filter> {
    leaf().prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Filter::Not(Box::new(a))),
        ]
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime")
}

/// The stores a case runs on: SQLite in `dir`, and PostgreSQL when `SCIMD_TEST_POSTGRES_URL`
/// is set (one schema for the process, each case in a tenant of its own).
fn stores(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> Vec<(&'static str, Arc<dyn Store>)> {
    let mut all: Vec<(&'static str, Arc<dyn Store>)> = vec![("sqlite", Arc::new(SqliteStore::open(dir).unwrap()))];
    let Ok(base) = std::env::var("SCIMD_TEST_POSTGRES_URL") else {
        static TOLD: OnceLock<()> = OnceLock::new();
        TOLD.get_or_init(|| eprintln!("PostgreSQL skipped; set SCIMD_TEST_POSTGRES_URL=postgres://… to run it too"));
        return all;
    };
    static URL: OnceLock<String> = OnceLock::new();
    let url = URL.get_or_init(|| {
        let schema = format!("scimd_test_{}_filters", std::process::id());
        rt.block_on(drop_schema(&base, &schema)).expect("drop an old schema");
        rt.block_on(create_schema(&base, &schema)).expect("create a schema")
    });
    all.push(("postgres", Arc::new(rt.block_on(PostgresStore::connect(url, 2)).expect("connect to PostgreSQL"))));
    all
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn sql_selects_what_memory_matches(users in prop::collection::vec(user_strategy(), 1..24),
                                       filters in prop::collection::vec(filter_strategy(), 1..8),
                                       sort_by in prop::sample::select(SORT_PATHS), descending in any::<bool>(),
                                       start_index in 1u64..6, count in 1u64..8) {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        static CASE: AtomicU32 = AtomicU32::new(0);
        let tenant = format!("t{}", CASE.fetch_add(1, Ordering::Relaxed));
        let now = time::OffsetDateTime::now_utc();
        let stored: Vec<StoredResource> = users
            .into_iter()
            .enumerate()
            .map(|(i, mut doc)| {
                // userName is unique per tenant: make each one distinct, keeping the generated case.
                let name = format!("{}{i}", doc["userName"].as_str().unwrap());
                doc["userName"] = json!(name);
                StoredResource { id: format!("u{i:03}"), kind: ResourceKind::User, doc, created: now, modified: now, version: 1, placement: None }
            })
            .collect();
        let user_type = ResourceKind::User.resource_type();
        let filters: Vec<Filter> = filters.into_iter().filter(|f| f.validate(user_type).is_ok()).collect();
        // Every backend sorts and pages alike (the first one is the reference).
        let sorted =
            ListQuery { filter: None, sort_by: Some(AttrPath::parse(sort_by).unwrap()), descending, start_index, count, cursor: None };
        let mut reference: Option<Vec<String>> = None;
        for (backend, store) in stores(&rt, dir.path()) {
            let t = Tenant { id: tenant.clone(), name: tenant.clone(), token_lifetime_days: 365, created_at: now };
            rt.block_on(store.insert_tenant(&t)).unwrap();
            for res in &stored {
                rt.block_on(store.insert_resource(&tenant, res)).unwrap();
            }
            for filter in &filters {
                let expected: BTreeSet<String> = stored
                    .iter()
                    .filter(|r| filter.matches(&r.to_scim("http://x/scim/v2"), user_type))
                    .map(|r| r.id.clone())
                    .collect();
                let query = ListQuery { filter: Some(filter.clone()), sort_by: None, descending: false, start_index: 1, count: 1000, cursor: None };
                let page = rt.block_on(store.query(&tenant, ResourceKind::User, &query, false)).unwrap();
                let got: BTreeSet<String> = page.resources.iter().map(|r| r.id.clone()).collect();
                prop_assert_eq!(page.total as usize, got.len(), "{}: filter {}", backend, filter);
                prop_assert_eq!(&got, &expected, "{}: filter {}", backend, filter);
            }
            let page = rt.block_on(store.query(&tenant, ResourceKind::User, &sorted, false)).unwrap();
            let order: Vec<String> = page.resources.iter().map(|r| r.id.clone()).collect();
            match &reference {
                None => reference = Some(order),
                Some(first) => prop_assert_eq!(&order, first, "{}: sortBy={} descending={} startIndex={} count={}", backend, sort_by, descending, start_index, count),
            }
        }
    }
}
