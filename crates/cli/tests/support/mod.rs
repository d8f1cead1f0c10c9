//! What the process-level tests share: a minimal HTTP client and a `scimd serve` child process.
// Each test binary uses part of it.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_scimd");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Sends one HTTP/1.1 request on a new connection; the reply is read by [`receive`].
pub fn send(port: u16, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> TcpStream {
    try_send(port, method, path, token, body).expect("send the request")
}

/// Reads the reply to a request [`send`] wrote: its status and JSON body.
pub fn receive(stream: TcpStream) -> (u16, Value) {
    try_receive(stream).expect("a response")
}

fn try_send(port: u16, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> io::Result<TcpStream> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Content-Type: application/scim+json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    Ok(stream)
}

fn try_receive(mut stream: TcpStream) -> io::Result<(u16, Value)> {
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let status = raw.split(' ').nth(1).and_then(|s| s.parse().ok());
    let status = status.ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no status line"))?;
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

/// One request whose connection may fail (the server was killed): an error means no answer.
pub fn try_http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> io::Result<(u16, Value)> {
    try_receive(try_send(port, method, path, token, body)?)
}

/// A minimal HTTP/1.1 client: one request per connection.
pub fn http(port: u16, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
    receive(send(port, method, path, token, body))
}

pub struct Server {
    pub child: Child,
    pub port: u16,
    pub lines: Vec<String>,
}

impl Server {
    /// Starts `scimd serve` and reads its banner up to the "New SCIM token" line.
    pub fn start(data_dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Server {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(BIN);
        cmd.arg("serve").arg("--data-dir").arg(data_dir).stdout(Stdio::piped()).stderr(Stdio::null());
        if !extra.iter().any(|a| *a == "--listen" || *a == "--config")
            && !envs.iter().any(|(k, _)| *k == "SCIMD_LISTEN")
        {
            cmd.arg("--listen").arg(&listen);
        }
        cmd.args(extra).env_remove("SCIMD_OPERATOR_TOKEN").env_remove("SCIMD_LISTEN").env_remove("SCIMD_CONFIG");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn scimd");
        let mut lines = Vec::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        loop {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap() == 0 {
                panic!("scimd exited early: {lines:?}");
            }
            lines.push(line.trim_end().to_owned());
            if line.starts_with("New SCIM token") {
                break;
            }
        }
        // Keep draining stdout so the process never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = out.read_to_string(&mut sink);
        });
        let port = lines
            .iter()
            .find_map(|l| l.strip_prefix("scimd ").and_then(|l| l.split("http://127.0.0.1:").nth(1)))
            .and_then(|p| p.parse().ok())
            .unwrap_or(port);
        Server { child, port, lines }
    }

    pub fn printed(&self, pattern: &str) -> Option<String> {
        self.lines.iter().map(|l| l.trim()).find(|l| l.starts_with(pattern)).map(str::to_owned)
    }

    pub fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "scimd did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Server {
    /// Kills the process with SIGKILL: no shutdown, no flushing, as when a machine dies.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
