//! Paging, sorting, projection and `.search` (RFC 7644 §3.4.2.3, §3.4.2.4, §3.4.3, §3.9).

use scimd_domain::Limits;
use scimd_testkit::{Client, Response, TestServer};
use serde_json::{Value, json};

use crate::support::{SEARCH_REQUEST, assert_scim_error, create, create_group, create_user, enc, ids, patch_op, user};

/// Creates users named `u00`, `u01`, ... and returns their ids in creation order.
async fn users(c: &Client, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(create_user(c, &format!("u{i:02}")).await);
    }
    out
}

/// Checks the ListResponse envelope and returns its ids.
#[track_caller]
fn page(r: &Response, total: u64, start: u64) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    assert_eq!(r.body["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"]), "{}", r.text);
    assert_eq!(r.body["totalResults"], total, "{}", r.text);
    assert_eq!(r.body["startIndex"], start, "{}", r.text);
    let returned = r.body["Resources"].as_array().map_or(0, Vec::len);
    assert_eq!(r.body["itemsPerPage"], returned, "itemsPerPage is what is returned: {}", r.text);
    ids(r)
}

fn search(body: Value) -> Value {
    let mut body = body;
    body["schemas"] = json!([SEARCH_REQUEST]);
    body
}

#[tokio::test]
async fn pages_are_stable_and_complete() {
    let s = TestServer::start().await;
    let c = s.scim();
    let all = users(&c, 7).await;
    assert_eq!(page(&c.get("/Users").await, 7, 1), all, "insertion order without sortBy");
    let mut seen = Vec::new();
    for start in [1, 4, 7] {
        let r = c.get(&format!("/Users?startIndex={start}&count=3")).await;
        let got = page(&r, 7, start);
        assert_eq!(got.len(), if start == 7 { 1 } else { 3 });
        seen.extend(got);
        // A write between pages does not move resources between pages.
        let r = c
            .patch(
                &format!("/Users/{}", all[0]),
                &patch_op(json!([{ "op": "replace", "path": "title", "value": format!("t{start}") }])),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(seen, all, "every resource once, in order");
    // The same pages twice give the same ids.
    let a = ids(&c.get("/Users?startIndex=2&count=4").await);
    let b = ids(&c.get("/Users?startIndex=2&count=4").await);
    assert_eq!(a, b);
    assert_eq!(a, all[1..5].to_vec());
}

#[tokio::test]
async fn count_zero_returns_only_the_total() {
    let s = TestServer::start().await;
    let c = s.scim();
    users(&c, 3).await;
    let r = c.get("/Users?count=0").await;
    assert!(page(&r, 3, 1).is_empty());
    assert_eq!(r.body["itemsPerPage"], 0);
    assert!(r.body.get("Resources").is_none_or(|v| v == &json!([])), "{}", r.text);
    let r = c.get(&format!("/Users?count=0&filter={}", enc("userName sw \"u0\""))).await;
    assert_eq!(r.body["totalResults"], 3, "{}", r.text);
}

#[tokio::test]
async fn start_index_beyond_the_total_is_an_empty_page() {
    // Okta's QA suite: startIndex=101&count=100 with two users.
    let s = TestServer::start().await;
    let c = s.scim();
    users(&c, 2).await;
    let r = c.get("/Users?startIndex=101&count=100").await;
    assert!(page(&r, 2, 101).is_empty());
    assert_eq!(r.body["itemsPerPage"], 0);
    let r = c.get("/Users?startIndex=3").await;
    assert!(page(&r, 2, 3).is_empty());
    let r = c.get("/Users?startIndex=99999999999999999999999").await;
    assert_eq!(r.status, 200, "huge numbers saturate: {}", r.text);
    assert_eq!(r.body["totalResults"], 2);
    assert_eq!(r.body["itemsPerPage"], 0);
}

#[tokio::test]
async fn start_index_below_one_is_one() {
    let s = TestServer::start().await;
    let c = s.scim();
    let all = users(&c, 3).await;
    assert_eq!(page(&c.get("/Users?startIndex=0&count=2").await, 3, 1), all[..2].to_vec());
    assert_eq!(page(&c.get("/Users?startIndex=-5&count=2").await, 3, 1), all[..2].to_vec());
}

#[tokio::test]
async fn negative_count_is_zero() {
    let s = TestServer::start().await;
    let c = s.scim();
    users(&c, 2).await;
    let r = c.get("/Users?count=-1").await;
    assert!(page(&r, 2, 1).is_empty());
    let r = c.get("/Users?count=ten").await;
    assert_scim_error(&r, 400, Some("invalidValue"));
}

#[tokio::test]
async fn count_above_the_maximum_is_clamped() {
    let s = TestServer::start_with(Limits { max_page_size: 3, default_page_size: 2, ..Limits::default() }).await;
    let c = s.scim();
    let all = users(&c, 5).await;
    assert_eq!(page(&c.get("/Users?count=1000").await, 5, 1), all[..3].to_vec());
    assert_eq!(page(&c.get("/Users").await, 5, 1), all[..2].to_vec(), "the default page size");
    let r = c.post("/Users/.search", &search(json!({ "count": 50 }))).await;
    assert_eq!(page(&r, 5, 1), all[..3].to_vec());

    // With default limits (maxResults 1000) a larger count is not an error either.
    let s = TestServer::start().await;
    let c = s.scim();
    let all = users(&c, 2).await;
    assert_eq!(page(&c.get("/Users?count=5000").await, 2, 1), all);
    let spc = c.get("/ServiceProviderConfig").await;
    assert_eq!(spc.body["filter"]["maxResults"], 1000);
}

#[tokio::test]
async fn total_is_exact_with_a_filter() {
    let s = TestServer::start().await;
    let c = s.scim();
    let all = users(&c, 12).await;
    for i in [0, 3, 5, 8, 11] {
        let r = c
            .patch(
                &format!("/Users/{}", all[i]),
                &patch_op(json!([{ "op": "add", "path": "title", "value": "Engineer" }])),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let expected = [all[0].clone(), all[3].clone(), all[5].clone(), all[8].clone(), all[11].clone()];
    let f = enc("title eq \"engineer\"");
    assert_eq!(page(&c.get(&format!("/Users?filter={f}&count=2")).await, 5, 1), expected[..2].to_vec());
    assert_eq!(page(&c.get(&format!("/Users?filter={f}&count=2&startIndex=3")).await, 5, 3), expected[2..4].to_vec());
    assert_eq!(page(&c.get(&format!("/Users?filter={f}&count=2&startIndex=5")).await, 5, 5), expected[4..].to_vec());
    let f = enc("userName sw \"u1\" and active eq true");
    assert_eq!(page(&c.get(&format!("/Users?filter={f}&count=1")).await, 2, 1).len(), 1);
}

#[tokio::test]
async fn sort_by_user_name() {
    let s = TestServer::start().await;
    let c = s.scim();
    let carol = create_user(&c, "carol").await;
    let alice = create_user(&c, "Alice").await;
    let bob = create_user(&c, "bob").await;
    let asc = vec![alice.clone(), bob.clone(), carol.clone()];
    let desc = vec![carol.clone(), bob.clone(), alice.clone()];
    assert_eq!(page(&c.get("/Users?sortBy=userName").await, 3, 1), asc, "ascending by default, ignoring case");
    assert_eq!(page(&c.get("/Users?sortBy=userName&sortOrder=ascending").await, 3, 1), asc);
    assert_eq!(page(&c.get("/Users?sortBy=userName&sortOrder=descending").await, 3, 1), desc);
    assert_eq!(
        page(&c.get("/Users?sortBy=USERNAME&sortOrder=Descending&count=2&startIndex=2").await, 3, 2),
        desc[1..].to_vec()
    );
    let r = c.get("/Users?sortBy=userName&sortOrder=sideways").await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    let r = c.get("/Users?sortBy=nosuchattribute").await;
    assert_scim_error(&r, 400, Some("invalidValue"));
}

#[tokio::test]
async fn sort_by_an_unindexed_attribute() {
    let s = TestServer::start().await;
    let c = s.scim();
    let make = |name: &'static str, title: Option<&'static str>, given: &'static str| {
        let c = c.clone();
        async move {
            let mut body = user(name);
            if let Some(t) = title {
                body["title"] = json!(t);
            }
            body["name"]["givenName"] = json!(given);
            create(&c, "/Users", &body).await
        }
    };
    let none = make("n", None, "zed").await;
    let b = make("b", Some("b-title"), "Yan").await;
    let a = make("a", Some("A-title"), "xavier").await;
    let c3 = make("c", Some("c-title"), "Walt").await;
    assert_eq!(page(&c.get("/Users?sortBy=title").await, 4, 1), vec![a.clone(), b.clone(), c3.clone(), none.clone()]);
    // RFC 7644 §3.4.2.3: resources without a value sort last ascending and first descending.
    assert_eq!(
        page(&c.get("/Users?sortBy=title&sortOrder=descending").await, 4, 1),
        vec![none.clone(), c3.clone(), b.clone(), a.clone()]
    );
    assert_eq!(
        page(&c.get("/Users?sortBy=name.givenName").await, 4, 1),
        vec![c3.clone(), a.clone(), b.clone(), none.clone()]
    );
    // A multi-valued attribute sorts by its primary value.
    for (id, email) in [(&a, "c@x.example"), (&b, "a@x.example"), (&c3, "b@x.example")] {
        let ops = json!([
            { "op": "add", "path": "emails", "value": [{ "value": "zzz@x.example", "type": "other" }] },
            { "op": "add", "path": "emails", "value": [{ "value": email, "type": "home", "primary": true }] },
        ]);
        let r = c.patch(&format!("/Users/{id}"), &patch_op(ops)).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let r = c.get(&format!("/Users?sortBy=emails&filter={}", enc("title pr"))).await;
    assert_eq!(page(&r, 3, 1), vec![b.clone(), c3.clone(), a.clone()]);
    let r = c.get(&format!("/Users?sortBy=emails.value&sortOrder=descending&filter={}", enc("title pr"))).await;
    assert_eq!(page(&r, 3, 1), vec![a.clone(), c3.clone(), b.clone()]);

    // With a filter and paging.
    let f = enc("title pr");
    assert_eq!(
        page(&c.get(&format!("/Users?filter={f}&sortBy=title&sortOrder=descending&count=2")).await, 3, 1),
        vec![c3, b]
    );
}

#[tokio::test]
async fn missing_values_sort_last_ascending_and_first_descending() {
    // externalId is kept in a column of its own; title (above) is evaluated in memory.
    let s = TestServer::start().await;
    let c = s.scim();
    let with = |name: &str, external: Option<&str>| {
        let mut body = user(name);
        if let Some(e) = external {
            body["externalId"] = json!(e);
        }
        body
    };
    let none = create(&c, "/Users", &with("n", None)).await;
    let b = create(&c, "/Users", &with("b", Some("B"))).await;
    let a = create(&c, "/Users", &with("a", Some("A"))).await;
    assert_eq!(page(&c.get("/Users?sortBy=externalId").await, 3, 1), vec![a.clone(), b.clone(), none.clone()]);
    assert_eq!(page(&c.get("/Users?sortBy=externalId&sortOrder=descending").await, 3, 1), vec![none, b, a]);
}

#[tokio::test]
async fn sort_by_meta_dates() {
    let s = TestServer::start().await;
    let c = s.scim();
    let mut created = Vec::new();
    for name in ["m", "k", "z"] {
        created.push(create_user(&c, name).await);
        s.clock.advance(time::Duration::seconds(10));
    }
    assert_eq!(page(&c.get("/Users?sortBy=meta.created").await, 3, 1), created);
    let mut reversed = created.clone();
    reversed.reverse();
    assert_eq!(page(&c.get("/Users?sortBy=meta.created&sortOrder=descending").await, 3, 1), reversed);
    // The oldest, changed now, is the most recently modified.
    let r = c
        .patch(
            &format!("/Users/{}", created[0]),
            &patch_op(json!([{ "op": "replace", "path": "title", "value": "x" }])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        page(&c.get("/Users?sortBy=meta.lastModified").await, 3, 1),
        vec![created[1].clone(), created[2].clone(), created[0].clone()]
    );
}

#[tokio::test]
async fn projection_on_get_and_list() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = create_user(&c, "alice").await;
    let r = c.get(&format!("/Users/{id}?attributes=userName")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let keys: Vec<&String> = r.body.as_object().unwrap().keys().collect();
    let mut keys: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
    keys.sort();
    assert_eq!(keys, vec!["id", "schemas", "userName"], "{}", r.text);

    let r = c.get(&format!("/Users/{id}?attributes=name.familyName,emails.value")).await;
    assert_eq!(r.body["name"], json!({ "familyName": "alice" }), "{}", r.text);
    assert_eq!(r.body["emails"], json!([{ "value": "alice@example.com" }]), "{}", r.text);
    assert!(r.body.get("active").is_none());

    let r = c.get(&format!("/Users/{id}?excludedAttributes=emails,name.givenName,meta")).await;
    assert!(r.body.get("emails").is_none(), "{}", r.text);
    assert!(r.body.get("meta").is_none(), "{}", r.text);
    assert_eq!(r.body["name"], json!({ "familyName": "alice" }));
    assert_eq!(r.body["userName"], "alice");
    let r = c.get(&format!("/Users/{id}?excludedAttributes=id")).await;
    assert_eq!(r.body["id"], id.as_str(), "id is always returned");

    let r = c.get("/Users?attributes=userName,active").await;
    assert_eq!(
        r.body["Resources"][0],
        json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": id, "userName": "alice", "active": true })
    );
    let r = c.get("/Users?excludedAttributes=emails").await;
    assert!(r.body["Resources"][0].get("emails").is_none(), "{}", r.text);
    assert!(r.body["Resources"][0].get("name").is_some());

    let r = c.get("/Users?attributes=userName&excludedAttributes=emails").await;
    assert_scim_error(&r, 400, Some("invalidValue"));
}

#[tokio::test]
async fn projection_on_search() {
    let s = TestServer::start().await;
    let c = s.scim();
    let id = create_user(&c, "alice").await;
    let r = c
        .post("/Users/.search", &search(json!({ "attributes": ["userName"], "filter": "userName eq \"alice\"" })))
        .await;
    assert_eq!(page(&r, 1, 1), vec![id.clone()]);
    assert_eq!(
        r.body["Resources"][0],
        json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": id, "userName": "alice" })
    );
    let r = c.post("/Users/.search", &search(json!({ "excludedAttributes": "emails,meta" }))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["Resources"][0].get("emails").is_none(), "{}", r.text);
    assert!(r.body["Resources"][0].get("meta").is_none(), "{}", r.text);
    assert_eq!(r.body["Resources"][0]["userName"], "alice");
}

#[tokio::test]
async fn projection_on_writes() {
    let s = TestServer::start().await;
    let c = s.scim();
    let r = c.send(reqwest::Method::POST, "/Users?attributes=userName", Some(&user("alice")), &[]).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.body,
        json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": id, "userName": "alice" })
    );
    assert!(r.header("etag").is_some(), "headers stay");

    let mut body = user("alice");
    body["title"] = json!("Engineer");
    let r = c.send(reqwest::Method::PUT, &format!("/Users/{id}?attributes=userName"), Some(&body), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body,
        json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": id, "userName": "alice" })
    );

    let r = c
        .send(
            reqwest::Method::PATCH,
            &format!("/Users/{id}?attributes=title"),
            Some(&patch_op(json!([{ "op": "replace", "path": "title", "value": "CTO" }]))),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": id, "title": "CTO" }));

    let r = c
        .send(
            reqwest::Method::PATCH,
            &format!("/Users/{id}?excludedAttributes=emails,name,meta"),
            Some(&patch_op(json!([{ "op": "replace", "path": "title", "value": "CEO" }]))),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.body.get("emails").is_none() && r.body.get("name").is_none() && r.body.get("meta").is_none(),
        "{}",
        r.text
    );
    assert_eq!(r.body["title"], "CEO");
    // The projection shapes the response only: the resource is whole.
    let got = c.get(&format!("/Users/{id}")).await;
    assert_eq!(got.body["emails"][0]["value"], "alice@example.com");

    // Groups too: members left out of the response of a member PATCH.
    let g = create_group(&c, "G", &[&id]).await;
    let r = c
        .send(
            reqwest::Method::PATCH,
            &format!("/Groups/{g}?excludedAttributes=members"),
            Some(&patch_op(json!([{ "op": "replace", "path": "displayName", "value": "H" }]))),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body.get("members").is_none(), "{}", r.text);
    assert_eq!(r.body["displayName"], "H");
}

#[tokio::test]
async fn search_endpoints() {
    let s = TestServer::start().await;
    let c = s.scim();
    let all = users(&c, 3).await;
    let g = create_group(&c, "Team", &[&all[0]]).await;
    let r = c.post("/Users/.search", &search(json!({ "filter": "userName sw \"u0\"", "startIndex": 2, "count": 1, "sortBy": "userName", "sortOrder": "descending" }))).await;
    assert_eq!(page(&r, 3, 2), vec![all[1].clone()]);
    let r = c.post("/Groups/.search", &search(json!({ "filter": "displayName eq \"team\"" }))).await;
    assert_eq!(page(&r, 1, 1), vec![g.clone()]);
    assert_eq!(r.body["Resources"][0]["members"][0]["value"], all[0].as_str());
    // Counts may come as numbers or as strings.
    let r = c.post("/Users/.search", &search(json!({ "count": "2" }))).await;
    assert_eq!(page(&r, 3, 1).len(), 2);
    // A SearchRequest needs its schema.
    let r = c.post("/Users/.search", &json!({ "filter": "userName pr" })).await;
    assert_scim_error(&r, 400, Some("invalidSyntax"));
    let r = c.post("/Users/.search", &json!(["not", "an", "object"])).await;
    assert_scim_error(&r, 400, Some("invalidSyntax"));
    let r = c.post("/Users/.search", &search(json!({ "filter": "userName eq" }))).await;
    assert_scim_error(&r, 400, Some("invalidFilter"));
    // GET on .search is not a resource read.
    let r = c.get("/Users/.search").await;
    assert!(matches!(r.status, 404 | 405), "{}", r.text);
    assert_scim_error(&r, r.status, None);
}

#[tokio::test]
async fn root_search_returns_users_and_groups_with_paging_across_them() {
    let s = TestServer::start().await;
    let c = s.scim();
    let u = users(&c, 3).await;
    let g1 = create_group(&c, "g1", &[]).await;
    let g2 = create_group(&c, "g2", &[&u[0]]).await;
    let everything = vec![u[0].clone(), u[1].clone(), u[2].clone(), g1.clone(), g2.clone()];

    let r = c.post("/.search", &search(json!({}))).await;
    assert_eq!(page(&r, 5, 1), everything);
    let types: Vec<&str> =
        r.body["Resources"].as_array().unwrap().iter().map(|x| x["meta"]["resourceType"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["User", "User", "User", "Group", "Group"]);
    assert_eq!(r.body["Resources"][4]["members"][0]["value"], u[0].as_str());
    assert_eq!(r.body["Resources"][0]["groups"][0]["value"], g2.as_str());

    let mut walked = Vec::new();
    for start in [1, 3, 5] {
        let r = c.post("/.search", &search(json!({ "startIndex": start, "count": 2 }))).await;
        walked.extend(page(&r, 5, start));
    }
    assert_eq!(walked, everything, "pages cross from Users into Groups without gaps or repeats");
    let r = c.post("/.search", &search(json!({ "startIndex": 3, "count": 1 }))).await;
    assert_eq!(page(&r, 5, 3), vec![u[2].clone()]);
    let r = c.post("/.search", &search(json!({ "startIndex": 4, "count": 10 }))).await;
    assert_eq!(page(&r, 5, 4), vec![g1.clone(), g2.clone()]);
    let r = c.post("/.search", &search(json!({ "startIndex": 9, "count": 10 }))).await;
    assert!(page(&r, 5, 9).is_empty());
    let r = c.post("/.search", &search(json!({ "count": 0 }))).await;
    assert!(page(&r, 5, 1).is_empty());

    // A filter on an attribute both types have.
    let r = c.post("/.search", &search(json!({ "filter": "meta.resourceType eq \"Group\"" }))).await;
    assert_eq!(page(&r, 2, 1), vec![g1.clone(), g2.clone()]);
    let r = c.post("/.search", &search(json!({ "filter": "userName eq \"u01\" or displayName eq \"g2\"" }))).await;
    assert_eq!(page(&r, 2, 1), vec![u[1].clone(), g2.clone()]);
    // Projection per type.
    let r = c
        .post(
            "/.search",
            &search(json!({ "attributes": ["displayName"], "filter": "displayName pr or userName eq \"u00\"" })),
        )
        .await;
    assert_eq!(page(&r, 3, 1), vec![u[0].clone(), g1.clone(), g2.clone()]);
    assert_eq!(
        r.body["Resources"][1],
        json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": g1, "displayName": "g1" })
    );
    assert!(r.body["Resources"][0].get("userName").is_none(), "{}", r.text);
    // An attribute neither type has.
    let r = c.post("/.search", &search(json!({ "filter": "nosuch eq \"x\"" }))).await;
    assert_scim_error(&r, 400, Some("invalidFilter"));
    // The base URL itself is not a list.
    assert_scim_error(&c.get("/").await, 404, None);
}

/// Walks `/Users` with cursor paging (RFC 9865) from an empty cursor; every page's ids in order.
async fn cursor_walk(c: &Client, query: &str, count: usize) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = c.get(&format!("/Users?{query}cursor={}&count={count}", enc(&cursor))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.body.get("startIndex").is_none(), "no startIndex under cursor paging: {}", r.text);
        let got = ids(&r);
        assert_eq!(r.body["itemsPerPage"], got.len(), "{}", r.text);
        pages.push(got);
        match r.body["nextCursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => return pages,
        }
        assert!(pages.len() < 100, "cursor paging does not end");
    }
}

/// The ids of a tenant's users in cursor order: `meta.created`, then the id's bytes.
async fn cursor_order(c: &Client) -> Vec<String> {
    let r = c.get("/Users?count=1000").await;
    let mut users: Vec<(String, String)> = r.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["meta"]["created"].as_str().unwrap().to_owned(), u["id"].as_str().unwrap().to_owned()))
        .collect();
    users.sort();
    users.into_iter().map(|(_, id)| id).collect()
}

#[tokio::test]
async fn cursor_paging_walks_every_resource_once_in_creation_order() {
    let s = TestServer::start().await;
    let c = s.scim();
    users(&c, 7).await;
    let all = cursor_order(&c).await;
    let pages = cursor_walk(&c, "", 3).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1], "the last page has no nextCursor");
    assert_eq!(pages.concat(), all);
    // An exact multiple of the page size: the last full page says there is nothing after it.
    assert_eq!(cursor_walk(&c, "", 7).await, std::slice::from_ref(&all));
    let first = c.get("/Users?cursor=&count=3").await;
    assert_eq!(first.body["totalResults"], 7, "{}", first.text);
}

