//! A signed-in device. Everything that touches plaintext happens here.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::sync::Arc;

use futures_util::StreamExt;
use rayon::prelude::*;
use rfl_crypto::{
    envelope_hash, escrow_batch_certified, holders_digest, is_self_wrapped, key_commitment,
    open_record, parse_commit, seal_record, state_digest, subject_keys_digest, unwrap_data_key,
    unwrap_self_wrapped, wrap_data_key_to_self, AttachmentOpener, AttachmentSealer, Commit,
    CommitBody, CommitHash, CommitOp, DataKey, DeviceVerifier, EscrowBatch, Holder, RecordAad,
    StateEntry, ATTACHMENT_CHUNK_SIZE,
};
use rfl_domain::api::*;
use rfl_domain::records::Record;
use rfl_domain::{
    AttachmentMeta, CaseFile, CaseHeader, CaseId, CaseStatus, Date, Entry, MemberId, Note,
    PersonRecord, RecordId, RedCrossMessage, Role, SocietyId,
};
use serde::Serialize;
use zeroize::Zeroizing;

mod attachments;
mod grants;
mod open;
mod rekey;
mod reset;
mod revoked_holders;
mod rotate;
mod seal;
mod transfers;

pub use grants::{CaseHolder, CaseHolders};
pub use open::OpenedCase;
pub use rekey::RekeySummary;
pub use revoked_holders::{ForeignHolder, RekeyedHolder, RevokedHolders};
pub use rotate::{KeyRotation, RotationReport};
use seal::{crypto_kind, entry_of};
pub use seal::{import_case_ids, import_plan, ImportReport, Sealer};

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

/// Where a commit goes in its case's chain.
#[derive(Clone, Copy, Debug)]
pub struct ChainPos {
    pub case: CaseId,
    pub seq: u64,
    pub parent: CommitHash,
    pub epoch: u32,
    /// The holders digest the next commit states (unchanged, unless it grants or re-keys).
    pub holders: [u8; 32],
}

/// Whether a signature by keys revoked at `revoked_at` (Unix seconds; `None`: not revoked) counts on a
/// commit dated `created_at_ms`: yes up to and within the second of the revocation.
fn signature_counts(revoked_at: Option<i64>, created_at_ms: i64) -> bool {
    revoked_at.is_none_or(|at| created_at_ms.div_euclid(1000) <= at)
}

/// This member as a holder of the case keys wrapped to their keys.
pub(crate) fn holder_of(keys: &DeviceKeys, member: MemberId) -> Holder {
    Holder {
        member_id: *member.as_uuid(),
        keys_digest: subject_keys_digest(Some(&keys.signing.public_key()), &keys.age.recipient()),
    }
}

pub(crate) fn tampered(what: impl Into<String>) -> ClientError {
    ClientError::Tampered(what.into())
}

/// Certified signing keys by member, each with when it was revoked (Unix seconds), if it was.
type Directory = HashMap<MemberId, Vec<(DeviceVerifier, Option<i64>)>>;

