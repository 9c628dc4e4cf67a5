//! Part of [`super::Session`]: a person who lost every authenticator (docs/crypto.md, "A lost
//! device"). Their keys went with it, so they cannot rotate them themselves:
//!
//! 1. an admin resets them (`reset_member`): their keys are revoked (device lost), their passkeys
//!    removed, their sessions ended, and a one-time code re-enrols the same member;
//! 2. they enrol again with that code (new keys, a new passkey), and an admin certifies the new
//!    keys as for any member (`rfl certify`);
//! 3. an admin re-wraps every case still wrapped to the lost keys from the escrow key
//!    (`rewrap_member_cases`, through the member re-key loop of `rekey.rs`): a new epoch the lost keys cannot open, and every
//!    earlier epoch's key for the member's new keys.

use rfl_crypto::{
    subject_keys_digest, AgeIdentity, RevocationEntry, RevocationListBody, RevocationReason,
};
use rfl_domain::api::{EnrolmentCodeResponse, ResetMemberRequest};

use super::rekey::{MemberRekey, RekeySummary, REKEY_BATCH};
use super::*;

impl Session {
    /// Step 1, by an admin: publishes the society's next revocation list with `member`'s
    /// registered keys revoked (device lost; already listed by an earlier reset, they are not
    /// listed twice) and resets the member in the same request. Returns the one-time code that
    /// re-enrols them. Run again, it issues a new code. On 409 (another admin published a list
    /// meanwhile) the list is reloaded and signed again.
    pub async fn reset_member(&self, member: MemberId) -> Result<EnrolmentCodeResponse> {
        if member == self.me.member_id {
            return Err(ClientError::Invalid(
                "you cannot reset yourself: another admin must".into(),
            ));
        }
        for _attempt in 0..3 {
            self.reload_members().await?;
            let (_, signing, recipient) = self.registered_keys(member).await?;
            let old = subject_keys_digest(Some(&signing), &recipient);
            let previous = self.with_trust(|t| t.revocations.clone())?;
            let now = crate::trust::now_secs();
            let added: Vec<RevocationEntry> = if previous
                .as_ref()
                .is_some_and(|p| p.is_revoked(*member.as_uuid(), &old))
            {
                Vec::new()
            } else {
                vec![RevocationEntry {
                    subject_id: *member.as_uuid(),
                    keys_digest: old,
                    revoked_at: now,
                    reason: RevocationReason::DeviceLost,
                }]
            };
            let list = RevocationListBody::next(
                *self.me.society_id.as_uuid(),
                previous.as_ref(),
                &added,
                now,
            )?
            .sign_by_admin(&self.keys.signing)?;
            match self
                .api
                .post(
                    &format!("/v1/members/{member}/reset"),
                    &ResetMemberRequest {
                        revocations: list.to_hex(),
                    },
                )
                .await
            {
                Ok(code) => {
                    self.reload_members().await?;
                    return Ok(code);
                }
                Err(ClientError::Api { status: 409, .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(super::rotate::list_kept_changing())
    }

    /// An admin re-wraps every case of `member`, whom they reset after the member lost every
    /// authenticator and whose new keys are certified, from the society escrow key (opened with
    /// the offline `recovery` identity): each case still wrapped to the member's revoked keys gets a
    /// new key epoch wrapped to its holders (the member's new keys included) and escrow, and the
    /// member's keys of every earlier epoch are re-wrapped to their new keys, in the same
    /// transaction. Nothing written afterwards opens with the lost keys; the member reads the whole
    /// history again. In batches, each one transaction; running it again finishes what a crash left.
    pub async fn rewrap_member_cases(
        &self,
        member: MemberId,
        recovery: &AgeIdentity,
        progress: impl Fn(usize),
    ) -> Result<RekeySummary> {
        self.rewrap_member_cases_by(member, recovery, REKEY_BATCH, progress)
            .await
    }

    /// [`Session::rewrap_member_cases`] in batches of `batch` cases (1 to 1,000).
    pub async fn rewrap_member_cases_by(
        &self,
        member: MemberId,
        recovery: &AgeIdentity,
        batch: usize,
        progress: impl Fn(usize),
    ) -> Result<RekeySummary> {
        self.reload_members().await?;
        self.certified_member(member).await.map_err(|_| {
            ClientError::Invalid(format!(
                "member {member} has no certified keys: they enrol again with the code of \
                 `rfl member reset`, then an admin certifies them (`rfl certify`)"
            ))
        })?;
        let wrapped = self
            .api()
            .society()
            .await?
            .escrow
            .ok_or_else(|| ClientError::Invalid("your society has no escrow key".into()))?;
        let escrow = self.open_old_escrow(&wrapped.wrapped_identity.0, recovery)?;
        self.member_rekey(member, batch, &MemberRekey::Rewrap { escrow }, progress)
            .await
    }
}

/// The data key of every epoch of a reset member's case before the new one, from the escrow
/// wrappings the server lists with it (`opened` caches each escrow batch opened). The current
/// epoch's key must match the key commitment of the verified head `head`: a host cannot have the
/// member given keys of its own choosing for it.
pub(super) fn escrow_epoch_keys(
    c: &MemberCaseDto,
    head: &CommitBody,
    escrow: &AgeIdentity,
    opened: &mut HashMap<uuid::Uuid, Arc<EscrowBatch>>,
) -> Result<Vec<(u32, DataKey)>> {
    let id = c.case.id;
    let epochs: Vec<u32> = c.escrow_keys.iter().map(|k| k.key_epoch).collect();
    if epochs != (1..=head.key_epoch).collect::<Vec<u32>>() {
        return Err(tampered(format!(
            "case {id}: the server does not list its escrow key of every epoch"
        )));
    }
    let society = *c.case.society_id.as_uuid();
    c.escrow_keys
        .iter()
        .map(|k| {
            let info = rfl_crypto::escrow_wrap_info(&k.wrapped.0)
                .map_err(|_| tampered(format!("case {id}: an escrow wrapping is malformed")))?;
            let batch = match opened.get(&info.batch_id) {
                Some(b) => b.clone(),
                None => {
                    let b = Arc::new(
                        EscrowBatch::open(&k.wrapped.0, society, escrow.as_age()).map_err(
                            |_| tampered(format!("case {id}: an escrow wrapping does not open")),
                        )?,
                    );
                    opened.insert(info.batch_id, b.clone());
                    b
                }
            };
            let key = batch
                .unwrap(&k.wrapped.0, *id.as_uuid(), k.key_epoch)
                .map_err(|_| tampered(format!("case {id}: an escrow wrapping does not open")))?;
            if k.key_epoch == head.key_epoch
                && key_commitment(&key, *id.as_uuid(), k.key_epoch) != head.key_commitment
            {
                return Err(tampered(format!(
                    "case {id}: the escrow key of its current epoch is not the one its head commits to"
                )));
            }
            Ok((k.key_epoch, key))
        })
        .collect()
}