#[tokio::test]
async fn a_cursor_survives_deletions_and_sees_later_creations() {
    let s = TestServer::start().await;
    let c = s.scim();
    users(&c, 6).await;
    let all = cursor_order(&c).await;
    let r = c.get("/Users?cursor=&count=2").await;
    let next = r.body["nextCursor"].as_str().unwrap().to_owned();
    // The last user of the page the cursor came from, and the next one, go; a new one comes.
    assert_eq!(c.delete(&format!("/Users/{}", all[1])).await.status, 204);
    assert_eq!(c.delete(&format!("/Users/{}", all[2])).await.status, 204);
    s.clock.advance(time::Duration::seconds(1));
    let newcomer = create_user(&c, "newcomer").await;
    let r = c.get(&format!("/Users?cursor={}&count=10", enc(&next))).await;
    assert_eq!(ids(&r), [all[3].clone(), all[4].clone(), all[5].clone(), newcomer], "{}", r.text);
    assert!(r.body.get("nextCursor").is_none(), "{}", r.text);
}

#[tokio::test]
async fn cursor_paging_with_a_filter_and_through_search() {
    let s = TestServer::start().await;
    let c = s.scim();
    users(&c, 8).await;
    let all = cursor_order(&c).await;
    // u00..u07; "u0" matches all of them, `active` stays in SQL, `title` is evaluated in memory.
    let pages = cursor_walk(&c, &format!("filter={}&", enc("userName sw \"u0\" and active eq true")), 3).await;
    assert_eq!(pages.concat(), all);
    for id in &all[..4] {
        let title = patch_op(json!([{ "op": "add", "path": "title", "value": "x" }]));
        assert_eq!(c.patch(&format!("/Users/{id}"), &title).await.status, 200);
    }
    let pages = cursor_walk(&c, &format!("filter={}&", enc("title eq \"x\"")), 3).await;
    assert_eq!(pages.concat(), all[..4].to_vec());
    let r = c.post("/Users/.search", &search(json!({ "cursor": "", "count": 5 }))).await;
    assert_eq!(ids(&r), all[..5].to_vec(), "{}", r.text);
    let next = r.body["nextCursor"].as_str().unwrap();
    let r = c.post("/Users/.search", &search(json!({ "cursor": next, "count": 5 }))).await;
    assert_eq!(ids(&r), all[5..].to_vec(), "{}", r.text);
    assert!(r.body.get("nextCursor").is_none(), "{}", r.text);
}

