//! A report as text for an admin at a terminal: each finding's severity, code and title, its
//! evidence one item a line, and the fix as numbered steps.

use std::fmt::Write;

use serde_json::Value;

use super::{Report, Severity};
use crate::clock::format_time;

/// Renders one report.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let idp = report.idp.map_or("not known yet", |i| i.as_str());
    let _ = writeln!(out, "Tenant \"{}\" ({})", report.tenant_name, report.tenant_id);
    let _ = writeln!(
        out,
        "  identity provider: {idp} · window: last {} days · {} events examined{} · {}",
        report.window_days,
        report.events_examined,
        if report.events_truncated { " (more exist: counts are lower bounds)" } else { "" },
        format_time(report.generated_at)
    );
    if let Some(user) = &report.user {
        let _ = writeln!(out, "  user: {user}");
    }
    if report.findings.is_empty() {
        let _ = writeln!(out, "\nNo problems found.");
    }
    for f in &report.findings {
        let label = match f.severity {
            Severity::Error => "ERROR",
            Severity::Warning => "WARNING",
            Severity::Info => "INFO",
        };
        let _ = writeln!(out, "\n{label:<8}{}  [{}]", f.title, f.code);
        if let Value::Object(map) = &f.evidence {
            for (key, value) in map {
                evidence_line(&mut out, key, value);
            }
        }
        if !f.fix.is_empty() {
            let _ = writeln!(out, "        Fix:");
            for (i, step) in f.fix.iter().enumerate() {
                let _ = writeln!(out, "          {}. {step}", i + 1);
            }
        }
    }
    let _ = writeln!(
        out,
        "\nResult: {} ({} errors, {} warnings, {} info)",
        report.status(),
        report.count(Severity::Error),
        report.count(Severity::Warning),
        report.count(Severity::Info)
    );
    out
}

/// A value for people: strings without quotes, `null` as `-`, objects as `key=value` pairs with
/// nested objects and lists in parentheses.
fn flat(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        Value::Array(items) => items.iter().map(inner).collect::<Vec<_>>().join(", "),
        Value::Object(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| format!("{k}={}", inner(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

fn evidence_line(out: &mut String, key: &str, value: &Value) {
    match value {
        Value::Null => {}
        Value::Array(items) if items.iter().any(Value::is_object) => {
            let _ = writeln!(out, "        {key}:");
            for item in items {
                let _ = writeln!(out, "          - {}", flat(item));
            }
        }
        Value::Array(items) if items.is_empty() => {}
        other => {
            let _ = writeln!(out, "        {key}: {}", flat(other));
        }
    }
}

/// A value inside another: objects and arrays in parentheses.
fn inner(v: &Value) -> String {
    match v {
        Value::Object(_) | Value::Array(_) => format!("({})", flat(v)),
        other => flat(other),
    }
}
