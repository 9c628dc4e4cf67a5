//! Rotating the society escrow key (`/v1/society/escrow/rotation…`, society admins): the job record,
//! the escrow wrappings still under the old key, and the batches of new wrappings.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

use super::{whole, Base64Bytes};
use crate::MemberId;

/// The request header that names the society escrow key (its age recipient) the escrow wrappings
/// of a request were made for (`POST /v1/cases`, `/v1/cases/batch`, `/v1/cases/rekey`). The server
/// stores them only if it is the society's current escrow key, so a client that loaded the key
/// before a rotation completed cannot store wrappings that open only with the retired one.
pub const ESCROW_KEY_HEADER: &str = "rfl-escrow-key";

/// Start rotating the society escrow key (`POST /v1/society/escrow/rotation`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StartEscrowRotation {
    /// The new escrow key's age recipient.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^age1[0-9a-z]+$", max_length = 1024)
    )]
    pub recipient: String,
    /// The new escrow identity, age-encrypted to the society's recovery key (1 byte to 16 KiB).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte, min_length = 4, max_length = 21848))]
    pub wrapped_identity: Base64Bytes,
    /// The new key's escrow certificate, signed by the society root, lowercase hex.
    #[cfg_attr(feature = "openapi", schema(pattern = "^([0-9a-f]{2})+$"))]
    pub certificate: String,
}

/// An escrow-key rotation job, running or completed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EscrowRotationDto {
    /// The new key's generation (the society's first escrow key is 1).
    #[serde(deserialize_with = "whole::u32")]
    #[cfg_attr(feature = "openapi", schema(maximum = 2_147_483_647_u32))]
    pub new_gen: u32,
    /// The escrow key being replaced (age recipient).
    pub old_recipient: String,
    /// The new escrow key (age recipient).
    pub recipient: String,
    /// The new escrow identity, age-encrypted to the recovery key: a resumed job opens it again.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub wrapped_identity: Base64Bytes,
    /// The new key's root-signed escrow certificate, lowercase hex.
    pub certificate: String,
    /// Escrow wrappings under the old key when the job started.
    #[serde(deserialize_with = "whole::u64")]
    #[cfg_attr(feature = "openapi", schema(maximum = 9_223_372_036_854_775_807_u64))]
    pub total: u64,
    /// Escrow wrappings moved to the new key since.
    #[serde(deserialize_with = "whole::u64")]
    #[cfg_attr(feature = "openapi", schema(maximum = 9_223_372_036_854_775_807_u64))]
    pub done: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub started_by: MemberId,
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds; absent while the job runs (the old key is the society's until then).
    pub completed_at: Option<i64>,
}

/// One escrow wrapping of a case key (a case and key epoch).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EscrowWrapDto {
    pub case_id: Uuid,
    #[serde(deserialize_with = "whole::u32")]
    #[cfg_attr(feature = "openapi", schema(maximum = 2_147_483_647_u32))]
    pub key_epoch: u32,
    /// The escrow wrapping (docs/crypto.md, "Escrow batches").
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub wrapped: Base64Bytes,
}

/// A page of the escrow wrappings still under the old key (`GET
/// /v1/society/escrow/rotation/wraps`), in (case, epoch) order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EscrowWrapsResponse {
    pub wraps: Vec<EscrowWrapDto>,
}

/// Replace escrow wrappings with ones made for the new key (`POST
/// /v1/society/escrow/rotation/wraps`), in one transaction. A row already moved is left as it is,
/// so a batch sent twice moves nothing the second time.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RotateEscrowWraps {
    /// The generation of the running job's new key.
    #[serde(deserialize_with = "whole::u32")]
    #[cfg_attr(feature = "openapi", schema(maximum = 2_147_483_647_u32))]
    pub new_gen: u32,
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 5000))]
    pub wraps: Vec<EscrowWrapDto>,
}

/// What a batch moved (`POST /v1/society/escrow/rotation/wraps`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RotatedEscrowWraps {
    /// Rows of this batch moved to the new key now.
    pub moved: usize,
    pub rotation: EscrowRotationDto,
}

/// Finish a rotation (`POST /v1/society/escrow/rotation/complete`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CompleteEscrowRotation {
    #[serde(deserialize_with = "whole::u32")]
    #[cfg_attr(feature = "openapi", schema(maximum = 2_147_483_647_u32))]
    pub new_gen: u32,
}

/// What finishing found: completed (the new key is the society's, `left` = 0), or `left` escrow
/// wrappings still under the old key (written while the job ran), and nothing changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EscrowCompletionDto {
    #[serde(deserialize_with = "whole::u64")]
    #[cfg_attr(feature = "openapi", schema(maximum = 9_223_372_036_854_775_807_u64))]
    pub left: u64,
    pub rotation: EscrowRotationDto,
}
