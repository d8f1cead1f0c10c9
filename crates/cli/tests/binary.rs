//! Process-level tests of the real `scimd` binary: first start, configuration precedence, the
//! CLI commands, and graceful shutdown on SIGTERM losing nothing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;

use support::{BIN, Server, free_port, http, receive, send};

#[test]
fn first_start_prints_url_and_tokens_that_work_and_later_starts_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[], &[]);
    assert!(
        s.lines.iter().any(|l| l.contains(&format!("SCIM base URL:   http://127.0.0.1:{}/scim/v2", s.port))),
        "{:?}",
        s.lines
    );
    let token = s.printed("scimd_").expect("SCIM token printed");
    let operator = s.printed("scimdop_").expect("operator token printed");
    assert_eq!(http(s.port, "GET", "/scim/v2/Users", Some(&token), None).0, 200);
    assert_eq!(http(s.port, "GET", "/admin/api/v1/tenants", Some(&operator), None).0, 200);
    assert_eq!(http(s.port, "GET", "/healthz", None, None).0, 200);
    assert_eq!(http(s.port, "GET", "/readyz", None, None).0, 200);
    assert!(s.terminate().success());

    let again = Server::start(dir.path(), &[], &[]);
    assert!(again.printed("scimd_").is_none(), "no new token on a later start");
    assert!(again.printed("scimdop_").is_none(), "the operator token is shown once");
    assert_eq!(http(again.port, "GET", "/scim/v2/Users", Some(&token), None).0, 200);
}

#[test]
fn operator_token_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "an-operator-secret-of-some-length";
    let s = Server::start(dir.path(), &[], &[("SCIMD_OPERATOR_TOKEN", secret)]);
    assert!(s.printed("scimdop_").is_none());
    assert_eq!(http(s.port, "GET", "/admin/api/v1/tenants", Some(secret), None).0, 200);
}

#[test]
fn flag_beats_environment_beats_file() {
    let dir = tempfile::tempdir().unwrap();
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let config = dir.path().join("scimd.toml");
    std::fs::write(&config, format!("listen = \"127.0.0.1:{file_port}\"\n")).unwrap();
    let config = config.to_str().unwrap();
    let data = dir.path().join("data");

    let s = Server::start(&data, &["--config", config], &[]);
    assert_eq!(s.port, file_port, "file over default");
    drop(s);
    let s = Server::start(&data, &["--config", config], &[("SCIMD_LISTEN", &format!("127.0.0.1:{env_port}"))]);
    assert_eq!(s.port, env_port, "environment over file");
    drop(s);
    let listen = format!("127.0.0.1:{flag_port}");
    let s = Server::start(
        &data,
        &["--config", config, "--listen", &listen],
        &[("SCIMD_LISTEN", &format!("127.0.0.1:{env_port}"))],
    );
    assert_eq!(s.port, flag_port, "flag over environment");

    std::fs::write(dir.path().join("bad.toml"), "lisen = 1\n").unwrap();
    let out = Command::new(BIN).arg("serve").arg("--config").arg(dir.path().join("bad.toml")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lisen"), "the unknown key is named");
}

#[test]
fn tenant_and_token_commands() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).arg("--data-dir").arg(dir.path()).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, _) = run(&["tenant", "create", "globex"]);
    assert!(ok && out.contains("globex"), "{out}");
    let (ok, out, _) = run(&["tenant", "list"]);
    assert!(ok && out.contains("globex"));
    let (ok, out, _) = run(&["token", "new", "--tenant", "globex", "--lifetime-days", "7"]);
    assert!(ok, "{out}");
    let token = out.lines().find(|l| l.starts_with("scimd_")).expect("token printed").to_owned();
    let (ok, out, _) = run(&["token", "new", "--tenant", "globex", "--keep-old-for", "24h"]);
    assert!(ok && out.contains("keep working"), "{out}");
    let (ok, out, _) = run(&["token", "list", "--tenant", "globex"]);
    assert!(ok && out.contains(&token[..14]) && !out.contains(&token), "{out}");
    let id = out.lines().nth(1).and_then(|l| l.split_whitespace().next()).unwrap().to_owned();
    let (ok, out, _) = run(&["token", "revoke", "--tenant", "globex", &id]);
    assert!(ok && out.contains("revoked"), "{out}");
    let (ok, _, err) = run(&["token", "new", "--tenant", "nope"]);
    assert!(!ok && err.contains("no tenant"), "{err}");
}

