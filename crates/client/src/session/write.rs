//! Writing cases: create, import, update (record by record against the version read), status,
//! messages and notes; each write is sealed here and carried by one signed commit.

use super::*;

impl Session {
    // --- cases -------------------------------------------------------------------------------------

    pub async fn create_case(&self, file: &CaseFile) -> Result<CaseSummaryDto> {
        let sealer = self.sealer()?;
        let file = file.clone();
        let dto = tokio::task::spawn_blocking(move || sealer.seal_new_case(&file, today()))
            .await
            .map_err(|e| ClientError::Invalid(format!("sealing task failed: {e}")))??;
        let summary = self
            .api
            .create_case(&dto, &self.sealer()?.escrow_recipient()?)
            .await?;
        let commit = parse_commit(&dto.commit.0)?;
        self.heads.put(
            dto.id,
            KnownHead {
                seq: 1,
                hash: commit.hash(),
            },
        )?;
        Ok(summary)
    }

    /// Bulk import: cases are sealed in parallel on all cores while earlier batches upload, each batch
    /// stored by the server in one transaction. `progress` gets the number of cases done so far.
    ///
    /// Each case's id is derived from its content (and how many identical cases precede it in
    /// `files`) under this holder's key ([`import_case_ids`]), so running the same import again after
    /// a crash of the client or the server writes the same ids: the server skips the cases it stored
    /// already and counts them, and nothing is lost or duplicated. Cases go in id order
    /// ([`import_plan`]), which is what keeps a large import's writes sequential.
    pub async fn import(
        &self,
        files: Vec<CaseFile>,
        batch_size: usize,
        progress: impl Fn(usize),
    ) -> Result<ImportReport> {
        let sealer = self.sealer()?;
        let escrow = sealer.escrow_recipient()?;
        let plan = import_plan(self.keys.case_key()?, files)?;
        let batch_size = batch_size.max(1);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<(usize, Vec<u8>)>>(2);
        let producer = tokio::task::spawn_blocking(move || {
            let today = today();
            let mut rest = plan.into_iter();
            loop {
                let chunk: Vec<(CaseId, CaseFile)> = rest.by_ref().take(batch_size).collect();
                if chunk.is_empty() {
                    return;
                }
                // One escrow batch per request: one age encryption for the whole batch. Each file
                // is dropped on the core that sealed it: freeing 515,000 case files in one go after
                // the last batch took seconds on one core.
                let sealed: Result<Vec<NewCaseDto>> = sealer.escrow_batch().and_then(|batch| {
                    chunk
                        .into_par_iter()
                        .map(|(id, f)| sealer.seal_new_case_in(&batch, &f, id, today))
                        .collect()
                });
                let body =
                    sealed.and_then(|cases| Ok((cases.len(), BatchRequest { cases }.to_wire()?)));
                let failed = body.is_err();
                if tx.blocking_send(body).is_err() || failed {
                    return;
                }
            }
        });
        let report = upload_batches(&self.api, &escrow, rx, progress).await?;
        producer
            .await
            .map_err(|e| ClientError::Invalid(format!("sealing task failed: {e}")))?;
        Ok(report)
    }

    pub async fn list_cases(&self, after: Option<CaseId>, limit: i64) -> Result<CaseListResponse> {
        self.api.list_cases(after, limit).await
    }

