//! What each command does. All logic lives in the domain; this file only wires and prints.

use std::sync::Arc;

use scimd_domain::access::audit::Change;
use scimd_domain::access::{Principal, Role};
use scimd_domain::clock::{SystemClock, SystemRandom, format_time};
use scimd_domain::doctor::DoctorOptions;
use scimd_domain::store::Store;
use scimd_domain::token::TokenRequest;
use scimd_domain::{Limits, Service};
use scimd_server::{AppState, Settings};
use scimd_store::{PostgresStore, SqliteStore};

use crate::config::{
    AdminCommand, Cli, Command, Database, DoctorArgs, FileConfig, Format, RegionCommand, ServeConfig, TenantCommand,
    TokenCommand,
};

/// The tenant created on first start.
const DEFAULT_TENANT: &str = "default";

async fn open_service(database: &Database) -> Result<Service, String> {
    open_service_with(database, Limits::default()).await
}

async fn open_service_with(database: &Database, limits: Limits) -> Result<Service, String> {
    let store: Arc<dyn Store> = match database {
        Database::Embedded(dir) => {
            Arc::new(SqliteStore::open(dir).map_err(|e| format!("cannot open the database in {}: {e}", dir.display()))?)
        }
        Database::Postgres { url, pool_size } => Arc::new(
            PostgresStore::connect(url, *pool_size)
                .await
                .map_err(|e| format!("cannot open the database ({}): {e}", database.describe()))?,
        ),
    };
    Ok(Service::new(store, Arc::new(SystemClock), Arc::new(SystemRandom), limits))
}

/// Runs a parsed command line; `Ok` carries the exit status (nonzero only for the doctor's
/// warnings and errors).
pub async fn run(cli: Cli) -> Result<u8, String> {
    let file = FileConfig::load(cli.common.config.as_deref())?;
    let database = Database::resolve(&cli.common, &file);
    match cli.command {
        Command::Serve(args) => {
            // From the environment only: a flag would show the secret in `ps`.
            let operator_token = std::env::var("SCIMD_OPERATOR_TOKEN").ok().filter(|t| !t.is_empty());
            serve(ServeConfig::resolve(&cli.common, &args, &file)?, operator_token).await.map(|()| 0)
        }
        Command::Tenant(cmd) => tenant(&open_service(&database).await?, cmd).await.map(|()| 0),
        Command::Token(cmd) => token(&open_service(&database).await?, cmd).await.map(|()| 0),
        Command::Region(cmd) => region(&open_service(&database).await?, cmd).await.map(|()| 0),
        Command::Admin(cmd) => admin(&open_service(&database).await?, cmd).await.map(|()| 0),
        Command::Doctor(args) => {
            if let Database::Embedded(dir) = &database
                && !dir.exists()
            {
                // Opening would create an empty database and report on nothing.
                return Err(format!("no scimd data directory at {} (give --data-dir)", dir.display()));
            }
            let public_url =
                std::env::var("SCIMD_PUBLIC_URL").ok().filter(|u| !u.is_empty()).or_else(|| file.public_url.clone());
            doctor(&open_service(&database).await?, args, public_url).await
        }
        Command::MigrateData(args) => {
            let from = args.from.unwrap_or_else(|| crate::config::data_dir(&cli.common, &file));
            let to = args
                .to
                .or_else(|| cli.common.database_url.clone())
                .or_else(|| file.database_url.clone())
                .filter(|u| !u.is_empty())
                .ok_or(
                    "migrate-data needs the PostgreSQL database to copy into: --to postgres://… (or DATABASE_URL)",
                )?;
            migrate_data(&from, &to).await.map(|()| 0)
        }
        Command::Backup(args) => {
            let dir = embedded_only(&database, "backup")?;
            let done = scimd_store::sqlite::backup(dir, &args.to).map_err(|e| format!("backup failed: {e}"))?;
            println!("Backed up {} to {}", dir.display(), describe_backup(&done));
            Ok(0)
        }
        Command::Restore(args) => {
            let dir = embedded_only(&database, "restore")?;
            let (done, kept) =
                scimd_store::sqlite::restore(dir, &args.from).map_err(|e| format!("restore failed: {e}"))?;
            println!("Restored {} into {}", describe_backup(&done), dir.display());
            if let Some(kept) = kept {
                println!("  The database it replaced is kept as {}", kept.display());
            }
            Ok(0)
        }
    }
}

