//! Part of [`super::Session`]: rotating this person's own keys (`rfl keys rotate`; docs/crypto.md,
//! "Rotating a person's keys").
//!
//! 1. **Prepare.** New keys are generated and kept with the current ones in the bundle every
//!    authenticator holds (before the server hears of them: a run that stops here still has them),
//!    then their public halves are registered (`PUT /v1/me/next-keys`). The person reads their
//!    fingerprint out to an admin.
//! 2. **Certify** (an admin, `rfl society certify`): the certificate of the new keys, with the
//!    revocation list that retires the current ones, switches the member to them.
//! 3. **Finish** (this person again): the new keys must be the ones the pinned root certifies.
//!    Every case still holding a key wrapped to the old keys is re-keyed (a new epoch, so that
//!    nothing written from now on opens with the old keys) with every earlier epoch's key re-wrapped
//!    to the new keys, in one request per page. Only when none is left do the authenticators forget
//!    the old keys. Running it again finishes what a crash left.

use std::collections::BTreeMap;

use super::rekey::{holder_batches, split_by_size, Keep, SkippedCase};
use super::*;
use crate::keystore::DeviceKeys;
use crate::trust::keys_fingerprint;

/// Cases a page when re-wrapping (each is opened, so pages are small).
const ROTATE_PAGE: i64 = 100;
/// Passes over the cases before giving up on cases that keep changing under the re-key.
const ROTATE_PASSES: usize = 5;

/// Where a rotation of this person's keys stands.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum KeyRotation {
    /// New keys are prepared and registered: an admin must certify them, comparing the fingerprint
    /// the person reads out to them.
    AwaitingCertificate { fingerprint: String },
    /// The new keys are in use; see the report.
    Switched(RotationReport),
}

/// What finishing a rotation did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RotationReport {
    /// The fingerprint of the keys now in use.
    pub fingerprint: String,
    /// Cases moved to a new key epoch, with every earlier epoch's key re-wrapped to the new keys.
    pub rekeyed: usize,
    /// Holders left out of those new epochs because this client could not verify their keys as
    /// certified and unrevoked, with how many cases each lost (grant them again once certified).
    pub left_out: BTreeMap<uuid::Uuid, usize>,
    /// Requests refused because a case changed meanwhile, each retried.
    pub retried: usize,
    /// Cases not re-wrapped because what the server served for them does not verify.
    pub skipped: Vec<SkippedCase>,
    /// Whether the old keys are forgotten (no case key is wrapped to them any more): false while
    /// any case is skipped or left.
    pub finished: bool,
    /// Authenticators whose wrapping of the keys was replaced (the old keys left out).
    pub authenticators: usize,
}

/// One case checked and opened for its re-wrap.
struct Prepared {
    head: CommitBody,
    hash: CommitHash,
    keep: Vec<Keep>,
    left_out: Vec<uuid::Uuid>,
    /// Every epoch's data key, 1 up to the current one (inclusive).
    keys: Vec<(u32, DataKey)>,
}

impl Session {
    /// Rotates this person's keys, one stage per call: prepares and registers new keys (then waits
    /// for an admin's certificate), or, once the server has switched to them, re-wraps every case
    /// key still wrapped to the old keys and drops those. `progress` gets the number of cases
    /// re-keyed so far.
    pub async fn rotate_keys(&mut self, progress: impl Fn(usize)) -> Result<KeyRotation> {
        if self.retired.is_some() {
            return Ok(KeyRotation::Switched(
                self.finish_key_rotation(progress).await?,
            ));
        }
        if self.keys.age.is_plugin() {
            return Err(ClientError::Invalid(
                "rotating keys held by an age plugin (a token) is not supported yet".into(),
            ));
        }
        let next = match self.keys.next() {
            // Prepared by an earlier run: register the same keys again.
            Some(next) => next.clone(),
            None => {
                let bundle = DeviceKeys::from_secret_bytes(&self.keys.to_secret_bytes()?)?
                    .with_next(DeviceKeys::generate()?);
                let vouch = self.keys.signing.public_key();
                self.rewrap_for_all_authenticators(&bundle, &vouch, &self.keys.signing)
                    .await?;
                let bundle = Arc::new(bundle);
                let next = bundle
                    .next()
                    .cloned()
                    .ok_or_else(|| ClientError::Invalid("no next keys prepared".into()))?;
                self.keys = bundle;
                next
            }
        };
        self.api
            .put_next_keys(&NextKeysDto {
                signing_key: next.signing.public_key().as_bytes().to_vec().into(),
                age_recipient: next.age.recipient().to_string(),
            })
            .await?;
        Ok(KeyRotation::AwaitingCertificate {
            fingerprint: keys_fingerprint(&next.signing.public_key(), &next.age.recipient()),
        })
    }

