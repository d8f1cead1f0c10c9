//! `scimd`: the SCIM provisioning service of a multi-tenant cloud backup product.

mod commands;
mod config;

use std::process::ExitCode;

use clap::Parser as _;

/// mimalloc rather than the system allocator: a SCIM request builds and drops many small JSON
/// values, and glibc's allocator (its consolidation and locking) was a sixth of a PATCH's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match config::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            if !e.use_stderr() {
                // --help and --version.
                return ExitCode::SUCCESS;
            }
            // clap's usage errors exit 2, which from the doctor would read as "errors found".
            let doctor = std::env::args().skip(1).any(|a| a == "doctor");
            return ExitCode::from(if doctor { 3 } else { 2 });
        }
    };
    // Monitoring reads 1 and 2 as the doctor's warnings and errors; a doctor that could not run
    // exits 3 (Nagios' "unknown") so that it is never mistaken for either.
    let failure = if matches!(cli.command, config::Command::Doctor(_)) { ExitCode::from(3) } else { ExitCode::FAILURE };
    let configured = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let filter = scimd_server::secret_safe_log_filter(configured);
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    match commands::run(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("scimd: {message}");
            failure
        }
    }
}
