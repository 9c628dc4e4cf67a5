//! Part of [`super::Session`]: sealing new cases and record versions, and signing commits ([`Sealer`]); import ids.

use super::*;

/// A write's entry in the case's state (what the commit lists for it).
pub(super) fn entry_of(w: &RecordWriteDto) -> Result<StateEntry> {
    Ok(StateEntry {
        record_id: *w.id.as_uuid(),
        kind: crypto_kind(w.kind)?,
        version: w.version,
        envelope_hash: envelope_hash(&w.envelope.0),
    })
}

pub(super) fn crypto_kind(kind: RecordKind) -> Result<rfl_crypto::RecordKind> {
    u8::try_from(kind.code())
        .ok()
        .and_then(rfl_crypto::RecordKind::from_u8)
        .ok_or_else(|| ClientError::Invalid("record kind has no envelope code".into()))
}

/// What sealing needs, cheap to clone into worker threads.
#[derive(Clone)]
pub struct Sealer {
    pub(super) keys: Arc<DeviceKeys>,
    pub(super) member_id: MemberId,
    pub(super) society_id: SocietyId,
    /// The society escrow key, verified against the pinned root (none for writes that wrap no key).
    pub(super) escrow: Option<rfl_crypto::VerifiedKeys>,
    /// The holders digest of a case only this member holds (computed once: an import seals many);
    /// none in a sealer for writes to existing cases, which cannot create one.
    pub(super) own_holders: Option<[u8; 32]>,
}

impl Sealer {
    #[allow(clippy::too_many_arguments)] // the fields of the record's associated data, each distinct
    pub(super) fn seal_value<T: Serialize>(
        &self,
        key: &DataKey,
        case: CaseId,
        id: RecordId,
        kind: RecordKind,
        version: u64,
        epoch: u32,
        value: &T,
    ) -> Result<RecordWriteDto> {
        let plaintext = Zeroizing::new(serde_json::to_vec(value)?);
        let aad = RecordAad {
            case_id: *case.as_uuid(),
            record_id: *id.as_uuid(),
            kind: crypto_kind(kind)?,
            version,
            key_epoch: epoch,
        };
        let envelope = seal_record(key, &aad, &plaintext)?;
        Ok(RecordWriteDto {
            id,
            kind,
            version,
            envelope: envelope.into(),
        })
    }

    /// Seals version 1 of each entry, as a record of its type's kind.
    fn seal_entries<T: Record>(
        &self,
        key: &DataKey,
        case: CaseId,
        epoch: u32,
        entries: &[Entry<T>],
        out: &mut Vec<RecordWriteDto>,
    ) -> Result<()> {
        for e in entries {
            out.push(self.seal_value(key, case, e.id, T::KIND, 1, epoch, &e.record)?);
        }
        Ok(())
    }

    /// Signs the commit that brings a case to the state `entries` (every current record).
    pub fn sign_commit(
        &self,
        op: CommitOp,
        pos: ChainPos,
        key: &DataKey,
        status: CaseStatus,
        entries: &[StateEntry],
    ) -> Result<Commit> {
        Ok(self
            .commit_body(op, pos, key, status, entries)?
            .sign(&self.keys.signing)?)
    }

    /// Signs a merge commit (format 4) at `pos`, this side's next position, naming the other
    /// version's head `theirs`.
    pub fn sign_merge(
        &self,
        pos: ChainPos,
        theirs: CommitHash,
        key: &DataKey,
        status: CaseStatus,
        entries: &[StateEntry],
    ) -> Result<Commit> {
        Ok(self
            .commit_body(CommitOp::Merge, pos, key, status, entries)?
            .sign_merge(theirs, &self.keys.signing)?)
    }

    /// What this member's commit at `pos` says.
    fn commit_body(
        &self,
        op: CommitOp,
        pos: ChainPos,
        key: &DataKey,
        status: CaseStatus,
        entries: &[StateEntry],
    ) -> Result<CommitBody> {
        let case_id = *pos.case.as_uuid();
        Ok(CommitBody {
            op,
            case_id,
            seq: pos.seq,
            parent: pos.parent,
            key_epoch: pos.epoch,
            key_commitment: key_commitment(key, case_id, pos.epoch),
            status: status.code(),
            author: *self.member_id.as_uuid(),
            created_at: now_millis(),
            state: state_digest(entries)?,
            holders: pos.holders,
        })
    }

