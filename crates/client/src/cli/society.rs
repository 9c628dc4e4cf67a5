//! Society administration (society admins): `rfl society init`, `rfl certify`, `rfl invite`,
//! `rfl codes`, `rfl revoke-code`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use rfl_client::keystore::{write_private, Keystore};
use rfl_client::session::rfc3339_utc;
use rfl_client::ClientError;
use rfl_crypto::{AgeIdentity, AgeRecipient, RevocationReason};
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

impl SocietyCmd {
    pub async fn exec(&self, ctx: &Context) -> Result<(), ClientError> {
        match self {
            SocietyCmd::Init(args) => args.exec(ctx).await,
            SocietyCmd::RotateRecovery(args) => args.exec(ctx).await,
            SocietyCmd::CertifyAdmin(args) => args.exec(ctx).await,
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
#[derive(serde::Serialize)]
struct RevokeReport {
    revoked: rfl_client::Revoked,
    rekey: rfl_client::RekeySummary,
    /// Cases of other societies the member holds, by society: theirs to re-key.
    held_elsewhere: Vec<rfl_domain::api::CasesElsewhereDto>,
}

/// `rfl member …`: society members (society admins).
#[derive(Subcommand)]
pub enum MemberCmd {
    /// Revoke a member's keys and suspend them (a departed caseworker, a lost device, a leaked key).
    /// Publishes the society's next signed revocation list: from then on no client wraps a case key
    /// to those keys, and their signatures count only on commits dated before the revocation. Then
    /// re-keys every case they held: a new key epoch whose key they never had. Run it again after
    /// an interruption: it finishes what is left.
    Revoke(RevokeArgs),
    /// A member lost every authenticator (and with it their keys): revoke their keys (device lost),
    /// remove their passkeys, end their sessions, and print a one-time code that enrols them again
    /// as the same member with new keys (`rfl enrol --code`). Then certify the new keys
    /// (`rfl certify`) and re-wrap their cases (`rfl member rewrap`).
    Reset(MemberArg),
    /// After `rfl member reset`, the member's re-enrolment and the certification of their new keys:
    /// re-wrap every case still wrapped to their lost keys, from the society escrow key opened with
    /// the offline recovery identity. Each case gets a new key epoch that the lost keys cannot open,
    /// and the member gets the keys of every earlier epoch back. Run it again after an
    /// interruption: it finishes what is left.
    Rewrap(RewrapArgs),
}

#[derive(Args)]
pub struct MemberArg {
    member: MemberId,
}

#[derive(Args)]
pub struct RewrapArgs {
    member: MemberId,
    /// The society's offline recovery identity (age identity file).
    #[arg(long, value_name = "FILE")]
    recovery_identity: PathBuf,
}

/// The lines of a re-key summary about holders left out and cases not re-keyed.
pub(super) fn left_out_and_skipped(k: &rfl_client::RekeySummary) -> String {
    let mut out = String::new();
    for (m, n) in &k.left_out {
        out.push_str(&format!(
            "\nholder {m} was left out of {}: their keys are not certified \
             (or were revoked), or their account is suspended; grant the cases again \
             once they may hold them",
            super::counted(*n, "case")
        ));
    }
    for c in &k.skipped {
        out.push_str(&format!("\ncase {} was NOT re-keyed: {}", c.case, c.reason));
    }
    out
}

/// Fails when cases were skipped because what the server served for them does not verify.
pub(super) fn fail_on_skipped(k: &rfl_client::RekeySummary, what: &str) -> Result<(), ClientError> {
    if k.skipped.is_empty() {
        return Ok(());
    }
    Err(ClientError::Tampered(format!(
        "{} case(s) {what}: what the server served for them does not verify (listed above)",
        k.skipped.len()
    )))
}

#[derive(Args)]
pub struct RevokeArgs {
    member: MemberId,
    /// Why: departed, device_lost, key_compromise, superseded or unspecified.
    #[arg(long, default_value = "departed")]
    reason: String,
}

impl MemberCmd {
    pub async fn exec(&self, ctx: &Context) -> Result<(), ClientError> {
        match self {
            MemberCmd::Revoke(args) => {
                let reason = RevocationReason::parse(&args.reason).ok_or_else(|| {
                    ClientError::Invalid(
                        "unknown reason: give departed, device_lost, key_compromise, superseded or \
                         unspecified"
                            .into(),
                    )
                })?;
                let s = ctx.open_session().await?;
                let revoked = s.revoke_member(args.member, reason).await?;
                let started = std::time::Instant::now();
                let pb = super::counter("cases re-keyed");
                let rekey = s
                    .rekey_member_cases(args.member, |n| pb.set_position(n as u64))
                    .await;
                pb.finish_and_clear();
                let rekey = rekey.inspect_err(|_| {
                    eprintln!(
                        "member {} is revoked and suspended, but re-keying their cases failed: run \
                         the same command again to finish it",
                        args.member
                    );
                })?;
                let secs = started.elapsed().as_secs_f64();
                let held_elsewhere = s.member_cases_elsewhere(args.member).await?;
                let r = RevokeReport {
                    revoked,
                    rekey,
                    held_elsewhere,
                };
                ctx.print(&r, || {
                    let elsewhere = &r.held_elsewhere;
                    let (r, k) = (&r.revoked, &r.rekey);
                    let listed = match r.list_number {
                        Some(n) => format!("their keys are on revocation list {n}"),
                        None => "their keys were already on the revocation list".to_owned(),
                    };
                    let suspended = if r.suspended {
                        "suspended"
                    } else {
                        "already suspended"
                    };
                    let mut out = format!(
                        "member {} revoked: {listed}; account {suspended}.\n\
                         {} they held re-keyed in {secs:.1} s: nothing written to them from now on \
                         opens with any key they kept. What they already read stays read \
                         (docs/threat-model.md).",
                        r.member,
                        super::counted(k.rekeyed, "case")
                    );
                    out.push_str(&left_out_and_skipped(k));
                    for e in elsewhere {
                        out.push_str(&format!(
                            "\nthey also hold {} of society {} (transferred with access kept): \
                             only that society can re-key them; tell its admins to run `rfl \
                             society revoked-holders --rekey`",
                            super::counted(usize::try_from(e.cases).unwrap_or(usize::MAX), "case"),
                            e.society_id
                        ));
                    }
                    out
                })?;
                fail_on_skipped(&r.rekey, "the member held were not re-keyed")
            }
            MemberCmd::Reset(a) => {
                let s = ctx.open_session().await?;
                let c = s.reset_member(a.member).await?;
                ctx.print(&c, || {
                    format!(
                        "member {m} reset: their keys are revoked (device lost), their passkeys \
                         removed, their sessions ended.\n\
                         one-time code that enrols them again, as the same member: {}\n\
                         (valid until {}). Give it to them through a trusted channel, with the \
                         root fingerprint; they run `rfl enrol --code CODE --root-fingerprint FP`. \
                         Then certify their new keys (`rfl certify {m} --fingerprint FP`) and run \
                         `rfl member rewrap {m} --recovery-identity FILE`.",
                        c.code,
                        rfc3339_utc(c.expires_at),
                        m = a.member,
                    )
                })
            }
            MemberCmd::Rewrap(a) => {
                let recovery = AgeIdentity::from_identity_file(&std::fs::read_to_string(
                    &a.recovery_identity,
                )?)?;
                let s = ctx.open_session().await?;
                let started = std::time::Instant::now();
                let pb = super::counter("cases re-wrapped");
                let done = s
                    .rewrap_member_cases(a.member, &recovery, |n| pb.set_position(n as u64))
                    .await;
                pb.finish_and_clear();
                let k = done?;
                let secs = started.elapsed().as_secs_f64();
                ctx.print(&k, || {
                    let mut out = format!(
                        "{} of member {} re-wrapped in {secs:.1} s: each at a new key epoch their \
                         lost keys cannot open, with every earlier epoch's key wrapped to their new \
                         keys.",
                        super::counted(k.rekeyed, "case"),
                        a.member
                    );
                    out.push_str(&left_out_and_skipped(&k));
                    out
                })?;
                fail_on_skipped(&k, "of the member were not re-wrapped")
            }
        }
    }
}

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
