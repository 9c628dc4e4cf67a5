//! A software WebAuthn authenticator with the PRF extension (CTAP2 `hmac-secret`).
//!
//! [`SoftAuthenticator`] is a CTAP2-conformant software token built on 1Password's passkey-rs
//! (`passkey-client` as the WebAuthn client, `passkey-authenticator` as the CTAP2 authenticator,
//! RustCrypto as the backend). It exists for two purposes only:
//!
//! - tests, where it plays the caseworker's authenticator in real ceremonies against webauthn-rs;
//! - the `rfl` CLI's explicit development mode, where its state (private keys and hmac secrets
//!   included) lives in a passphrase-sealed file ([`SoftAuthenticator::to_secret_bytes`] /
//!   [`SoftAuthenticator::from_secret_bytes`]; the caller seals).
//!
//! Real deployments use a hardware authenticator (or a platform authenticator through a browser):
//! a file on disk is not a second factor.
//!
//! Behaviour: user verification is always performed and reported (UV = 1); PRF (hmac-secret) is
//! enabled for every credential, gated by UV only, and is also evaluated at registration
//! (`hmac-secret-mc`, WebAuthn L3 `prf.eval` at create); credentials are ES256 (or EdDSA if the
//! relying party prefers it), with "none" attestation and no signature counter (the counter stays 0,
//! as for synced passkeys, so a stale copy of the state never trips the server's clone detection);
//! an `http` origin is accepted for `localhost` only, any other origin must be `https`, and the
//! origin must match the relying party id.
//!
//! # The PRF stripping rule
//!
//! The PRF output is a secret (it wraps the caseworker's keys) and must never reach the server.
//! passkey-rs returns it inside the client's response (`clientExtensionResults.prf.results.first`),
//! and webauthn-rs ignores unknown fields, so forwarding the response unchanged would silently hand
//! it over. Therefore every ceremony here takes the PRF output out of the response and **removes the
//! whole `prf` entry** from `clientExtensionResults` *before* the JSON is converted into the
//! webauthn-rs-proto type that is sent; for assertions `extensions.hmac_get_secret` is also forced
//! to `None`. The PRF output is handed to the caller only as a [`PrfOutput`].
//!
//! # Interop
//!
//! passkey-rs and webauthn-rs speak through JSON: webauthn-rs's options are serialised, the PRF
//! input `publicKey.extensions.prf = {"eval": {"first": <base64url salt>}}` is added, the result is
//! deserialised into passkey-types' options (with the `serialize_bytes_as_base64_string` feature, so
//! that bytes are base64url strings on both sides), and the client's response goes back the same
//! way. The salt is the WebAuthn PRF input, so the authenticator evaluates
//! `HMAC-SHA-256(CredRandom, SHA-256("WebAuthn PRF" || 0x00 || salt))`, as a browser with a
//! hardware key would.
//!
//! Secrets are zeroized where this module owns them ([`PrfOutput`], the state buffers); copies made
//! inside passkey-rs and serde_json along the way are not (passkey-rs does not zeroize its COSE keys
//! either). Acceptable for a test and development token, one more reason not to use it for real.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use passkey_authenticator::extensions::HmacSecretConfig;
use passkey_authenticator::{
    Authenticator, CredentialStore, DiscoverabilitySupport, StoreInfo, UiHint, UserCheck,
    UserValidationMethod,
};
use passkey_client::{Client, DefaultClientData, WebauthnError};
use passkey_crypto::coset::CborSerializable as _;
use passkey_crypto::iana;
use passkey_crypto::rust_crypto::RustCryptoBackend;
use passkey_crypto::{CoseKey, CryptoBackend, SecretKeyT};
use passkey_types::ctap2::make_credential::{
    Options, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity,
};
use passkey_types::ctap2::{Aaguid, Ctap2Error, StatusCode};
use passkey_types::webauthn::{
    AuthenticatorTransport, CredentialCreationOptions, CredentialRequestOptions,
    PublicKeyCredentialDescriptor,
};
use passkey_types::{CredentialExtensions, Passkey, StoredHmacSecret};
use secrecy::{ExposeSecret as _, ExposeSecretMut as _, SecretBox};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;
use webauthn_rs_proto::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse,
};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// The AAGUID this software authenticator reports (`8d2d15e5-311c-4763-828c-7e9a7749c3e2`).
///
/// A fixed value identifies the *model* "rfl software authenticator", as AAGUIDs are meant to, so
/// a production server can recognise and refuse it if it ever receives one. (With "none"
/// attestation the value is self-asserted: this is a convenience, not a security boundary.)
pub const SOFT_AUTHENTICATOR_AAGUID: [u8; 16] = [
    0x8d, 0x2d, 0x15, 0xe5, 0x31, 0x1c, 0x47, 0x63, 0x82, 0x8c, 0x7e, 0x9a, 0x77, 0x49, 0xc3, 0xe2,
];

