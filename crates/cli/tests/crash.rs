//! Crash consistency: SCIM write load (creates, deactivations and re-activations, email changes,
//! group membership, and writes the rules refuse), `SIGKILL` at a random moment, a restart, and
//! then the checks:
//!
//! - every acknowledged (2xx) write is there, and a write that was in flight at the kill is either
//!   wholly there or wholly absent;
//! - a refused write (403 profile full, 409 email taken) left no trace;
//! - every profile's seat count equals its active users, and never exceeds its limit;
//! - the email claims are exactly the emails the users hold.
//!
//! `SCIMD_CRASH_CYCLES` sets the number of kill cycles (20 by default, as in CI);
//! `SCIMD_CRASH_SEED` replays a seed's choices (the kill moments still depend on timing).

mod support;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Server, http, try_http};

const OPERATOR: &str = "crash-test-operator-token-0123456789";
const WORKERS: u64 = 4;
/// Seats of the default profile: small enough that creates and re-activations are refused often.
const SEATS: u64 = 40;
/// Users a worker keeps; beyond it, it changes the ones it has.
const USERS_PER_WORKER: usize = 30;
/// Emails held by another tenant: a create or change to one of them must be refused.
const FOREIGN_EMAILS: u64 = 5;
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// What a user looks like over SCIM, in the parts the load changes.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    active: bool,
    email: String,
    member: bool,
}

/// One user a worker made (or tried to): what it may look like now. One state when the last
/// write was answered; two (before and after) when the server died with it in flight.
#[derive(Clone, Debug)]
struct Tracked {
    user_name: String,
    id: Option<String>,
    allowed: Vec<Option<Seen>>,
}

impl Tracked {
    /// The state the worker relies on: known only when the last write was answered.
    fn known(&self) -> Option<&Seen> {
        match self.allowed.as_slice() {
            [Some(seen)] if self.id.is_some() => Some(seen),
            _ => None,
        }
    }
}

/// A small deterministic generator (xorshift64*): the seed is printed, so a failure's choices
/// can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Tallies of what the load did, for the test's report.
#[derive(Default, Debug)]
struct Tally {
    acknowledged: u64,
    refused: u64,
    in_flight_at_kill: u64,
}

struct Worker {
    index: u64,
    port: u16,
    token: String,
    group: String,
    users: Vec<Tracked>,
    made: u64,
    rng: Rng,
    tally: Tally,
}

/// How a write turned out.
enum Outcome {
    /// 2xx: the change is durable.
    Done(Value),
    /// A refusal the load expects: nothing changed.
    Refused,
    /// No answer: the server died with the write in flight.
    Unknown,
}

impl Worker {
    fn write(&mut self, method: &str, path: &str, body: &Value, refusals: &[u16]) -> Outcome {
        match try_http(self.port, method, path, Some(&self.token), Some(body)) {
            Ok((code, reply)) if (200..300).contains(&code) => {
                self.tally.acknowledged += 1;
                Outcome::Done(reply)
            }
            // A busy server may shed load: that too is a refusal that must change nothing.
            Ok((code, _)) if refusals.contains(&code) || code == 429 => {
                self.tally.refused += 1;
                Outcome::Refused
            }
            Ok((code, reply)) => panic!("{method} {path} {body}: unexpected {code} {reply}"),
            Err(_) => {
                self.tally.in_flight_at_kill += 1;
                Outcome::Unknown
            }
        }
    }

    fn email(&mut self, user: &str) -> String {
        self.made += 1;
        format!("{user}.{}@example.com", self.made)
    }

    /// Either a fresh email, or (now and then) one another tenant holds, which must be refused.
    fn some_email(&mut self, user: &str) -> String {
        if self.rng.below(8) == 0 {
            format!("foreign{}@example.com", self.rng.below(FOREIGN_EMAILS))
        } else {
            self.email(user)
        }
    }

