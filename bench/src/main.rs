//! scimd's benchmark. Starts a release build of scimd on a temporary database (the embedded one,
//! and PostgreSQL when asked), seeds users across tenants, drives HTTP load over loopback and
//! prints for each scenario: operations/s, p50, p99, errors, and the ratio to scimd's own
//! `/healthz` measured in the same run, so that figures compare across machines.
//!
//! ```sh
//! cargo build --release && cargo run --release -p scimd-bench -- --backends sqlite,postgres
//! ```
//!
//! Not part of the test suite: timings belong here, not in assertions.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};

const OPERATOR_TOKEN: &str = "scimdop_bench-operator-token-0123456789";
const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const BULK_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
/// Users per bulk request, when seeding and in the bulk scenario (scimd's `bulk.maxOperations`).
const BULK_SIZE: usize = 1000;
/// Groups seeded per tenant, for the membership scenario.
const GROUPS: usize = 10;
/// Bulk requests in flight while seeding.
const SEED_REQUESTS: usize = 4;

#[derive(Debug, Parser)]
#[command(name = "scimd-bench", about = "Load scimd over loopback and report ratios to its /healthz")]
struct Args {
    /// The scimd binary (build it first: cargo build --release).
    #[arg(long, default_value = "target/release/scimd")]
    scimd: PathBuf,
    /// Backends to measure: sqlite, postgres.
    #[arg(long, value_delimiter = ',', default_value = "sqlite")]
    backends: Vec<String>,
    /// PostgreSQL server for the postgres backend (a fresh schema is made in it and dropped after).
    #[arg(long, env = "SCIMD_BENCH_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres_url: String,
    /// Users seeded before the scenarios, spread over the tenants.
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Tenants the users are spread over; each connection works in one of them.
    #[arg(long, default_value_t = 1)]
    tenants: usize,
    /// Seconds each scenario is measured (after a warm-up of a fifth of that).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Rounds of every scenario; the median round is reported.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Keep the database afterwards (its directory, or its PostgreSQL schema), to look into it.
    #[arg(long)]
    keep: bool,
    /// Append the server's log (stderr) to this file.
    #[arg(long)]
    server_log: Option<PathBuf>,
    /// Only these scenarios (healthz always runs: it is the baseline).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

/// What one scenario does per operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Healthz,
    Get,
    FilterUserName,
    FilterExternalId,
    List100,
    Create,
    Patch,
    Put,
    Members,
    Bulk,
    Sweep,
}

impl Scenario {
    const ALL: [Scenario; 11] = [
        Scenario::Healthz,
        Scenario::Get,
        Scenario::FilterUserName,
        Scenario::FilterExternalId,
        Scenario::List100,
        Scenario::Patch,
        Scenario::Put,
        Scenario::Members,
        Scenario::Sweep,
        Scenario::Create,
        Scenario::Bulk,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::Healthz => "healthz",
            Scenario::Get => "get",
            Scenario::FilterUserName => "filter-username",
            Scenario::FilterExternalId => "filter-externalid",
            Scenario::List100 => "list-100",
            Scenario::Create => "create",
            Scenario::Patch => "patch-active",
            Scenario::Put => "put",
            Scenario::Members => "group-members",
            Scenario::Bulk => "bulk-1000",
            Scenario::Sweep => "idp-sweep",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Scenario::Healthz => "GET /healthz (the baseline)",
            Scenario::Get => "GET /Users/{id}",
            Scenario::FilterUserName => "GET /Users?filter=userName eq \"…\"",
            Scenario::FilterExternalId => "GET /Users?filter=externalId eq \"…\"",
            Scenario::List100 => "GET /Users?startIndex=1&count=100",
            Scenario::Create => "POST /Users (mapping, seat, email claim, event)",
            Scenario::Patch => "PATCH /Users/{id} active false / true",
            Scenario::Put => "PUT /Users/{id}",
            Scenario::Members => "PATCH /Groups/{id} add / remove a member",
            Scenario::Bulk => "POST /Bulk of 1 000 new users (users/s)",
            Scenario::Sweep => "filter userName eq, then PATCH it (2 requests)",
        }
    }

    /// Bulk requests are heavy: a few at a time, as an IdP's initial sync sends them.
    fn connections(self, asked: usize) -> usize {
        if self == Scenario::Bulk { asked.min(4) } else { asked }
    }

    /// Users written per operation (for users/s).
    fn users_per_operation(self) -> usize {
        if self == Scenario::Bulk { BULK_SIZE } else { 1 }
    }
}

/// A seeded user.
#[derive(Debug, Clone)]
struct User {
    id: String,
    user_name: String,
    external_id: String,
}