/// A device signed in to one server.
pub struct Session {
    api: Api,
    /// The WebAuthn origin the server's relying party expects (for step-up and new authenticators).
    origin: String,
    me: MeResponse,
    keys: Arc<DeviceKeys>,
    /// The keys this person rotated away from, while some of their case keys are still wrapped to
    /// them (`rfl keys rotate` re-wraps those): they open, never seal or sign.
    retired: Option<Arc<DeviceKeys>>,
    /// The society and its escrow key (roles that read no case content do not load it).
    society: Option<SocietyResponse>,
    /// Signing keys of the society's members, by member id: whose signatures count (only keys the
    /// pinned root certifies, and this session's own).
    /// Certified signing keys by member (several after a rotation), each with the time (Unix
    /// seconds) it was revoked, if it was: a revoked key's signature counts only on a commit dated
    /// before it.
    directory: std::sync::RwLock<Directory>,
    /// Fingerprint of the society root key this person was given out of band.
    pinned_root: Option<String>,
    /// The keys verified against the pinned root.
    trust: std::sync::RwLock<crate::trust::Trust>,
    /// Fingerprint of the Movement root this person was given out of band.
    pinned_movement: Option<String>,
    /// Other societies' keys, verified through the pinned Movement root, by society (loaded for a
    /// transfer, and for the cases whose commits their members signed).
    foreign: std::sync::RwLock<HashMap<SocietyId, Arc<crate::trust::Trust>>>,
    /// Members whose society this session has asked the server for (`load_member_societies`):
    /// asked once, not once per page that names them.
    asked_society: std::sync::Mutex<HashSet<uuid::Uuid>>,
    /// The latest commit verified for each case (rollback detection).
    heads: Arc<dyn HeadStore>,
    /// Batches of keys wrapped to this holder whose header was opened, by `escrow_batch_tag`
    /// (their secrets zeroized when dropped).
    batches: std::sync::Mutex<HashMap<[u8; 32], Arc<EscrowBatch>>>,
    /// Age-wrapped data keys unwrapped this session, by a hash of the wrapping and its binding
    /// (`open::cache_tag`).
    unwrapped: std::sync::Mutex<HashMap<[u8; 32], DataKey>>,
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
        // Keys prepared for a rotation are used once the server has switched to them (an admin
        // certified them); the keys they replace then only open what is still wrapped to them.
        let (keys, retired) = match (keys.next(), &me.signing_key, &me.age_recipient) {
            (Some(next), Some(signing), Some(recipient)) if next.is(&signing.0, recipient) => {
                (next.clone(), Some(keys))
            }
            _ => (keys, None),
        };
        let mut s = Session {
            origin: server.trim_end_matches('/').to_owned(),
            api,
            me,
            keys,
            retired,
            society: None,
            directory: Default::default(),
            pinned_root: None,
            trust: Default::default(),
            pinned_movement: None,
            foreign: Default::default(),
            asked_society: Default::default(),
            heads: Arc::new(MemoryHeads::default()),
            batches: Default::default(),
            unwrapped: Default::default(),
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

    /// The keys this person rotated away from, while case keys are still wrapped to them.
    pub fn retired_keys(&self) -> Option<&Arc<DeviceKeys>> {
        self.retired.as_ref()
    }

    /// The key bundle as the person's authenticators hold it: during a rotation, the keys rotated
    /// away from with the new ones as their `next`; otherwise the keys in use.
    pub fn bundle_keys(&self) -> &Arc<DeviceKeys> {
        self.retired.as_ref().unwrap_or(&self.keys)
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
        // Each certified key decompressed once: a first open verifies one head by one of them. A
        // certified "key" that is no curve point verifies nothing, so its member is left out.
        let revoked = trust
            .revoked
            .iter()
            .flat_map(|(id, certs)| certs.iter().map(move |(_, v, at)| (id, v, Some(*at))));
        let mut fresh: Directory = HashMap::new();
        for (id, v, at) in
            revoked.chain(trust.certificates.iter().map(|(id, (_, v))| (id, v, None)))
        {
            if let Some(k) = v.signing_key().and_then(|k| k.verifier().ok()) {
                fresh
                    .entry(MemberId::from_uuid(*id))
                    .or_default()
                    .push((k, at));
            }
        }
        let own = self.keys.signing.public_key();
        let mine = fresh.entry(self.me.member_id).or_default();
        mine.retain(|(k, _)| k.public_key() != own);
        mine.push((own.verifier()?, None));
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

    /// The fingerprint of the Movement root this session trusts, if pinned.
    pub fn pinned_movement(&self) -> Option<&str> {
        self.pinned_movement.as_deref()
    }

    /// Pins the Movement root by the fingerprint given out of band: other societies' keys count
    /// only if it certifies their root.
    pub fn pin_movement(&mut self, fingerprint: &str) {
        self.pinned_movement = Some(fingerprint.trim().to_owned());
    }

    pub(crate) fn foreign_trust(&self, society: SocietyId) -> Option<Arc<crate::trust::Trust>> {
        self.foreign.read().ok()?.get(&society).cloned()
    }

    /// Every other society's keys this session verified.
    pub(crate) fn foreign_trusts(&self) -> Vec<Arc<crate::trust::Trust>> {
        self.foreign
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Loads, through the Movement root, the keys of the societies of `holders` this session does
    /// not know (a case shared by transfer): asks which society each unknown one belongs to.
    pub(crate) async fn load_holder_societies(&self, holders: &[Holder]) -> Result<()> {
        self.load_member_societies(holders.iter().map(|h| h.member_id))
            .await
    }

    /// Loads, through the Movement root, the keys of the societies of `members` this session does
    /// not know: asks which society each unknown one belongs to.
    pub(crate) async fn load_member_societies(
        &self,
        members: impl IntoIterator<Item = uuid::Uuid>,
    ) -> Result<()> {
        let unknown: Vec<uuid::Uuid> = self.with_trust(|t| {
            members
                .into_iter()
                .filter(|m| {
                    *m != *self.me.member_id.as_uuid() && t.get(*m).is_none() && !t.is_revoked(*m)
                })
                .collect()
        })?;
        let mut societies = HashSet::new();
        for m in unknown {
            if self
                .foreign_trusts()
                .iter()
                .any(|f| f.get(m).is_some() || f.is_revoked(m))
            {
                continue;
            }
            // A member answered for before (an uncertified one of this society, or one whose
            // society's keys were loaded then) is not asked about again.
            if self
                .asked_society
                .lock()
                .is_ok_and(|asked| asked.contains(&m))
            {
                continue;
            }
            let hint: Result<MemberSocietyDto> =
                self.api.get(&format!("/v1/members/{m}/society")).await;
            if let Ok(h) = hint {
                if h.society_id != self.me.society_id && societies.insert(h.society_id) {
                    self.society_trust(h.society_id).await?;
                }
                if let Ok(mut asked) = self.asked_society.lock() {
                    asked.insert(m);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn keep_foreign_trust(&self, society: SocietyId, trust: Arc<crate::trust::Trust>) {
        if let Ok(mut m) = self.foreign.write() {
            m.insert(society, trust);
        }
    }

    pub(crate) fn with_trust<T>(&self, f: impl FnOnce(&crate::trust::Trust) -> T) -> Result<T> {
        let t = self
            .trust
            .read()
            .map_err(|_| ClientError::Invalid("trust lock poisoned".into()))?;
        Ok(f(&t))
    }

    /// The certified key of `author` for a commit dated `created_at_ms`: none if the author is not
    /// certified, or if their keys were revoked before that time. A revocation is dated to the
    /// second (as certificates are), so a commit dated within the second of the revocation still
    /// counts: it may have been made just before it.
    fn author_keys(&self, author: MemberId, created_at_ms: i64) -> Vec<DeviceVerifier> {
        let Ok(dir) = self.directory.read() else {
            return Vec::new();
        };
        dir.get(&author)
            .map(|keys| {
                keys.iter()
                    .filter(|(_, revoked_at)| signature_counts(*revoked_at, created_at_ms))
                    .map(|(k, _)| *k)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The keys of `author`, a member of another society whose keys this session verified through
    /// the Movement root, that count for a commit dated `created_at_ms`.
    pub(super) fn foreign_author_keys(
        &self,
        author: uuid::Uuid,
        created_at_ms: i64,
    ) -> Vec<DeviceVerifier> {
        let Ok(foreign) = self.foreign.read() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for t in foreign.values() {
            let current = t.get(author).map(|v| (v.clone(), None));
            let revoked = t
                .revoked
                .get(&author)
                .into_iter()
                .flatten()
                .map(|(_, v, at)| (v.clone(), Some(*at)));
            for (v, at) in current.into_iter().chain(revoked) {
                if signature_counts(at, created_at_ms) {
                    if let Some(k) = v.signing_key().and_then(|k| k.verifier().ok()) {
                        out.push(k);
                    }
                }
            }
        }
        out
    }

    /// `commit` verified under a certified key of its author that counts at its date: `Err(true)`
    /// if the author has none, `Err(false)` if none verifies it.
    fn verify_author(
        &self,
        commit: &Commit,
    ) -> std::result::Result<rfl_crypto::VerifiedCommit, bool> {
        let b = commit.body();
        let mut keys = self.author_keys(MemberId::from_uuid(b.author), b.created_at);
        if keys.is_empty() {
            keys = self.foreign_author_keys(b.author, b.created_at);
        }
        if keys.is_empty() {
            return Err(true);
        }
        keys.iter()
            .find_map(|k| commit.clone().verify_by(k).ok())
            .ok_or(false)
    }

    /// The society escrow key as the pinned root certifies it; cases cannot be created without it.
    pub(crate) fn escrow(&self) -> Result<rfl_crypto::VerifiedKeys> {
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
            own_holders: Some(holders_digest(&[holder_of(&self.keys, self.me.member_id)])?),
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

pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

/// Import requests in flight at once (see [`upload_batches`]).
const IMPORT_REQUESTS_IN_FLIGHT: usize = 2;

/// Sends bulk-import bodies (`POST /v1/cases/batch`, each with the number of cases in it) as they
/// come, with two requests in flight: the server checks one batch (parsing, signatures) while it
/// writes the other, so neither its cores nor its single SQLite writer wait on the other. Batches are
/// independent (each all or nothing, ids fixed by content), so their order does not matter. Stops at
/// the first error, of the producer or of the server. `escrow`: the society escrow key (age
/// recipient) the cases' escrow wrappings were made for.
pub async fn upload_batches(
    api: &Api,
    escrow: &str,
    rx: tokio::sync::mpsc::Receiver<Result<(usize, Vec<u8>)>>,
    progress: impl Fn(usize),
) -> Result<ImportReport> {
    let batches =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    let mut uploads = std::pin::pin!(batches
        .map(|batch| async move {
            let (n, body) = batch?;
            let resp = api.create_batch_wire(body, escrow).await?;
            if resp.created + resp.already_present != n {
                return Err(ClientError::Tampered(
                    "the server stored a different number of cases".into(),
                ));
            }
            Ok(resp)
        })
        .buffer_unordered(IMPORT_REQUESTS_IN_FLIGHT));
    let mut report = ImportReport::default();
    while let Some(resp) = uploads.next().await {
        let resp = resp?;
        report.created += resp.created;
        report.already_present += resp.already_present;
        progress(report.created + report.already_present);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_revoked_signature_counts_up_to_the_second_of_its_revocation() {
        assert!(super::signature_counts(None, i64::MAX));
        assert!(super::signature_counts(Some(100), 99_999));
        assert!(
            super::signature_counts(Some(100), 100_999),
            "within the second"
        );
        assert!(!super::signature_counts(Some(100), 101_000));
        assert!(!super::signature_counts(Some(-1), 0));
    }

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
}
