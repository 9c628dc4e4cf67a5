//! Key types: per-case data keys, Ed25519 device keys, age identities/recipients.

use std::fmt;
use std::str::FromStr;

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};

/// Random 256-bit per-case data key; zeroized on drop; `Debug` prints nothing secret.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// Generate a fresh random data key from the system CSPRNG.
    pub fn generate() -> Result<DataKey> {
        let mut k = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(&mut k[..])
            .map_err(|_| CryptoError::Randomness)?;
        Ok(DataKey(k))
    }

    /// Wrap existing key bytes (e.g. after unwrapping). The array passed in is
    /// moved into zeroizing storage; callers should zeroize their own copies.
    pub fn from_bytes(b: [u8; 32]) -> DataKey {
        DataKey(Zeroizing::new(b))
    }

    /// The raw key bytes. Handle with care.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether two keys are the same, in constant time.
    pub fn same_as(&self, other: &DataKey) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.0.ct_eq(&*other.0))
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// Ed25519 device signing key (ring). The PKCS#8 document is kept in zeroizing storage.
///
/// Note: ring's `Ed25519KeyPair` does not zeroize its own internal copy on drop;
/// that is a limitation of ring, not of this wrapper.
pub struct DeviceSigningKey {
    pair: Ed25519KeyPair,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl DeviceSigningKey {
    /// Generate a new random device key.
    pub fn generate() -> Result<Self> {
        let rng = SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| CryptoError::Randomness)?;
        Self::from_pkcs8(doc.as_ref())
    }

    /// Load a key from its (v2) PKCS#8 DER document, as produced by [`Self::pkcs8_der`].
    pub fn from_pkcs8(der: &[u8]) -> Result<Self> {
        let pair =
            Ed25519KeyPair::from_pkcs8(der).map_err(|_| CryptoError::KeyFormat("ed25519 pkcs8"))?;
        Ok(DeviceSigningKey {
            pair,
            pkcs8: Zeroizing::new(der.to_vec()),
        })
    }

    /// The PKCS#8 DER document (secret!). For storing in the passphrase-protected keystore.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public half.
    pub fn public_key(&self) -> DevicePublicKey {
        let mut b = [0u8; 32];
        // ring's Ed25519 public keys are always exactly 32 bytes.
        b.copy_from_slice(self.pair.public_key().as_ref());
        DevicePublicKey(b)
    }

    /// Sign `msg` (Ed25519 is deterministic).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        // ring's Ed25519 signatures are always exactly 64 bytes.
        out.copy_from_slice(self.pair.sign(msg).as_ref());
        out
    }
}

impl fmt::Debug for DeviceSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceSigningKey")
            .field("public", &self.public_key().fingerprint())
            .finish_non_exhaustive()
    }
}

/// Ed25519 device public key (raw 32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct DevicePublicKey([u8; 32]);

impl DevicePublicKey {
    /// From raw bytes.
    pub fn from_bytes(b: [u8; 32]) -> Self {
        DevicePublicKey(b)
    }

    /// From a slice; must be exactly 32 bytes.
    pub fn from_slice(b: &[u8]) -> Result<Self> {
        let arr: [u8; 32] = b
            .try_into()
            .map_err(|_| CryptoError::KeyFormat("ed25519 public key length"))?;
        Ok(DevicePublicKey(arr))
    }

    /// Raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Verify an Ed25519 signature over `msg` (RFC 8032, with ed25519-dalek's strict rules: a
    /// non-canonical S, a small-order public key or R, or a key that is not a curve point are
    /// refused). Signatures made by [`DeviceSigningKey::sign`] (ring) always pass.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<()> {
        self.verifier()?.verify(msg, sig)
    }

    /// This key decompressed once, to verify many signatures by it ([`DeviceVerifier`]). A key
    /// that is not a curve point is refused with [`CryptoError::BadSignature`]: nothing it is said
    /// to have signed verifies.
    pub fn verifier(&self) -> Result<DeviceVerifier> {
        let point = ed25519_dalek::VerifyingKey::from_bytes(&self.0)
            .map_err(|_| CryptoError::BadSignature)?;
        Ok(DeviceVerifier { point })
    }

    /// Lowercase hex of the first 16 bytes of SHA-256(public key).
    pub fn fingerprint(&self) -> String {
        let d = ring::digest::digest(&ring::digest::SHA256, &self.0);
        to_hex(&d.as_ref()[..16])
    }
}

