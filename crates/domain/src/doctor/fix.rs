//! The fix steps' wording: where to click in the tenant's IdP when it is known (Okta, Entra ID),
//! neutral wording otherwise, and the steps for each cause code.

use crate::events::{Cause, Idp};

/// Fix steps worded for one IdP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wording {
    idp: Option<Idp>,
}

impl Wording {
    /// Wording for the IdP the tenant's requests came from (`None`: not known).
    pub fn new(idp: Option<Idp>) -> Self {
        Wording { idp }
    }

    /// How to assign a user to the SCIM app.
    pub fn assign(&self, who: &str) -> String {
        match self.idp {
            Some(Idp::Okta) => format!(
                "In Okta, open the SCIM app's Assignments tab and assign {who} (directly or through a group); \
                 Okta pushes the user at once"
            ),
            Some(Idp::EntraId) => format!(
                "In Entra ID, open the enterprise app's Users and groups and add {who} (or a group they belong \
                 to); the next provisioning cycle (about every 40 minutes) sends the user, or use Provision on \
                 demand to send it now"
            ),
            _ => format!(
                "In your identity provider, assign {who} to the SCIM provisioning app (or to a group it provisions)"
            ),
        }
    }

    /// Where the SCIM base URL is set.
    pub fn base_url(&self, url: &str) -> String {
        match self.idp {
            Some(Idp::Okta) => format!(
                "In Okta, open the app's Provisioning > Integration, click Edit, set SCIM connector base URL to \
                 {url}, click Test Connector Configuration, then Save"
            ),
            Some(Idp::EntraId) => format!(
                "In Entra ID, open the enterprise app's Provisioning > Admin Credentials, set Tenant URL to {url}, \
                 click Test Connection, then Save"
            ),
            _ => format!("In your identity provider's provisioning settings, set the SCIM base URL to {url}"),
        }
    }

    /// Where the SCIM token is pasted.
    pub fn paste_token(&self) -> String {
        match self.idp {
            Some(Idp::Okta) => {
                "In Okta, open the app's Provisioning > Integration, click Edit, paste the token as the \
                                API Token (HTTP Header authentication), click Test API Credentials, then Save"
                    .into()
            }
            Some(Idp::EntraId) => "In Entra ID, open the enterprise app's Provisioning > Admin Credentials, paste the \
                                   token as Secret Token, click Test Connection, then Save; if the app was put in \
                                   quarantine, click Restart provisioning"
                .into(),
            _ => "Paste the token into your identity provider's provisioning settings as the bearer token \
                  (Authorization: Bearer <token>) and test the connection"
                .into(),
        }
    }

    /// How to have the IdP send refused users again.
    pub fn retry(&self) -> String {
        match self.idp {
            Some(Idp::Okta) => {
                "Then retry in Okta: Dashboard > Tasks, select the failed provisioning tasks and click Retry".into()
            }
            Some(Idp::EntraId) => {
                "Then retry in Entra ID: check the enterprise app's Provisioning logs, use Provision \
                                   on demand for one user, or Restart provisioning (also what takes an app out of \
                                   quarantine)"
                    .into()
            }
            _ => "Then have your identity provider send the refused users again (retry the failed provisioning \
                  tasks, or push them again)"
                .into(),
        }
    }

    /// Where the attributes the IdP sends are configured.
    pub fn attributes(&self) -> String {
        match self.idp {
            Some(Idp::Okta) => "In Okta, check the attributes sent: the app's Provisioning > To App > attribute \
                                mappings (and the user's profile in Okta)"
                .into(),
            Some(Idp::EntraId) => "In Entra ID, check the attributes sent: the enterprise app's Provisioning > \
                                   Mappings > Provision Microsoft Entra ID Users (and the user's properties)"
                .into(),
            _ => "In your identity provider, check the SCIM attribute mappings of the provisioning app".into(),
        }
    }

    /// How to free seats from the IdP's side.
    pub fn unassign(&self) -> String {
        match self.idp {
            Some(Idp::Okta) => {
                "Or free seats: unassign users who no longer need backup in the app's Assignments tab (Okta \
                 deactivates them, which releases their seats)"
                    .into()
            }
            Some(Idp::EntraId) => "Or free seats: remove users who no longer need backup from the enterprise app's \
                                   Users and groups (Entra ID deactivates them, which releases their seats)"
                .into(),
            _ => "Or free seats: unassign users who no longer need backup in your identity provider (a deactivated \
                  user releases its seat)"
                .into(),
        }
    }

    /// Where to look for a user the IdP looked up but never created.
    pub fn not_created(&self) -> String {
        match self.idp {
            Some(Idp::Okta) => "In Okta, check that the app's Provisioning > To App has Create Users enabled, and \
                                look for the user's task in Dashboard > Tasks"
                .into(),
            Some(Idp::EntraId) => "In Entra ID, search the Provisioning logs for the user: a skip (for example out \
                                   of scope) says why it was not created"
                .into(),
            _ => "Check your identity provider's provisioning log for the user".into(),
        }
    }

