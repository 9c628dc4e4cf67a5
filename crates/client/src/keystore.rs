//! What `rfl` keeps on disk.
//!
//! A JSON file (mode 0600, replaced atomically) with readable public parts (server, origin, ids, public
//! keys: `rfl` can say who you are without a passphrase) and sealed secrets, one of:
//!
//! - **a person, development mode** (`holder = "dev_authenticator"`): the state of a *software*
//!   authenticator ([`crate::SoftAuthenticator`]: passkey and PRF secret), sealed with age's scrypt
//!   passphrase encryption. The person's private keys are *not* in the file: they are wrapped per
//!   authenticator and held by the server, and only this authenticator's PRF output opens them. This is
//!   an explicit development mode: whoever has the file and the passphrase has the authenticator. In
//!   production a person uses a hardware authenticator, whose secrets never leave it.
//! - **a machine** (`holder = "machine_keys"`, a society's sync agent): its Ed25519 and age keys,
//!   passphrase-sealed, used for the key login that only machines have.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use rfl_crypto::{
    unwrap_data_key, wrap_data_key, AgeIdentity, AgeRecipient, CaseWrapKey, CryptoError, DataKey,
    DeviceSigningKey,
};
use rfl_domain::{MemberId, Role, SocietyId};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{ClientError, Result};

const FORMAT: &str = "rfl-keystore-v2";

/// What a keystore's sealed secrets hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyHolder {
    /// A software authenticator (development mode); the person's keys are wrapped to it on the server.
    DevAuthenticator,
    /// A machine's private keys (sync agents).
    MachineKeys,
}

/// The device's private keys, in memory.
pub struct DeviceKeys {
    pub signing: DeviceSigningKey,
    pub age: AgeIdentity,
    /// The symmetric key this holder wraps its own case keys to (docs/crypto.md, "Self-wrapped data
    /// keys"): opening or creating one's own case needs no public-key operation. See
    /// [`DeviceKeys::case_key`].
    case_key: CaseKeySlot,
    /// New keys prepared for a rotation and not yet in use (see [`DeviceKeys::next`]).
    next: Option<Arc<DeviceKeys>>,
}

/// Where the case key-wrapping key is.
enum CaseKeySlot {
    /// In memory with the other keys (an X25519 age identity).
    Plain(CaseWrapKey),
    /// Wrapped to the age identity on a token (an age plugin): unwrapped by the token the first time
    /// it is needed, then kept for the session.
    OnToken {
        wrapped: Vec<u8>,
        unlocked: std::sync::OnceLock<CaseWrapKey>,
    },
}

impl DeviceKeys {
    pub fn generate() -> Result<DeviceKeys> {
        Self::generate_with_age(AgeIdentity::generate())
    }

    /// A new signing key with the given age identity: typically an age plugin identity, so that case
    /// keys are wrapped to a token (e.g. a YubiKey through age-plugin-yubikey) and unwrapped on it.
    pub fn generate_with_age(age: AgeIdentity) -> Result<DeviceKeys> {
        let kwk = CaseWrapKey::generate()?;
        let case_key = if age.is_plugin() {
            // Wrapping to a plugin recipient runs the plugin once, here.
            CaseKeySlot::OnToken {
                wrapped: rfl_crypto::wrap_case_key_to(&kwk, age.recipient().as_age())?,
                unlocked: std::sync::OnceLock::from(kwk),
            }
        } else {
            CaseKeySlot::Plain(kwk)
        };
        Ok(DeviceKeys {
            signing: DeviceSigningKey::generate()?,
            age,
            case_key,
            next: None,
        })
    }

    /// The case key-wrapping key. For an age identity on a token this asks the token the first time
    /// in a session (its PIN comes from `$RFL_AGE_PLUGIN_PIN`), and never again in that session.
    pub fn case_key(&self) -> Result<&CaseWrapKey> {
        match &self.case_key {
            CaseKeySlot::Plain(k) => Ok(k),
            CaseKeySlot::OnToken { wrapped, unlocked } => {
                if let Some(k) = unlocked.get() {
                    return Ok(k);
                }
                let k = rfl_crypto::unwrap_case_key(wrapped, self.age.as_age())?;
                Ok(unlocked.get_or_init(|| k))
            }
        }
    }

