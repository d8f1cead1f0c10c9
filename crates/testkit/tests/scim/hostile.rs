//! Hostile input: a corpus of several hundred malformed or hostile requests, sent as raw bytes on
//! their own connections. Each must be answered with a 4xx SCIM error (or, for bytes that are not
//! HTTP at all, a 4xx from the HTTP parser or a closed connection) within a bounded time; no 5xx
//! ever, and the server is healthy afterwards. Slow clients are cut off after the request timeout.

use std::time::{Duration, Instant};

use scimd_domain::Limits;
use scimd_domain::rate_limit::RateLimit;
use scimd_server::Settings;
use scimd_testkit::TestServer;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{create_user, user};

/// The server's request timeout in this test: short, so that slow clients are cut off quickly.
const TIMEOUT: Duration = Duration::from_secs(1);
/// The longest any answer may take (a debug build, a busy machine).
const BOUND: Duration = Duration::from_secs(10);

/// What a case must get back.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// A 4xx SCIM error: JSON, the SCIM error schema, `status` a string equal to the code.
    ScimError,
    /// Bytes that are not a valid HTTP request: a 4xx from the HTTP parser, or the connection
    /// closed, never a 5xx.
    HttpRefusal,
}

struct Case {
    name: String,
    raw: Vec<u8>,
    expect: Expect,
}

struct Reply {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

/// Reads whatever the server answers until it closes the connection (every request here says
/// `Connection: close`), or `None` when it closed without an answer.
async fn exchange(port: u16, raw: &[u8]) -> Option<Reply> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    // A server that answers before reading everything may reset the connection meanwhile.
    let _ = stream.write_all(raw).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(BOUND, stream.read_to_end(&mut answer)).await.expect("answered within the bound");
    parse(&answer)
}

fn parse(answer: &[u8]) -> Option<Reply> {
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let mut body = answer[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Some(Reply { status, headers: head, body })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 || data.len() < end + 2 + size {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 4 + size..];
    }
    out
}