#[test]
fn region_commands() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).arg("--data-dir").arg(dir.path()).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(&["region", "create", "eu-west", "--health", "degraded"]);
    assert!(ok && out.contains("eu-west") && out.contains("degraded"), "{out}{err}");
    let (ok, _, err) = run(&["region", "create", "eu-west"]);
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = run(&["region", "create", "us-east", "--health", "sideways"]);
    assert!(!ok && err.contains("healthy, degraded or down"), "{err}");

    let row = |out: &str, name: &str| {
        out.lines().find(|l| l.split_whitespace().last() == Some(name)).map(str::to_owned).unwrap_or_default()
    };
    let (ok, out, _) = run(&["region", "list"]);
    assert!(ok && out.starts_with("ID"), "{out}");
    assert!(row(&out, "eu-west").contains(" degraded "), "{out}");
    assert!(row(&out, "default").contains(" yes "), "the cloud's default region is marked: {out}");
    let id = row(&out, "eu-west").split_whitespace().next().unwrap().to_owned();

    let (ok, out, _) = run(&["region", "health", "eu-west", "healthy"]);
    assert!(ok && out.contains("\"eu-west\" is healthy"), "{out}");
    let (ok, out, _) = run(&["region", "health", &id, "down"]);
    assert!(ok && out.contains("is down"), "by id too: {out}");
    let (ok, _, err) = run(&["region", "health", "nowhere", "down"]);
    assert!(!ok && err.contains("no region"), "{err}");
    let (ok, out, _) = run(&["region", "default", "eu-west"]);
    assert!(ok && out.contains("default region"), "{out}");
    let (_, out, _) = run(&["region", "list"]);
    assert!(row(&out, "eu-west").contains(" down ") && row(&out, "eu-west").contains(" yes "), "{out}");
    assert!(!row(&out, "default").contains(" yes "), "{out}");
}

#[test]
fn sigterm_lets_in_flight_requests_finish_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[], &[]);
    let token = s.printed("scimd_").unwrap();
    let port = s.port;
    // A bulk request of 1000 durable creates is still in flight when SIGTERM arrives.
    let ops: Vec<Value> = (0..1000)
        .map(|i| json!({ "method": "POST", "path": "/Users", "bulkId": format!("u{i}"), "data": { "userName": format!("user{i}") } }))
        .collect();
    let body = json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops });
    // Written before the signal, so the server has the request whatever the machine's load.
    let stream = send(port, "POST", "/scim/v2/Bulk", Some(&token), Some(&body));
    let request = std::thread::spawn(move || (receive(stream), Instant::now()));
    std::thread::sleep(Duration::from_millis(30));
    let signalled = Instant::now();
    let status = s.terminate();
    let ((code, reply), answered) = request.join().unwrap();
    assert!(answered > signalled, "the request was in flight when SIGTERM was sent");
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(code, 200);
    let created = reply["Operations"].as_array().unwrap().iter().filter(|o| o["status"] == "201").count();
    assert_eq!(created, 1000);

    let again = Server::start(dir.path(), &[], &[]);
    let (code, list) = http(again.port, "GET", "/scim/v2/Users?count=0", Some(&token), None);
    assert_eq!(code, 200);
    assert_eq!(list["totalResults"], 1000, "every acknowledged create survived the shutdown");
}

