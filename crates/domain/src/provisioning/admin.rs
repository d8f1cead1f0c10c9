//! What administrators and operators change: regions and their health, profiles, mappings and
//! tenant settings, each validated so that nothing can be misconfigured silently; and the
//! preserve / restore of a user by an administrator.

use scim_proto::ScimError;
use scim_proto::schema::ResourceKind;
use time::Duration;

use super::model::{Actor, Health, Mapping, Placement, Profile, Region, TenantSettings, UserSearch, UserState};
use crate::resources::StoredResource;
use crate::store::{ProvisionError, ResourceWrite, Step, StoreError};
use crate::tenant::Tenant;
use crate::{DomainError, Result, Service};

/// What an admin may set on a mapping; `None` keeps the current value on update.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappingChange {
    /// A name for people.
    pub name: Option<String>,
    /// Lower runs first.
    pub priority: Option<i64>,
    /// The condition; `Some(None)` makes the mapping a catch-all.
    pub filter: Option<Option<String>>,
    /// Target profile.
    pub profile_id: Option<String>,
    /// Target region.
    pub region_id: Option<String>,
    /// Whether it is used.
    pub enabled: Option<bool>,
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if name.trim().is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(DomainError::Invalid(format!("a {what} name is 1 to 100 printable characters and not blank")));
    }
    Ok(())
}

fn name_conflict(what: &str, name: &str) -> impl FnOnce(StoreError) -> DomainError {
    let message = format!("a {what} named '{name}' already exists");
    move |e| match e {
        StoreError::Conflict { .. } => DomainError::Conflict(message),
        other => other.into(),
    }
}

/// Checks a region's health probe: where it is polled and how often.
fn check_probe(url: Option<&str>, seconds: i64) -> Result<()> {
    // Plain HTTP: probes target health endpoints inside the cloud's network.
    if let Some(u) = url
        && !u.starts_with("http://")
    {
        return Err(DomainError::Invalid("probe_url must be an http:// URL".into()));
    }
    if !(5..=86_400).contains(&seconds) {
        return Err(DomainError::Invalid("probe_interval_seconds must be between 5 and 86400".into()));
    }
    Ok(())
}

/// Checks a mapping condition: a SCIM filter over the incoming user. Syntax errors are refused
/// with their position; attributes no schema defines are allowed (IdPs send custom ones, such as
/// `company`), but known attributes must be compared sensibly.
pub fn validate_condition(text: &str) -> Result<()> {
    let filter = scim_proto::filter::parse(text)
        .map_err(|e| DomainError::Invalid(format!("the mapping condition is not a valid SCIM filter: {}", e.detail)))?;
    match filter.validate(ResourceKind::User.resource_type()) {
        Err(e) if !e.detail.contains("unknown attribute") => {
            Err(DomainError::Invalid(format!("the mapping condition is not usable: {}", e.detail)))
        }
        _ => Ok(()),
    }
}

impl Service {
    /// Creates a storage region.
    pub async fn create_region(&self, name: &str, health: Health) -> Result<Region> {
        check_name("region", name)?;
        let region = Region {
            id: self.new_id(),
            name: name.to_owned(),
            health,
            probe_url: None,
            probe_interval_seconds: None,
            last_probe_at: None,
            last_probe_result: None,
            health_since: self.now(),
        };
        self.store.insert_region(&region).await.map_err(name_conflict("region", name))?;
        Ok(region)
    }

    /// Every region.
    pub async fn regions(&self) -> Result<Vec<Region>> {
        Ok(self.store.regions().await?)
    }

    /// Sets a region's health; users held for an unhealthy region are activated when it is
    /// healthy again.
    pub async fn set_region_health(&self, id: &str, health: Health) -> Result<Region> {
        let mut region = self.region(id).await?;
        if region.health != health {
            region.health = health;
            region.health_since = self.now();
            self.store.update_region(&region).await?;
        }
        if health == Health::Healthy {
            let _ = self.activate_pending_everywhere().await;
        }
        Ok(region)
    }

    /// Sets (or clears) a region's health probe: an HTTP URL polled every `interval`.
    pub async fn set_region_probe(&self, id: &str, url: Option<String>, interval: Option<Duration>) -> Result<Region> {
        let mut region = self.region(id).await?;
        let seconds = interval.map(|d| d.whole_seconds()).unwrap_or(30);
        check_probe(url.as_deref(), seconds)?;
        region.probe_url = url;
        region.probe_interval_seconds = region.probe_url.as_ref().map(|_| seconds as u32);
        self.store.update_region(&region).await?;
        Ok(region)
    }