#[tokio::test]
async fn cursor_misuse_is_a_clear_400() {
    let s = TestServer::start().await;
    let c = s.scim();
    users(&c, 2).await;
    for bad in ["nonsense", "00", "e29c"] {
        let r = c.get(&format!("/Users?cursor={bad}")).await;
        assert_scim_error(&r, 400, Some("invalidCursor"));
    }
    assert_scim_error(&c.get("/Users?cursor=&startIndex=2").await, 400, Some("invalidValue"));
    assert_scim_error(&c.get("/Users?cursor=&sortBy=userName").await, 400, Some("invalidValue"));
    let r = c.post("/.search", &search(json!({ "cursor": "" }))).await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    let spc = c.get("/ServiceProviderConfig").await;
    assert_eq!(spc.body["pagination"]["cursor"], true, "{}", spc.text);
    assert_eq!(spc.body["pagination"]["index"], true, "{}", spc.text);
    assert_eq!(spc.body["pagination"]["defaultPaginationMethod"], "index", "{}", spc.text);
}

/// `totalResults` of an unfiltered list, and of a filter every resource matches.
async fn totals(c: &Client, endpoint: &str, attribute: &str) -> (u64, u64) {
    let all = c.get(&format!("{endpoint}?count=0")).await;
    let matching = c.get(&format!("{endpoint}?count=0&filter={}", enc(&format!("{attribute} pr")))).await;
    (all.body["totalResults"].as_u64().unwrap(), matching.body["totalResults"].as_u64().unwrap())
}