    /// A batch for the escrow wrappings of cases sealed together: one age encryption to the society
    /// escrow key the pinned root certifies (the server cannot slip in its own), however many cases
    /// the batch wraps.
    /// The society escrow key this sealer wraps to (its age recipient): what a request carrying its
    /// escrow wrappings names (`Rfl-Escrow-Key`), so the server refuses them if the key was rotated.
    pub fn escrow_recipient(&self) -> Result<String> {
        Ok(self
            .escrow
            .as_ref()
            .ok_or_else(|| ClientError::Invalid("no certified escrow key to wrap to".into()))?
            .age_recipient()
            .to_string())
    }

    pub fn escrow_batch(&self) -> Result<EscrowBatch> {
        Ok(escrow_batch_certified(self.escrow.as_ref().ok_or_else(
            || ClientError::Invalid("no certified escrow key to wrap to".into()),
        )?)?)
    }

    /// Encrypts a whole new case: a fresh data key wrapped to this holder's own key-wrapping key and
    /// to the society escrow key (a batch of one), every record sealed, and the creating commit
    /// signed. Validates the case first.
    pub fn seal_new_case(&self, file: &CaseFile, today: Date) -> Result<NewCaseDto> {
        self.seal_new_case_in(&self.escrow_batch()?, file, CaseId::new(), today)
    }

    /// [`Sealer::seal_new_case`] with the case id given (an import derives it from its input, so a
    /// re-run after a crash writes the same ids), its escrow wrapping in `batch`.
    pub fn seal_new_case_in(
        &self,
        batch: &EscrowBatch,
        file: &CaseFile,
        case: CaseId,
        today: Date,
    ) -> Result<NewCaseDto> {
        file.validate(today)?;
        // References by position would point elsewhere once the records come back in id order.
        let file = file.with_pinned_refs();
        let file = &*file;
        let key = DataKey::generate()?;
        let epoch = FIRST_EPOCH;
        let keys = vec![
            WrappedKeyDto {
                recipient_id: *self.member_id.as_uuid(),
                // No public-key operation: this holder's own symmetric key-wrapping key.
                wrapped: wrap_data_key_to_self(
                    &key,
                    *case.as_uuid(),
                    epoch,
                    self.keys.case_key()?,
                )?
                .into(),
            },
            WrappedKeyDto {
                recipient_id: *self.society_id.as_uuid(),
                // No public-key operation either: the batch's secret was encrypted to the escrow key
                // once.
                wrapped: batch.wrap(&key, *case.as_uuid(), epoch)?.into(),
            },
        ];
        let mut records =
            Vec::with_capacity(1 + file.persons.len() + file.messages.len() + file.notes.len());
        records.push(self.seal_value(
            &key,
            case,
            RecordId::new(),
            RecordKind::CaseHeader,
            1,
            epoch,
            &file.header,
        )?);
        self.seal_entries(&key, case, epoch, &file.persons, &mut records)?;
        self.seal_entries(&key, case, epoch, &file.messages, &mut records)?;
        self.seal_entries(&key, case, epoch, &file.notes, &mut records)?;
        if !file.attachments.is_empty() {
            return Err(ClientError::Invalid(
                "attachments are added to an existing case (rfl attach), not in the case file"
                    .into(),
            ));
        }
        let entries = records.iter().map(entry_of).collect::<Result<Vec<_>>>()?;
        let commit = self.sign_commit(
            CommitOp::Create,
            ChainPos {
                case,
                seq: 1,
                parent: CommitHash::ZERO,
                epoch,
                holders: self.own_holders.ok_or_else(|| {
                    ClientError::Invalid("this sealer writes to existing cases only".into())
                })?,
            },
            &key,
            CaseStatus::Open,
            &entries,
        )?;
        Ok(NewCaseDto {
            id: case,
            key_epoch: epoch,
            keys,
            records,
            commit: commit.as_bytes().to_vec().into(),
        })
    }
}

