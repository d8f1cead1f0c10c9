//! Command line and configuration. Each setting comes from, in order: the command-line flag, the
//! environment variable, the TOML file given by `--config` / `SCIMD_CONFIG`, the default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use scim_proto::filter::FilterLimits;
use scimd_domain::Limits;
use scimd_domain::provisioning::Health;
use scimd_domain::rate_limit::RateLimit;
use serde::Deserialize;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default data directory.
pub const DEFAULT_DATA_DIR: &str = "./scimd-data";

#[derive(Debug, Parser)]
#[command(name = "scimd", version, about = "SCIM 2.0 provisioning service for a multi-tenant cloud backup product")]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Command,
}

/// Settings every command shares.
#[derive(Debug, Args)]
pub struct Common {
    /// TOML configuration file (keys: listen, data_dir, database_url, public_url,
    /// event_retention_days).
    #[arg(long, env = "SCIMD_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Directory of the embedded database [default: ./scimd-data].
    #[arg(long, env = "SCIMD_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL instead of the embedded database (postgres://user:password@host:5432/db): the
    /// deployment for several scimd nodes on one database. Overrides --data-dir.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Most connections this process opens to PostgreSQL.
    #[arg(long, env = "SCIMD_DATABASE_POOL_SIZE", global = true, default_value_t = 16)]
    pub database_pool_size: usize,
}

/// Where scimd keeps its state.
#[derive(Debug, Clone)]
pub enum Database {
    /// The embedded SQLite database in this directory.
    Embedded(PathBuf),
    /// A PostgreSQL database shared by every node, with this pool size.
    Postgres {
        /// The connection URL (may hold a password: never printed).
        url: String,
        /// Most connections.
        pool_size: usize,
    },
}

impl Database {
    /// The database after applying flag, environment, file and default, in that order.
    pub fn resolve(common: &Common, file: &FileConfig) -> Self {
        match common.database_url.clone().or_else(|| file.database_url.clone()).filter(|u| !u.is_empty()) {
            Some(url) => Database::Postgres { url, pool_size: common.database_pool_size },
            None => Database::Embedded(data_dir(common, file)),
        }
    }