    /// Checks that the age identity opens what is wrapped to its recipient: a random key is wrapped
    /// to the recipient and unwrapped with the identity. For a plugin identity this runs the plugin
    /// twice (the token may ask for its PIN or a touch), and catches an identity file whose
    /// `# recipient:` line is not the token's before any case key is wrapped to it.
    pub fn check_age_identity(&self) -> Result<()> {
        let key = DataKey::generate()?;
        let case = uuid::Uuid::nil();
        let wrapped = wrap_data_key(&key, case, 0, self.age.recipient().as_age())?;
        match unwrap_data_key(&wrapped, case, 0, self.age.as_age()) {
            Ok(back) if back.expose_bytes() == key.expose_bytes() => Ok(()),
            Ok(_) | Err(CryptoError::Unwrap) => Err(ClientError::Invalid(
                "the age identity does not open what is wrapped to its recipient (is the \
                 `# recipient:` line the token's?)"
                    .into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// The private keys as bytes (JSON: the Ed25519 PKCS#8 document in base64 and the age identity),
    /// for sealing: by a passphrase (development keystore) or per authenticator (key wrapping). Keys
    /// prepared for a rotation ([`DeviceKeys::next`]) are included.
    pub fn to_secret_bytes(&self) -> Result<Zeroizing<Vec<u8>>> {
        let secrets = self.to_secrets(true);
        let json = Zeroizing::new(serde_json::to_vec(&secrets)?);
        secrets.zeroize();
        Ok(json)
    }

    fn to_secrets(&self, with_next: bool) -> Secrets {
        let b64 = base64::engine::general_purpose::STANDARD;
        Secrets {
            signing_pkcs8: b64.encode(self.signing.pkcs8_der()),
            age_identity: self.age.to_secret_string().expose_secret().to_owned(),
            age_recipient: self
                .age
                .is_plugin()
                .then(|| self.age.recipient().to_string()),
            case_wrap_key: match &self.case_key {
                CaseKeySlot::Plain(k) => b64.encode(k.expose_bytes()),
                CaseKeySlot::OnToken { wrapped, .. } => b64.encode(wrapped),
            },
            next: match (&self.next, with_next) {
                (Some(n), true) => Some(Box::new(n.to_secrets(false))),
                _ => None,
            },
        }
    }

    /// The inverse of [`DeviceKeys::to_secret_bytes`].
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<DeviceKeys> {
        let secrets: Secrets = serde_json::from_slice(bytes)
            .map_err(|_| ClientError::Keystore("the sealed secrets are malformed".into()))?;
        Self::from_secrets(secrets)
    }

    fn from_secrets(mut secrets: Secrets) -> Result<DeviceKeys> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let next = match secrets.next.take() {
            Some(n) if n.next.is_some() => {
                return Err(ClientError::Keystore(
                    "the sealed secrets are malformed (nested next keys)".into(),
                ))
            }
            Some(n) => Some(Arc::new(Self::from_secrets(*n)?)),
            None => None,
        };
        let pkcs8 = Zeroizing::new(
            b64.decode(&secrets.signing_pkcs8)
                .map_err(|_| ClientError::Keystore("the signing key is malformed".into()))?,
        );
        let age = match &secrets.age_recipient {
            // A plugin identity (a handle to a token) and its recipient.
            Some(r) => AgeIdentity::plugin(&secrets.age_identity, &AgeRecipient::parse(r)?)?,
            None => AgeIdentity::parse(&secrets.age_identity)?,
        };
        let case_key =
            Zeroizing::new(b64.decode(&secrets.case_wrap_key).map_err(|_| {
                ClientError::Keystore("the case key-wrapping key is malformed".into())
            })?);
        let case_key = if age.is_plugin() {
            CaseKeySlot::OnToken {
                wrapped: case_key.to_vec(),
                unlocked: std::sync::OnceLock::new(),
            }
        } else {
            CaseKeySlot::Plain(CaseWrapKey::from_slice(&case_key)?)
        };
        let keys = DeviceKeys {
            signing: DeviceSigningKey::from_pkcs8(&pkcs8)?,
            age,
            case_key,
            next,
        };
        secrets.zeroize();
        Ok(keys)
    }

    /// The keys prepared to rotate to (`rfl keys rotate`), kept with these until the rotation is done.
    pub fn next(&self) -> Option<&Arc<DeviceKeys>> {
        self.next.as_ref()
    }

    /// These keys with `next` prepared to rotate to.
    pub fn with_next(self, next: DeviceKeys) -> DeviceKeys {
        DeviceKeys {
            next: Some(Arc::new(next)),
            ..self
        }
    }

    /// Whether these are the keys with public halves `signing` and `recipient`.
    pub fn is(&self, signing: &[u8], recipient: &str) -> bool {
        self.signing.public_key().as_bytes().as_slice() == signing
            && self.age.recipient().to_string() == recipient
    }
}

impl std::fmt::Debug for DeviceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceKeys(..)")
    }
}

/// The keystore file's contents.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keystore {
    pub format: String,
    pub server: String,
    /// The WebAuthn origin the server's relying party expects.
    pub origin: String,
    pub holder: KeyHolder,
    /// scrypt work factor of the sealed secrets (re-sealed with the same after a ceremony).
    pub work_factor: u8,
    pub member_id: MemberId,
    pub society_id: SocietyId,
    pub role: Role,
    /// base64 Ed25519 public key.
    pub signing_public_key: String,
    pub age_recipient: String,
    /// base64 age (scrypt) file: the authenticator's state, or the machine's keys ([`Secrets`] as JSON).
    pub sealed_secrets: String,
    /// Fingerprint of the society root key, given out of band with the enrolment code: only keys this
    /// root certifies are trusted.
    #[serde(default)]
    pub root_fingerprint: Option<String>,
    /// Fingerprint of the Movement root, given out of band: another society's keys are trusted
    /// only if it certifies that society's root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub movement_fingerprint: Option<String>,
    /// The public keys of the keys prepared for a rotation (`rfl keys rotate`), until it is done:
    /// base64 Ed25519 public key and age recipient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_keys: Option<(String, String)>,
}

