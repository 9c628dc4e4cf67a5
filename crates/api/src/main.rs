#![forbid(unsafe_code)]
//! `rfl-server`: runs the API, or does one admin task and exits.

// mimalloc instead of glibc's malloc: the hot paths allocate and free many short-lived buffers (JSON
// bodies, envelopes, rows), and glibc's allocator was ~12 % of an import profile (docs/benchmarks.md,
// run 10).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use rfl_api::clock::{Clock, SystemClock};
use rfl_api::config::Config;
use rfl_domain::SocietyId;

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
    Admin(AdminTask),
    /// Print the OpenAPI 3 document of this server's API (the one served at /v1/openapi.json).
    Openapi,
}

#[derive(Subcommand)]
enum AdminTask {
    /// Create a national society and print the one-time enrolment code of its first admin.
    CreateSociety {
        /// The society's name, e.g. "Belgian Red Cross-Flanders".
        #[arg(long)]
        name: String,
        /// Register the society under the id its own server gave it, so that this server (a hub)
        /// can take its cases and trust material by sync (`docs/sync.md`); without it the society
        /// gets a new id.
        #[arg(long, value_name = "SOCIETY_ID")]
        id: Option<SocietyId>,
    },
    /// Print a one-time enrolment code for a Movement admin (creates national societies through the
    /// API; reads no society's cases).
    CreateMovementAdmin,
    /// Rotate the key that signs access tokens, with the service running: add a new key (every node
    /// verifies what it signs), wait until every running node holds its file, then promote it (it
    /// signs every new token; the old key verifies until its last token has expired). Running it
    /// again goes on from where it stopped, and deletes this machine's files of retired keys.
    RotateSigningKey {
        /// Only show the keys and the running nodes.
        #[arg(long)]
        status: bool,
        /// How long to wait for every running node to hold the new key's file before giving up (the
        /// key stays added; run the command again once the file is on every node).
        #[arg(long, default_value_t = 60, value_name = "SECONDS")]
        wait: u64,
    },
}

/// Writes a line to stdout (`println!` with its failure returned instead of a panic).
macro_rules! out {
    ($($arg:tt)*) => {
        write_line(format_args!($($arg)*))
    };
}

/// A reader that has gone away (`rfl-server openapi | head`) ends the output, not the command; any
/// other failure (a full disk under a redirection) is an error, so an enrolment code is never lost
/// without a word.
fn write_line(line: std::fmt::Arguments<'_>) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_fmt(line)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(|e| format!("cannot write to standard output: {e}")),
    }
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
        Command::Admin(AdminTask::CreateSociety { name, id }) => create_society(&config, &name, id),
        Command::Admin(AdminTask::CreateMovementAdmin) => create_movement_admin(&config),
        Command::Admin(AdminTask::RotateSigningKey { status, wait }) => {
            runtime.block_on(rotate_signing_key(&config, status, wait))
        }
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

fn create_society(config: &Config, name: &str, id: Option<SocietyId>) -> Result<(), String> {
    let store = open_store(config)?;
    let (id, code) = rfl_api::identity::create_society(
        &store,
        name,
        id,
        SystemClock.now_millis(),
        config.auth.enrolment_code_ttl_hours,
    )
    .map_err(|e| e.to_string())?;
    out!("society id:      {id}")?;
    out!("enrolment code:  {code}")?;
    out!(
        "Give the code to the society's first admin through a trusted channel; it works once, for {} hours:",
        config.auth.enrolment_code_ttl_hours
    )?;
    out!("  rfl enrol --server URL --code {code}")?;
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
    out!("Movement admin enrolment code: {code}")?;
    out!(
        "It works once, for {} hours: rfl enrol --server URL --code {code}",
        config.auth.enrolment_code_ttl_hours
    )?;
    Ok(())
}

