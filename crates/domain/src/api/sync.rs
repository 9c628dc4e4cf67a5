//! National society sync (`docs/sync.md`): what a sync reader learns before it reads changes, and
//! the pages of changes it reads.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

use super::{Base64Bytes, CaseSummaryDto, EscrowDto, RecordDto, SocietyTrustResponse};
use crate::SocietyId;

/// `GET /v1/sync/info`: which database this is, and how far the caller's society's changes have
/// got. A sync cursor is (instance, society, sequence number): a cursor that names another
/// instance was read from another database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncInfoDto {
    /// This database's id, made once when it was created.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub instance_id: Uuid,
    /// The caller's society.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub society_id: SocietyId,
    /// The last sequence number of the society's changes (0 before its first).
    pub seq: u64,
}

/// `GET /v1/sync/changes`: one page of a society's changes after a cursor, read in one snapshot.
/// Each case changed after the cursor comes once, in the order of its last change, with what a
/// reader at the cursor lacks of it; everything that matters in it is signed (commits) or sealed
/// (envelopes, wrapped keys), so the reader verifies it as a client does and trusts no server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncPageDto {
    /// The database the page was read from: a cursor is only meaningful there.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub instance_id: Uuid,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub society_id: SocietyId,
    /// The cursor up to which the reader said it holds every change.
    pub since: u64,
    /// Where the page starts.
    pub after: u64,
    /// The cursor after this page: pass it as `after` for the next. On the last page it is the
    /// society's last sequence number, so a reader that has it has every change up to there.
    pub next: u64,
    /// Whether more changes follow `next` (this page was full).
    pub more: bool,
    pub cases: Vec<SyncCaseDto>,
}

/// One case of a [`SyncPageDto`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncCaseDto {
    /// The case as the server states it now; its head commit is the last of `commits`.
    pub case: CaseSummaryDto,
    /// True when the page carries the case whole (every commit from the first, every record):
    /// the reader cannot have seen it at its cursor (a new case, one that came in by a transfer,
    /// one that went through another society since).
    pub whole: bool,
    /// The signed commits the reader lacks, oldest first, each linked to the one before by its
    /// parent hash; the last is the head.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub commits: Vec<Base64Bytes>,
    /// The records written after the cursor (all of them when `whole`) as they are now, in
    /// record-id order; the head's state digest covers every current record.
    pub records: Vec<RecordDto>,
    /// Every wrapped data key of the case: each epoch, each member holder and the society's escrow
    /// key.
    pub keys: Vec<SyncKeyDto>,
}

/// A case data key of one epoch wrapped to one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncKeyDto {
    /// A member id, or the society id for the society escrow key.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub recipient_id: Uuid,
    pub key_epoch: u32,
    /// The escrow key generation of an escrow wrapping; 0 for a member.
    pub escrow_gen: u32,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub wrapped: Base64Bytes,
    /// The digest of the member's keys the wrapping was made for (`subject_keys_digest`), when
    /// the server keeps it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Byte))]
    pub keys_digest: Option<Base64Bytes>,
    /// When the recipient got it (Unix milliseconds).
    pub created_at: i64,
}

/// `POST /v1/sync/changes`: what one server sends another, case by case, in the shape a pull page
/// carries them (a sync agent pushes what it pulled from the other side).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncPushDto {
    pub cases: Vec<SyncCaseDto>,
}

/// What became of each case of a push, in the order sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncPushResponse {
    pub cases: Vec<SyncOutcomeDto>,
}

/// What became of one case's commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncOutcomeDto {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub case_id: crate::CaseId,
    pub outcome: SyncOutcome,
    /// Commits sent that this server held already.
    pub known: u64,
    /// Commits stored.
    pub applied: u64,
    /// The number of the commit the outcome is about: the first that conflicts, or the one
    /// refused (none when the run could not be read as one chain).
    pub at: Option<u64>,
    /// Why it was refused, or what the conflict is; for the sender, never case content.
    pub reason: Option<String>,
}

/// A society's trust material as its sync agent carries it from one instance to the other
/// (`GET /v1/sync/trust` on one side, `PUT /v1/sync/trust` on the other; `docs/sync.md`, "Trust
/// across instances"): what any member reads of it, and the society's escrow key with its
/// identity wrapped to the recovery key (ciphertext: either host holds it already).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncTrustBundle {
    pub trust: SocietyTrustResponse,
    pub escrow: Option<EscrowDto>,
}

/// What a society's trust bundle ([`SyncTrustBundle`]) added to what this server holds (`docs/sync.md`, "Trust across
/// instances"). Sending the same bundle again adds nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncTrustOutcome {
    /// Whether the society's root here changed (it was taken for the first time, or a root
    /// succession moved it on).
    pub root_changed: bool,
    /// Root successions added.
    pub successions: u64,
    /// The Movement root's certificates of the society's roots added or renewed.
    pub movement_certificates: u64,
    /// Key certificates that became their subjects' current ones.
    pub certificates: u64,
    /// Certificates of revoked keys added (commits signed before the revocation still verify).
    pub retired: u64,
    /// Certificates sent that do not verify against the society's roots (left out, as a client
    /// leaves them out).
    pub unverified: u64,
    /// The number of the revocation list taken, if a later one came.
    pub revocation_list: Option<u64>,
    /// Whether the society's escrow key was taken (the first time), or its identity's wrapping
    /// renewed (the recovery key was rotated).
    pub escrow: bool,
}