/// What an import did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Cases stored by this run.
    pub created: usize,
    /// Cases an earlier, interrupted run had stored already.
    pub already_present: usize,
}

/// The case ids an import of `files` uses: derived from each case's content and how many identical
/// cases come before it in `files`, under the holder's key (so the ids say nothing about content to
/// anyone else), as UUIDv8. The same files give the same ids on every run.
pub fn import_case_ids(kwk: &rfl_crypto::CaseWrapKey, files: &[CaseFile]) -> Result<Vec<CaseId>> {
    // The digests on all cores (a JSON serialisation and a hash per case: most of the work), then the
    // occurrence counts in file order.
    let digests: Vec<[u8; 32]> = files
        .par_iter()
        .map(|f| {
            let json = Zeroizing::new(serde_json::to_vec(f)?);
            Ok(rfl_crypto::sha256(&json))
        })
        .collect::<Result<_>>()?;
    // Occurrence numbers in file order (one hash-map pass), then the MACs on all cores as well, under
    // a key derived once (derived per call, a MAC cost four HMACs: 2 s for 515,000 cases on one core).
    let mut seen: HashMap<[u8; 32], u32> = HashMap::with_capacity(digests.len());
    let numbered: Vec<([u8; 32], u32)> = digests
        .into_iter()
        .map(|digest| {
            let n = seen.entry(digest).or_insert(0);
            let this = *n;
            *n += 1;
            (digest, this)
        })
        .collect();
    let mac = kwk.local_state_mac_key();
    numbered
        .par_iter()
        .map(|(digest, n)| {
            let mut msg = Vec::with_capacity(16 + 32 + 4);
            msg.extend_from_slice(b"rfl-import-id-v1");
            msg.extend_from_slice(digest);
            msg.extend_from_slice(&n.to_be_bytes());
            let tag = mac.mac(&msg);
            let mut b = [0u8; 16];
            b.copy_from_slice(&tag[..16]);
            Ok(CaseId::from_uuid(
                uuid::Builder::from_custom_bytes(b).into_uuid(),
            ))
        })
        .collect()
}

/// The order an import sends `files` in: each with its id ([`import_case_ids`]), by ascending id.
///
/// The ids are content-derived and so spread over the whole key space; sent in file order, every
/// batch would dirty a leaf page per case in each index keyed by case id (cases, key wraps, records,
/// commits). Sent in id order, each batch lands on one short run of leaves just past the previous
/// one: a bulk load in key order, the way databases are fastest loaded. Batches stay independent, so
/// a re-run after a crash still finds the same ids wherever it stopped.
pub fn import_plan(
    kwk: &rfl_crypto::CaseWrapKey,
    files: Vec<CaseFile>,
) -> Result<Vec<(CaseId, CaseFile)>> {
    let ids = import_case_ids(kwk, &files)?;
    let mut plan: Vec<(CaseId, CaseFile)> = ids.into_iter().zip(files).collect();
    // Ids are distinct (a MAC over distinct inputs), so the order is total and stable across runs.
    plan.sort_unstable_by_key(|(id, _)| *id);
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rfl_domain::fixtures::synthetic_case;

    #[test]
    fn an_import_plan_is_the_import_ids_in_ascending_order() {
        let kwk = rfl_crypto::CaseWrapKey::generate().unwrap();
        // Two identical cases among them: they get distinct ids by occurrence.
        let mut files: Vec<CaseFile> = (0..200).map(synthetic_case).collect();
        files.push(synthetic_case(7));
        let ids = import_case_ids(&kwk, &files).unwrap();
        let plan = import_plan(&kwk, files.clone()).unwrap();
        assert_eq!(plan.len(), files.len());
        assert!(
            plan.windows(2).all(|w| w[0].0 < w[1].0),
            "strictly ascending"
        );
        // Each case keeps the id the file order gives it, so a re-run finds what it stored.
        for (id, file) in &plan {
            let i = ids.iter().position(|x| x == id).unwrap();
            assert_eq!(&files[i], file);
        }
        assert_eq!(
            import_plan(&kwk, files).unwrap(),
            plan,
            "the same on every run"
        );
    }
}
