//! Part of [`super::Session`]: opening a case, verified as a whole against its signed head commit.

use super::*;

/// A decrypted case, verified as a whole against its signed head commit.
pub struct OpenedCase {
    pub summary: CaseSummaryDto,
    pub file: CaseFile,
    pub header_id: RecordId,
    /// Each record's kind and current version.
    pub versions: HashMap<RecordId, (RecordKind, u64)>,
    /// The head commit verified: every record above is one it lists.
    pub head: KnownHead,
    /// The status the head commit states.
    pub status: CaseStatus,
    /// The holders digest the head commit states (who holds the key epoch's data key).
    pub holders: [u8; 32],
    /// Each record's entry in the head's state.
    pub(super) entries: HashMap<RecordId, StateEntry>,
    /// The key epoch each record is sealed under (the head's, or an earlier one).
    pub(super) record_epochs: HashMap<RecordId, u32>,
    /// The data key of the head's key epoch (the head commits to it).
    pub(super) data_key: DataKey,
    /// The keys of the earlier epochs that records are still sealed under, unwrapped.
    pub(super) older_keys: HashMap<u32, DataKey>,
    /// This holder's wrapped keys of every earlier epoch, as served (a grant passes them on).
    pub(super) older_wrapped: Vec<(u32, Vec<u8>)>,
}

impl OpenedCase {
    /// Where the next commit of this case goes.
    pub fn next(&self) -> ChainPos {
        ChainPos {
            case: self.summary.id,
            seq: self.head.seq + 1,
            parent: self.head.hash,
            epoch: self.summary.key_epoch,
            holders: self.holders,
        }
    }

    /// The data key of key epoch `epoch` (the head's, or an earlier one a record is sealed under).
    pub(super) fn key_of(&self, epoch: u32) -> Result<&DataKey> {
        if epoch == self.summary.key_epoch {
            return Ok(&self.data_key);
        }
        self.older_keys.get(&epoch).ok_or_else(|| {
            tampered(format!(
                "the server did not send the data key of key epoch {epoch}"
            ))
        })
    }

    /// The case's state after `writes` (each replacing or adding a record).
    pub(super) fn entries_after(&self, writes: &[RecordWriteDto]) -> Result<Vec<StateEntry>> {
        let mut entries = self.entries.clone();
        for w in writes {
            entries.insert(w.id, entry_of(w)?);
        }
        Ok(entries.into_values().collect())
    }
}

