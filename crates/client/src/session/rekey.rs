//! Part of [`super::Session`]: key epochs. A re-key commit starts a case's next epoch: a new data
//! key, wrapped only to the holders who keep the case and to the society escrow key, committed to
//! by the commit. Records keep the epoch they were sealed under; everything written afterwards is
//! sealed under the new key, which a removed holder never had.
//!
//! - `ungrant_case`: a holder removes another holder from one case;
//! - `rekey_member_cases`: an admin re-keys every case a revoked member holds, in batches, each one
//!   transaction; running it again finishes what a crash left (re-keyed cases no longer list);
//! - `reencrypt_case`: records still sealed under earlier epochs are sealed again under the
//!   current one (eager re-encryption).

use std::collections::BTreeMap;

use rfl_crypto::{holder_batch_certified, AgeIdentity, VerifiedKeys};

use super::grants::listed_holders;
use super::*;

/// Cases per re-key request: one transaction, a body well inside the server's JSON limit (a
/// case's re-key is about 1 KB in JSON with one holder besides the escrow key).
pub(super) const REKEY_BATCH: usize = 250;
/// Passes over a member's cases before giving up on cases that keep changing under the re-key.
const REKEY_PASSES: usize = 5;

/// A holder who keeps a case in its next epoch: their keys as this client verified them (`None`:
/// this holder itself, wrapped to its own key-wrapping key). Others get the new keys of a whole
/// request through one batch each ([`holder_batches`]).
#[derive(Clone)]
pub(super) struct Keep {
    pub(super) holder: Holder,
    pub(super) keys: Option<VerifiedKeys>,
}

/// A case of a revoked member checked for its re-key: its verified head (body and hash), the
/// holders kept, the holders left out.
type Checked = (CommitBody, CommitHash, Vec<Keep>, Vec<uuid::Uuid>);

/// What an admin does to the cases of a member ([`Session::rekey_member_cases`],
/// [`Session::rewrap_member_cases`]).
pub(crate) enum MemberRekey {
    /// Re-key without them (revoked).
    Drop,
    /// Re-key keeping them with their new certified keys, and re-wrap their earlier epochs from
    /// the opened `escrow` identity (reset after a lost device).
    Rewrap { escrow: AgeIdentity },
}

/// A case that was not re-keyed, and why (its head or holders did not verify).
#[derive(Clone, Debug, Serialize)]
pub struct SkippedCase {
    pub case: CaseId,
    pub reason: String,
}

/// What re-keying a member's cases did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RekeySummary {
    /// Cases now at a new key epoch without the member.
    pub rekeyed: usize,
    /// Holders left out of the new epochs because this client could not verify their keys as
    /// certified and unrevoked, with how many cases each lost (grant them again once certified).
    pub left_out: BTreeMap<uuid::Uuid, usize>,
    /// Requests refused because a case changed meanwhile, each retried.
    pub retried: usize,
    /// Cases this client refused to re-key because what the server served for them does not
    /// verify: they still need re-keying (the member is suspended meanwhile).
    pub skipped: Vec<SkippedCase>,
}

/// One batch of wrappings per holder kept (other than this one) in any of `keeps`: one age
/// encryption to each, however many cases they keep.
pub(super) fn holder_batches<'a>(
    keeps: impl Iterator<Item = &'a Keep>,
) -> Result<HashMap<uuid::Uuid, EscrowBatch>> {
    let mut out = HashMap::new();
    for k in keeps {
        if let (Some(v), false) = (&k.keys, out.contains_key(&k.holder.member_id)) {
            out.insert(k.holder.member_id, holder_batch_certified(v)?);
        }
    }
    Ok(out)
}

/// Most bytes of JSON a re-key request carries (the server takes 1 MiB).
const REKEY_REQUEST_BYTES: usize = 768 * 1024;