async fn rotate_signing_key(config: &Config, status_only: bool, wait: u64) -> Result<(), String> {
    use rfl_api::signing_keys::{self as keys, RotationSettings};
    let store = open_store(config)?;
    let settings = RotationSettings::from_config(config);
    let now = || SystemClock.now_millis();
    let deleted =
        keys::delete_retired_files(&store, &settings, now()).map_err(|e| e.to_string())?;
    for path in deleted {
        out!("deleted the file of a retired key: {}", path.display())?;
    }
    print_key_status(&store, &settings, now())?;
    if status_only {
        return Ok(());
    }
    // 1. Add (or go on with the key added by an earlier run).
    let (next, added) = keys::add_next_key(&store, &settings, now()).map_err(|e| e.to_string())?;
    let file = settings.files.path_for(&next.kid);
    if added {
        out!(
            "added {}: every node verifies its tokens once it holds {}",
            next.kid,
            file.display()
        )?;
    } else {
        out!(
            "going on with {}, added earlier ({})",
            next.kid,
            file.display()
        )?;
    }
    // 2. Distribute: every running node must report the file before the key signs anything.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(wait);
    let mut waiting = None;
    loop {
        let (missing, running) =
            keys::nodes_without(&store, &settings, &next.kid, now()).map_err(|e| e.to_string())?;
        if missing.is_empty() {
            out!("{running} running node(s) verify {}", next.kid)?;
            break;
        }
        if std::time::Instant::now() >= deadline {
            let ids: Vec<&str> = missing.iter().map(|n| n.node_id.as_str()).collect();
            return Err(format!(
                "{} of {running} running node(s) do not hold {} yet (nodes {}): copy the file to the \
                 folder of auth.signing_key_file on every node (each reads it within \
                 auth.signing_key_refresh_secs = {} s), then run this command again",
                missing.len(),
                file.display(),
                ids.join(", "),
                settings.refresh_secs
            ));
        }
        if waiting != Some(missing.len()) {
            eprintln!(
                "waiting for {} of {running} running node(s) to read {} (each reads its key files \
                 every {} s) …",
                missing.len(),
                next.kid,
                settings.refresh_secs
            );
            waiting = Some(missing.len());
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    // 3. Promote.
    let until = keys::promote(&store, &settings, &next.kid, now()).map_err(|e| e.to_string())?;
    out!(
        "promoted {}: every node signs with it within {} s; the previous key verifies until {} \
         and is retired then; run this command after that to delete its file here",
        next.kid,
        settings.refresh_secs,
        utc(until)
    )?;
    Ok(())
}

fn print_key_status(
    store: &rfl_storage::Store,
    settings: &rfl_api::signing_keys::RotationSettings,
    now: i64,
) -> Result<(), String> {
    use rfl_storage::TokenKeyState;
    let rows = store.token_keys().map_err(|e| e.to_string())?;
    if rows.is_empty() {
        return Err("the database lists no token key: start rfl-server once first".into());
    }
    let local = settings.files.load_all().map_err(|e| e.to_string())?;
    out!("token-signing keys:")?;
    for r in &rows {
        let state = match r.state {
            TokenKeyState::Next => "next (verifies, does not sign yet)".to_owned(),
            TokenKeyState::Primary => "primary (signs)".to_owned(),
            TokenKeyState::Previous if r.verifies_at(now) => {
                format!(
                    "previous (verifies until {})",
                    utc(r.verify_until.unwrap_or(0))
                )
            }
            TokenKeyState::Previous => "retired".to_owned(),
        };
        let here = if local.iter().any(|k| k.kid == r.kid) {
            "file here"
        } else {
            "no file here"
        };
        out!("  {}  {state}, {here}", r.kid)?;
    }
    let nodes = store.token_key_nodes().map_err(|e| e.to_string())?;
    out!(
        "nodes that reported themselves (every {} s):",
        settings.refresh_secs
    )?;
    for n in nodes {
        out!(
            "  {}  {} s ago, verifies {}",
            n.node_id,
            (now - n.seen_at).max(0) / 1000,
            n.kids.join(" ")
        )?;
    }
    Ok(())
}

/// Unix milliseconds as an RFC 3339 time in UTC.
fn utc(millis: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{millis} ms after 1970"))
}

fn print_openapi(config: &rfl_api::config::Config) -> Result<(), String> {
    let doc = rfl_api::openapi_document_with(config)
        .and_then(|d| serde_json::to_string_pretty(&d).map_err(|e| e.to_string()))?;
    out!("{doc}")?;
    Ok(())
}
