//! National society sync (`docs/sync.md`): what a sync reader learns before it reads changes.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

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