    /// The public keys prepared for a rotation that is waiting for its certificate, if any.
    pub fn prepared_keys(&self) -> Option<&Arc<DeviceKeys>> {
        self.retired.is_none().then(|| self.keys.next()).flatten()
    }

    async fn finish_key_rotation(&mut self, progress: impl Fn(usize)) -> Result<RotationReport> {
        self.reload_members().await?;
        let own = holder_of(&self.keys, self.me.member_id);
        let certified =
            self.with_trust(|t| t.get(*self.me.member_id.as_uuid()).map(|v| v.keys_digest()))?;
        if certified != Some(own.keys_digest) {
            return Err(tampered(
                "the server switched you to your new keys, but your society's root does not \
                 certify them: nothing was re-wrapped",
            ));
        }
        let mut report = self.rewrap_own_cases(progress).await?;
        report.fingerprint =
            keys_fingerprint(&self.keys.signing.public_key(), &self.keys.age.recipient());
        let left = self.api.retired_cases(None, 1).await?;
        if !report.skipped.is_empty() || !left.cases.is_empty() {
            return Ok(report);
        }
        // No case key is wrapped to the old keys any more: the authenticators forget them.
        let retired = self
            .retired
            .clone()
            .ok_or_else(|| ClientError::Invalid("no retired keys".into()))?;
        report.authenticators = self
            .rewrap_for_all_authenticators(
                &self.keys,
                &retired.signing.public_key(),
                &self.keys.signing,
            )
            .await?;
        self.retired = None;
        report.finished = true;
        Ok(report)
    }

    /// Opens a case still holding a key wrapped to the old keys and says how to re-key it.
    async fn prepare_rewrap(
        &self,
        id: CaseId,
        suspended: &HashSet<uuid::Uuid>,
    ) -> Result<Prepared> {
        let opened = self.open_case(id).await?;
        let (_, listed) = self.verified_holders(&opened).await?;
        let nobody = MemberId::from_uuid(uuid::Uuid::nil());
        let (keep, left_out) = self.keepers(&listed, nobody, suspended)?;
        if !keep.iter().any(|k| k.keys.is_none()) {
            return Err(tampered(format!(
                "case {id}: its head does not name you as a holder"
            )));
        }
        let mut keys = self.all_older_keys(&opened)?;
        keys.push((
            opened.summary.key_epoch,
            DataKey::from_bytes(*opened.data_key.expose_bytes()),
        ));
        Ok(Prepared {
            head: self.opened_head(&opened)?,
            hash: opened.head.hash,
            keep,
            left_out,
            keys,
        })
    }