    /// Regions whose health probe is due at `now`.
    pub async fn regions_due_for_probe(&self) -> Result<Vec<Region>> {
        let now = self.now();
        Ok(self
            .store
            .regions()
            .await?
            .into_iter()
            .filter(|r| {
                r.probe_url.is_some()
                    && r.last_probe_at.is_none_or(|at| {
                        now - at >= Duration::seconds(i64::from(r.probe_interval_seconds.unwrap_or(30)))
                    })
            })
            .collect())
    }

    /// Records a probe's outcome: 2xx makes the region healthy, anything else down; a region
    /// that became healthy activates the users held for it.
    pub async fn record_probe(&self, id: &str, healthy: bool, result: String) -> Result<Region> {
        let mut region = self.region(id).await?;
        let health = if healthy { Health::Healthy } else { Health::Down };
        let recovered = health == Health::Healthy && region.health != Health::Healthy;
        if region.health != health {
            region.health = health;
            region.health_since = self.now();
        }
        region.last_probe_at = Some(self.now());
        region.last_probe_result = Some(result.chars().take(200).collect());
        self.store.update_region(&region).await?;
        if recovered {
            let _ = self.activate_pending_everywhere().await;
        }
        Ok(region)
    }

    /// Creates a profile in a tenant (`max_users` 0 = unlimited).
    pub async fn create_profile(&self, tenant: &Tenant, name: &str, max_users: u32) -> Result<Profile> {
        check_name("profile", name)?;
        let profile = Profile {
            id: self.new_id(),
            tenant_id: tenant.id.clone(),
            name: name.to_owned(),
            max_users,
            active_users: 0,
        };
        self.store.insert_profile(&profile).await.map_err(name_conflict("profile", name))?;
        Ok(profile)
    }

    /// A tenant's profiles with their usage.
    pub async fn profiles(&self, tenant: &Tenant) -> Result<Vec<Profile>> {
        Ok(self.store.profiles(&tenant.id).await?)
    }

