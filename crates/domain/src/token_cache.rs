//! Tokens this node has read, kept for a moment so that authenticating a request costs no
//! database read.
//!
//! A change made through this node (a revocation, a rotation) forgets the tenant's tokens at
//! once. A change made elsewhere (another node, the CLI) reaches this node within
//! [`TOKEN_CACHE_TTL`]: that is the documented bound on how long a revoked token keeps working
//! on the other nodes. Expiry needs no bound: it is checked against the clock on every request.

use std::collections::HashMap;
use std::sync::Mutex;
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

    /// Keeps a token just read from the database.
    pub(crate) fn put(&self, record: TokenRecord, tenant: Tenant) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
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
        entries.retain(|_, e| e.record.tenant_id != tenant_id);
    }
}
