//! A signed-in device. Everything that touches plaintext happens here.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::sync::Arc;

use rayon::prelude::*;
use rfl_crypto::{
    envelope_hash, is_self_wrapped, key_commitment, open_record, parse_commit, seal_record,
    state_digest, unwrap_data_key, unwrap_self_wrapped, wrap_data_key_to_self, AttachmentOpener,
    AttachmentSealer, Commit, CommitBody, CommitHash, CommitOp, DataKey, DevicePublicKey,
    RecordAad, StateEntry, ATTACHMENT_CHUNK_SIZE,
};
use rfl_domain::api::*;
use rfl_domain::records::Record;
use rfl_domain::{
    AttachmentMeta, CaseFile, CaseHeader, CaseId, CaseStatus, Date, Entry, MemberId, Note,
    PersonRecord, RecordId, RedCrossMessage, Role, SocietyId,
};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::heads::{HeadStore, KnownHead, MemoryHeads};
use crate::http::Api;
use crate::keystore::DeviceKeys;
use crate::{ClientError, Result};

/// Key epoch of a newly created case.
pub const FIRST_EPOCH: u32 = 1;

/// Today's date in UTC, for validation rules that reject the future.
pub fn today() -> Date {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    date_from_unix_days(i64::try_from(secs / 86_400).unwrap_or(0))
}

/// Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
pub fn date_from_unix_days(days: i64) -> Date {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    // The algorithm only yields real dates, so this cannot fail; fall back to a fixed date regardless.
    Date::new(y, m, d)
        .unwrap_or_else(|_| Date::new(2000, 1, 1).unwrap_or_else(|_| unreachable_date()))
}

/// A Unix time in seconds as an RFC 3339 date and time in UTC, e.g. `2026-12-04T09:12:00Z`.
pub fn rfc3339_utc(unix_secs: i64) -> String {
    let date = date_from_unix_days(unix_secs.div_euclid(86_400));
    let secs = unix_secs.rem_euclid(86_400);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        date.year(),
        date.month(),
        date.day(),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[allow(clippy::panic)] // never called: 2000-01-01 is a valid date
fn unreachable_date() -> Date {
    panic!("2000-01-01 is a valid date")
}

/// Now, Unix milliseconds (a commit's `created_at`).
fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A write's entry in the case's state (what the commit lists for it).
fn entry_of(w: &RecordWriteDto) -> Result<StateEntry> {
    Ok(StateEntry {
        record_id: *w.id.as_uuid(),
        kind: crypto_kind(w.kind)?,
        version: w.version,
        envelope_hash: envelope_hash(&w.envelope.0),
    })
}

/// Where a commit goes in its case's chain.
#[derive(Clone, Copy, Debug)]
pub struct ChainPos {
    pub case: CaseId,
    pub seq: u64,
    pub parent: CommitHash,
    pub epoch: u32,
}

pub(crate) fn tampered(what: impl Into<String>) -> ClientError {
    ClientError::Tampered(what.into())
}

fn crypto_kind(kind: RecordKind) -> Result<rfl_crypto::RecordKind> {
    u8::try_from(kind.code())
        .ok()
        .and_then(rfl_crypto::RecordKind::from_u8)
        .ok_or_else(|| ClientError::Invalid("record kind has no envelope code".into()))
}

/// What sealing needs, cheap to clone into worker threads.
#[derive(Clone)]
pub struct Sealer {
    keys: Arc<DeviceKeys>,
    member_id: MemberId,
    society_id: SocietyId,
    /// The society escrow key, verified against the pinned root (none for writes that wrap no key).
    escrow: Option<rfl_crypto::VerifiedKeys>,
}

impl Sealer {
    #[allow(clippy::too_many_arguments)] // the fields of the record's associated data, each distinct
    fn seal_value<T: Serialize>(
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
        }
        .sign(&self.keys.signing)?)
    }

    /// Encrypts a whole new case: a fresh data key wrapped to this holder's own key-wrapping key and
    /// to the society escrow key, every record sealed, and the creating commit signed. Validates the
    /// case first.
    pub fn seal_new_case(&self, file: &CaseFile, today: Date) -> Result<NewCaseDto> {
        self.seal_new_case_with_id(file, CaseId::new(), today)
    }

    /// [`Sealer::seal_new_case`] with the case id given (an import derives it from its input, so a
    /// re-run after a crash writes the same ids).
    pub fn seal_new_case_with_id(
        &self,
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
                // Only to the escrow key the pinned root certifies: the server cannot slip in its own.
                wrapped: rfl_crypto::wrap_data_key_certified(
                    &key,
                    *case.as_uuid(),
                    epoch,
                    self.escrow.as_ref().ok_or_else(|| {
                        ClientError::Invalid("no certified escrow key to wrap to".into())
                    })?,
                )?
                .into(),
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
    /// Each record's entry in the head's state.
    entries: HashMap<RecordId, StateEntry>,
    data_key: DataKey,
}