/// Who a keystore belongs to (its public parts).
#[derive(Clone, Debug)]
pub struct Owner {
    pub server: String,
    pub origin: String,
    pub member_id: MemberId,
    pub society_id: SocietyId,
    pub role: Role,
    pub signing_public_key: rfl_crypto::DevicePublicKey,
    pub age_recipient: String,
    pub root_fingerprint: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Secrets {
    signing_pkcs8: String,
    /// An X25519 `AGE-SECRET-KEY-1…`, or an age plugin identity `AGE-PLUGIN-…` (a handle to a token).
    age_identity: String,
    /// A plugin identity's recipient (it cannot be derived from the identity); absent for X25519.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    age_recipient: Option<String>,
    /// The case key-wrapping key, base64: its 32 bytes, or (for a plugin identity) an age file
    /// wrapping them to the token's recipient.
    case_wrap_key: String,
    /// Keys prepared for a rotation (`rfl keys rotate`), kept until it is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next: Option<Box<Secrets>>,
}

impl Secrets {
    /// Wipes the secret strings (and the next keys').
    fn zeroize(self) {
        drop(Zeroizing::new(self.signing_pkcs8));
        drop(Zeroizing::new(self.age_identity));
        drop(Zeroizing::new(self.case_wrap_key));
        if let Some(n) = self.next {
            n.zeroize();
        }
    }
}

impl Keystore {
    /// Seals a machine's `keys` under `passphrase` (scrypt work factor `log_n`, 2^log_n; 18 is a good
    /// default).
    pub fn seal(
        owner: &Owner,
        keys: &DeviceKeys,
        passphrase: &SecretString,
        log_n: u8,
    ) -> Result<Keystore> {
        Self::seal_bytes(
            owner,
            KeyHolder::MachineKeys,
            &keys.to_secret_bytes()?,
            passphrase,
            log_n,
        )
    }

    /// Seals a development authenticator's state (see [`crate::SoftAuthenticator::to_secret_bytes`]).
    pub fn seal_authenticator(
        owner: &Owner,
        state: &[u8],
        passphrase: &SecretString,
        log_n: u8,
    ) -> Result<Keystore> {
        Self::seal_bytes(owner, KeyHolder::DevAuthenticator, state, passphrase, log_n)
    }

    fn seal_bytes(
        owner: &Owner,
        holder: KeyHolder,
        secret: &[u8],
        passphrase: &SecretString,
        log_n: u8,
    ) -> Result<Keystore> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let sealed = rfl_crypto::seal_with_passphrase(secret, passphrase, log_n)?;
        Ok(Keystore {
            format: FORMAT.to_owned(),
            server: owner.server.clone(),
            origin: owner.origin.clone(),
            holder,
            work_factor: log_n,
            member_id: owner.member_id,
            society_id: owner.society_id,
            role: owner.role,
            signing_public_key: b64.encode(owner.signing_public_key.as_bytes()),
            age_recipient: owner.age_recipient.clone(),
            sealed_secrets: b64.encode(sealed),
            root_fingerprint: owner.root_fingerprint.clone(),
            movement_fingerprint: None,
            next_keys: None,
        })
    }