/// Version of the format written by [`SoftAuthenticator::to_secret_bytes`].
const STATE_VERSION: u32 = 1;
/// Tag of that format, so a wrong file is reported as such.
const STATE_FORMAT: &str = "rfl-soft-authenticator";

/// 32 bytes of PRF output for one credential and salt.
///
/// Secret: kept on the heap, zeroized on drop, and its `Debug` shows no value.
pub struct PrfOutput(SecretBox<[u8; 32]>);

impl PrfOutput {
    /// The output's bytes.
    pub fn expose(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }

    /// Decodes a base64url output, failing unless it is exactly 32 bytes.
    fn from_base64url(encoded: &str) -> Result<Self, AuthenticatorError> {
        let decoded = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(encoded.trim_end_matches('='))
                .map_err(|_| AuthenticatorError::MalformedPrfOutput("not base64url".into()))?,
        );
        if decoded.len() != 32 {
            return Err(AuthenticatorError::MalformedPrfOutput(format!(
                "{} bytes instead of 32",
                decoded.len()
            )));
        }
        let mut out = SecretBox::new(Box::new([0u8; 32]));
        out.expose_secret_mut().copy_from_slice(&decoded);
        Ok(Self(out))
    }
}

impl fmt::Debug for PrfOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrfOutput([REDACTED; 32])")
    }
}

/// What went wrong in a ceremony or with the authenticator's state. Messages never contain key
/// material, PRF outputs or the content of the state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthenticatorError {
    /// The origin given for the ceremony is not a URL.
    #[error("invalid origin {origin:?}: {reason}")]
    InvalidOrigin { origin: String, reason: String },
    /// The options could not be turned into a request the WebAuthn client understands.
    #[error("unusable {what}: {detail}")]
    Options { what: &'static str, detail: String },
    /// The options are for a relying party that the origin does not belong to.
    #[error(
        "the origin {origin} does not belong to the relying party id {rp_id:?} of the options"
    )]
    OriginMismatch { origin: String, rp_id: String },
    /// The WebAuthn client or the authenticator refused or failed the ceremony.
    #[error("WebAuthn ceremony failed: {0}")]
    Ceremony(String),
    /// The client's response could not be turned into the webauthn-rs-proto type.
    #[error("unusable authenticator response: {0}")]
    Response(String),
    /// The PRF output in the response was not 32 base64url-encoded bytes.
    #[error("malformed PRF output: {0}")]
    MalformedPrfOutput(String),
    /// The saved state could not be written.
    #[error("cannot serialise the authenticator state: {0}")]
    StateEncode(String),
    /// The saved state is not valid (wrong file, truncated, corrupted or tampered with).
    #[error("invalid authenticator state: {0}")]
    InvalidState(String),
    /// The saved state was written by an unknown (newer) version.
    #[error(
        "unsupported authenticator state version {found} (this build reads version {supported})"
    )]
    UnsupportedStateVersion { found: u32, supported: u32 },
}

