//! Cases, their records, key grants and holders (`/v1/cases…`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

use super::{whole, wire, Base64Bytes, RecordKind};
use crate::{CaseId, CaseStatus, MemberId, RecordId, Role, SocietyId};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WrappedKeyDto {
    /// A member id, or the society id for the society escrow key.
    pub recipient_id: Uuid,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub wrapped: Base64Bytes,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecordWriteDto {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: RecordId,
    pub kind: RecordKind,
    /// 1 creates the record; n+1 replaces version n (refused with 409 if the stored version is not n).
    #[serde(deserialize_with = "whole::u64")]
    #[cfg_attr(feature = "openapi", schema(maximum = 9_223_372_036_854_775_807_u64))]
    pub version: u64,
    /// The sealed record envelope (see docs/crypto.md); the commit that lists it authenticates it.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub envelope: Base64Bytes,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewCaseDto {
    /// Chosen by the client (UUIDv7).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: CaseId,
    /// 1 for a new case.
    #[serde(deserialize_with = "whole::u32")]
    #[cfg_attr(feature = "openapi", schema(maximum = 2_147_483_647_u32))]
    pub key_epoch: u32,
    /// The data key wrapped to the creator, to any other holder, and to the society escrow key.
    pub keys: Vec<WrappedKeyDto>,
    pub records: Vec<RecordWriteDto>,
    /// The creating commit (format 2, seq 1), signed by the caller; it lists every record.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub commit: Base64Bytes,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    pub cases: Vec<NewCaseDto>,
}

impl BatchRequest {
    /// The JSON body, written into one buffer sized from the bytes the cases carry (base64 makes
    /// 4 of 3; field names, ids and punctuation are bounded per record and key): a batch is several
    /// megabytes, and growing a buffer by doubling copied it about twice over.
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.json_len_bound());
        serde_json::to_writer(&mut out, self)?;
        Ok(out)
    }

    /// The body in the binary framing ([`wire`]), written into one buffer sized from the bytes the
    /// cases carry.
    pub fn to_wire(&self) -> Result<Vec<u8>, wire::WireError> {
        wire::encode_into(self, Vec::with_capacity(self.wire_len_bound()))
    }

    /// At least the length of [`BatchRequest::to_wire`]: each byte string, its length prefix
    /// (at most 10 bytes), and a bound on the ids and varints around it.
    pub(super) fn wire_len_bound(&self) -> usize {
        let cases: usize = self
            .cases
            .iter()
            .map(|c| {
                let records: usize = c.records.iter().map(|r| r.envelope.0.len() + 48).sum();
                let keys: usize = c.keys.iter().map(|k| k.wrapped.0.len() + 32).sum();
                records + keys + c.commit.0.len() + 64
            })
            .sum();
        cases + 16
    }

    /// At least the length of [`BatchRequest::to_json`], and not much more.
    pub(super) fn json_len_bound(&self) -> usize {
        let b64 = |n: usize| n.div_ceil(3) * 4;
        let cases: usize = self
            .cases
            .iter()
            .map(|c| {
                let records: usize = c
                    .records
                    .iter()
                    .map(|r| b64(r.envelope.0.len()) + 128)
                    .sum();
                let keys: usize = c.keys.iter().map(|k| b64(k.wrapped.0.len()) + 96).sum();
                records + keys + b64(c.commit.0.len()) + 128
            })
            .sum();
        cases + 16
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BatchResponse {
    pub created: usize,
    /// Cases of the batch that were stored already (same id, created by the caller): a re-run of an
    /// interrupted import skips them.
    #[serde(default)]
    pub already_present: usize,
    /// The highest change sequence number the batch was given.
    pub last_seq: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CaseSummaryDto {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: CaseId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub society_id: SocietyId,
    pub status: CaseStatus,
    pub key_epoch: u32,
    /// The number of the case's head commit: every write (records or status) is the next one.
    pub version: u64,
    /// Change sequence number of the case's last change.
    pub seq: i64,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub created_by: MemberId,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
    pub record_count: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CaseListResponse {
    pub cases: Vec<CaseSummaryDto>,
    /// Pass as `after` for the next page; absent on the last page.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub next_after: Option<CaseId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecordDto {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: RecordId,
    pub kind: RecordKind,
    pub version: u64,
    pub key_epoch: u32,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub author_id: MemberId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub envelope: Base64Bytes,
    pub seq: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CaseDto {
    pub case: CaseSummaryDto,
    /// The case data key wrapped to the caller.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub wrapped_key: Base64Bytes,
    /// Every current record, in record-id order (bytewise), as the head commit lists them.
    pub records: Vec<RecordDto>,
    /// The head commit (its number is `case.version`). Absent only for a format-1 case, which
    /// clients refuse.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Byte))]
    pub head_commit: Option<Base64Bytes>,
    /// With `?since=N`: the commits numbered N+1 up to the one before the head, oldest first.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub commits: Vec<Base64Bytes>,
    /// The data keys of the case's earlier key epochs wrapped to the caller, by epoch (records
    /// keep the epoch they were sealed under; a re-key starts a new one). Empty at epoch 1.
    #[serde(default)]
    pub older_keys: Vec<EpochKeyDto>,
}

/// A case data key of one key epoch, wrapped to one recipient.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EpochKeyDto {
    #[serde(deserialize_with = "whole::u32")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 2_147_483_647_u32))]
    pub key_epoch: u32,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub wrapped: Base64Bytes,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WriteRecordsRequest {
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 1000))]
    pub records: Vec<RecordWriteDto>,
    /// The commit (format 2) that makes these writes: the next number after the case's head, its
    /// parent the head's hash, listing the case's whole state after the writes.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub commit: Base64Bytes,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    pub status: CaseStatus,
    /// The signed status commit: the next number after the head, the same records, this status.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub commit: Base64Bytes,
}

/// Wrap a case's current data key to one more member of the society (`POST /v1/cases/{id}/grants`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// The member who gets the case: an active caseworker or admin of the society who does not hold
    /// it yet.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub member_id: MemberId,
    /// The case's current data key, age-wrapped to that member's certified recipient.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub wrapped: Base64Bytes,
    /// The signed grant commit: the next number after the head, the same records, status and key
    /// epoch, and the holders digest with this member added.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub commit: Base64Bytes,
    /// The data keys of every earlier key epoch (1 up to the current one, exclusive), wrapped to
    /// the same member: records sealed before a re-key stay under their epoch's key.
    #[serde(default)]
    pub older_keys: Vec<EpochKeyDto>,
}