    /// Opens the sealed bytes; a wrong passphrase is an error that says so.
    pub fn unlock_bytes(&self, passphrase: &SecretString) -> Result<Zeroizing<Vec<u8>>> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let sealed = b64
            .decode(&self.sealed_secrets)
            .map_err(|_| ClientError::Keystore("the sealed secrets are not base64".into()))?;
        rfl_crypto::open_with_passphrase(&sealed, passphrase).map_err(|_| {
            ClientError::Keystore("wrong passphrase, or the keystore is damaged".into())
        })
    }

    /// Whether `keys` are the ones this keystore was enrolled with (its recorded public keys). A person's
    /// keys come back from the server wrapped; this pins them to what the person enrolled.
    /// During a rotation, the keys prepared (recorded with [`Keystore::record_next`]) match too.
    pub fn matches(&self, keys: &DeviceKeys) -> bool {
        let b64 = base64::engine::general_purpose::STANDARD;
        let signing = b64.encode(keys.signing.public_key().as_bytes());
        let recipient = keys.age.recipient().to_string();
        (signing == self.signing_public_key && recipient == self.age_recipient)
            || self
                .next_keys
                .as_ref()
                .is_some_and(|(s, r)| *s == signing && *r == recipient)
    }

    /// Records the public keys of `next`, the keys prepared for a rotation.
    pub fn record_next(&mut self, next: &DeviceKeys) {
        let b64 = base64::engine::general_purpose::STANDARD;
        self.next_keys = Some((
            b64.encode(next.signing.public_key().as_bytes()),
            next.age.recipient().to_string(),
        ));
    }

    /// Records `keys` as this keystore's keys (a rotation is done), forgetting the keys prepared.
    pub fn record_rotated(&mut self, keys: &DeviceKeys) {
        let b64 = base64::engine::general_purpose::STANDARD;
        self.signing_public_key = b64.encode(keys.signing.public_key().as_bytes());
        self.age_recipient = keys.age.recipient().to_string();
        self.next_keys = None;
    }

    /// Opens a machine's keys; a wrong passphrase is an error that says so.
    pub fn unlock(&self, passphrase: &SecretString) -> Result<DeviceKeys> {
        if self.holder != KeyHolder::MachineKeys {
            return Err(ClientError::Keystore(
                "this keystore holds an authenticator, not keys".into(),
            ));
        }
        let keys = DeviceKeys::from_secret_bytes(&self.unlock_bytes(passphrase)?)?;
        if !self.matches(&keys) {
            return Err(ClientError::Keystore(
                "the keystore's public and private parts do not match".into(),
            ));
        }
        Ok(keys)
    }

    /// Writes the keystore over an existing one (after its authenticator's state changed).
    pub fn save(&self, path: &Path) -> Result<()> {
        write_private(path, &serde_json::to_vec_pretty(self)?)
    }

    pub fn load(path: &Path) -> Result<Keystore> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ClientError::Keystore(format!(
                "cannot read {}: {e} (enrol first: rfl enrol)",
                path.display()
            ))
        })?;
        let ks: Keystore = serde_json::from_str(&text).map_err(|e| {
            ClientError::Keystore(format!("{} is not an rfl keystore: {e}", path.display()))
        })?;
        if ks.format != FORMAT {
            return Err(ClientError::Keystore(format!(
                "unsupported keystore format {}",
                ks.format
            )));
        }
        Ok(ks)
    }

    /// Writes the keystore (0600), refusing to overwrite an existing one.
    pub fn save_new(&self, path: &Path) -> Result<()> {
        if path.exists() {
            return Err(ClientError::Keystore(format!(
                "{} exists already; choose another path with --keystore",
                path.display()
            )));
        }
        write_private(path, &serde_json::to_vec_pretty(self)?)
    }
}

/// Writes a file only its owner can read, atomically (temporary file, then rename).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)?;
        }
    }
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_unlock_round_trip_and_wrong_passphrase() {
        let keys = DeviceKeys::generate().unwrap();
        let pass = SecretString::from("correct horse battery staple");
        let owner = Owner {
            server: "http://x".into(),
            origin: "http://x".into(),
            member_id: MemberId::new(),
            society_id: SocietyId::new(),
            role: Role::SyncAgent,
            signing_public_key: keys.signing.public_key(),
            age_recipient: keys.age.recipient().to_string(),
            root_fingerprint: None,
        };
        let ks = Keystore::seal(&owner, &keys, &pass, 10).unwrap();
        // another machine's keys under this owner's public parts are refused on unlock
        let other = Keystore::seal(&owner, &DeviceKeys::generate().unwrap(), &pass, 10).unwrap();
        assert!(other.unlock(&pass).is_err());
        let text = serde_json::to_string(&ks).unwrap();
        assert!(!text.contains(keys.age.to_secret_string().expose_secret()));
        let back = ks.unlock(&pass).unwrap();
        assert_eq!(back.signing.public_key(), keys.signing.public_key());
        assert!(ks.unlock(&SecretString::from("wrong")).is_err());

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ks.json");
        ks.save_new(&p).unwrap();
        assert!(ks.save_new(&p).is_err(), "never overwrites");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert_eq!(Keystore::load(&p).unwrap().member_id, ks.member_id);
    }
}
