//! Tenants: one customer instance of the cloud, with its own users, groups and tokens.

use serde::Serialize;
use time::OffsetDateTime;

/// The default lifetime of a new SCIM token, in days (the product's documented behaviour).
pub const DEFAULT_TOKEN_LIFETIME_DAYS: u32 = 365;

/// A tenant's identifier (a UUID).
pub type TenantId = String;

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    /// The tenant's id (a UUID).
    pub id: TenantId,
    /// A unique, human-readable name.
    pub name: String,
    /// Lifetime of new SCIM tokens unless the request says otherwise.
    pub token_lifetime_days: u32,
    /// When the tenant was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Checks a tenant name: 1 to 100 characters, no control characters, not only spaces.
pub fn validate_tenant_name(name: &str) -> Result<(), String> {
    let len = name.chars().count();
    if name.trim().is_empty() || len > 100 || name.chars().any(char::is_control) {
        return Err("a tenant name is 1 to 100 printable characters and not blank".into());
    }
    Ok(())
}

impl crate::Service {
    /// Creates a tenant.
    pub async fn create_tenant(&self, name: &str) -> crate::Result<Tenant> {
        use crate::DomainError;
        validate_tenant_name(name).map_err(DomainError::Invalid)?;
        let tenant = Tenant {
            id: self.new_id(),
            name: name.to_owned(),
            token_lifetime_days: DEFAULT_TOKEN_LIFETIME_DAYS,
            created_at: self.clock.now(),
        };
        match self.store.insert_tenant(&tenant).await {
            Ok(()) => {
                self.seed_tenant(&tenant).await?;
                Ok(tenant)
            }
            Err(crate::store::StoreError::Conflict { .. }) => {
                Err(DomainError::Conflict(format!("a tenant named '{name}' already exists")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every tenant, oldest first.
    pub async fn tenants(&self) -> crate::Result<Vec<Tenant>> {
        Ok(self.store.tenants().await?)
    }

    /// A tenant by id.
    pub async fn tenant(&self, id: &str) -> crate::Result<Tenant> {
        self.store.tenant(id).await?.ok_or_else(|| crate::DomainError::NotFound(format!("no tenant with id '{id}'")))
    }

    /// A tenant by id or, failing that, by exact name: for people typing `--tenant` at a shell.
    pub async fn find_tenant(&self, id_or_name: &str) -> crate::Result<Tenant> {
        if let Some(t) = self.store.tenant(id_or_name).await? {
            return Ok(t);
        }
        self.store
            .tenant_by_name(id_or_name)
            .await?
            .ok_or_else(|| crate::DomainError::NotFound(format!("no tenant with id or name '{id_or_name}'")))
    }
}
