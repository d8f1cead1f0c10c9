//! `scimd backup` under write load and `scimd restore`: the backup holds every write acknowledged
//! before it began and nothing sent after it ended; a restore refuses to run beside a server and
//! brings the backup back.

mod support;

use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{BIN, Server, http};

/// An acknowledged create of the load: its userName, when it was sent and when answered.
struct Create {
    user_name: String,
    sent: Instant,
    acknowledged: Instant,
}

fn scimd(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN).args(args).env_remove("DATABASE_URL").output().expect("run scimd");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Every userName of the tenant, page by page.
fn user_names(port: u16, token: &str) -> HashSet<String> {
    let mut names = HashSet::new();
    loop {
        let path = format!("/scim/v2/Users?count=1000&startIndex={}&attributes=userName", names.len() + 1);
        let (code, page) = http(port, "GET", &path, Some(token), None);
        assert_eq!(code, 200, "{page}");
        let resources = page["Resources"].as_array().unwrap();
        names.extend(resources.iter().map(|u| u["userName"].as_str().unwrap().to_owned()));
        if resources.is_empty() || names.len() as u64 >= page["totalResults"].as_u64().unwrap() {
            return names;
        }
    }
}

#[test]
fn a_backup_under_write_load_holds_every_acknowledged_write_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data = data_dir.to_str().unwrap();
    let server = Server::start(&data_dir, &["--rate-limit", "0"], &[]);
    let token = server.printed("scimd_").unwrap();
    let port = server.port;

    let creates = Arc::new(Mutex::new(Vec::<Create>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (creates, stop, token) = (creates.clone(), stop.clone(), token.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let user_name = format!("w{w}-{n}");
                    n += 1;
                    let body =
                        json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name });
                    let sent = Instant::now();
                    let (code, reply) = http(port, "POST", "/scim/v2/Users", Some(&token), Some(&body));
                    assert_eq!(code, 201, "{reply}");
                    creates.lock().unwrap().push(Create { user_name, sent, acknowledged: Instant::now() });
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let backup_file = dir.path().join("scimd-backup.db");
    let began = Instant::now();
    let (ok, out) = scimd(&["backup", "--data-dir", data, "--to", backup_file.to_str().unwrap()]);
    let ended = Instant::now();
    assert!(ok, "{out}");
    assert!(out.contains("integrity checked"), "{out}");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let creates = std::mem::take(&mut *creates.lock().unwrap());
    let before: Vec<&Create> = creates.iter().filter(|c| c.acknowledged < began).collect();
    let after: Vec<&Create> = creates.iter().filter(|c| c.sent > ended).collect();
    assert!(
        before.len() > 50 && !after.is_empty(),
        "load before ({}) and after ({}) the backup",
        before.len(),
        after.len()
    );

    // A second backup to the same file is refused; so is a restore beside the running server.
    let (ok, out) = scimd(&["backup", "--data-dir", data, "--to", backup_file.to_str().unwrap()]);
    assert!(!ok && out.contains("will not overwrite"), "{out}");
    let (ok, out) = scimd(&["restore", "--data-dir", data, "--from", backup_file.to_str().unwrap()]);
    assert!(!ok && out.contains("in use"), "{out}");
    assert_eq!(user_names(port, &token).len(), creates.len(), "the refused restore changed nothing");
    assert!(server.terminate().success());

    let (ok, out) = scimd(&["restore", "--data-dir", data, "--from", backup_file.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("The database it replaced is kept as"), "{out}");
    let restored = Server::start(&data_dir, &["--rate-limit", "0"], &[]);
    let names = user_names(restored.port, &token);
    for c in &before {
        assert!(names.contains(&c.user_name), "{} was acknowledged before the backup began", c.user_name);
    }
    for c in &after {
        assert!(!names.contains(&c.user_name), "{} was sent after the backup ended", c.user_name);
    }
    println!(
        "backup under load: {} creates, {} acknowledged before the backup and all restored, {} sent after it and \
         none restored; backup took {:.0} ms",
        creates.len(),
        before.len(),
        after.len(),
        (ended - began).as_secs_f64() * 1000.0
    );

    // A file that is not a backup is refused before anything is touched.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database").unwrap();
    drop(restored);
    let (ok, out) = scimd(&["restore", "--data-dir", data, "--from", junk.to_str().unwrap()]);
    assert!(!ok && out.contains("is not a scimd database"), "{out}");
}
