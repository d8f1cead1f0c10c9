//! Per-tenant request rate limits: a token bucket per tenant, so that one tenant's flood (an IdP
//! stuck in a retry loop, a leaked token) cannot starve the others of the shared service.
//!
//! The cloud-wide default applies to every tenant; an operator may give a tenant its own limit
//! (kept as a setting, so every node applies it). Each node keeps its own buckets: behind a load
//! balancer of N nodes a tenant may reach N times the limit, which still bounds it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use scim_proto::ScimError;
use serde::{Deserialize, Serialize};

use crate::Service;
use crate::access::Principal;
use crate::error::{DomainError, Refusal, Result};
use crate::events::Cause;

/// How long a node trusts the per-tenant limit it read before reading it again: the time an
/// operator's change takes to reach the other nodes.
const OVERRIDE_TTL: Duration = Duration::from_secs(10);

/// A request rate: a sustained rate and the burst above it that a full bucket allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Requests per second, sustained; 0 disables the limit.
    pub per_second: u32,
    /// Requests that may arrive at once after a quiet spell (the bucket's size); at least 1.
    pub burst: u32,
}

impl RateLimit {
    /// The default: well above what an initial sync needs (Entra ID's gallery asks for at least
    /// 25 requests/s), low enough that one tenant cannot take the whole service.
    pub const DEFAULT: RateLimit = RateLimit { per_second: 500, burst: 1000 };

    /// No limit.
    pub const UNLIMITED: RateLimit = RateLimit { per_second: 0, burst: 0 };

    /// Whether this is no limit at all.
    pub fn is_unlimited(self) -> bool {
        self.per_second == 0
    }

    /// Checks an operator's input: a burst of at least one request when limited.
    pub fn validate(self) -> std::result::Result<RateLimit, String> {
        if !self.is_unlimited() && self.burst == 0 {
            return Err("burst must be at least 1 when per_second is set (per_second 0 disables the limit)".into());
        }
        Ok(self)
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit::DEFAULT
    }
}

/// One tenant's bucket: the requests it may still make now, and the limit it was filled by.
#[derive(Debug)]
struct Bucket {
    limit: RateLimit,
    tokens: f64,
    filled_at: Instant,
    limit_read_at: Instant,
}

impl Bucket {
    /// Takes one request's token at `now`, or says how long until one is there.
    fn take(&mut self, now: Instant) -> std::result::Result<(), Duration> {
        if self.limit.is_unlimited() {
            return Ok(());
        }
        let rate = f64::from(self.limit.per_second);
        let elapsed = now.saturating_duration_since(self.filled_at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(self.limit.burst));
        self.filled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }
}

/// Every tenant's bucket on this node.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// Takes a token from `tenant`'s bucket at `now`; `limit` is the tenant's limit when the
    /// bucket must (re)learn it, `None` when the known one is still fresh. `Err` is the wait.
    fn take(&self, tenant: &str, now: Instant, limit: Option<RateLimit>) -> std::result::Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let bucket = match (buckets.get_mut(tenant), limit) {
            (Some(bucket), None) => bucket,
            (Some(bucket), Some(limit)) => {
                if bucket.limit != limit {
                    // An unlimited bucket kept no count: a new limit starts full.
                    let kept = if bucket.limit.is_unlimited() { f64::MAX } else { bucket.tokens };
                    bucket.tokens = kept.min(f64::from(limit.burst));
                    bucket.limit = limit;
                }
                bucket.limit_read_at = now;
                bucket
            }
            (None, limit) => {
                let limit = limit.unwrap_or_default();
                let fresh = Bucket { limit, tokens: f64::from(limit.burst), filled_at: now, limit_read_at: now };
                buckets.entry(tenant.to_owned()).or_insert(fresh)
            }
        };
        bucket.take(now)
    }

    /// Whether `tenant`'s limit was read less than [`OVERRIDE_TTL`] before `now`.
    fn knows(&self, tenant: &str, now: Instant) -> bool {
        let buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        buckets.get(tenant).is_some_and(|b| now.saturating_duration_since(b.limit_read_at) < OVERRIDE_TTL)
    }

    /// Forgets what this node knows of `tenant`'s limit, so the next request reads it again.
    fn forget(&self, tenant: &str) {
        self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(tenant);
    }
}

fn override_key(tenant: &str) -> String {
    format!("rate_limit.tenant.{tenant}")
}