#[test]
fn doctor_exit_status_follows_the_worst_finding_while_serve_runs() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[], &[]);
    let token = s.printed("scimd_").unwrap();
    let doctor = |args: &[&str]| {
        let out = Command::new(BIN).arg("doctor").args(args).arg("--data-dir").arg(dir.path()).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The server writes the provisioning log in the background: wait until the doctor, another
    // process reading the same database, sees `events` of them.
    let settled = |events: u64, code: i32| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, out, err) = doctor(&["--tenant", "default", "--format", "json"]);
            let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
            if report["events_examined"].as_u64() >= Some(events) {
                assert_eq!(status, Some(code), "{out}{err}");
                assert_eq!(report["exit_code"], code);
                return report;
            }
            assert!(Instant::now() < deadline, "the event never reached the database: {out}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    assert_eq!(http(s.port, "GET", "/scim/v2/Users", Some(&token), None).0, 200);
    let report = settled(1, 0);
    assert_eq!(report["status"], "healthy");
    let (status, out, _) = doctor(&[]);
    assert_eq!(status, Some(0), "{out}");
    assert!(out.contains("Tenant \"default\"") && out.contains("No problems found."), "{out}");

    // A valid token at a wrong path: recorded against the tenant, an error.
    assert_eq!(http(s.port, "POST", "/scim/Users", Some(&token), Some(&json!({ "userName": "x" }))).0, 404);
    let report = settled(2, 2);
    let wrong = report["findings"].as_array().unwrap().iter().find(|f| f["code"] == "wrong_url").cloned();
    let wrong = wrong.expect("wrong_url finding");
    assert_eq!(
        (wrong["severity"].as_str(), wrong["evidence"]["paths"][0]["path"].as_str()),
        (Some("error"), Some("/scim/Users"))
    );
    let (status, out, _) = doctor(&[]);
    assert_eq!(status, Some(2), "{out}");
    assert!(out.contains("ERROR") && out.contains("[wrong_url]") && out.contains("          1. "), "{out}");
    assert!(out.contains("paths:") && out.contains("/scim/Users"), "evidence lines: {out}");
    // Every tenant as JSON: a list of reports.
    let (status, out, _) = doctor(&["--format", "json"]);
    let all: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((status, all["reports"].as_array().map(Vec::len)), (Some(2), Some(1)));
    // A user no request mentioned (one tenant: --tenant may be left out).
    let (status, out, _) = doctor(&["--user", "alice@corp.com"]);
    assert_eq!(status, Some(2));
    assert!(out.contains("[never_heard_of]"), "{out}");
    // A doctor that cannot run is neither a warning nor an error.
    let (status, _, err) = doctor(&["--tenant", "nope"]);
    assert_eq!(status, Some(3));
    assert!(err.contains("no tenant"), "{err}");
    let (status, _, err) = doctor(&["--days", "0"]);
    assert_eq!(status, Some(3), "a usage error too: {err}");
    assert!(err.contains("--days"), "{err}");
}

