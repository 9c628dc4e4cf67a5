//! The server's token-signing keys, and rotating them while the service runs (issue 9), in the order
//! Tink prescribes: **add** a new key (every node verifies what it signs, none signs with it),
//! **distribute** its file to every node, then **promote** it (it signs every new token; the old key
//! verifies until its last token has expired, then is retired).
//!
//! The private keys are files on each node: the configured `auth.signing_key_file` and, beside it,
//! `<stem>.<kid>.pk8` for every key added since. They are never in the database: a database thief
//! must not mint tokens, nor make a node accept a key of theirs. A node accepts a key only if it holds
//! its file *and* the database lists it (with the same public key) as able to verify; it signs only
//! with the key the database names primary. What the database holds is what several nodes on one
//! PostgreSQL must agree on: the keys' states, and which files each running node holds (a heartbeat),
//! so a key is promoted only once every running node verifies what it signs. Each node reads that
//! state again every `auth.signing_key_refresh_secs`: no restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jsonwebtoken::{DecodingKey, EncodingKey};
use rfl_storage::{Millis, Store, TokenKeyNode, TokenKeyRow, TokenKeyState};
use ring::signature::{Ed25519KeyPair, KeyPair};
use zeroize::Zeroizing;

/// One Ed25519 key this node holds.
pub struct LocalKey {
    pub kid: String,
    /// The raw 32-byte public key.
    pub public: Vec<u8>,
    pub(crate) encoding: EncodingKey,
    pub(crate) decoding: DecodingKey,
    /// The file it was read from (none for a key given in memory).
    pub path: Option<PathBuf>,
}

impl LocalKey {
    /// The key in PKCS#8 document `der`; `None` if it is not an Ed25519 PKCS#8 key.
    pub fn from_pkcs8(der: &[u8], path: Option<PathBuf>) -> Option<LocalKey> {
        let pair = Ed25519KeyPair::from_pkcs8(der).ok()?;
        let public = pair.public_key().as_ref().to_vec();
        Some(LocalKey {
            kid: kid_of(&public),
            encoding: EncodingKey::from_ed_der(der),
            // jsonwebtoken wants the raw 32-byte public key here, not SPKI.
            decoding: DecodingKey::from_ed_der(&public),
            public,
            path,
        })
    }
}

/// `ed25519-` and the first 8 bytes of SHA-256 of the raw public key, in hex.
pub fn kid_of(public: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, public);
    format!("ed25519-{}", hex::encode(&digest.as_ref()[..8]))
}

/// The keys a node uses now: the one it signs with and those it verifies with.
#[derive(Default)]
pub struct KeySet {
    pub primary: Option<Arc<LocalKey>>,
    pub verifying: HashMap<String, Arc<LocalKey>>,
}

impl KeySet {
    /// Before the database is read: the one key `first` signs and verifies.
    pub fn only(first: Arc<LocalKey>) -> KeySet {
        let mut verifying = HashMap::new();
        verifying.insert(first.kid.clone(), first.clone());
        KeySet {
            primary: Some(first),
            verifying,
        }
    }

    /// What the database says of the keys this node holds (`local`) at `now`. A key the database
    /// lists under another public key than its file's is ignored.
    pub fn agreed(rows: &[TokenKeyRow], local: &[Arc<LocalKey>], now: Millis) -> KeySet {
        let mut set = KeySet::default();
        for row in rows {
            let Some(key) = local
                .iter()
                .find(|k| k.kid == row.kid && k.public == row.public_key)
            else {
                continue;
            };
            if row.verifies_at(now) {
                set.verifying.insert(row.kid.clone(), key.clone());
            }
            if row.state == TokenKeyState::Primary {
                set.primary = Some(key.clone());
            }
        }
        set
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("token signing key file {path}: {cause}")]
    Io { path: String, cause: std::io::Error },
    #[error("token signing key file {0} is not an Ed25519 PKCS#8 key")]
    Format(String),
}

/// Where a node's key files are: the configured file, and the keys added since beside it.
#[derive(Clone, Debug)]
pub struct KeyFiles {
    configured: PathBuf,
}

impl KeyFiles {
    pub fn new(configured: &Path) -> KeyFiles {
        KeyFiles {
            configured: configured.to_owned(),
        }
    }

