//! People: enrolment with a one-time code and a passkey, sign-in with the passkey, step-up, more
//! authenticators, and the per-authenticator wrapping of the person's private keys.
//!
//! A person's private keys (Ed25519 signing key and age identity) are generated here and never leave the
//! client unwrapped: each authenticator gets its own [`AuthenticatorWrap`] made with its PRF output (see
//! `rfl_crypto::wrap_keys_for_authenticator` and docs/crypto.md). The server keeps the wrapping beside
//! the passkey and returns it after a sign-in with that passkey; the PRF output itself is taken out of the
//! authenticator's response before anything is sent (the [`SoftAuthenticator`] returns it separately,
//! and the credential types sent have no field for it).

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rfl_crypto::{
    rewrap_keys, unwrap_keys, verify_recipient, wrap_keys_for_authenticator, AuthenticatorWrap,
    PRF_SALT,
};
use rfl_domain::api::{Base64Bytes, TokenResponse};
use rfl_domain::{MemberId, Role, SocietyId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use webauthn_rs_proto::{CreationChallengeResponse, RegisterPublicKeyCredential};

use crate::authenticator::{PrfOutput, SoftAuthenticator};
use crate::http::Api;
use crate::keystore::DeviceKeys;
use crate::session::Session;
use crate::{ClientError, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrolStart {
    ceremony_id: Uuid,
    member_id: MemberId,
    options: CreationChallengeResponse,
}

#[derive(Serialize)]
struct EnrolFinish<'a> {
    ceremony_id: Uuid,
    credential: &'a RegisterPublicKeyCredential,
    signing_key: Base64Bytes,
    age_recipient: String,
    key_wrap: Option<Base64Bytes>,
}

/// A person enrolled with their first passkey.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonEnrolment {
    pub member_id: MemberId,
    pub society_id: SocietyId,
    pub role: Role,
    pub token: TokenResponse,
}

#[derive(Serialize)]
struct KeyWraps {
    wraps: Vec<KeyWrapDto>,
}

#[derive(Serialize)]
struct KeyWrapDto {
    id: String,
    key_wrap: Base64Bytes,
}

fn need_prf(prf: Option<PrfOutput>) -> Result<PrfOutput> {
    prf.ok_or_else(|| {
        ClientError::Invalid(
            "this authenticator has no PRF (hmac-secret) extension, so it cannot hold your keys"
                .into(),
        )
    })
}

fn authenticator_failed(e: impl std::fmt::Display) -> ClientError {
    ClientError::Invalid(format!("the authenticator failed: {e}"))
}

/// Where and as what a person signs in: the server's API address and the WebAuthn origin its relying
/// party expects (the same unless the API is reached through another name).
#[derive(Clone, Debug)]
pub struct Site {
    pub server: String,
    pub origin: String,
}

impl Site {
    pub fn new(server: &str, origin: &str) -> Site {
        Site {
            server: server.to_owned(),
            origin: origin.to_owned(),
        }
    }
}

/// Enrols a person with a one-time code: new private keys, the authenticator's first passkey, and the
/// keys wrapped for that authenticator; then signs in. Only public keys and the wrapping are sent.
pub async fn enrol_person(
    site: &Site,
    code: &str,
    authenticator: &mut SoftAuthenticator,
) -> Result<Session> {
    enrol_person_with_keys(site, code, authenticator, DeviceKeys::generate()?).await
}

/// [`enrol_person`] with the person's keys given, e.g. [`DeviceKeys::generate_with_age`] with an age
/// plugin identity, so that case keys are wrapped to a token's recipient and unwrapped on the token.
/// A plugin identity is first checked to open what is wrapped to its recipient
/// ([`DeviceKeys::check_age_identity`]), so a wrong recipient is caught before anything is enrolled.
pub async fn enrol_person_with_keys(
    site: &Site,
    code: &str,
    authenticator: &mut SoftAuthenticator,
    keys: DeviceKeys,
) -> Result<Session> {
    if keys.age.is_plugin() {
        keys.check_age_identity()?;
    }
    let api = Api::new(&site.server)?;
    let start: EnrolStart = api
        .post(
            "/v1/enrol/passkey/start",
            &serde_json::json!({ "code": code }),
        )
        .await?;
    let (credential, prf) = authenticator
        .register(&site.origin, &start.options, &PRF_SALT)
        .await
        .map_err(authenticator_failed)?;
    let prf = need_prf(prf)?;
    let wrap = wrap_keys_for_authenticator(
        prf.expose(),
        start.member_id.as_uuid(),
        credential.raw_id.as_ref(),
        &keys.to_secret_bytes()?,
        &keys.signing,
    )?;
    drop(prf);
    let enrolled: PersonEnrolment = api
        .post(
            "/v1/enrol/passkey/finish",
            &EnrolFinish {
                ceremony_id: start.ceremony_id,
                credential: &credential,
                signing_key: keys.signing.public_key().as_bytes().to_vec().into(),
                age_recipient: keys.age.recipient().to_string(),
                key_wrap: Some(wrap.encode().into()),
            },
        )
        .await?;
    let mut s = Session::with_token(&site.server, enrolled.token.token, Arc::new(keys)).await?;
    s.set_origin(&site.origin);
    Ok(s)
}