/// A console page over plain HTTP: its status and body.
fn page(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("response");
    let status = raw.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status line");
    (status, raw.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

#[test]
fn serve_prints_the_console_set_up_link_until_an_operator_exists() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[], &[]);
    let link = s.printed("Console:").expect("console line printed");
    let path = link.split(&format!("http://127.0.0.1:{}", s.port)).nth(1).expect("a link to this server").to_owned();
    assert!(path.starts_with("/console/setup?code="), "{link}");
    let (status, html) = page(s.port, &path);
    assert_eq!(status, 200);
    assert!(html.contains("Create the first operator"));
    assert!(s.terminate().success());

    // An operator made from the command line (password on standard input) ends the set-up link.
    let mut admin = Command::new(BIN)
        .args(["admin", "create", "--email", "Ops@Example.com", "--operator", "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    admin.stdin.take().unwrap().write_all(b"a long enough passphrase\n").unwrap();
    let out = admin.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("created account ops@example.com (operator)"));
    let short = Command::new(BIN)
        .args(["admin", "create", "--email", "x@example.com", "--tenant", "default", "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .output()
        .unwrap();
    assert!(!short.status.success(), "an empty password is refused");
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12 characters"));
    let listed = Command::new(BIN).args(["admin", "list", "--data-dir"]).arg(dir.path()).output().unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains("ops@example.com"));

    let again = Server::start(dir.path(), &[], &[]);
    let link = again.printed("Console:").expect("console line printed");
    assert!(!link.contains("setup"), "{link}");
    assert_eq!(page(again.port, &path).0, 403, "the old link no longer works");
}

/// Three `scimd serve` processes started at the same moment on one PostgreSQL schema, with SCIM
/// traffic spread across them: the cloud's rules hold across nodes exactly as on one.
#[test]
fn three_nodes_on_one_postgresql_keep_the_cloud_rules() {
    let Ok(base) = std::env::var("SCIMD_TEST_POSTGRES_URL") else {
        eprintln!("multi-node test skipped: set SCIMD_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test");
        return;
    };
    let schema = format!("scimd_test_{}_nodes", std::process::id());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(scimd_store::postgres::drop_schema(&base, &schema)).unwrap();
    let url = runtime.block_on(scimd_store::postgres::create_schema(&base, &schema)).unwrap();
    let op = "scimdop_multi-node-operator-token-0123456789";
    let dir = tempfile::tempdir().unwrap();
    // Started at once on an empty database: they race to migrate and seed it.
    let nodes: Vec<Server> = (0..3)
        .map(|_| {
            let (dir, url) = (dir.path().to_owned(), url.clone());
            std::thread::spawn(move || Server::start(&dir, &["--database-url", &url], &[("SCIMD_OPERATOR_TOKEN", op)]))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().expect("node started"))
        .collect();
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    let admin = |i: usize, method: &str, path: &str, body: Option<&Value>| {
        http(ports[i % 3], method, &format!("/admin/api/v1{path}"), Some(op), body)
    };
    let (status, tenants) = admin(0, "GET", "/tenants", None);
    assert_eq!(status, 200);
    assert_eq!(tenants["tenants"].as_array().map(Vec::len), Some(1), "seeded once: {tenants}");
    let tenant = |i: usize, name: &str| -> (String, String) {
        let (status, t) = admin(i, "POST", "/tenants", Some(&json!({ "name": name })));
        assert_eq!(status, 201, "{t}");
        let id = t["id"].as_str().unwrap().to_owned();
        let (status, token) = admin(i + 1, "POST", &format!("/tenants/{id}/tokens"), Some(&json!({})));
        assert_eq!(status, 201, "{token}");
        (id, token["token"].as_str().unwrap().to_owned())
    };
    let (acme, acme_token) = tenant(0, "acme");
    let (_globex, globex_token) = tenant(1, "globex");
    let user = |name: &str, email: &str| {
        json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name,
                "emails": [{ "value": email, "type": "work", "primary": true }] })
    };

    // The same email created in two tenants through two nodes at once: exactly one wins.
    for round in 0..8 {
        let email = format!("shared{round}@corp.test");
        let a = send(ports[round % 3], "POST", "/scim/v2/Users", Some(&acme_token), Some(&user("a", &email)));
        let b = send(ports[(round + 1) % 3], "POST", "/scim/v2/Users", Some(&globex_token), Some(&user("b", &email)));
        let mut statuses = [receive(a).0, receive(b).0];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409], "round {round}: {email}");
        // Clear both tenants' users so the next round starts from nothing.
        for token in [&acme_token, &globex_token] {
            let (_, list) = http(ports[0], "GET", "/scim/v2/Users", Some(token), None);
            for u in list["Resources"].as_array().cloned().unwrap_or_default() {
                let id = u["id"].as_str().unwrap();
                assert_eq!(http(ports[1], "DELETE", &format!("/scim/v2/Users/{id}"), Some(token), None).0, 204);
            }
        }
    }

    // A profile with 5 seats filled through all three nodes at once: exactly 5 are taken.
    let (_, profiles) = admin(0, "GET", &format!("/tenants/{acme}/profiles"), None);
    let profile = profiles["profiles"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/tenants/{acme}/profiles/{profile}");
    assert_eq!(admin(1, "PATCH", &path, Some(&json!({ "max_users": 5 }))).0, 200);
    let streams: Vec<TcpStream> = (0..15)
        .map(|i| {
            let body = user(&format!("seat{i}"), &format!("seat{i}@acme.test"));
            send(ports[i % 3], "POST", "/scim/v2/Users", Some(&acme_token), Some(&body))
        })
        .collect();
    let statuses: Vec<u16> = streams.into_iter().map(|s| receive(s).0).collect();
    assert!(statuses.iter().all(|s| *s == 201 || *s == 403), "{statuses:?}");
    let (_, profiles) = admin(2, "GET", &format!("/tenants/{acme}/profiles"), None);
    assert_eq!(profiles["profiles"][0]["active_users"], 5, "{profiles}");
    let (_, active) = admin(0, "GET", &format!("/tenants/{acme}/users?state=active"), None);
    assert_eq!(active["total"], 5, "{active}");

    // A token revoked through one node is refused by that node at once and by the others within
    // the token cache's bound.
    let (initech, token) = tenant(2, "initech");
    for port in &ports {
        assert_eq!(http(*port, "GET", "/scim/v2/Users", Some(&token), None).0, 200);
    }
    let (_, tokens) = admin(0, "GET", &format!("/tenants/{initech}/tokens"), None);
    let token_id = tokens["tokens"][0]["id"].as_str().unwrap().to_owned();
    let revoked_at = Instant::now();
    assert_eq!(admin(1, "DELETE", &format!("/tenants/{initech}/tokens/{token_id}"), None).0, 204);
    assert_eq!(http(ports[1], "GET", "/scim/v2/Users", Some(&token), None).0, 401, "the revoking node");
    let bound = scimd_domain::token_cache::TOKEN_CACHE_TTL;
    for port in &ports {
        wait_for("the revocation to reach every node", bound + Duration::from_secs(2), || {
            http(*port, "GET", "/scim/v2/Users", Some(&token), None).0 == 401
        });
    }
    assert!(revoked_at.elapsed() < bound + Duration::from_secs(2));
    drop(nodes);
    runtime.block_on(scimd_store::postgres::drop_schema(&base, &schema)).unwrap();
}

