//! The cloud-wide email claims, as an operator sees them: who holds an email, and the release of a
//! claim whose holder is gone (a *stale* claim), which otherwise blocks that email everywhere.

use serde::Serialize;
use time::OffsetDateTime;

use super::UserState;
use super::normalise_email;
use crate::access::Principal;
use crate::tenant::TenantId;
use crate::{DomainError, Result, Service};

/// One email's claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmailClaim {
    /// The normalised email.
    pub email: String,
    /// The tenant of the user holding it.
    pub tenant_id: TenantId,
    /// The user holding it.
    pub user_id: String,
    /// Since when.
    #[serde(with = "time::serde::rfc3339")]
    pub claimed_at: OffsetDateTime,
}

/// A claim with what is known of its holder.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimLookup {
    /// The claim.
    pub claim: EmailClaim,
    /// The holder's tenant name.
    pub tenant_name: String,
    /// The holder's userName, when the user still exists.
    pub user_name: Option<String>,
    /// The holder's state, when the user still exists.
    pub user_state: Option<UserState>,
    /// Whether the holder is gone or no longer claims this email: the claim may be released.
    pub stale: bool,
}

impl Service {
    /// Who holds the claim of `email` (operators only); `None` when nobody does.
    pub async fn lookup_email_claim(&self, principal: &Principal, email: &str) -> Result<Option<ClaimLookup>> {
        principal.require_operator()?;
        let email = normalise_email(email);
        let Some(claim) = self.store.email_claim(&email).await? else { return Ok(None) };
        let tenant_name = self.tenant(&claim.tenant_id).await.map(|t| t.name).unwrap_or_default();
        let user = self.store.any_user(&claim.tenant_id, &claim.user_id).await?;
        let placement = user.as_ref().and_then(|u| u.placement.as_ref());
        let holds = placement.is_some_and(|p| p.claimed_email.as_deref() == Some(claim.email.as_str()));
        Ok(Some(ClaimLookup {
            tenant_name,
            user_name: user.as_ref().and_then(|u| u.doc.get("userName")).and_then(|v| v.as_str()).map(str::to_owned),
            user_state: placement.map(|p| p.state),
            stale: !holds,
            claim,
        }))
    }

    /// Releases a stale claim (operators only). A claim its user still holds is refused: that
    /// user is deleted or purged in its own tenant, which releases the claim by itself.
    pub async fn release_stale_claim(&self, principal: &Principal, email: &str) -> Result<EmailClaim> {
        let lookup = self
            .lookup_email_claim(principal, email)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("nobody holds the email {}", normalise_email(email))))?;
        if !lookup.stale {
            return Err(DomainError::Conflict(format!(
                "{} is held by the user {} of the tenant {}, which still exists; purge that user in its \
                 tenant to free the email",
                lookup.claim.email,
                lookup.user_name.as_deref().unwrap_or(&lookup.claim.user_id),
                lookup.tenant_name
            )));
        }
        if !self.store.release_email_claim(&lookup.claim).await? {
            return Err(DomainError::Conflict("the claim changed meanwhile; look it up again".into()));
        }
        Ok(lookup.claim)
    }
}
