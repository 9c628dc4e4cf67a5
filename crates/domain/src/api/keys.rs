//! Rotating a person's keys (docs/crypto.md, "Rotating a person's keys"): the keys a member
//! registers to rotate to (`PUT /v1/me/next-keys`), and the admin's certificate of them, which
//! switches the member to them (`POST /v1/members/{id}/keys`).

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

use super::Base64Bytes;

/// Public keys a member will rotate to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NextKeysDto {
    /// The new Ed25519 device signing public key (32 bytes).
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = String, format = Byte, pattern = "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$", min_length = 44, max_length = 44)
    )]
    pub signing_key: Base64Bytes,
    /// The new age recipient.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^age1[0-9a-z]+$", max_length = 1024)
    )]
    pub age_recipient: String,
}

/// An admin's certificate of a member's next keys, with the revocation list that revokes the keys
/// they rotate away from (`POST /v1/members/{id}/keys`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SwitchKeysRequest {
    /// The certificate of the member's next keys, lowercase hex (`KeyCertificate::to_hex`).
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^([0-9a-f]{2})+$", min_length = 2, max_length = 8192)
    )]
    pub certificate: String,
    /// The society's next revocation list, lowercase hex, listing the member's current keys.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^([0-9a-f]{2})+$", min_length = 2)
    )]
    pub revocations: String,
}

/// An admin's reset of a member who lost every authenticator (`POST /v1/members/{id}/reset`): the
/// revocation list that revokes the member's keys. The answer is a one-time code that re-enrols the
/// member with new keys and a new passkey.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ResetMemberRequest {
    /// The society's next revocation list, lowercase hex, listing the member's current keys.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^([0-9a-f]{2})+$", min_length = 2)
    )]
    pub revocations: String,
}
