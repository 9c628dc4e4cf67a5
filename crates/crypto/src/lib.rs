#![forbid(unsafe_code)]
// Tests may unwrap; non-test code is still linted (clippy checks the lib target separately).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
//! `rfl-crypto`: the end-to-end encryption format of the Restoring Family Links
//! case-management backend.
//!
//! * per-case random data keys ([`DataKey`]), wrapped with age to caseworkers and
//!   to the society escrow key ([`wrap_data_key`], [`wrap_escrow_identity`]);
//! * sealed record envelopes ([`seal_record`], [`open_record`]), authenticated by the signed case
//!   commit that lists them ([`CommitBody::sign`], [`parse_commit`], [`state_digest`]);
//! * data keys wrapped to their holder's own symmetric key ([`wrap_data_key_to_self`]);
//! * streaming attachment encryption ([`AttachmentSealer`], [`AttachmentOpener`]);
//! * passphrase-protected keystores and key-login challenges;
//! * key certificates: society root → admin → member ([`verify_chain`]), checked
//!   before any case key is wrapped ([`wrap_data_key_certified`]).
//!
//! This crate does no IO, with one exception: with the `plugin` feature (on by default), using an
//! age plugin identity or recipient (e.g. a YubiKey through age-plugin-yubikey) runs the plugin
//! binary from `PATH` (see [`AgeIdentity`]). The wire formats are documented in `docs/crypto.md`.

mod attachment;
mod auth;
mod cert;
mod chain;
mod commit;
mod envelope;
mod error;
mod escrow;
mod keys;
mod keywrap;
mod movement;
mod passphrase;
#[cfg(feature = "plugin")]
mod plugin;
mod revocation;
mod selfwrap;
mod succession;
mod trust;
mod wrap;

#[cfg(test)]
mod vectors_test;

pub use attachment::{AttachmentOpener, AttachmentSealer};
pub use auth::{auth_challenge_message, sign_auth_challenge, verify_auth_challenge};
pub use cert::{
    escrow_batch_certified, holder_batch_certified, issue_admin_cert, issue_escrow_cert,
    issue_member_cert, subject_keys_digest, subject_keys_fingerprint, verify_chain,
    wrap_data_key_certified, CertifiedRole, KeyCertificate, RootPublicKey, SocietyRootKey,
    Validity, VerifiedKeys, KEY_CERT_MAGIC, KEY_CERT_VERSION,
};
pub use chain::{CommitRun, Landing, RunError, RunFault};
pub use commit::{
    envelope_hash, holders_digest, key_commitment, parse_commit, sha256, state_digest, Commit,
    CommitBody, CommitHash, CommitOp, Holder, ListedRecord, StateDigest, StateEntry,
    VerifiedCommit, COMMIT_LEN, COMMIT_MAGIC, COMMIT_VERSION, MERGE_LEN, MERGE_VERSION,
};
pub use envelope::{
    open_record, parse_envelope_header, seal_record, EnvelopeHeader, ENVELOPE_MAGIC,
    ENVELOPE_OVERHEAD,
};
pub use error::{CryptoError, Result};
pub use escrow::{
    escrow_batch_tag, escrow_wrap_info, is_escrow_wrapped, unwrap_escrow_wrapped, EscrowBatch,
    EscrowWrapInfo, ESCROW_WRAP_MAGIC,
};
pub use keys::{
    AgeIdentity, AgeRecipient, DataKey, DevicePublicKey, DeviceSigningKey, DeviceVerifier,
};
pub use keywrap::{
    recipient_message, rewrap_keys, unwrap_keys, verify_recipient, wrap_keys_for_authenticator,
    AuthenticatorWrap, KEY_WRAP_MAGIC, KEY_WRAP_VERSION, PRF_SALT,
};
pub use movement::{certified_society_roots, SocietyCertificate, SOCIETY_CERT_LEN};
pub use passphrase::{open_with_passphrase, seal_with_passphrase, MAX_LOG_N};
#[cfg(feature = "plugin")]
pub use plugin::PluginMessageHook;
pub use revocation::{
    RevocationEntry, RevocationList, RevocationListBody, RevocationReason, VerifiedRevocations,
    MAX_REVOCATIONS, REVOCATION_MAGIC, REVOCATION_VERSION,
};
pub use selfwrap::{
    is_self_wrapped, unwrap_case_key, unwrap_self_wrapped, wrap_case_key_to, wrap_data_key_to_self,
    CaseWrapKey, LocalStateMac, SELF_WRAP_LEN, SELF_WRAP_MAGIC,
};
pub use succession::{roots_from_pin, RootSuccession, SUCCESSION_LEN};
pub use trust::{signature_counts, Trust, TrustError};
pub use wrap::{unwrap_data_key, unwrap_escrow_identity, wrap_data_key, wrap_escrow_identity};

