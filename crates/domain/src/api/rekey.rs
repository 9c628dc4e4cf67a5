//! Key epochs and revoked members: re-keying cases (`/v1/cases/rekey`), a member's cases, and
//! the suspended members of other societies who still hold cases.

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

use super::{Base64Bytes, CaseSummaryDto, EpochKeyDto, HolderDto, WrappedKeyDto};
use crate::{CaseId, MemberId, SocietyId};

/// Start the next key epoch of cases (`POST /v1/cases/rekey`): each a new data key wrapped to the
/// holders who keep the case and to the society escrow key, with a signed re-key commit. All or
/// nothing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RekeyRequest {
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 1000))]
    pub cases: Vec<RekeyDto>,
}

/// One case's re-key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RekeyDto {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub case_id: CaseId,
    /// The new epoch's data key wrapped to each holder who keeps the case (members who already
    /// hold it) and to the society escrow key (recipient = the society id).
    pub keys: Vec<WrappedKeyDto>,
    /// The signed re-key commit: the next number after the head, the key epoch one more than the
    /// head's, the same records and status, and the holders digest of the members in `keys`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub commit: Base64Bytes,
    /// The caller's own data keys of every earlier key epoch (1 up to the new one, exclusive, in
    /// order), wrapped to its registered keys: a member who rotated their keys re-wraps the rows
    /// still under the keys they rotated away from. Empty: the caller's earlier rows stay as they are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub own_older_keys: Vec<EpochKeyDto>,
    /// Whose keys `own_older_keys` are, if not the caller's: a society admin re-wrapping the cases
    /// of a member they reset (who lost every authenticator) sends that member's earlier keys,
    /// wrapped to their new certified keys from the escrow key. The member must keep the case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub older_keys_of: Option<MemberId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RekeyResponse {
    /// How many cases are now at their new key epoch.
    pub rekeyed: usize,
}

/// A case a member holds, as a society admin sees it to re-key it (`GET /v1/members/{id}/cases`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MemberCaseDto {
    pub case: CaseSummaryDto,
    /// The case's head commit.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub head_commit: Base64Bytes,
    /// Who holds the case's current data key (checked by clients against the head's holders
    /// digest).
    pub holders: Vec<HolderDto>,
    /// The case's data key of every key epoch wrapped to the society escrow key, oldest first:
    /// listed only for the cases of a member an admin reset (`GET /v1/members/{id}/retired-cases`),
    /// whose keys the admin re-wraps from the escrow key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escrow_keys: Vec<EpochKeyDto>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MemberCasesResponse {
    pub cases: Vec<MemberCaseDto>,
    /// Pass as `after` for the next page; absent on the last page.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub next_after: Option<CaseId>,
}

/// A member of another society, suspended there, who still holds a current key of cases the
/// caller's society owns (shared with them by a transfer that kept the sender's access).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SuspendedHolderDto {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub member_id: MemberId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub society_id: SocietyId,
    /// How many of the caller's society's cases they hold.
    pub cases: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SuspendedHoldersResponse {
    pub holders: Vec<SuspendedHolderDto>,
}

/// How many cases of another society a member holds (a transfer that kept the sender's access).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CasesElsewhereDto {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub society_id: SocietyId,
    pub cases: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CasesElsewhereResponse {
    pub societies: Vec<CasesElsewhereDto>,
}
