//! The provisioning service: the cloud's defaults, the decision on create and re-activation,
//! the lifecycle of a user (deactivate, re-activate, delete, re-hire), and refusals that say
//! exactly why.

use scim_proto::ScimError;
use serde_json::Value;
use time::OffsetDateTime;

use super::model::{
    Actor, DeletePolicy, Health, Manager, Mapping, Placement, Profile, Region, TenantSettings, UserState,
};
use super::placement::{TraceEntry, choose, claimable_email, summarise};
use crate::error::Refusal;
use crate::events::Cause;
use crate::resources::StoredResource;
use crate::store::{EmailHolder, ProvisionError, ResourceWrite, Step, StepRefusal, StoreError};
use crate::tenant::Tenant;
use crate::{DomainError, Result, Service};

/// The setting that names the cloud's default region.
const DEFAULT_REGION_SETTING: &str = "default_region_id";
/// The name of the region created when the cloud has none.
pub const DEFAULT_REGION_NAME: &str = "default";
/// The profile every new tenant starts with.
pub const DEFAULT_PROFILE_NAME: &str = "Default";
/// The catch-all mapping every new tenant starts with.
pub const CATCH_ALL_MAPPING_NAME: &str = "Allow any user";
/// The catch-all mapping's priority: after anything an admin adds with a default priority.
pub const CATCH_ALL_PRIORITY: i64 = 1_000_000;
/// Seconds an IdP should wait before retrying a user refused for an unhealthy region.
pub const REGION_RETRY_AFTER: u32 = 300;

/// What a provisioning write should do, decided before the transaction.
struct Plan {
    steps: Vec<Step>,
    placement: Placement,
}