impl OpenedCase {
    /// Where the next commit of this case goes.
    pub fn next(&self) -> ChainPos {
        ChainPos {
            case: self.summary.id,
            seq: self.head.seq + 1,
            parent: self.head.hash,
            epoch: self.summary.key_epoch,
        }
    }

    /// The case's state after `writes` (each replacing or adding a record).
    fn entries_after(&self, writes: &[RecordWriteDto]) -> Result<Vec<StateEntry>> {
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

/// A device signed in to one server.
pub struct Session {
    api: Api,
    /// The WebAuthn origin the server's relying party expects (for step-up and new authenticators).
    origin: String,
    me: MeResponse,
    keys: Arc<DeviceKeys>,
    /// The society and its escrow key (roles that read no case content do not load it).
    society: Option<SocietyResponse>,
    /// Signing keys of the society's members, by member id: whose signatures count (only keys the
    /// pinned root certifies, and this session's own).
    directory: std::sync::RwLock<HashMap<MemberId, DevicePublicKey>>,
    /// Fingerprint of the society root key this person was given out of band.
    pinned_root: Option<String>,
    /// The keys verified against the pinned root.
    trust: std::sync::RwLock<crate::trust::Trust>,
    /// The latest commit verified for each case (rollback detection).
    heads: Arc<dyn HeadStore>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("member_id", &self.me.member_id)
            .field("role", &self.me.role)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Key login: signs the server's challenge with the device key and takes the access token.
    pub async fn login(
        server: &str,
        member_id: MemberId,
        keys: Arc<DeviceKeys>,
    ) -> Result<Session> {
        let api = Api::new(server)?;
        let ch = api.challenge(&ChallengeRequest { member_id }).await?;
        let sig = rfl_crypto::sign_auth_challenge(&keys.signing, &ch.audience, &ch.challenge.0);
        let tok = api
            .token_for(&TokenRequest {
                challenge_id: ch.challenge_id,
                signature: sig.to_vec().into(),
            })
            .await?;
        Self::with_token(server, tok.token, keys).await
    }

    /// Resumes with an access token from an earlier login.
    pub async fn with_token(server: &str, token: String, keys: Arc<DeviceKeys>) -> Result<Session> {
        let api = Api::new(server)?.with_token(token);
        let me = api.me().await?;
        let mut s = Session {
            origin: server.trim_end_matches('/').to_owned(),
            api,
            me,
            keys,
            society: None,
            directory: Default::default(),
            pinned_root: None,
            trust: Default::default(),
            heads: Arc::new(MemoryHeads::default()),
        };
        if s.me.role.reads_case_content() {
            s.refresh_directory().await?;
        }
        Ok(s)
    }

    pub fn api(&self) -> &Api {
        &self.api
    }

    /// Keeps the verified case heads in `heads` (e.g. [`crate::heads::FileHeads`] beside the keystore,
    /// so rollback is caught across runs) instead of this session's memory.
    pub fn set_heads(&mut self, heads: Arc<dyn HeadStore>) {
        self.heads = heads;
    }

    /// Where this session keeps the case heads it verified.
    pub fn heads(&self) -> &Arc<dyn HeadStore> {
        &self.heads
    }

    /// The WebAuthn origin used in ceremonies (the server's address unless set).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn set_origin(&mut self, origin: &str) {
        origin.clone_into(&mut self.origin);
    }

    /// This person's private keys (in memory only while signed in).
    pub fn keys(&self) -> &DeviceKeys {
        &self.keys
    }

    /// The same keys, shared.
    pub fn keys_arc(&self) -> Arc<DeviceKeys> {
        self.keys.clone()
    }

    /// Uses a new access token (after a step-up).
    pub fn replace_token(&mut self, token: String) {
        self.api = self.api.clone().with_token(token);
    }

    pub fn member_id(&self) -> MemberId {
        self.me.member_id
    }

    pub fn society_id(&self) -> SocietyId {
        self.me.society_id
    }

    pub fn role(&self) -> Role {
        self.me.role
    }

    pub fn token(&self) -> Option<&str> {
        self.api.token()
    }

    /// Reloads the society's member key directory and escrow key.
    pub async fn refresh_directory(&mut self) -> Result<()> {
        self.society = Some(self.api.society().await?);
        self.reload_members().await
    }

    pub(crate) async fn reload_members(&self) -> Result<()> {
        let trust = self.load_trust().await?;
        let mut fresh: HashMap<MemberId, DevicePublicKey> = trust
            .certificates
            .iter()
            .filter_map(|(id, (_, v))| v.signing_key().map(|k| (MemberId::from_uuid(*id), *k)))
            .collect();
        fresh.insert(self.me.member_id, self.keys.signing.public_key());
        *self
            .directory
            .write()
            .map_err(|_| ClientError::Invalid("directory lock poisoned".into()))? = fresh;
        *self
            .trust
            .write()
            .map_err(|_| ClientError::Invalid("trust lock poisoned".into()))? = trust;
        Ok(())
    }

    /// The fingerprint of the society root this session trusts, if pinned.
    pub fn pinned_root(&self) -> Option<&str> {
        self.pinned_root.as_deref()
    }

    /// Pins the society root by the fingerprint given out of band, and reloads the keys it certifies.
    pub async fn pin_root(&mut self, fingerprint: &str) -> Result<()> {
        self.pinned_root = Some(fingerprint.trim().to_owned());
        self.refresh_directory().await
    }

    pub(crate) fn with_trust<T>(&self, f: impl FnOnce(&crate::trust::Trust) -> T) -> Result<T> {
        let t = self
            .trust
            .read()
            .map_err(|_| ClientError::Invalid("trust lock poisoned".into()))?;
        Ok(f(&t))
    }

    fn author_key(&self, author: MemberId) -> Option<DevicePublicKey> {
        self.directory
            .read()
            .ok()
            .and_then(|d| d.get(&author).copied())
    }

    /// The society escrow key as the pinned root certifies it; cases cannot be created without it.
    fn escrow(&self) -> Result<rfl_crypto::VerifiedKeys> {
        if self.pinned_root.is_none() {
            return Err(ClientError::Invalid(
                "pin your society's root key fingerprint first (you were given it with your enrolment code)"
                    .into(),
            ));
        }
        let society = *self.me.society_id.as_uuid();
        let escrow = self
            .with_trust(|t| t.get(society).cloned())?
            .ok_or_else(|| {
                ClientError::Tampered(
                "your society has no escrow key certified by its root (a society admin must run \
                 `rfl society init`), or the server altered it"
                    .into(),
            )
            })?;
        escrow.expect(society, rfl_crypto::CertifiedRole::Escrow)?;
        Ok(escrow)
    }

    pub fn sealer(&self) -> Result<Sealer> {
        Ok(Sealer {
            keys: self.keys.clone(),
            member_id: self.me.member_id,
            society_id: self.me.society_id,
            escrow: Some(self.escrow()?),
        })
    }

    // --- society administration --------------------------------------------------------------------

    pub async fn issue_enrolment_code(&self, role: Role) -> Result<EnrolmentCodeResponse> {
        self.api
            .enrolment_code(&EnrolmentCodeRequest { role })
            .await
    }

    // --- cases -------------------------------------------------------------------------------------

    pub async fn create_case(&self, file: &CaseFile) -> Result<CaseSummaryDto> {
        let sealer = self.sealer()?;
        let file = file.clone();
        let dto = tokio::task::spawn_blocking(move || sealer.seal_new_case(&file, today()))
            .await
            .map_err(|e| ClientError::Invalid(format!("sealing task failed: {e}")))??;
        let summary = self.api.create_case(&dto).await?;
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
    /// already and counts them, and nothing is lost or duplicated.
    pub async fn import(
        &self,
        files: Vec<CaseFile>,
        batch_size: usize,
        progress: impl Fn(usize),
    ) -> Result<ImportReport> {
        let sealer = self.sealer()?;
        let ids = import_case_ids(self.keys.case_key()?, &files)?;
        let batch_size = batch_size.max(1);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<(usize, Vec<u8>)>>(2);
        let producer = tokio::task::spawn_blocking(move || {
            let today = today();
            for (chunk, ids) in files.chunks(batch_size).zip(ids.chunks(batch_size)) {
                let sealed: Result<Vec<NewCaseDto>> = chunk
                    .par_iter()
                    .zip(ids.par_iter())
                    .map(|(f, id)| sealer.seal_new_case_with_id(f, *id, today))
                    .collect();
                let body = sealed.and_then(|cases| {
                    Ok((cases.len(), serde_json::to_vec(&BatchRequest { cases })?))
                });
                let failed = body.is_err();
                if tx.blocking_send(body).is_err() || failed {
                    return;
                }
            }
        });
        let mut report = ImportReport::default();
        while let Some(batch) = rx.recv().await {
            let (n, body) = batch?;
            let resp: BatchResponse = self.api.post_raw_json("/v1/cases/batch", body).await?;
            if resp.created + resp.already_present != n {
                return Err(ClientError::Tampered(
                    "the server stored a different number of cases".into(),
                ));
            }
            report.created += resp.created;
            report.already_present += resp.already_present;
            progress(report.created + report.already_present);
        }
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

    /// Fetches, verifies and decrypts a case.
    pub async fn open_case(&self, id: CaseId) -> Result<OpenedCase> {
        // The head known when asking: a commit of this session that lands while the answer is on its
        // way makes the answer older than the new head, and that is no rollback.
        let known = self.heads.get(id);
        let dto = self.api.get_case(id, known.map(|h| h.seq)).await?;
        let author = dto
            .head_commit
            .as_ref()
            .and_then(|c| parse_commit(&c.0).ok())
            .map(|c| MemberId::from_uuid(c.body().author));
        if author.is_some_and(|a| self.author_key(a).is_none()) {
            // A member certified since the directory was loaded.
            self.reload_members().await?;
        }
        self.verify_and_decrypt(id, dto, known)
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
    fn verify_and_decrypt(
        &self,
        id: CaseId,
        dto: CaseDto,
        known: Option<KnownHead>,
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
        let author = MemberId::from_uuid(b.author);
        let author_key = self.author_key(author).ok_or_else(|| {
            tampered("the head commit's author is not a member certified by your society's root")
        })?;
        let head = head
            .verify(&author_key)
            .map_err(|_| tampered("the head commit's signature does not verify"))?;
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
        let headers = head.check_records(&envelopes).map_err(|e| {
            tampered(format!(
                "the records do not match the signed head commit: {e}"
            ))
        })?;
        let data_key = self.unwrap_case_key(id, b.key_epoch, &dto.wrapped_key.0)?;
        if !head.commits_to_key(&data_key) {
            return Err(tampered(
                "the data key the server sent is not the one this case is sealed under",
            ));
        }
        let mut header: Option<(RecordId, CaseHeader)> = None;
        let mut file_persons = Vec::new();
        let mut messages = Vec::new();
        let mut notes = Vec::new();
        let mut attachments = Vec::new();
        let mut versions = HashMap::new();
        let mut entries = HashMap::new();
        for (r, h) in dto.records.iter().zip(&headers) {
            // The server's labels must be what the (committed) envelope says.
            if *r.id.as_uuid() != h.aad.record_id
                || crypto_kind(r.kind)? != h.aad.kind
                || r.version != h.aad.version
            {
                return Err(tampered(
                    "a record's id, kind or version differs from its sealed header",
                ));
            }
            let p = open_record(&data_key, &h.aad, &r.envelope.0)?;
            versions.insert(r.id, (r.kind, r.version));
            entries.insert(
                r.id,
                StateEntry {
                    record_id: h.aad.record_id,
                    kind: h.aad.kind,
                    version: h.aad.version,
                    envelope_hash: envelope_hash(&r.envelope.0),
                },
            );
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
        self.heads.put(id, known)?;
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
            entries,
            data_key,
        })
    }
}

/// Checks that `head` is, or descends from, `known` (the last head verified for the case): `chain`
/// must be the commits between the two, each linked to its parent by hash.
fn check_descends(
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
    fn unwrap_case_key(&self, id: CaseId, epoch: u32, wrapped: &[u8]) -> Result<DataKey> {
        if is_self_wrapped(wrapped) {
            unwrap_self_wrapped(wrapped, *id.as_uuid(), epoch, self.keys.case_key()?).map_err(|_| {
                tampered("the wrapped data key does not open: it was altered or moved from another case")
            })
        } else {
            match unwrap_data_key(wrapped, *id.as_uuid(), epoch, self.keys.age.as_age()) {
                Err(rfl_crypto::CryptoError::Unwrap)
                | Err(rfl_crypto::CryptoError::WrongKeyBinding)
                | Err(rfl_crypto::CryptoError::Malformed(_)) => Err(tampered(
                    "the wrapped data key does not open: it was altered or moved from another case",
                )),
                other => Ok(other?),
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

    fn record_own_commit(&self, id: CaseId, commit: &Commit) -> Result<()> {
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

    fn sealer_for_writes(&self) -> Sealer {
        Sealer {
            keys: self.keys.clone(),
            member_id: self.me.member_id,
            society_id: self.me.society_id,
            // Writes to existing records do not wrap keys.
            escrow: None,
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
        let rid = RecordId::new();
        self.update_case(id, |f| {
            f.messages.push(Entry::new(rid, message));
            Ok(())
        })
        .await?;
        Ok(rid)
    }

    pub async fn add_note(&self, id: CaseId, note: Note) -> Result<RecordId> {
        let rid = RecordId::new();
        self.update_case(id, |f| {
            f.notes.push(Entry::new(rid, note));
            Ok(())
        })
        .await?;
        Ok(rid)
    }

    /// Encrypts `source` chunk by chunk (never whole in memory), uploads each sealed chunk, then adds the
    /// signed attachment record that commits to the exact chunk stream.
    pub async fn attach(
        &self,
        id: CaseId,
        mut source: impl Read,
        file_name: &str,
        media_type: &str,
        description: Option<String>,
        progress: impl Fn(u64),
    ) -> Result<RecordId> {
        let opened = self.open_case(id).await?;
        let rid = RecordId::new();
        let aad = RecordAad {
            case_id: *id.as_uuid(),
            record_id: *rid.as_uuid(),
            kind: rfl_crypto::RecordKind::Attachment,
            version: 1,
            key_epoch: opened.summary.key_epoch,
        };
        let mut sealer = AttachmentSealer::new(&opened.data_key, &aad)?;
        let mut buf = Zeroizing::new(vec![0u8; ATTACHMENT_CHUNK_SIZE]);
        let mut next = Zeroizing::new(vec![0u8; ATTACHMENT_CHUNK_SIZE]);
        let mut have = read_full(&mut source, &mut buf)?;
        let mut index: u32 = 0;
        let mut size: u64 = 0;
        loop {
            // Look one chunk ahead to know whether this one is the last.
            let next_len = if have == ATTACHMENT_CHUNK_SIZE {
                read_full(&mut source, &mut next)?
            } else {
                0
            };
            let last = next_len == 0;
            let sealed = sealer.seal_chunk(&buf[..have], last)?;
            self.api.put_chunk(id, rid, index, sealed).await?;
            size += have as u64;
            progress(size);
            index += 1;
            if last {
                break;
            }
            std::mem::swap(&mut buf, &mut next);
            have = next_len;
        }
        let digest = sealer.finish()?;
        let meta = AttachmentMeta {
            file_name: file_name.to_owned(),
            media_type: media_type.to_owned(),
            size_bytes: size,
            chunk_count: index,
            sha256: hex_lower(&digest),
            description,
            depicts: None,
        };
        meta.validate()?;
        let write = self.sealer_for_writes().seal_value(
            &opened.data_key,
            id,
            rid,
            RecordKind::Attachment,
            1,
            opened.summary.key_epoch,
            &meta,
        )?;
        self.commit_writes(&opened, vec![write]).await?;
        Ok(rid)
    }

    /// Downloads, verifies and decrypts an attachment into `out`, chunk by chunk. Returns the byte count.
    pub async fn download_attachment(
        &self,
        opened: &OpenedCase,
        attachment: RecordId,
        mut out: impl Write,
    ) -> Result<u64> {
        let entry = opened
            .file
            .attachments
            .iter()
            .find(|e| e.id == attachment)
            .ok_or_else(|| ClientError::Invalid("the case has no such attachment".into()))?;
        let meta = &entry.record;
        let version = opened
            .versions
            .get(&attachment)
            .map(|(_, v)| *v)
            .unwrap_or(1);
        let aad = RecordAad {
            case_id: *opened.summary.id.as_uuid(),
            record_id: *attachment.as_uuid(),
            kind: rfl_crypto::RecordKind::Attachment,
            version,
            key_epoch: opened.summary.key_epoch,
        };
        let digest = parse_hex32(&meta.sha256)
            .ok_or_else(|| ClientError::Tampered("attachment digest malformed".into()))?;
        let mut opener = AttachmentOpener::new(&opened.data_key, &aad)?;
        let mut written = 0u64;
        for index in 0..meta.chunk_count {
            let sealed = self
                .api
                .get_chunk(opened.summary.id, attachment, index)
                .await?;
            let plain = opener
                .open_chunk(&sealed, index + 1 == meta.chunk_count)
                .map_err(|e| {
                    tampered(format!(
                        "attachment chunk {index} does not open ({e}): it was altered, moved or replaced"
                    ))
                })?;
            out.write_all(&plain)?;
            written += plain.len() as u64;
        }
        opener.finish(&digest).map_err(|e| {
            tampered(format!(
                "the attachment's chunks are not the ones its record commits to ({e})"
            ))
        })?;
        if written != meta.size_bytes {
            return Err(ClientError::Tampered(
                "attachment size differs from its signed record".into(),
            ));
        }
        Ok(written)
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

fn decode<T: serde::de::DeserializeOwned>(plaintext: &[u8]) -> Result<T> {
    serde_json::from_slice(plaintext)
        .map_err(|_| ClientError::Tampered("a record's content is not what its kind says".into()))
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
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
    let mut seen: HashMap<[u8; 32], u32> = HashMap::new();
    files
        .iter()
        .map(|f| {
            let json = Zeroizing::new(serde_json::to_vec(f)?);
            let digest = rfl_crypto::sha256(&json);
            let n = seen.entry(digest).or_insert(0);
            let mut msg = Vec::with_capacity(16 + 32 + 4);
            msg.extend_from_slice(b"rfl-import-id-v1");
            msg.extend_from_slice(&digest);
            msg.extend_from_slice(&n.to_be_bytes());
            *n += 1;
            let tag = kwk.local_state_mac(&msg);
            let mut b = [0u8; 16];
            b.copy_from_slice(&tag[..16]);
            Ok(CaseId::from_uuid(
                uuid::Builder::from_custom_bytes(b).into_uuid(),
            ))
        })
        .collect()
}

/// Enrols this device with a one-time code: generates nothing itself, sends only public keys.
pub async fn enrol(server: &str, code: &str, keys: &DeviceKeys) -> Result<EnrolResponse> {
    let api = Api::new(server)?;
    api.enrol(&EnrolRequest {
        code: code.to_owned(),
        signing_key: keys.signing.public_key().as_bytes().to_vec().into(),
        age_recipient: keys.age.recipient().to_string(),
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(date_from_unix_days(0), Date::new(1970, 1, 1).unwrap());
        assert_eq!(date_from_unix_days(19_723), Date::new(2024, 1, 1).unwrap());
        assert_eq!(date_from_unix_days(19_782), Date::new(2024, 2, 29).unwrap());
        assert_eq!(date_from_unix_days(-1), Date::new(1969, 12, 31).unwrap());
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(1_796_375_520), "2026-12-04T09:12:00Z");
        assert_eq!(rfc3339_utc(951_868_799), "2000-02-29T23:59:59Z");
        assert_eq!(rfc3339_utc(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn hex_round_trip() {
        let b = [0xabu8; 32];
        assert_eq!(parse_hex32(&hex_lower(&b)), Some(b));
        assert_eq!(parse_hex32("zz"), None);
    }
}
