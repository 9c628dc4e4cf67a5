//! Part of [`super::Session`]: transferring a case to another national society (docs/crypto.md,
//! "The Movement root and transfers").
//!
//! The sender wraps the case's data key of every epoch to the receiving society's escrow key, which
//! it verified through the pinned Movement root, and offers it. The receiving admin opens those
//! keys with their society's recovery identity, verifies the case as a whole (head signed by a
//! member the sending society's root certifies, records exactly the ones it lists, the current key
//! the one it commits to), and accepts with a signed transfer commit that assigns the case to one
//! of their members.

use rfl_crypto::{wrap_data_key_certified, AgeIdentity};
use uuid::Uuid;

use super::*;

impl Session {
    /// Offers case `id` to society `to`: refused before anything is wrapped unless the pinned
    /// Movement root certifies that society's root, and that root its escrow key. With
    /// `keep_access`, this society's holders keep their keys once the case is accepted.
    pub async fn offer_transfer(
        &self,
        id: CaseId,
        to: SocietyId,
        keep_access: bool,
    ) -> Result<TransferDto> {
        if to == self.me.society_id {
            return Err(ClientError::Invalid(
                "the case is in your society already: share it with `rfl case grant`".into(),
            ));
        }
        let trust = self.society_trust(to).await?;
        let escrow = trust.get(*to.as_uuid()).cloned().ok_or_else(|| {
            ClientError::Invalid(format!(
                "society {to} has no escrow key certified by its root: it cannot receive cases yet"
            ))
        })?;
        let batch = escrow_batch_certified(&escrow)?;
        let opened = self.open_case(id).await?;
        let case = *id.as_uuid();
        let mut keys = Vec::with_capacity(opened.summary.key_epoch as usize);
        for (epoch, key) in self.all_older_keys(&opened)? {
            keys.push(EpochKeyDto {
                key_epoch: epoch,
                wrapped: batch.wrap(&key, case, epoch)?.into(),
            });
        }
        keys.push(EpochKeyDto {
            key_epoch: opened.summary.key_epoch,
            wrapped: batch
                .wrap(&opened.data_key, case, opened.summary.key_epoch)?
                .into(),
        });
        self.api
            .post(
                &format!("/v1/cases/{id}/transfers"),
                &TransferRequest {
                    to_society: to,
                    keep_access,
                    escrow_recipient: escrow.age_recipient().to_string(),
                    case_version: opened.summary.version,
                    keys,
                },
            )
            .await
    }

    /// Transfers from or to this admin's society, newest first.
    pub async fn transfers(&self, pending_only: bool) -> Result<Vec<TransferDto>> {
        let path = if pending_only {
            "/v1/transfers?pending=true"
        } else {
            "/v1/transfers"
        };
        let r: TransferListResponse = self.api.get(path).await?;
        Ok(r.transfers)
    }

    /// Rejects a transfer offered to this admin's society, or cancels one it offered.
    pub async fn reject_transfer(&self, id: Uuid) -> Result<TransferDto> {
        self.api
            .post(
                &format!("/v1/transfers/{id}/reject"),
                &serde_json::json!({}),
            )
            .await
    }