/// Runs a `scimd` command to its end: whether it succeeded, and what it printed on stdout and stderr.
fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).env_remove("DATABASE_URL").output().expect("run scimd");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The PostgreSQL schema `name` of this test process, emptied, as the URL that uses it; `None`
/// (with a note) when `SCIMD_TEST_POSTGRES_URL` is not set.
fn fresh_schema(runtime: &tokio::runtime::Runtime, name: &str) -> Option<(String, String)> {
    let Ok(base) = std::env::var("SCIMD_TEST_POSTGRES_URL") else {
        eprintln!("test skipped: set SCIMD_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test");
        return None;
    };
    let schema = format!("scimd_test_{}_{name}", std::process::id());
    runtime.block_on(scimd_store::postgres::drop_schema(&base, &schema)).unwrap();
    let url = runtime.block_on(scimd_store::postgres::create_schema(&base, &schema)).unwrap();
    Some((base, url))
}

/// `scimd migrate-data` moves a whole deployment from the embedded database to PostgreSQL: the
/// same token works, users, groups and their documents are the same, email claims and seats
/// carry over, new users continue the ids, and the provisioning log comes along. It can run
/// again over its own unused copy, but never over a database a node has written to.
#[test]
fn migrate_data_moves_a_whole_deployment_to_postgresql() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some((base, url)) = fresh_schema(&runtime, "migrate") else { return };
    let op = "scimdop_migrate-data-operator-token-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let embedded = Server::start(dir.path(), &[], &[("SCIMD_OPERATOR_TOKEN", op)]);
    let token = embedded.printed("scimd_").expect("token printed");
    let user = |name: &str| {
        json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name, "externalId": format!("ext-{name}"),
                "emails": [{ "value": format!("{name}@corp.test"), "type": "work", "primary": true }] })
    };
    let mut ids = Vec::new();
    for i in 0..30 {
        let (status, created) =
            http(embedded.port, "POST", "/scim/v2/Users", Some(&token), Some(&user(&format!("u{i}"))));
        assert_eq!(status, 201, "{created}");
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let deactivate = json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                             "Operations": [{ "op": "replace", "path": "active", "value": false }] });
    assert_eq!(
        http(embedded.port, "PATCH", &format!("/scim/v2/Users/{}", ids[2]), Some(&token), Some(&deactivate)).0,
        200
    );
    let group = json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "eng",
                        "members": [{ "value": ids[0] }, { "value": ids[1] }] });
    let (status, group) = http(embedded.port, "POST", "/scim/v2/Groups", Some(&token), Some(&group));
    assert_eq!(status, 201, "{group}");
    let group_path = format!("/scim/v2/Groups/{}", group["id"].as_str().unwrap());
    let (_, users_before) = http(embedded.port, "GET", "/scim/v2/Users?count=100", Some(&token), None);
    let (_, group_before) = http(embedded.port, "GET", &group_path, Some(&token), None);
    let (_, tenants_before) = http(embedded.port, "GET", "/admin/api/v1/tenants", Some(op), None);
    let profiles = format!("/admin/api/v1/tenants/{}/profiles", tenants_before["tenants"][0]["id"].as_str().unwrap());
    let (_, profiles_before) = http(embedded.port, "GET", &profiles, Some(op), None);
    assert_eq!(profiles_before["profiles"][0]["active_users"], 29, "30 users, one deactivated: {profiles_before}");
    let embedded_port = embedded.port;

    // Copied while the server still serves: one snapshot of the source.
    let (ok, out, err) = run(&["migrate-data", "--from", data_dir, "--to", &url]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("every table's count verified"), "{out}");
    assert!(out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["resources", "31"]), "{out}");
    assert!(embedded.terminate().success());
    // Again, now that the server has stopped: the unused copy is replaced by a fresh one.
    let (ok, out, err) = run(&["migrate-data", "--from", data_dir, "--to", &url]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("replacing the earlier copy"), "{out}");

    let other_dir = tempfile::tempdir().unwrap();
    let pg = Server::start(other_dir.path(), &["--database-url", &url], &[("SCIMD_OPERATOR_TOKEN", op)]);
    assert!(pg.printed("scimd_").is_none(), "the copied deployment is not seeded again: {:?}", pg.lines);
    let same_host =
        |v: &Value| v.to_string().replace(&format!("127.0.0.1:{embedded_port}"), &format!("127.0.0.1:{}", pg.port));
    let (status, users_after) = http(pg.port, "GET", "/scim/v2/Users?count=100", Some(&token), None);
    assert_eq!(status, 200, "the SCIM token carried over: {users_after}");
    assert_eq!(users_after.to_string(), same_host(&users_before));
    assert_eq!(http(pg.port, "GET", &group_path, Some(&token), None).1.to_string(), same_host(&group_before));
    assert_eq!(http(pg.port, "GET", "/admin/api/v1/tenants", Some(op), None).1, tenants_before);
    assert_eq!(http(pg.port, "GET", &profiles, Some(op), None).1, profiles_before, "seat counts carried over");

    // The cloud's rules carried over: u5's email is still claimed by u5 (another userName with
    // it is refused), and a new user lands: its outbox row continues the copied ids (a restarted
    // sequence would collide with them and fail the create).
    let mut same_email = user("someone-else");
    same_email["emails"][0]["value"] = json!("u5@corp.test");
    let (status, taken) = http(pg.port, "POST", "/scim/v2/Users", Some(&token), Some(&same_email));
    assert_eq!(status, 409, "{taken}");
    assert!(taken["detail"].as_str().unwrap().contains("u5@corp.test"), "refused for the email: {taken}");
    let (status, created) = http(pg.port, "POST", "/scim/v2/Users", Some(&token), Some(&user("u30")));
    assert_eq!(status, 201, "{created}");
    assert!(!ids.contains(&created["id"].as_str().unwrap().to_owned()));
    let (_, log) = http(pg.port, "GET", "/admin/api/v1/events?limit=500", Some(op), None);
    let copied = |e: &&Value| e["operation"] == "create User" && e["status"] == 201 && e["subject"] != "u30";
    assert_eq!(log["events"].as_array().unwrap().iter().filter(copied).count(), 30, "the log came along: {log}");

    // The target has now served writes: copying again would overwrite them, so it refuses.
    let (ok, out, err) = run(&["migrate-data", "--from", data_dir, "--to", &url]);
    assert!(!ok, "{out}");
    assert!(err.contains("has been written to since") && err.contains("nothing was copied"), "{err}");
    drop(pg);

    // A database a node seeded itself is refused, and so is a directory with no database.
    let Some((_, seeded)) = fresh_schema(&runtime, "migrate_seeded") else { return };
    let (ok, out, err) = run(&["--database-url", &seeded, "tenant", "create", "acme"]);
    assert!(ok, "{out}{err}");
    let (ok, _, err) = run(&["migrate-data", "--from", data_dir, "--to", &seeded]);
    assert!(!ok && err.contains("already holds a scimd deployment (") && err.contains("tenants: 1 rows"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(&["migrate-data", "--from", empty.path().to_str().unwrap(), "--to", &url]);
    assert!(!ok && err.contains("no scimd database at"), "{err}");
    for schema in ["migrate", "migrate_seeded"] {
        let schema = format!("scimd_test_{}_{schema}", std::process::id());
        runtime.block_on(scimd_store::postgres::drop_schema(&base, &schema)).unwrap();
    }
}

/// A health endpoint for region probes: 200 while `healthy` is set, 503 otherwise.
fn probe_target(healthy: Arc<AtomicBool>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.read(&mut [0u8; 4096]);
            let status = if healthy.load(Ordering::SeqCst) { "200 OK" } else { "503 Service Unavailable" };
            let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    port
}

/// Whether the node on `port` says (in its metrics) that it runs the background jobs.
fn leads(port: u16) -> bool {
    page(port, "/metrics").1.lines().any(|l| l == "scimd_background_leader 1")
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "gave up after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Background work survives the node doing it: three nodes, the first holding the background
/// jobs' lease; held users wait for a region its probe reports down. When the probe recovers,
/// the first node starts activating them and is killed (SIGKILL) part-way; another node takes
/// the lease over and finishes. Then more held users are released through two nodes at once.
/// Every held user is activated exactly once (one seat, one activation in the provisioning log).
#[test]
fn a_node_killed_mid_activation_leaves_the_rest_to_another_and_each_user_is_activated_once() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some((base, url)) = fresh_schema(&runtime, "takeover") else { return };
    let op = "scimdop_takeover-operator-token-0123456789";
    let healthy = Arc::new(AtomicBool::new(false));
    let probe_port = probe_target(healthy.clone());
    let dir = tempfile::tempdir().unwrap();
    let start = || Server::start(dir.path(), &["--database-url", &url], &[("SCIMD_OPERATOR_TOKEN", op)]);
    let first = start();
    wait_for("the first node to take the background jobs", Duration::from_secs(20), || leads(first.port));
    let others = [start(), start()];
    let ports = [first.port, others[0].port, others[1].port];
    let admin = |i: usize, method: &str, path: &str, body: Option<&Value>| {
        http(ports[i % 3], method, &format!("/admin/api/v1{path}"), Some(op), body)
    };

    // A region its probe reports down, made the default: a new tenant's users are held for it.
    let (status, region) = admin(1, "POST", "/regions", Some(&json!({ "name": "eu", "health": "down" })));
    assert_eq!(status, 201, "{region}");
    let region = region["id"].as_str().unwrap().to_owned();
    let probe = json!({ "probe_url": format!("http://127.0.0.1:{probe_port}/health"), "probe_interval_seconds": 5 });
    assert_eq!(admin(2, "PATCH", &format!("/regions/{region}"), Some(&probe)).0, 200);
    assert_eq!(admin(0, "PUT", "/regions/default", Some(&json!({ "region_id": region }))).0, 200);
    let (status, tenant) = admin(1, "POST", "/tenants", Some(&json!({ "name": "acme" })));
    assert_eq!(status, 201, "{tenant}");
    let acme = tenant["id"].as_str().unwrap().to_owned();
    let (_, token) = admin(2, "POST", &format!("/tenants/{acme}/tokens"), Some(&json!({})));
    let token = token["token"].as_str().unwrap().to_owned();
    let (_, mut settings) = admin(0, "GET", &format!("/tenants/{acme}/settings"), None);
    settings["hold"]["region_unhealthy"] = json!(true);
    assert_eq!(admin(1, "PUT", &format!("/tenants/{acme}/settings"), Some(&settings)).0, 200);

    const HELD: u64 = 600;
    const MORE: u64 = 200;
    std::thread::scope(|scope| {
        for lane in 0..6 {
            let token = &token;
            scope.spawn(move || {
                for i in (lane..HELD).step_by(6) {
                    let body = json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                       "userName": format!("held{i}"), "emails": [{ "value": format!("held{i}@acme.test") }] });
                    let (status, user) = http(ports[i as usize % 3], "POST", "/scim/v2/Users", Some(token), Some(&body));
                    assert_eq!(status, 201, "{user}");
                }
            });
        }
    });
    let (_, pending) = admin(0, "GET", &format!("/tenants/{acme}/users/pending"), None);
    assert_eq!(pending["users"].as_array().map(Vec::len), Some(HELD as usize), "all held");
    assert!(others.iter().all(|n| !leads(n.port)), "one node runs the background jobs");

    // The probe recovers; the first node activates the held users one by one and dies part-way.
    let active = || {
        let (_, profiles) = admin(1, "GET", &format!("/tenants/{acme}/profiles"), None);
        profiles["profiles"][0]["active_users"].as_u64().unwrap()
    };
    healthy.store(true, Ordering::SeqCst);
    wait_for("the activation to begin", Duration::from_secs(30), || active() > 0);
    first.kill();
    let at_kill = active();
    assert!(at_kill < HELD, "killed in the middle of the work ({at_kill} of {HELD} already active)");

    let killed = Instant::now();

    // Another node takes the lease over once it runs out, and finishes the work.
    wait_for("another node to take the jobs over", Duration::from_secs(60), || leads(ports[1]) || leads(ports[2]));
    let took_over = killed.elapsed();
    // Right away, not at the next periodic run a minute later.
    wait_for("the new leader to finish the work", Duration::from_secs(15), || active() == HELD);
    eprintln!(
        "killed with {at_kill} of {HELD} active; another node took over after {:.1} s and finished after {:.1} s",
        took_over.as_secs_f64(),
        killed.elapsed().as_secs_f64()
    );

    // More users held, then released through both surviving nodes at the same moment: each node
    // activates the held users it finds, racing the other, and still each is activated once.
    let down = json!({ "probe_url": null, "health": "down" });
    assert_eq!(admin(1, "PATCH", &format!("/regions/{region}"), Some(&down)).0, 200);
    for i in HELD..HELD + MORE {
        let body = json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("held{i}") });
        assert_eq!(http(ports[1 + i as usize % 2], "POST", "/scim/v2/Users", Some(&token), Some(&body)).0, 201);
    }
    let healthy_now = json!({ "health": "healthy" });
    let path = format!("/admin/api/v1/regions/{region}");
    let releases = [1, 2].map(|i| send(ports[i], "PATCH", &path, Some(op), Some(&healthy_now)));
    assert!(releases.into_iter().all(|r| receive(r).0 == 200));
    wait_for("the second batch to be active", Duration::from_secs(60), || active() == HELD + MORE);
    let (_, listed) = admin(2, "GET", &format!("/tenants/{acme}/users?state=active"), None);
    assert_eq!(listed["total"], HELD + MORE, "one seat per active user: {listed}");
    let mut activations = std::collections::HashMap::<String, u32>::new();
    let mut cursor = String::new();
    loop {
        let (status, log) = admin(1, "GET", &format!("/tenants/{acme}/events?limit=1000{cursor}"), None);
        assert_eq!(status, 200, "{log}");
        for event in log["events"].as_array().unwrap().iter().filter(|e| e["operation"] == "activate User") {
            *activations.entry(event["subject"].as_str().unwrap().to_owned()).or_default() += 1;
        }
        match log["next_cursor"].as_i64() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(activations.len() as u64, HELD + MORE, "every held user has an activation");
    assert!(activations.values().all(|n| *n == 1), "each activated once: {activations:?}");
    drop(others);
    let schema = format!("scimd_test_{}_takeover", std::process::id());
    runtime.block_on(scimd_store::postgres::drop_schema(&base, &schema)).unwrap();
}

