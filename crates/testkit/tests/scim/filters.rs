//! Filters over HTTP (RFC 7644 §3.4.2.2): every operator, logic, value paths, IdP forms, schema
//! rules (caseExact, types), attributes kept in columns and attributes evaluated in memory, and
//! the errors.

use scimd_testkit::{Client, TestServer};
use serde_json::{Value, json};

use crate::support::{
    ENTERPRISE, SEARCH_REQUEST, assert_scim_error, create, create_group, enc, filter_ids, filtered, ids, patch_op,
};

/// Four users with different attributes, created in this order.
struct Fixture {
    s: TestServer,
    c: Client,
    alice: String,
    bob: String,
    carol: String,
    dave: String,
}

impl Fixture {
    async fn new() -> Self {
        let s = TestServer::start().await;
        let c = s.scim();
        let alice = create(
            &c,
            "/Users",
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
                "userName": "Alice.Anders",
                "externalId": "ExtA",
                "name": { "givenName": "Alice", "familyName": "Anders" },
                "nickName": "Al",
                "title": "Engineer",
                "active": true,
                "emails": [
                    { "value": "alice@corp.example", "type": "work", "primary": true },
                    { "value": "alice@home.example", "type": "home" }
                ],
                ENTERPRISE: { "department": "Finance", "employeeNumber": "100" },
            }),
        )
        .await;
        let bob = create(
            &c,
            "/Users",
            &json!({
                "userName": "bob.brown",
                "externalId": "extb",
                "name": { "givenName": "Bob", "familyName": "Brown" },
                "title": "Engineering Manager",
                "active": false,
                "emails": [{ "value": "bob@other.example", "type": "work" }],
                ENTERPRISE: { "department": "Sales" },
            }),
        )
        .await;
        let carol = create(
            &c,
            "/Users",
            &json!({
                "userName": "Carol.Chen",
                "name": { "givenName": "Carol", "familyName": "Chen" },
                "title": "Accountant",
                "active": true,
                "emails": [{ "value": "carol@corp.example", "type": "home" }],
                ENTERPRISE: { "department": "FINANCE" },
            }),
        )
        .await;
        let dave = create(
            &c,
            "/Users",
            &json!({
                "userName": "dave",
                "name": { "givenName": "Adam", "familyName": "Doe" },
                "active": true,
            }),
        )
        .await;
        Fixture { s, c, alice, bob, carol, dave }
    }

    /// Asserts that `filter` on /Users matches exactly `expected`.
    async fn users(&self, filter: &str, expected: &[&String]) {
        let mut want: Vec<String> = expected.iter().map(|s| (*s).clone()).collect();
        want.sort();
        assert_eq!(filter_ids(&self.c, "/Users", filter).await, want, "filter {filter:?}");
    }
}

#[tokio::test]
async fn every_comparison_operator() {
    let f = Fixture::new().await;
    let (a, b, c, d) = (&f.alice, &f.bob, &f.carol, &f.dave);
    f.users("userName eq \"alice.anders\"", &[a]).await;
    f.users("userName ne \"ALICE.ANDERS\"", &[b, c, d]).await;
    f.users("userName co \"O\"", &[b, c]).await;
    f.users("userName sw \"CAROL\"", &[c]).await;
    f.users("userName ew \"N\"", &[b, c]).await;
    f.users("userName gt \"Carol.Chen\"", &[d]).await;
    f.users("userName ge \"carol.chen\"", &[c, d]).await;
    f.users("userName lt \"BOB.BROWN\"", &[a]).await;
    f.users("userName le \"bob.brown\"", &[a, b]).await;
    f.users("title pr", &[a, b, c]).await;
    f.users("userName pr", &[a, b, c, d]).await;
    // Operators are case-insensitive keywords.
    f.users("userName EQ \"dave\"", &[d]).await;
}