impl std::fmt::Debug for OpenedCase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedCase")
            .field("id", &self.summary.id)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Fetches, verifies and decrypts a case.
    pub async fn open_case(&self, id: CaseId) -> Result<OpenedCase> {
        // The head known when asking: a commit of this session that lands while the answer is on its
        // way makes the answer older than the new head, and that is no rollback.
        let known = self.heads.get(id);
        let dto = self.api.get_case(id, known.map(|h| h.seq)).await?;
        // A case of another society (transferred, its sender kept access): its members' keys as
        // the Movement root vouches for that society's root.
        if dto.case.society_id != self.me.society_id
            && self.foreign_trust(dto.case.society_id).is_none()
        {
            self.society_trust(dto.case.society_id).await?;
        }
        let author = dto
            .head_commit
            .as_ref()
            .and_then(|c| parse_commit(&c.0).ok())
            .map(|c| (MemberId::from_uuid(c.body().author), c.body().created_at));
        let mut reloaded = false;
        if author.is_some_and(|(a, at)| self.author_keys(a, at).is_empty()) {
            // A member certified since the directory was loaded.
            self.reload_members().await?;
            reloaded = true;
        }
        if let Some((a, at)) = author {
            if self.author_keys(a, at).is_empty()
                && self.foreign_author_keys(*a.as_uuid(), at).is_empty()
            {
                // Perhaps a member of another society (the case was transferred and its sender
                // kept access): that society's keys, verified through the Movement root.
                let hint: Result<MemberSocietyDto> =
                    self.api.get(&format!("/v1/members/{a}/society")).await;
                if let Ok(h) = hint {
                    if h.society_id != self.me.society_id {
                        self.society_trust(h.society_id).await?;
                    }
                }
            }
        }
        let opened = match self.verify_and_decrypt(id, dto, known) {
            // The author may have rotated their keys since the directory was loaded (their new
            // keys certified, the old ones revoked): reload it once and read the case again.
            Err(ClientError::Tampered(_)) if !reloaded => {
                self.reload_members().await?;
                let dto = self.api.get_case(id, known.map(|h| h.seq)).await?;
                self.verify_and_decrypt(id, dto, known)
            }
            other => other,
        };
        match (opened, known) {
            // The head this client verified may be on a version that the other side's merge
            // replaced here: the merged head descends from it through the merge's second parent.
            (Err(ClientError::Tampered(why)), Some(k)) => match self.open_after_merge(id, k).await?
            {
                Some(opened) => Ok(opened),
                None => Err(ClientError::Tampered(why)),
            },
            (other, _) => other,
        }
    }

    /// Case `id` if its head descends from `known` through a merge's second parent: `known` is a
    /// commit of the version this server kept when it took the other side's merge
    /// (`GET /v1/cases/{id}/merged`), that version's commits link it to their head, and a merge
    /// commit on the chain from the shared commit to the case's head names that head as its second
    /// parent. Everything is linked by hashes to the head, which is verified as a whole as any
    /// head is. None when the server keeps no such version, or `known` is not on it.
    async fn open_after_merge(&self, id: CaseId, known: KnownHead) -> Result<Option<OpenedCase>> {
        let Some(merged) = self.api.case_merged(id).await? else {
            return Ok(None);
        };
        let fork = merged.fork_seq;
        let mut branch: Vec<Commit> = Vec::with_capacity(merged.commits.len());
        for (next, c) in (fork + 1..).zip(&merged.commits) {
            let c = parse_commit(&c.0).map_err(|_| tampered("a kept commit is malformed"))?;
            let linked = match branch.last() {
                Some(before) => c.body().parent == before.hash(),
                None => true,
            };
            if c.body().case_id != *id.as_uuid() || c.body().seq != next || !linked {
                return Ok(None);
            }
            branch.push(c);
        }
        let on_it = known
            .seq
            .checked_sub(fork + 1)
            .and_then(|i| branch.get(usize::try_from(i).ok()?))
            .is_some_and(|c| c.hash() == known.hash);
        let (Some(first), Some(last)) = (branch.first(), branch.last()) else {
            return Ok(None);
        };
        if !on_it {
            return Ok(None);
        }
        let shared = KnownHead {
            seq: fork,
            hash: first.body().parent,
        };
        let dto = self.api.get_case(id, Some(fork)).await?;
        let head = dto
            .head_commit
            .as_ref()
            .and_then(|c| parse_commit(&c.0).ok())
            .ok_or_else(|| tampered("the server sent no head commit for this case"))?;
        let merges_it = dto
            .commits
            .iter()
            .filter_map(|c| parse_commit(&c.0).ok())
            .chain(std::iter::once(head.clone()))
            .any(|c| c.second_parent() == Some(last.hash()));
        if !merges_it {
            return Ok(None);
        }
        check_descends(id, Some(shared), &head, &dto.commits)?;
        self.verify_and_decrypt(id, dto, None).map(Some)
    }

    /// Verifies and decrypts a fetched case, as a whole: the head commit must be signed by a
    /// certified member of the society, descend from the last head this client verified for the
    /// case, and list exactly the records served (none missing, none added, each at the version and
    /// with the bytes it lists); the data key must be the one the head commits to; the status and key
    /// epoch the server states must be the head's. Anything else is refused with
    /// [`ClientError::Tampered`], saying what failed.
    pub fn decrypt_case(&self, id: CaseId, dto: CaseDto) -> Result<OpenedCase> {
        self.verify_and_decrypt(id, dto, self.heads.get(id))
    }

    /// [`Session::decrypt_case`] against `known`, the latest head verified when the case was asked for.
    pub(super) fn verify_and_decrypt(
        &self,
        id: CaseId,
        dto: CaseDto,
        known: Option<KnownHead>,
    ) -> Result<OpenedCase> {
        self.verify_and_decrypt_with(id, dto, known, &|epoch, wrapped| {
            self.unwrap_case_key(id, epoch, wrapped)
        })
    }

    /// [`Session::verify_and_decrypt`] with the data keys unwrapped by `unwrap` (key epoch,
    /// wrapping): a transfer's keys are wrapped to the society's escrow key, not to this member.
    pub(super) fn verify_and_decrypt_with(
        &self,
        id: CaseId,
        dto: CaseDto,
        known: Option<KnownHead>,
        unwrap: &dyn Fn(u32, &[u8]) -> Result<DataKey>,
    ) -> Result<OpenedCase> {
        let opened = self.verify_version(id, dto, known, unwrap)?;
        self.heads.put(id, opened.head)?;
        Ok(opened)
    }

    /// [`Session::verify_and_decrypt_with`] without keeping the head verified: for a version of
    /// the case that is not this server's (the other side's, in a conflict).
    pub(super) fn verify_version(
        &self,
        id: CaseId,
        dto: CaseDto,
        known: Option<KnownHead>,
        unwrap: &dyn Fn(u32, &[u8]) -> Result<DataKey>,
    ) -> Result<OpenedCase> {
        if dto.case.id != id {
            return Err(tampered("the server answered with another case"));
        }
        let head_bytes = dto.head_commit.as_ref().ok_or_else(|| {
            tampered(
                "the server sent no head commit for this case: its commits were deleted, or it is a \
                 format-1 case, which this version does not open",
            )
        })?;
        let head = parse_commit(&head_bytes.0)
            .map_err(|e| tampered(format!("the head commit is malformed: {e}")))?;
        let b = *head.body();
        if b.case_id != *id.as_uuid() {
            return Err(tampered("the head commit belongs to another case"));
        }
        // The very commit this client verified (or made) last time needs no second verification: its
        // hash is in the MAC'd heads store. Anything else is verified.
        let seen = known
            .filter(|k| k.seq == b.seq)
            .and_then(|k| head.clone().verified_before(&k.hash).ok());
        let head = match seen {
            Some(head) => head,
            None => self.verify_author(&head).map_err(|unknown| {
                if unknown {
                    tampered(
                        "the head commit's author is not a member certified by your society's root \
                         (nor by another society's, as the Movement root certifies it), or their keys \
                         were revoked before the commit was signed",
                    )
                } else {
                    tampered("the head commit's signature does not verify")
                }
            })?,
        };
        check_descends(id, known, &head, &dto.commits)?;
        if b.seq != dto.case.version {
            return Err(tampered(
                "the case's version is not its head commit's number",
            ));
        }
        let status = CaseStatus::from_code(b.status)
            .ok_or_else(|| tampered("the head commit states an unknown status"))?;
        if status != dto.case.status {
            return Err(tampered(format!(
                "the case's status was rewritten: the server says {}, its signed head commit says {}",
                dto.case.status.as_str(),
                status.as_str()
            )));
        }
        if b.key_epoch != dto.case.key_epoch {
            return Err(tampered(
                "the case's key epoch is not its head commit's (the server claims a re-key that no \
                 member signed)",
            ));
        }
        let envelopes: Vec<&[u8]> = dto
            .records
            .iter()
            .map(|r| r.envelope.0.as_slice())
            .collect();
        let listed = head.check_records(&envelopes).map_err(|e| {
            tampered(format!(
                "the records do not match the signed head commit: {e}"
            ))
        })?;
        let data_key = unwrap(b.key_epoch, &dto.wrapped_key.0)?;
        if !head.commits_to_key(&data_key) {
            return Err(tampered(
                "the data key the server sent is not the one this case is sealed under",
            ));
        }
        // Records sealed before a re-key keep their epoch: unwrap the keys of just those epochs.
        // Each is checked by the records it opens (AEAD), as no commit at hand commits to it.
        let older_wrapped: Vec<(u32, Vec<u8>)> = dto
            .older_keys
            .iter()
            .map(|k| (k.key_epoch, k.wrapped.0.clone()))
            .collect();
        let mut older_keys = HashMap::new();
        for l in &listed {
            let epoch = l.header.aad.key_epoch;
            if epoch == b.key_epoch || older_keys.contains_key(&epoch) {
                continue;
            }
            let wrapped = older_wrapped
                .iter()
                .find(|(e, _)| *e == epoch)
                .ok_or_else(|| {
                    tampered(format!(
                        "a record is sealed under key epoch {epoch}, whose key the server did not send"
                    ))
                })?;
            older_keys.insert(epoch, unwrap(epoch, &wrapped.1)?);
        }
        let mut header: Option<(RecordId, CaseHeader)> = None;
        let mut file_persons = Vec::new();
        let mut messages = Vec::new();
        let mut notes = Vec::new();
        let mut attachments = Vec::new();
        let mut versions = HashMap::new();
        let mut entries = HashMap::new();
        let mut record_epochs = HashMap::new();
        for (r, l) in dto.records.iter().zip(listed) {
            let h = &l.header;
            // The server's labels must be what the (committed) envelope says.
            if *r.id.as_uuid() != h.aad.record_id
                || crypto_kind(r.kind)? != h.aad.kind
                || r.version != h.aad.version
            {
                return Err(tampered(
                    "a record's id, kind or version differs from its sealed header",
                ));
            }
            let p = if h.aad.key_epoch == b.key_epoch {
                open_record(&data_key, &h.aad, &r.envelope.0)?
            } else {
                let key = older_keys
                    .get(&h.aad.key_epoch)
                    .ok_or_else(|| tampered("a record's key epoch has no key"))?;
                open_record(key, &h.aad, &r.envelope.0).map_err(|_| {
                    tampered(format!(
                        "a record does not open under the data key of its key epoch {}: the key or the record was altered",
                        h.aad.key_epoch
                    ))
                })?
            };
            versions.insert(r.id, (r.kind, r.version));
            record_epochs.insert(r.id, h.aad.key_epoch);
            entries.insert(r.id, l.entry);
            match r.kind {
                RecordKind::CaseHeader => {
                    if header.replace((r.id, decode(&p)?)).is_some() {
                        return Err(tampered("the case has two headers"));
                    }
                }
                RecordKind::Person => {
                    file_persons.push(Entry::new(r.id, decode::<PersonRecord>(&p)?))
                }
                RecordKind::Message => {
                    messages.push(Entry::new(r.id, decode::<RedCrossMessage>(&p)?))
                }
                RecordKind::Note => notes.push(Entry::new(r.id, decode::<Note>(&p)?)),
                RecordKind::Attachment => {
                    attachments.push(Entry::new(r.id, decode::<AttachmentMeta>(&p)?))
                }
            }
        }
        let (header_id, header) = header.ok_or_else(|| tampered("the case has no header"))?;
        let known = KnownHead {
            seq: b.seq,
            hash: head.hash(),
        };
        Ok(OpenedCase {
            summary: dto.case,
            file: CaseFile {
                header,
                persons: file_persons,
                messages,
                notes,
                attachments,
            },
            header_id,
            versions,
            head: known,
            status,
            holders: b.holders,
            entries,
            record_epochs,
            data_key,
            older_keys,
            older_wrapped,
        })
    }
}

