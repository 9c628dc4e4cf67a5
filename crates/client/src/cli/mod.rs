//! The `rfl` command line, one file per command group. Each file holds its commands' clap arguments and
//! a thin `exec` that turns them into calls to the SDK (`rfl_client`); the logic lives in the SDK.
//!
//! - [`enrol`]: `enrol`, `login`, `whoami` (this keystore and who it belongs to);
//! - [`keys`]: `keys rotate` (a person rotates their own keys);
//! - [`society`]: `society init`, `certify`, `invite`, `codes`, `revoke-code` (society admins);
//! - [`member`]: `member revoke|reset|rewrap` (society admins);
//! - [`revoked`]: `society revoked-holders` (members other societies revoked, society admins);
//! - [`case`]: `case create|import|list|show|update|status`;
//! - [`records`]: `message add`, `note add`, `attach` (records added to an existing case);
//! - [`export`]: `export` (a case decrypted to files);
//! - [`sync`]: `sync` (the society's sync agent between its server and the hub).
//!
//! This file holds the top-level parser and what every command shares: the keystore path, the
//! passphrase, signing in ([`Context::open_session`]), the one printer for text or `--json`
//! ([`Context::print`]), the exit codes and the progress bar.

mod case;
mod enrol;
mod export;
mod keys;
mod member;
mod movement;
mod records;
mod revoked;
mod root;
mod society;
mod sync;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rfl_client::heads::FileHeads;
use rfl_client::keystore::{KeyHolder, Keystore, Owner};
use rfl_client::{sign_in_person, ClientError, Session, Site, SoftAuthenticator};
use rfl_crypto::{AgeIdentity, CryptoError};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "rfl",
    version,
    about = "Restoring Family Links client: encrypts on this machine, the server sees ciphertext only"
)]
pub struct Cli {
    /// Keystore file [default: $RFL_CLIENT_KEYSTORE or ~/.config/rfl/keystore.json].
    #[arg(long, global = true, env = "RFL_CLIENT_KEYSTORE")]
    keystore: Option<PathBuf>,
    /// Print results as JSON (for scripts).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enrol with a one-time code from your society admin; creates the keystore. A person enrols with a
    /// passkey: in this development build a software authenticator kept in the passphrase-sealed keystore
    /// (see docs/threat-model.md); a sync agent (--machine) with a device key.
    Enrol(enrol::EnrolArgs),
    /// Sign in (a person with their authenticator, a machine with its key) and show who you are.
    Login,
    /// Show who this keystore belongs to, and the fingerprint of your public keys (read it out to the
    /// admin who certifies you).
    Whoami,
    /// Certify a member's public keys after comparing the fingerprint they read out to you (society
    /// admins). Others trust a member's keys only once certified. For keys a member prepared with
    /// `rfl keys rotate`, this also switches them to those keys and revokes their old ones.
    Certify(society::CertifyArgs),
    /// Your own keys: rotate them (new keys, certified by an admin, every case key re-wrapped).
    #[command(subcommand)]
    Keys(keys::KeysCmd),
    /// Society administration (society admins).
    #[command(subcommand)]
    Society(society::SocietyCmd),
    /// Society members: revoke one (society admins).
    #[command(subcommand)]
    Member(member::MemberCmd),
    /// Issue a one-time enrolment code for a new member (society admins).
    Invite(society::InviteArgs),
    /// List the society's enrolment codes of the last 30 days (society admins; never the codes).
    Codes,
    /// Revoke an unused enrolment code by its id (society admins).
    RevokeCode(society::RevokeCodeArgs),
    /// Tracing cases.
    #[command(subcommand)]
    Case(case::CaseCmd),
    /// Red Cross Messages.
    #[command(subcommand)]
    Message(records::MessageCmd),
    /// Caseworker notes.
    #[command(subcommand)]
    Note(records::NoteCmd),
    /// Encrypt a file (photo, scanned document) chunk by chunk and attach it to a case.
    Attach(records::AttachArgs),
    /// Decrypt a case (and its attachments) to files you name. The output is plaintext: protect it.
    Export(export::ExportArgs),
    /// The Movement root: pin its fingerprint (everyone); create it and certify society roots
    /// with it (Movement admins).
    #[command(subcommand)]
    Movement(movement::MovementCmd),
    /// Cases transferred between societies (society admins): list, accept, reject or cancel.
    #[command(subcommand)]
    Transfer(movement::TransferCmd),
    /// The society's sync agent: carries its trust material and its cases' changes between its
    /// own server (this keystore) and the hub (--hub), verified on arrival; with --watch, round
    /// after round. Ciphertext only: the agent opens no case.
    Sync(sync::SyncArgs),
}

