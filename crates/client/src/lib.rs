#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
//! The rfl client SDK. All encryption and decryption happens here, on the caseworker's machine: the
//! server only ever receives sealed records, wrapped keys and public keys.
//!
//! - [`keystore`]: the device's private keys at rest (a passphrase-sealed file for now).
//! - [`http`]: the REST API as typed calls; problem+json errors become [`ClientError::Api`].
//! - [`passkey`]: WebAuthn passkeys: add one, sign in with one (the authenticator is the caller's).
//! - [`session`]: a signed-in device: create, read, update cases; messages, notes, attachments; export.
//! - [`heads`]: the latest case commits this client verified (rollback detection).
//! - [`merge`]: the three-way update of a case file against the commit it was shown at.

pub mod authenticator;
pub mod error;
pub mod escrow_rotation;
pub mod heads;
pub mod http;
mod idle;
pub mod keystore;
pub mod merge;
pub mod movement;
pub mod passkey;
pub mod person;
pub mod recovery;
pub mod root_rotation;
pub mod session;
pub mod sync;
pub mod trust;

pub use authenticator::{AuthenticatorError, PrfOutput, SoftAuthenticator};
pub use error::ClientError;
pub use keystore::{DeviceKeys, Keystore};
pub use person::{enrol_person, enrol_person_with_keys, sign_in_person, Site};
pub use session::{CaseConflict, OpenedCase, RekeySummary, Session};
pub use trust::Revoked;

pub type Result<T> = std::result::Result<T, ClientError>;