    fn dir(&self) -> PathBuf {
        match self.configured.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        }
    }

    fn stem(&self) -> String {
        self.configured
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "token-signing-key".to_owned())
    }

    /// The file of an added key: `<stem>.<kid>.pk8` beside the configured file.
    pub fn path_for(&self, kid: &str) -> PathBuf {
        self.dir().join(format!("{}.{kid}.pk8", self.stem()))
    }

    /// Every key file there is: the configured one (if it exists) first, then the added ones. A file
    /// named for another key than the one it holds is skipped.
    pub fn load_all(&self) -> Result<Vec<Arc<LocalKey>>, KeyFileError> {
        let mut keys = Vec::new();
        if self.configured.exists() {
            keys.push(Arc::new(read_key(&self.configured)?));
        }
        let prefix = format!("{}.ed25519-", self.stem());
        let dir = self.dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(keys),
            Err(cause) => {
                return Err(KeyFileError::Io {
                    path: dir.display().to_string(),
                    cause,
                })
            }
        };
        let mut added: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".pk8"))
            })
            .collect();
        added.sort();
        for path in added {
            let key = read_key(&path)?;
            if path == self.path_for(&key.kid) && keys.iter().all(|k| k.kid != key.kid) {
                keys.push(Arc::new(key));
            } else {
                tracing::warn!(file = %path.display(), "token key file named for another key: ignored");
            }
        }
        Ok(keys)
    }

    /// The configured file, created (mode 0600) with a new key if there is no key file at all.
    pub fn load_or_create(&self) -> Result<Vec<Arc<LocalKey>>, KeyFileError> {
        let keys = self.load_all()?;
        if !keys.is_empty() {
            return Ok(keys);
        }
        Ok(vec![Arc::new(self.create(&self.configured.clone())?)])
    }

    /// A new key in a file of its own beside the configured one.
    pub fn create_added(&self) -> Result<LocalKey, KeyFileError> {
        let tmp = self
            .dir()
            .join(format!(".{}.new-{}", self.stem(), uuid::Uuid::new_v4()));
        let key = self.create(&tmp)?;
        let path = self.path_for(&key.kid);
        std::fs::rename(&tmp, &path).map_err(|cause| KeyFileError::Io {
            path: path.display().to_string(),
            cause,
        })?;
        Ok(LocalKey {
            path: Some(path),
            ..key
        })
    }

    fn create(&self, path: &Path) -> Result<LocalKey, KeyFileError> {
        let shown = path.display().to_string();
        let io = |cause| KeyFileError::Io {
            path: shown.clone(),
            cause,
        };
        std::fs::create_dir_all(self.dir()).map_err(io)?;
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| KeyFileError::Format(shown.clone()))?;
        let der = Zeroizing::new(doc.as_ref().to_vec());
        write_private(path, &der).map_err(io)?;
        LocalKey::from_pkcs8(&der, Some(path.to_owned())).ok_or(KeyFileError::Format(shown))
    }
}