/// The data directory, for a command that works on the embedded database only.
fn embedded_only<'a>(database: &'a Database, command: &str) -> Result<&'a std::path::Path, String> {
    match database {
        Database::Embedded(dir) => Ok(dir),
        Database::Postgres { .. } => Err(format!(
            "`scimd {command}` works on the embedded database; for PostgreSQL use pg_dump / pg_restore (docs/operations.md)"
        )),
    }
}

fn describe_backup(b: &scimd_store::sqlite::BackupSummary) -> String {
    format!(
        "{} ({} bytes: {} tenants, {} users, {} groups; integrity checked)",
        b.file.display(),
        b.bytes,
        b.tenants,
        b.users,
        b.groups
    )
}

/// Copies the embedded database to PostgreSQL with a progress bar, then prints what it verified.
async fn migrate_data(from: &std::path::Path, to: &str) -> Result<(), String> {
    use scimd_store::migrate_data::Progress;
    let target = Database::Postgres { url: to.to_owned(), pool_size: 1 }.describe();
    println!("Copying the deployment in {} to {target}", from.display());
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{msg:>16} [{bar:40}] {human_pos}/{human_len} rows ({per_sec})")
            .map_err(|e| e.to_string())?
            .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let report = scimd_store::migrate_data::migrate_data(from, to, &mut |step| match step {
        Progress::Counted { rows } => bar.set_length(rows),
        Progress::Table { name, .. } => bar.set_message(name),
        Progress::Copied(rows) => bar.inc(rows),
    })
    .await;
    bar.finish_and_clear();
    let report = report.map_err(|e| format!("nothing was copied: {e}"))?;
    let rows: u64 = report.tables.iter().map(|(_, n)| n).sum();
    let replaced = if report.replaced_earlier_copy { ", replacing the earlier copy" } else { "" };
    println!(
        "Copied {rows} rows in {:.1} s{replaced}; every table's count verified in PostgreSQL:",
        started.elapsed().as_secs_f64()
    );
    for (table, n) in &report.tables {
        println!("  {table:<16} {n:>10}");
    }
    println!("Next: stop the scimd serving from {}, run this again to take what changed since,", from.display());
    println!("then start every node with --database-url (or DATABASE_URL). Tokens and console sign-ins carry over.");
    Ok(())
}

async fn serve(config: ServeConfig, operator_token: Option<String>) -> Result<(), String> {
    let service = open_service_with(&config.database, config.limits).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let origin = config.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
    let origin = origin.trim_end_matches('/').to_owned();

    println!("scimd {} listening on http://{addr}", env!("CARGO_PKG_VERSION"));
    println!("  SCIM base URL:   {origin}/scim/v2   (one URL for every tenant; the token selects the tenant)");
    println!("  Admin API:       {origin}/admin/api/v1   (OpenAPI: {origin}/admin/api/v1/openapi.json)");
    println!("  Database:        {}", config.database.describe());
    println!("  Provisioning log: events kept {} days", config.event_retention_days);
    match config.limits.rate {
        rate if rate.is_unlimited() => println!("  Rate limit:      none (--rate-limit 0)"),
        rate => println!("  Rate limit:      {} SCIM requests/s per tenant, bursts of {}", rate.per_second, rate.burst),
    }
    first_start(&service).await?;
    match service.ensure_operator_token(operator_token.as_deref()).await.map_err(|e| e.to_string())? {
        Some(secret) => {
            println!("  Operator token for the admin API (shown once, copy it now):");
            println!("    {secret}");
        }
        None if operator_token.is_some() => println!("  Operator token:  from SCIMD_OPERATOR_TOKEN"),
        None => println!("  Operator token:  as printed on first start (or set SCIMD_OPERATOR_TOKEN)"),
    }
    if let Some(code) = service.console_setup_code().await.map_err(|e| e.to_string())? {
        println!("  Console:         {origin}/console/setup?code={code}");
        println!("                   (no operator account yet: this one-time link creates the first one;");
        println!("                    or run `scimd admin create --operator --email you@example.com`)");
    } else {
        println!("  Console:         {origin}/console");
    }
    let database_flag = match &config.database {
        Database::Embedded(dir) => format!("--data-dir {}", dir.display()),
        Database::Postgres { .. } => "--database-url …".to_owned(),
    };
    println!(
        "New SCIM token: scimd token new --tenant {DEFAULT_TENANT} {database_flag}   (or POST /admin/api/v1/tenants/{{id}}/tokens)"
    );

    let settings = Settings {
        event_retention: time::Duration::days(i64::from(config.event_retention_days)),
        request_timeout: config.request_timeout,
    };
    let state = AppState::new(service, config.public_url, settings);
    scimd_server::serve(listener, state, shutdown_signal()).await.map_err(|e| format!("server failed: {e}"))?;
    println!("scimd stopped: every in-flight request finished");
    Ok(())
}

