//! Society administration (society admins): `rfl society init`, `rfl certify`, `rfl invite`,
//! `rfl codes`, `rfl revoke-code`. Members (`rfl member …`) are in `member.rs`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use rfl_client::keystore::{write_private, Keystore};
use rfl_client::session::rfc3339_utc;
use rfl_client::ClientError;
use rfl_crypto::{AgeIdentity, AgeRecipient};
use rfl_domain::{MemberId, Role};
use secrecy::{ExposeSecret, SecretString};

use super::{check_new_passphrase, passphrase, Context, MIN_WORK_FACTOR};

#[derive(Subcommand)]
pub enum SocietyCmd {
    /// Create the society escrow key, wrapped to the offline recovery key, and the society's signing
    /// root, which certifies it and you. Run once, by the first admin. Prints the root fingerprint that
    /// every member is given with their enrolment code.
    Init(InitArgs),
    /// Move the society's escrow key to a new offline recovery key: one unwrap with the old recovery
    /// identity, one wrap to the new key. No case changes, however many there are. The old recovery
    /// key opens nothing written from then on; destroy it once the new one is stored safely.
    RotateRecovery(RotateRecoveryArgs),
    /// Pin the society root's fingerprint in this keystore after enrolment (an admin of the
    /// society on the hub, who enrolled before the society's trust material reached it): the
    /// server must serve that root, or nothing is pinned.
    PinRoot { fingerprint: String },
    /// Certify another society admin's keys with the society root key (after comparing the
    /// fingerprint they read out, as for `rfl certify`): only the root issues admin certificates.
    CertifyAdmin(CertifyAdminArgs),
    /// Replace the society escrow key (suspected compromise): every case key of the society, every
    /// key epoch, is re-wrapped here from the old escrow key to a new one, in batches. Interrupted,
    /// run the same command again: it resumes where it stopped. The old key stays the society's
    /// until every case opens with the new one; then it is retired and its certificate revoked.
    RotateEscrow(RotateEscrowArgs),
    /// Replace the society's signing root (suspected, or on schedule): the old root signs the new
    /// one, which re-certifies every admin and the escrow key and signs the next revocation list,
    /// all stored at once. Members keep the fingerprint they pinned: their clients follow the
    /// succession. Keep the new root key offline, as the old one.
    RotateRoot(super::root::RotateRootArgs),
    /// Members of other societies, revoked there, who still hold cases of yours (a transfer that
    /// kept the sender's access): each one's revocation is checked on their society's signed list,
    /// through the pinned Movement root. With `--rekey`, their cases here get a new key epoch
    /// without them (run it again to finish after an interruption).
    RevokedHolders(super::revoked::RevokedHoldersArgs),
}

#[derive(Args)]
pub struct RotateEscrowArgs {
    /// The society's recovery identity file (an age identity, or an age plugin's identity file
    /// with its `# recipient:` line): it opens the old escrow key, and the new one on a resumed run.
    #[arg(long)]
    recovery_identity: PathBuf,
    /// The society root key file written by `rfl society init` (sealed with that keystore's
    /// passphrase), to certify the new escrow key. Needed to start a rotation, not to resume one.
    #[arg(long)]
    root_key: Option<PathBuf>,
}

#[derive(Args)]
pub struct CertifyAdminArgs {
    member: MemberId,
    /// The fingerprint the new admin read out (`rfl whoami` on their machine).
    #[arg(long)]
    fingerprint: String,
    /// The society root key file written by `rfl society init` (sealed with that keystore's
    /// passphrase).
    #[arg(long)]
    root_key: PathBuf,
}

#[derive(Args)]
pub struct RotateRecoveryArgs {
    /// The current recovery identity file (an age identity, or an age plugin's identity file with
    /// its `# recipient:` line, e.g. age-plugin-yubikey's).
    #[arg(long)]
    recovery_identity: PathBuf,
    /// The new recovery key's age recipient (e.g. from age-plugin-yubikey).
    #[arg(long)]
    new_recovery_recipient: Option<String>,
    /// Or: generate the new recovery identity here and write it to this file (move it offline).
    #[arg(long)]
    new_recovery_identity_out: Option<PathBuf>,
}

