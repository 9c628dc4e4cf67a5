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
mod authors;
mod conflicts;
mod grants;
mod open;
mod rekey;
mod reset;
mod revoked_holders;
mod rotate;
mod seal;
mod transfers;
mod write;

pub use conflicts::{
    differences, CaseConflict, Difference, MergePlan, MergeReport, Side, SignedMerge,
};
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