#[tokio::test]
async fn an_unfiltered_total_follows_every_change_of_what_is_visible() {
    use scimd_domain::provisioning::{DeletePolicy, TenantSettings};
    let s = TestServer::start().await;
    let c = s.scim();
    let (_, other_token) = s.new_tenant("elsewhere").await;
    let other = s.scim_with(Some(&other_token));
    create_group(&other, "theirs", &[]).await;
    let ids = users(&c, 5).await;
    let group = create_group(&c, "mine", &[]).await;
    create_group(&c, "kept", &[]).await;
    assert_eq!(totals(&c, "/Users", "userName").await, (5, 5));
    // Deleted under the preserve policy: hidden, then back on re-hire.
    assert_eq!(c.delete(&format!("/Users/{}", ids[0])).await.status, 204);
    assert_eq!(totals(&c, "/Users", "userName").await, (4, 4));
    assert_eq!(c.post("/Users", &user("u00")).await.status, 201);
    assert_eq!(totals(&c, "/Users", "userName").await, (5, 5));
    // Deactivated: still listed.
    let deactivate = patch_op(json!([{"op": "replace", "path": "active", "value": false}]));
    assert_eq!(c.patch(&format!("/Users/{}", ids[1]), &deactivate).await.status, 200);
    assert_eq!(totals(&c, "/Users", "userName").await, (5, 5));
    // Deleted, then purged while hidden: counted once.
    assert_eq!(c.delete(&format!("/Users/{}", ids[2])).await.status, 204);
    s.service.purge_user(&s.tenant, &ids[2]).await.unwrap();
    assert_eq!(totals(&c, "/Users", "userName").await, (4, 4));
    // Deleted under the purge policy: the row goes.
    let settings = TenantSettings { delete_policy: DeletePolicy::Purge, ..Default::default() };
    s.service.set_settings(&s.tenant, settings).await.unwrap();
    assert_eq!(c.delete(&format!("/Users/{}", ids[3])).await.status, 204);
    assert_eq!(totals(&c, "/Users", "userName").await, (3, 3));
    assert_eq!(totals(&c, "/Groups", "displayName").await, (2, 2));
    assert_eq!(c.delete(&format!("/Groups/{group}")).await.status, 204);
    assert_eq!(totals(&c, "/Groups", "displayName").await, (1, 1));
    // Another tenant's resources count only there.
    assert_eq!(totals(&other, "/Groups", "displayName").await, (1, 1));
    assert_eq!(totals(&other, "/Users", "userName").await, (0, 0));
}