/// Seeds what a new deployment needs: the default tenant with its first token, and the default
/// profile and mapping of every tenant. Several nodes may start at once on one database: a
/// node that loses a race to another re-checks (it then finds the other node's work) and goes on.
async fn first_start(service: &Service) -> Result<(), String> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match seed(service).await {
            Err(e) if attempt < 3 => {
                tracing::debug!("first start, attempt {attempt}: {e}; another node may be seeding, checking again");
                tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
            }
            result => return result.map_err(|e| e.to_string()),
        }
    }
}

async fn seed(service: &Service) -> Result<(), scimd_domain::DomainError> {
    service.ensure_tenants_seeded().await?;
    if service.tenants().await?.is_empty() {
        let tenant = service.create_tenant(DEFAULT_TENANT).await?;
        let issued = service.issue_token(&tenant.id, TokenRequest::default()).await?;
        println!("First start: created the tenant \"{DEFAULT_TENANT}\" ({}).", tenant.id);
        println!("  SCIM token (shown once, copy it now; expires {}):", format_time(issued.record.expires_at));
        println!("    {}", issued.secret);
    }
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

async fn admin(service: &Service, cmd: AdminCommand) -> Result<(), String> {
    match cmd {
        AdminCommand::Create { email, operator, tenant } => {
            let role = match (operator, tenant) {
                (true, _) => Role::Operator,
                (false, Some(t)) => Role::TenantAdmin(service.find_tenant(&t).await.map_err(|e| e.to_string())?.id),
                (false, None) => return Err("give --operator or --tenant".into()),
            };
            let mut password = String::new();
            std::io::stdin().read_line(&mut password).map_err(|e| format!("cannot read the password: {e}"))?;
            let password = password.trim_end_matches(['\r', '\n']);
            // The command line is an operator's tool: its changes are audited as such.
            let cli =
                Principal { actor: "scimd admin create (command line)".into(), role: Role::Operator, account_id: None };
            let tenant = role.tenant_id().map(str::to_owned);
            let audit = Change {
                principal: &cli,
                tenant_id: tenant.as_deref(),
                action: "account.create",
                target: &email,
                before: None,
            };
            let account = service
                .audited(audit, service.create_account(&email, password, role))
                .await
                .map_err(|e| e.to_string())?;
            let scope = account.role.tenant_id().map_or("operator".to_owned(), |t| format!("tenant admin of {t}"));
            println!("created account {} ({scope}); sign in at /console", account.email);
        }
        AdminCommand::List => {
            println!("{:<38} {:<13} {:<38} EMAIL", "ID", "ROLE", "TENANT");
            for a in service.accounts().await.map_err(|e| e.to_string())? {
                println!("{:<38} {:<13} {:<38} {}", a.id, a.role.as_str(), a.role.tenant_id().unwrap_or("-"), a.email);
            }
        }
    }
    Ok(())
}

async fn tenant(service: &Service, cmd: TenantCommand) -> Result<(), String> {
    match cmd {
        TenantCommand::Create { name } => {
            let t = service.create_tenant(&name).await.map_err(|e| e.to_string())?;
            println!("created tenant \"{}\" ({})", t.name, t.id);
            println!("issue its SCIM token with: scimd token new --tenant {}", t.id);
        }
        TenantCommand::List => {
            println!("{:<38} {:<8} NAME", "ID", "CREATED");
            for t in service.tenants().await.map_err(|e| e.to_string())? {
                println!("{:<38} {:<8} {}", t.id, scimd_domain::clock::format_date(t.created_at), t.name);
            }
        }
    }
    Ok(())
}

async fn token(service: &Service, cmd: TokenCommand) -> Result<(), String> {
    let find = |t: String| async move { service.find_tenant(&t).await.map(|t| t.id).map_err(|e| e.to_string()) };
    match cmd {
        TokenCommand::New { tenant, lifetime_days, keep_old_for } => {
            let keep_old_for = keep_old_for
                .map(|d| time::Duration::try_from(d).map_err(|e| format!("--keep-old-for: {e}")))
                .transpose()?;
            let tenant = find(tenant).await?;
            let issued = service
                .issue_token(&tenant, TokenRequest { lifetime_days, expires_at: None, keep_old_for })
                .await
                .map_err(|e| e.to_string())?;
            println!("SCIM token (shown once, copy it now; expires {}):", format_time(issued.record.expires_at));
            println!("{}", issued.secret);
            match keep_old_for {
                Some(d) if d.is_positive() => println!("previous tokens keep working for {d}"),
                _ => println!("previous tokens of this tenant no longer work"),
            }
        }
        TokenCommand::List { tenant } => {
            let tenant = find(tenant).await?;
            let now = service.now();
            println!("{:<38} {:<16} {:<9} {:<28} LAST USED", "ID", "PREFIX", "STATE", "EXPIRES");
            for t in service.tokens(&tenant).await.map_err(|e| e.to_string())? {
                let state = format!("{:?}", t.state_at(now)).to_lowercase();
                let last = t.last_used_at.map(format_time).unwrap_or_else(|| "never".into());
                println!("{:<38} {:<16} {:<9} {:<28} {}", t.id, t.prefix, state, format_time(t.expires_at), last);
            }
        }
        TokenCommand::Revoke { tenant, token_id } => {
            let tenant = find(tenant).await?;
            let t = service.revoke_token(&tenant, &token_id).await.map_err(|e| e.to_string())?;
            println!("revoked {} ({})", t.prefix, t.id);
        }
    }
    Ok(())
}

async fn region(service: &Service, cmd: RegionCommand) -> Result<(), String> {
    let find = |r: String| async move { service.find_region(&r).await.map_err(|e| e.to_string()) };
    match cmd {
        RegionCommand::List => {
            let default = service.default_region().await.map_err(|e| e.to_string())?;
            println!("{:<38} {:<9} {:<7} {:<28} NAME", "ID", "HEALTH", "DEFAULT", "SINCE");
            for r in service.regions().await.map_err(|e| e.to_string())? {
                let is_default = if r.id == default.id { "yes" } else { "" };
                println!(
                    "{:<38} {:<9} {:<7} {:<28} {}",
                    r.id,
                    r.health.as_str(),
                    is_default,
                    format_time(r.health_since),
                    r.name
                );
            }
        }
        RegionCommand::Create { name, health } => {
            let r = service.create_region(&name, health).await.map_err(|e| e.to_string())?;
            println!("created region \"{}\" ({}), {}", r.name, r.id, r.health.as_str());
        }
        RegionCommand::Health { region, health } => {
            let id = find(region).await?.id;
            let r = service.set_region_health(&id, health).await.map_err(|e| e.to_string())?;
            println!("region \"{}\" is {} (since {})", r.name, r.health.as_str(), format_time(r.health_since));
            if r.probe_url.is_some() {
                println!("note: its health probe sets the health again at its next run");
            }
        }
        RegionCommand::Default { region } => {
            let r = find(region).await?;
            service.set_default_region(&r.id).await.map_err(|e| e.to_string())?;
            println!("\"{}\" ({}) is the default region; tenants created from now on store users there", r.name, r.id);
        }
    }
    Ok(())
}

/// `scimd doctor`: the report on one tenant or on each; the exit status is the worst one's.
async fn doctor(service: &Service, args: DoctorArgs, public_url: Option<String>) -> Result<u8, String> {
    let tenants = match &args.tenant {
        Some(t) => vec![service.find_tenant(t).await.map_err(|e| e.to_string())?],
        None => {
            let all = service.tenants().await.map_err(|e| e.to_string())?;
            if args.user.is_some() && all.len() != 1 {
                return Err(format!("--user needs --tenant (this cloud has {} tenants)", all.len()));
            }
            all
        }
    };
    let base_url = public_url.map(|u| format!("{}/scim/v2", u.trim_end_matches('/')));
    let mut reports = Vec::with_capacity(tenants.len());
    for tenant in &tenants {
        let options = DoctorOptions { user: args.user.clone(), window_days: args.days, base_url: base_url.clone() };
        reports.push(service.doctor_with(tenant, options).await.map_err(|e| e.to_string())?);
    }
    match args.format {
        Format::Json => {
            // One tenant asked for: exactly the admin API's report; every tenant: a list of them.
            let json = match (&args.tenant, reports.as_slice()) {
                (Some(_), [one]) => serde_json::to_string_pretty(one),
                _ => serde_json::to_string_pretty(&serde_json::json!({ "reports": reports })),
            };
            println!("{}", json.map_err(|e| e.to_string())?);
        }
        Format::Text => {
            if reports.is_empty() {
                println!("No tenants.");
            }
            for (i, report) in reports.iter().enumerate() {
                if i > 0 {
                    println!("\n{}\n", "-".repeat(72));
                }
                print!("{}", scimd_domain::doctor::text::render(report));
            }
        }
    }
    Ok(reports.iter().map(|r| r.exit_code()).max().unwrap_or(0))
}