/// A tenant the load works in.
#[derive(Debug)]
struct Tenant {
    token: String,
    users: Vec<User>,
    groups: Vec<String>,
}

/// A running scimd.
struct Server {
    child: Child,
    base: String,
    started_in: Duration,
}

impl Server {
    fn start(args: &Args, data_dir: &std::path::Path, database_url: Option<&str>) -> Result<Server, String> {
        let mut command = Command::new(&args.scimd);
        command
            // The benchmark measures throughput: the per-tenant rate limit would cap it.
            .args(["serve", "--listen", "127.0.0.1:0", "--rate-limit", "0", "--data-dir"])
            .arg(data_dir)
            .env("SCIMD_OPERATOR_TOKEN", OPERATOR_TOKEN)
            .env_remove("DATABASE_URL")
            .stdout(Stdio::piped());
        match &args.server_log {
            Some(path) => {
                let log =
                    std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| e.to_string())?;
                command.stderr(log);
            }
            None => {
                command.stderr(Stdio::null());
            }
        }
        if let Some(url) = database_url {
            command.args(["--database-url", url]);
        }
        let begun = Instant::now();
        let mut child = command.spawn().map_err(|e| format!("cannot run {}: {e}", args.scimd.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout);
        let mut base = None;
        loop {
            let mut line = String::new();
            if lines.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                return Err("scimd exited during start-up".into());
            }
            if let Some(address) = line.split("listening on ").nth(1) {
                base = Some(address.trim().to_owned());
            }
            if line.starts_with("New SCIM token") {
                break;
            }
        }
        let started_in = begun.elapsed();
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = lines.read_to_string(&mut sink);
        });
        let base = base.ok_or("scimd printed no address")?;
        Ok(Server { child, base, started_in })
    }

    /// Resident memory, from /proc.
    fn rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let kib: f64 =
            status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib / 1024.0)
    }

    fn stop(mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One scenario's figures.
#[derive(Debug, Clone)]
struct Figures {
    scenario: Scenario,
    operations_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    operations: u64,
    errors: u64,
    first_error: Option<String>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if !args.scimd.exists() {
        eprintln!(
            "scimd-bench: {} not found; run `cargo build --release` first (or give --scimd)",
            args.scimd.display()
        );
        std::process::exit(2);
    }
    let mut failed = false;
    for backend in &args.backends {
        if let Err(e) = bench_backend(&args, backend).await {
            eprintln!("scimd-bench: {backend}: {e}");
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
}

async fn bench_backend(args: &Args, backend: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let schema = format!("scimd_bench_{}", std::process::id());
    let database_url = match backend {
        "sqlite" => None,
        "postgres" => {
            scimd_store::postgres::drop_schema(&args.postgres_url, &schema).await.map_err(|e| e.to_string())?;
            Some(scimd_store::postgres::create_schema(&args.postgres_url, &schema).await.map_err(|e| e.to_string())?)
        }
        other => return Err(format!("unknown backend {other:?}: use sqlite or postgres")),
    };
    let result = run_backend(args, backend, dir.path(), database_url.as_deref()).await;
    if args.keep {
        let kept = dir.keep();
        println!("kept: {}", if database_url.is_some() { schema } else { kept.display().to_string() });
    } else if database_url.is_some() {
        let _ = scimd_store::postgres::drop_schema(&args.postgres_url, &schema).await;
    }
    result
}

async fn run_backend(
    args: &Args,
    backend: &str,
    dir: &std::path::Path,
    database_url: Option<&str>,
) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections * 2)
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| e.to_string())?;
    let server = Server::start(args, dir, database_url)?;
    let empty_start = server.started_in;
    let seeding = Instant::now();
    let tenants = seed(&client, &server.base, args.users, args.tenants.max(1)).await?;
    let seeded_in = seeding.elapsed();
    let mut durability =
        "SQLite: WAL, every write flushed (fdatasync of the WAL) before its answer, shared by concurrent writes"
            .to_owned();
    if let Some(url) = database_url {
        // What autovacuum does on a production server (this machine's PostgreSQL has it off):
        // fresh statistics after a bulk load, or lookups by id become scans.
        let (client, connection) =
            tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        client.batch_execute("ANALYZE").await.map_err(|e| e.to_string())?;
        let mut settings = Vec::new();
        for setting in ["fsync", "synchronous_commit"] {
            let row = client.query_one(&format!("SHOW {setting}"), &[]).await.map_err(|e| e.to_string())?;
            settings.push(format!("{setting}={}", row.get::<_, String>(0)));
        }
        durability = format!("PostgreSQL: {}", settings.join(", "));
    }
    server.stop();
    // Start again over the seeded database: start-up time and memory at this size.
    let server = Server::start(args, dir, database_url)?;
    let rss_start = server.rss_mib();
    let tenants = Arc::new(tenants);

    println!();
    println!(
        "## {backend}: {} users in {} tenants, {} connections, {} s a scenario, median of {} round(s)",
        args.users,
        tenants.len(),
        args.connections,
        args.seconds,
        args.rounds.max(1)
    );
    println!(
        "seeded in {:.1} s ({:.0} users/s through /Bulk); start-up: {} ms empty, {} ms with the users; RSS {} MiB",
        seeded_in.as_secs_f64(),
        args.users as f64 / seeded_in.as_secs_f64(),
        empty_start.as_millis(),
        server.started_in.as_millis(),
        rss_start.map_or("?".into(), |r| format!("{r:.0}"))
    );
    println!("durability: {durability}");
    let mut all = Vec::new();
    for scenario in Scenario::ALL {
        if scenario != Scenario::Healthz && !args.only.is_empty() && !args.only.iter().any(|o| o == scenario.name()) {
            continue;
        }
        let mut rounds = Vec::new();
        for _ in 0..args.rounds.max(1) {
            rounds.push(measure(args, &client, &server.base, &tenants, scenario).await);
        }
        rounds.sort_by(|a, b| a.operations_per_s.total_cmp(&b.operations_per_s));
        let median = rounds[rounds.len() / 2].clone();
        if let Some(e) = &median.first_error {
            eprintln!("  {}: first error: {e}", scenario.name());
        }
        all.push(median);
    }
    let rss_end = server.rss_mib();
    let baseline = all.iter().find(|f| f.scenario == Scenario::Healthz).map_or(1.0, |f| f.operations_per_s);
    println!();
    println!("| scenario | what | ops/s | users/s | p50 ms | p99 ms | errors | × /healthz |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for f in &all {
        let users = if matches!(f.scenario, Scenario::Create | Scenario::Bulk) {
            format!("{:.0}", f.operations_per_s * f.scenario.users_per_operation() as f64)
        } else {
            String::new()
        };
        println!(
            "| {} | {} | {:.0} | {} | {:.2} | {:.2} | {}/{} | {:.3} |",
            f.scenario.name(),
            f.scenario.what(),
            f.operations_per_s,
            users,
            f.p50_ms,
            f.p99_ms,
            f.errors,
            f.operations,
            f.operations_per_s / baseline
        );
    }
    println!();
    println!("RSS after the load: {} MiB", rss_end.map_or("?".into(), |r| format!("{r:.0}")));
    server.stop();
    Ok(())
}