impl Cli {
    /// Runs the command. Each command signs in itself (or not at all, like `whoami`).
    pub async fn run(self) -> Result<(), ClientError> {
        let ctx = Context {
            keystore: self.keystore.unwrap_or_else(default_keystore_path),
            json: self.json,
        };
        match &self.command {
            Command::Enrol(args) => args.exec(&ctx).await,
            Command::Login => enrol::login(&ctx).await,
            Command::Whoami => enrol::whoami(&ctx),
            Command::Certify(args) => args.exec(&ctx).await,
            Command::Keys(cmd) => cmd.exec(&ctx).await,
            Command::Society(cmd) => cmd.exec(&ctx).await,
            Command::Member(cmd) => cmd.exec(&ctx).await,
            Command::Invite(args) => args.exec(&ctx).await,
            Command::Codes => society::codes(&ctx).await,
            Command::RevokeCode(args) => args.exec(&ctx).await,
            Command::Case(cmd) => cmd.exec(&ctx).await,
            Command::Message(cmd) => cmd.exec(&ctx).await,
            Command::Note(cmd) => cmd.exec(&ctx).await,
            Command::Attach(args) => args.exec(&ctx).await,
            Command::Export(args) => args.exec(&ctx).await,
            Command::Movement(cmd) => cmd.exec(&ctx).await,
            Command::Transfer(cmd) => cmd.exec(&ctx).await,
            Command::Sync(args) => args.exec(&ctx).await,
        }
    }
}

/// Writes `text` and a newline to stdout. A reader that has gone away (`rfl case list | head`) is not
/// a failure: the command did its work and nobody is left to read the rest, so it exits 0 instead of
/// panicking as `println!` does.
fn emit(text: &str) -> Result<(), ClientError> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(ClientError::from),
    }
}

/// What every command gets: the global options, resolved once.
pub struct Context {
    keystore: PathBuf,
    json: bool,
}

impl Context {
    /// The keystore file (`--keystore`, $RFL_CLIENT_KEYSTORE, or ~/.config/rfl/keystore.json).
    fn keystore_path(&self) -> &Path {
        &self.keystore
    }

    /// Prints `value` as JSON with `--json`, otherwise the text `human` makes: the one place that
    /// chooses between the two.
    fn print<T: Serialize>(
        &self,
        value: &T,
        human: impl FnOnce() -> String,
    ) -> Result<(), ClientError> {
        if self.json {
            emit(&serde_json::to_string_pretty(value)?)
        } else {
            emit(&human())
        }
    }

    /// Unlocks the keystore and signs in. Every command signs in afresh: a person's keys are unwrapped
    /// only with their authenticator's PRF output, so no token is cached (and admin commands always carry
    /// a fresh sign-in for step-up).
    async fn open_session(&self) -> Result<Session, ClientError> {
        self.open_session_with(&passphrase()?).await
    }

