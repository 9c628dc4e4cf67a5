//! The society, its members and enrolment codes (`/v1/society…`, `/v1/members`, and the server
//! admin commands).

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

use super::{Base64Bytes, NextKeysDto};
use crate::{MemberId, Role, SocietyId};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EscrowDto {
    /// The society escrow key's age recipient: every case key is also wrapped to it.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^age1[0-9a-z]+$", max_length = 1024)
    )]
    pub recipient: String,
    /// The escrow identity, age-encrypted to the society's offline recovery key (1 byte to 16 KiB).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte, min_length = 4, max_length = 21848))]
    pub wrapped_identity: Base64Bytes,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SocietyResponse {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: SocietyId,
    pub name: String,
    pub escrow: Option<EscrowDto>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MemberDto {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: MemberId,
    pub role: Role,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub signing_key: Base64Bytes,
    pub age_recipient: String,
    pub suspended: bool,
    /// Keys the member registered to rotate to, until an admin certifies them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_keys: Option<NextKeysDto>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MembersResponse {
    pub members: Vec<MemberDto>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrolmentCodeRequest {
    pub role: Role,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrolmentCodeResponse {
    /// Names the code for listing and revoking it: the hex SHA-256 the server keeps (not the code).
    pub id: String,
    /// Shown once; the server keeps only its hash.
    pub code: String,
    pub role: Role,
    /// Unix seconds.
    pub expires_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrolmentCodeInfo {
    /// The hex SHA-256 of the code.
    pub id: String,
    pub role: Role,
    /// Unix seconds.
    pub created_at: i64,
    pub expires_at: i64,
    /// Unix seconds; absent while unused.
    pub used_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrolmentCodesResponse {
    pub codes: Vec<EnrolmentCodeInfo>,
}

/// A new wrapping of the society escrow identity, to a new recovery key
/// (`PUT /v1/society/escrow/recovery`): the escrow key itself is unchanged.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecoveryRotation {
    /// The society escrow key's age recipient, as it is (the wrapping is of its identity).
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^age1[0-9a-z]+$", max_length = 1024)
    )]
    pub recipient: String,
    /// SHA-256 of the wrapping being replaced, lowercase hex: refused with 409 if it changed.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9a-f]{64}$"))]
    pub replaces_sha256: String,
    /// The escrow identity, age-encrypted to the new recovery key (1 byte to 16 KiB).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte, min_length = 4, max_length = 21848))]
    pub wrapped_identity: Base64Bytes,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateSocietyRequest {
    /// The national society's name, e.g. "Belgian Red Cross-Flanders": 1 to 200 characters, not
    /// all white space (the server trims it).
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 200,
            pattern = "[^\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
        )
    )]
    pub name: String,
    /// The id another instance already gave the society (its own server, when the society is
    /// registered on the hub it syncs with); without it the society gets a new id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub id: Option<SocietyId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateSocietyResponse {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub society_id: SocietyId,
    /// One-time enrolment code of the society's first admin; give it over a trusted channel.
    pub admin_enrolment_code: String,
}