#[derive(Args)]
pub struct InitArgs {
    /// Where to write the society root key (passphrase-sealed). Keep it offline.
    #[arg(long)]
    root_key_out: PathBuf,
    /// The recovery key's age recipient (e.g. from age-plugin-yubikey). If absent, a recovery identity
    /// is generated and written to --recovery-identity-out: move it offline.
    #[arg(long)]
    recovery_recipient: Option<String>,
    #[arg(long)]
    recovery_identity_out: Option<PathBuf>,
}

/// `rfl society pin-root`: the server must serve the root `fingerprint` names (or a root its
/// successions lead to) before it is kept in the keystore; a keystore that pins another root
/// already keeps it.
async fn pin_root(ctx: &Context, fingerprint: &str) -> Result<(), ClientError> {
    let fp = fingerprint.trim().to_ascii_lowercase();
    if fp.len() != 32 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ClientError::Invalid(
            "a fingerprint is 32 hexadecimal digits".into(),
        ));
    }
    let path = ctx.keystore_path();
    match Keystore::load(path)?.root_fingerprint {
        Some(held) if held == fp => {}
        Some(held) => {
            return Err(ClientError::Invalid(format!(
                "this keystore pins another society root already ({held})"
            )))
        }
        None => {
            let mut s = ctx.open_session().await?;
            s.pin_root(&fp).await?;
            // Loaded again: signing in may have sealed the keystore anew.
            let mut ks = Keystore::load(path)?;
            ks.root_fingerprint = Some(fp.clone());
            ks.save(path)?;
        }
    }
    ctx.print(&serde_json::json!({"root_fingerprint": fp}), || {
        format!("society root pinned: {fp}")
    })
}

impl SocietyCmd {
    pub async fn exec(&self, ctx: &Context) -> Result<(), ClientError> {
        match self {
            SocietyCmd::Init(args) => args.exec(ctx).await,
            SocietyCmd::RotateRecovery(args) => args.exec(ctx).await,
            SocietyCmd::CertifyAdmin(args) => args.exec(ctx).await,
            SocietyCmd::PinRoot { fingerprint } => pin_root(ctx, fingerprint).await,
            SocietyCmd::RotateEscrow(args) => args.exec(ctx).await,
            SocietyCmd::RotateRoot(args) => args.exec(ctx).await,
            SocietyCmd::RevokedHolders(args) => args.exec(ctx).await,
        }
    }
}

/// Where the recovery key comes from.
enum Recovery<'a> {
    /// `--recovery-recipient`: a key held offline already.
    Given(AgeRecipient),
    /// `--recovery-identity-out`: generated here, to be written to that file.
    Generated(&'a Path, AgeIdentity),
}