/// Describes a serde_json error by category and position only: for secret inputs (the state) the
/// message serde would give may quote the offending value.
fn redacted_json_error(e: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    )
}

fn describe_webauthn_error(e: &WebauthnError) -> String {
    match e {
        WebauthnError::OriginRpMissmatch => {
            "the origin does not belong to the relying party id of the options".into()
        }
        WebauthnError::UnprotectedOrigin => {
            "the origin must use https (plain http is accepted for localhost only)".into()
        }
        WebauthnError::OriginMissingDomain => "the origin has no domain name".into(),
        WebauthnError::InvalidRpId => "the relying party id is not a registrable domain".into(),
        WebauthnError::CredentialNotFound => {
            "none of this authenticator's passkeys is registered for the account (removed, or the \
             account was reset after a lost device: use the keystore you enrolled again with)"
                .into()
        }
        WebauthnError::AuthenticatorError(code) => {
            format!("the authenticator returned CTAP2 status 0x{code:02x}")
        }
        other => format!("{other:?}"),
    }
}

/// The user-validation method of a software token: the user is always present and verified.
struct AlwaysVerified;

#[async_trait::async_trait]
impl UserValidationMethod for AlwaysVerified {
    type PasskeyItem = Passkey;

    async fn check_user<'a>(
        &self,
        _hint: UiHint<'a, Passkey>,
        _presence: bool,
        _verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        Ok(UserCheck {
            presence: true,
            verification: true,
        })
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        Some(true)
    }
}

/// In-memory credential store, in creation order. Unlike passkey-rs's `MemoryStore` it binds
/// credentials to their relying party id and supports discoverable credentials.
#[derive(Clone, Default)]
struct Credentials(Vec<Passkey>);

#[async_trait::async_trait]
impl CredentialStore for Credentials {
    type PasskeyItem = Passkey;

    async fn find_credentials(
        &self,
        ids: Option<&[PublicKeyCredentialDescriptor]>,
        rp_id: &str,
        _user_handle: Option<&[u8]>,
    ) -> Result<Vec<Passkey>, StatusCode> {
        let for_rp = self.0.iter().filter(|pk| pk.rp_id == rp_id);
        let found: Vec<Passkey> = match ids.filter(|ids| !ids.is_empty()) {
            Some(ids) => for_rp
                .filter(|pk| ids.iter().any(|d| d.id == pk.credential_id))
                .cloned()
                .collect(),
            // No allow list: discoverable credentials only, most recent first.
            None => for_rp
                .rev()
                .filter(|pk| pk.user_handle.is_some())
                .cloned()
                .collect(),
        };
        if found.is_empty() {
            Err(Ctap2Error::NoCredentials.into())
        } else {
            Ok(found)
        }
    }

    async fn save_credential(
        &mut self,
        cred: Passkey,
        _user: PublicKeyCredentialUserEntity,
        _rp: PublicKeyCredentialRpEntity,
        _options: Options,
    ) -> Result<(), StatusCode> {
        // CTAP2 makeCredential step 10: a discoverable credential replaces the one for the same
        // relying party and account.
        if let Some(handle) = &cred.user_handle {
            self.0
                .retain(|pk| !(pk.rp_id == cred.rp_id && pk.user_handle.as_ref() == Some(handle)));
        }
        self.0.push(cred);
        Ok(())
    }

    async fn update_credential(&mut self, cred: &Passkey) -> Result<(), StatusCode> {
        match self
            .0
            .iter_mut()
            .find(|pk| pk.credential_id == cred.credential_id)
        {
            Some(slot) => {
                *slot = cred.clone();
                Ok(())
            }
            None => Err(Ctap2Error::NoCredentials.into()),
        }
    }

    async fn get_info(&self) -> StoreInfo {
        StoreInfo {
            discoverability: DiscoverabilitySupport::Full,
        }
    }
}

