//! scimd's domain: tenants and their SCIM tokens, and the provisioning service that applies the
//! SCIM protocol core to stored resources. It knows nothing about HTTP or SQL: the store is a
//! trait ([`store::Store`]) and the clock and randomness are injected ([`clock`]).

#![warn(missing_docs)]

use std::sync::Arc;

pub mod access;
pub mod bulk;
pub mod clock;
pub mod doctor;
pub mod error;
pub mod events;
pub mod provisioning;
pub mod query;
pub mod rate_limit;
pub mod resources;
pub mod store;
pub mod tenant;
pub mod token;
pub mod token_cache;
pub mod webhooks;

pub use error::{DomainError, Result};

use clock::{Clock, Random};
use store::Store;

/// Limits that bound the work one request can cause; advertised where SCIM advertises them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest page a list or search returns (`filter.maxResults`).
    pub max_page_size: u64,
    /// Page size when the client names none.
    pub default_page_size: u64,
    /// Most operations in one bulk request (`bulk.maxOperations`).
    pub max_bulk_operations: usize,
    /// Largest bulk request body in bytes (`bulk.maxPayloadSize`).
    pub max_bulk_payload: usize,
    /// Largest body of any other request in bytes.
    pub max_body: usize,
    /// Each tenant's SCIM request rate, unless an operator gave the tenant its own.
    pub rate: rate_limit::RateLimit,
    /// Length and nesting of clients' filters (at most the protocol core's bounds).
    pub filter: scim_proto::filter::FilterLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_page_size: 1000,
            default_page_size: 100,
            max_bulk_operations: 1000,
            max_bulk_payload: 4 * 1024 * 1024,
            max_body: 1024 * 1024,
            rate: rate_limit::RateLimit::DEFAULT,
            filter: scim_proto::filter::FilterLimits::MAX,
        }
    }
}

/// The domain's entry point: every operation of scimd, over an injected store, clock and
/// randomness. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    /// Where everything is kept.
    pub store: Arc<dyn Store>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// The secret randomness source.
    pub random: Arc<dyn Random>,
    /// Per-request work limits.
    pub limits: Limits,
    /// Password hashing is deliberately slow: at most this many run at once, off the async
    /// workers, so that sign-ins cannot starve SCIM traffic.
    pub(crate) password_work: Arc<tokio::sync::Semaphore>,
    /// This process among the nodes sharing the database: who holds a background job's lease.
    node: Arc<str>,
    /// Tokens recently read, so that a request is authenticated without a database read.
    tokens: Arc<token_cache::TokenCache>,
    /// Every tenant's request bucket on this node.
    rate_limiter: Arc<rate_limit::RateLimiter>,
}

impl Service {
    /// A service over the given parts.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, random: Arc<dyn Random>, limits: Limits) -> Self {
        let node = {
            let mut bytes = [0u8; 8];
            random.fill(&mut bytes);
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        Service {
            store,
            clock,
            random,
            limits,
            password_work: Arc::new(tokio::sync::Semaphore::new(2)),
            node: node.into(),
            tokens: Arc::default(),
            rate_limiter: Arc::default(),
        }
    }

    /// Whether this node may run background job `job` now: it holds (or has just taken) the
    /// job's lease, renewed for `term`. Several nodes on one database then run each job once at
    /// a time; when the holder dies, its lease runs out and another node takes the job over.
    pub async fn lead(&self, job: &str, term: std::time::Duration) -> Result<bool> {
        Ok(self.store.hold_lease(job, &self.node, term).await?)
    }

    /// This process's name in job leases (random per start), for logs.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// A new identifier for a tenant, token or resource: a UUID v7 from the injected clock and
    /// randomness (time-ordered, so rows inserted together stay together in indexes).
    pub fn new_id(&self) -> String {
        let millis = (self.clock.now().unix_timestamp_nanos() / 1_000_000).max(0) as u64;
        let mut random = [0u8; 10];
        self.random.fill(&mut random);
        uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid().to_string()
    }

    /// The current time on the injected clock.
    pub fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }

    /// Whether the store answers (for readiness checks).
    pub async fn ready(&self) -> Result<()> {
        Ok(self.store.ping().await?)
    }
}