/// Creates the tenants with a token each, their users through /Bulk and a few groups.
async fn seed(client: &reqwest::Client, base: &str, users: usize, tenants: usize) -> Result<Vec<Tenant>, String> {
    let mut all = Vec::with_capacity(tenants);
    for t in 0..tenants {
        let tenant = send(
            client,
            reqwest::Method::POST,
            &format!("{base}/admin/api/v1/tenants"),
            OPERATOR_TOKEN,
            Some(json!({ "name": format!("bench-{t}") })),
        )
        .await?;
        let id = tenant["id"].as_str().ok_or("no tenant id")?;
        let token = send(
            client,
            reqwest::Method::POST,
            &format!("{base}/admin/api/v1/tenants/{id}/tokens"),
            OPERATOR_TOKEN,
            Some(json!({})),
        )
        .await?;
        let token = token["token"].as_str().ok_or("no token")?.to_owned();
        let mut groups = Vec::with_capacity(GROUPS);
        for g in 0..GROUPS {
            let group = json!({ "schemas": [GROUP_SCHEMA], "displayName": format!("group{g}") });
            let created =
                send(client, reqwest::Method::POST, &format!("{base}/scim/v2/Groups"), &token, Some(group)).await?;
            groups.push(created["id"].as_str().ok_or("no group id")?.to_owned());
        }
        all.push(Tenant { token, users: Vec::new(), groups });
    }
    // The users, SEED_REQUESTS bulk requests at a time over every tenant.
    let mut chunks = Vec::new();
    for t in 0..tenants {
        let wanted = users / tenants + usize::from(t < users % tenants);
        chunks.extend((0..wanted).step_by(BULK_SIZE).map(|from| (t, from, (wanted - from).min(BULK_SIZE))));
    }
    let mut chunks = chunks.into_iter();
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < SEED_REQUESTS {
            let Some((t, from, n)) = chunks.next() else { break };
            let (client, url, token) = (client.clone(), format!("{base}/scim/v2/Bulk"), all[t].token.clone());
            running.spawn(async move {
                let names: Vec<String> = (from..from + n).map(|i| format!("user{i}.t{t}")).collect();
                let reply = send(&client, reqwest::Method::POST, &url, &token, Some(bulk_of(&names))).await?;
                let mut seeded = Vec::with_capacity(n);
                for (name, op) in names.iter().zip(reply["Operations"].as_array().ok_or("no bulk operations")?) {
                    if op["status"] != "201" {
                        return Err(format!("seeding {name}: {op}"));
                    }
                    let id = op["location"].as_str().and_then(|l| l.rsplit('/').next()).ok_or("no location")?;
                    seeded.push(User {
                        id: id.to_owned(),
                        user_name: name.clone(),
                        external_id: format!("ext-{name}"),
                    });
                }
                Ok::<_, String>((t, seeded))
            });
        }
        let Some(done) = running.join_next().await else { break };
        let (t, seeded) = done.map_err(|e| e.to_string())??;
        all[t].users.extend(seeded);
    }
    Ok(all)
}