/// A software WebAuthn authenticator with PRF; see the [module documentation](self).
///
/// User verification is always performed (UV = 1), PRF/hmac-secret is enabled, credentials are
/// kept in memory (persist them with [`Self::to_secret_bytes`]).
pub struct SoftAuthenticator {
    aaguid: Aaguid,
    credentials: Credentials,
}

impl fmt::Debug for SoftAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftAuthenticator")
            .field("aaguid", &self.aaguid)
            .field("credentials", &self.credentials.0.len())
            .finish_non_exhaustive()
    }
}

impl Default for SoftAuthenticator {
    fn default() -> Self {
        Self::new()
    }
}

impl SoftAuthenticator {
    /// An authenticator without credentials.
    pub fn new() -> Self {
        Self {
            aaguid: Aaguid(SOFT_AUTHENTICATOR_AAGUID),
            credentials: Credentials::default(),
        }
    }

    /// A passkey-rs authenticator over a *copy* of this authenticator's state.
    ///
    /// Each ceremony works on a copy, and the caller stores the copy back only when the ceremony
    /// succeeded: a failed ceremony, or a future dropped half-way (a timeout, a cancelled task),
    /// leaves `self` exactly as it was instead of losing credentials.
    fn ctap2_authenticator(
        &self,
    ) -> Result<Authenticator<Credentials, AlwaysVerified, RustCryptoBackend>, AuthenticatorError>
    {
        let mut authenticator = Authenticator::new(
            self.aaguid,
            self.credentials.clone(),
            AlwaysVerified,
            RustCryptoBackend,
        )
        .hmac_secret(HmacSecretConfig::new_with_uv_only().enable_on_make_credential())
        .transports(vec![AuthenticatorTransport::Internal]);
        authenticator
            .set_algorithms(&[iana::Algorithm::ES256, iana::Algorithm::EdDSA])
            .map_err(|e| AuthenticatorError::Ceremony(format!("no usable algorithm: {e:?}")))?;
        Ok(authenticator)
    }

    // About `Send`: passkey-rs's ceremony futures are `Send` with these concrete types (its store
    // and user-validation traits are `async_trait`s with `Send` futures, the crypto backend and the
    // default public-suffix list are `Send + Sync`, and the related-origins fetcher is `()`), so
    // `register` and `assert` are `Send` as they are, with no blocking thread or extra runtime.
    // The tests assert it at compile time and run both ceremonies inside `tokio::spawn`.

    /// Runs a registration ceremony for `origin` (e.g. `"http://localhost:8080"`) with
    /// webauthn-rs's options, asking for PRF evaluated with `prf_salt`.
    ///
    /// Returns the credential to send to the server (with nothing of the PRF output in it) and the
    /// PRF output: this authenticator supports evaluation at creation (`hmac-secret-mc`), so it is
    /// `Some` whenever the credential has PRF, and equal to what [`Self::assert`] later gives for
    /// the same salt.
    pub async fn register(
        &mut self,
        origin: &str,
        options: &CreationChallengeResponse,
        prf_salt: &[u8; 32],
    ) -> Result<(RegisterPublicKeyCredential, Option<PrfOutput>), AuthenticatorError> {
        let origin = parse_origin(origin)?;
        check_origin(&origin, &options.public_key.rp.id)?;
        let request: CredentialCreationOptions =
            with_prf_input(options, prf_salt, "registration options")?;

        // `http://localhost` is accepted (development servers); other origins must be https.
        let mut client = Client::new(self.ctap2_authenticator()?).allows_insecure_localhost(true);
        let created = client
            .register(&origin, request, DefaultClientData)
            .await
            .map_err(|e| AuthenticatorError::Ceremony(describe_webauthn_error(&e)))?;

        let mut response = serde_json::to_value(&created)
            .map_err(|e| AuthenticatorError::Response(e.to_string()))?;
        drop(created);
        let prf = take_prf_output(&mut response)?;
        let credential: RegisterPublicKeyCredential = serde_json::from_value(response)
            .map_err(|e| AuthenticatorError::Response(e.to_string()))?;

        self.credentials = std::mem::take(client.authenticator_mut().store_mut());
        Ok((credential, prf))
    }