#[tokio::test]
async fn logic_precedence_and_parentheses() {
    let f = Fixture::new().await;
    let (a, b, c, d) = (&f.alice, &f.bob, &f.carol, &f.dave);
    // `and` binds tighter than `or`.
    f.users("userName eq \"dave\" or userName sw \"a\" and active eq false", &[d]).await;
    f.users("(userName eq \"dave\" or userName sw \"a\") and active eq true", &[a, d]).await;
    f.users("userName sw \"a\" and active eq true or userName eq \"bob.brown\"", &[a, b]).await;
    f.users("not (active eq true)", &[b]).await;
    f.users("not (title pr) or userName eq \"carol.chen\"", &[c, d]).await;
    f.users("not (userName eq \"dave\" or title co \"eng\")", &[c]).await;
    f.users("active eq true and not (emails pr)", &[d]).await;
    f.users("((userName pr))", &[a, b, c, d]).await;
}

#[tokio::test]
async fn value_paths() {
    let f = Fixture::new().await;
    let (a, b, c) = (&f.alice, &f.bob, &f.carol);
    f.users("emails[type eq \"work\" and value co \"@corp\"]", &[a]).await;
    f.users("emails[type eq \"work\" or value co \"@corp\"]", &[a, b, c]).await;
    f.users("emails[value ew \"@corp.example\"]", &[a, c]).await;
    f.users("emails[type eq \"home\"] and title sw \"acc\"", &[c]).await;
    f.users("emails[not (type eq \"work\")]", &[a, c]).await;
    // Entra ID's form: a value path followed by a sub-attribute comparison.
    f.users("emails[type eq \"work\"].value eq \"BOB@other.example\"", &[b]).await;
    f.users("emails[type eq \"work\"].value eq \"carol@corp.example\"", &[]).await;
    // Plain sub-attribute of a multi-valued attribute: any value.
    f.users("emails.value co \"@corp\"", &[a, c]).await;
    f.users("emails co \"home\"", &[a]).await;
    f.users("emails.type eq \"home\"", &[a, c]).await;
    f.users("emails.primary eq true", &[a]).await;
}

#[tokio::test]
async fn sub_attributes_and_extension_attributes() {
    let f = Fixture::new().await;
    let (a, b, c) = (&f.alice, &f.bob, &f.carol);
    f.users("name.familyName eq \"BROWN\"", &[b]).await;
    f.users("name.familyName co \"he\"", &[c]).await;
    // caseExact false for department: "FINANCE" matches "Finance".
    f.users(&format!("{ENTERPRISE}:department eq \"Finance\""), &[a, c]).await;
    f.users(&format!("{ENTERPRISE}:employeeNumber eq \"100\""), &[a]).await;
    f.users(&format!("{ENTERPRISE}:employeeNumber pr"), &[a]).await;
    f.users(&format!("not ({ENTERPRISE}:department pr)"), &[&f.dave]).await;
    // The schema URN of the core schema may qualify core attributes too.
    f.users("urn:ietf:params:scim:schemas:core:2.0:User:userName eq \"bob.brown\"", &[b]).await;
    f.users("urn:ietf:params:scim:schemas:core:2.0:User:name.givenName eq \"carol\"", &[c]).await;
}

#[tokio::test]
async fn case_exactness_follows_the_schema() {
    let f = Fixture::new().await;
    let a = &f.alice;
    // userName: caseExact false.
    f.users("userName eq \"ALICE.anders\"", &[a]).await;
    // externalId: caseExact true.
    f.users("externalId eq \"ExtA\"", &[a]).await;
    f.users("externalId eq \"exta\"", &[]).await;
    f.users("externalId eq \"EXTB\"", &[]).await;
    f.users("externalId sw \"Ext\"", &[a]).await;
    // id: caseExact true.
    f.users(&format!("id eq \"{a}\""), &[a]).await;
    f.users(&format!("id eq \"{}\"", a.to_uppercase()), &[]).await;
    // Attribute names are case-insensitive.
    f.users("USERNAME eq \"alice.anders\"", &[a]).await;
    f.users("Name.FamilyName eq \"anders\"", &[a]).await;
}