    /// Accepts transfer `id` for this admin's society and assigns the case to `assign`, one of its
    /// caseworkers or admins (certified): the offered keys are opened with the society's escrow
    /// key (`recovery` opens it), the case is verified as a whole and decrypted, and a signed
    /// transfer commit moves it. If the sender gave access up, the commit starts a new key epoch
    /// that only the assignee and this society's escrow key hold.
    pub async fn accept_transfer(
        &self,
        id: Uuid,
        assign: MemberId,
        recovery: &AgeIdentity,
    ) -> Result<CaseSummaryDto> {
        let assignee = self.certified_member(assign).await?;
        let tc: TransferCaseResponse = self.api.get(&format!("/v1/transfers/{id}/case")).await?;
        let t = &tc.transfer;
        if t.to_society != self.me.society_id || tc.case.case.id != t.case_id {
            return Err(tampered("the server answered with another transfer"));
        }
        let case_id = t.case_id;
        // The sending society's members sign the case's commits: their keys as the Movement root
        // vouches for their society's root.
        self.society_trust(t.from_society).await?;
        let wrapped = self
            .api
            .society()
            .await?
            .escrow
            .ok_or_else(|| ClientError::Invalid("your society has no escrow key".into()))?;
        let escrow = self.open_old_escrow(&wrapped.wrapped_identity.0, recovery)?;
        let society = *self.me.society_id.as_uuid();
        let case = *case_id.as_uuid();
        let opened_batches: std::sync::Mutex<HashMap<Uuid, Arc<EscrowBatch>>> = Default::default();
        let unwrap = |epoch: u32, w: &[u8]| -> Result<DataKey> {
            let info = rfl_crypto::escrow_wrap_info(w)
                .map_err(|_| tampered("an offered key is malformed"))?;
            let mut opened = opened_batches
                .lock()
                .map_err(|_| ClientError::Invalid("batch cache lock poisoned".into()))?;
            let batch = match opened.get(&info.batch_id) {
                Some(b) => b.clone(),
                None => {
                    let b =
                        Arc::new(EscrowBatch::open(w, society, escrow.as_age()).map_err(|_| {
                            ClientError::Invalid(
                                "the offered keys do not open with your society's escrow key (was \
                                 it rotated since the offer? the sender offers the case again)"
                                    .into(),
                            )
                        })?);
                    opened.insert(info.batch_id, b.clone());
                    b
                }
            };
            batch
                .unwrap(w, case, epoch)
                .map_err(|_| tampered("an offered key does not open for this case and epoch"))
        };
        let current_wrapped = tc.case.wrapped_key.0.clone();
        let older_wrapped: Vec<(u32, Vec<u8>)> = tc
            .case
            .older_keys
            .iter()
            .map(|k| (k.key_epoch, k.wrapped.0.clone()))
            .collect();
        let head_bytes = tc
            .case
            .head_commit
            .clone()
            .ok_or_else(|| tampered("the server sent no head commit"))?;
        // The case as a whole: signed head, its records, the current key it commits to.
        let opened = self.verify_and_decrypt_with(case_id, tc.case, None, &unwrap)?;
        let head = *parse_commit(&head_bytes.0)
            .map_err(|e| tampered(format!("the head commit is malformed: {e}")))?
            .body();
        let epoch = head.key_epoch;
        let mut keys: Vec<(u32, DataKey)> = Vec::with_capacity(epoch as usize + 1);
        for e in 1..epoch {
            let (_, w) = older_wrapped
                .iter()
                .find(|(k, _)| *k == e)
                .ok_or_else(|| tampered(format!("the offer lacks the key of epoch {e}")))?;
            keys.push((e, unwrap(e, w)?));
        }
        keys.push((epoch, unwrap(epoch, &current_wrapped)?));
        let assigned = Holder {
            member_id: *assign.as_uuid(),
            keys_digest: assignee.keys_digest(),
        };
        let (new_epoch, new_key, holders) = if t.keep_access {
            // The holders as the server lists them must be the ones the signed head names.
            let listed = super::grants::listed_holders(t.from_society, &tc.holders, &head.holders)?;
            let mut after = listed;
            after.push(assigned);
            (epoch, None, after)
        } else {
            let next = epoch.checked_add(1).ok_or_else(|| {
                ClientError::Invalid("the case has reached its last key epoch".into())
            })?;
            (next, Some(DataKey::generate()?), vec![assigned])
        };
        if let Some(k) = new_key {
            keys.push((new_epoch, k));
        }
        let commit_key = &keys
            .last()
            .ok_or_else(|| ClientError::Invalid("no key".into()))?
            .1;
        let commit = CommitBody {
            op: CommitOp::Transfer,
            case_id: case,
            seq: head.seq + 1,
            parent: CommitHash(opened.head.hash.0),
            key_epoch: new_epoch,
            key_commitment: key_commitment(commit_key, case, new_epoch),
            status: head.status,
            author: *self.me.member_id.as_uuid(),
            created_at: now_millis(),
            state: head.state,
            holders: holders_digest(&holders)?,
        }
        .sign(&self.keys.signing)?;
        let own_escrow = self.escrow()?;
        let batch = escrow_batch_certified(&own_escrow)?;
        let mut member_keys = Vec::with_capacity(keys.len());
        let mut escrow_keys = Vec::with_capacity(keys.len());
        for (e, k) in &keys {
            member_keys.push(EpochKeyDto {
                key_epoch: *e,
                wrapped: wrap_data_key_certified(k, case, *e, &assignee)?.into(),
            });
            escrow_keys.push(EpochKeyDto {
                key_epoch: *e,
                wrapped: batch.wrap(k, case, *e)?.into(),
            });
        }
        self.api
            .post(
                &format!("/v1/transfers/{id}/accept"),
                &AcceptTransferRequest {
                    assign,
                    commit: commit.as_bytes().to_vec().into(),
                    member_keys,
                    escrow_keys,
                    escrow_recipient: own_escrow.age_recipient().to_string(),
                },
            )
            .await
    }
}