    /// What to tell a person about it: the directory, or the database's host and name.
    pub fn describe(&self) -> String {
        match self {
            Database::Embedded(dir) => format!("embedded, in {}", dir.display()),
            Database::Postgres { url, .. } => {
                let after_credentials = url.rsplit_once('@').map_or(url.as_str(), |(_, rest)| rest);
                let host_and_db = after_credentials.split('?').next().unwrap_or_default();
                format!("PostgreSQL at {host_and_db}")
            }
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service.
    Serve(ServeArgs),
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage a tenant's SCIM tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage storage regions and their health.
    #[command(subcommand)]
    Region(RegionCommand),
    /// Manage console accounts (operators and tenant admins).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Explain why users are not provisioned: findings with evidence and fix, for every tenant or
    /// one; exit status 0 healthy, 1 warnings, 2 errors (3 when the doctor could not run).
    Doctor(DoctorArgs),
    /// Copy a deployment from the embedded database to PostgreSQL: tenants, tokens, users, groups,
    /// email claims, the provisioning log, console accounts; everything. Every table's count is
    /// verified, and the copy is one transaction, whole or absent. Safe to run again: it refreshes
    /// its own copy as long as no scimd node has served from it.
    MigrateData(MigrateDataArgs),
    /// Write a consistent copy of the embedded database to a new file while scimd keeps serving
    /// (every write acknowledged before the backup began is in it). On PostgreSQL use pg_dump.
    Backup(BackupArgs),
    /// Replace the embedded database with a backup. Every scimd process using the data
    /// directory must be stopped first; the database it replaces is kept beside it.
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The backup file to write (it must not exist yet).
    #[arg(long)]
    pub to: PathBuf,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file to restore, as written by `scimd backup`.
    #[arg(long)]
    pub from: PathBuf,
}

#[derive(Debug, Args)]
pub struct MigrateDataArgs {
    /// Data directory of the embedded database to copy [default: --data-dir].
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// PostgreSQL URL to copy into, an empty database or schema [default: --database-url].
    #[arg(long)]
    pub to: Option<String>,
}

/// Output of `scimd doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// The admin API's report (a list of reports under "reports" when every tenant is examined).
    Json,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Tenant id or name [default: every tenant].
    #[arg(long)]
    pub tenant: Option<String>,
    /// Explain one user (userName, email or externalId); needs --tenant unless there is only one tenant.
    #[arg(long)]
    pub user: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Look-back window over the provisioning log, in days.
    #[arg(long, default_value_t = scimd_domain::doctor::DEFAULT_WINDOW_DAYS,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(scimd_domain::doctor::MAX_WINDOW_DAYS)))]
    pub days: u32,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "SCIMD_LISTEN")]
    pub listen: Option<String>,
    /// Public URL of this server (e.g. https://scim.example.com), used in every link it returns;
    /// by default links are built from the request's Host header.
    #[arg(long, env = "SCIMD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Days the provisioning log keeps an event [default: 30]; older ones are pruned hourly.
    #[arg(long, env = "SCIMD_EVENT_RETENTION_DAYS")]
    pub event_retention_days: Option<u32>,
    /// SCIM requests per second each tenant may send, sustained [default: 500]; 0 disables the
    /// limit. An operator may give a tenant its own (PUT /admin/api/v1/tenants/{id}/rate-limit).
    #[arg(long, env = "SCIMD_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
    /// Requests a tenant may send at once above that rate [default: 1000].
    #[arg(long, env = "SCIMD_RATE_BURST")]
    pub rate_burst: Option<u32>,
    /// Largest request body in bytes, bulk aside [default: 1048576].
    #[arg(long, env = "SCIMD_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Most operations in one bulk request [default: 1000].
    #[arg(long, env = "SCIMD_MAX_BULK_OPERATIONS")]
    pub max_bulk_operations: Option<usize>,
    /// Largest bulk request body in bytes [default: 4194304].
    #[arg(long, env = "SCIMD_MAX_BULK_BYTES")]
    pub max_bulk_bytes: Option<usize>,
    /// Largest page a list or search returns [default: 1000].
    #[arg(long, env = "SCIMD_MAX_PAGE_SIZE")]
    pub max_page_size: Option<u64>,
    /// Longest filter a client may send, in characters [default and most: 4096].
    #[arg(long, env = "SCIMD_MAX_FILTER_LENGTH")]
    pub max_filter_length: Option<usize>,
    /// Deepest nesting of parentheses, not() and value filters in a filter [default and most: 32].
    #[arg(long, env = "SCIMD_MAX_FILTER_DEPTH")]
    pub max_filter_depth: Option<usize>,
    /// Seconds a client may take to send a request's headers, and then its body [default: 30].
    #[arg(long, env = "SCIMD_REQUEST_TIMEOUT_SECONDS")]
    pub request_timeout_seconds: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        /// The tenant's name.
        name: String,
    },
    /// List tenants.
    List,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a SCIM token (shown once); the tenant's other tokens stop working now, or after --keep-old-for.
    New {
        /// Tenant id or name.
        #[arg(long)]
        tenant: String,
        /// Lifetime in days [default: the tenant's setting, 365].
        #[arg(long)]
        lifetime_days: Option<u32>,
        /// Keep the previous tokens working this long, e.g. 24h (rotation without an outage).
        #[arg(long, value_parser = humantime::parse_duration)]
        keep_old_for: Option<std::time::Duration>,
    },
    /// List a tenant's tokens (never the secrets).
    List {
        /// Tenant id or name.
        #[arg(long)]
        tenant: String,
    },
    /// Revoke a token at once.
    Revoke {
        /// Tenant id or name.
        #[arg(long)]
        tenant: String,
        /// The token's id (see `scimd token list`).
        token_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a console account; the password is read from standard input (one line).
    Create {
        /// The email they sign in with.
        #[arg(long)]
        email: String,
        /// An operator: every tenant, the regions and the email claims.
        #[arg(long, conflicts_with = "tenant", required_unless_present = "tenant")]
        operator: bool,
        /// A tenant admin of this tenant (id or name).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// List console accounts.
    List,
}

#[derive(Debug, Subcommand)]
pub enum RegionCommand {
    /// List regions, marking the cloud's default.
    List,
    /// Create a region.
    Create {
        /// A unique name, e.g. eu-west.
        name: String,
        /// healthy, degraded or down (only healthy regions take new users).
        #[arg(long, default_value = "healthy", value_parser = parse_health)]
        health: Health,
    },
    /// Set a region's health by hand; healthy activates the users held for it.
    Health {
        /// Region id or name.
        region: String,
        /// healthy, degraded or down.
        #[arg(value_parser = parse_health)]
        health: Health,
    },
    /// Make a region the default: new tenants' catch-all mapping stores users there.
    Default {
        /// Region id or name.
        region: String,
    },
}

/// A health name as the domain spells it.
fn parse_health(text: &str) -> Result<Health, String> {
    Health::parse(text).ok_or_else(|| format!("\"{text}\" is not a health; use healthy, degraded or down"))
}

/// Settings read from the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub public_url: Option<String>,
    pub event_retention_days: Option<u32>,
    pub rate_limit: Option<u32>,
    pub rate_burst: Option<u32>,
    pub max_body_bytes: Option<usize>,
    pub max_bulk_operations: Option<usize>,
    pub max_bulk_bytes: Option<usize>,
    pub max_page_size: Option<u64>,
    pub max_filter_length: Option<usize>,
    pub max_filter_depth: Option<usize>,
    pub request_timeout_seconds: Option<u64>,
}

impl FileConfig {
    /// Reads the file, if one was named.
    pub fn load(path: Option<&Path>) -> Result<Self, String> {
        let Some(path) = path else { return Ok(FileConfig::default()) };
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{} is not a valid scimd configuration: {e}", path.display()))
    }
}