#[tokio::test]
async fn booleans() {
    let f = Fixture::new().await;
    let (a, b, c, d) = (&f.alice, &f.bob, &f.carol, &f.dave);
    f.users("active eq false", &[b]).await;
    f.users("active eq true", &[a, c, d]).await;
    f.users("active ne true", &[b]).await;
    // Entra sends booleans as strings in places; a filter "False" reads as false.
    f.users("active eq \"False\"", &[b]).await;
    let r = f.c.get(&format!("/Users?filter={}", enc("active gt true"))).await;
    assert_scim_error(&r, 400, Some("invalidFilter"));
    let r = f.c.get(&format!("/Users?filter={}", enc("active eq \"maybe\""))).await;
    assert_scim_error(&r, 400, Some("invalidFilter"));
}

#[tokio::test]
async fn dates() {
    let f = Fixture::new().await;
    let created = f.c.get(&format!("/Users/{}", f.alice)).await.body["meta"]["created"].as_str().unwrap().to_owned();
    f.s.clock.advance(time::Duration::minutes(5));
    let r = f
        .c
        .patch(&format!("/Users/{}", f.carol), &patch_op(json!([{ "op": "replace", "path": "title", "value": "CFO" }])))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let modified = r.body["meta"]["lastModified"].as_str().unwrap().to_owned();
    assert_ne!(modified, created);

    let (a, b, c, d) = (&f.alice, &f.bob, &f.carol, &f.dave);
    f.users(&format!("meta.lastModified gt \"{created}\""), &[c]).await;
    f.users(&format!("meta.lastModified ge \"{modified}\""), &[c]).await;
    f.users(&format!("meta.lastModified lt \"{modified}\""), &[a, b, d]).await;
    f.users(&format!("meta.created le \"{created}\""), &[a, b, c, d]).await;
    f.users(&format!("meta.created gt \"{created}\""), &[]).await;
    // Another notation of the same instant compares as the instant.
    let later = time::OffsetDateTime::parse(&modified, &time::format_description::well_known::Rfc3339).unwrap();
    let offset = later.to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
    let text = offset.format(&time::format_description::well_known::Rfc3339).unwrap();
    f.users(&format!("meta.lastModified ge \"{text}\""), &[c]).await;
    // A value that is not a date is refused.
    let r = f.c.get(&format!("/Users?filter={}", enc("meta.lastModified gt \"yesterday\""))).await;
    assert_scim_error(&r, 400, Some("invalidFilter"));
}

#[tokio::test]
async fn numbers_only_compare_with_numeric_attributes() {
    // No attribute of User or Group is numeric; a number against a string attribute is refused
    // rather than silently matching nothing.
    let f = Fixture::new().await;
    let r = f.c.get(&format!("/Users?filter={}", enc(&format!("{ENTERPRISE}:employeeNumber eq 100")))).await;
    assert_scim_error(&r, 400, Some("invalidFilter"));
    let r = f.c.get(&format!("/Users?filter={}", enc("userName gt 5"))).await;
    assert_scim_error(&r, 400, Some("invalidFilter"));
}

#[tokio::test]
async fn unindexed_attributes() {
    let f = Fixture::new().await;
    let (a, b, c, d) = (&f.alice, &f.bob, &f.carol, &f.dave);
    f.users("title co \"Eng\"", &[a, b]).await;
    f.users("title co \"eng\"", &[a, b]).await;
    f.users("name.givenName sw \"A\"", &[a, d]).await;
    f.users("nickName pr", &[a]).await;
    f.users("nickName eq \"al\"", &[a]).await;
    f.users("title ew \"manager\" or nickName pr", &[a, b]).await;
    // Indexed and unindexed together, with not.
    f.users("active eq true and not (title co \"Eng\")", &[c, d]).await;
    f.users("title gt \"B\"", &[a, b]).await;
    // With paging: the total counts every match, not the page.
    let r = filtered(&f.c, "/Users", "name.givenName pr", "&count=1").await;
    assert_eq!(r.body["totalResults"], 4);
    assert_eq!(r.body["itemsPerPage"], 1);
}