/// A [`DevicePublicKey`] whose point is decompressed: about a tenth of an Ed25519 verification,
/// paid once for all the signatures of one author (the commits of an import batch, the heads a
/// client opens) instead of once per signature. Verifies exactly as [`DevicePublicKey::verify`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DeviceVerifier {
    point: ed25519_dalek::VerifyingKey,
}

impl DeviceVerifier {
    /// Verify an Ed25519 signature over `msg` with the strict rules of [`DevicePublicKey::verify`].
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<()> {
        let sig =
            ed25519_dalek::Signature::from_slice(sig).map_err(|_| CryptoError::BadSignature)?;
        self.point
            .verify_strict(msg, &sig)
            .map_err(|_| CryptoError::BadSignature)
    }

    /// The public key this verifier is for.
    pub fn public_key(&self) -> DevicePublicKey {
        DevicePublicKey(self.point.to_bytes())
    }
}

pub(crate) fn to_hex(b: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(char::from(HEX[usize::from(x >> 4)]));
        s.push(char::from(HEX[usize::from(x & 0x0f)]));
    }
    s
}

/// Decode lowercase or uppercase hex; `None` on odd length or a non-hex character.
pub(crate) fn from_hex(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks_exact(2)
        .map(|p| match p {
            [hi, lo] => Some((nibble(*hi)? << 4) | nibble(*lo)?),
            _ => None,
        })
        .collect()
}

/// An age identity: an X25519 secret key (the fast path, kept in memory), or — with the `plugin`
/// feature — an age plugin identity (`AGE-PLUGIN-<NAME>-1…`, e.g. a YubiKey through
/// age-plugin-yubikey), which is only a handle: the secret stays on the token and the plugin binary
/// `age-plugin-<name>` (found on `PATH`) does the unwrapping.
///
/// A plugin identity does not encode its recipient, so it is always built together with it
/// ([`AgeIdentity::plugin`], [`AgeIdentity::from_identity_file`]).
pub struct AgeIdentity(IdentityKind);

enum IdentityKind {
    X25519(age::x25519::Identity),
    #[cfg(feature = "plugin")]
    Plugin(crate::plugin::PluginIdentity),
}

const PLUGIN_IDENTITY_PREFIX: &str = "AGE-PLUGIN-";

impl AgeIdentity {
    /// Generate a new random X25519 identity.
    pub fn generate() -> Self {
        AgeIdentity(IdentityKind::X25519(age::x25519::Identity::generate()))
    }