/// One holder of a case's current data key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HolderDto {
    /// A member id, or the society id for the society escrow key.
    pub recipient_id: Uuid,
    /// The member's role (none for the escrow key).
    pub role: Option<Role>,
    /// SHA-256 digest of the member's registered public keys (`subject_keys_digest`, lowercase
    /// hex; none for the escrow key): clients check the list against the head commit's holders
    /// digest.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9a-f]{64}$"))]
    pub keys_digest: Option<String>,
    /// When they got the key of this epoch (Unix milliseconds).
    pub since: i64,
}

/// Who holds a case's current data key (`GET /v1/cases/{id}/holders`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HoldersResponse {
    /// The case's current key epoch.
    pub key_epoch: u32,
    pub holders: Vec<HolderDto>,
}

/// `GET /v1/cases/{id}/conflict`: both versions of a case changed on two instances while they were
/// apart (`docs/sync.md`, "Conflicts and merges"), for a client to verify each as a whole and show
/// side by side.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CaseConflictDto {
    /// The number of the last commit both versions share.
    pub fork_seq: u64,
    /// This server's commits from that one to its head, oldest first: they link the other
    /// version to the head the client verifies when it opens the case.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub ours: Vec<Base64Bytes>,
    /// The other version, as a case read serves a case: `case` as its head commit states it,
    /// `head_commit` its head, `commits` its commits after the shared one and before its head,
    /// every record its head lists, and its data keys wrapped to the caller (`wrapped_key` is
    /// empty when the other side did not wrap that version's key to the caller).
    pub theirs: CaseDto,
    /// When this server first kept the other version (Unix milliseconds).
    pub kept_at: i64,
}

/// `GET /v1/conflicts`: the cases the caller holds that are in conflict.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConflictsDto {
    pub conflicts: Vec<ConflictSummaryDto>,
}

/// One case in conflict.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConflictSummaryDto {
    /// The case as this server's version states it.
    pub case: CaseSummaryDto,
    /// The last commit both versions share.
    pub fork_seq: u64,
    /// The number of the other version's head.
    pub their_version: u64,
    /// When this server first kept the other version (Unix milliseconds).
    pub kept_at: i64,
}

/// `POST /v1/cases/{id}/merge`: a merge commit that resolves a case's conflict, with the records it
/// brings (`docs/sync.md`, "Conflicts and merges").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// The records the merge writes, sealed under the case's current key epoch: the other
    /// version's records that this server's lacks, and the records whose content the merge takes
    /// from the other version or brings together, each at a version later than both versions'.
    #[cfg_attr(feature = "openapi", schema(max_items = 1000))]
    pub records: Vec<RecordWriteDto>,
    /// The case's status after the merge: this server's version's or the other's.
    pub status: crate::CaseStatus,
    /// The merge commit (format 4): the next number after this server's head, its parent that
    /// head, its second parent the other version's head, listing the case's whole state after it.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub commit: Base64Bytes,
}

/// `GET /v1/cases/{id}/merged`: the version of a case that a merge from the other side replaced on
/// this server (its commits after the fork), so that a client that verified one of them can see
/// that the merged head descends from it through the merge's second parent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MergedBranchDto {
    /// The number of the last commit both versions shared.
    pub fork_seq: u64,
    /// The replaced version's commits after it, oldest first; the last is its head, which a merge
    /// commit on the case's chain names as its second parent.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub commits: Vec<Base64Bytes>,
}