#[tokio::test]
async fn membership_filters() {
    let f = Fixture::new().await;
    let (a, b, c) = (&f.alice, &f.bob, &f.carol);
    let g1 = create_group(&f.c, "Engineering", &[a, b]).await;
    let g2 = create_group(&f.c, "Finance", &[c]).await;
    let g3 = create_group(&f.c, "All", &[&g1, &g2]).await;
    let one = |id: &String| vec![id.clone()];
    assert_eq!(filter_ids(&f.c, "/Groups", &format!("members[value eq \"{a}\"]")).await, one(&g1));
    assert_eq!(filter_ids(&f.c, "/Groups", &format!("members.value eq \"{c}\"")).await, one(&g2));
    assert_eq!(filter_ids(&f.c, "/Groups", &format!("members[value eq \"{g1}\"]")).await, one(&g3));
    assert_eq!(filter_ids(&f.c, "/Groups", &format!("members eq \"{b}\"")).await, one(&g1));
    assert_eq!(filter_ids(&f.c, "/Groups", "members[type eq \"Group\"]").await, one(&g3));
    assert_eq!(filter_ids(&f.c, "/Groups", "members pr").await.len(), 3);
    assert_eq!(filter_ids(&f.c, "/Groups", "displayName sw \"eng\"").await, one(&g1));
    // Member ids are case-sensitive.
    assert_eq!(
        filter_ids(&f.c, "/Groups", &format!("members[value eq \"{}\"]", a.to_uppercase())).await,
        vec![] as Vec<String>
    );

    f.users(&format!("groups.value eq \"{g1}\""), &[a, b]).await;
    f.users(&format!("groups[value eq \"{g2}\"]"), &[c]).await;
    f.users(&format!("groups eq \"{g2}\" or groups eq \"{g1}\""), &[a, b, c]).await;
    f.users("groups pr", &[a, b, c]).await;
    f.users("not (groups pr)", &[&f.dave]).await;
}

#[tokio::test]
async fn entra_plus_for_space_encoding() {
    let f = Fixture::new().await;
    let r = f.c.get("/Users?filter=userName+eq+%22bob.brown%22").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ids(&r), vec![f.bob.clone()]);
    // Entra's probe: a random userName, with its own flag appended.
    let r = f.c.get("/Users?filter=userName+eq+%2200000000-0000-0000-0000-000000000000%22&aadOptscim062020").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["totalResults"], 0);
    assert_eq!(r.body["Resources"], json!([]));
    // A literal plus is %2B.
    let r = f.c.get("/Users?filter=externalId+eq+%22a%2Bb%22").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["totalResults"], 0);
}

#[tokio::test]
async fn filter_in_search_request_matches_the_query_string() {
    let f = Fixture::new().await;
    let filter = "title co \"Eng\" and active eq true";
    let get = filtered(&f.c, "/Users", filter, "").await;
    let post = f.c.post("/Users/.search", &json!({ "schemas": [SEARCH_REQUEST], "filter": filter })).await;
    assert_eq!(post.status, 200, "{}", post.text);
    assert_eq!(ids(&get), vec![f.alice.clone()]);
    assert_eq!(ids(&post), ids(&get));
}

async fn filter_error(c: &Client, filter: &str) -> Value {
    let r = c.get(&format!("/Users?filter={}", enc(filter))).await;
    assert_scim_error(&r, 400, Some("invalidFilter"));
    r.body
}

