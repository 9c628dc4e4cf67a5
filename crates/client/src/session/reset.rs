//! Part of [`super::Session`]: a person who lost every authenticator (docs/crypto.md, "A lost
//! device"). Their keys went with it, so they cannot rotate them themselves:
//!
//! 1. an admin resets them (`reset_member`): their keys are revoked (device lost), their passkeys
//!    removed, their sessions ended, and a one-time code re-enrols the same member;
//! 2. they enrol again with that code (new keys, a new passkey), and an admin certifies the new
//!    keys as for any member (`rfl certify`);
//! 3. an admin re-wraps every case still wrapped to the lost keys from the escrow key
//!    (`rewrap_member_cases`, in `rekey.rs`): a new epoch the lost keys cannot open, and every
//!    earlier epoch's key for the member's new keys.

use rfl_crypto::{subject_keys_digest, RevocationEntry, RevocationListBody, RevocationReason};
use rfl_domain::api::{EnrolmentCodeResponse, ResetMemberRequest};

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
}