    /// [`Context::open_session`] with the passphrase read already (for a command that also seals
    /// something with it).
    async fn open_session_with(&self, pass: &SecretString) -> Result<Session, ClientError> {
        let path = self.keystore_path();
        let ks = Keystore::load(path)?;
        let mut s = match ks.holder {
            KeyHolder::MachineKeys => {
                let keys = Arc::new(ks.unlock(pass)?);
                Session::login(&ks.server, ks.member_id, keys).await?
            }
            KeyHolder::DevAuthenticator => {
                let state = ks.unlock_bytes(pass)?;
                let mut authenticator = SoftAuthenticator::from_secret_bytes(&state)
                    .map_err(|e| ClientError::Keystore(format!("the authenticator state: {e}")))?;
                let site = Site::new(&ks.server, &ks.origin);
                let s = sign_in_person(&site, ks.member_id, &mut authenticator).await?;
                // The keys came back from the server: they must be the ones this person enrolled
                // (or prepared for a rotation of them).
                if !ks.matches(s.bundle_keys()) {
                    return Err(ClientError::Tampered(
                        "the server returned keys that are not the ones you enrolled".into(),
                    ));
                }
                let after = authenticator
                    .to_secret_bytes()
                    .map_err(|e| ClientError::Keystore(format!("the authenticator state: {e}")))?;
                if *after != *state {
                    // The signature counter moved: keep it, or the next sign-in looks like a clone.
                    let owner = owner_of(&ks)?;
                    let mut resealed =
                        Keystore::seal_authenticator(&owner, &after, pass, ks.work_factor)?;
                    resealed.next_keys = ks.next_keys.clone();
                    resealed.movement_fingerprint = ks.movement_fingerprint.clone();
                    resealed.save(path)?;
                }
                s
            }
        };
        prepare_age_identity(&s.keys().age);
        if let Some(fp) = &ks.root_fingerprint {
            s.pin_root(fp).await?;
        }
        if let Some(fp) = &ks.movement_fingerprint {
            s.pin_movement(fp);
        }
        // The last commit verified of each case, across runs: a case the server rolls back is refused.
        let heads = FileHeads::open_rotated(
            FileHeads::path_for(path),
            s.member_id(),
            s.keys_arc(),
            s.retired_keys().map(|k| k.as_ref()),
        )?;
        s.set_heads(Arc::new(heads));
        Ok(s)
    }
}

/// The exit code for an error: 1 other failure; 2 bad usage (clap's own); 3 not found or not allowed;
/// 4 conflict (someone else changed the case: reload and retry); 5 invalid input; 6 server unreachable;
/// 7 verification failed (the server returned something tampered with). An age plugin that is missing
/// or fails is 1.
pub fn exit_code(e: &ClientError) -> u8 {
    match e {
        ClientError::Api { status, .. } => match status {
            401 | 403 | 404 => 3,
            409 => 4,
            _ => 5,
        },
        ClientError::Conflict(_) | ClientError::SyncCursor { .. } => 4,
        ClientError::Http(_) => 6,
        // An age plugin missing, failing or wanting a prompt is not a verification failure.
        ClientError::Crypto(
            CryptoError::PluginMissing(_)
            | CryptoError::PluginInteraction(_)
            | CryptoError::PluginFailed(_),
        ) => 1,
        ClientError::Tampered(_) | ClientError::Crypto(_) => 7,
        ClientError::Validation(_) | ClientError::Invalid(_) | ClientError::Json(_) => 5,
        _ => 1,
    }
}

fn default_keystore_path() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".config/rfl/keystore.json")
}

/// Fewest characters of a new passphrase, typed or taken from $RFL_CLIENT_PASSPHRASE.
const MIN_PASSPHRASE_CHARS: usize = 12;

/// Smallest scrypt work factor (log2 N) `rfl` seals a keystore or the society root key with. N = 2^14
/// (16 MiB) is scrypt's own recommendation for interactive logins; the default, 18, is the work factor
/// of age's reference implementation (rage calibrates to about a second). The largest is what
/// `rfl_crypto` opens. The SDK takes any factor `rfl_crypto` accepts (from 10), which keeps its tests
/// fast; the command line holds people to this one.
pub(crate) const MIN_WORK_FACTOR: u8 = 14;