#[test]
fn serve_takes_its_rate_limit_and_request_limits_from_flags() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--rate-limit", "1", "--rate-burst", "3", "--max-page-size", "7", "--max-filter-depth", "1"];
    let s = Server::start(dir.path(), &flags, &[]);
    assert_eq!(s.printed("Rate limit:").as_deref(), Some("Rate limit:      1 SCIM requests/s per tenant, bursts of 3"));
    let token = s.printed("scimd_").unwrap();
    let (_, config) = http(s.port, "GET", "/scim/v2/ServiceProviderConfig", Some(&token), None);
    assert_eq!(config["filter"]["maxResults"], 7, "the configured page size is advertised");
    let (code, body) = http(s.port, "GET", "/scim/v2/Users?filter=((userName%20pr))", Some(&token), None);
    assert_eq!(code, 400, "nesting beyond --max-filter-depth 1: {body}");
    // That request took one of the burst's three.
    for _ in 0..2 {
        assert_eq!(http(s.port, "GET", "/scim/v2/Users", Some(&token), None).0, 200);
    }
    let (code, body) = http(s.port, "GET", "/scim/v2/Users", Some(&token), None);
    assert_eq!((code, body["status"].as_str()), (429, Some("429")), "{body}");
    drop(s);

    let s = Server::start(dir.path(), &["--rate-limit", "0"], &[]);
    assert_eq!(s.printed("Rate limit:").as_deref(), Some("Rate limit:      none (--rate-limit 0)"));
    let (ok, _, err) = run(&["serve", "--data-dir", "/nonexistent", "--rate-limit", "5", "--rate-burst", "0"]);
    assert!(!ok && err.contains("burst must be at least 1"), "{err}");
    let (ok, _, err) = run(&["serve", "--data-dir", "/nonexistent", "--max-filter-length", "5000"]);
    assert!(!ok && err.contains("the most scimd accepts is 4096 characters"), "{err}");
}