    /// Runs an assertion ceremony for `origin` with webauthn-rs's options, asking for PRF with
    /// `prf_salt`. Returns the credential to send to the server (with nothing of the PRF output in
    /// it) and the PRF output (`None` if the credential used has no PRF).
    pub async fn assert(
        &mut self,
        origin: &str,
        options: &RequestChallengeResponse,
        prf_salt: &[u8; 32],
    ) -> Result<(PublicKeyCredential, Option<PrfOutput>), AuthenticatorError> {
        let origin = parse_origin(origin)?;
        check_origin(&origin, &options.public_key.rp_id)?;
        let request: CredentialRequestOptions =
            with_prf_input(options, prf_salt, "authentication options")?;

        // `http://localhost` is accepted (development servers); other origins must be https.
        let mut client = Client::new(self.ctap2_authenticator()?).allows_insecure_localhost(true);
        let asserted = client
            .authenticate(&origin, request, DefaultClientData)
            .await
            .map_err(|e| AuthenticatorError::Ceremony(describe_webauthn_error(&e)))?;

        let mut response = serde_json::to_value(&asserted)
            .map_err(|e| AuthenticatorError::Response(e.to_string()))?;
        drop(asserted);
        let prf = take_prf_output(&mut response)?;
        let mut credential: PublicKeyCredential = serde_json::from_value(response)
            .map_err(|e| AuthenticatorError::Response(e.to_string()))?;
        // The one webauthn-rs-proto field that could carry an hmac-secret output.
        credential.extensions.hmac_get_secret = None;

        self.credentials = std::mem::take(client.authenticator_mut().store_mut());
        Ok((credential, prf))
    }

    /// All state (credentials with their private keys and hmac secrets, relying party ids, user
    /// handles, AAGUID, counters) as bytes, to be sealed by the caller. Versioned JSON.
    pub fn to_secret_bytes(&self) -> Result<Zeroizing<Vec<u8>>, AuthenticatorError> {
        let credentials = self
            .credentials
            .0
            .iter()
            .map(StoredCredential::from_passkey)
            .collect::<Result<Vec<_>, _>>()?;
        let state = State {
            format: STATE_FORMAT.to_owned(),
            version: STATE_VERSION,
            aaguid: self.aaguid.0,
            credentials,
        };
        // Measure first and reserve exactly, so the buffer never reallocates (which would leave
        // unzeroized copies of the keys behind).
        let mut size = ByteCounter(0);
        serde_json::to_writer(&mut size, &state)
            .map_err(|e| AuthenticatorError::StateEncode(redacted_json_error(&e)))?;
        let mut out = Zeroizing::new(Vec::with_capacity(size.0));
        serde_json::to_writer(&mut *out, &state)
            .map_err(|e| AuthenticatorError::StateEncode(redacted_json_error(&e)))?;
        Ok(out)
    }

    /// Restores an authenticator from [`Self::to_secret_bytes`]'s output. Every private key is
    /// checked to be usable.
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, AuthenticatorError> {
        #[derive(Deserialize)]
        struct Header {
            format: String,
            version: u32,
        }
        let header: Header = serde_json::from_slice(bytes)
            .map_err(|e| AuthenticatorError::InvalidState(redacted_json_error(&e)))?;
        if header.format != STATE_FORMAT {
            return Err(AuthenticatorError::InvalidState(
                "not the state of an rfl software authenticator".into(),
            ));
        }
        if header.version != STATE_VERSION {
            return Err(AuthenticatorError::UnsupportedStateVersion {
                found: header.version,
                supported: STATE_VERSION,
            });
        }
        let state: State = serde_json::from_slice(bytes)
            .map_err(|e| AuthenticatorError::InvalidState(redacted_json_error(&e)))?;
        let credentials = state
            .credentials
            .iter()
            .map(StoredCredential::to_passkey)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            aaguid: Aaguid(state.aaguid),
            credentials: Credentials(credentials),
        })
    }
}