/// `--work-factor`: a usage error (exit code 2) outside `MIN_WORK_FACTOR..=MAX_LOG_N`.
fn work_factor_parser() -> clap::builder::RangedI64ValueParser<u8> {
    clap::value_parser!(u8).range(i64::from(MIN_WORK_FACTOR)..=i64::from(rfl_crypto::MAX_LOG_N))
}

/// The passphrase that unlocks the keystore, from $RFL_CLIENT_PASSPHRASE or typed.
fn passphrase() -> Result<SecretString, ClientError> {
    if let Ok(p) = std::env::var("RFL_CLIENT_PASSPHRASE") {
        return Ok(SecretString::from(p));
    }
    Ok(SecretString::from(rpassword::prompt_password(
        "keystore passphrase: ",
    )?))
}

/// A passphrase that will seal something new: from $RFL_CLIENT_PASSPHRASE, or typed twice; either way
/// held to [`check_new_passphrase`].
fn new_passphrase() -> Result<SecretString, ClientError> {
    let p = match std::env::var("RFL_CLIENT_PASSPHRASE") {
        Ok(p) => p,
        Err(_) => {
            let p = rpassword::prompt_password("keystore passphrase: ")?;
            let again = rpassword::prompt_password("repeat passphrase: ")?;
            if again != p {
                return Err(ClientError::Invalid("the passphrases differ".into()));
            }
            p
        }
    };
    let p = SecretString::from(p);
    check_new_passphrase(&p)?;
    Ok(p)
}

/// The one rule for a passphrase that seals a keystore or the society root key, wherever it came from.
fn check_new_passphrase(p: &SecretString) -> Result<(), ClientError> {
    if p.expose_secret().chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(ClientError::Invalid(format!(
            "use a passphrase of at least {MIN_PASSPHRASE_CHARS} characters"
        )));
    }
    Ok(())
}

/// rfl never prompts on a plugin's behalf: a plugin identity gets the PIN from $RFL_AGE_PLUGIN_PIN if
/// set, and the plugin's messages ("touch your key", or why it failed) are shown on stderr, not logged.
fn prepare_age_identity(id: &AgeIdentity) {
    if !id.is_plugin() {
        return;
    }
    if let Ok(pin) = std::env::var("RFL_AGE_PLUGIN_PIN") {
        id.set_plugin_pin(SecretString::from(pin));
    }
    id.set_plugin_message_hook(Arc::new(|m: &str| eprintln!("age plugin: {m}")));
}

/// The keystore's public part as the [`Owner`] that sealing a keystore takes.
fn owner_of(ks: &Keystore) -> Result<Owner, ClientError> {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD
        .decode(&ks.signing_public_key)
        .ok()
        .and_then(|b| rfl_crypto::DevicePublicKey::from_slice(&b).ok())
        .ok_or_else(|| ClientError::Keystore("the recorded signing key is malformed".into()))?;
    Ok(Owner {
        server: ks.server.clone(),
        origin: ks.origin.clone(),
        member_id: ks.member_id,
        society_id: ks.society_id,
        role: ks.role,
        signing_public_key: key,
        age_recipient: ks.age_recipient.clone(),
        root_fingerprint: ks.root_fingerprint.clone(),
    })
}

/// Parses a flag's value as one of a domain enum's snake_case names.
fn parse_enum<T: DeserializeOwned>(what: &str, s: &str) -> Result<T, ClientError> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|_| {
        ClientError::Invalid(format!(
            "unknown {what}; see --help for the accepted values"
        ))
    })
}

/// `n` and the noun, plural unless `n` is 1: "1 note", "2 notes".
fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A counter of work whose total is not known in advance (on standard error, like the bars).
fn counter(unit: &str) -> ProgressBar {
    let pb = ProgressBar::no_length();
    let style = ProgressStyle::with_template(&format!("{{spinner}} {{pos}} {unit} ({{per_sec}})"))
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    pb.set_style(style);
    pb
}

fn progress_bar(len: u64, unit: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    let style =
        ProgressStyle::with_template(&format!("{{bar:40}} {{pos}}/{{len}} {unit} ({{eta}})"))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb
}