/// Version of the attachment stream format and of [`RecordAad::encode`] (unchanged since format 1).
pub const FORMAT_VERSION: u8 = 1;

/// Version of record envelopes, case commits and self-wrapped data keys. Format 1 envelopes (one
/// signature per record, no commits) are refused.
pub const ENVELOPE_VERSION: u8 = 2;

/// Plaintext bytes per attachment chunk. Every chunk except the last is exactly this
/// long; the last may be shorter, and may be empty only if the whole attachment is empty.
pub const ATTACHMENT_CHUNK_SIZE: usize = 256 * 1024;

/// Length of [`RecordAad::encode`].
pub const RECORD_AAD_LEN: usize = 1 + 1 + 4 + 16 + 16 + 8;

/// Kind of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum RecordKind {
    /// Case header (title, status...).
    CaseHeader = 1,
    /// A person in the case (sought / enquirer).
    Person = 2,
    /// A Red Cross message.
    Message = 3,
    /// A caseworker note.
    Note = 4,
    /// Attachment metadata (commits to the attachment chunk stream).
    Attachment = 5,
}

impl RecordKind {
    /// Wire value.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// From wire value; `None` if unknown.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(RecordKind::CaseHeader),
            2 => Some(RecordKind::Person),
            3 => Some(RecordKind::Message),
            4 => Some(RecordKind::Note),
            5 => Some(RecordKind::Attachment),
            _ => None,
        }
    }

    /// snake_case name (same as serde).
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::CaseHeader => "case_header",
            RecordKind::Person => "person",
            RecordKind::Message => "message",
            RecordKind::Note => "note",
            RecordKind::Attachment => "attachment",
        }
    }
}

/// What a record's ciphertext is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordAad {
    /// Case the record belongs to.
    pub case_id: uuid::Uuid,
    /// Stable id of the record across versions.
    pub record_id: uuid::Uuid,
    /// Kind of record.
    pub kind: RecordKind,
    /// Record version (monotonic per record).
    pub version: u64,
    /// Epoch of the case data key used.
    pub key_epoch: u32,
}

impl RecordAad {
    /// Canonical encoding used as attachment AAD and HKDF info:
    /// `format_version u8 | kind u8 | key_epoch u32 BE | case_id 16 | record_id 16 | version u64 BE`.
    pub fn encode(&self) -> [u8; RECORD_AAD_LEN] {
        let mut out = [0u8; RECORD_AAD_LEN];
        out[0] = FORMAT_VERSION;
        out[1] = self.kind.as_u8();
        out[2..6].copy_from_slice(&self.key_epoch.to_be_bytes());
        out[6..22].copy_from_slice(self.case_id.as_bytes());
        out[22..38].copy_from_slice(self.record_id.as_bytes());
        out[38..46].copy_from_slice(&self.version.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_kind_roundtrip() {
        for v in 0u8..=255 {
            if let Some(k) = RecordKind::from_u8(v) {
                assert_eq!(k.as_u8(), v);
                let json = serde_json::to_string(&k).unwrap();
                assert_eq!(json, format!("\"{}\"", k.as_str()));
                let back: RecordKind = serde_json::from_str(&json).unwrap();
                assert_eq!(back, k);
            } else {
                assert!(v == 0 || v > 5);
            }
        }
        assert_eq!(RecordKind::CaseHeader.as_str(), "case_header");
    }

    #[test]
    fn record_aad_encoding() {
        let aad = RecordAad {
            case_id: uuid::Uuid::from_bytes([1; 16]),
            record_id: uuid::Uuid::from_bytes([2; 16]),
            kind: RecordKind::Note,
            version: 0x0102_0304_0506_0708,
            key_epoch: 0x0a0b_0c0d,
        };
        let e = aad.encode();
        assert_eq!(e[0], FORMAT_VERSION);
        assert_eq!(e[1], 4);
        assert_eq!(&e[2..6], &[0x0a, 0x0b, 0x0c, 0x0d]);
        assert_eq!(&e[6..22], &[1; 16]);
        assert_eq!(&e[22..38], &[2; 16]);
        assert_eq!(&e[38..46], &[1, 2, 3, 4, 5, 6, 7, 8]);
    }
}