fn user_doc(user_name: &str) -> Value {
    json!({ "schemas": [USER_SCHEMA], "userName": user_name, "externalId": format!("ext-{user_name}"),
            "displayName": format!("User {user_name}"), "active": true,
            "name": { "givenName": "Bench", "familyName": user_name },
            "emails": [{ "value": format!("{user_name}@bench.test"), "type": "work", "primary": true }] })
}

fn bulk_of(user_names: &[String]) -> Value {
    let operations: Vec<Value> = user_names
        .iter()
        .enumerate()
        .map(|(i, name)| json!({ "method": "POST", "path": "/Users", "bulkId": format!("u{i}"), "data": user_doc(name) }))
        .collect();
    json!({ "schemas": [BULK_SCHEMA], "Operations": operations })
}

/// One request whose 2xx JSON body is wanted (seeding).
async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let mut request = client.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.header("Content-Type", "application/scim+json").body(body.to_string());
    }
    let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{url}: {status}: {text}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("{url}: {e}"))
}

/// What one connection knows while it runs a scenario.
struct Lane {
    client: reqwest::Client,
    base: String,
    tenants: Arc<Vec<Tenant>>,
    tenant: usize,
    lane: usize,
    run: u64,
    done: u64,
    /// The user the previous operation deactivated (patch-active re-activates it next).
    deactivated: Option<User>,
}

impl Lane {
    fn tenant(&self) -> &Tenant {
        &self.tenants[self.tenant]
    }

    fn any_user(&self) -> User {
        let users = &self.tenant().users;
        users[fastrand::usize(..users.len())].clone()
    }