/// Checks that `head` is, or descends from, `known` (the last head verified for the case): `chain`
/// must be the commits between the two, each linked to its parent by hash.
pub(super) fn check_descends(
    id: CaseId,
    known: Option<KnownHead>,
    head: &Commit,
    chain: &[Base64Bytes],
) -> Result<()> {
    let Some(known) = known else {
        return Ok(());
    };
    let seq = head.body().seq;
    if seq < known.seq {
        return Err(tampered(format!(
                "the server rolled this case back: you have seen its commit {}, it now serves commit {seq}",
                known.seq
            )));
    }
    if seq == known.seq {
        return if head.hash() == known.hash {
            Ok(())
        } else {
            Err(tampered(format!(
                    "the server serves another commit {seq} than the one you have seen: it forked this case's history"
                )))
        };
    }
    let forked = || {
        tampered(format!(
            "the head commit {seq} does not descend from commit {} that you have seen: the server \
                 forked or rewrote this case's history",
            known.seq
        ))
    };
    if u64::try_from(chain.len()).ok() != Some(seq - known.seq - 1) {
        return Err(forked());
    }
    let mut parent = known.hash;
    for (next, c) in (known.seq + 1..).zip(chain) {
        let c = parse_commit(&c.0).map_err(|_| forked())?;
        let body = c.body();
        if body.case_id != *id.as_uuid() || body.seq != next || body.parent != parent {
            return Err(forked());
        }
        parent = c.hash();
    }
    if head.body().parent != parent {
        return Err(forked());
    }
    Ok(())
}