/// The outcome of one case's commits (`docs/sync.md`, "Push").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SyncOutcome {
    /// Every commit was here already: nothing was written.
    Known,
    /// The commits continue this server's head, and were stored.
    Applied,
    /// The commits were written on a head this server has moved past: both sides changed the case
    /// while apart. Nothing was overwritten: the sender's branch is kept beside this server's own
    /// (or was kept already), the case is marked as in conflict, and a merge commit resolves it.
    Conflict,
    /// The commits were written on a head this server has moved past, and to keep that branch this
    /// server must check every record its head lists: send the case whole (`GET
    /// /v1/sync/cases/{id}` on the sender). Nothing was stored.
    NeedsWhole,
    /// The commits fail verification (parse, chain, author, signature, records, holders) or leave
    /// a gap: none of the case's commits sent was stored.
    Refused,
}

impl SyncPageDto {
    /// At least the length of the page in the binary framing: the bytes carried, and a bound on
    /// the ids and varints around them (an answer is encoded into one buffer of this size).
    pub fn wire_len_bound(&self) -> usize {
        let cases: usize = self.cases.iter().map(SyncCaseDto::wire_len_bound).sum();
        // Two ids (17 bytes each), three u64 varints (up to 10 each), a bool, the case count.
        cases + 96
    }
}

impl SyncCaseDto {
    /// At least the length of the case in the binary framing.
    pub fn wire_len_bound(&self) -> usize {
        let commits: usize = self.commits.iter().map(|b| b.0.len() + 10).sum();
        let records: usize = self.records.iter().map(|r| r.envelope.0.len() + 96).sum();
        let keys: usize = self
            .keys
            .iter()
            .map(|k| k.wrapped.0.len() + k.keys_digest.as_ref().map_or(0, |d| d.0.len()) + 64)
            .sum();
        commits + records + keys + 160
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{wire, RecordKind};
    use crate::{CaseId, CaseStatus, MemberId, RecordId};

    /// A page with every integer at its widest, so its varints are as long as they get.
    fn page(cases: u8) -> SyncPageDto {
        let case = |n: u8| SyncCaseDto {
            case: CaseSummaryDto {
                id: CaseId::new(),
                society_id: SocietyId::new(),
                status: CaseStatus::ClosedAtEnquirerRequest,
                key_epoch: u32::MAX,
                version: u64::MAX,
                seq: i64::MIN,
                created_by: MemberId::new(),
                created_at: i64::MIN,
                updated_at: i64::MAX,
                record_count: None,
            },
            whole: n.is_multiple_of(2),
            commits: (0..n).map(|i| Base64Bytes(vec![i; 255])).collect(),
            records: (0..n)
                .map(|i| RecordDto {
                    id: RecordId::new(),
                    kind: RecordKind::ALL[usize::from(i) % RecordKind::ALL.len()],
                    version: u64::MAX,
                    key_epoch: u32::MAX,
                    author_id: MemberId::new(),
                    envelope: Base64Bytes(vec![i; 100 * usize::from(i) + 1]),
                    seq: i64::MIN,
                    created_at: i64::MIN,
                    updated_at: i64::MIN,
                })
                .collect(),
            keys: (0..3)
                .map(|i| SyncKeyDto {
                    recipient_id: Uuid::from_u128(u128::MAX - i),
                    key_epoch: u32::MAX,
                    escrow_gen: u32::MAX,
                    wrapped: Base64Bytes(vec![n; 250]),
                    keys_digest: (i > 0).then(|| Base64Bytes(vec![7; 32])),
                    created_at: i64::MIN,
                })
                .collect(),
        };
        SyncPageDto {
            instance_id: Uuid::from_u128(1),
            society_id: SocietyId::new(),
            since: u64::MAX,
            after: u64::MAX,
            next: u64::MAX,
            more: true,
            cases: (0..cases).map(|i| case(i + 1)).collect(),
        }
    }

    #[test]
    fn a_page_in_the_binary_framing_says_what_its_json_says_in_one_buffer() {
        for n in [0, 1, 4] {
            let page = page(n);
            let bin = wire::encode_into(&page, Vec::new()).unwrap();
            assert!(page.wire_len_bound() >= bin.len(), "{n}");
            let from_bin: SyncPageDto = wire::decode(&bin).unwrap();
            let from_json: SyncPageDto =
                serde_json::from_slice(&serde_json::to_vec(&page).unwrap()).unwrap();
            assert_eq!(
                serde_json::to_value(&from_bin).unwrap(),
                serde_json::to_value(&from_json).unwrap()
            );
            assert_eq!(wire::encode_into(&from_bin, Vec::new()).unwrap(), bin);
        }
    }
}

/// `GET /v1/sync/checkpoints/{instance}`: this server holds every change of the caller's society
/// numbered up to `seq` on the instance `{instance}` (`docs/sync.md`, "Checkpoints and the agent");
/// `null` if it has never been told. The sync agent sets it after each pass and reads it before
/// the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncCheckpointDto {
    pub seq: Option<u64>,
}

/// `PUT /v1/sync/checkpoints/{instance}`: the checkpoint to keep (see [`SyncCheckpointDto`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetSyncCheckpoint {
    pub seq: u64,
}