    /// One operation of `scenario`: Ok when every request in it answered 2xx.
    async fn operate(&mut self, scenario: Scenario) -> Result<(), String> {
        self.done += 1;
        let token = self.tenant().token.clone();
        let scim = format!("{}/scim/v2", self.base);
        match scenario {
            Scenario::Healthz => self.call(reqwest::Method::GET, &format!("{}/healthz", self.base), None, None).await,
            Scenario::Get => {
                let user = self.any_user();
                self.call(reqwest::Method::GET, &format!("{scim}/Users/{}", user.id), Some(&token), None).await
            }
            Scenario::FilterUserName | Scenario::FilterExternalId => {
                let user = self.any_user();
                let (attribute, value) = if scenario == Scenario::FilterUserName {
                    ("userName", user.user_name)
                } else {
                    ("externalId", user.external_id)
                };
                let url = format!("{scim}/Users?filter={attribute}%20eq%20%22{value}%22");
                self.call(reqwest::Method::GET, &url, Some(&token), None).await
            }
            Scenario::List100 => {
                self.call(reqwest::Method::GET, &format!("{scim}/Users?startIndex=1&count=100"), Some(&token), None)
                    .await
            }
            Scenario::Create => {
                let name = format!("new{}.{}.{}", self.run, self.lane, self.done);
                self.call(reqwest::Method::POST, &format!("{scim}/Users"), Some(&token), Some(user_doc(&name))).await
            }
            Scenario::Patch => {
                // Deactivate a user, then re-activate the same one: every operation is a change
                // (a PATCH that changes nothing writes nothing), and seats move both ways.
                let (user, active) = match self.deactivated.take() {
                    Some(user) => (user, true),
                    None => {
                        let user = self.any_user();
                        self.deactivated = Some(user.clone());
                        (user, false)
                    }
                };
                let body = patch(json!([{ "op": "replace", "path": "active", "value": active }]));
                self.call(reqwest::Method::PATCH, &format!("{scim}/Users/{}", user.id), Some(&token), Some(body)).await
            }
            Scenario::Put => {
                let user = self.any_user();
                let mut doc = user_doc(&user.user_name);
                doc["displayName"] = json!(format!("Put {}", self.done));
                self.call(reqwest::Method::PUT, &format!("{scim}/Users/{}", user.id), Some(&token), Some(doc)).await
            }
            Scenario::Members => {
                let user = self.any_user();
                let group = self.tenant().groups[fastrand::usize(..GROUPS)].clone();
                let url = format!("{scim}/Groups/{group}");
                let add = patch(json!([{ "op": "add", "path": "members", "value": [{ "value": user.id }] }]));
                self.call(reqwest::Method::PATCH, &url, Some(&token), Some(add)).await?;
                let remove = patch(json!([{ "op": "remove", "path": format!("members[value eq \"{}\"]", user.id) }]));
                self.call(reqwest::Method::PATCH, &url, Some(&token), Some(remove)).await
            }
            Scenario::Bulk => {
                let names: Vec<String> =
                    (0..BULK_SIZE).map(|i| format!("bulk{}.{}.{}.{i}", self.run, self.lane, self.done)).collect();
                self.call(reqwest::Method::POST, &format!("{scim}/Bulk"), Some(&token), Some(bulk_of(&names))).await
            }
            Scenario::Sweep => {
                let user = self.any_user();
                let url = format!("{scim}/Users?filter=userName%20eq%20%22{}%22", user.user_name);
                self.call(reqwest::Method::GET, &url, Some(&token), None).await?;
                let body =
                    patch(json!([{ "op": "replace", "path": "displayName", "value": format!("Swept {}", self.done) }]));
                self.call(reqwest::Method::PATCH, &format!("{scim}/Users/{}", user.id), Some(&token), Some(body)).await
            }
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(), String> {
        let mut request = self.client.request(method, url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.header("Content-Type", "application/scim+json").body(body.to_string());
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("{status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)])))
        }
    }
}

fn patch(operations: Value) -> Value {
    json!({ "schemas": [PATCH_SCHEMA], "Operations": operations })
}

/// Runs `scenario` on every connection for the warm-up, then for the measured seconds.
async fn measure(
    args: &Args,
    client: &reqwest::Client,
    base: &str,
    tenants: &Arc<Vec<Tenant>>,
    scenario: Scenario,
) -> Figures {
    static RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let measured = Duration::from_secs(args.seconds.max(1));
    // A bulk request of 1 000 users can take longer than the warm-up: it is measured from the
    // first request to the last answer instead.
    let warm_up = if scenario == Scenario::Bulk { Duration::ZERO } else { measured / 5 };
    let begun = Instant::now();
    let (from, until) = (begun + warm_up, begun + warm_up + measured);
    let lanes = scenario.connections(args.connections);
    let mut tasks = Vec::with_capacity(lanes);
    for lane in 0..lanes {
        let mut state = Lane {
            client: client.clone(),
            base: base.to_owned(),
            tenants: tenants.clone(),
            tenant: lane % tenants.len(),
            lane,
            run,
            done: 0,
            deactivated: None,
        };
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let (mut errors, mut first_error) = (0u64, None);
            loop {
                let start = Instant::now();
                if start >= until {
                    break;
                }
                let outcome = state.operate(scenario).await;
                if start >= from {
                    // Only what succeeded counts as throughput (a refusal can be fast).
                    match outcome {
                        Ok(()) => latencies.push(start.elapsed().as_micros() as u32),
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(e);
                        }
                    }
                }
            }
            (latencies, errors, first_error)
        }));
    }
    let mut latencies = Vec::new();
    let (mut errors, mut first_error) = (0u64, None);
    for task in tasks {
        if let Ok((l, e, f)) = task.await {
            latencies.extend(l);
            errors += e;
            if first_error.is_none() {
                first_error = f;
            }
        }
    }
    // Operations still in flight at the end ran past it: count the time they took.
    let elapsed = Instant::now().saturating_duration_since(from).max(measured);
    latencies.sort_unstable();
    let percentile = |p: f64| {
        if latencies.is_empty() {
            return 0.0;
        }
        let at = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        f64::from(latencies[at]) / 1000.0
    };
    Figures {
        scenario,
        operations_per_s: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(0.50),
        p99_ms: percentile(0.99),
        operations: latencies.len() as u64 + errors,
        errors,
        first_error,
    }
}
