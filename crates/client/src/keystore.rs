//! The device's private keys at rest.
//!
//! Development mode (this issue): a JSON file whose secrets are sealed with age's scrypt passphrase
//! encryption. Public parts (ids, public keys, server) stay readable so `rfl` can say who you are
//! without the passphrase. The file is written with mode 0600 and replaced atomically.

use std::path::Path;

use base64::Engine;
use rfl_crypto::{AgeIdentity, DeviceSigningKey};
use rfl_domain::{MemberId, Role, SocietyId};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{ClientError, Result};

const FORMAT: &str = "rfl-keystore-v1";

/// The device's private keys, in memory.
pub struct DeviceKeys {
    pub signing: DeviceSigningKey,
    pub age: AgeIdentity,
}

impl DeviceKeys {
    pub fn generate() -> Result<DeviceKeys> {
        Ok(DeviceKeys {
            signing: DeviceSigningKey::generate()?,
            age: AgeIdentity::generate(),
        })
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
    pub member_id: MemberId,
    pub society_id: SocietyId,
    pub role: Role,
    /// base64 Ed25519 public key.
    pub signing_public_key: String,
    pub age_recipient: String,
    /// base64 age (scrypt) file holding [`Secrets`] as JSON.
    pub sealed_secrets: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Secrets {
    signing_pkcs8: String,
    age_identity: String,
}

impl Keystore {
    /// Seals `keys` under `passphrase` (scrypt work factor `log_n`, 2^log_n; 18 is a good default).
    pub fn seal(
        server: &str,
        member_id: MemberId,
        society_id: SocietyId,
        role: Role,
        keys: &DeviceKeys,
        passphrase: &SecretString,
        log_n: u8,
    ) -> Result<Keystore> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let secrets = Secrets {
            signing_pkcs8: b64.encode(keys.signing.pkcs8_der()),
            age_identity: keys.age.to_secret_string().expose_secret().to_owned(),
        };
        let json = Zeroizing::new(serde_json::to_vec(&secrets)?);
        drop(secrets);
        let sealed = rfl_crypto::seal_with_passphrase(&json, passphrase, log_n)?;
        Ok(Keystore {
            format: FORMAT.to_owned(),
            server: server.to_owned(),
            member_id,
            society_id,
            role,
            signing_public_key: b64.encode(keys.signing.public_key().as_bytes()),
            age_recipient: keys.age.recipient().to_string(),
            sealed_secrets: b64.encode(sealed),
        })
    }

    /// Opens the secrets; a wrong passphrase is an error that says so.
    pub fn unlock(&self, passphrase: &SecretString) -> Result<DeviceKeys> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let sealed = b64
            .decode(&self.sealed_secrets)
            .map_err(|_| ClientError::Keystore("the sealed secrets are not base64".into()))?;
        let json = rfl_crypto::open_with_passphrase(&sealed, passphrase).map_err(|_| {
            ClientError::Keystore("wrong passphrase, or the keystore is damaged".into())
        })?;
        let secrets: Secrets = serde_json::from_slice(&json)
            .map_err(|_| ClientError::Keystore("the sealed secrets are malformed".into()))?;
        let pkcs8 = Zeroizing::new(
            b64.decode(&secrets.signing_pkcs8)
                .map_err(|_| ClientError::Keystore("the signing key is malformed".into()))?,
        );
        let keys = DeviceKeys {
            signing: DeviceSigningKey::from_pkcs8(&pkcs8)?,
            age: AgeIdentity::parse(&secrets.age_identity)?,
        };
        drop(Zeroizing::new(secrets.age_identity));
        if b64.encode(keys.signing.public_key().as_bytes()) != self.signing_public_key
            || keys.age.recipient().to_string() != self.age_recipient
        {
            return Err(ClientError::Keystore(
                "the keystore's public and private parts do not match".into(),
            ));
        }
        Ok(keys)
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
        let ks = Keystore::seal(
            "http://x",
            MemberId::new(),
            SocietyId::new(),
            Role::Caseworker,
            &keys,
            &pass,
            10,
        )
        .unwrap();
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
