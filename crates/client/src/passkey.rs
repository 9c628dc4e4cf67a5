//! Passkeys (WebAuthn): typed calls for adding a passkey, signing in with one, listing and removing them.
//!
//! The authenticator is the caller's: these calls hand its options out and take its answer back as the
//! webauthn-rs-proto types (a browser, a platform authenticator, a security key, or in tests a software
//! passkey). The answers are sent as those typed structs, which have no field for the PRF extension's
//! output, and the one extension output that can carry a secret (`hmac_get_secret`, CTAP2 hmac-secret)
//! is removed before an assertion is sent: such a secret may wrap the caseworker's keys and must never
//! reach the server.

use rfl_domain::api::TokenResponse;
use rfl_domain::MemberId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use webauthn_rs_proto::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse,
};

use crate::http::Api;
use crate::Result;

/// A registration ceremony begun: give `options` to the authenticator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationStart {
    pub ceremony_id: Uuid,
    pub options: CreationChallengeResponse,
}

/// A sign-in ceremony begun: give `options` to the authenticator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginStart {
    pub ceremony_id: Uuid,
    pub options: RequestChallengeResponse,
}

/// One of the signed-in person's passkeys.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PasskeyInfo {
    /// The credential id, base64url without padding.
    pub id: String,
    /// Unix seconds.
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// The person's key wrapping for this authenticator (own list only).
    #[serde(default)]
    pub key_wrap: Option<rfl_domain::api::Base64Bytes>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PasskeyList {
    passkeys: Vec<PasskeyInfo>,
}

#[derive(Serialize)]
struct RegistrationFinish<'a> {
    ceremony_id: Uuid,
    credential: &'a RegisterPublicKeyCredential,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_wrap: Option<rfl_domain::api::Base64Bytes>,
}

#[derive(Serialize)]
struct LoginFinish<'a> {
    ceremony_id: Uuid,
    credential: &'a PublicKeyCredential,
}

impl Api {
    /// Begins adding a passkey to the signed-in person.
    pub async fn passkey_register_start(&self) -> Result<RegistrationStart> {
        self.post("/v1/passkeys/register/start", &serde_json::json!({}))
            .await
    }

    /// Finishes adding a passkey with the authenticator's answer.
    pub async fn passkey_register_finish(
        &self,
        ceremony_id: Uuid,
        credential: &RegisterPublicKeyCredential,
    ) -> Result<PasskeyInfo> {
        self.passkey_register_finish_with_wrap(ceremony_id, credential, None)
            .await
    }

    /// Finishes adding a passkey, with the person's keys wrapped for it.
    pub async fn passkey_register_finish_with_wrap(
        &self,
        ceremony_id: Uuid,
        credential: &RegisterPublicKeyCredential,
        key_wrap: Option<rfl_domain::api::Base64Bytes>,
    ) -> Result<PasskeyInfo> {
        self.post(
            "/v1/passkeys/register/finish",
            &RegistrationFinish {
                ceremony_id,
                credential,
                key_wrap,
            },
        )
        .await
    }

    /// Begins signing in as `member` with a passkey (no token needed).
    pub async fn passkey_login_start(&self, member: MemberId) -> Result<LoginStart> {
        self.post(
            "/v1/auth/passkey/start",
            &serde_json::json!({ "member_id": member }),
        )
        .await
    }

    /// Finishes signing in with the authenticator's assertion; returns an access token.
    pub async fn passkey_login_finish(
        &self,
        ceremony_id: Uuid,
        credential: &PublicKeyCredential,
    ) -> Result<TokenResponse> {
        let mut credential = credential.clone();
        credential.extensions.hmac_get_secret = None;
        self.post(
            "/v1/auth/passkey/finish",
            &LoginFinish {
                ceremony_id,
                credential: &credential,
            },
        )
        .await
    }

    /// The signed-in person's passkeys.
    pub async fn passkeys(&self) -> Result<Vec<PasskeyInfo>> {
        Ok(self.get::<PasskeyList>("/v1/passkeys").await?.passkeys)
    }

    /// A member's passkeys (society admin).
    pub async fn member_passkeys(&self, member: MemberId) -> Result<Vec<PasskeyInfo>> {
        Ok(self
            .get::<PasskeyList>(&format!("/v1/members/{member}/passkeys"))
            .await?
            .passkeys)
    }

    /// Revokes one authenticator of a member (society admin), even their last; all of the member's
    /// tokens stop working.
    pub async fn revoke_member_passkey(&self, member: MemberId, id: &str) -> Result<()> {
        self.delete_no_content(&format!("/v1/members/{member}/passkeys/{id}"))
            .await
    }

    /// Removes one of the signed-in person's passkeys (never the last). Every access token issued to
    /// them so far, this one included, stops working: sign in again afterwards.
    pub async fn delete_passkey(&self, id: &str) -> Result<()> {
        self.delete_no_content(&format!("/v1/passkeys/{id}")).await
    }

    /// Adds a passkey: `authenticator` answers the registration options (e.g. a WebAuthn
    /// `do_registration` with this site's origin).
    pub async fn add_passkey<E: std::fmt::Display>(
        &self,
        authenticator: impl FnOnce(
            CreationChallengeResponse,
        ) -> std::result::Result<RegisterPublicKeyCredential, E>,
    ) -> Result<PasskeyInfo> {
        let start = self.passkey_register_start().await?;
        let credential = authenticator(start.options)
            .map_err(|e| crate::ClientError::Invalid(format!("the authenticator failed: {e}")))?;
        self.passkey_register_finish(start.ceremony_id, &credential)
            .await
    }

    /// Signs in as `member`: `authenticator` answers the sign-in options. Returns an access token.
    pub async fn sign_in_with_passkey<E: std::fmt::Display>(
        &self,
        member: MemberId,
        authenticator: impl FnOnce(
            RequestChallengeResponse,
        ) -> std::result::Result<PublicKeyCredential, E>,
    ) -> Result<TokenResponse> {
        let start = self.passkey_login_start(member).await?;
        let credential = authenticator(start.options)
            .map_err(|e| crate::ClientError::Invalid(format!("the authenticator failed: {e}")))?;
        self.passkey_login_finish(start.ceremony_id, &credential)
            .await
    }
}
