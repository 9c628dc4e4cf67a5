//! The Movement root and transfers of cases between societies (docs/crypto.md, "The Movement root
//! and transfers"): the Movement root's public key (`/v1/movement/root`), its certificates of
//! society roots (`POST /v1/movement/certificates`), another society's trust material
//! (`GET /v1/societies/{id}/trust`), and the transfers themselves (`/v1/cases/{id}/transfers`,
//! `/v1/transfers`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

use super::{Base64Bytes, CaseDto, EpochKeyDto, HolderDto};
use crate::{CaseId, MemberId, SocietyId};

/// The Movement root's public key, set once by a Movement admin.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MovementRootDto {
    /// Raw Ed25519 public key (32 bytes). Clients accept it only if it matches the fingerprint
    /// they pinned at enrolment.
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = String, format = Byte, pattern = "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$", min_length = 44, max_length = 44)
    )]
    pub root_public_key: Base64Bytes,
}

/// A certificate of the Movement root for a society's root.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SocietyCertificateRequest {
    /// The 177-byte society certificate, lowercase hex (`SocietyCertificate::to_hex`).
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9a-f]{354}$"))]
    pub certificate: String,
}

/// A society's trust material, for a member of any society to verify against the Movement root
/// they pinned: the Movement's certificates of the society's roots, the successions from them to
/// the current root, and everything that root certifies.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SocietyTrustResponse {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub society_id: SocietyId,
    /// The society's name, as the server has it (not signed).
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Byte))]
    pub root_public_key: Option<Base64Bytes>,
    /// Every key certificate the society's roots and admins issued, lowercase hex.
    pub certificates: Vec<String>,
    /// The society's latest revocation list, lowercase hex.
    pub revocations: Option<String>,
    /// The society's root successions, oldest first, lowercase hex.
    pub root_successions: Vec<String>,
    /// The Movement root's certificates of the society's roots, lowercase hex.
    pub movement_certificates: Vec<String>,
    /// The society's current escrow key (an age recipient), if set.
    pub escrow_recipient: Option<String>,
}

/// Offer a case to another society (`POST /v1/cases/{id}/transfers`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub to_society: SocietyId,
    /// Whether the sending society's holders keep their keys once the case is accepted (else the
    /// receiving admin starts a new key epoch without them).
    pub keep_access: bool,
    /// The receiving society's escrow key the keys are wrapped to (its current one).
    #[cfg_attr(feature = "openapi", schema(max_length = 1024))]
    pub escrow_recipient: String,
    /// The case's version (head commit number) the offer is made at.
    #[serde(deserialize_with = "super::whole::u64")]
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 1, maximum = 9_223_372_036_854_775_807_u64)
    )]
    pub case_version: u64,
    /// The case's data key of every key epoch, 1 to the current one, in order, each wrapped to the
    /// receiving society's escrow key.
    pub keys: Vec<EpochKeyDto>,
}

/// A transfer of a case between two societies.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TransferDto {
    pub id: Uuid,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub case_id: CaseId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub from_society: SocietyId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub to_society: SocietyId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub offered_by: MemberId,
    /// Unix milliseconds.
    pub offered_at: i64,
    /// The case's version and key epoch at the offer.
    pub case_version: u64,
    pub key_epoch: u32,
    pub keep_access: bool,
    /// `pending`, `accepted`, `rejected` (by the receiving society) or `cancelled` (by the
    /// sending one).
    pub state: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub decided_by: Option<MemberId>,
    /// Unix milliseconds.
    pub decided_at: Option<i64>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub assigned_to: Option<MemberId>,
}

/// Transfers from or to the caller's society, newest first (`GET /v1/transfers`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TransferListResponse {
    pub transfers: Vec<TransferDto>,
}

/// A pending transfer to the caller's society with the case as it stands
/// (`GET /v1/transfers/{id}/case`): `case.wrapped_key` and `case.older_keys` are the offered keys,
/// wrapped to the society's escrow key; `holders`, the current holders with their keys' digests.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TransferCaseResponse {
    pub transfer: TransferDto,
    pub case: CaseDto,
    pub holders: Vec<HolderDto>,
}

/// Accept a transfer (`POST /v1/transfers/{id}/accept`): the transfer commit, signed by the
/// accepting admin, and the case's keys for the assignee and the society's escrow key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AcceptTransferRequest {
    /// The caseworker or admin of the receiving society who will hold the case.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub assign: MemberId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub commit: Base64Bytes,
    /// The data key of every epoch, 1 to the commit's, wrapped to the assignee.
    pub member_keys: Vec<EpochKeyDto>,
    /// The same keys wrapped to the society's escrow key `escrow_recipient`.
    pub escrow_keys: Vec<EpochKeyDto>,
    #[cfg_attr(feature = "openapi", schema(max_length = 1024))]
    pub escrow_recipient: String,
}

/// The society a member belongs to (`GET /v1/members/{id}/society`): a hint the client checks by
/// verifying that society's keys through the Movement root.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MemberSocietyDto {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub society_id: SocietyId,
}
