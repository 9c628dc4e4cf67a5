//! `rfl keys rotate`: a person rotates their own keys (docs/crypto.md, "Rotating a person's keys").
//! Run it once to prepare new keys (read their fingerprint out to an admin, who runs `rfl certify`),
//! and again once they are certified: every case key is re-wrapped to them and the old keys are
//! forgotten. Running it again after a failure finishes the job.

use clap::Subcommand;
use rfl_client::keystore::{KeyHolder, Keystore};
use rfl_client::session::{KeyRotation, RotationReport};
use rfl_client::ClientError;

use super::{passphrase, Context};

#[derive(Subcommand)]
pub enum KeysCmd {
    /// Rotate your keys (a lost or suspected device or key, or routine). First run: new keys are
    /// prepared; read their fingerprint out to a society admin, who runs `rfl certify YOUR_ID
    /// --fingerprint FP` (or `rfl society certify-admin` for an admin). Second run: every case key
    /// is re-wrapped to the new keys (each case gets a new key epoch) and the old keys are dropped.
    Rotate,
}

impl KeysCmd {
    pub async fn exec(&self, ctx: &Context) -> Result<(), ClientError> {
        match self {
            KeysCmd::Rotate => rotate(ctx).await,
        }
    }
}

async fn rotate(ctx: &Context) -> Result<(), ClientError> {
    let pass = passphrase()?;
    let mut s = ctx.open_session_with(&pass).await?;
    let path = ctx.keystore_path();
    // Read after signing in (the sign-in re-seals the authenticator's counter).
    let mut ks = Keystore::load(path)?;
    if ks.holder != KeyHolder::DevAuthenticator {
        return Err(ClientError::Invalid(
            "only a person's keys are rotated this way (a sync agent enrols a new key pair)".into(),
        ));
    }
    // A rotation that finished (the authenticators hold only the new keys) but stopped before this
    // keystore recorded them.
    if s.retired_keys().is_none() && s.prepared_keys().is_none() && !ks_current(&ks, &s) {
        ks.record_rotated(s.keys());
        ks.save(path)?;
        return ctx.print(
            &serde_json::json!({"stage": "switched", "finished": true}),
            || "your key rotation is complete: your keystore now records your new keys".into(),
        );
    }
    let bar = indicatif::ProgressBar::new_spinner();
    let outcome = s
        .rotate_keys(|n| bar.set_message(format!("{n} case(s) re-keyed to your new keys")))
        .await;
    bar.finish_and_clear();
    let outcome = outcome?;
    match &outcome {
        KeyRotation::AwaitingCertificate { .. } => {
            if let Some(next) = s.prepared_keys() {
                ks.record_next(next);
                ks.save(path)?;
            }
        }
        KeyRotation::Switched(r) if r.finished => {
            ks.record_rotated(s.keys());
            ks.save(path)?;
        }
        KeyRotation::Switched(_) => {
            if let Some(old) = s.retired_keys() {
                // Signing in takes the bundle with the old keys on top until the rotation is done.
                if !ks.matches(old) {
                    return Err(ClientError::Invalid(
                        "your keystore does not record the keys you rotate away from".into(),
                    ));
                }
            }
            ks.record_next(s.keys());
            ks.save(path)?;
        }
    }
    let member = s.member_id();
    ctx.print(&outcome, || match &outcome {
        KeyRotation::AwaitingCertificate { fingerprint } => format!(
            "new keys prepared and registered; your current keys stay in use until they are certified.\n\
             Read this fingerprint out to a society admin, who runs:\n  \
             rfl certify {member} --fingerprint {fingerprint}\n\
             (for an admin: rfl society certify-admin {member} --fingerprint {fingerprint} --root-key FILE)\n\
             then run `rfl keys rotate` again."
        ),
        KeyRotation::Switched(r) => summary(r),
    })?;
    match &outcome {
        KeyRotation::Switched(r) if !r.finished => Err(ClientError::Invalid(
            "some cases were not re-wrapped (see above): your old keys are kept until they are; \
             run `rfl keys rotate` again"
                .into(),
        )),
        _ => Ok(()),
    }
}

/// Whether the keystore's recorded keys are the session's own.
fn ks_current(ks: &Keystore, s: &rfl_client::Session) -> bool {
    let mut only_current = ks.clone();
    only_current.next_keys = None;
    only_current.matches(s.keys())
}

fn summary(r: &RotationReport) -> String {
    let mut out = format!(
        "your new keys ({}) are in use: {} case(s) re-keyed to them",
        r.fingerprint, r.rekeyed
    );
    if r.retried > 0 {
        out.push_str(&format!(
            "; {} request(s) retried (cases changed meanwhile)",
            r.retried
        ));
    }
    for (m, n) in &r.left_out {
        out.push_str(&format!(
            "\nholder {m} was left out of {n} case(s): their keys are not certified (grant them again once they are)"
        ));
    }
    for c in &r.skipped {
        out.push_str(&format!("\ncase {} skipped: {}", c.case, c.reason));
    }
    if r.finished {
        out.push_str(&format!(
            "\nyour old keys are forgotten: {} authenticator(s) now hold only the new ones",
            r.authenticators
        ));
    }
    out
}