    /// What to check when the IdP has gone quiet.
    pub fn quiet(&self, last: &str) -> Vec<String> {
        match self.idp {
            Some(Idp::Okta) => vec![
                format!(
                    "Okta sends requests only when something changes (an assignment, a profile edit): if nothing \
                     changed in Okta since {last}, this is expected"
                ),
                "In Okta, open the app's Provisioning > Integration and click Test API Credentials; check that \
                 Provisioning > To App still has Create Users, Update User Attributes and Deactivate Users enabled"
                    .into(),
                "In Okta, open Dashboard > Tasks: failed provisioning tasks wait there; fix their cause and click Retry"
                    .into(),
            ],
            Some(Idp::EntraId) => vec![
                "In Entra ID, open the enterprise app's Provisioning page: a healthy app syncs about every 40 minutes; \
                 check that Provisioning Status is On"
                    .into(),
                "If the page shows the app in quarantine, read the reason in the Provisioning logs, fix it, then \
                 click Restart provisioning"
                    .into(),
            ],
            _ => vec![
                format!(
                    "Check the provisioning job in your identity provider: is it still turned on, and did it fail? \
                     (nothing has reached scimd since {last})"
                ),
                "If your identity provider only sends changes, no requests are expected while nothing changes".into(),
            ],
        }
    }
}

/// The steps that clear a cause for one user (a named user's report); the tenant-wide findings
/// give the same steps with their evidence.
pub fn for_cause(cause: Cause, w: Wording, base_url: &str, tenant_id: &str) -> Vec<String> {
    let api = format!("/admin/api/v1/tenants/{tenant_id}");
    let mut steps: Vec<String> = match cause {
        Cause::MissingToken | Cause::MalformedAuthorization | Cause::UnknownToken => {
            vec![
                "Issue a token if needed (scimd token new, or Deployment settings > New Token)".into(),
                w.paste_token(),
            ]
        }
        Cause::TokenExpired | Cause::TokenRevoked => vec![
            "Issue a new SCIM token (scimd token new, Deployment settings > New Token), or use the tenant's current one"
                .into(),
            w.paste_token(),
        ],
        Cause::UnknownPath => vec![w.base_url(base_url)],
        Cause::NoMappingMatched => vec![
            format!(
                "Compare the user's attributes with the mapping conditions (the refusal's detail names each \
                 mapping's failed clause; POST {api}/mappings/dry-run tests a user)"
            ),
            w.attributes(),
            "Or correct a mapping's condition, or add a catch-all mapping (no condition)".into(),
        ],
        Cause::ProfileFull => vec![
            format!("Raise the profile's Max users (Profiles, or PATCH {api}/profiles/{{profile_id}})"),
            w.unassign(),
            "Or map the user to another profile (SCIM Mappings)".into(),
        ],
        Cause::EmailInUseInTenant => vec![
            "Another user of this tenant has the email: give this user a different email in the identity provider, \
             or, if it is the same person, update the existing user instead of creating a second one"
                .into(),
        ],
        Cause::EmailHeldByPreservedUser => vec![format!(
            "A preserved (deactivated or deleted) user of this tenant holds the email: re-activate that user \
                 from the identity provider (same userName), restore it (POST {api}/users/{{user_id}}/restore), or \
                 purge it to release the email (DELETE {api}/users/{{user_id}}; its backups are deleted)"
        )],
        Cause::EmailInUseElsewhere => vec![
            "The email is in use elsewhere in the cloud (emails are unique across all customers): use a different \
             email for this user, or ask the cloud operator to release a stale claim"
                .into(),
        ],
        Cause::RegionUnhealthy => vec![
            "The storage region is not healthy: nothing to change in the identity provider, its retry succeeds once \
             the region is healthy (the cloud operator restores it); or map the user to a healthy region"
                .into(),
        ],
        Cause::AdminPreserved => vec![format!(
            "An administrator preserved this user: restore it in scimd first (POST {api}/users/{{user_id}}/restore)"
        )],
        Cause::UserNameTaken => vec![
            "Another user of this tenant has this userName: have the identity provider match the existing user \
             (its lookup by userName) instead of creating it, or change the userName"
                .into(),
        ],
        Cause::InvalidRequest | Cause::PayloadTooLarge | Cause::UnsupportedMediaType | Cause::MethodNotAllowed => {
            vec!["The request broke a SCIM rule: the refusal's detail says which; fix the attribute mapping or report it to the identity provider's vendor".into()]
        }
        Cause::RateLimited => vec![
            "The identity provider sent more requests than this tenant's rate limit: lower its request rate or \
             concurrency, or ask the operator to raise the tenant's limit (PUT /admin/api/v1/tenants/{id}/rate-limit)"
                .into(),
        ],
        Cause::Busy | Cause::InternalError | Cause::PreconditionFailed | Cause::NotFound | Cause::Ok => {
            vec!["Nothing to change: the identity provider's retry settles it".into()]
        }
    };
    steps.push(w.retry());
    steps
}