#[tokio::test]
async fn unknown_attribute_is_invalid_filter() {
    let f = Fixture::new().await;
    let e = filter_error(&f.c, "userNmae eq \"bob\"").await;
    assert!(e["detail"].as_str().unwrap().contains("userNmae"), "{e}");
    let e = filter_error(&f.c, "name.nickName eq \"x\"").await;
    assert!(e["detail"].as_str().unwrap().contains("nickName"), "{e}");
    filter_error(&f.c, "emails[kind eq \"work\"]").await;
    filter_error(&f.c, "urn:example:unknown:1.0:User:foo eq \"x\"").await;
    // A Group attribute on Users, a User attribute on Groups.
    filter_error(&f.c, "members pr").await;
    let r = f.c.get(&format!("/Groups?filter={}", enc("userName eq \"x\""))).await;
    assert_scim_error(&r, 400, Some("invalidFilter"));
}

#[tokio::test]
async fn syntax_errors_name_a_position() {
    let f = Fixture::new().await;
    for (filter, position) in [
        ("userName eqq \"bob\"", "position 10"),
        ("userName eq \"bob\" and", "position 22"),
        ("(userName eq \"bob\"", "position 1"),
        ("emails[type eq \"work\"", "position 7"),
        ("userName eq \"unterminated", "position"),
        ("", "position 1"),
    ] {
        let e = filter_error(&f.c, filter).await;
        let detail = e["detail"].as_str().unwrap();
        assert!(detail.contains(position), "filter {filter:?}: {detail}");
    }
}

#[tokio::test]
async fn unquoted_values_are_refused() {
    let f = Fixture::new().await;
    for filter in ["userName eq bob", "userName eq bob.brown", "title co Eng", "externalId eq ExtA"] {
        let r = f.c.get(&format!("/Users?filter={}", enc(filter))).await;
        assert_scim_error(&r, 400, Some("invalidFilter"));
    }
    // The same through .search.
    let r = f.c.post("/Users/.search", &json!({ "schemas": [SEARCH_REQUEST], "filter": "userName eq bob" })).await;
    assert_scim_error(&r, 400, Some("invalidFilter"));
}

#[tokio::test]
async fn filters_see_changes_at_once() {
    let f = Fixture::new().await;
    let id = &f.dave;
    let r =
        f.c.patch(
            &format!("/Users/{id}"),
            &patch_op(json!([
                { "op": "add", "path": "emails", "value": [{ "value": "dave@corp.example", "type": "work" }] },
                { "op": "replace", "path": "userName", "value": "David" },
                { "op": "add", "path": "title", "value": "Engineer" },
            ])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    f.users("userName eq \"dave\"", &[]).await;
    f.users("userName eq \"david\"", &[id]).await;
    f.users("emails[type eq \"work\" and value co \"@corp\"]", &[&f.alice, id]).await;
    f.users("title co \"Eng\"", &[&f.alice, &f.bob, id]).await;
}

/// An operator may lower the filter limits (`--max-filter-length`, `--max-filter-depth`): longer
/// or deeper filters are a 400 `invalidFilter` naming the limit, by GET and by `.search`.
#[tokio::test]
async fn a_deployment_may_lower_the_filter_limits() {
    let filter = scim_proto::filter::FilterLimits { max_len: 40, max_depth: 2 };
    let s = TestServer::start_with(scimd_domain::Limits { filter, ..scimd_domain::Limits::default() }).await;
    let c = s.scim();
    let ok = "userName eq \"a\" or (userName eq \"b\")";
    let long = "userName eq \"a\" or userName eq \"bbbbbbbbbbbbbbbbbbbbbbbb\"";
    let deep = "(((userName eq \"a\")))";
    assert_eq!(c.get(&format!("/Users?filter={}", enc(ok))).await.status, 200);
    for (text, mentions) in [(long, "the limit is 40"), (deep, "more than 2 levels deep")] {
        let r = c.get(&format!("/Users?filter={}", enc(text))).await;
        assert_scim_error(&r, 400, Some("invalidFilter"));
        assert!(r.body["detail"].as_str().unwrap().contains(mentions), "{}", r.text);
        let r = c.post("/Users/.search", &json!({ "schemas": [SEARCH_REQUEST], "filter": text })).await;
        assert_scim_error(&r, 400, Some("invalidFilter"));
    }
}