impl Service {
    /// The cloud's default region, created (healthy) when the cloud has none.
    pub async fn default_region(&self) -> Result<Region> {
        if let Some(id) = self.store.setting(DEFAULT_REGION_SETTING).await?
            && let Some(region) = self.store.region(&id).await?
        {
            return Ok(region);
        }
        let region = match self.store.regions().await?.into_iter().find(|r| r.name == DEFAULT_REGION_NAME) {
            Some(r) => r,
            None => {
                let region = Region {
                    id: self.new_id(),
                    name: DEFAULT_REGION_NAME.into(),
                    health: Health::Healthy,
                    probe_url: None,
                    probe_interval_seconds: None,
                    last_probe_at: None,
                    last_probe_result: None,
                    health_since: self.now(),
                };
                match self.store.insert_region(&region).await {
                    Ok(()) => region,
                    // Another node created it meanwhile.
                    Err(StoreError::Conflict { .. }) => self
                        .store
                        .regions()
                        .await?
                        .into_iter()
                        .find(|r| r.name == DEFAULT_REGION_NAME)
                        .ok_or_else(|| DomainError::Conflict("the default region vanished; retry".into()))?,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        self.store.set_setting(DEFAULT_REGION_SETTING, &region.id).await?;
        Ok(region)
    }

    /// Makes `region_id` the cloud's default region (for tenants created from now on).
    pub async fn set_default_region(&self, region_id: &str) -> Result<()> {
        self.region(region_id).await?;
        Ok(self.store.set_setting(DEFAULT_REGION_SETTING, region_id).await?)
    }

    /// Gives a new tenant what makes provisioning work before anyone configures anything: an
    /// unlimited profile and a catch-all mapping to it in the default region.
    pub(crate) async fn seed_tenant(&self, tenant: &Tenant) -> Result<()> {
        let region = self.default_region().await?;
        let profile = Profile {
            id: self.new_id(),
            tenant_id: tenant.id.clone(),
            name: DEFAULT_PROFILE_NAME.into(),
            max_users: 0,
            active_users: 0,
        };
        self.store.insert_profile(&profile).await?;
        let mapping = Mapping {
            id: self.new_id(),
            tenant_id: tenant.id.clone(),
            name: CATCH_ALL_MAPPING_NAME.into(),
            priority: CATCH_ALL_PRIORITY,
            filter: None,
            profile_id: profile.id,
            region_id: region.id,
            enabled: true,
        };
        Ok(self.store.insert_mapping(&mapping).await?)
    }

    /// Seeds every tenant that has no profile yet (a tenant whose seeding was interrupted); run
    /// at start, so that provisioning works for every tenant without configuration.
    pub async fn ensure_tenants_seeded(&self) -> Result<u32> {
        let mut seeded = 0;
        for tenant in self.store.tenants().await? {
            if self.store.profiles(&tenant.id).await?.is_empty() {
                self.seed_tenant(&tenant).await?;
                seeded += 1;
            }
        }
        Ok(seeded)
    }

    /// A region by id.
    pub async fn region(&self, id: &str) -> Result<Region> {
        self.store.region(id).await?.ok_or_else(|| DomainError::NotFound(format!("no region with id '{id}'")))
    }

    /// Where a user would land, with the trace of every mapping (a dry run: nothing is written).
    pub async fn dry_run(&self, tenant: &Tenant, user: Value) -> Result<(Option<Mapping>, Vec<TraceEntry>)> {
        let doc = scim_proto::resource::prepare(scim_proto::ResourceKind::User, user)?;
        let mappings = self.store.mappings(&tenant.id).await?;
        let (chosen, trace) = choose(&mappings, &doc);
        Ok((chosen.cloned(), trace))
    }

    /// Provisions a new user (SCIM create): re-hire or adoption of an existing user of the tenant
    /// first, else mapping → seat → email claim → region health, in one transaction with the
    /// write. Refusals say why; causes the tenant holds make the user pending instead.
    pub(crate) async fn provision_new_user(
        &self,
        tenant: &Tenant,
        doc: Value,
        manager: Manager,
    ) -> Result<StoredResource> {
        let user_name = doc.get("userName").and_then(Value::as_str).unwrap_or_default().to_owned();
        let email = claimable_email(&doc);
        if let Some(existing) = self.store.find_user(&tenant.id, &user_name, email.as_deref()).await? {
            if manager == Manager::Idp
                && let Some(revived) = self.revive(tenant, &existing, doc.clone()).await?
            {
                return Ok(revived);
            }
            let same_name = existing.doc.get("userName").and_then(Value::as_str).map(str::to_lowercase);
            if same_name == Some(user_name.to_lowercase()) {
                // A second create of a user that exists: the IdP should link to it (Okta's
                // documented 409), whatever else also conflicts.
                return Err(write_failure(StoreError::Conflict { attribute: "userName".into() }, &existing));
            }
        }
        let now = self.now();
        let res = StoredResource {
            id: self.new_id(),
            kind: scim_proto::ResourceKind::User,
            doc,
            created: now,
            modified: now,
            version: 1,
            placement: None,
        };
        let wants_active = res.doc.get("active").and_then(Value::as_bool) != Some(false);
        let settings = self.store.tenant_settings(&tenant.id).await?;
        let plan = self.plan_placement(tenant, &res, None, true, wants_active).await?.map(|mut plan| {
            plan.placement.managed_by = manager;
            plan
        });
        let hold = Hold { allowed: wants_active, manager };
        self.write_planned(tenant, &settings, res, plan, hold, ResourceWrite::Insert).await
    }

    /// An administrator creates a user by hand (the same rules as a SCIM create). SCIM filters
    /// find it, and it becomes IdP-managed when the IdP first writes to it, never duplicated.
    pub async fn admin_create_user(&self, tenant: &Tenant, body: Value) -> Result<StoredResource> {
        let doc = scim_proto::resource::prepare(scim_proto::ResourceKind::User, body)?;
        self.provision_new_user(tenant, doc, Manager::Admin).await
    }

    /// Re-hire or adoption: a create that names a user the IdP deactivated or deleted (under
    /// preserve), or one an admin created by hand, takes that user over instead of failing.
    /// Returns `None` when the existing user is an active IdP-managed one (a plain conflict).
    async fn revive(&self, tenant: &Tenant, existing: &StoredResource, doc: Value) -> Result<Option<StoredResource>> {
        let Some(placement) = &existing.placement else { return Ok(None) };
        let adoptable = placement.managed_by == Manager::Admin
            || matches!(placement.state, UserState::Preserved | UserState::Deleted);
        if !adoptable {
            return Ok(None);
        }
        if placement.preserved_by == Some(Actor::Admin) {
            return Err(admin_preserved(existing));
        }
        let mut doc = doc;
        if let Some(obj) = doc.as_object_mut() {
            obj.entry("active").or_insert(Value::Bool(true));
        }
        self.update_user(tenant, existing, doc).await.map(Some)
    }

    /// Writes a new version of a user, applying its lifecycle: a change of `active` preserves or
    /// re-activates it (taking a seat again), a change of its email moves the claim, and with
    /// `remap_on_update` a change of mapped attributes moves it to another profile.
    pub(crate) async fn update_user(
        &self,
        tenant: &Tenant,
        current: &StoredResource,
        doc: Value,
    ) -> Result<StoredResource> {
        let settings = self.store.tenant_settings(&tenant.id).await?;
        let placement = current.placement.clone().unwrap_or_else(|| unplaced(self.now()));
        let wants_active = doc.get("active").and_then(Value::as_bool) != Some(false);
        let next = StoredResource {
            doc,
            modified: self.now().max(current.modified),
            version: current.version + 1,
            ..current.clone()
        };
        let plan = match (placement.state, wants_active) {
            (UserState::Preserved | UserState::Deleted, true) if placement.preserved_by == Some(Actor::Admin) => {
                return Err(admin_preserved(current));
            }
            // Pending stays pending until its cause clears (activation decides again then).
            (UserState::Pending, true) => Ok(Plan {
                steps: email_steps(Some(&placement), &next),
                placement: Placement {
                    managed_by: Manager::Idp,
                    claimed_email: claimable_email(&next.doc),
                    ..placement.clone()
                },
            }),
            (_, active) => {
                let remap = settings.remap_on_update || placement.profile_id.is_none();
                self.plan_placement(tenant, &next, Some(&placement), remap, active).await?
            }
        };
        // Only a user becoming active may be held; an update of an active user is refused as a
        // whole, and a deactivation is never refused by a mapping, a seat or a region.
        let hold = Hold { allowed: wants_active && placement.state != UserState::Active, manager: Manager::Idp };
        let expected = current.version;
        let saved = self
            .write_planned(tenant, &settings, next, plan, hold, move |res| ResourceWrite::Update {
                res,
                expected_version: expected,
            })
            .await?;
        if placement.state == UserState::Active
            && saved.placement.as_ref().is_some_and(|p| p.state != UserState::Active)
        {
            self.seat_released(tenant).await;
        }
        Ok(saved)
    }

    /// A seat was released: users held for it take it before anyone else can (their errors are
    /// retried by the periodic activation).
    pub(crate) async fn seat_released(&self, tenant: &Tenant) {
        let _ = self.activate_pending(tenant).await;
    }

    /// Deletes a user under the tenant's policy: `preserve` keeps it hidden (seat released, email
    /// still claimed), `purge` removes it and releases the claim.
    pub(crate) async fn delete_user(&self, tenant: &Tenant, current: &StoredResource) -> Result<()> {
        let settings = self.store.tenant_settings(&tenant.id).await?;
        let placement = current.placement.clone().unwrap_or_else(|| unplaced(self.now()));
        let mut steps = Vec::new();
        if placement.state == UserState::Active {
            steps.extend(placement.profile_id.clone().map(|profile_id| Step::ReleaseSeat { profile_id }));
        }
        let write = match settings.delete_policy {
            DeletePolicy::Purge => ResourceWrite::Delete {
                kind: current.kind,
                id: current.id.clone(),
                expected_version: Some(current.version),
                at: self.now(),
            },
            DeletePolicy::Preserve => {
                steps.push(Step::LeaveGroups { user_id: current.id.clone(), at: self.now() });
                ResourceWrite::Update {
                    res: StoredResource {
                        modified: self.now().max(current.modified),
                        version: current.version + 1,
                        placement: Some(Placement {
                            state: UserState::Deleted,
                            since: self.now(),
                            pending_cause: None,
                            preserved_by: placement.preserved_by.or(Some(Actor::Idp)),
                            ..placement
                        }),
                        ..current.clone()
                    },
                    expected_version: current.version,
                }
            }
        };
        let released = placement.state == UserState::Active;
        match self.provision_logged(tenant, current.placement.as_ref(), &steps, &write).await {
            Ok(()) => {
                if released {
                    self.seat_released(tenant).await;
                }
                Ok(())
            }
            // The caller reads the user again and retries (or answers 412 to an If-Match).
            Err(ProvisionError::Store(StoreError::VersionMismatch)) => Err(StoreError::VersionMismatch.into()),
            Err(ProvisionError::Store(StoreError::NotFound)) => {
                Err(ScimError::not_found(format!("User {} not found", current.id)).into())
            }
            Err(ProvisionError::Store(e)) => Err(e.into()),
            Err(ProvisionError::Refused(r)) => Err(refusal(r, current).into()),
        }
    }

    /// Decides a user's placement and the steps that must hold for it: where it lands (the
    /// mapping, or where `current` put it unless `remap`), a seat when it is active (moving from
    /// the seat it holds, if another profile), its email claim (moved if its email changed), and
    /// a healthy region when it becomes active there.
    async fn plan_placement(
        &self,
        tenant: &Tenant,
        res: &StoredResource,
        current: Option<&Placement>,
        remap: bool,
        active: bool,
    ) -> Result<std::result::Result<Plan, Refusal>> {
        let seated = current.filter(|p| p.state == UserState::Active).and_then(|p| p.profile_id.clone());
        if !active {
            // Deactivation never depends on mappings, seats or regions: the user keeps its place.
            let mut steps: Vec<Step> = seated.map(|profile_id| Step::ReleaseSeat { profile_id }).into_iter().collect();
            steps.extend(email_steps(current, res));
            let unchanged = current.is_some_and(|p| p.state == UserState::Preserved);
            return Ok(Ok(Plan {
                steps,
                placement: Placement {
                    state: UserState::Preserved,
                    since: current.filter(|_| unchanged).map_or(self.now(), |p| p.since),
                    profile_id: current.and_then(|p| p.profile_id.clone()),
                    region_id: current.and_then(|p| p.region_id.clone()),
                    pending_cause: None,
                    preserved_by: Some(current.and_then(|p| p.preserved_by).unwrap_or(Actor::Idp)),
                    managed_by: Manager::Idp,
                    claimed_email: claimable_email(&res.doc),
                },
            }));
        }
        let kept = current.filter(|_| !remap).and_then(|p| Some((p.profile_id.clone()?, p.region_id.clone()?)));
        let (profile_id, region_id) = match kept {
            Some(place) => place,
            None => {
                let mappings = self.store.mappings(&tenant.id).await?;
                let (chosen, trace) = choose(&mappings, &res.doc);
                match chosen {
                    Some(m) => (m.profile_id.clone(), m.region_id.clone()),
                    None => return Ok(Err(no_mapping(res, &trace))),
                }
            }
        };
        let was_active = current.is_some_and(|p| p.state == UserState::Active);
        let mut steps = Vec::new();
        match seated {
            Some(old) if old == profile_id => {}
            old => {
                steps.extend(old.map(|profile_id| Step::ReleaseSeat { profile_id }));
                steps.push(Step::TakeSeat { profile_id: profile_id.clone() });
            }
        }
        steps.extend(email_steps(current, res));
        let region_changed = current.and_then(|p| p.region_id.as_deref()) != Some(region_id.as_str());
        if !was_active || region_changed {
            steps.push(Step::RequireHealthy { region_id: region_id.clone() });
        }
        Ok(Ok(Plan {
            steps,
            placement: Placement {
                state: UserState::Active,
                since: current.filter(|p| p.state == UserState::Active).map_or(self.now(), |p| p.since),
                profile_id: Some(profile_id),
                region_id: Some(region_id),
                pending_cause: None,
                preserved_by: None,
                managed_by: Manager::Idp,
                claimed_email: claimable_email(&res.doc),
            },
        }))
    }

    /// Tries to activate one pending user, deciding its placement again as if it arrived now;
    /// `false` (and nothing changed) while its cause has not cleared. Records an event on success.
    pub(crate) async fn activate_one(&self, tenant: &Tenant, user: &StoredResource) -> Result<bool> {
        let Some(placement) = user.placement.clone().filter(|p| p.state == UserState::Pending) else {
            return Ok(false);
        };
        if user.doc.get("active").and_then(Value::as_bool) == Some(false) {
            // The IdP no longer wants it active; it waits as it is.
            return Ok(false);
        }
        let cause = placement.pending_cause;
        let unplaced = Placement { state: UserState::Preserved, profile_id: None, region_id: None, ..placement };
        let next =
            StoredResource { modified: self.now().max(user.modified), version: user.version + 1, ..user.clone() };
        let Ok(mut plan) = self.plan_placement(tenant, &next, Some(&unplaced), true, true).await? else {
            return Ok(false);
        };
        plan.placement.managed_by = unplaced.managed_by;
        // The event is written with the activation, so neither exists without the other.
        plan.steps.push(Step::RecordEvent(Box::new(crate::events::Event {
            id: 0,
            at: self.now(),
            tenant_id: Some(tenant.id.clone()),
            token_id: None,
            request_id: format!("activation-{}", self.new_id()),
            idp: crate::events::Idp::Other,
            method: "-".into(),
            path: "-".into(),
            operation: "activate User".into(),
            subject: user.doc.get("userName").and_then(Value::as_str).map(str::to_owned),
            outcome: crate::events::Outcome::Accepted,
            cause: Cause::Ok,
            status: 200,
            detail: Some(format!(
                "pending user activated: its cause ({}) cleared",
                cause.map_or("unknown", Cause::as_str)
            )),
            duration_ms: 0,
            mentions: Vec::new(),
        })));
        let placed = StoredResource { placement: Some(plan.placement), ..next };
        let write = ResourceWrite::Update { res: placed, expected_version: user.version };
        match self.provision_logged(tenant, user.placement.as_ref(), &plan.steps, &write).await {
            Ok(()) => Ok(true),
            Err(ProvisionError::Refused(_) | ProvisionError::Store(StoreError::VersionMismatch)) => Ok(false),
            Err(ProvisionError::Store(e)) => Err(e.into()),
        }
    }

    /// Runs a plan; a refusal whose cause the tenant holds stores the user as pending instead
    /// (its email still claimed, no seat taken).
    async fn write_planned(
        &self,
        tenant: &Tenant,
        settings: &TenantSettings,
        res: StoredResource,
        plan: std::result::Result<Plan, Refusal>,
        hold: Hold,
        write: impl Fn(StoredResource) -> ResourceWrite,
    ) -> Result<StoredResource> {
        // Where the user would have landed, if a mapping decided before a step refused.
        let mut intended = (None, None);
        let refused = match plan {
            Ok(plan) => {
                intended = (plan.placement.profile_id.clone(), plan.placement.region_id.clone());
                let placed = StoredResource { placement: Some(plan.placement), ..res.clone() };
                // `res` still carries the placement it had before this write (none when new).
                match self.provision_logged(tenant, res.placement.as_ref(), &plan.steps, &write(placed.clone())).await {
                    Ok(()) => return Ok(placed),
                    Err(ProvisionError::Refused(r)) => refusal(r, &res),
                    Err(ProvisionError::Store(e)) => return Err(write_failure(e, &res)),
                }
            }
            Err(refused) => refused,
        };
        if !hold.allowed || !settings.hold.holds(refused.cause) {
            return Err(refused.into());
        }
        // Held: accepted as pending, with the reason; activated when the cause clears.
        let previous = res.placement.clone();
        let claimed_email = claimable_email(&res.doc);
        let mut steps = email_steps(previous.as_ref(), &res);
        if let Some(p) = previous.as_ref().filter(|p| p.state == UserState::Active) {
            steps.extend(p.profile_id.clone().map(|profile_id| Step::ReleaseSeat { profile_id }));
        }
        let pending = StoredResource {
            placement: Some(Placement {
                state: UserState::Pending,
                since: self.now(),
                profile_id: intended.0.or_else(|| previous.as_ref().and_then(|p| p.profile_id.clone())),
                region_id: intended.1.or_else(|| previous.as_ref().and_then(|p| p.region_id.clone())),
                pending_cause: Some(refused.cause),
                preserved_by: None,
                managed_by: previous.as_ref().map_or(hold.manager, |p| p.managed_by),
                claimed_email,
            }),
            ..res.clone()
        };
        match self.provision_logged(tenant, previous.as_ref(), &steps, &write(pending.clone())).await {
            Ok(()) => Ok(pending),
            Err(ProvisionError::Refused(r)) => Err(refusal(r, &res).into()),
            Err(ProvisionError::Store(e)) => Err(write_failure(e, &res)),
        }
    }
}

/// Whether a refusal may hold the user as pending instead, and who manages a held new user.
#[derive(Debug, Clone, Copy)]
struct Hold {
    allowed: bool,
    manager: Manager,
}

/// A placement for a user stored before provisioning rules existed.
fn unplaced(now: OffsetDateTime) -> Placement {
    Placement {
        state: UserState::Active,
        since: now,
        profile_id: None,
        region_id: None,
        pending_cause: None,
        preserved_by: None,
        managed_by: Manager::Idp,
        claimed_email: None,
    }
}

/// The steps that claim a user's email, or move its claim when its email changed.
fn email_steps(current: Option<&Placement>, next: &StoredResource) -> Vec<Step> {
    let old = current.and_then(|p| p.claimed_email.clone());
    let new = claimable_email(&next.doc);
    let mut steps = Vec::new();
    if new == old {
        return steps;
    }
    if let Some(email) = old {
        steps.push(Step::ReleaseEmail { email, user_id: next.id.clone() });
    }
    if let Some(email) = new {
        steps.push(Step::ClaimEmail { email, user_id: next.id.clone() });
    }
    steps
}

fn user_label(res: &StoredResource) -> String {
    res.doc
        .get("userName")
        .and_then(Value::as_str)
        .map(|u| format!("user \"{u}\""))
        .unwrap_or_else(|| "the user".into())
}

fn no_mapping(res: &StoredResource, trace: &[TraceEntry]) -> Refusal {
    Refusal {
        cause: Cause::NoMappingMatched,
        error: ScimError::invalid_value(format!(
            "none of the SCIM mappings matched {}: {}. Fix: send the attribute a mapping expects from your \
             identity provider, correct the mapping's condition, or add a catch-all mapping (Users > \
             Deployment > Mappings)",
            user_label(res),
            summarise(trace)
        )),
        retry_after: None,
    }
}

/// A User body without `userName` cannot be placed by any mapping: refused with that cause (the
/// SCIM error of `prepare` is kept for every other problem).
pub(crate) fn no_user_name(e: ScimError) -> DomainError {
    if e.detail.starts_with("userName is required") {
        return Refusal {
            cause: Cause::NoMappingMatched,
            error: ScimError::invalid_value(format!(
                "none of the SCIM mappings can place a user without a userName ({}). Fix: map a userName in your \
                 identity provider's SCIM attribute mappings",
                e.detail
            )),
            retry_after: None,
        }
        .into();
    }
    e.into()
}

fn admin_preserved(res: &StoredResource) -> DomainError {
    Refusal {
        cause: Cause::AdminPreserved,
        error: ScimError::new(
            403,
            format!(
                "{} was preserved by an administrator and cannot be re-activated from the identity provider; \
                 an administrator must restore it in scimd first",
                user_label(res)
            ),
        ),
        retry_after: None,
    }
    .into()
}

/// The refusal a client sees for a failed step. An email held elsewhere in the cloud is named
/// as such and nothing more: which tenant holds it must never be inferable.
fn refusal(r: StepRefusal, res: &StoredResource) -> Refusal {
    match r {
        StepRefusal::ProfileFull { name, max_users } => Refusal {
            cause: Cause::ProfileFull,
            error: ScimError::new(
                403,
                format!(
                    "cannot provision {}: the profile \"{name}\" is full ({max_users} of {max_users} users). \
                     Fix: raise the profile's Max users, deactivate users in it, or map the user to another profile",
                    user_label(res)
                ),
            ),
            retry_after: None,
        },
        StepRefusal::EmailTaken { email, holder } => Refusal {
            cause: match holder {
                EmailHolder::ThisTenant => Cause::EmailInUseInTenant,
                EmailHolder::PreservedInThisTenant => Cause::EmailHeldByPreservedUser,
                EmailHolder::OtherTenant => Cause::EmailInUseElsewhere,
            },
            error: ScimError::uniqueness(match holder {
                EmailHolder::ThisTenant => format!(
                    "the email \"{email}\" is already used by another user of this tenant; emails are unique. \
                     Fix: give the user a different email, or update the existing user instead"
                ),
                EmailHolder::PreservedInThisTenant => format!(
                    "the email \"{email}\" belongs to a preserved (deactivated or deleted) user of this tenant. \
                     Fix: re-activate that user, or purge it to release the email"
                ),
                EmailHolder::OtherTenant => format!(
                    "the email \"{email}\" is already in use elsewhere in the cloud (emails are unique across all \
                     customers). Fix: use a different email for this user, or contact support to release the email"
                ),
            }),
            retry_after: None,
        },
        StepRefusal::RegionUnhealthy { name, health } => Refusal {
            cause: Cause::RegionUnhealthy,
            error: ScimError::new(
                503,
                format!(
                    "cannot provision {} now: the storage region \"{name}\" is {}. The identity provider's retry \
                     will succeed once the region is healthy again",
                    user_label(res),
                    health.as_str()
                ),
            ),
            retry_after: Some(REGION_RETRY_AFTER),
        },
    }
}

fn write_failure(e: StoreError, res: &StoredResource) -> DomainError {
    match e {
        StoreError::Conflict { attribute } if attribute == "userName" => ScimError::uniqueness(format!(
            "userName \"{}\" is already used by another User of this tenant (userName is unique, compared \
             case-insensitively); update that User instead, or send a different userName",
            res.doc.get("userName").and_then(Value::as_str).unwrap_or_default()
        ))
        .into(),
        // The caller reads the user again and retries.
        StoreError::VersionMismatch => DomainError::Store(StoreError::VersionMismatch),
        StoreError::NotFound => ScimError::not_found(format!("User {} not found", res.id)).into(),
        other => other.into(),
    }
}
