//! Typed errors. Messages say *what* failed; they never contain plaintext,
//! key material, or which byte of a key/tag was wrong.

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Input is structurally invalid (wrong length, bad magic, trailing bytes...).
    #[error("malformed input: {0}")]
    Malformed(&'static str),
    /// The envelope declares a format version this build does not understand.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u8),
    /// The envelope declares a record kind this build does not understand.
    #[error("unknown record kind {0}")]
    UnknownKind(u8),
    /// A header field differs from what the caller expected (field name given).
    #[error("envelope header field `{0}` does not match the expected value")]
    HeaderMismatch(&'static str),
    /// A commit is structurally impossible, or does not fit the chain (the reason is given).
    #[error("commit rejected: {0}")]
    Commit(&'static str),
    /// The Ed25519 signature did not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// The signature is by a key the caller does not trust.
    #[error("record signed by an untrusted device key")]
    UntrustedSigner,
    /// AEAD decryption failed (wrong key, tampered ciphertext or associated data).
    #[error("decryption failed")]
    DecryptionFailed,
    /// A wrapped key decrypted fine but is bound to another case, epoch or society.
    #[error("wrapped key is bound to a different case, epoch or society")]
    WrongKeyBinding,
    /// Wrapping a key with age failed.
    #[error("key wrapping failed")]
    Wrap,
    /// Unwrapping a key with age failed (no matching identity, tampering...).
    #[error("key unwrapping failed")]
    Unwrap,
    /// A key could not be parsed (the kind of key is given).
    #[error("invalid key format: {0}")]
    KeyFormat(&'static str),
    /// The system random number generator failed.
    #[error("system randomness unavailable")]
    Randomness,
    /// Passphrase decryption failed (wrong passphrase, excessive work factor or tampering).
    #[error("passphrase decryption failed")]
    Passphrase,
    /// The scrypt work factor is outside the allowed range (10..=22).
    #[error("scrypt work factor {0} outside allowed range 10..=22")]
    InvalidWorkFactor(u8),
    /// An attachment stream was used in the wrong order (e.g. a chunk after the last one).
    #[error("attachment stream misuse: {0}")]
    AttachmentState(&'static str),
    /// An attachment stream ended without its final chunk.
    #[error("attachment stream truncated")]
    Truncated,
    /// The attachment chunk stream does not match the committed digest.
    #[error("attachment digest mismatch")]
    DigestMismatch,
    /// A key certificate or certificate chain was rejected (the reason is given; it never
    /// contains key bytes).
    #[error("key certificate rejected: {0}")]
    Certificate(&'static str),
    /// The age plugin binary for a plugin key is not on `PATH` (its name is given).
    #[error("age plugin `{0}` not found on PATH: install it, or put its directory on PATH")]
    PluginMissing(String),
    /// An age plugin asked for something rfl does not give without a prompt (what is given: "a PIN,
    /// and none was provided", "a confirmation, …").
    #[error("the age plugin asked for {0}")]
    PluginInteraction(&'static str),
    /// An age plugin ran and failed (the binary's name is given; its own messages go to the
    /// identity's message hook, never into this error).
    #[error("age plugin `{0}` failed to wrap or unwrap the key")]
    PluginFailed(String),
    /// A certificate revocation list was rejected (the reason is given; it never contains key
    /// bytes).
    #[error("revocation list rejected: {0}")]
    Revocation(&'static str),
    /// A key certificate names a role this build does not understand.
    #[error("unknown certified role {0}")]
    UnknownRole(u8),
}

/// Crate result type.
pub type Result<T> = std::result::Result<T, CryptoError>;