impl Session {
    /// Unwraps a case's data key: self-wrapped to this holder's key-wrapping key, or age-wrapped to
    /// its age identity (e.g. a key granted by someone else).
    pub(super) fn unwrap_case_key(
        &self,
        id: CaseId,
        epoch: u32,
        wrapped: &[u8],
    ) -> Result<DataKey> {
        match (
            self.unwrap_case_key_with(&self.keys, id, epoch, wrapped),
            &self.retired,
        ) {
            // Still wrapped to the keys this person rotated away from (not re-wrapped yet).
            (Err(ClientError::Tampered(why)), Some(retired)) => self
                .unwrap_case_key_with(retired, id, epoch, wrapped)
                .map_err(|_| ClientError::Tampered(why)),
            (other, _) => other,
        }
    }

    fn unwrap_case_key_with(
        &self,
        keys: &DeviceKeys,
        id: CaseId,
        epoch: u32,
        wrapped: &[u8],
    ) -> Result<DataKey> {
        if rfl_crypto::is_escrow_wrapped(wrapped) {
            return self.unwrap_batched(keys, id, epoch, wrapped);
        }
        if is_self_wrapped(wrapped) {
            unwrap_self_wrapped(wrapped, *id.as_uuid(), epoch, keys.case_key()?).map_err(|_| {
                tampered(
                    "the wrapped data key does not open: it was altered or moved from another case",
                )
            })
        } else {
            // An age decryption (an X25519 agreement, or a token's) per open of a granted case:
            // the same wrapping, bound to the same case and epoch, gives the same key, so it is
            // kept for this session.
            let tag = cache_tag(id, epoch, wrapped);
            if let Some(k) = self.lock_unwrapped()?.get(&tag) {
                return Ok(DataKey::from_bytes(*k.expose_bytes()));
            }
            let key = match unwrap_data_key(wrapped, *id.as_uuid(), epoch, keys.age.as_age()) {
                Err(rfl_crypto::CryptoError::Unwrap)
                | Err(rfl_crypto::CryptoError::WrongKeyBinding)
                | Err(rfl_crypto::CryptoError::Malformed(_)) => Err(tampered(
                    "the wrapped data key does not open: it was altered or moved from another case",
                )),
                other => Ok(other?),
            }?;
            let mut cache = self.lock_unwrapped()?;
            if cache.len() >= MAX_CACHED_KEYS {
                cache.clear();
            }
            cache.insert(tag, DataKey::from_bytes(*key.expose_bytes()));
            Ok(key)
        }
    }

