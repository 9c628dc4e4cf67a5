#![forbid(unsafe_code)]
//! `rfl-server`: runs the API, or does one admin task and exits.

// mimalloc instead of glibc's malloc: the hot paths allocate and free many short-lived buffers (JSON
// bodies, envelopes, rows), and glibc's allocator was ~12 % of an import profile (docs/benchmarks.md,
// run 10).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use rfl_api::clock::{Clock, SystemClock};
use rfl_api::config::Config;

#[derive(Parser)]
#[command(
    name = "rfl-server",
    version,
    about = "Restoring Family Links case store (ciphertext only)"
)]
struct Cli {
    /// A TOML file overlaid on the defaults (config/default.toml); RFL_* variables override both.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Administration that needs the database, not the API.
    #[command(subcommand)]
    Admin(Admin),
    /// Print the OpenAPI 3 document of this server's API (the one served at /v1/openapi.json).
    Openapi,
}

#[derive(Subcommand)]
enum Admin {
    /// Create a national society and print the one-time enrolment code of its first admin.
    CreateSociety {
        /// The society's name, e.g. "Belgian Red Cross-Flanders".
        #[arg(long)]
        name: String,
    },
    /// Print a one-time enrolment code for a Movement admin (creates national societies through the
    /// API; reads no society's cases).
    CreateMovementAdmin,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rfl-server: {e}");
            return ExitCode::from(2);
        }
    };
    rfl_api::init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rfl-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => runtime.block_on(serve(config)),
        Command::Admin(Admin::CreateSociety { name }) => create_society(&config, &name),
        Command::Admin(Admin::CreateMovementAdmin) => create_movement_admin(&config),
        Command::Openapi => print_openapi(&config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rfl-server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), String> {
    let server = rfl_api::start(config, Arc::new(SystemClock))
        .await
        .map_err(|e| e.to_string())?;
    eprintln!("rfl-server listening on http://{}", server.addr);
    let handle = server.handle.clone();
    tokio::select! {
        r = tokio::signal::ctrl_c() => {
            r.map_err(|e| e.to_string())?;
            tracing::info!("shutting down");
            handle.stop(true).await;
            Ok(())
        }
        r = server.task => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        },
    }
}

/// Opens the database for an admin command, and says on stderr which one: `./data/` is relative to
/// where rfl-server runs, and the code it prints works only against the server using this database.
fn open_store(config: &Config) -> Result<rfl_storage::Store, String> {
    eprintln!(
        "rfl-server: using the {}",
        rfl_storage::describe_database(&config.database.url)
    );
    rfl_storage::Store::open(&config.database.url, 1).map_err(|e| e.to_string())
}

fn create_society(config: &Config, name: &str) -> Result<(), String> {
    let store = open_store(config)?;
    let (id, code) = rfl_api::identity::create_society(
        &store,
        name,
        SystemClock.now_millis(),
        config.auth.enrolment_code_ttl_hours,
    )
    .map_err(|e| e.to_string())?;
    println!("society id:      {id}");
    println!("enrolment code:  {code}");
    println!(
        "Give the code to the society's first admin through a trusted channel; it works once, for {} hours:",
        config.auth.enrolment_code_ttl_hours
    );
    println!("  rfl enrol --server URL --code {code}");
    Ok(())
}

fn create_movement_admin(config: &Config) -> Result<(), String> {
    let store = open_store(config)?;
    let code = rfl_api::identity::movement_admin_code(
        &store,
        SystemClock.now_millis(),
        config.auth.enrolment_code_ttl_hours,
    )
    .map_err(|e| e.to_string())?;
    println!("Movement admin enrolment code: {code}");
    println!(
        "It works once, for {} hours: rfl enrol --server URL --code {code}",
        config.auth.enrolment_code_ttl_hours
    );
    Ok(())
}

fn print_openapi(config: &rfl_api::config::Config) -> Result<(), String> {
    let doc = rfl_api::openapi_document_with(config)
        .and_then(|d| serde_json::to_string_pretty(&d).map_err(|e| e.to_string()))?;
    println!("{doc}");
    Ok(())
}