/// The resolved settings of `serve`.
#[derive(Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub database: Database,
    pub public_url: Option<String>,
    pub event_retention_days: u32,
    pub limits: Limits,
    pub request_timeout: std::time::Duration,
}

/// Longest event retention accepted, in days (ten years).
pub const MAX_EVENT_RETENTION_DAYS: u32 = 3650;

/// The data directory after applying flag, environment, file and default, in that order.
pub fn data_dir(common: &Common, file: &FileConfig) -> PathBuf {
    common.data_dir.clone().or_else(|| file.data_dir.clone()).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

impl ServeConfig {
    /// Resolves `serve`'s settings.
    pub fn resolve(common: &Common, args: &ServeArgs, file: &FileConfig) -> Result<Self, String> {
        let listen = args.listen.clone().or_else(|| file.listen.clone()).unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen = listen
            .parse()
            .map_err(|_| format!("--listen \"{listen}\" is not an address such as 127.0.0.1:8080 or [::]:8080"))?;
        let public_url = args.public_url.clone().or_else(|| file.public_url.clone());
        if let Some(url) = &public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!("--public-url \"{url}\" must start with http:// or https://"));
        }
        let event_retention_days = args
            .event_retention_days
            .or(file.event_retention_days)
            .unwrap_or(scimd_server::events::DEFAULT_EVENT_RETENTION_DAYS);
        if !(1..=MAX_EVENT_RETENTION_DAYS).contains(&event_retention_days) {
            return Err(format!(
                "--event-retention-days {event_retention_days} must be between 1 and {MAX_EVENT_RETENTION_DAYS}"
            ));
        }
        let limits = resolve_limits(args, file)?;
        let timeout = args
            .request_timeout_seconds
            .or(file.request_timeout_seconds)
            .unwrap_or(scimd_server::DEFAULT_REQUEST_TIMEOUT_SECONDS);
        if !(1..=3600).contains(&timeout) {
            return Err(format!("--request-timeout-seconds {timeout} must be between 1 and 3600"));
        }
        let request_timeout = std::time::Duration::from_secs(timeout);
        let database = Database::resolve(common, file);
        Ok(ServeConfig { listen, database, public_url, event_retention_days, limits, request_timeout })
    }
}

/// The request limits: each from its flag, else the environment, else the file, else the default.
fn resolve_limits(args: &ServeArgs, file: &FileConfig) -> Result<Limits, String> {
    let d = Limits::default();
    let rate = RateLimit {
        per_second: args.rate_limit.or(file.rate_limit).unwrap_or(d.rate.per_second),
        burst: args.rate_burst.or(file.rate_burst).unwrap_or(d.rate.burst),
    };
    let limits = Limits {
        max_page_size: args.max_page_size.or(file.max_page_size).unwrap_or(d.max_page_size),
        default_page_size: d.default_page_size,
        max_bulk_operations: args.max_bulk_operations.or(file.max_bulk_operations).unwrap_or(d.max_bulk_operations),
        max_bulk_payload: args.max_bulk_bytes.or(file.max_bulk_bytes).unwrap_or(d.max_bulk_payload),
        max_body: args.max_body_bytes.or(file.max_body_bytes).unwrap_or(d.max_body),
        rate: rate
            .validate()
            .map_err(|e| format!("--rate-limit {} --rate-burst {}: {e}", rate.per_second, rate.burst))?,
        filter: FilterLimits {
            max_len: args.max_filter_length.or(file.max_filter_length).unwrap_or(d.filter.max_len),
            max_depth: args.max_filter_depth.or(file.max_filter_depth).unwrap_or(d.filter.max_depth),
        },
    };
    let at_least = |name: &str, value: u64, min: u64| {
        if value < min { Err(format!("--{name} {value} must be at least {min}")) } else { Ok(()) }
    };
    at_least("max-page-size", limits.max_page_size, 1)?;
    at_least("max-filter-length", limits.filter.max_len as u64, 16)?;
    at_least("max-filter-depth", limits.filter.max_depth as u64, 1)?;
    if limits.filter.capped() != limits.filter {
        return Err(format!(
            "--max-filter-length {} --max-filter-depth {}: the most scimd accepts is {} characters and {} levels",
            limits.filter.max_len,
            limits.filter.max_depth,
            FilterLimits::MAX.max_len,
            FilterLimits::MAX.max_depth
        ));
    }
    at_least("max-bulk-operations", limits.max_bulk_operations as u64, 1)?;
    // A body must hold at least one resource of the largest size SCIM accepts.
    at_least("max-body-bytes", limits.max_body as u64, 64 * 1024)?;
    at_least("max-bulk-bytes", limits.max_bulk_payload as u64, 64 * 1024)?;
    Ok(Limits { default_page_size: limits.default_page_size.min(limits.max_page_size), ..limits })
}