    /// Parse an X25519 `AGE-SECRET-KEY-1...` string (surrounding whitespace ignored). A plugin
    /// identity is refused here, because it needs its recipient: use [`AgeIdentity::plugin`] or
    /// [`AgeIdentity::from_identity_file`].
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.starts_with(PLUGIN_IDENTITY_PREFIX) {
            return Err(CryptoError::KeyFormat(
                "age plugin identity given without its recipient",
            ));
        }
        age::x25519::Identity::from_str(s)
            .map(|i| AgeIdentity(IdentityKind::X25519(i)))
            .map_err(|_| CryptoError::KeyFormat("age x25519 identity"))
    }

    /// An age plugin identity (`AGE-PLUGIN-<NAME>-1…`) with its recipient (`age1<name>1…`), which
    /// must be a plugin recipient of the same plugin. Nothing is run: the plugin is looked up on
    /// `PATH` only when the identity is used.
    #[cfg(feature = "plugin")]
    pub fn plugin(identity: &str, recipient: &AgeRecipient) -> Result<Self> {
        crate::plugin::PluginIdentity::new(identity.trim(), recipient)
            .map(|p| AgeIdentity(IdentityKind::Plugin(p)))
    }

    /// Parse an identity file as age and its plugins write them: one identity line, blank lines and
    /// `#` comments ignored, except a `# recipient: age1…` comment (any case and padding, as in
    /// age-plugin-yubikey's `#    Recipient: …`), which gives a plugin identity its recipient and
    /// is required for one. For an X25519 identity the recipient is derived, and a recipient comment,
    /// if present, must match it.
    pub fn from_identity_file(text: &str) -> Result<Self> {
        let mut recipient = None;
        let mut identity: Option<&str> = None;
        for line in text.lines().map(str::trim) {
            if let Some(comment) = line.strip_prefix('#') {
                let comment = comment.trim_start();
                if let Some((key, value)) = comment.split_once(':') {
                    if key.trim().eq_ignore_ascii_case("recipient") {
                        if recipient.is_some() {
                            return Err(CryptoError::KeyFormat(
                                "identity file names more than one recipient",
                            ));
                        }
                        recipient = Some(AgeRecipient::parse(value)?);
                    }
                }
            } else if !line.is_empty() {
                if identity.is_some() {
                    return Err(CryptoError::KeyFormat(
                        "identity file holds more than one identity",
                    ));
                }
                identity = Some(line);
            }
        }
        let identity = identity.ok_or(CryptoError::KeyFormat("identity file holds no identity"))?;
        if identity.starts_with(PLUGIN_IDENTITY_PREFIX) {
            #[cfg(feature = "plugin")]
            {
                let recipient = recipient.ok_or(CryptoError::KeyFormat(
                    "identity file has no `# recipient:` line for its plugin identity",
                ))?;
                Self::plugin(identity, &recipient)
            }
            #[cfg(not(feature = "plugin"))]
            {
                Err(CryptoError::KeyFormat(
                    "age plugin identity (built without plugin support)",
                ))
            }
        } else {
            let id = Self::parse(identity)?;
            match recipient {
                Some(r) if r != id.recipient() => Err(CryptoError::KeyFormat(
                    "identity file's recipient line does not match its identity",
                )),
                _ => Ok(id),
            }
        }
    }

    /// The `AGE-SECRET-KEY-1...` encoding, as a secret. For a plugin identity, its
    /// `AGE-PLUGIN-…` string: a handle to the token, not the secret itself (the recipient is
    /// not part of it; keep it beside).
    pub fn to_secret_string(&self) -> SecretString {
        match &self.0 {
            IdentityKind::X25519(i) => i.to_string(),
            #[cfg(feature = "plugin")]
            IdentityKind::Plugin(p) => p.identity_string(),
        }
    }

    /// The matching recipient (public key).
    pub fn recipient(&self) -> AgeRecipient {
        match &self.0 {
            IdentityKind::X25519(i) => AgeRecipient(RecipientKind::X25519(i.to_public())),
            #[cfg(feature = "plugin")]
            IdentityKind::Plugin(p) => p.recipient().clone(),
        }
    }

    /// Whether this is an age plugin identity (a handle to a token) rather than an X25519 key.
    pub fn is_plugin(&self) -> bool {
        match &self.0 {
            IdentityKind::X25519(_) => false,
            #[cfg(feature = "plugin")]
            IdentityKind::Plugin(_) => true,
        }
    }

    /// The PIN to give a plugin that asks for one while unwrapping (e.g. a YubiKey's PIN). rfl never
    /// prompts: without a PIN, a plugin that asks for one fails with
    /// [`CryptoError::PluginInteraction`]. No effect on an X25519 identity. The PIN is never logged
    /// or printed.
    #[cfg(feature = "plugin")]
    pub fn set_plugin_pin(&self, pin: SecretString) {
        if let IdentityKind::Plugin(p) = &self.0 {
            p.set_pin(pin);
        }
    }

    /// Where messages from the plugin go (e.g. "touch your YubiKey", or the plugin's own error
    /// messages): by default nowhere. The hook should show them to the person, not log them. No
    /// effect on an X25519 identity.
    #[cfg(feature = "plugin")]
    pub fn set_plugin_message_hook(&self, hook: crate::plugin::PluginMessageHook) {
        if let IdentityKind::Plugin(p) = &self.0 {
            p.set_message_hook(hook);
        }
    }

    /// As an age identity, for decryption (a plugin identity runs its plugin when used).
    pub fn as_age(&self) -> &dyn age::Identity {
        self
    }
}

impl age::Identity for AgeIdentity {
    fn unwrap_stanza(
        &self,
        stanza: &age_core::format::Stanza,
    ) -> Option<std::result::Result<age_core::format::FileKey, age::DecryptError>> {
        self.unwrap_stanzas(std::slice::from_ref(stanza))
    }