fn read_key(path: &Path) -> Result<LocalKey, KeyFileError> {
    let shown = path.display().to_string();
    let der = Zeroizing::new(std::fs::read(path).map_err(|cause| KeyFileError::Io {
        path: shown.clone(),
        cause,
    })?);
    LocalKey::from_pkcs8(&der, Some(path.to_owned())).ok_or(KeyFileError::Format(shown))
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// A node counts as running if it reported itself within this many refresh intervals.
const LIVE_INTERVALS: i64 = 3;

/// What rotating the token key needs to know of the configuration.
#[derive(Clone, Debug)]
pub struct RotationSettings {
    pub files: KeyFiles,
    pub token_ttl_secs: u64,
    pub refresh_secs: u64,
}

impl RotationSettings {
    pub fn from_config(config: &crate::config::Config) -> RotationSettings {
        RotationSettings {
            files: KeyFiles::new(Path::new(&config.auth.signing_key_file)),
            token_ttl_secs: config.auth.token_ttl_secs,
            refresh_secs: config.auth.signing_key_refresh_secs,
        }
    }

    fn live_since(&self, now: Millis) -> Millis {
        now - LIVE_INTERVALS * 1000 * i64::try_from(self.refresh_secs).unwrap_or(300)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(transparent)]
    Storage(#[from] rfl_storage::StorageError),
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    #[error("the database lists no token key: start rfl-server once first")]
    NoKeys,
}

/// The next key: the one added and not yet promoted, or a new one (its file written here first, then
/// listed in the database, so a crash between leaves a file that the next run adopts).
pub fn add_next_key(
    store: &Store,
    settings: &RotationSettings,
    now: Millis,
) -> Result<(TokenKeyRow, bool), RotateError> {
    let rows = store.token_keys()?;
    if rows.is_empty() {
        return Err(RotateError::NoKeys);
    }
    if let Some(next) = rows.iter().find(|r| r.state == TokenKeyState::Next) {
        return Ok((next.clone(), false));
    }
    let local = settings.files.load_all()?;
    let orphan = local.into_iter().find(|k| {
        k.path.as_deref() == Some(settings.files.path_for(&k.kid).as_path())
            && rows.iter().all(|r| r.kid != k.kid)
    });
    let key = match orphan {
        Some(k) => k,
        None => Arc::new(settings.files.create_added()?),
    };
    Ok((store.add_token_key(&key.kid, &key.public, now)?, true))
}

/// The running nodes (reported within the last few refresh intervals) that do not verify `kid` yet.
pub fn nodes_without(
    store: &Store,
    settings: &RotationSettings,
    kid: &str,
    now: Millis,
) -> Result<(Vec<TokenKeyNode>, usize), RotateError> {
    let live: Vec<TokenKeyNode> = store
        .token_key_nodes()?
        .into_iter()
        .filter(|n| n.seen_at >= settings.live_since(now))
        .collect();
    let total = live.len();
    Ok((
        live.into_iter()
            .filter(|n| !n.kids.iter().any(|k| k == kid))
            .collect(),
        total,
    ))
}

/// Promotes the next key `kid`: it signs every new token from the next refresh of each node; the
/// current primary verifies until every token it signed has expired (the token lifetime, plus two
/// refresh intervals for a node that signs with it a little longer). When that is.
pub fn promote(
    store: &Store,
    settings: &RotationSettings,
    kid: &str,
    now: Millis,
) -> Result<Millis, RotateError> {
    let grace = i64::try_from(settings.token_ttl_secs + 2 * settings.refresh_secs)
        .unwrap_or(i64::MAX / 2000)
        * 1000;
    let until = now.saturating_add(grace);
    store.promote_token_key(kid, now, until)?;
    Ok(until)
}

/// Deletes this node's files of keys that no longer verify anything (retired); which.
pub fn delete_retired_files(
    store: &Store,
    settings: &RotationSettings,
    now: Millis,
) -> Result<Vec<PathBuf>, RotateError> {
    let rows = store.token_keys()?;
    let mut deleted = Vec::new();
    for key in settings.files.load_all()? {
        let retired = rows
            .iter()
            .any(|r| r.kid == key.kid && r.public_key == key.public && !r.verifies_at(now));
        if let (true, Some(path)) = (retired, key.path.as_ref()) {
            std::fs::remove_file(path).map_err(|cause| KeyFileError::Io {
                path: path.display().to_string(),
                cause,
            })?;
            deleted.push(path.clone());
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_keys_are_found_beside_the_configured_file_and_misnamed_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let files = KeyFiles::new(&dir.path().join("token.pk8"));
        let first = files.load_or_create().unwrap();
        assert_eq!(first.len(), 1);
        let added = files.create_added().unwrap();
        assert_eq!(
            added.path.as_deref(),
            Some(
                dir.path()
                    .join(format!("token.{}.pk8", added.kid))
                    .as_path()
            )
        );
        let other = files.create_added().unwrap();
        std::fs::rename(
            other.path.as_ref().unwrap(),
            files.path_for("ed25519-0000000000000000"),
        )
        .unwrap();
        let all = files.load_all().unwrap();
        let kids: Vec<&str> = all.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, vec![first[0].kid.as_str(), added.kid.as_str()]);
        // The configured file gone (retired), the added key is still there, and nothing is created.
        std::fs::remove_file(dir.path().join("token.pk8")).unwrap();
        let left = files.load_or_create().unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].kid, added.kid);
    }

    #[test]
    fn a_node_uses_only_keys_it_holds_and_the_database_lists_with_the_same_public_key() {
        let dir = tempfile::tempdir().unwrap();
        let files = KeyFiles::new(&dir.path().join("token.pk8"));
        let a = files.load_or_create().unwrap().remove(0);
        let b = Arc::new(files.create_added().unwrap());
        let row = |k: &LocalKey, state, until| TokenKeyRow {
            kid: k.kid.clone(),
            public_key: k.public.clone(),
            state,
            added_at: 0,
            promoted_at: None,
            verify_until: until,
        };
        let rows = vec![
            row(&a, TokenKeyState::Previous, Some(1_000)),
            row(&b, TokenKeyState::Primary, None),
        ];
        let local = vec![a.clone(), b.clone()];
        let set = KeySet::agreed(&rows, &local, 999);
        assert_eq!(set.primary.as_ref().unwrap().kid, b.kid);
        assert_eq!(set.verifying.len(), 2);
        let set = KeySet::agreed(&rows, &local, 1_000);
        assert_eq!(
            set.verifying.len(),
            1,
            "the previous key retires at verify_until"
        );
        // A row naming a key the node holds under another public key: not used.
        let mut forged = rows.clone();
        forged[1].public_key = a.public.clone();
        let set = KeySet::agreed(&forged, &local, 0);
        assert!(set.primary.is_none());
        assert_eq!(set.verifying.len(), 1);
        // A key the database lists but the node has no file of: not used.
        let set = KeySet::agreed(&rows, &[a], 0);
        assert!(set.primary.is_none());
    }
}