    /// Every case this device holds a key for, following pages.
    pub async fn list_all_cases(&self) -> Result<Vec<CaseSummaryDto>> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self.api.list_cases(after, 500).await?;
            out.extend(page.cases);
            match page.next_after {
                Some(a) => after = Some(a),
                None => return Ok(out),
            }
        }
    }

    /// Opens a case, lets `edit` change it, validates the result, and writes every changed or new record
    /// as its next version in one commit. Someone else's commit in between makes this fail with 409;
    /// nothing is lost: open the case again and redo the change.
    pub async fn update_case(
        &self,
        id: CaseId,
        edit: impl FnOnce(&mut CaseFile) -> Result<()>,
    ) -> Result<CaseSummaryDto> {
        let opened = self.open_case(id).await?;
        let mut file = opened.file.clone();
        edit(&mut file)?;
        file.validate(today())?;
        file.pin_person_refs();
        let writes = self.changed_records(&opened, &file)?;
        if writes.is_empty() {
            return Ok(opened.summary);
        }
        self.commit_writes(&opened, writes).await
    }

    /// Signs the commit that puts `writes` (and, for a status commit, `status`) on top of an opened
    /// case's head (for callers that send their own requests).
    pub fn commit_for(
        &self,
        opened: &OpenedCase,
        op: CommitOp,
        status: CaseStatus,
        writes: &[RecordWriteDto],
    ) -> Result<Commit> {
        let entries = opened.entries_after(writes)?;
        self.sealer_for_writes()
            .sign_commit(op, opened.next(), &opened.data_key, status, &entries)
    }

    /// Writes record versions to an opened case with one signed commit on top of its head.
    pub async fn commit_writes(
        &self,
        opened: &OpenedCase,
        writes: Vec<RecordWriteDto>,
    ) -> Result<CaseSummaryDto> {
        let commit = self.commit_for(opened, CommitOp::Records, opened.status, &writes)?;
        let summary = self
            .api
            .write_records(
                opened.summary.id,
                &WriteRecordsRequest {
                    records: writes,
                    commit: commit.as_bytes().to_vec().into(),
                },
            )
            .await?;
        self.record_own_commit(opened.summary.id, &commit)?;
        Ok(summary)
    }

    pub(super) fn record_own_commit(&self, id: CaseId, commit: &Commit) -> Result<()> {
        self.heads.put(
            id,
            KnownHead {
                seq: commit.body().seq,
                hash: commit.hash(),
            },
        )
    }

    pub(crate) fn changed_records(
        &self,
        opened: &OpenedCase,
        file: &CaseFile,
    ) -> Result<Vec<RecordWriteDto>> {
        let sealer = self.sealer_for_writes();
        let id = opened.summary.id;
        let epoch = opened.summary.key_epoch;
        let mut writes = Vec::new();
        let mut seen = HashSet::new();
        let mut put = |rid: RecordId,
                       kind: RecordKind,
                       old: Option<Vec<u8>>,
                       new: Vec<u8>,
                       value: &dyn ErasedRecord|
         -> Result<()> {
            seen.insert(rid);
            if old.as_deref() == Some(new.as_slice()) {
                return Ok(());
            }
            let version = match opened.versions.get(&rid) {
                Some((k, v)) if *k == kind => v + 1,
                Some(_) => {
                    return Err(ClientError::Invalid(
                        "a record id is reused for another kind".into(),
                    ))
                }
                None => 1,
            };
            writes.push(value.seal(&sealer, &opened.data_key, id, rid, kind, version, epoch)?);
            Ok(())
        };
        put(
            opened.header_id,
            RecordKind::CaseHeader,
            Some(serde_json::to_vec(&opened.file.header)?),
            serde_json::to_vec(&file.header)?,
            &file.header,
        )?;
        diff_entries(&opened.file.persons, &file.persons, &mut put)?;
        diff_entries(&opened.file.messages, &file.messages, &mut put)?;
        diff_entries(&opened.file.notes, &file.notes, &mut put)?;
        diff_entries(&opened.file.attachments, &file.attachments, &mut put)?;
        if opened.versions.keys().any(|k| !seen.contains(k)) {
            return Err(ClientError::Invalid(
                "records cannot be deleted from a case".into(),
            ));
        }
        Ok(writes)
    }

    /// Seals one record version for an opened case (for callers that build their own writes).
    pub fn seal_record<T: Serialize>(
        &self,
        opened: &OpenedCase,
        id: RecordId,
        kind: RecordKind,
        version: u64,
        value: &T,
    ) -> Result<RecordWriteDto> {
        self.sealer_for_writes().seal_value(
            &opened.data_key,
            opened.summary.id,
            id,
            kind,
            version,
            opened.summary.key_epoch,
            value,
        )
    }

    pub(super) fn sealer_for_writes(&self) -> Sealer {
        Sealer {
            keys: self.keys.clone(),
            member_id: self.me.member_id,
            society_id: self.me.society_id,
            // Writes to existing records do not wrap keys, and keep the head's holders.
            escrow: None,
            own_holders: None,
        }
    }

    /// Moves the case along the status workflow with a signed status commit (the transition is checked
    /// here first, and again by the server).
    pub async fn set_status(&self, id: CaseId, to: CaseStatus) -> Result<CaseSummaryDto> {
        let opened = self.open_case(id).await?;
        opened
            .status
            .transition(to)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let commit = self.commit_for(&opened, CommitOp::Status, to, &[])?;
        let summary = self
            .api
            .set_status(
                id,
                &StatusRequest {
                    status: to,
                    commit: commit.as_bytes().to_vec().into(),
                },
            )
            .await?;
        self.record_own_commit(id, &commit)?;
        Ok(summary)
    }

    pub async fn add_message(&self, id: CaseId, message: RedCrossMessage) -> Result<RecordId> {
        self.add_record(id, |f, rid| f.messages.push(Entry::new(rid, message)))
            .await
    }

    pub async fn add_note(&self, id: CaseId, note: Note) -> Result<RecordId> {
        self.add_record(id, |f, rid| f.notes.push(Entry::new(rid, note)))
            .await
    }

    /// One new record, under a fresh id, added to the case by `push`.
    async fn add_record(
        &self,
        id: CaseId,
        push: impl FnOnce(&mut CaseFile, RecordId),
    ) -> Result<RecordId> {
        let rid = RecordId::new();
        self.update_case(id, |f| {
            push(f, rid);
            Ok(())
        })
        .await?;
        Ok(rid)
    }
}

/// Sealing for any record type behind one object-safe call.
trait ErasedRecord {
    #[allow(clippy::too_many_arguments)]
    fn seal(
        &self,
        s: &Sealer,
        key: &DataKey,
        case: CaseId,
        id: RecordId,
        kind: RecordKind,
        version: u64,
        epoch: u32,
    ) -> Result<RecordWriteDto>;
}

impl<T: Record> ErasedRecord for T {
    fn seal(
        &self,
        s: &Sealer,
        key: &DataKey,
        case: CaseId,
        id: RecordId,
        kind: RecordKind,
        version: u64,
        epoch: u32,
    ) -> Result<RecordWriteDto> {
        s.seal_value(key, case, id, kind, version, epoch, self)
    }
}

type PutFn<'a> =
    dyn FnMut(RecordId, RecordKind, Option<Vec<u8>>, Vec<u8>, &dyn ErasedRecord) -> Result<()> + 'a;

fn diff_entries<T: Record>(old: &[Entry<T>], new: &[Entry<T>], put: &mut PutFn<'_>) -> Result<()> {
    let before: HashMap<RecordId, &T> = old.iter().map(|e| (e.id, &e.record)).collect();
    for e in new {
        let old_bytes = before.get(&e.id).map(serde_json::to_vec).transpose()?;
        put(
            e.id,
            T::KIND,
            old_bytes,
            serde_json::to_vec(&e.record)?,
            &e.record,
        )?;
    }
    Ok(())
}