impl InitArgs {
    /// Everything that can be checked here is checked before the server is asked for anything, and
    /// nothing is written before the step that needs it: a run that fails leaves no file behind (and
    /// can be run again) unless the server has set the escrow key, which opens only with the recovery
    /// identity.
    async fn exec(&self, ctx: &Context) -> Result<(), ClientError> {
        let root_key_out = self.root_key_out.as_path();
        let recovery = match (&self.recovery_recipient, &self.recovery_identity_out) {
            (Some(r), _) => Recovery::Given(AgeRecipient::parse(r)?),
            (None, Some(out)) => Recovery::Generated(out, AgeIdentity::generate()),
            (None, None) => {
                return Err(ClientError::Invalid(
                    "give --recovery-recipient (the offline recovery key) or --recovery-identity-out FILE".into(),
                ))
            }
        };
        for out in std::iter::once(root_key_out).chain(match &recovery {
            Recovery::Generated(out, _) => Some(*out),
            Recovery::Given(_) => None,
        }) {
            if out.exists() {
                return Err(ClientError::Invalid(format!(
                    "{} exists already",
                    out.display()
                )));
            }
        }
        if matches!(&recovery, Recovery::Generated(out, _) if *out == root_key_out) {
            return Err(ClientError::Invalid(
                "--root-key-out and --recovery-identity-out must be different files".into(),
            ));
        }
        // The keystore's passphrase also seals the root key: it is held to the rule for a new one.
        let pass = passphrase()?;
        check_new_passphrase(&pass)?;
        let mut s = ctx.open_session_with(&pass).await?;

        let recipient = match &recovery {
            Recovery::Given(r) => r.clone(),
            Recovery::Generated(_, id) => id.recipient(),
        };
        // Once the escrow key is set, the recovery identity is the only way to it: a generated one is
        // on disk before the server gets the escrow key, and removed if the server refuses it.
        if let Recovery::Generated(out, id) = &recovery {
            write_private(
                out,
                format!("{}\n", id.to_secret_string().expose_secret()).as_bytes(),
            )?;
        }
        let escrow = match s.set_society_escrow(&recipient).await {
            Ok(escrow) => escrow,
            Err(e) => {
                if let Recovery::Generated(out, _) = &recovery {
                    forget_recovery_identity(out, &e);
                }
                return Err(e);
            }
        };
        let root = match s.create_society_root(&escrow).await {
            Ok(root) => root,
            Err(e) => {
                if let Recovery::Generated(out, _) = &recovery {
                    eprintln!(
                        "rfl: the society escrow key is set; it opens only with the recovery identity in {}: keep it",
                        out.display()
                    );
                }
                return Err(e);
            }
        };
        let path = ctx.keystore_path();
        let mut ks = Keystore::load(path)?;
        // A keystore made before the minimum existed may have a smaller work factor: not for the root.
        let work_factor = ks.work_factor.max(MIN_WORK_FACTOR);
        let sealed = rfl_crypto::seal_with_passphrase(root.pkcs8_der(), &pass, work_factor)?;
        write_private(root_key_out, &sealed)?;
        let fp = root.public().fingerprint();
        s.pin_root(&fp).await?;
        ks.root_fingerprint = Some(fp.clone());
        ks.save(path)?;
        ctx.print(
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
}

/// The society root key in `path`, sealed with the keystore's passphrase `pass`.
pub(super) fn open_root_key(
    path: &Path,
    pass: &SecretString,
) -> Result<rfl_crypto::SocietyRootKey, ClientError> {
    let sealed = std::fs::read(path)?;
    let der = rfl_crypto::open_with_passphrase(&sealed, pass).map_err(|_| {
        ClientError::Invalid(format!(
            "{} does not open with this keystore's passphrase",
            path.display()
        ))
    })?;
    Ok(rfl_crypto::SocietyRootKey::from_pkcs8(&der)?)
}

impl CertifyAdminArgs {
    async fn exec(&self, ctx: &Context) -> Result<(), ClientError> {
        let pass = passphrase()?;
        let root = open_root_key(&self.root_key, &pass)?;
        let s = ctx.open_session_with(&pass).await?;
        let done = s
            .certify_admin(self.member, &self.fingerprint, &root)
            .await?;
        let member = self.member;
        ctx.print(
            &serde_json::json!({"certified_admin": member, "outcome": done}),
            || match done {
                rfl_client::trust::Certification::Certified => {
                    format!("the keys of admin {member} are certified by the society root")
                }
                rfl_client::trust::Certification::Rotated => format!(
                    "admin {member} is switched to their new keys, certified by the society root; \
                     their old keys are revoked (they run `rfl keys rotate` again to re-key their cases)"
                ),
            },
        )
    }
}

impl RotateEscrowArgs {
    async fn exec(&self, ctx: &Context) -> Result<(), ClientError> {
        let recovery =
            AgeIdentity::from_identity_file(&std::fs::read_to_string(&self.recovery_identity)?)?;
        let (s, root) = match &self.root_key {
            Some(path) => {
                let pass = passphrase()?;
                let sealed = std::fs::read(path)?;
                let der = rfl_crypto::open_with_passphrase(&sealed, &pass).map_err(|_| {
                    ClientError::Invalid(format!(
                        "{} does not open with this keystore's passphrase",
                        path.display()
                    ))
                })?;
                let root = rfl_crypto::SocietyRootKey::from_pkcs8(&der)?;
                (ctx.open_session_with(&pass).await?, Some(root))
            }
            None => (ctx.open_session().await?, None),
        };
        let started = std::time::Instant::now();
        let pb = super::progress_bar(0, "escrow wrappings");
        let report = s
            .rotate_escrow(&recovery, root.as_ref(), |p| {
                pb.set_length(p.total.max(p.done));
                pb.set_position(p.done);
            })
            .await;
        pb.finish_and_clear();
        let report = match report {
            Ok(r) => r,
            Err(e) => {
                // Only a job that started can be resumed.
                if let Ok(Some(job)) = s.escrow_rotation().await {
                    if job.completed_at.is_none() {
                        eprintln!(
                            "the escrow-key rotation stopped ({} of {} moved): the old key is still \
                             the society's and every case opens with it; run the same command again \
                             to resume",
                            job.done, job.total
                        );
                    }
                }
                return Err(e);
            }
        };
        let secs = started.elapsed().as_secs_f64();
        let unopened = report.unopened.len();
        ctx.print(&report, || {
            let r = &report;
            let mut out = if r.completed {
                format!(
                    "the society escrow key is now {} (generation {}): {} of the old key re-wrapped \
                     {}in {secs:.1} s ({} this run; {} opened, {} made).\n\
                     The old escrow key is retired: {}. Copies of old wrappings (backups) still open \
                     with it: destroy the old escrow identity's backups.",
                    r.recipient,
                    r.new_gen,
                    super::counted(usize::try_from(r.done).unwrap_or(usize::MAX), "wrapping"),
                    if r.resumed { "(resumed) " } else { "" },
                    r.moved,
                    super::counted(r.old_batches, "old batch header"),
                    super::counted(r.new_batches, "new batch"),
                    match r.revocation_list {
                        Some(n) => format!("its certificate is on revocation list {n}"),
                        None => "its certificate was already revoked".to_owned(),
                    }
                )
            } else {
                format!(
                    "the escrow-key rotation is NOT complete: {} of {} moved; the old key stays the \
                     society's.",
                    r.done, r.total
                )
            };
            for u in &r.unopened {
                out.push_str(&format!(
                    "\ncase {} (key epoch {}): its escrow wrapping was NOT re-wrapped: {}",
                    u.case, u.key_epoch, u.reason
                ));
            }
            out
        })?;
        if unopened > 0 {
            return Err(ClientError::Tampered(format!(
                "{unopened} escrow wrapping(s) do not open with the old escrow key (listed above): \
                 the rotation stays open and the old key the society's"
            )));
        }
        Ok(())
    }
}

impl RotateRecoveryArgs {
    async fn exec(&self, ctx: &Context) -> Result<(), ClientError> {
        let old =
            AgeIdentity::from_identity_file(&std::fs::read_to_string(&self.recovery_identity)?)?;
        let recovery = match (
            &self.new_recovery_recipient,
            &self.new_recovery_identity_out,
        ) {
            (Some(r), None) => Recovery::Given(AgeRecipient::parse(r)?),
            (None, Some(out)) => Recovery::Generated(out, AgeIdentity::generate()),
            _ => {
                return Err(ClientError::Invalid(
                    "give one of --new-recovery-recipient (the new offline recovery key) or \
                     --new-recovery-identity-out FILE"
                        .into(),
                ))
            }
        };
        if let Recovery::Generated(out, _) = &recovery {
            if out.exists() {
                return Err(ClientError::Invalid(format!(
                    "{} exists already",
                    out.display()
                )));
            }
        }
        let s = ctx.open_session().await?;
        let (recipient, check) = match &recovery {
            Recovery::Given(r) => (r.clone(), None),
            Recovery::Generated(_, id) => (id.recipient(), Some(id)),
        };
        let rotation = s.prepare_recovery_rotation(&old, &recipient, check).await?;
        // As at `society init`: a generated identity is on disk before the server holds a wrapping
        // only it opens, and removed if the server refuses the new wrapping.
        if let Recovery::Generated(out, id) = &recovery {
            write_private(
                out,
                format!("{}\n", id.to_secret_string().expose_secret()).as_bytes(),
            )?;
        }
        if let Err(e) = s.send_recovery_rotation(&rotation).await {
            if let Recovery::Generated(out, _) = &recovery {
                forget_recovery_identity(out, &e);
            }
            return Err(e);
        }
        ctx.print(
            &serde_json::json!({"recovery_recipient": recipient.to_string()}),
            || {
                format!(
                    "the server now holds the society escrow key wrapped to the recovery key \
                     {recipient} only; copies of the old wrapping (backups) still open with the old \
                     recovery key: destroy it once the new one is stored safely"
                )
            },
        )
    }
}

/// Setting the escrow key failed. If the server refused it (a 4xx answer), the recovery identity
/// generated for it opens nothing: it is removed, so a new run can write the file again. If the server
/// could not be asked, failed, or its answer was lost, it may have set the key: the identity stays.
fn forget_recovery_identity(out: &Path, e: &ClientError) {
    if !matches!(e, ClientError::Api { status, .. } if (400..500).contains(status)) {
        eprintln!(
            "rfl: the recovery identity stays in {}: the server may have set the escrow key",
            out.display()
        );
        return;
    }
    if let Err(rm) = std::fs::remove_file(out) {
        eprintln!(
            "rfl: could not remove {}, a recovery identity that opens nothing: {rm}",
            out.display()
        );
    }
}

#[derive(Args)]
pub struct CertifyArgs {
    member: MemberId,
    /// The fingerprint the member read out (`rfl whoami` on their machine).
    #[arg(long)]
    fingerprint: String,
}

impl CertifyArgs {
    pub async fn exec(&self, ctx: &Context) -> Result<(), ClientError> {
        let member = self.member;
        let s = ctx.open_session().await?;
        let done = s.certify_member(member, &self.fingerprint).await?;
        ctx.print(
            &serde_json::json!({"certified": member, "outcome": done}),
            || match done {
                rfl_client::trust::Certification::Certified => {
                    format!("the keys of member {member} are certified")
                }
                rfl_client::trust::Certification::Rotated => format!(
                    "member {member} is switched to their new keys, now certified; their old keys \
                     are revoked (they run `rfl keys rotate` again to re-key their cases)"
                ),
            },
        )
    }
}

/// What `rfl member revoke` did: the revocation, and the re-keying of the member's cases.
#[derive(Args)]
pub struct InviteArgs {
    #[arg(long, default_value = "caseworker")]
    role: String,
}

impl InviteArgs {
    pub async fn exec(&self, ctx: &Context) -> Result<(), ClientError> {
        let role =
            Role::parse(&self.role).ok_or_else(|| ClientError::Invalid("unknown role".into()))?;
        let s = ctx.open_session().await?;
        let c = s.issue_enrolment_code(role).await?;
        ctx.print(&c, || {
            format!(
                "one-time enrolment code for a {}: {}\n(valid until {}; revoke it with: rfl revoke-code {})",
                c.role.as_str(),
                c.code,
                rfc3339_utc(c.expires_at),
                c.id
            )
        })
    }
}

/// `rfl codes`: the society's enrolment codes of the last 30 days (their ids, never the codes).
pub async fn codes(ctx: &Context) -> Result<(), ClientError> {
    let s = ctx.open_session().await?;
    let codes = s.api().enrolment_codes().await?;
    ctx.print(&codes, || {
        let mut out = format!(
            "{:<64}  {:<14}  {:<20}  {}",
            "id", "role", "expires_at (UTC)", "used"
        );
        for c in &codes.codes {
            out.push_str(&format!(
                "\n{:<64}  {:<14}  {:<20}  {}",
                c.id,
                c.role.as_str(),
                rfc3339_utc(c.expires_at),
                if c.used_at.is_some() { "yes" } else { "no" }
            ));
        }
        out
    })
}

#[derive(Args)]
pub struct RevokeCodeArgs {
    id: String,
}

impl RevokeCodeArgs {
    pub async fn exec(&self, ctx: &Context) -> Result<(), ClientError> {
        let id = &self.id;
        let s = ctx.open_session().await?;
        s.api().revoke_enrolment_code(id).await?;
        ctx.print(&serde_json::json!({"revoked": id}), || {
            format!("enrolment code {id} revoked")
        })
    }
}