    /// A profile of a tenant.
    pub async fn profile(&self, tenant: &Tenant, id: &str) -> Result<Profile> {
        self.store
            .profile(&tenant.id, id)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("tenant {} has no profile {id}", tenant.id)))
    }

    /// Renames a profile or changes its limit. Lowering the limit below the seats taken is
    /// allowed (nobody is removed; new users wait); raising it activates held users.
    pub async fn update_profile(
        &self,
        tenant: &Tenant,
        id: &str,
        name: Option<&str>,
        max_users: Option<u32>,
    ) -> Result<Profile> {
        let mut profile = self.profile(tenant, id).await?;
        if let Some(name) = name {
            check_name("profile", name)?;
            profile.name = name.to_owned();
        }
        if let Some(max) = max_users {
            profile.max_users = max;
        }
        self.store.update_profile(&profile).await.map_err(name_conflict("profile", &profile.name))?;
        // The change is made; held users it frees are activated now or by the periodic run.
        let _ = self.activate_pending(tenant).await;
        self.profile(tenant, id).await
    }

    /// Deletes a profile nobody uses: no mapping targets it and no user (also pending or
    /// preserved) is in it, so that no user is ever left without a profile.
    pub async fn delete_profile(&self, tenant: &Tenant, id: &str) -> Result<()> {
        let profile = self.profile(tenant, id).await?;
        match self.store.delete_profile(&tenant.id, &profile.id).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict { attribute }) if attribute == "mappings" => {
                let names: Vec<String> = self
                    .mappings(tenant)
                    .await?
                    .into_iter()
                    .filter(|m| m.profile_id == profile.id)
                    .map(|m| format!("\"{}\"", m.name))
                    .collect();
                Err(DomainError::Conflict(format!(
                    "profile \"{}\" is the target of mappings {}; point them at another profile first",
                    profile.name,
                    names.join(", ")
                )))
            }
            Err(StoreError::Conflict { .. }) => Err(DomainError::Conflict(format!(
                "profile \"{}\" still has users (active, pending or preserved); move or purge them first",
                profile.name
            ))),
            Err(StoreError::NotFound) => {
                Err(DomainError::NotFound(format!("tenant {} has no profile {id}", tenant.id)))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Checks that a mapping's profile is the tenant's and its region one the tenant may use.
    async fn check_mapping_targets(&self, tenant: &Tenant, profile_id: &str, region_id: &str) -> Result<()> {
        self.profile(tenant, profile_id).await?;
        let region = self.region(region_id).await?;
        let allowed = self.store.tenant_regions(&tenant.id).await?;
        if !allowed.is_empty() && !allowed.contains(&region.id) {
            return Err(DomainError::Invalid(format!(
                "tenant {} is restricted to other storage regions than \"{}\"; choose one of its regions",
                tenant.id, region.name
            )));
        }
        Ok(())
    }

    /// The regions a tenant may use: those it is restricted to, or every region.
    pub async fn tenant_regions(&self, tenant: &Tenant) -> Result<Vec<Region>> {
        let allowed = self.store.tenant_regions(&tenant.id).await?;
        let regions = self.store.regions().await?;
        Ok(if allowed.is_empty() { regions } else { regions.into_iter().filter(|r| allowed.contains(&r.id)).collect() })
    }

    /// Restricts a tenant to some regions (an empty list lifts the restriction). Refused while a
    /// mapping of the tenant points elsewhere, so that no mapping silently stops working.
    pub async fn restrict_tenant_regions(&self, tenant: &Tenant, region_ids: &[String]) -> Result<Vec<Region>> {
        for id in region_ids {
            self.region(id).await?;
        }
        if !region_ids.is_empty() {
            let stranded: Vec<String> = self
                .mappings(tenant)
                .await?
                .into_iter()
                .filter(|m| !region_ids.contains(&m.region_id))
                .map(|m| m.name)
                .collect();
            if !stranded.is_empty() {
                return Err(DomainError::Conflict(format!(
                    "these mappings use a region outside the restriction; change them first: {}",
                    stranded.join(", ")
                )));
            }
        }
        self.store.set_tenant_regions(&tenant.id, region_ids).await?;
        self.tenant_regions(tenant).await
    }

    /// Creates a mapping; its condition is validated now, so a bad one never silently matches nobody.
    pub async fn create_mapping(&self, tenant: &Tenant, change: MappingChange) -> Result<Mapping> {
        let name = change.name.ok_or_else(|| DomainError::Invalid("a mapping needs a name".into()))?;
        check_name("mapping", &name)?;
        let profile_id =
            change.profile_id.ok_or_else(|| DomainError::Invalid("a mapping needs a profile_id".into()))?;
        let region_id = match change.region_id {
            Some(r) => r,
            None => self.default_region().await?.id,
        };
        let filter = change.filter.flatten().filter(|f| !f.trim().is_empty());
        if let Some(f) = &filter {
            validate_condition(f)?;
        }
        self.check_mapping_targets(tenant, &profile_id, &region_id).await?;
        let mapping = Mapping {
            id: self.new_id(),
            tenant_id: tenant.id.clone(),
            name,
            priority: change.priority.unwrap_or(100),
            filter,
            profile_id,
            region_id,
            enabled: change.enabled.unwrap_or(true),
        };
        self.store.insert_mapping(&mapping).await?;
        let _ = self.activate_pending(tenant).await;
        Ok(mapping)
    }

    /// A tenant's mappings in the order they are tried.
    pub async fn mappings(&self, tenant: &Tenant) -> Result<Vec<Mapping>> {
        Ok(self.store.mappings(&tenant.id).await?)
    }

    /// A mapping of a tenant.
    pub async fn mapping(&self, tenant: &Tenant, id: &str) -> Result<Mapping> {
        self.mappings(tenant)
            .await?
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| DomainError::NotFound(format!("tenant {} has no mapping {id}", tenant.id)))
    }

    /// Changes a mapping (reordering is a change of `priority`).
    pub async fn update_mapping(&self, tenant: &Tenant, id: &str, change: MappingChange) -> Result<Mapping> {
        let mut m = self.mapping(tenant, id).await?;
        if let Some(name) = change.name {
            check_name("mapping", &name)?;
            m.name = name;
        }
        if let Some(p) = change.priority {
            m.priority = p;
        }
        if let Some(filter) = change.filter {
            let filter = filter.filter(|f| !f.trim().is_empty());
            if let Some(f) = &filter {
                validate_condition(f)?;
            }
            m.filter = filter;
        }
        if let Some(p) = change.profile_id {
            m.profile_id = p;
        }
        if let Some(r) = change.region_id {
            m.region_id = r;
        }
        if let Some(e) = change.enabled {
            m.enabled = e;
        }
        self.check_mapping_targets(tenant, &m.profile_id, &m.region_id).await?;
        self.store.update_mapping(&m).await?;
        let _ = self.activate_pending(tenant).await;
        Ok(m)
    }

    /// Deletes a mapping.
    pub async fn delete_mapping(&self, tenant: &Tenant, id: &str) -> Result<()> {
        match self.store.delete_mapping(&tenant.id, id).await {
            Err(StoreError::NotFound) => {
                Err(DomainError::NotFound(format!("tenant {} has no mapping {id}", tenant.id)))
            }
            other => Ok(other?),
        }
    }

    /// A tenant's provisioning settings.
    pub async fn settings(&self, tenant: &Tenant) -> Result<TenantSettings> {
        Ok(self.store.tenant_settings(&tenant.id).await?)
    }

    /// Replaces a tenant's provisioning settings.
    pub async fn set_settings(&self, tenant: &Tenant, settings: TenantSettings) -> Result<TenantSettings> {
        self.store.set_tenant_settings(&tenant.id, &settings).await?;
        Ok(settings)
    }

    /// An administrator preserves a user: its seat is released and the IdP can no longer
    /// re-activate it (only [`Service::restore_user`] can).
    pub async fn admin_preserve_user(&self, tenant: &Tenant, id: &str) -> Result<StoredResource> {
        let current = self.any_user(tenant, id).await?;
        let placement = current.placement.clone().ok_or_else(|| DomainError::NotFound(format!("no user {id}")))?;
        let mut steps = Vec::new();
        if placement.state == UserState::Active {
            steps.extend(placement.profile_id.clone().map(|profile_id| Step::ReleaseSeat { profile_id }));
        }
        let mut doc = current.doc.clone();
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("active".into(), serde_json::Value::Bool(false));
        }
        let next = StoredResource {
            doc,
            modified: self.now().max(current.modified),
            version: current.version + 1,
            placement: Some(Placement {
                state: UserState::Preserved,
                since: self.now(),
                pending_cause: None,
                preserved_by: Some(Actor::Admin),
                ..placement
            }),
            ..current.clone()
        };
        let released = !steps.is_empty();
        let write = ResourceWrite::Update { res: next.clone(), expected_version: current.version };
        match self.provision_logged(tenant, current.placement.as_ref(), &steps, &write).await {
            Ok(()) => {
                if released {
                    self.seat_released(tenant).await;
                }
                Ok(next)
            }
            Err(ProvisionError::Store(e)) => Err(e.into()),
            Err(ProvisionError::Refused(r)) => Err(DomainError::Invalid(format!("{r:?}"))),
        }
    }

    /// An administrator restores a user it preserved: the IdP may manage it again, and it is
    /// re-activated (taking a seat, which may be refused).
    pub async fn restore_user(&self, tenant: &Tenant, id: &str) -> Result<StoredResource> {
        let current = self.any_user(tenant, id).await?;
        let mut unlocked = current.clone();
        if let Some(p) = unlocked.placement.as_mut() {
            p.preserved_by = Some(Actor::Idp);
        }
        let mut doc = current.doc.clone();
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("active".into(), serde_json::Value::Bool(true));
        }
        self.update_user(tenant, &unlocked, doc).await
    }

    /// A user of the tenant in any state (administrators also reach users the IdP deleted under
    /// the preserve policy).
    pub async fn any_user(&self, tenant: &Tenant, id: &str) -> Result<StoredResource> {
        self.store
            .any_user(&tenant.id, id)
            .await?
            .ok_or_else(|| ScimError::not_found(format!("User {id} not found")).into())
    }

    /// An administrator purges a user, whatever its state (also one deleted under the preserve
    /// policy): its data goes, its seat and its email claim are released.
    pub async fn purge_user(&self, tenant: &Tenant, id: &str) -> Result<()> {
        let current = self.any_user(tenant, id).await?;
        let mut steps = Vec::new();
        if let Some(p) = current.placement.as_ref().filter(|p| p.state == UserState::Active) {
            steps.extend(p.profile_id.clone().map(|profile_id| Step::ReleaseSeat { profile_id }));
        }
        // The version read: a user the IdP changed meanwhile is not purged on a stale state.
        let write = ResourceWrite::Delete {
            kind: ResourceKind::User,
            id: current.id.clone(),
            expected_version: Some(current.version),
            at: self.now(),
        };
        match self.provision_logged(tenant, current.placement.as_ref(), &steps, &write).await {
            Ok(()) => {
                if !steps.is_empty() {
                    self.seat_released(tenant).await;
                }
                Ok(())
            }
            Err(ProvisionError::Store(e)) => Err(e.into()),
            Err(ProvisionError::Refused(r)) => Err(DomainError::Invalid(format!("{r:?}"))),
        }
    }

    /// The ids of the regions a tenant is restricted to (empty: not restricted).
    pub async fn restricted_region_ids(&self, tenant: &Tenant) -> Result<Vec<String>> {
        Ok(self.store.tenant_regions(&tenant.id).await?)
    }

    /// A page of a tenant's users (any state) matching an admin's search, with the total; at
    /// most 200 a page.
    pub async fn search_users(&self, tenant: &Tenant, mut search: UserSearch) -> Result<(u64, Vec<StoredResource>)> {
        search.limit = search.limit.clamp(1, 200);
        search.text = search.text.map(|t| t.trim().to_lowercase()).filter(|t| !t.is_empty());
        Ok(self.store.search_users(&tenant.id, &search).await?)
    }

    /// A tenant's pending users, oldest first (the order they are activated in), at most 1000.
    pub async fn pending_users(&self, tenant: &Tenant) -> Result<Vec<StoredResource>> {
        Ok(self.store.pending_users(&tenant.id, 0, 1000).await?)
    }

    /// A tenant's pending users are tried again, oldest first, each taking a seat while seats
    /// last; called whenever something that may clear a cause changes.
    pub async fn activate_pending(&self, tenant: &Tenant) -> Result<u32> {
        const PAGE: u32 = 200;
        let (mut activated, mut offset) = (0, 0);
        loop {
            let page = self.store.pending_users(&tenant.id, offset, PAGE).await?;
            for user in &page {
                // One user that cannot be activated (its cause stands, or it failed) does not
                // hold up those behind it; the periodic run tries it again.
                match self.activate_one(tenant, user).await {
                    Ok(true) => activated += 1,
                    Ok(false) | Err(_) => offset += 1,
                }
            }
            if (page.len() as u32) < PAGE {
                return Ok(activated);
            }
        }
    }

    /// Activates pending users in every tenant that has some.
    pub async fn activate_pending_everywhere(&self) -> Result<u32> {
        let mut total = 0;
        for tenant_id in self.store.tenants_with_pending().await? {
            // A tenant that fails is retried on the next run; the others go ahead.
            if let Ok(tenant) = self.tenant(&tenant_id).await {
                total += self.activate_pending(&tenant).await.unwrap_or(0);
            }
        }
        Ok(total)
    }
}

