//! The audit log: every change an admin makes, with who, what, when, and the object before and
//! after. Secrets (token and key hashes, webhook secrets, passwords) never enter it.

use std::future::Future;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::Principal;
use crate::tenant::TenantId;
use crate::{Result, Service};

/// Field names whose values never enter the audit log.
const SECRET_FIELDS: &[&str] = &["secret", "hash", "password", "password_hash", "token"];

/// One admin change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Its position in the log (0 until stored).
    pub id: i64,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who did it (an email, an API key, or `operator token`).
    pub actor: String,
    /// The tenant it touched, if any.
    pub tenant_id: Option<TenantId>,
    /// What was done, e.g. `profile.update`.
    pub action: String,
    /// The id of the object changed.
    pub target: String,
    /// The object before, when it existed.
    pub before: Option<Value>,
    /// The object after, when it still exists.
    pub after: Option<Value>,
}

/// Which audit entries to read.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only this tenant's.
    pub tenant_id: Option<TenantId>,
    /// Only entries older than this id (for paging back).
    pub before_id: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// A value as the audit log keeps it: JSON with secret fields removed.
pub fn redacted(value: &impl Serialize) -> Value {
    let mut v = serde_json::to_value(value).unwrap_or(Value::Null);
    strip_secrets(&mut v);
    v
}

fn strip_secrets(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|k, _| !SECRET_FIELDS.contains(&k.as_str()));
            map.values_mut().for_each(strip_secrets);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_secrets),
        _ => {}
    }
}

/// What one admin change is, for [`Service::audited`].
pub struct Change<'a> {
    /// Who.
    pub principal: &'a Principal,
    /// The tenant touched.
    pub tenant_id: Option<&'a str>,
    /// What, e.g. `profile.update`.
    pub action: &'static str,
    /// The object's id.
    pub target: &'a str,
    /// The object before the change.
    pub before: Option<Value>,
}

impl Service {
    /// Runs a change and, when it succeeds, records it with the object it returned as `after`
    /// (a deletion returns `()`, recorded as no `after`). The entry is written after the change
    /// commits; if that write fails the request fails, so a change is never silently unaudited.
    pub async fn audited<T: Serialize>(
        &self,
        change: Change<'_>,
        operation: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let result = operation.await?;
        let after = Some(redacted(&result)).filter(|v| !v.is_null());
        let entry = AuditEntry {
            id: 0,
            at: self.clock.now(),
            actor: change.principal.actor.clone(),
            tenant_id: change.tenant_id.map(str::to_owned),
            action: change.action.to_owned(),
            target: change.target.to_owned(),
            before: change.before,
            after,
        };
        self.store.append_audit(&entry).await?;
        Ok(result)
    }

    /// The audit log, newest first; `limit` is capped at 500.
    pub async fn audit_log(&self, mut query: AuditQuery) -> Result<Vec<AuditEntry>> {
        query.limit = query.limit.clamp(1, 500);
        Ok(self.store.audit_log(&query).await?)
    }
}