    /// Re-keys every case where this person still has a key wrapped to the keys they rotated away
    /// from, page by page (one request each, one transaction); a page refused because a case
    /// changed meanwhile is read again on a later pass.
    async fn rewrap_own_cases(&self, progress: impl Fn(usize)) -> Result<RotationReport> {
        let suspended = self.suspended_members().await?;
        let sealer = self.sealer()?;
        let mut report = RotationReport::default();
        for pass in 0..ROTATE_PASSES {
            if pass > 0 {
                // Another holder may have rotated their keys meanwhile (see rekey_member_cases).
                self.reload_members().await?;
            }
            let mut after = None;
            let mut refused = 0;
            loop {
                let page = self.api.retired_cases(after, ROTATE_PAGE).await?;
                if page.cases.is_empty() {
                    break;
                }
                let mut prepared = Vec::with_capacity(page.cases.len());
                for c in &page.cases {
                    match self.prepare_rewrap(c.case.id, &suspended).await {
                        Ok(p) => prepared.push(p),
                        // One case the server serves wrong must not stop the others.
                        Err(ClientError::Tampered(reason)) => {
                            if !report.skipped.iter().any(|x| x.case == c.case.id) {
                                report.skipped.push(SkippedCase {
                                    case: c.case.id,
                                    reason,
                                });
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
                for p in &prepared {
                    for m in &p.left_out {
                        *report.left_out.entry(*m).or_default() += 1;
                    }
                }
                let batch = sealer.escrow_batch()?;
                let batches = holder_batches(prepared.iter().flat_map(|p| p.keep.iter()))?;
                let own_key = self.keys.case_key()?;
                let mut cases = Vec::with_capacity(prepared.len());
                for p in &prepared {
                    let mut dto = sealer.seal_rekey(&p.head, p.hash, &p.keep, &batches, &batch)?;
                    dto.own_older_keys = p
                        .keys
                        .iter()
                        .map(|(epoch, key)| {
                            Ok(EpochKeyDto {
                                key_epoch: *epoch,
                                wrapped: wrap_data_key_to_self(
                                    key,
                                    p.head.case_id,
                                    *epoch,
                                    own_key,
                                )?
                                .into(),
                            })
                        })
                        .collect::<Result<Vec<_>>>()?;
                    cases.push(dto);
                }
                for request in split_by_size(cases)? {
                    let n = request.len();
                    let heads = request
                        .iter()
                        .map(|c| {
                            let commit = parse_commit(&c.commit.0)?;
                            Ok((
                                c.case_id,
                                KnownHead {
                                    seq: commit.body().seq,
                                    hash: commit.hash(),
                                },
                            ))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    match self
                        .api
                        .rekey(
                            &RekeyRequest { cases: request },
                            &sealer.escrow_recipient()?,
                        )
                        .await
                    {
                        Ok(r) => {
                            report.rekeyed += r.rekeyed;
                            self.heads.put_many(&heads)?;
                            progress(report.rekeyed);
                        }
                        Err(ClientError::Api { status: 409, .. }) => {
                            refused += n;
                            report.retried += 1;
                        }
                        Err(e) => return Err(e),
                    }
                }
                if let (Some(next), Some(prev)) = (page.next_after, after) {
                    if next.as_uuid().as_bytes() <= prev.as_uuid().as_bytes() {
                        return Err(tampered(
                            "the server's listing of your cases does not move forward",
                        ));
                    }
                }
                match page.next_after {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            if refused == 0 {
                break;
            }
        }
        Ok(report)
    }
}

impl Session {
    /// Step 2, by an admin: sends `cert` (the certificate of the keys `member` registered to rotate
    /// to, already checked against the fingerprint they read out) with the society's next
    /// revocation list, which retires their current keys (`old`, as superseded), signed with the
    /// society root if given (an admin's keys) or else this admin's device key. The server switches
    /// the member to the new keys in one transaction. On 409 (another admin published a list
    /// meanwhile) the list is reloaded and signed again.
    pub(crate) async fn switch_member_keys(
        &self,
        member: MemberId,
        cert: &rfl_crypto::KeyCertificate,
        old: [u8; 32],
        root: Option<&rfl_crypto::SocietyRootKey>,
    ) -> Result<()> {
        for _attempt in 0..3 {
            self.reload_members().await?;
            let previous = self.with_trust(|t| t.revocations.clone())?;
            let now = crate::trust::now_secs();
            let added = [rfl_crypto::RevocationEntry {
                subject_id: *member.as_uuid(),
                keys_digest: old,
                revoked_at: now,
                reason: rfl_crypto::RevocationReason::Superseded,
            }];
            if previous
                .as_ref()
                .is_some_and(|p| p.is_revoked(*member.as_uuid(), &old))
            {
                return Err(ClientError::Invalid(format!(
                    "member {member}'s current keys are revoked already: revoke the member \
                     (`rfl member revoke`) and enrol them again"
                )));
            }
            let body = rfl_crypto::RevocationListBody::next(
                *self.me.society_id.as_uuid(),
                previous.as_ref(),
                &added,
                now,
            )?;
            let list = match root {
                Some(root) => body.sign_by_root(root)?,
                None => body.sign_by_admin(&self.keys.signing)?,
            };
            match self
                .api
                .switch_keys(
                    member,
                    &SwitchKeysRequest {
                        certificate: cert.to_hex(),
                        revocations: list.to_hex(),
                    },
                )
                .await
            {
                Ok(_) => {
                    self.reload_members().await?;
                    return Ok(());
                }
                Err(ClientError::Api { status: 409, .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(list_kept_changing())
    }
}

/// The answer when another admin published a revocation list at each attempt.
pub(super) fn list_kept_changing() -> ClientError {
    ClientError::Api {
        status: 409,
        title: "Conflict".into(),
        detail: "the revocation list kept changing while this ran: run the command again".into(),
    }
}
