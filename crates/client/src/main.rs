#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
//! `rfl`: the caseworker's command-line client. All encryption happens in this process.
//!
//! Exit codes: 0 success; 1 other failure; 2 bad usage; 3 not found or not allowed; 4 conflict (someone
//! else changed the case: reload and retry); 5 invalid input; 6 server unreachable; 7 verification failed
//! (the server returned something tampered with). An age plugin that is missing or fails is 1.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rfl_client::keystore::{write_private, DeviceKeys, KeyHolder, Keystore, Owner};
use rfl_client::session::{self, today, Session};
use rfl_client::{sign_in_person, ClientError, Site, SoftAuthenticator};
use rfl_crypto::{AgeIdentity, AgeRecipient, CryptoError};
use rfl_domain::records::{CaseHeader, PersonRecord, ProcessingConsent, Relationship, Separation};
use rfl_domain::{
    CaseFile, CaseId, CaseStatus, Entry, NameKind, Note, Person, PersonName, RecordId,
    RedCrossMessage, Role,
};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "rfl",
    version,
    about = "Restoring Family Links client: encrypts on this machine, the server sees ciphertext only"
)]
struct Cli {
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
    Enrol {
        #[arg(long)]
        server: String,
        #[arg(long)]
        code: String,
        /// The WebAuthn origin the server's relying party expects [default: the server address].
        #[arg(long)]
        origin: Option<String>,
        /// Enrol a machine (a sync agent's code) with an Ed25519 key instead of a passkey.
        #[arg(long)]
        machine: bool,
        /// Your society's root key fingerprint, given to you with the code (not needed by the first
        /// admin, who creates the root with `rfl society init`).
        #[arg(long)]
        root_fingerprint: Option<String>,
        /// scrypt work factor (2^N) protecting the keystore.
        #[arg(long, default_value_t = 18)]
        work_factor: u8,
        /// Use an age plugin identity as your age key instead of a generated one, e.g. a YubiKey's
        /// identity file from `age-plugin-yubikey --identity` (with its `# recipient:` line): case keys
        /// are then wrapped to the token and unwrapped on it, by the plugin `age-plugin-<name>`, which
        /// must be on PATH. rfl does not prompt for the plugin: a PIN is taken from
        /// $RFL_AGE_PLUGIN_PIN, and the plugin's messages are shown on stderr.
        #[arg(long, value_name = "FILE")]
        age_identity: Option<PathBuf>,
    },
    /// Sign in (a person with their authenticator, a machine with its key) and show who you are.
    Login,
    /// Show who this keystore belongs to, and the fingerprint of your public keys (read it out to the
    /// admin who certifies you).
    Whoami,
    /// Certify a member's public keys after comparing the fingerprint they read out to you (society
    /// admins). Others trust a member's keys only once certified.
    Certify {
        member: rfl_domain::MemberId,
        /// The fingerprint the member read out (`rfl whoami` on their machine).
        #[arg(long)]
        fingerprint: String,
    },
    /// Society administration (society admins).
    #[command(subcommand)]
    Society(SocietyCmd),
    /// Issue a one-time enrolment code for a new member (society admins).
    Invite {
        #[arg(long, default_value = "caseworker")]
        role: String,
    },
    /// List the society's enrolment codes of the last 30 days (society admins; never the codes).
    Codes,
    /// Revoke an unused enrolment code by its id (society admins).
    RevokeCode { id: String },
    /// Tracing cases.
    #[command(subcommand)]
    Case(CaseCmd),
    /// Red Cross Messages.
    #[command(subcommand)]
    Message(MessageCmd),
    /// Caseworker notes.
    #[command(subcommand)]
    Note(NoteCmd),
    /// Encrypt a file (photo, scanned document) chunk by chunk and attach it to a case.
    Attach {
        case: CaseId,
        file: PathBuf,
        #[arg(long, default_value = "application/octet-stream")]
        media_type: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// Decrypt a case (and its attachments) to files you name. The output is plaintext: protect it.
    Export {
        case: CaseId,
        /// Where to write the case as JSON.
        #[arg(long)]
        out: PathBuf,
        /// Also decrypt attachments into this folder.
        #[arg(long)]
        attachments_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum SocietyCmd {
    /// Create the society escrow key, wrapped to the offline recovery key, and the society's signing
    /// root, which certifies it and you. Run once, by the first admin. Prints the root fingerprint that
    /// every member is given with their enrolment code.
    Init {
        /// Where to write the society root key (passphrase-sealed). Keep it offline.
        #[arg(long)]
        root_key_out: PathBuf,
        /// The recovery key's age recipient (e.g. from age-plugin-yubikey). If absent, a recovery identity
        /// is generated and written to --recovery-identity-out: move it offline.
        #[arg(long)]
        recovery_recipient: Option<String>,
        #[arg(long)]
        recovery_identity_out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CaseCmd {
    /// Create a case from a JSON case file (--file) or from flags.
    Create(CreateArgs),
    /// Import many cases from a JSON Lines file (one case file per line), encrypted in parallel and stored
    /// in batches of one transaction each.
    Import {
        #[arg(long)]
        file: PathBuf,
        #[arg(long, default_value_t = 500)]
        batch_size: usize,
    },
    /// List the cases you hold a key for.
    List {
        #[arg(long)]
        after: Option<CaseId>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Follow every page.
        #[arg(long)]
        all: bool,
    },
    /// Decrypt and show a case.
    Show { case: CaseId },
    /// Replace a case's content with a JSON case file (as printed by `case show --json`); changed records
    /// are written as new versions.
    Update {
        case: CaseId,
        #[arg(long)]
        file: PathBuf,
    },
    /// Move a case along the workflow: tracing, located, family_informed, reunited, closed,
    /// closed_unsuccessful, closed_at_enquirer_request.
    Status { case: CaseId, status: String },
}

#[derive(Args)]
struct CreateArgs {
    /// A JSON case file (see `rfl case show --json` for the shape).
    #[arg(long, conflicts_with_all = ["enquirer", "sought"])]
    file: Option<PathBuf>,
    /// tracing_request, unaccompanied_or_separated_child, detainee, missing_after_disaster, deceased_identification
    #[arg(long, default_value = "tracing_request")]
    category: String,
    /// Enquirer as "GIVEN FAMILY".
    #[arg(long)]
    enquirer: Option<String>,
    /// Sought person as "GIVEN FAMILY" (repeat for several).
    #[arg(long)]
    sought: Vec<String>,
    /// Relationship of the sought person(s) to the enquirer: parent, child, sibling, spouse, ...
    #[arg(long, default_value = "sibling")]
    relationship: String,
    /// armed_conflict, migration, disaster, detention, internal_displacement, other
    #[arg(long, default_value = "other")]
    separation: String,
    /// The society's own reference.
    #[arg(long)]
    reference: Option<String>,
    /// How the enquirer's consent to processing was recorded: written, oral_witnessed, oral, electronic,
    /// by_guardian.
    #[arg(long, default_value = "written")]
    consent: String,
}

#[derive(Subcommand)]
enum MessageCmd {
    /// Add a Red Cross Message to a case.
    Add {
        case: CaseId,
        /// "enquirer", or the index of a person in the case.
        #[arg(long, default_value = "enquirer")]
        from: String,
        #[arg(long, default_value = "1")]
        to: String,
        #[arg(long)]
        body: String,
        #[arg(long, default_value = "en")]
        language: String,
    },
}

#[derive(Subcommand)]
enum NoteCmd {
    /// Add a note to a case.
    Add {
        case: CaseId,
        #[arg(long)]
        text: String,
        /// Your initials or role (a label, not an account).
        #[arg(long, default_value = "caseworker")]
        author: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rfl: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rfl: {e}");
            ExitCode::from(exit_code(&e))
        }
    }
}

fn exit_code(e: &ClientError) -> u8 {
    match e {
        ClientError::Api { status, .. } => match status {
            401 | 403 | 404 => 3,
            409 => 4,
            _ => 5,
        },
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

fn keystore_path(cli: &Cli) -> PathBuf {
    cli.keystore.clone().unwrap_or_else(|| {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        home.join(".config/rfl/keystore.json")
    })
}

fn passphrase(confirm: bool) -> Result<SecretString, ClientError> {
    if let Ok(p) = std::env::var("RFL_CLIENT_PASSPHRASE") {
        return Ok(SecretString::from(p));
    }
    let p = rpassword::prompt_password("keystore passphrase: ")?;
    if confirm {
        let again = rpassword::prompt_password("repeat passphrase: ")?;
        if again != p {
            return Err(ClientError::Invalid("the passphrases differ".into()));
        }
        if p.chars().count() < 12 {
            return Err(ClientError::Invalid(
                "use a passphrase of at least 12 characters".into(),
            ));
        }
    }
    Ok(SecretString::from(p))
}

/// Unlocks the keystore and signs in. Every command signs in afresh: a person's keys are unwrapped only
/// with their authenticator's PRF output, so no token is cached (and admin commands always carry a
/// fresh sign-in for step-up).
async fn open_session(cli: &Cli) -> Result<Session, ClientError> {
    let path = keystore_path(cli);
    let ks = Keystore::load(&path)?;
    let pass = passphrase(false)?;
    let mut s = match ks.holder {
        KeyHolder::MachineKeys => {
            let keys = Arc::new(ks.unlock(&pass)?);
            Session::login(&ks.server, ks.member_id, keys).await?
        }
        KeyHolder::DevAuthenticator => {
            let state = ks.unlock_bytes(&pass)?;
            let mut authenticator = SoftAuthenticator::from_secret_bytes(&state)
                .map_err(|e| ClientError::Keystore(format!("the authenticator state: {e}")))?;
            let site = Site::new(&ks.server, &ks.origin);
            let s = sign_in_person(&site, ks.member_id, &mut authenticator).await?;
            // The keys came back from the server: they must be the ones this person enrolled.
            if !ks.matches(s.keys()) {
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
                Keystore::seal_authenticator(&owner, &after, &pass, ks.work_factor)?.save(&path)?;
            }
            s
        }
    };
    prepare_age_identity(&s.keys().age);
    if let Some(fp) = &ks.root_fingerprint {
        s.pin_root(fp).await?;
    }
    Ok(s)
}

/// Reads an age plugin identity file for `rfl enrol --age-identity`.
fn read_age_identity(path: &std::path::Path) -> Result<AgeIdentity, ClientError> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        ClientError::Invalid(format!(
            "cannot read the age identity file {}: {e}",
            path.display()
        ))
    })?);
    let id = AgeIdentity::from_identity_file(&text).map_err(|e| {
        ClientError::Invalid(format!("the age identity file {}: {e}", path.display()))
    })?;
    if !id.is_plugin() {
        return Err(ClientError::Invalid(
            "--age-identity takes an age plugin identity (AGE-PLUGIN-…, a key on a token); rfl \
             generates X25519 keys itself"
                .into(),
        ));
    }
    prepare_age_identity(&id);
    Ok(id)
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

fn print<T: Serialize>(
    cli: &Cli,
    value: &T,
    human: impl FnOnce() -> String,
) -> Result<(), ClientError> {
    if cli.json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{}", human());
    }
    Ok(())
}

fn parse_enum<T: DeserializeOwned>(what: &str, s: &str) -> Result<T, ClientError> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|_| {
        ClientError::Invalid(format!(
            "unknown {what}; see --help for the accepted values"
        ))
    })
}