/// A request with a JSON (or any) body and the headers a client would send.
fn request(method: &str, path: &str, token: &str, content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if !token.is_empty() {
        raw.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if let Some(ct) = content_type {
        raw.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    raw.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body);
    raw
}

fn enc(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// The corpus, built around one real user `id` of the tenant whose token is `token`.
fn corpus(token: &str, id: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut scim = |name: String, raw: Vec<u8>| cases.push(Case { name, raw, expect: Expect::ScimError });
    let json_ct = Some("application/scim+json");
    let post_user = |body: &[u8]| request("POST", "/scim/v2/Users", token, json_ct, body);

    // Broken and truncated JSON: every prefix of a valid body.
    let valid = user("truncated").to_string().into_bytes();
    for len in 0..valid.len() {
        scim(format!("truncated at byte {len}"), post_user(&valid[..len]));
    }
    for broken in [
        r#"{"userName": "a",}"#,
        r#"{'userName': 'a'}"#,
        r#"{"userName": "a" /* comment */}"#,
        r#"{"userName": NaN}"#,
        r#"{"userName": undefined}"#,
        r#"{userName: "a"}"#,
        "\u{feff}{\"userName\": \"bom\"}",
        r#"{"userName": "a"}}"#,
        r#"{"userName": "a"} {"userName": "b"}"#,
        r#"{"userName": "\uD800"}"#,
        r#"{"userName": "\x41"}"#,
        "null",
        "[]",
        "\"a string\"",
        "12345",
        "true",
        "{\"userName\": \"tab\tinside\"}",
    ] {
        scim(format!("broken JSON {broken:?}"), post_user(broken.as_bytes()));
    }

    // Wrong types, attribute by attribute.
    // (A one-element array for a single-valued attribute, and a single value for a multi-valued
    // one, are accepted on purpose: Entra sends both; docs/scim.md.)
    let wrong: &[(&str, &[Value])] = &[
        ("userName", &[json!(123), json!(true), json!({ "a": 1 }), json!(null), json!([1]), json!(["a", "b"])]),
        ("displayName", &[json!(123), json!(false), json!({ "a": 1 }), json!(["a", "b"])]),
        ("externalId", &[json!(123), json!(true), json!({ "a": 1 }), json!([1])]),
        ("nickName", &[json!(1.5), json!([1]), json!({})]),
        ("name", &[json!(123), json!("a name"), json!(true), json!([1, 2])]),
        ("emails", &[json!(123), json!(true), json!([1, 2]), json!([["a"]]), json!({ "value": 5 })]),
        ("phoneNumbers", &[json!(5), json!([true])]),
        ("addresses", &[json!("street"), json!([5])]),
        ("active", &[json!(12), json!({ "a": true }), json!([true, false])]),
        ("schemas", &[json!(5), json!([5]), json!({ "a": 1 })]),
        ("roles", &[json!(7), json!([7])]),
        ("x509Certificates", &[json!(7), json!([1])]),
    ];
    for (attribute, values) in wrong {
        for value in *values {
            let mut body = user(&format!("wrong-{attribute}"));
            body[*attribute] = value.clone();
            scim(format!("{attribute} = {value}"), post_user(body.to_string().as_bytes()));
        }
    }

    // Huge numbers and strings.
    for number in ["1e400", "-1e400", "123456789012345678901234567890", "1e-400000", "0.0000000000000000000001e99999"] {
        let body = format!(r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":{number}}}"#);
        scim(format!("number {number} as userName"), post_user(body.as_bytes()));
        let body = format!(
            r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"n{}","active":{number}}}"#,
            number.len()
        );
        scim(format!("number {number} as active"), post_user(body.as_bytes()));
    }
    for size in [70 * 1024, 900 * 1024] {
        let mut body = user("huge-string");
        body["displayName"] = json!("x".repeat(size));
        scim(format!("displayName of {size} bytes"), post_user(body.to_string().as_bytes()));
    }
    let mut body = user("over-the-limit");
    body["displayName"] = json!("x".repeat(2 * 1024 * 1024));
    scim("a body over the limit".into(), post_user(body.to_string().as_bytes()));
    let mut body = user("many-values");
    body["emails"] = Value::Array((0..5000).map(|i| json!({ "value": format!("e{i}@example.com") })).collect());
    scim("5 000 emails".into(), post_user(body.to_string().as_bytes()));

    // Invalid UTF-8 in the body, the path, the query and a header.
    for bad in [&b"\xff\xfe"[..], b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"a\xc0\xafb"] {
        let mut body = br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":""#.to_vec();
        body.extend_from_slice(bad);
        body.extend_from_slice(br#""}"#);
        scim(format!("invalid UTF-8 {bad:x?} in the body"), post_user(&body));
        let mut raw = b"GET /scim/v2/Users/".to_vec();
        raw.extend_from_slice(&bad.iter().map(|b| format!("%{b:02X}")).collect::<String>().into_bytes());
        raw.extend_from_slice(
            format!(" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        scim(format!("invalid UTF-8 {bad:x?} in the path"), raw);
        let filter: String = bad.iter().map(|b| format!("%{b:02X}")).collect();
        let path = format!("/scim/v2/Users?filter=userName%20eq%20%22{filter}%22");
        scim(format!("invalid UTF-8 {bad:x?} in the filter"), request("GET", &path, token, None, b""));
    }
    let mut raw =
        b"GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer \xff\xfe\r\n\r\n"
            .to_vec();
    scim("invalid UTF-8 in the Authorization header".into(), raw.clone());
    raw = b"GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic dXNlcjpwYXNz\r\n\r\n"
        .to_vec();
    scim("Basic authentication".into(), raw);
    for auth in ["Bearer", "Bearer ", &format!("Bearer {}", "t".repeat(8000)), "bearer\tx", &format!("Bearer {token}x")]
    {
        let raw =
            format!("GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {auth}\r\n\r\n");
        scim(format!("Authorization {:.40}", auth), raw.into_bytes());
    }

    // Deeply nested values.
    for depth in [200, 10_000, 100_000] {
        let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let body =
            format!(r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"deep","x":{nested}}}"#);
        scim(format!("arrays nested {depth} deep"), post_user(body.as_bytes()));
        let nested = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
        scim(format!("objects nested {depth} deep"), post_user(nested.as_bytes()));
    }
    let mut deep = json!("leaf");
    for _ in 0..20 {
        deep = json!({ "level": deep });
    }
    let mut body = user("deep-extension");
    body["schemas"] = json!([
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "urn:example:params:scim:schemas:extension:deep:2.0:User"
    ]);
    body["urn:example:params:scim:schemas:extension:deep:2.0:User"] = json!({ "value": deep });
    scim("a custom extension nested 20 deep".into(), post_user(body.to_string().as_bytes()));

    // Filter bombs, by GET and by POST .search.
    let clause = r#"userName eq "a""#;
    let filters = vec![
        ("1 000 parentheses", format!("{}{clause}{}", "(".repeat(1000), ")".repeat(1000))),
        ("100 000 parentheses", format!("{}{clause}{}", "(".repeat(100_000), ")".repeat(100_000))),
        ("500 nested not()", format!("{}{clause}{}", "not(".repeat(500), ")".repeat(500))),
        ("10 000 ors", vec![clause; 10_000].join(" or ")),
        ("201 ands", vec![clause; 201].join(" and ")),
        ("a 5 000-character value", format!(r#"userName eq "{}""#, "v".repeat(5000))),
        ("a 2 000-character attribute", format!(r#"{} eq "a""#, "a".repeat(2000))),
        ("nested value filters", r#"emails[value eq "a" and emails[value eq "b"]]"#.to_owned()),
        ("unclosed value filter", r#"emails[value eq "a""#.to_owned()),
        ("unknown operator", r#"userName zz "a""#.to_owned()),
        ("unterminated string", r#"userName eq "a"#.to_owned()),
        ("missing value", "userName eq".to_owned()),
        ("only an operator", "or".to_owned()),
        ("presence with a value", r#"userName pr "a""#.to_owned()),
        ("a comparison with an object", r#"userName gt {"a":1}"#.to_owned()),
        ("control characters", "userName eq \"a\u{0}\u{1}\"".to_owned()),
        ("empty", "".to_owned()),
        ("1 000 value filters", vec![r#"emails[value eq "a"]"#; 1000].join(" or ")),
    ];
    for (name, filter) in &filters {
        let path = format!("/scim/v2/Users?filter={}", enc(filter));
        if path.len() < 60_000 {
            scim(format!("filter bomb by GET: {name}"), request("GET", &path, token, None, b""));
        }
        let body = json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": filter });
        let raw = request("POST", "/scim/v2/Users/.search", token, json_ct, body.to_string().as_bytes());
        scim(format!("filter bomb by .search: {name}"), raw);
    }
    for (name, query) in [
        ("count not a number", "count=abc"),
        ("startIndex not a number", "startIndex=x"),
        ("sortOrder unknown", "sortBy=userName&sortOrder=sideways"),
        ("attributes of 300 paths", &format!("attributes={}", vec!["userName"; 300].join(","))),
        ("attributes with a filter", "attributes=emails[value%20eq%20%22a%22]"),
        ("cursor that is not one", "cursor=not-a-cursor"),
    ] {
        scim(format!("query: {name}"), request("GET", &format!("/scim/v2/Users?{query}"), token, None, b""));
    }

    // PATCH bombs.
    let patch = |operations: Value| json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations });
    let patch_path = format!("/scim/v2/Users/{id}");
    let many: Vec<Value> = (0..1001).map(|_| json!({ "op": "replace", "path": "displayName", "value": "x" })).collect();
    let patches = vec![
        ("1 001 operations", patch(Value::Array(many))),
        ("a path of 10 000 characters", patch(json!([{ "op": "replace", "path": "a".repeat(10_000), "value": "x" }]))),
        (
            "a path with 500 dots",
            patch(json!([{ "op": "replace", "path": vec!["name"; 500].join("."), "value": "x" }])),
        ),
        ("an unclosed value filter", patch(json!([{ "op": "remove", "path": "emails[value eq \"a\"" }]))),
        (
            "a value filter bomb",
            patch(
                json!([{ "op": "remove", "path": format!("emails[{}]", vec![r#"value eq "a""#; 5000].join(" or ")) }]),
            ),
        ),
        ("an unknown op", patch(json!([{ "op": "explode", "path": "displayName" }]))),
        ("op not a string", patch(json!([{ "op": 5, "path": "displayName", "value": "x" }]))),
        ("Operations not an array", patch(json!({ "op": "replace" }))),
        ("Operations empty", patch(json!([]))),
        ("add without a value", patch(json!([{ "op": "add", "path": "displayName" }]))),
        ("replace id", patch(json!([{ "op": "replace", "path": "id", "value": "other" }]))),
        ("remove userName", patch(json!([{ "op": "remove", "path": "userName" }]))),
        ("a value nested 10 000 deep", json!(null)),
        ("schemas missing", json!({ "Operations": [{ "op": "replace", "path": "displayName", "value": "x" }] })),
    ];
    for (name, body) in patches {
        let raw = if body.is_null() {
            let nested = format!("{}\"x\"{}", "[".repeat(10_000), "]".repeat(10_000));
            let text = format!(
                r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{{"op":"replace","path":"displayName","value":{nested}}}]}}"#
            );
            request("PATCH", &patch_path, token, json_ct, text.as_bytes())
        } else {
            request("PATCH", &patch_path, token, json_ct, body.to_string().as_bytes())
        };
        scim(format!("PATCH bomb: {name}"), raw);
    }

    // Bulk bombs.
    let bulk = |operations: Value, extra: Value| {
        let mut body =
            json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": operations });
        if let Value::Object(extra) = extra {
            body.as_object_mut().unwrap().extend(extra);
        }
        body
    };
    let op = |i: usize| json!({ "method": "POST", "path": "/Users", "bulkId": format!("b{i}"), "data": user(&format!("bulk{i}")) });
    let bulks = vec![
        ("1 001 operations", bulk(Value::Array((0..1001).map(op).collect()), json!(null))),
        ("Operations not an array", bulk(json!("all of them"), json!(null))),
        ("failOnErrors not a number", bulk(json!([op(0)]), json!({ "failOnErrors": "many" }))),
        ("failOnErrors negative", bulk(json!([op(0)]), json!({ "failOnErrors": -1 }))),
        ("duplicate bulkIds", bulk(json!([op(1), op(1)]), json!(null))),
        ("schemas wrong", json!({ "schemas": ["urn:x"], "Operations": [op(2)] })),
        (
            "an operation without a method",
            bulk(json!([{ "path": "/Users", "bulkId": "x", "data": user("x") }]), json!(null)),
        ),
    ];
    for (name, body) in bulks {
        scim(
            format!("bulk bomb: {name}"),
            request("POST", "/scim/v2/Bulk", token, json_ct, body.to_string().as_bytes()),
        );
    }
    let mut body = bulk(json!([op(3)]), json!(null));
    body["padding"] = json!("p".repeat(5 * 1024 * 1024));
    scim(
        "bulk bomb: a 5 MiB payload".into(),
        request("POST", "/scim/v2/Bulk", token, json_ct, body.to_string().as_bytes()),
    );

    // Headers without bodies, and bodies without (the right) headers.
    for (method, path) in [
        ("POST", "/scim/v2/Users".to_owned()),
        ("PUT", patch_path.clone()),
        ("PATCH", patch_path.clone()),
        ("POST", "/scim/v2/Bulk".to_owned()),
        ("POST", "/scim/v2/Groups".to_owned()),
        ("POST", "/scim/v2/Users/.search".to_owned()),
    ] {
        scim(format!("{method} {path} with no body"), request(method, &path, token, json_ct, b""));
        let raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        );
        scim(format!("{method} {path} with no Content-Length"), raw.into_bytes());
        scim(format!("{method} {path} with a blank body"), request(method, &path, token, json_ct, b"   \r\n  "));
    }
    for ct in [
        "text/plain",
        "application/xml",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/scim+xml",
    ] {
        scim(
            format!("a JSON body sent as {ct:?}"),
            request("POST", "/scim/v2/Users", token, Some(ct), user("ct").to_string().as_bytes()),
        );
    }
    scim(
        "a form body".into(),
        request("POST", "/scim/v2/Users", token, Some("application/x-www-form-urlencoded"), b"userName=a"),
    );

    // Methods and paths that are not SCIM's.
    for (method, path) in [
        ("DELETE", "/scim/v2/Users"),
        ("PUT", "/scim/v2/Users"),
        ("PATCH", "/scim/v2/Groups"),
        ("POST", "/scim/v2/ServiceProviderConfig"),
        ("GET", "/scim/v2/Users/../../etc/passwd"),
        ("GET", "/scim/v2/Users/%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
        ("GET", "/scim/v2/Users/%00"),
        ("GET", "/scim/v2/Nothing"),
        ("GET", "/scim/v2/Users/a/b/c"),
        ("TRACE", "/scim/v2/Users"),
        ("GET", "/scim/v2/Schemas/urn:nothing"),
        ("GET", "/scim/v2/ResourceTypes/Nothing"),
    ] {
        scim(format!("{method} {path}"), request(method, path, token, None, b""));
    }
    let long_path = format!("/scim/v2/Users/{}", "a".repeat(20_000));
    scim("an id of 20 000 characters".into(), request("GET", &long_path, token, None, b""));
    scim("a foreign If-Match".into(), {
        let mut raw = request("DELETE", &patch_path, token, None, b"");
        let at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        raw.splice(at..at, b"\r\nIf-Match: W/\"999999999999999999999\"".iter().copied());
        raw
    });

    // Bytes that are not HTTP.
    let mut http =
        |name: &str, raw: &[u8]| cases.push(Case { name: name.into(), raw: raw.to_vec(), expect: Expect::HttpRefusal });
    http("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 this is a TLS hello\r\n\r\n");
    http("a request line without a version", b"GET /scim/v2/Users\r\n\r\n");
    http("a header without a colon", b"GET /scim/v2/Users HTTP/1.1\r\nHost x\r\n\r\n");
    http("a header name with a space", b"GET /scim/v2/Users HTTP/1.1\r\nBad Header: x\r\n\r\n");
    http(
        "two Content-Lengths",
        b"POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    );
    http("a negative Content-Length", b"POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n");
    http(
        "a Content-Length of 30 digits",
        b"POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999999999999999999999\r\n\r\n",
    );
    http(
        "broken chunked encoding",
        b"POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    );
    http("an HTTP/9 request", b"GET /scim/v2/Users HTTP/9.9\r\nHost: x\r\n\r\n");
    http(
        "a request line of 100 000 bytes",
        format!("GET /scim/v2/Users?filter={} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100_000)).as_bytes(),
    );
    http(
        "500 headers",
        format!("GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\n{}\r\n", "X-A: b\r\n".repeat(500)).as_bytes(),
    );
    http(
        "a header of 1 MiB",
        format!("GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "b".repeat(1 << 20)).as_bytes(),
    );
    http("a bare newline", b"\n\n\n\n");
    http(
        "a control character in Content-Type",
        b"POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nContent-Type: \x01\r\nContent-Length: 2\r\n\r\n{}",
    );
    cases
}

/// A 4xx SCIM error, as RFC 7644 §3.12 asks.
fn check_scim_error(reply: &Reply) -> Result<(), String> {
    if !(400..500).contains(&reply.status) {
        return Err(format!("status {}", reply.status));
    }
    if !reply.headers.to_ascii_lowercase().contains("content-type: application/scim+json") {
        return Err(format!("not application/scim+json: {}", reply.headers));
    }
    let body: Value = serde_json::from_slice(&reply.body).map_err(|e| format!("body is not JSON ({e})"))?;
    if body["schemas"][0] != "urn:ietf:params:scim:api:messages:2.0:Error"
        || body["status"].as_str() != Some(reply.status.to_string().as_str())
    {
        return Err(format!("not a SCIM error: {body}"));
    }
    if body["detail"].as_str().is_none_or(|d| d.len() < 10) {
        return Err(format!("no actionable detail: {body}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_hostile_requests_each_get_a_4xx_and_the_server_stays_healthy() {
    let limits = Limits { rate: RateLimit::UNLIMITED, ..Limits::default() };
    let s = TestServer::start_configured(limits, Settings { request_timeout: TIMEOUT, ..Settings::default() }).await;
    let port: u16 = s.scim_url().rsplit(':').next().unwrap().split('/').next().unwrap().parse().unwrap();
    let token = s.token.clone();
    let id = create_user(&s.scim(), "target").await;
    let before = s.scim().get(&format!("/Users/{id}")).await.body;
    let cases = corpus(&token, &id);
    assert!(cases.len() >= 300, "the corpus has {} cases", cases.len());

    let mut failures = Vec::new();
    let mut slowest = Duration::ZERO;
    let (mut scim_errors, mut http_refusals) = (0, 0);
    for case in &cases {
        let started = Instant::now();
        let reply = exchange(port, &case.raw).await;
        slowest = slowest.max(started.elapsed());
        let verdict = match (case.expect, &reply) {
            (Expect::ScimError, Some(reply)) => check_scim_error(reply),
            (Expect::ScimError, None) => Err("the connection closed without an answer".into()),
            (Expect::HttpRefusal, Some(reply)) if (400..500).contains(&reply.status) => Ok(()),
            (Expect::HttpRefusal, Some(reply)) => Err(format!("status {}", reply.status)),
            (Expect::HttpRefusal, None) => Ok(()),
        };
        match verdict {
            Ok(()) if case.expect == Expect::ScimError => scim_errors += 1,
            Ok(()) => http_refusals += 1,
            Err(why) => failures.push(format!(
                "{}: {why}; body {}",
                case.name,
                reply
                    .map(|r| String::from_utf8_lossy(&r.body).chars().take(200).collect::<String>())
                    .unwrap_or_default()
            )),
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    println!(
        "hostile corpus: {} requests, {scim_errors} SCIM 4xx errors, {http_refusals} refused by the HTTP parser, \
         slowest answer {:.0} ms",
        cases.len(),
        slowest.as_secs_f64() * 1000.0
    );

    // The server is healthy, and nothing the corpus sent changed the target or created anyone.
    let client = s.scim();
    assert_eq!(client.get(&format!("/Users/{id}")).await.body, before);
    let all = client.get("/Users?count=0").await;
    assert_eq!(all.body["totalResults"], 1, "no hostile request created a user");
    create_user(&client, "after.the.corpus").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_after_the_request_timeout() {
    let limits = Limits { rate: RateLimit::UNLIMITED, ..Limits::default() };
    let s = TestServer::start_configured(limits, Settings { request_timeout: TIMEOUT, ..Settings::default() }).await;
    let port: u16 = s.scim_url().rsplit(':').next().unwrap().split('/').next().unwrap().parse().unwrap();
    let token = s.token.clone();

    // Headers a byte at a time, forever: the connection is closed once the timeout passes.
    let trickle = tokio::spawn(async move {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let started = Instant::now();
        for byte in b"GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().chain(std::iter::repeat(&b'a')) {
            if stream.write_all(&[*byte]).await.is_err() || started.elapsed() > BOUND {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut rest)).await;
        (started.elapsed(), rest)
    });
    // Whole headers, then part of the body, then nothing: a 408 SCIM error.
    let stalled = tokio::spawn(async move {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let head = format!(
            "POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/scim+json\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n{{\"userName\":"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        let mut answer = Vec::new();
        tokio::time::timeout(BOUND, stream.read_to_end(&mut answer)).await.expect("answered").unwrap();
        (started.elapsed(), answer)
    });
    // Many idle connections that never send anything.
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    // Meanwhile everyone else is served.
    let started = Instant::now();
    assert_eq!(s.scim().get("/Users").await.status, 200);
    assert!(started.elapsed() < BOUND);

    let (took, rest) = trickle.await.unwrap();
    assert!(took < BOUND, "the trickling client was cut off after {took:?}");
    assert!(
        rest.is_empty() || String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    let (took, answer) = stalled.await.unwrap();
    assert!(took >= TIMEOUT && took < BOUND, "the stalled body was answered after {took:?}");
    let reply = parse(&answer).expect("an answer to the stalled body");
    assert_eq!(reply.status, 408, "{}", String::from_utf8_lossy(&answer));
    check_scim_error(&reply).unwrap();
    // The idle connections were closed too.
    for mut conn in idle.drain(..10) {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(BOUND, conn.read(&mut buf)).await.expect("closed within the bound");
        assert!(matches!(read, Ok(0) | Err(_)) || buf.starts_with(b"HTTP/1.1 408"), "an idle connection was kept");
    }
    assert_eq!(s.scim().get("/Users").await.status, 200);
}