/// Signs a person in with their authenticator: the assertion (its PRF output kept here) buys a token and
/// this authenticator's wrapping of the person's keys, which the PRF output opens.
pub async fn sign_in_person(
    site: &Site,
    member: MemberId,
    authenticator: &mut SoftAuthenticator,
) -> Result<Session> {
    let api = Api::new(&site.server)?;
    let (token, prf) = assert_with(&api, &site.origin, member, authenticator).await?;
    let wrap = token.key_wrap.as_ref().ok_or_else(|| {
        ClientError::Invalid(
            "this passkey holds no wrapping of your keys: sign in with an authenticator that does"
                .into(),
        )
    })?;
    let wrap = AuthenticatorWrap::decode(&wrap.0)?;
    let secrets = unwrap_keys(need_prf(prf)?.expose(), member.as_uuid(), &wrap).map_err(|_| {
        ClientError::Tampered("your keys' wrapping does not open with this authenticator".into())
    })?;
    let keys = DeviceKeys::from_secret_bytes(&secrets)?;
    // The wrapping's public half must be vouched for by the key it unlocked (catches a mixed-up
    // wrapping; that these are the person's certified keys is checked against the key directory).
    verify_recipient(&wrap, member.as_uuid(), &keys.signing.public_key()).map_err(|_| {
        ClientError::Tampered("your keys' wrapping is not signed by your own key".into())
    })?;
    let mut s = Session::with_token(&site.server, token.token, Arc::new(keys)).await?;
    s.set_origin(&site.origin);
    Ok(s)
}

/// One passkey assertion for `member`: the server's answer (token, key wrapping) and the PRF output.
async fn assert_with(
    api: &Api,
    origin: &str,
    member: MemberId,
    authenticator: &mut SoftAuthenticator,
) -> Result<(TokenResponse, Option<PrfOutput>)> {
    let start = api.passkey_login_start(member).await?;
    let (credential, prf) = authenticator
        .assert(origin, &start.options, &PRF_SALT)
        .await
        .map_err(authenticator_failed)?;
    let token = api
        .passkey_login_finish(start.ceremony_id, &credential)
        .await?;
    Ok((token, prf))
}

impl Session {
    /// Step-up: a fresh assertion with the person's authenticator replaces the access token, so
    /// operations that need a sign-in within the last five minutes are allowed again.
    pub async fn step_up(&mut self, authenticator: &mut SoftAuthenticator) -> Result<()> {
        let api = Api::new(self.api().base())?;
        let (token, _prf) =
            assert_with(&api, self.origin(), self.member_id(), authenticator).await?;
        self.replace_token(token.token);
        Ok(())
    }

    /// Registers another authenticator and wraps this person's keys for it (its PRF output is needed
    /// once, now). Returns the new credential's id (base64url).
    pub async fn add_authenticator(&self, authenticator: &mut SoftAuthenticator) -> Result<String> {
        let start = self.api().passkey_register_start().await?;
        let (credential, prf) = authenticator
            .register(self.origin(), &start.options, &PRF_SALT)
            .await
            .map_err(authenticator_failed)?;
        let wrap = wrap_keys_for_authenticator(
            need_prf(prf)?.expose(),
            self.member_id().as_uuid(),
            credential.raw_id.as_ref(),
            &self.bundle_keys().to_secret_bytes()?,
            &self.bundle_keys().signing,
        )?;
        let info = self
            .api()
            .passkey_register_finish_with_wrap(
                start.ceremony_id,
                &credential,
                Some(wrap.encode().into()),
            )
            .await?;
        Ok(info.id)
    }

    /// Re-wraps this person's keys to every one of their authenticators that holds a wrapping, using
    /// only each wrapping's public half: no authenticator needs to be present. This is how the keys
    /// are rotated (a new key epoch re-wraps the new keys the same way). Needs a recent sign-in.
    pub async fn rewrap_keys_for_all_authenticators(&self) -> Result<usize> {
        let bundle = self.bundle_keys().clone();
        let vouch = bundle.signing.public_key();
        self.rewrap_for_all_authenticators(&bundle, &vouch, &bundle.signing)
            .await
    }

    /// Wraps `bundle` to every authenticator of this person that holds a wrapping, each one's
    /// public half checked against `vouched_by` (the key that vouched for it) and vouched for again
    /// by `signer` (the bundle's own signing key: a sign-in checks it against that).
    pub(crate) async fn rewrap_for_all_authenticators(
        &self,
        bundle: &DeviceKeys,
        vouched_by: &rfl_crypto::DevicePublicKey,
        signer: &rfl_crypto::DeviceSigningKey,
    ) -> Result<usize> {
        let secrets = bundle.to_secret_bytes()?;
        let member = *self.member_id().as_uuid();
        let mut wraps = Vec::new();
        for p in self.api().passkeys().await? {
            let Some(w) = p.key_wrap else { continue };
            let old = AuthenticatorWrap::decode(&w.0)?;
            if URL_SAFE_NO_PAD.encode(&old.credential_id) != p.id {
                return Err(ClientError::Tampered(
                    "a key wrapping is filed under another credential".into(),
                ));
            }
            // Only to a public half this person's own key vouched for: a server that swapped in its own
            // is caught here, before anything is encrypted to it.
            let new = rewrap_keys(&old, &member, &secrets, vouched_by, signer).map_err(|_| {
                ClientError::Tampered(
                    "an authenticator's public wrapping key is not the one you registered".into(),
                )
            })?;
            wraps.push(KeyWrapDto {
                id: p.id,
                key_wrap: new.encode().into(),
            });
        }
        let n = wraps.len();
        self.api()
            .put_no_content("/v1/passkeys/key-wraps", &KeyWraps { wraps })
            .await?;
        Ok(n)
    }
}
