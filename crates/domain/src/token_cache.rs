//! Tokens this node has read, kept for a moment so that authenticating a request costs no
//! database read.
//!
//! A change made through this node (a revocation, a rotation) forgets the tenant's tokens at
//! once. A change made elsewhere (another node, the CLI) reaches this node within
//! [`TOKEN_CACHE_TTL`]: that is the documented bound on how long a revoked token keeps working
//! on the other nodes. Expiry needs no bound: it is checked against the clock on every request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::tenant::Tenant;
use crate::token::TokenRecord;

/// How long a token read from the database is trusted without reading it again.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(1);
/// Most tokens kept; when full the cache starts over (tokens are a few per tenant).
const CAPACITY: usize = 10_000;

/// Tokens (with their tenants) by public prefix.
#[derive(Default)]
pub(crate) struct TokenCache {
    entries: Mutex<HashMap<String, Entry>>,
    /// Moves on at every change of tokens through this node: a token read before a change is not
    /// kept after it (a request racing a revocation would otherwise keep the old state).
    changes: AtomicU64,
}

struct Entry {
    record: TokenRecord,
    tenant: Tenant,
    read_at: Instant,
}

impl TokenCache {
    /// The token with this prefix and its tenant, if read less than [`TOKEN_CACHE_TTL`] ago.
    pub(crate) fn get(&self, prefix: &str) -> Option<(TokenRecord, Tenant)> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get(prefix)?;
        (entry.read_at.elapsed() < TOKEN_CACHE_TTL).then(|| (entry.record.clone(), entry.tenant.clone()))
    }

    /// What to pass to [`Self::put`] for a token about to be read from the database.
    pub(crate) fn before_read(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }

    /// Keeps a token read from the database, unless tokens changed through this node since
    /// [`Self::before_read`] returned `read_from`.
    pub(crate) fn put(&self, record: TokenRecord, tenant: Tenant, read_from: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if self.changes.load(Ordering::SeqCst) != read_from {
            return;
        }
        if entries.len() >= CAPACITY {
            entries.retain(|_, e| e.read_at.elapsed() < TOKEN_CACHE_TTL);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(record.prefix.clone(), Entry { record, tenant, read_at: Instant::now() });
    }

    /// Notes a use recorded in the database, so that the next requests do not record it again.
    pub(crate) fn touched(&self, prefix: &str, at: OffsetDateTime, agent: Option<String>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = entries.get_mut(prefix) {
            entry.record.last_used_at = Some(at);
            entry.record.last_used_agent = agent;
        }
    }

    /// Forgets every token of a tenant whose tokens changed through this node.
    pub(crate) fn forget_tenant(&self, tenant_id: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.changes.fetch_add(1, Ordering::SeqCst);
        entries.retain(|_, e| e.record.tenant_id != tenant_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(prefix: &str, tenant: &str) -> (TokenRecord, Tenant) {
        let at = OffsetDateTime::UNIX_EPOCH;
        let record = TokenRecord {
            id: format!("id-{prefix}"),
            tenant_id: tenant.into(),
            prefix: prefix.into(),
            hash: "h".into(),
            created_at: at,
            expires_at: at,
            revoked_at: None,
            revoke_reason: None,
            last_used_at: None,
            last_used_agent: None,
        };
        (record, Tenant { id: tenant.into(), name: tenant.into(), token_lifetime_days: 1, created_at: at })
    }

    #[test]
    fn a_change_forgets_the_tenant_and_a_read_from_before_it_is_not_kept() {
        let cache = TokenCache::default();
        let (a, acme) = token("scimd_a", "acme");
        let (b, globex) = token("scimd_b", "globex");
        cache.put(a.clone(), acme.clone(), cache.before_read());
        cache.put(b, globex, cache.before_read());
        assert!(cache.get("scimd_a").is_some() && cache.get("scimd_b").is_some());
        // A request reads token a, a revocation of acme's tokens lands, then the request
        // would keep what it read: it must not.
        let read_from = cache.before_read();
        cache.forget_tenant("acme");
        cache.put(a.clone(), acme.clone(), read_from);
        assert!(cache.get("scimd_a").is_none(), "read before the change, not kept");
        assert!(cache.get("scimd_b").is_some(), "another tenant's token stays");
        cache.put(a, acme, cache.before_read());
        assert!(cache.get("scimd_a").is_some());
    }
}
