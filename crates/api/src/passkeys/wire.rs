//! The passkey endpoints' wire types: webauthn-rs's own JSON for the ceremony options and
//! credentials, and this server's requests and answers around them.

use super::*;

/// A registration ceremony begun: pass `options` to the authenticator (`navigator.credentials.create`).
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyRegistrationStart {
    pub ceremony_id: Uuid,
    /// WebAuthn `CredentialCreationOptions` (webauthn-rs `CreationChallengeResponse`).
    #[schema(value_type = Object)]
    pub options: CreationChallengeResponse,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyRegistrationFinish {
    pub ceremony_id: Uuid,
    /// The authenticator's answer (webauthn-rs `RegisterPublicKeyCredential`).
    #[schema(value_type = RegistrationCredential)]
    pub credential: RegisterPublicKeyCredential,
    /// The client's wrapping of the person's private keys for this authenticator (opaque; see
    /// docs/crypto.md). Absent when the authenticator has no PRF extension: it then signs in but cannot
    /// unlock the person's keys.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Byte, min_length = 4, max_length = 5464)]
    pub key_wrap: Option<Base64Bytes>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyEnrolStartRequest {
    /// The one-time enrolment code an admin gave you.
    pub code: String,
}

/// An enrolment ceremony begun: the member id the person will have, and the options for the
/// authenticator.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyEnrolStart {
    pub ceremony_id: Uuid,
    #[schema(value_type = String, format = Uuid)]
    pub member_id: MemberId,
    /// WebAuthn `CredentialCreationOptions` (webauthn-rs `CreationChallengeResponse`).
    #[schema(value_type = Object)]
    pub options: CreationChallengeResponse,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyEnrolFinish {
    pub ceremony_id: Uuid,
    /// The authenticator's answer (webauthn-rs `RegisterPublicKeyCredential`).
    #[schema(value_type = RegistrationCredential)]
    pub credential: RegisterPublicKeyCredential,
    /// Ed25519 device public key (32 bytes): signs the person's records.
    #[schema(value_type = String, format = Byte, pattern = "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$", min_length = 44, max_length = 44)]
    pub signing_key: Base64Bytes,
    /// age recipient (`age1…`: X25519, or an age plugin's such as `age1yubikey1…`) that case keys
    /// are wrapped to.
    #[schema(pattern = "^age1[0-9a-z]+$", max_length = 1024)]
    pub age_recipient: String,
    /// The client's wrapping of the person's private keys for this authenticator (see
    /// [`PasskeyRegistrationFinish::key_wrap`]).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Byte, min_length = 4, max_length = 5464)]
    pub key_wrap: Option<Base64Bytes>,
}

/// The JSON shape of a WebAuthn registration answer as the server reads it (webauthn-rs
/// `RegisterPublicKeyCredential`); for the document only. Binary fields are base64url without padding.
#[derive(ToSchema)]
#[allow(dead_code, non_snake_case)]
pub struct RegistrationCredential {
    id: String,
    #[schema(
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    rawId: String,
    response: AttestationResponse,
    #[schema(rename = "type")]
    kind: String,
    /// Client extension outputs (unknown members are ignored).
    #[schema(value_type = Object, required = false)]
    extensions: (),
}

/// `AuthenticatorAttestationResponse` (webauthn-rs `AuthenticatorAttestationResponseRaw`).
#[derive(ToSchema)]
#[allow(dead_code, non_snake_case)]
pub struct AttestationResponse {
    #[schema(
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    attestationObject: String,
    #[schema(
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    clientDataJSON: String,
    #[schema(value_type = Option<Vec<String>>)]
    transports: Option<()>,
}

/// The JSON shape of a WebAuthn assertion as the server reads it (webauthn-rs `PublicKeyCredential`);
/// for the document only. Binary fields are base64url without padding.
#[derive(ToSchema)]
#[allow(dead_code, non_snake_case)]
pub struct AssertionCredential {
    id: String,
    #[schema(
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    rawId: String,
    response: AssertionResponse,
    #[schema(rename = "type")]
    kind: String,
    /// Client extension outputs (unknown members are ignored).
    #[schema(value_type = Object, required = false)]
    extensions: (),
}

/// `AuthenticatorAssertionResponse` (webauthn-rs `AuthenticatorAssertionResponseRaw`).
#[derive(ToSchema)]
#[allow(dead_code, non_snake_case)]
pub struct AssertionResponse {
    #[schema(
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    authenticatorData: String,
    #[schema(
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    clientDataJSON: String,
    #[schema(
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    signature: String,
    #[schema(
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    userHandle: Option<String>,
}

/// A person enrolled: who they are now, and a token (the registration was a user-verified
/// authentication).
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyEnrolResponse {
    #[schema(value_type = String, format = Uuid)]
    pub member_id: MemberId,
    #[schema(value_type = String, format = Uuid)]
    pub society_id: SocietyId,
    pub role: Role,
    pub token: TokenResponse,
}

/// New key wrappings for several of the caller's passkeys (after the person's keys were rotated).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyWrapsRequest {
    #[schema(min_items = 1)]
    pub wraps: Vec<KeyWrapDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyWrapDto {
    /// The credential id, base64url without padding.
    #[schema(
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    pub id: String,
    #[schema(value_type = String, format = Byte, min_length = 4, max_length = 5464)]
    pub key_wrap: Base64Bytes,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyLoginStartRequest {
    #[schema(value_type = String, format = Uuid)]
    pub member_id: MemberId,
}

/// A sign-in ceremony begun: pass `options` to the authenticator (`navigator.credentials.get`).
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyLoginStart {
    pub ceremony_id: Uuid,
    /// WebAuthn `CredentialRequestOptions` (webauthn-rs `RequestChallengeResponse`).
    #[schema(value_type = Object)]
    pub options: RequestChallengeResponse,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyLoginFinish {
    pub ceremony_id: Uuid,
    /// The authenticator's assertion (webauthn-rs `PublicKeyCredential`).
    #[schema(value_type = AssertionCredential)]
    pub credential: PublicKeyCredential,
}

/// One of the caller's passkeys.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyDto {
    /// The credential id, base64url without padding.
    pub id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last sign-in with it.
    pub last_used_at: Option<i64>,
    /// The person's key wrapping for this authenticator (in the person's own list only; opaque).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Byte)]
    pub key_wrap: Option<Base64Bytes>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeysResponse {
    pub passkeys: Vec<PasskeyDto>,
}