fn person_from(name: &str) -> Person {
    let mut parts = name.trim().rsplitn(2, ' ');
    let family = parts.next().unwrap_or_default().to_owned();
    let given = parts.next().unwrap_or_default().to_owned();
    let (given, family) = if given.is_empty() {
        (family, String::new())
    } else {
        (given, family)
    };
    Person::named(vec![PersonName {
        given,
        family,
        other: None,
        script: None,
        kind: NameKind::default(),
    }])
}

fn case_from_args(a: &CreateArgs) -> Result<CaseFile, ClientError> {
    if let Some(f) = &a.file {
        return Ok(serde_json::from_slice(&std::fs::read(f)?)?);
    }
    let enquirer = a.enquirer.as_deref().ok_or_else(|| {
        ClientError::Invalid("give --file, or --enquirer and at least one --sought".into())
    })?;
    if a.sought.is_empty() {
        return Err(ClientError::Invalid(
            "give at least one --sought person".into(),
        ));
    }
    let relationship: Relationship = parse_enum("relationship", &a.relationship)?;
    let mut persons = vec![Entry::new(
        RecordId::new(),
        PersonRecord::enquirer(person_from(enquirer)),
    )];
    for s in &a.sought {
        persons.push(Entry::new(
            RecordId::new(),
            PersonRecord::sought(person_from(s), relationship.clone()),
        ));
    }
    Ok(CaseFile {
        header: CaseHeader {
            category: parse_enum("category", &a.category)?,
            separation: Separation {
                event: parse_enum("separation event", &a.separation)?,
                place: None,
                date: None,
                description: None,
            },
            vulnerabilities: Vec::new(),
            consent: ProcessingConsent {
                given: true,
                date: Some(today()),
                recorded_how: Some(parse_enum("consent recording", &a.consent)?),
            },
            reference: a.reference.clone(),
        },
        persons,
        messages: Vec::new(),
        notes: Vec::new(),
        attachments: Vec::new(),
    })
}