    fn lock_unwrapped(&self) -> Result<std::sync::MutexGuard<'_, HashMap<[u8; 32], DataKey>>> {
        self.unwrapped
            .lock()
            .map_err(|_| ClientError::Invalid("key cache lock poisoned".into()))
    }
}

/// Age-wrapped data keys a session keeps unwrapped (zeroized when dropped).
const MAX_CACHED_KEYS: usize = 8192;

/// What a cached key is filed under: the wrapping's bytes and what it is bound to.
fn cache_tag(id: CaseId, epoch: u32, wrapped: &[u8]) -> [u8; 32] {
    let mut m = Vec::with_capacity(20 + wrapped.len());
    m.extend_from_slice(id.as_uuid().as_bytes());
    m.extend_from_slice(&epoch.to_be_bytes());
    m.extend_from_slice(wrapped);
    rfl_crypto::sha256(&m)
}

impl Session {
    /// A key wrapped to this holder in a batch (a re-key wraps every case it gives one holder
    /// that way): the batch header is opened once (one age decryption), then kept for this
    /// session, so every other case of the batch opens with symmetric operations only.
    fn unwrap_batched(
        &self,
        keys: &DeviceKeys,
        id: CaseId,
        epoch: u32,
        wrapped: &[u8],
    ) -> Result<DataKey> {
        let me = *self.me.member_id.as_uuid();
        let bad = || {
            tampered(
                "the wrapped data key does not open: it was altered or moved from another case",
            )
        };
        let info = rfl_crypto::escrow_wrap_info(wrapped).map_err(|_| bad())?;
        if info.society_id != me {
            return Err(tampered(
                "a data key is wrapped in a batch made for someone else",
            ));
        }
        // Filed under the header's bytes, not the batch id alone: a header the host made up under a
        // real batch's id does not shadow the real one.
        let tag = rfl_crypto::escrow_batch_tag(wrapped).map_err(|_| bad())?;
        let cached = self
            .batches
            .lock()
            .map_err(|_| ClientError::Invalid("batch cache lock poisoned".into()))?
            .get(&tag)
            .cloned();
        let batch = match cached {
            Some(b) => b,
            None => {
                let b =
                    Arc::new(EscrowBatch::open(wrapped, me, keys.age.as_age()).map_err(|_| bad())?);
                let mut cache = self
                    .batches
                    .lock()
                    .map_err(|_| ClientError::Invalid("batch cache lock poisoned".into()))?;
                if cache.len() >= MAX_CACHED_BATCHES {
                    cache.clear();
                }
                cache.insert(tag, b.clone());
                b
            }
        };
        batch
            .unwrap(wrapped, *id.as_uuid(), epoch)
            .map_err(|_| bad())
    }
}

/// Batch headers a session keeps opened (a batch is one re-key request: up to 250 cases).
const MAX_CACHED_BATCHES: usize = 4096;

fn decode<T: serde::de::DeserializeOwned>(plaintext: &[u8]) -> Result<T> {
    serde_json::from_slice(plaintext)
        .map_err(|_| ClientError::Tampered("a record's content is not what its kind says".into()))
}