    /// Runs writes until one goes unanswered (the server was killed) or `stop` is set.
    fn run(&mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            let answered = if self.users.is_empty() || self.rng.below(3) == 0 {
                self.create()
            } else {
                let i = self.rng.below(self.users.len() as u64) as usize;
                match self.rng.below(3) {
                    0 => self.toggle_active(i),
                    1 => self.change_email(i),
                    _ => self.toggle_membership(i),
                }
            };
            if !answered {
                return;
            }
        }
    }

    /// Creates a new user, or re-creates one that a refusal left absent.
    fn create(&mut self) -> bool {
        let i = match self.users.iter().position(|u| u.allowed == [None]) {
            Some(i) => i,
            None if self.users.len() < USERS_PER_WORKER => {
                let user_name = format!("w{}-{}", self.index, self.users.len());
                self.users.push(Tracked { user_name, id: None, allowed: vec![None] });
                self.users.len() - 1
            }
            None => return true,
        };
        let user_name = self.users[i].user_name.clone();
        let email = self.some_email(&user_name);
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": user_name,
            "emails": [{ "value": email, "type": "work", "primary": true }],
            "active": true,
        });
        let created = Seen { active: true, email, member: false };
        match self.write("POST", "/scim/v2/Users", &body, &[403, 409]) {
            Outcome::Done(reply) => {
                self.users[i].id = reply["id"].as_str().map(str::to_owned);
                self.users[i].allowed = vec![Some(created)];
            }
            Outcome::Refused => {}
            Outcome::Unknown => {
                self.users[i].allowed = vec![None, Some(created)];
                return false;
            }
        }
        true
    }

    /// Sends the PATCH `request` builds from user `i`'s id and state, which makes `change` of it;
    /// `refusals` are the statuses that leave it as it was.
    fn patch(
        &mut self,
        i: usize,
        refusals: &[u16],
        request: impl FnOnce(&str, &Seen) -> (String, Value),
        change: impl FnOnce(&mut Seen),
    ) -> bool {
        let (Some(before), Some(id)) = (self.users[i].known().cloned(), self.users[i].id.clone()) else {
            return true;
        };
        let (path, body) = request(&id, &before);
        let mut after = before.clone();
        change(&mut after);
        match self.write("PATCH", &path, &body, refusals) {
            Outcome::Done(_) => self.users[i].allowed = vec![Some(after)],
            Outcome::Refused => {}
            Outcome::Unknown => {
                self.users[i].allowed = vec![Some(before), Some(after)];
                return false;
            }
        }
        true
    }

    /// Deactivates an active user, or re-activates one (refused with 403 when the seats are gone).
    fn toggle_active(&mut self, i: usize) -> bool {
        let request = |id: &str, s: &Seen| {
            let operation = json!({ "op": "replace", "path": "active", "value": !s.active });
            (format!("/scim/v2/Users/{id}"), json!({ "schemas": [PATCH_OP], "Operations": [operation] }))
        };
        self.patch(i, &[403, 409], request, |s| s.active = !s.active)
    }

    /// Moves the user to another email: a fresh one, or a foreign one (409, nothing changes).
    fn change_email(&mut self, i: usize) -> bool {
        let user_name = self.users[i].user_name.clone();
        let email = self.some_email(&user_name);
        let value = json!([{ "value": email, "type": "work", "primary": true }]);
        let request = |id: &str, _: &Seen| {
            let operation = json!({ "op": "replace", "path": "emails", "value": value });
            (format!("/scim/v2/Users/{id}"), json!({ "schemas": [PATCH_OP], "Operations": [operation] }))
        };
        self.patch(i, &[409], request, |s| s.email = email)
    }

    /// Adds the user to the worker's group, or removes it.
    fn toggle_membership(&mut self, i: usize) -> bool {
        let group = format!("/scim/v2/Groups/{}", self.group);
        let request = |id: &str, s: &Seen| {
            let operation = if s.member {
                json!({ "op": "remove", "path": format!("members[value eq \"{id}\"]") })
            } else {
                json!({ "op": "add", "path": "members", "value": [{ "value": id }] })
            };
            (group, json!({ "schemas": [PATCH_OP], "Operations": [operation] }))
        };
        self.patch(i, &[], request, |s| s.member = !s.member)
    }
}