fn person_ref(s: &str) -> Result<rfl_domain::records::PersonRef, ClientError> {
    use rfl_domain::records::PersonRef;
    if s == "enquirer" {
        return Ok(PersonRef::Enquirer);
    }
    s.parse::<usize>().map(PersonRef::Index).map_err(|_| {
        ClientError::Invalid("a person is \"enquirer\" or an index in the case's persons".into())
    })
}

fn progress_bar(len: u64, unit: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    let style =
        ProgressStyle::with_template(&format!("{{bar:40}} {{pos}}/{{len}} {unit} ({{eta}})"))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb
}

async fn run(cli: Cli) -> Result<(), ClientError> {
    match &cli.command {
        Command::Enrol {
            server,
            code,
            origin,
            machine,
            root_fingerprint,
            work_factor,
            age_identity,
        } => {
            let path = keystore_path(&cli);
            if path.exists() {
                return Err(ClientError::Keystore(format!(
                    "{} exists already",
                    path.display()
                )));
            }
            let keys = match age_identity {
                Some(file) => DeviceKeys::generate_with_age(read_age_identity(file)?)?,
                None => DeviceKeys::generate()?,
            };
            let pass = passphrase(true)?;
            let origin = origin
                .clone()
                .unwrap_or_else(|| server.trim_end_matches('/').to_owned());
            let (ks, member_id, society_id, role) = if *machine {
                if keys.age.is_plugin() {
                    keys.check_age_identity()?;
                }
                let r = session::enrol(server, code, &keys).await?;
                let owner = Owner {
                    server: server.clone(),
                    origin,
                    member_id: r.member_id,
                    society_id: r.society_id,
                    role: r.role,
                    signing_public_key: keys.signing.public_key(),
                    age_recipient: keys.age.recipient().to_string(),
                    root_fingerprint: root_fingerprint.clone(),
                };
                (
                    Keystore::seal(&owner, &keys, &pass, *work_factor)?,
                    r.member_id,
                    r.society_id,
                    r.role,
                )
            } else {
                let mut authenticator = SoftAuthenticator::new();
                let site = Site::new(server, &origin);
                let s = rfl_client::enrol_person_with_keys(&site, code, &mut authenticator, keys)
                    .await?;
                let owner = Owner {
                    server: server.clone(),
                    origin,
                    member_id: s.member_id(),
                    society_id: s.society_id(),
                    role: s.role(),
                    signing_public_key: s.keys().signing.public_key(),
                    age_recipient: s.keys().age.recipient().to_string(),
                    root_fingerprint: root_fingerprint.clone(),
                };
                let state = authenticator
                    .to_secret_bytes()
                    .map_err(|e| ClientError::Keystore(format!("the authenticator state: {e}")))?;
                (
                    Keystore::seal_authenticator(&owner, &state, &pass, *work_factor)?,
                    s.member_id(),
                    s.society_id(),
                    s.role(),
                )
            };
            ks.save_new(&path)?;
            print(
                &cli,
                &serde_json::json!({"member_id": member_id, "society_id": society_id, "role": role}),
                || {
                    format!(
                        "enrolled as {} of society {} (member {})\nkeystore: {}",
                        role.as_str(),
                        society_id,
                        member_id,
                        path.display()
                    )
                },
            )
        }
        Command::Login => {
            let s = open_session(&cli).await?;
            print(
                &cli,
                &serde_json::json!({"member_id": s.member_id(), "role": s.role()}),
                || format!("signed in as {} ({})", s.member_id(), s.role().as_str()),
            )
        }
        Command::Whoami => {
            let ks = Keystore::load(&keystore_path(&cli))?;
            let owner = owner_of(&ks)?;
            let fp = rfl_client::trust::keys_fingerprint(
                &owner.signing_public_key,
                &AgeRecipient::parse(&owner.age_recipient)?,
            );
            print(
                &cli,
                &serde_json::json!({"server": ks.server, "member_id": ks.member_id, "society_id": ks.society_id,
                    "role": ks.role, "keys_fingerprint": fp, "root_fingerprint": ks.root_fingerprint}),
                || {
                    format!(
                        "member {} ({}) of society {} at {}\nyour keys' fingerprint (read it out to your admin): {fp}",
                        ks.member_id,
                        ks.role.as_str(),
                        ks.society_id,
                        ks.server
                    )
                },
            )
        }
        Command::Certify {
            member,
            fingerprint,
        } => {
            let s = open_session(&cli).await?;
            s.certify_member(*member, fingerprint).await?;
            print(&cli, &serde_json::json!({"certified": member}), || {
                format!("the keys of member {member} are certified")
            })
        }
        Command::Society(SocietyCmd::Init {
            root_key_out,
            recovery_recipient,
            recovery_identity_out,
        }) => {
            if root_key_out.exists() {
                return Err(ClientError::Invalid(format!(
                    "{} exists already",
                    root_key_out.display()
                )));
            }
            let recipient = match (recovery_recipient, recovery_identity_out) {
                (Some(r), _) => AgeRecipient::parse(r)?,
                (None, Some(out)) => {
                    let id = AgeIdentity::generate();
                    if out.exists() {
                        return Err(ClientError::Invalid(format!("{} exists already", out.display())));
                    }
                    write_private(out, format!("{}\n", id.to_secret_string().expose_secret()).as_bytes())?;
                    id.recipient()
                }
                (None, None) => {
                    return Err(ClientError::Invalid(
                        "give --recovery-recipient (the offline recovery key) or --recovery-identity-out FILE".into(),
                    ))
                }
            };
            let mut s = open_session(&cli).await?;
            let root = s.init_society(&recipient).await?;
            let path = keystore_path(&cli);
            let mut ks = Keystore::load(&path)?;
            let pass = passphrase(false)?;
            let sealed = rfl_crypto::seal_with_passphrase(root.pkcs8_der(), &pass, ks.work_factor)?;
            write_private(root_key_out, &sealed)?;
            let fp = root.public().fingerprint();
            ks.root_fingerprint = Some(fp.clone());
            ks.save(&path)?;
            print(
                &cli,
                &serde_json::json!({"escrow": "set", "recovery_recipient": recipient.to_string(),
                    "root_fingerprint": fp}),
                || {
                    format!(
                        "society escrow key set; it opens only with the recovery key {recipient}\n\
                         society root key written to {} (passphrase-sealed): keep it offline\n\
                         root fingerprint (give it to every member with their enrolment code): {fp}",
                        root_key_out.display()
                    )
                },
            )
        }
        Command::Invite { role } => {
            let role =
                Role::parse(role).ok_or_else(|| ClientError::Invalid("unknown role".into()))?;
            let s = open_session(&cli).await?;
            let c = s.issue_enrolment_code(role).await?;
            print(&cli, &c, || {
                format!(
                    "one-time enrolment code for a {}: {}\n(valid until unix time {}; revoke it with: rfl revoke-code {})",
                    c.role.as_str(),
                    c.code,
                    c.expires_at,
                    c.id
                )
            })
        }
        Command::Codes => {
            let s = open_session(&cli).await?;
            let codes = s.api().enrolment_codes().await?;
            print(&cli, &codes, || {
                let mut out = format!(
                    "{:<64}  {:<14}  {:>12}  {}",
                    "id", "role", "expires_at", "used"
                );
                for c in &codes.codes {
                    out.push_str(&format!(
                        "\n{:<64}  {:<14}  {:>12}  {}",
                        c.id,
                        c.role.as_str(),
                        c.expires_at,
                        if c.used_at.is_some() { "yes" } else { "no" }
                    ));
                }
                out
            })
        }
        Command::RevokeCode { id } => {
            let s = open_session(&cli).await?;
            s.api().revoke_enrolment_code(id).await?;
            print(&cli, &serde_json::json!({"revoked": id}), || {
                format!("enrolment code {id} revoked")
            })
        }
        Command::Case(cmd) => case_cmd(&cli, cmd).await,
        Command::Message(MessageCmd::Add {
            case,
            from,
            to,
            body,
            language,
        }) => {
            let s = open_session(&cli).await?;
            let msg = RedCrossMessage {
                from: person_ref(from)?,
                to: person_ref(to)?,
                date: today(),
                language: language.clone(),
                body: body.clone(),
                delivery_status: Default::default(),
            };
            let id = s.add_message(*case, msg).await?;
            print(&cli, &serde_json::json!({"message_id": id}), || {
                format!("message {id} added")
            })
        }
        Command::Note(NoteCmd::Add { case, text, author }) => {
            let s = open_session(&cli).await?;
            let note = Note {
                author: author.clone(),
                text: text.clone(),
                created: today(),
            };
            let id = s.add_note(*case, note).await?;
            print(&cli, &serde_json::json!({"note_id": id}), || {
                format!("note {id} added")
            })
        }
        Command::Attach {
            case,
            file,
            media_type,
            description,
        } => {
            let s = open_session(&cli).await?;
            let len = std::fs::metadata(file)?.len();
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "attachment".into());
            let pb = progress_bar(len, "bytes");
            let src = std::io::BufReader::new(std::fs::File::open(file)?);
            let id = s
                .attach(*case, src, &name, media_type, description.clone(), |n| {
                    pb.set_position(n)
                })
                .await?;
            pb.finish_and_clear();
            print(&cli, &serde_json::json!({"attachment_id": id}), || {
                format!("attached as {id}")
            })
        }
        Command::Export {
            case,
            out,
            attachments_dir,
        } => {
            let s = open_session(&cli).await?;
            let opened = s.open_case(*case).await?;
            write_private(out, &serde_json::to_vec_pretty(&opened.file)?)?;
            let mut files = 0;
            if let Some(dir) = attachments_dir {
                std::fs::create_dir_all(dir)?;
                for a in &opened.file.attachments {
                    let target = dir.join(format!("{}-{}", a.id, sanitize(&a.record.file_name)));
                    let f = std::fs::File::create(&target)?;
                    s.download_attachment(&opened, a.id, std::io::BufWriter::new(f))
                        .await?;
                    files += 1;
                }
            }
            print(
                &cli,
                &serde_json::json!({"out": out, "attachments": files}),
                || {
                    format!("case written to {} ({files} attachments); it is plaintext: protect or delete it", out.display())
                },
            )
        }
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

async fn case_cmd(cli: &Cli, cmd: &CaseCmd) -> Result<(), ClientError> {
    match cmd {
        CaseCmd::Create(args) => {
            let file = case_from_args(args)?;
            let s = open_session(cli).await?;
            let c = s.create_case(&file).await?;
            print(cli, &c, || {
                format!("case {} created ({})", c.id, c.status.as_str())
            })
        }
        CaseCmd::Import { file, batch_size } => {
            let text = std::fs::read_to_string(file)?;
            let mut files = Vec::new();
            for (n, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let f: CaseFile = serde_json::from_str(line).map_err(|e| {
                    ClientError::Invalid(format!("line {}: not a case file: {e}", n + 1))
                })?;
                files.push(f);
            }
            let s = open_session(cli).await?;
            let pb = progress_bar(files.len() as u64, "cases");
            let r = s
                .import(files, *batch_size, |done| pb.set_position(done as u64))
                .await?;
            pb.finish_and_clear();
            print(
                cli,
                &serde_json::json!({"imported": r.created, "already_present": r.already_present}),
                || {
                    format!(
                        "{} cases imported, {} were there already (from an earlier, interrupted run)",
                        r.created, r.already_present
                    )
                },
            )
        }
        CaseCmd::List { after, limit, all } => {
            let s = open_session(cli).await?;
            let cases = if *all {
                s.list_all_cases().await?
            } else {
                s.list_cases(*after, *limit).await?.cases
            };
            print(cli, &cases, || {
                let mut out = format!(
                    "{:<36}  {:<26}  {:>7}  {:>7}",
                    "case", "status", "records", "version"
                );
                for c in &cases {
                    out.push_str(&format!(
                        "\n{:<36}  {:<26}  {:>7}  {:>7}",
                        c.id.to_string(),
                        c.status.as_str(),
                        c.record_count.unwrap_or(0),
                        c.version
                    ));
                }
                out
            })
        }
        CaseCmd::Show { case } => {
            let s = open_session(cli).await?;
            let opened = s.open_case(*case).await?;
            let value = serde_json::json!({"case": opened.summary, "content": opened.file});
            print(cli, &value, || {
                let f = &opened.file;
                let mut out = format!(
                    "case {}  status {}  version {}\ncategory: {}",
                    opened.summary.id,
                    opened.summary.status.as_str(),
                    opened.summary.version,
                    serde_json::to_value(f.header.category)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                );
                for (i, p) in f.persons.iter().enumerate() {
                    let names: Vec<String> = p
                        .record
                        .person
                        .names
                        .iter()
                        .map(|n| format!("{} {}", n.given, n.family).trim().to_owned())
                        .collect();
                    let role = if p.record.is_enquirer() {
                        "enquirer"
                    } else {
                        "sought"
                    };
                    out.push_str(&format!("\n  [{i}] {role}: {}", names.join(" / ")));
                }
                out.push_str(&format!(
                    "\n{} messages, {} notes, {} attachments",
                    f.messages.len(),
                    f.notes.len(),
                    f.attachments.len()
                ));
                out
            })
        }
        CaseCmd::Update { case, file } => {
            let new: CaseFile = serde_json::from_slice(&std::fs::read(file)?)?;
            let s = open_session(cli).await?;
            let c = s
                .update_case(*case, move |f| {
                    *f = new;
                    Ok(())
                })
                .await?;
            print(cli, &c, || format!("case {} updated", c.id))
        }
        CaseCmd::Status { case, status } => {
            let to = CaseStatus::parse(status)
                .ok_or_else(|| ClientError::Invalid("unknown status".into()))?;
            let s = open_session(cli).await?;
            let c = s.set_status(*case, to).await?;
            print(cli, &c, || {
                format!("case {} is now {}", c.id, c.status.as_str())
            })
        }
    }
}