fn parse_origin(origin: &str) -> Result<Url, AuthenticatorError> {
    Url::parse(origin).map_err(|e| AuthenticatorError::InvalidOrigin {
        origin: origin.to_owned(),
        reason: e.to_string(),
    })
}

/// The origin must be the relying party id or one of its subdomains.
///
/// passkey-client 0.6 checks this too, except when the relying party id is `localhost` and
/// insecure localhost is allowed (which we need for `http://localhost` development servers): then
/// it accepts *any* origin, `http` included. So the rule is enforced here first, for every ceremony.
/// (passkey-client still enforces https for any host other than localhost, and refuses relying
/// party ids that are public suffixes.)
fn check_origin(origin: &Url, rp_id: &str) -> Result<(), AuthenticatorError> {
    let host = origin
        .domain()
        .ok_or_else(|| AuthenticatorError::InvalidOrigin {
            origin: origin.to_string(),
            reason: "the origin must have a domain name".into(),
        })?
        .to_ascii_lowercase();
    let rp_id = rp_id.to_ascii_lowercase();
    let allowed = !rp_id.is_empty()
        && (host == rp_id
            || host
                .strip_suffix(rp_id.as_str())
                .is_some_and(|prefix| prefix.ends_with('.')));
    if allowed {
        Ok(())
    } else {
        Err(AuthenticatorError::OriginMismatch {
            origin: origin.as_str().trim_end_matches('/').to_owned(),
            rp_id,
        })
    }
}

/// webauthn-rs options → JSON, plus `publicKey.extensions.prf.eval.first = salt` → passkey-types.
fn with_prf_input<O: Serialize, R: serde::de::DeserializeOwned>(
    options: &O,
    prf_salt: &[u8; 32],
    what: &'static str,
) -> Result<R, AuthenticatorError> {
    let options_error = |detail: String| AuthenticatorError::Options { what, detail };
    let mut json = serde_json::to_value(options).map_err(|e| options_error(e.to_string()))?;
    let public_key = json
        .get_mut("publicKey")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| options_error("no `publicKey` object".into()))?;
    let extensions = public_key
        .entry("extensions")
        .or_insert_with(|| Value::Object(Default::default()));
    if extensions.is_null() {
        *extensions = Value::Object(Default::default());
    }
    let extensions = extensions
        .as_object_mut()
        .ok_or_else(|| options_error("`publicKey.extensions` is not an object".into()))?;
    extensions.insert(
        "prf".into(),
        serde_json::json!({ "eval": { "first": URL_SAFE_NO_PAD.encode(prf_salt) } }),
    );
    serde_json::from_value(json).map_err(|e| options_error(e.to_string()))
}

/// Takes the PRF output out of a client response and removes the whole `prf` entry (and any
/// hmac-secret output) from `clientExtensionResults`: see the stripping rule in the module docs.
/// (`extensions`, webauthn-rs-proto's other name for that object, is cleaned the same way.)
fn take_prf_output(response: &mut Value) -> Result<Option<PrfOutput>, AuthenticatorError> {
    let mut prf_entries = Vec::new();
    for container in ["clientExtensionResults", "extensions"] {
        if let Some(results) = response.get_mut(container).and_then(Value::as_object_mut) {
            for key in ["hmacGetSecret", "hmac_get_secret"] {
                results.remove(key);
            }
            prf_entries.extend(results.remove("prf"));
        }
    }
    let mut output = None;
    for mut prf in prf_entries {
        let Some(values) = prf.get_mut("results").and_then(Value::as_object_mut) else {
            continue;
        };
        if let Some(Value::String(second)) = values.remove("second") {
            drop(Zeroizing::new(second));
        }
        match values.remove("first") {
            None | Some(Value::Null) => {}
            Some(Value::String(encoded)) => {
                let encoded = Zeroizing::new(encoded);
                if output.is_none() {
                    output = Some(PrfOutput::from_base64url(&encoded)?);
                }
            }
            Some(_) => {
                return Err(AuthenticatorError::MalformedPrfOutput(
                    "not a string".into(),
                ))
            }
        }
    }
    Ok(output)
}

