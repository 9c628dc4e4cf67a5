//! Enrolment and sign-in (`/v1/enrol`, `/v1/auth/…`, `/v1/me`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

use super::Base64Bytes;
use crate::{MemberId, Role, SocietyId};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// The one-time enrolment code an admin gave you.
    pub code: String,
    /// Ed25519 device public key (32 bytes).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte, pattern = "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$", min_length = 44, max_length = 44))]
    pub signing_key: Base64Bytes,
    /// age recipient (`age1…`: X25519, or an age plugin's such as `age1yubikey1…`) that case keys
    /// are wrapped to.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^age1[0-9a-z]+$", max_length = 1024)
    )]
    pub age_recipient: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrolResponse {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub member_id: MemberId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub society_id: SocietyId,
    pub role: Role,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub member_id: MemberId,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChallengeResponse {
    pub challenge_id: Uuid,
    /// Random bytes to sign with the device key, bound to `audience`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub challenge: Base64Bytes,
    pub audience: String,
    /// Unix seconds after which the challenge is refused.
    pub expires_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub challenge_id: Uuid,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub signature: Base64Bytes,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenResponse {
    pub token: String,
    pub token_type: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// After a passkey sign-in: the client's wrapping of the person's private keys for the
    /// authenticator used (opaque to the server; only that authenticator's PRF output opens it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Byte))]
    pub key_wrap: Option<Base64Bytes>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MeResponse {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub member_id: MemberId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub society_id: SocietyId,
    pub role: Role,
    /// The caller's registered device signing public key: after a rotation of their keys, the
    /// client uses the keys prepared for it once this names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Byte))]
    pub signing_key: Option<Base64Bytes>,
    /// The caller's registered age recipient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_recipient: Option<String>,
}
