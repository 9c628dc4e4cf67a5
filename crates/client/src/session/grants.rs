//! Part of [`super::Session`]: sharing a case within the society (a grant commit), and who holds it.

use std::collections::HashMap;

use rfl_crypto::{wrap_data_key_certified, CertifiedRole};

use super::*;

/// A holder of a case's current data key, as this client verified the list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CaseHolder {
    /// The member (or the society id, for its escrow key).
    pub recipient_id: uuid::Uuid,
    /// Their role: the certified one where this client verified their certificate, else the
    /// server's word.
    pub role: Option<Role>,
    /// Whether the keys the case key is wrapped to are certified under the pinned root (and not
    /// revoked).
    pub certified: bool,
    /// Whether the society revoked those keys.
    pub revoked: bool,
    /// When they got the key of the current epoch (Unix milliseconds, the server's clock).
    pub since: i64,
}

/// Who holds a case, checked against its signed head commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CaseHolders {
    pub case: CaseId,
    pub key_epoch: u32,
    /// Members first (by id), then the society escrow key.
    pub holders: Vec<CaseHolder>,
}

fn role_of(r: CertifiedRole) -> Option<Role> {
    match r {
        CertifiedRole::SocietyAdmin => Some(Role::SocietyAdmin),
        CertifiedRole::Caseworker => Some(Role::Caseworker),
        CertifiedRole::Auditor => Some(Role::Auditor),
        CertifiedRole::SyncAgent => Some(Role::SyncAgent),
        CertifiedRole::Escrow => None,
    }
}

/// The members a server lists as holders of a case (the society escrow key left out), checked
/// against the holders digest of the case's verified head commit: exactly those members, with the
/// digests of exactly those keys (else [`ClientError::Tampered`]).
pub(super) fn listed_holders(
    society: SocietyId,
    holders: &[HolderDto],
    head_digest: &[u8; 32],
) -> Result<Vec<Holder>> {
    let society = *society.as_uuid();
    let mut listed = Vec::new();
    for h in holders.iter().filter(|h| h.recipient_id != society) {
        let keys_digest = h
            .keys_digest
            .as_deref()
            .and_then(super::attachments::parse_hex32)
            .ok_or_else(|| {
                tampered("the server lists a holder of this case without the digest of their keys")
            })?;
        listed.push(Holder {
            member_id: h.recipient_id,
            keys_digest,
        });
    }
    if holders_digest(&listed).ok().as_ref() != Some(head_digest) {
        return Err(tampered(
            "the holders the server lists are not the ones the case's signed head commit names",
        ));
    }
    Ok(listed)
}

impl Session {
    /// The holders of an opened case as the server lists them, checked against the case's verified
    /// head commit: the members listed, with the digests of the keys the case key is wrapped to, must
    /// be exactly those its holders digest names (else [`ClientError::Tampered`]).
    pub(super) async fn verified_holders(
        &self,
        opened: &OpenedCase,
    ) -> Result<(HoldersResponse, Vec<Holder>)> {
        let resp = self.api.case_holders(opened.summary.id).await?;
        if resp.key_epoch != opened.summary.key_epoch {
            return Err(tampered(
                "the server lists the holders of another key epoch than the case's",
            ));
        }
        // The escrow row is the case's society's: another society's for a case transferred to it
        // whose sender kept access.
        let listed = listed_holders(opened.summary.society_id, &resp.holders, &opened.holders)?;
        Ok((resp, listed))
    }

