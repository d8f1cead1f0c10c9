//! Running a bulk request (RFC 7644 §3.7): the operations of a parsed [`BulkRequest`] in plan
//! order, through the same resource methods as single requests, with `bulkId` references
//! resolved to the ids created and `failOnErrors` honoured. No URLs here: the caller builds
//! `location` from the kind and id of each result.

use std::collections::{HashMap, HashSet};

use scim_proto::bulk::{BulkMethod, BulkOperation, BulkRequest, REFERENCE_PREFIX, Target, substitute};
use scim_proto::{ResourceKind, ScimError, ScimType};
use serde_json::Value;

use crate::resources::EtagCondition;
use crate::store::deferring_flush;
use crate::tenant::Tenant;
use crate::{DomainError, Result, Service};

/// What a bulk request did: one result per operation that ran or was refused, in request order.
/// Operations not reached because `failOnErrors` stopped the request have no result.
#[derive(Debug)]
pub struct BulkOutcome {
    /// The results, in request order.
    pub results: Vec<BulkResult>,
}

/// The result of one operation.
#[derive(Debug)]
pub struct BulkResult {
    /// The operation's position in the request.
    pub index: usize,
    /// The operation's method.
    pub method: BulkMethod,
    /// The operation's bulkId, echoed back.
    pub bulk_id: Option<String>,
    /// What it did, or why it failed.
    pub outcome: Result<BulkSuccess>,
}

/// A successful operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkSuccess {
    /// The HTTP status a single request would have had (201, 200 or 204).
    pub status: u16,
    /// The resource type, for its location.
    pub kind: ResourceKind,
    /// The resource's id, for its location.
    pub id: String,
    /// The resource's new version (ETag); `None` after a DELETE.
    pub version: Option<String>,
}

impl Service {
    /// Runs a bulk request for a tenant. Operations run one at a time in [`BulkRequest::plan`]
    /// order; one fails without running when its references are unknown, cyclic, or name an
    /// operation that failed; the request stops once `failOnErrors` operations have failed.
    /// The outcome is returned once every write it reports is durable: the operations' writes
    /// answer at commit, and one flush at the end covers them all.
    pub async fn bulk(&self, tenant: &Tenant, request: &BulkRequest) -> BulkOutcome {
        let mut outcome = deferring_flush(self.bulk_operations(tenant, request)).await;
        if let Err(e) = self.store.sync().await {
            // Not durable, so not done: every write the request made is reported failed.
            for result in &mut outcome.results {
                if result.outcome.is_ok() {
                    result.outcome = Err(DomainError::Store(e.clone()));
                }
            }
        }
        outcome
    }

    /// The operations of [`Self::bulk`], in plan order.
    async fn bulk_operations(&self, tenant: &Tenant, request: &BulkRequest) -> BulkOutcome {
        let plan = request.plan();
        let mut results: Vec<Option<BulkResult>> = request.operations.iter().map(|_| None).collect();
        let mut ids: HashMap<String, String> = HashMap::new();
        let mut failed: HashSet<&str> = HashSet::new();
        let mut errors = 0usize;
        for &index in &plan.order {
            let Some(op) = request.operations.get(index) else { continue };
            let blocked = plan.blocked.get(index).and_then(Option::as_ref);
            let outcome = match blocked {
                Some(reason) => Err(reason.to_error().into()),
                None => match op.references.iter().find(|r| failed.contains(r.as_str())) {
                    Some(dead) => Err(failed_reference(dead)),
                    None => self.bulk_operation(tenant, op, &ids).await,
                },
            };
            match (&outcome, &op.bulk_id) {
                (Ok(done), Some(b)) => {
                    ids.insert(b.clone(), done.id.clone());
                }
                (Err(_), Some(b)) => {
                    failed.insert(b);
                }
                _ => {}
            }
            let is_error = outcome.is_err();
            results[index] = Some(BulkResult { index, method: op.method, bulk_id: op.bulk_id.clone(), outcome });
            if is_error {
                errors += 1;
                if request.fail_on_errors.is_some_and(|limit| errors >= limit) {
                    break;
                }
            }
        }
        BulkOutcome { results: results.into_iter().flatten().collect() }
    }

    /// Runs one operation whose references have all been created.
    async fn bulk_operation(
        &self,
        tenant: &Tenant,
        op: &BulkOperation,
        ids: &HashMap<String, String>,
    ) -> Result<BulkSuccess> {
        let endpoint = op.endpoint.clone()?;
        let kind = endpoint.kind;
        let id = match &endpoint.target {
            None => None,
            Some(target) => Some(target.resolve(ids).map(str::to_owned).ok_or_else(|| unresolved(target))?),
        };
        // The parser already refuses a POST with an id and the others without one; this keeps
        // that promise local instead of trusting it with an unwrap.
        let need_id = || {
            id.clone().ok_or_else(|| {
                DomainError::from(ScimError::invalid_path(format!(
                    "{} needs a resource id in \"path\"",
                    op.method.name()
                )))
            })
        };
        let mut data = op.data.clone().unwrap_or(Value::Null);
        substitute(&mut data, ids);
        let if_match = op.version.as_deref().map(EtagCondition::parse);
        let (status, res) = match op.method {
            BulkMethod::Post => (201, self.create_resource(tenant, kind, data).await?),
            BulkMethod::Put => (200, self.replace_resource(tenant, kind, &need_id()?, data, if_match.as_ref()).await?),
            BulkMethod::Patch => (200, self.patch_resource(tenant, kind, &need_id()?, data, if_match.as_ref()).await?),
            BulkMethod::Delete => {
                let id = need_id()?;
                self.delete_resource(tenant, kind, &id, if_match.as_ref()).await?;
                return Ok(BulkSuccess { status: 204, kind, id, version: None });
            }
        };
        Ok(BulkSuccess { status, kind, id: res.id.clone(), version: Some(res.etag()) })
    }
}

/// The error of an operation that references one that failed.
fn failed_reference(bulk_id: &str) -> DomainError {
    ScimError {
        status: 409,
        scim_type: Some(ScimType::InvalidValue),
        detail: format!("{REFERENCE_PREFIX}{bulk_id} refers to an operation that failed, so this one did not run"),
    }
    .into()
}

/// A path reference that was not created: the plan rules this out, but an error beats a panic.
fn unresolved(target: &Target) -> DomainError {
    let name = match target {
        Target::BulkId(b) => format!("{REFERENCE_PREFIX}{b}"),
        Target::Id(id) => id.clone(),
    };
    ScimError {
        status: 409,
        scim_type: Some(ScimType::InvalidValue),
        detail: format!("{name} names no resource created by this request"),
    }
    .into()
}