/// An `io::Write` that only counts.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The serialised state, version 1.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
struct State {
    format: String,
    version: u32,
    aaguid: [u8; 16],
    credentials: Vec<StoredCredential>,
}

/// One credential (a passkey-rs `Passkey`, which is not serde).
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
struct StoredCredential {
    credential_id: Vec<u8>,
    rp_id: String,
    user_handle: Option<Vec<u8>>,
    username: Option<String>,
    user_display_name: Option<String>,
    counter: Option<u32>,
    /// The private key as a CBOR-encoded COSE_Key.
    cose_key: Vec<u8>,
    hmac_secret_with_uv: Option<Vec<u8>>,
    hmac_secret_without_uv: Option<Vec<u8>>,
}

impl StoredCredential {
    fn from_passkey(pk: &Passkey) -> Result<Self, AuthenticatorError> {
        let cose_key = pk.key.clone().to_vec().map_err(|e| {
            AuthenticatorError::StateEncode(format!("private key not encodable: {e}"))
        })?;
        let hmac = pk.extensions.hmac_secret.as_ref();
        Ok(Self {
            credential_id: pk.credential_id.to_vec(),
            rp_id: pk.rp_id.clone(),
            user_handle: pk.user_handle.as_ref().map(|h| h.to_vec()),
            username: pk.username.clone(),
            user_display_name: pk.user_display_name.clone(),
            counter: pk.counter,
            cose_key,
            hmac_secret_with_uv: hmac.map(|h| h.cred_with_uv.clone()),
            hmac_secret_without_uv: hmac.and_then(|h| h.cred_without_uv.clone()),
        })
    }

    fn to_passkey(&self) -> Result<Passkey, AuthenticatorError> {
        let invalid = |what: &str| AuthenticatorError::InvalidState(what.to_owned());
        let key = CoseKey::from_slice(&self.cose_key)
            .map_err(|_| invalid("a private key is not a COSE key"))?;
        <RustCryptoBackend as CryptoBackend>::SecretKey::from_cose_key(&key)
            .map_err(|_| invalid("a private key is not usable"))?;
        if self.credential_id.is_empty() || self.credential_id.len() > 1023 {
            return Err(invalid("a credential id has an invalid length"));
        }
        let hmac_secret = match (&self.hmac_secret_with_uv, &self.hmac_secret_without_uv) {
            (None, None) => None,
            (Some(with_uv), without_uv) => {
                if with_uv.len() != 32 || without_uv.as_ref().is_some_and(|s| s.len() != 32) {
                    return Err(invalid("an hmac secret is not 32 bytes"));
                }
                Some(StoredHmacSecret {
                    cred_with_uv: with_uv.clone(),
                    cred_without_uv: without_uv.clone(),
                })
            }
            (None, Some(_)) => return Err(invalid("an hmac secret without its UV secret")),
        };
        Ok(Passkey {
            key,
            credential_id: self.credential_id.clone().into(),
            rp_id: self.rp_id.clone(),
            user_handle: self.user_handle.clone().map(Into::into),
            username: self.username.clone(),
            user_display_name: self.user_display_name.clone(),
            counter: self.counter,
            extensions: CredentialExtensions { hmac_secret },
        })
    }
}

#[cfg(test)]
mod tests;