/// What an operator may change on a region; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegionChange {
    /// A unique name.
    pub name: Option<String>,
    /// Health set by hand (a probe, if any, overrides it at its next run).
    pub health: Option<Health>,
    /// The probe's URL; `Some(None)` removes the probe.
    pub probe_url: Option<Option<String>>,
    /// Seconds between probes (default 30).
    pub probe_interval_seconds: Option<u32>,
}

impl Service {
    /// A region by id or, failing that, by exact name: for people typing at a shell.
    pub async fn find_region(&self, id_or_name: &str) -> Result<Region> {
        if let Some(r) = self.store.region(id_or_name).await? {
            return Ok(r);
        }
        self.regions()
            .await?
            .into_iter()
            .find(|r| r.name == id_or_name)
            .ok_or_else(|| DomainError::NotFound(format!("no region with id or name '{id_or_name}'")))
    }

    /// Changes a region's name, health and probe in one write, after validating all of them, so
    /// that a refused change leaves nothing half-applied. Setting the health to healthy activates
    /// the users held for it, as [`Service::set_region_health`] does.
    pub async fn update_region(&self, id: &str, change: RegionChange) -> Result<Region> {
        let mut region = self.region(id).await?;
        if let Some(name) = change.name {
            check_name("region", &name)?;
            region.name = name;
        }
        if change.probe_url.is_some() || change.probe_interval_seconds.is_some() {
            let url = change.probe_url.unwrap_or_else(|| region.probe_url.clone());
            if url.is_none() && change.probe_interval_seconds.is_some() {
                return Err(DomainError::Invalid("probe_interval_seconds needs a probe_url".into()));
            }
            let seconds = change.probe_interval_seconds.or(region.probe_interval_seconds).unwrap_or(30);
            check_probe(url.as_deref(), i64::from(seconds))?;
            if url != region.probe_url {
                // The last result was about another URL; a new one is probed at once.
                region.last_probe_at = None;
                region.last_probe_result = None;
            }
            region.probe_interval_seconds = url.as_ref().map(|_| seconds);
            region.probe_url = url;
        }
        if let Some(health) = change.health
            && health != region.health
        {
            region.health = health;
            region.health_since = self.now();
        }
        self.store.update_region(&region).await.map_err(name_conflict("region", &region.name))?;
        if change.health == Some(Health::Healthy) {
            let _ = self.activate_pending_everywhere().await;
        }
        Ok(region)
    }
}