/// Every user of the tenant over SCIM, by userName: its id and what the load changes.
fn scim_users(port: u16, token: &str, group: &HashMap<u64, String>) -> HashMap<String, (String, Seen)> {
    let (code, list) = http(port, "GET", "/scim/v2/Users?count=1000", Some(token), None);
    assert_eq!(code, 200, "{list}");
    assert!(list["totalResults"].as_u64().unwrap() <= 1000);
    let groups: BTreeSet<&str> = group.values().map(String::as_str).collect();
    let mut users = HashMap::new();
    for u in list["Resources"].as_array().unwrap() {
        let member = u["groups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| groups.contains(g["value"].as_str().unwrap_or(""))));
        let seen = Seen {
            active: u["active"].as_bool().unwrap(),
            email: u["emails"][0]["value"].as_str().unwrap_or("").to_owned(),
            member,
        };
        users.insert(u["userName"].as_str().unwrap().to_owned(), (u["id"].as_str().unwrap().to_owned(), seen));
    }
    users
}

/// The stored rules, read from the database itself: seat counts equal the active users, and
/// email claims equal the emails users hold.
fn check_invariants(db: &Path, cycle: u32) {
    let db = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut profiles = db
        .prepare(
            "SELECT p.name, p.max_users, p.active_users,
                    (SELECT COUNT(*) FROM resources r
                      WHERE r.tenant_id = p.tenant_id AND r.profile_id = p.id AND r.kind = 'User' AND r.state = 'active')
               FROM profiles p",
        )
        .unwrap();
    let rows = profiles
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?)));
    for row in rows.unwrap() {
        let (name, max, seats, active) = row.unwrap();
        assert_eq!(seats, active, "cycle {cycle}: profile {name} counts {seats} seats for {active} active users");
        assert!(max == 0 || seats <= max, "cycle {cycle}: profile {name} has {seats} seats of {max}");
    }
    let set = |sql: &str| -> BTreeSet<(String, String, String)> {
        let mut stmt = db.prepare(sql).unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
    };
    let claims = set("SELECT email, tenant_id, user_id FROM email_claims");
    let held = set("SELECT claimed_email, tenant_id, id FROM resources WHERE claimed_email IS NOT NULL");
    assert_eq!(claims, held, "cycle {cycle}: the email claims differ from the emails users hold");
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_write_and_keeps_the_rules() {
    let cycles: u32 = std::env::var("SCIMD_CRASH_CYCLES").ok().and_then(|c| c.parse().ok()).unwrap_or(20);
    let seed: u64 = std::env::var("SCIMD_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    println!("crash harness: {cycles} cycles, seed {seed} (SCIMD_CRASH_SEED={seed} replays its choices)");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let envs = [("SCIMD_OPERATOR_TOKEN", OPERATOR)];
    let server = Server::start(dir.path(), &[], &envs);
    let token = server.printed("scimd_").expect("the first start prints a SCIM token");
    let port = server.port;

    // The default tenant's profile gets a small limit; another tenant holds a few emails.
    let admin = |method: &str, path: &str, body: Option<&Value>| {
        let (code, reply) = http(port, method, &format!("/admin/api/v1{path}"), Some(OPERATOR), body);
        assert!((200..300).contains(&code), "{method} {path}: {code} {reply}");
        reply
    };
    let tenants = admin("GET", "/tenants", None);
    let tenant = tenants["tenants"][0]["id"].as_str().unwrap().to_owned();
    let profiles = admin("GET", &format!("/tenants/{tenant}/profiles"), None);
    let profile = profiles["profiles"][0]["id"].as_str().unwrap().to_owned();
    admin("PATCH", &format!("/tenants/{tenant}/profiles/{profile}"), Some(&json!({ "max_users": SEATS })));
    let other = admin("POST", "/tenants", Some(&json!({ "name": "other" })));
    let other = other["id"].as_str().unwrap();
    let other_token = admin("POST", &format!("/tenants/{other}/tokens"), Some(&json!({})));
    let other_token = other_token["token"].as_str().unwrap();
    for i in 0..FOREIGN_EMAILS {
        let body = json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("foreign{i}"),
            "emails": [{ "value": format!("foreign{i}@example.com"), "primary": true }] });
        assert_eq!(http(port, "POST", "/scim/v2/Users", Some(other_token), Some(&body)).0, 201);
    }
    let mut groups = HashMap::new();
    for w in 0..WORKERS {
        let body =
            json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": format!("group {w}") });
        let (code, group) = http(port, "POST", "/scim/v2/Groups", Some(&token), Some(&body));
        assert_eq!(code, 201, "{group}");
        groups.insert(w, group["id"].as_str().unwrap().to_owned());
    }

    let mut workers: Vec<Worker> = (0..WORKERS)
        .map(|index| Worker {
            index,
            port,
            token: token.clone(),
            group: groups[&index].clone(),
            users: Vec::new(),
            made: 0,
            rng: Rng(seed.wrapping_add(index + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            tally: Tally::default(),
        })
        .collect();
    let mut server = Some(server);
    let db = dir.path().join("scimd.db");
    let started = Instant::now();
    for cycle in 1..=cycles {
        let running = server.take().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = workers
            .drain(..)
            .map(|mut w| {
                w.port = running.port;
                let stop = stop.clone();
                std::thread::spawn(move || {
                    w.run(&stop);
                    w
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50 + rng.below(400)));
        running.kill();
        stop.store(true, Ordering::Relaxed);
        workers = handles.into_iter().map(|h| h.join().unwrap()).collect();

        let restarted = Server::start(dir.path(), &[], &envs);
        let found = scim_users(restarted.port, &token, &groups);
        for w in &mut workers {
            for u in &mut w.users {
                let now = found.get(&u.user_name);
                let state = now.map(|(_, seen)| seen.clone());
                assert!(
                    u.allowed.contains(&state),
                    "cycle {cycle}: {} is {state:?}, but only {:?} may be (seed {seed})",
                    u.user_name,
                    u.allowed
                );
                u.id = now.map(|(id, _)| id.clone());
                u.allowed = vec![state];
            }
        }
        check_invariants(&db, cycle);
        server = Some(restarted);
    }
    let total = workers.iter().fold(Tally::default(), |mut t, w| {
        t.acknowledged += w.tally.acknowledged;
        t.refused += w.tally.refused;
        t.in_flight_at_kill += w.tally.in_flight_at_kill;
        t
    });
    println!(
        "crash harness: {cycles} SIGKILL cycles in {:.1} s: {} writes acknowledged and found, {} refused and \
         without a trace, {} in flight at a kill and found whole or absent",
        started.elapsed().as_secs_f64(),
        total.acknowledged,
        total.refused,
        total.in_flight_at_kill
    );
    assert!(total.acknowledged > u64::from(cycles) * 4, "the load made too few writes to prove anything: {total:?}");
    assert!(total.refused > 0, "no write was refused: the refusal checks did not run");
}