impl Service {
    /// Admits one SCIM request of `tenant`, or refuses it with 429 and `Retry-After` when the
    /// tenant is over its rate limit.
    pub async fn admit_request(&self, tenant: &str) -> Result<()> {
        let now = Instant::now();
        let limit =
            if self.rate_limiter.knows(tenant, now) { None } else { Some(self.tenant_rate_limit(tenant).await?.0) };
        self.rate_limiter.take(tenant, now, limit).map_err(|wait| {
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u32;
            DomainError::Refused(Refusal {
                cause: Cause::RateLimited,
                error: ScimError::new(
                    429,
                    format!(
                        "too many requests for this tenant; retry after {seconds} s. Fix: lower the identity \
                         provider's request rate or concurrency, or ask the operator to raise this tenant's rate limit"
                    ),
                ),
                retry_after: Some(seconds),
            })
        })
    }

    /// `tenant`'s rate limit, and whether it is the tenant's own (otherwise the cloud's default).
    pub async fn tenant_rate_limit(&self, tenant: &str) -> Result<(RateLimit, bool)> {
        // No setting, or `null` (an own limit taken back): the default.
        let own = match self.store.setting(&override_key(tenant)).await? {
            Some(text) => serde_json::from_str::<Option<RateLimit>>(&text).map_err(|e| {
                DomainError::Invalid(format!("the stored rate limit of tenant {tenant} is unreadable: {e}"))
            })?,
            None => None,
        };
        Ok(match own {
            Some(limit) => (limit, true),
            None => (self.limits.rate, false),
        })
    }

    /// Gives `tenant` its own rate limit, or (with `None`) the cloud's default again. Operators
    /// only: a tenant may not raise its own share of the service.
    pub async fn set_tenant_rate_limit(
        &self,
        principal: &Principal,
        tenant: &str,
        limit: Option<RateLimit>,
    ) -> Result<(RateLimit, bool)> {
        principal.require_operator()?;
        let limit = limit.map(RateLimit::validate).transpose().map_err(DomainError::Invalid)?;
        let text = serde_json::to_string(&limit).map_err(|e| DomainError::Invalid(e.to_string()))?;
        self.store.set_setting(&override_key(tenant), &text).await?;
        self.rate_limiter.forget(tenant);
        self.tenant_rate_limit(tenant).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit { per_second: 10, burst: 5 };

    #[test]
    fn a_full_bucket_allows_the_burst_then_the_rate() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        for _ in 0..5 {
            assert_eq!(limiter.take("a", start, Some(LIMIT)), Ok(()));
        }
        let wait = limiter.take("a", start, None).unwrap_err();
        assert!(wait > Duration::from_millis(90) && wait <= Duration::from_millis(100), "{wait:?}");
        // Another tenant's bucket is its own.
        assert_eq!(limiter.take("b", start, Some(LIMIT)), Ok(()));
        // A tenth of a second later, one more request (10 per second).
        let later = start + Duration::from_millis(100);
        assert_eq!(limiter.take("a", later, None), Ok(()));
        assert!(limiter.take("a", later, None).is_err());
        // After a quiet spell the bucket holds no more than the burst.
        let quiet = later + Duration::from_secs(60);
        for _ in 0..5 {
            assert_eq!(limiter.take("a", quiet, None), Ok(()));
        }
        assert!(limiter.take("a", quiet, None).is_err());
    }

    #[test]
    fn zero_disables_the_limit_and_a_new_limit_applies_at_once() {
        let limiter = RateLimiter::default();
        let now = Instant::now();
        for _ in 0..10_000 {
            assert_eq!(limiter.take("a", now, Some(RateLimit::UNLIMITED)), Ok(()));
        }
        assert_eq!(limiter.take("a", now, Some(RateLimit { per_second: 1, burst: 1 })), Ok(()));
        assert!(limiter.take("a", now, None).is_err());
    }

    #[test]
    fn the_limit_is_read_again_after_its_time_to_live() {
        let limiter = RateLimiter::default();
        let now = Instant::now();
        assert!(!limiter.knows("a", now));
        limiter.take("a", now, Some(LIMIT)).unwrap();
        assert!(limiter.knows("a", now + OVERRIDE_TTL / 2));
        assert!(!limiter.knows("a", now + OVERRIDE_TTL));
        limiter.forget("a");
        assert!(!limiter.knows("a", now));
    }

    #[test]
    fn a_limited_rate_needs_a_burst() {
        assert!(RateLimit { per_second: 5, burst: 0 }.validate().is_err());
        assert!(RateLimit { per_second: 0, burst: 0 }.validate().is_ok());
    }
}