    /// Who holds a case's current data key, checked against the opened case's signed head commit
    /// (see `verified_holders`). Each is marked certified or revoked by this client's own
    /// verification of the society's certificates and revocation list.
    pub async fn case_holders(&self, opened: &OpenedCase) -> Result<CaseHolders> {
        let (resp, listed) = self.verified_holders(opened).await?;
        let society = *opened.summary.society_id.as_uuid();
        // A case of another society: its members and escrow key as the Movement root vouches.
        // Holders of another society (a case shared by transfer): their keys and revocations as
        // their society's root states them, through the Movement root, as they are now.
        if opened.summary.society_id != self.me.society_id {
            self.society_trust(opened.summary.society_id).await?;
        }
        self.load_holder_societies(&listed).await?;
        let foreign = self.foreign_trusts();
        let digests: HashMap<uuid::Uuid, [u8; 32]> = listed
            .iter()
            .map(|h| (h.member_id, h.keys_digest))
            .collect();
        let mut holders: Vec<CaseHolder> = self.with_trust(|t| {
            resp.holders
                .iter()
                .map(|h| {
                    let digest = digests.get(&h.recipient_id);
                    let certified = t
                        .get(h.recipient_id)
                        .or_else(|| foreign.iter().find_map(|f| f.get(h.recipient_id)))
                        .filter(|v| Some(&v.keys_digest()) == digest || h.recipient_id == society);
                    let revoked = digest.is_some_and(|d| {
                        std::iter::once(&t.revocations)
                            .chain(foreign.iter().map(|f| &f.revocations))
                            .flatten()
                            .any(|r| r.is_revoked(h.recipient_id, d))
                    });
                    CaseHolder {
                        recipient_id: h.recipient_id,
                        role: certified.and_then(|v| role_of(v.role())).or(h.role),
                        certified: certified.is_some() && !revoked,
                        revoked,
                        since: h.since,
                    }
                })
                .collect()
        })?;
        holders.sort_by_key(|h| (h.recipient_id == society, h.recipient_id));
        Ok(CaseHolders {
            case: opened.summary.id,
            key_epoch: resp.key_epoch,
            holders,
        })
    }

    /// Gives `member` the case: its current data key wrapped to their **certified** keys (refused,
    /// before anything is wrapped, if they are not certified or were revoked), with a signed grant
    /// commit that adds them to the holders the head names. The holders list is checked against the
    /// head first, so a grant never builds on a list the server made up.
    pub async fn grant_case(&self, id: CaseId, member: MemberId) -> Result<CaseSummaryDto> {
        // The society's certificates and revocation list as they are now, not as this session
        // loaded them: a member revoked a minute ago gets no key.
        self.reload_members().await?;
        let keys = self.certified_member(member).await?;
        let opened = self.open_case(id).await?;
        let (_, mut holders) = self.verified_holders(&opened).await?;
        if holders.iter().any(|h| h.member_id == *member.as_uuid()) {
            return Err(ClientError::Invalid(format!(
                "member {member} holds this case already"
            )));
        }
        holders.push(Holder {
            member_id: *member.as_uuid(),
            keys_digest: keys.keys_digest(),
        });
        let wrapped = wrap_data_key_certified(
            &opened.data_key,
            *id.as_uuid(),
            opened.summary.key_epoch,
            &keys,
        )?;
        // Records sealed before a re-key stay under their epoch's key: the grantee gets them all.
        let older_keys = self
            .all_older_keys(&opened)?
            .iter()
            .map(|(epoch, key)| {
                Ok(EpochKeyDto {
                    key_epoch: *epoch,
                    wrapped: wrap_data_key_certified(key, *id.as_uuid(), *epoch, &keys)?.into(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut pos = opened.next();
        pos.holders = holders_digest(&holders)?;
        let entries: Vec<StateEntry> = opened.entries.values().copied().collect();
        let commit = self.sealer_for_writes().sign_commit(
            CommitOp::Grant,
            pos,
            &opened.data_key,
            opened.status,
            &entries,
        )?;
        let summary = self
            .api
            .grant(
                id,
                &GrantRequest {
                    member_id: member,
                    wrapped: wrapped.into(),
                    commit: commit.as_bytes().to_vec().into(),
                    older_keys,
                },
            )
            .await?;
        self.record_own_commit(id, &commit)?;
        Ok(summary)
    }
}