    fn unwrap_stanzas(
        &self,
        stanzas: &[age_core::format::Stanza],
    ) -> Option<std::result::Result<age_core::format::FileKey, age::DecryptError>> {
        match &self.0 {
            IdentityKind::X25519(i) => i.unwrap_stanzas(stanzas),
            #[cfg(feature = "plugin")]
            IdentityKind::Plugin(p) => p.unwrap_stanzas(stanzas),
        }
    }
}

impl fmt::Debug for AgeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgeIdentity(recipient = {})", self.recipient())
    }
}

/// An age recipient (public key): X25519 (`age1…`), or — with the `plugin` feature — an age plugin
/// recipient (`age1<name>1…`, lower case only, as age reads them), which wrapping hands to the
/// plugin binary `age-plugin-<name>` on `PATH`.
#[derive(Clone)]
pub struct AgeRecipient(RecipientKind);

#[derive(Clone)]
enum RecipientKind {
    X25519(age::x25519::Recipient),
    #[cfg(feature = "plugin")]
    Plugin(crate::plugin::PluginRecipient),
}

impl AgeRecipient {
    /// Parse an X25519 `age1...` string or an age plugin recipient `age1<name>1…` (surrounding
    /// whitespace ignored).
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if let Ok(r) = Self::parse_x25519(s) {
            return Ok(r);
        }
        #[cfg(feature = "plugin")]
        if let Some(p) = crate::plugin::PluginRecipient::parse(s) {
            return Ok(AgeRecipient(RecipientKind::Plugin(p)));
        }
        Err(CryptoError::KeyFormat("age recipient"))
    }

    /// Parse an X25519 `age1...` string only (for keys rfl generates itself, such as an
    /// authenticator's: a plugin recipient there would let whoever supplied it choose a program
    /// to run).
    pub fn parse_x25519(s: &str) -> Result<Self> {
        age::x25519::Recipient::from_str(s.trim())
            .map(|r| AgeRecipient(RecipientKind::X25519(r)))
            .map_err(|_| CryptoError::KeyFormat("age x25519 recipient"))
    }

    /// Whether this is an age plugin recipient rather than an X25519 key.
    pub fn is_plugin(&self) -> bool {
        match &self.0 {
            RecipientKind::X25519(_) => false,
            #[cfg(feature = "plugin")]
            RecipientKind::Plugin(_) => true,
        }
    }

    /// The plugin's name (`yubikey` for `age1yubikey1…`), or `None` for an X25519 recipient.
    pub fn plugin_name(&self) -> Option<&str> {
        match &self.0 {
            RecipientKind::X25519(_) => None,
            #[cfg(feature = "plugin")]
            RecipientKind::Plugin(p) => Some(p.plugin_name()),
        }
    }

    /// As an age recipient, for encryption (a plugin recipient runs its plugin when used).
    pub fn as_age(&self) -> &dyn age::Recipient {
        self
    }
}

impl age::Recipient for AgeRecipient {
    fn wrap_file_key(
        &self,
        file_key: &age_core::format::FileKey,
    ) -> std::result::Result<
        (
            Vec<age_core::format::Stanza>,
            std::collections::HashSet<String>,
        ),
        age::EncryptError,
    > {
        match &self.0 {
            RecipientKind::X25519(r) => r.wrap_file_key(file_key),
            #[cfg(feature = "plugin")]
            RecipientKind::Plugin(p) => p.wrap_file_key(file_key),
        }
    }
}

impl PartialEq for AgeRecipient {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (RecipientKind::X25519(a), RecipientKind::X25519(b)) => a == b,
            #[cfg(feature = "plugin")]
            (RecipientKind::Plugin(a), RecipientKind::Plugin(b)) => a.as_str() == b.as_str(),
            #[cfg(feature = "plugin")]
            _ => false,
        }
    }
}

impl Eq for AgeRecipient {}

impl fmt::Display for AgeRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            RecipientKind::X25519(r) => fmt::Display::fmt(r, f),
            #[cfg(feature = "plugin")]
            RecipientKind::Plugin(p) => f.write_str(p.as_str()),
        }
    }
}

impl fmt::Debug for AgeRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgeRecipient({self})")
    }
}

#[cfg(test)]
mod tests;