/// Sealed re-keys grouped into requests of at most [`REKEY_REQUEST_BYTES`] of JSON each.
pub(super) fn split_by_size(cases: Vec<RekeyDto>) -> Result<Vec<Vec<RekeyDto>>> {
    let mut out: Vec<Vec<RekeyDto>> = Vec::new();
    let mut size = 0;
    for c in cases {
        let n = serde_json::to_vec(&c)?.len() + 1;
        if out.is_empty() || size + n > REKEY_REQUEST_BYTES {
            out.push(Vec::new());
            size = 0;
        }
        size += n;
        if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    Ok(out)
}

impl Sealer {
    /// A case's next key epoch after the verified head `head`: a new data key wrapped to each of
    /// `keep` (others through their batch in `batches`) and to the escrow batch, and the signed
    /// re-key commit.
    pub(super) fn seal_rekey(
        &self,
        head: &CommitBody,
        head_hash: CommitHash,
        keep: &[Keep],
        batches: &HashMap<uuid::Uuid, EscrowBatch>,
        batch: &EscrowBatch,
    ) -> Result<RekeyDto> {
        let case = head.case_id;
        let epoch = head.key_epoch.checked_add(1).ok_or_else(|| {
            ClientError::Invalid("the case has reached its last key epoch".into())
        })?;
        let key = DataKey::generate()?;
        let mut keys = Vec::with_capacity(keep.len() + 1);
        for k in keep {
            let wrapped = match &k.keys {
                None => wrap_data_key_to_self(&key, case, epoch, self.keys.case_key()?)?,
                Some(_) => batches
                    .get(&k.holder.member_id)
                    .ok_or_else(|| ClientError::Invalid("no batch for a holder kept".into()))?
                    .wrap(&key, case, epoch)?,
            };
            keys.push(WrappedKeyDto {
                recipient_id: k.holder.member_id,
                wrapped: wrapped.into(),
            });
        }
        keys.push(WrappedKeyDto {
            recipient_id: *self.society_id.as_uuid(),
            wrapped: batch.wrap(&key, case, epoch)?.into(),
        });
        let holders: Vec<Holder> = keep.iter().map(|k| k.holder).collect();
        let commit = CommitBody {
            op: CommitOp::Rekey,
            case_id: case,
            seq: head.seq + 1,
            parent: head_hash,
            key_epoch: epoch,
            key_commitment: key_commitment(&key, case, epoch),
            status: head.status,
            author: *self.member_id.as_uuid(),
            created_at: now_millis(),
            state: head.state,
            holders: holders_digest(&holders)?,
        }
        .sign(&self.keys.signing)?;
        Ok(RekeyDto {
            case_id: CaseId::from_uuid(case),
            keys,
            commit: commit.as_bytes().to_vec().into(),
            own_older_keys: Vec::new(),
            older_keys_of: None,
        })
    }
}

impl Session {
    /// The data keys of every earlier key epoch of an opened case (1 up to the head's, exclusive),
    /// unwrapped: what a grant passes on.
    pub(super) fn all_older_keys(&self, opened: &OpenedCase) -> Result<Vec<(u32, DataKey)>> {
        let id = opened.summary.id;
        (1..opened.summary.key_epoch)
            .map(|epoch| {
                if let Some(k) = opened.older_keys.get(&epoch) {
                    return Ok((epoch, DataKey::from_bytes(*k.expose_bytes())));
                }
                let (_, wrapped) = opened
                    .older_wrapped
                    .iter()
                    .find(|(e, _)| *e == epoch)
                    .ok_or_else(|| {
                        tampered(format!(
                            "the server did not send your data key of key epoch {epoch}"
                        ))
                    })?;
                Ok((epoch, self.unwrap_case_key(id, epoch, wrapped)?))
            })
            .collect()
    }

    /// Whom to keep in a case's next epoch: each listed holder but `drop`, with their keys as this
    /// client verified them. A holder whose keys are not certified under the pinned root, or were
    /// revoked, or who is suspended, is left out (returned second): nothing is wrapped to keys this
    /// client cannot trust, nor to an account that may not hold one.
    pub(super) fn keepers(
        &self,
        listed: &[Holder],
        drop: MemberId,
        suspended: &HashSet<uuid::Uuid>,
    ) -> Result<(Vec<Keep>, Vec<uuid::Uuid>)> {
        let me = *self.me.member_id.as_uuid();
        let own = holder_of(&self.keys, self.me.member_id);
        let foreign = self.foreign_trusts();
        self.with_trust(|t| {
            let mut keep = Vec::new();
            let mut left_out = Vec::new();
            for h in listed.iter().filter(|h| h.member_id != *drop.as_uuid()) {
                // A suspended member gets no new key (the server refuses to keep one).
                if suspended.contains(&h.member_id) {
                    left_out.push(h.member_id);
                    continue;
                }
                // This holder itself: its own key-wrapping key (its current keys, also after it
                // rotated them).
                if h.member_id == me {
                    keep.push(Keep {
                        holder: own,
                        keys: None,
                    });
                    continue;
                }
                // Another holder, to their certified keys: those the head names, or the keys they
                // rotated to since (the keys the head names are then revoked as superseded).
                // A holder of another society (a case shared by transfer): their keys as their
                // society's root certifies them, through the Movement root.
                let found = t
                    .get(h.member_id)
                    .cloned()
                    .or_else(|| foreign.iter().find_map(|f| f.get(h.member_id).cloned()));
                match found {
                    Some(v) if v.role().may_receive_case_keys() => keep.push(Keep {
                        holder: Holder {
                            member_id: h.member_id,
                            keys_digest: v.keys_digest(),
                        },
                        keys: Some(v),
                    }),
                    _ => left_out.push(h.member_id),
                }
            }
            (keep, left_out)
        })
    }

    /// Removes `member` from a case this holder holds: a re-key commit starts the next key epoch,
    /// its new data key wrapped to every other holder (their certified keys) and to the escrow
    /// key. The member keeps what they could already read; nothing written from now on opens with
    /// any key they had.
    pub async fn ungrant_case(&self, id: CaseId, member: MemberId) -> Result<CaseSummaryDto> {
        if member == self.me.member_id {
            return Err(ClientError::Invalid(
                "you cannot remove yourself from a case: another holder or an admin must".into(),
            ));
        }
        self.reload_members().await?;
        let opened = self.open_case(id).await?;
        let (_, listed) = self.verified_holders(&opened).await?;
        if !listed.iter().any(|h| h.member_id == *member.as_uuid()) {
            return Err(ClientError::Invalid(format!(
                "member {member} does not hold this case"
            )));
        }
        if opened.summary.society_id != self.me.society_id {
            return Err(ClientError::Invalid(format!(
                "case {id} belongs to society {}: its holders there re-key it",
                opened.summary.society_id
            )));
        }
        self.load_holder_societies(&listed).await?;
        let (keep, left_out) = self.keepers(&listed, member, &self.suspended_members().await?)?;
        if let Some(m) = left_out.first() {
            return Err(ClientError::Invalid(format!(
                "holder {m} of this case is suspended or has keys that are not certified (or were \
                 revoked): an admin must certify them, or remove them too, before the case is re-keyed"
            )));
        }
        let sealer = self.sealer()?;
        let head = self.opened_head(&opened)?;
        let batches = holder_batches(keep.iter())?;
        let dto = sealer.seal_rekey(
            &head,
            opened.head.hash,
            &keep,
            &batches,
            &sealer.escrow_batch()?,
        )?;
        let commit = parse_commit(&dto.commit.0)?;
        self.api
            .rekey(
                &RekeyRequest { cases: vec![dto] },
                &sealer.escrow_recipient()?,
            )
            .await?;
        self.record_own_commit(id, &commit)?;
        // The case as it is now (and its new head recorded as verified).
        Ok(self.open_case(id).await?.summary)
    }

    /// The society's suspended members, as the server says (a server that hides a suspension gets
    /// a re-key refused, not a key to the member: the server itself refuses to keep them).
    pub(super) async fn suspended_members(&self) -> Result<HashSet<uuid::Uuid>> {
        Ok(self
            .api
            .members()
            .await?
            .members
            .into_iter()
            .filter(|m| m.suspended)
            .map(|m| *m.id.as_uuid())
            .collect())
    }

    /// The body of an opened case's verified head commit (its fields as this client checked them).
    pub(super) fn opened_head(&self, opened: &OpenedCase) -> Result<CommitBody> {
        let entries: Vec<StateEntry> = opened.entries.values().copied().collect();
        Ok(CommitBody {
            op: CommitOp::Records,
            case_id: *opened.summary.id.as_uuid(),
            seq: opened.head.seq,
            parent: CommitHash::ZERO,
            key_epoch: opened.summary.key_epoch,
            key_commitment: key_commitment(
                &opened.data_key,
                *opened.summary.id.as_uuid(),
                opened.summary.key_epoch,
            ),
            status: opened.status.code(),
            author: *self.me.member_id.as_uuid(),
            created_at: 0,
            state: state_digest(&entries)?,
            holders: opened.holders,
        })
    }

    /// Checks one case a server lists as held by `member` and says whom to keep: its head commit
    /// must be signed by a certified member, must not roll back a head this client saw, and the
    /// holders listed must be exactly those it names.
    fn check_member_case(
        &self,
        member: MemberId,
        c: &MemberCaseDto,
        suspended: &HashSet<uuid::Uuid>,
        mode: &MemberRekey,
    ) -> Result<Checked> {
        let id = c.case.id;
        let head = parse_commit(&c.head_commit.0)
            .map_err(|e| tampered(format!("case {id}: the head commit is malformed: {e}")))?;
        let b = *head.body();
        if b.case_id != *id.as_uuid() || b.seq != c.case.version || b.key_epoch != c.case.key_epoch
        {
            return Err(tampered(format!(
                "case {id}: the head commit is not the one the case's metadata names"
            )));
        }
        if let Some(known) = self.heads.get(id) {
            if b.seq < known.seq || (b.seq == known.seq && head.hash() != known.hash) {
                return Err(tampered(format!(
                    "case {id}: the server serves an older or another head than the one you have seen"
                )));
            }
        }
        let head = self.verify_author(&head).map_err(|unknown| {
            if unknown {
                tampered(format!(
                    "case {id}: the head commit's author is not a member certified by your society's root"
                ))
            } else {
                tampered(format!(
                    "case {id}: the head commit's signature does not verify"
                ))
            }
        })?;
        let listed = listed_holders(self.me.society_id, &c.holders, &b.holders)?;
        if !listed.iter().any(|h| h.member_id == *member.as_uuid()) {
            return Err(tampered(format!(
                "case {id}: the server lists it among the member's cases, but its head does not name them"
            )));
        }
        // Dropping the member (revoked), or keeping them with their new certified keys (reset).
        let drop = match mode {
            MemberRekey::Drop => member,
            MemberRekey::Rewrap { .. } => MemberId::from_uuid(uuid::Uuid::nil()),
        };
        let (keep, left_out) = self.keepers(&listed, drop, suspended)?;
        if matches!(mode, MemberRekey::Rewrap { .. })
            && !keep.iter().any(|k| k.holder.member_id == *member.as_uuid())
        {
            return Err(ClientError::Invalid(format!(
                "member {member}'s new keys are not certified (or they are suspended): certify \
                 them first (`rfl certify`)"
            )));
        }
        Ok((b, head.hash(), keep, left_out))
    }

    /// An admin re-keys every case of the society that `member` holds (after revoking them): each
    /// gets a new key epoch without them, its data key wrapped to the other holders this client
    /// can verify and to the escrow key. In batches of [`REKEY_BATCH`], each one transaction; a
    /// batch refused because a case changed meanwhile is read again and retried. Re-keyed cases no
    /// longer list as the member's, so running it again after a crash finishes the job.
    /// `progress` gets the number of cases re-keyed so far.
    pub async fn rekey_member_cases(
        &self,
        member: MemberId,
        progress: impl Fn(usize),
    ) -> Result<RekeySummary> {
        self.rekey_member_cases_by(member, REKEY_BATCH, progress)
            .await
    }

    /// [`Session::rekey_member_cases`] in batches of `batch` cases (1 to 1,000).
    pub async fn rekey_member_cases_by(
        &self,
        member: MemberId,
        batch: usize,
        progress: impl Fn(usize),
    ) -> Result<RekeySummary> {
        self.member_rekey(member, batch, &MemberRekey::Drop, progress)
            .await
    }

    pub(super) async fn member_rekey(
        &self,
        member: MemberId,
        batch: usize,
        mode: &MemberRekey,
        progress: impl Fn(usize),
    ) -> Result<RekeySummary> {
        if !(1..=1000).contains(&batch) {
            return Err(ClientError::Invalid(
                "re-key 1 to 1000 cases a request".into(),
            ));
        }
        self.reload_members().await?;
        let suspended = self.suspended_members().await?;
        let sealer = Arc::new(self.sealer()?);
        // Unlocked once here: the workers below wrap to this holder's own key without a prompt.
        self.keys.case_key()?;
        let mut summary = RekeySummary::default();
        for pass in 0..REKEY_PASSES {
            if pass > 0 {
                // A holder may have rotated their keys meanwhile (the server refuses a wrap to keys
                // a member no longer has): wrap to the keys as they are now.
                self.reload_members().await?;
            }
            let mut after = None;
            let mut refused = 0;
            loop {
                let page = match mode {
                    MemberRekey::Drop => self.api.member_cases(member, after, batch as i64).await?,
                    MemberRekey::Rewrap { .. } => {
                        self.api
                            .member_retired_cases(member, after, batch as i64)
                            .await?
                    }
                };
                if page.cases.is_empty() {
                    break;
                }
                // Holders and authors of another society (a case shared by transfer, or a member
                // another society revoked): their keys through the Movement root, once a session.
                let others: HashSet<uuid::Uuid> = page
                    .cases
                    .iter()
                    .flat_map(|c| {
                        let author = parse_commit(&c.head_commit.0).ok().map(|h| h.body().author);
                        c.holders.iter().map(|h| h.recipient_id).chain(author)
                    })
                    .filter(|m| *m != *self.me.society_id.as_uuid())
                    .collect();
                self.load_member_societies(others).await?;
                let mut checked = Vec::with_capacity(page.cases.len());
                let mut older = Vec::with_capacity(page.cases.len());
                let mut opened = HashMap::new();
                for c in &page.cases {
                    let k = self
                        .check_member_case(member, c, &suspended, mode)
                        .and_then(|k| {
                            match mode {
                                MemberRekey::Drop => older.push(Vec::new()),
                                MemberRekey::Rewrap { escrow, .. } => older.push(
                                    super::reset::escrow_epoch_keys(c, &k.0, escrow, &mut opened)?,
                                ),
                            }
                            Ok(k)
                        });
                    match k {
                        Ok(k) => checked.push(k),
                        // One case the server serves wrong must not stop the others' re-key.
                        Err(ClientError::Tampered(reason)) => {
                            if !summary.skipped.iter().any(|x| x.case == c.case.id) {
                                summary.skipped.push(SkippedCase {
                                    case: c.case.id,
                                    reason,
                                });
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
                for (_, _, _, left_out) in &checked {
                    for m in left_out {
                        *summary.left_out.entry(*m).or_default() += 1;
                    }
                }
                let batch = sealer.escrow_batch()?;
                let batches = holder_batches(checked.iter().flat_map(|c| c.2.iter()))?;
                let s = sealer.clone();
                let target = match mode {
                    MemberRekey::Drop => None,
                    MemberRekey::Rewrap { .. } => Some(member),
                };
                let cases = tokio::task::spawn_blocking(move || {
                    checked
                        .iter()
                        .zip(older)
                        .map(|((body, hash, keep, _), older)| {
                            let mut dto = s.seal_rekey(body, *hash, keep, &batches, &batch)?;
                            if let Some(m) = target {
                                // The member's keys of every earlier epoch, from escrow, to the
                                // batch of their new certified keys.
                                let to = batches.get(m.as_uuid()).ok_or_else(|| {
                                    ClientError::Invalid("no batch for the member's keys".into())
                                })?;
                                dto.own_older_keys = older
                                    .iter()
                                    .map(|(epoch, key)| {
                                        Ok(EpochKeyDto {
                                            key_epoch: *epoch,
                                            wrapped: to
                                                .wrap(key, *dto.case_id.as_uuid(), *epoch)?
                                                .into(),
                                        })
                                    })
                                    .collect::<Result<Vec<_>>>()?;
                                dto.older_keys_of = Some(m);
                            }
                            Ok(dto)
                        })
                        .collect::<Result<Vec<_>>>()
                })
                .await
                .map_err(|e| ClientError::Invalid(format!("a sealing worker failed: {e}")))??;
                // Requests within the server's body limit (a case with many holders is larger).
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
                            summary.rekeyed += r.rekeyed;
                            // The re-keys this admin signed: a server that later serves an older
                            // head of these cases to this client is caught.
                            self.heads.put_many(&heads)?;
                            progress(summary.rekeyed);
                        }
                        // A case changed between the listing and the re-key: the next pass reads
                        // it again.
                        Err(ClientError::Api { status: 409, .. }) => {
                            refused += n;
                            summary.retried += 1;
                        }
                        Err(e) => return Err(e),
                    }
                }
                // The listing must move on: a server that pages backwards would loop forever.
                if let (Some(next), Some(prev)) = (page.next_after, after) {
                    if next.as_uuid().as_bytes() <= prev.as_uuid().as_bytes() {
                        return Err(tampered(
                            "the server's listing of the member's cases does not move forward",
                        ));
                    }
                }
                match page.next_after {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            if refused == 0 {
                return Ok(summary);
            }
        }
        Err(ClientError::Api {
            status: 409,
            title: "Conflict".into(),
            detail:
                "cases of this member kept changing while they were re-keyed: run the command again"
                    .into(),
        })
    }

    /// Eager re-encryption: every record of the case still sealed under an earlier key epoch
    /// (attachments aside: their chunks stay under their epoch's key) is sealed again under the
    /// current one, as its next version, in one records commit. `None` if there was none.
    pub async fn reencrypt_case(&self, id: CaseId) -> Result<Option<CaseSummaryDto>> {
        let known = self.heads.get(id);
        let dto = self.api.get_case(id, known.map(|h| h.seq)).await?;
        let records = dto.records.clone();
        let opened = self.verify_and_decrypt(id, dto, known)?;
        let epoch = opened.summary.key_epoch;
        let mut writes = Vec::new();
        for r in &records {
            let was = opened.record_epochs.get(&r.id).copied().unwrap_or(epoch);
            if was == epoch || r.kind == RecordKind::Attachment {
                continue;
            }
            let aad = RecordAad {
                case_id: *id.as_uuid(),
                record_id: *r.id.as_uuid(),
                kind: crypto_kind(r.kind)?,
                version: r.version,
                key_epoch: was,
            };
            let plaintext = Zeroizing::new(open_record(opened.key_of(was)?, &aad, &r.envelope.0)?);
            let next = RecordAad {
                version: r.version + 1,
                key_epoch: epoch,
                ..aad
            };
            writes.push(RecordWriteDto {
                id: r.id,
                kind: r.kind,
                version: next.version,
                envelope: seal_record(&opened.data_key, &next, &plaintext)?.into(),
            });
        }
        if writes.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.commit_writes(&opened, writes).await?))
    }
}
