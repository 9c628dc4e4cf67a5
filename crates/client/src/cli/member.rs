//! Society members (society admins): `rfl member revoke`, `rfl member reset`, `rfl member rewrap`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use rfl_client::session::rfc3339_utc;
use rfl_client::ClientError;
use rfl_crypto::{AgeIdentity, RevocationReason};
use rfl_domain::MemberId;

use super::Context;

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
