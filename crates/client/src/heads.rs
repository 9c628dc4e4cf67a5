//! The latest commit this client verified for each case, so that a server which serves an older head,
//! or one that does not descend from it, is caught ("the server rolled this case back").
//!
//! [`MemoryHeads`] keeps them for one session (tests, the benchmark); [`FileHeads`] keeps them in a
//! small file beside the keystore, authenticated with a key derived from the holder's case
//! key-wrapping key ([`rfl_crypto::CaseWrapKey::local_state_mac`]), so that the file cannot be edited
//! (to forget a head) by anyone who does not hold that key. Deleting the file forgets every head:
//! the client then trusts the next head it verifies, like a client that never saw the case
//! (docs/threat-model.md says what remains).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rfl_crypto::{CaseWrapKey, CommitHash};
use rfl_domain::{CaseId, MemberId};
use serde::{Deserialize, Serialize};

use crate::keystore::write_private;
use crate::{ClientError, Result};

/// A commit a client verified: its number and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownHead {
    pub seq: u64,
    pub hash: CommitHash,
}

/// Where a session keeps the heads it verified.
pub trait HeadStore: Send + Sync {
    /// The latest head verified for `case`.
    fn get(&self, case: CaseId) -> Option<KnownHead>;
    /// Records a head that was verified and descends from any earlier one.
    fn put(&self, case: CaseId, head: KnownHead) -> Result<()>;
    /// Records many heads at once (a re-key of thousands of cases: one write of the file).
    fn put_many(&self, heads: &[(CaseId, KnownHead)]) -> Result<()> {
        heads.iter().try_for_each(|(c, h)| self.put(*c, *h))
    }
    /// The latest society revocation list this client verified (its bytes), to catch a server that
    /// serves an older one or none (`Trust::verify`).
    fn revocations(&self) -> Option<Vec<u8>>;
    /// Records a revocation list that was verified and follows any earlier one.
    fn put_revocations(&self, list: &[u8]) -> Result<()>;
}

/// Heads kept in memory for one session.
#[derive(Default)]
pub struct MemoryHeads {
    heads: Mutex<HashMap<CaseId, KnownHead>>,
    revocations: Mutex<Option<Vec<u8>>>,
}

fn poisoned() -> ClientError {
    ClientError::Invalid("heads lock poisoned".into())
}

impl HeadStore for MemoryHeads {
    fn get(&self, case: CaseId) -> Option<KnownHead> {
        self.heads.lock().ok().and_then(|m| m.get(&case).copied())
    }

    fn put(&self, case: CaseId, head: KnownHead) -> Result<()> {
        let mut m = self.heads.lock().map_err(|_| poisoned())?;
        keep_newer(&mut m, case, head);
        Ok(())
    }

    fn revocations(&self) -> Option<Vec<u8>> {
        self.revocations.lock().ok().and_then(|r| r.clone())
    }

    fn put_revocations(&self, list: &[u8]) -> Result<()> {
        *self.revocations.lock().map_err(|_| poisoned())? = Some(list.to_vec());
        Ok(())
    }
}

fn keep_newer(m: &mut HashMap<CaseId, KnownHead>, case: CaseId, head: KnownHead) {
    match m.get(&case) {
        Some(k) if k.seq >= head.seq => {}
        _ => {
            m.insert(case, head);
        }
    }
}

const FORMAT: &str = "rfl-heads-v1";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Signed {
    format: String,
    member_id: MemberId,
    /// case id → (commit number, commit hash in hex)
    heads: BTreeMap<String, (u64, String)>,
    /// The latest revocation list verified, in hex (absent in files from before revocation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revocations: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadsFile {
    #[serde(flatten)]
    signed: Signed,
    mac: String,
}

/// Heads kept in an authenticated file (`<keystore>.heads`).
pub struct FileHeads {
    path: PathBuf,
    member: MemberId,
    key: Arc<crate::keystore::DeviceKeys>,
    cache: Mutex<Loaded>,
}

#[derive(Default)]
struct Loaded {
    heads: HashMap<CaseId, KnownHead>,
    revocations: Option<Vec<u8>>,
}

impl FileHeads {
    /// The heads file that belongs to a keystore file.
    pub fn path_for(keystore: &Path) -> PathBuf {
        let mut p = keystore.as_os_str().to_owned();
        p.push(".heads");
        PathBuf::from(p)
    }

    /// Opens (or starts) the heads file of `member`, whose keys authenticate it. A file whose MAC
    /// does not verify is refused: someone other than this holder changed it.
    pub fn open(
        path: PathBuf,
        member: MemberId,
        keys: Arc<crate::keystore::DeviceKeys>,
    ) -> Result<FileHeads> {
        Self::open_rotated(path, member, keys, None)
    }

    /// [`FileHeads::open`] for a holder who rotated their keys: a file the keys they rotated away
    /// from (`retired`) authenticate is accepted once, and authenticated again with `keys`.
    pub fn open_rotated(
        path: PathBuf,
        member: MemberId,
        keys: Arc<crate::keystore::DeviceKeys>,
        retired: Option<&crate::keystore::DeviceKeys>,
    ) -> Result<FileHeads> {
        let heads = FileHeads {
            path,
            member,
            key: keys,
            cache: Mutex::new(Loaded::default()),
        };
        let loaded = match (heads.load(heads.kwk()?), retired) {
            (Err(ClientError::Tampered(why)), Some(old)) => {
                let loaded = heads
                    .load(old.case_key()?)
                    .map_err(|_| ClientError::Tampered(why))?;
                heads.save(&loaded)?;
                loaded
            }
            (other, _) => other?,
        };
        *heads.cache.lock().map_err(|_| poisoned())? = loaded;
        Ok(heads)
    }

    fn kwk(&self) -> Result<&CaseWrapKey> {
        self.key.case_key()
    }

    fn load(&self, kwk: &CaseWrapKey) -> Result<Loaded> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::default()),
            Err(e) => return Err(e.into()),
        };
        let altered = || {
            ClientError::Tampered(format!(
                "the verified-heads file {} was altered or belongs to someone else (delete it only \
                 if you know why: this client then forgets which case versions it has seen)",
                self.path.display()
            ))
        };
        let file: HeadsFile = serde_json::from_slice(&text).map_err(|_| altered())?;
        let msg = serde_json::to_vec(&file.signed)?;
        let tag = hex_decode(&file.mac).ok_or_else(altered)?;
        if !kwk.check_local_state_mac(&msg, &tag)
            || file.signed.format != FORMAT
            || file.signed.member_id != self.member
        {
            return Err(altered());
        }
        let mut out = HashMap::new();
        for (case, (seq, hash)) in file.signed.heads {
            let case: CaseId = case.parse().map_err(|_| altered())?;
            let hash = CommitHash::from_hex(&hash).map_err(|_| altered())?;
            out.insert(case, KnownHead { seq, hash });
        }
        let revocations = match file.signed.revocations {
            Some(h) => Some(hex_decode(&h).ok_or_else(altered)?),
            None => None,
        };
        Ok(Loaded {
            heads: out,
            revocations,
        })
    }

    fn save(&self, state: &Loaded) -> Result<()> {
        let signed = Signed {
            format: FORMAT.to_owned(),
            member_id: self.member,
            heads: state
                .heads
                .iter()
                .map(|(c, h)| (c.to_string(), (h.seq, h.hash.to_hex())))
                .collect(),
            revocations: state
                .revocations
                .as_ref()
                .map(|r| r.iter().map(|b| format!("{b:02x}")).collect()),
        };
        let mac = self.kwk()?.local_state_mac(&serde_json::to_vec(&signed)?);
        let file = HeadsFile {
            signed,
            mac: mac.iter().map(|b| format!("{b:02x}")).collect(),
        };
        write_private(&self.path, &serde_json::to_vec_pretty(&file)?)
    }
}

impl HeadStore for FileHeads {
    fn get(&self, case: CaseId) -> Option<KnownHead> {
        self.cache
            .lock()
            .ok()
            .and_then(|m| m.heads.get(&case).copied())
    }

    fn put(&self, case: CaseId, head: KnownHead) -> Result<()> {
        let mut m = self.cache.lock().map_err(|_| poisoned())?;
        if m.heads.get(&case).is_some_and(|k| k.seq >= head.seq) {
            return Ok(());
        }
        self.merge_from_disk(&mut m)?;
        keep_newer(&mut m.heads, case, head);
        self.save(&m)
    }

    fn put_many(&self, heads: &[(CaseId, KnownHead)]) -> Result<()> {
        let mut m = self.cache.lock().map_err(|_| poisoned())?;
        self.merge_from_disk(&mut m)?;
        for (case, head) in heads {
            keep_newer(&mut m.heads, *case, *head);
        }
        self.save(&m)
    }

    fn revocations(&self) -> Option<Vec<u8>> {
        self.cache.lock().ok().and_then(|m| m.revocations.clone())
    }

    fn put_revocations(&self, list: &[u8]) -> Result<()> {
        let mut m = self.cache.lock().map_err(|_| poisoned())?;
        if m.revocations.as_deref() == Some(list) {
            return Ok(());
        }
        self.merge_from_disk(&mut m)?;
        m.revocations = Some(list.to_vec());
        self.save(&m)
    }
}

impl FileHeads {
    /// Another `rfl` process with this keystore may have written meanwhile: keep the newer of each
    /// head (the revocation list is the caller's, which it checked follows what it had loaded).
    fn merge_from_disk(&self, m: &mut Loaded) -> Result<()> {
        let disk = self.load(self.kwk()?)?;
        for (c, h) in disk.heads {
            keep_newer(&mut m.heads, c, h);
        }
        if m.revocations.is_none() {
            m.revocations = disk.revocations;
        }
        Ok(())
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keystore::DeviceKeys;

    fn head(n: u8) -> KnownHead {
        KnownHead {
            seq: u64::from(n),
            hash: CommitHash([n; 32]),
        }
    }

    #[test]
    fn file_heads_round_trip_keep_the_newest_and_refuse_edits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ks.json.heads");
        let keys = Arc::new(DeviceKeys::generate().unwrap());
        let member = MemberId::new();
        let case = CaseId::new();
        let h = FileHeads::open(path.clone(), member, keys.clone()).unwrap();
        assert_eq!(h.get(case), None);
        h.put(case, head(3)).unwrap();
        h.put(case, head(2)).unwrap();
        assert_eq!(h.get(case), Some(head(3)));
        let again = FileHeads::open(path.clone(), member, keys.clone()).unwrap();
        assert_eq!(again.get(case), Some(head(3)));

        // Someone edits the file to make the client forget: refused.
        let text = std::fs::read_to_string(&path).unwrap();
        let edited = text.replace("\n      3,", "\n      1,");
        assert_ne!(text, edited);
        std::fs::write(&path, edited).unwrap();
        assert!(matches!(
            FileHeads::open(path.clone(), member, keys.clone()),
            Err(ClientError::Tampered(_))
        ));
        // Another holder's key does not accept this holder's file.
        std::fs::write(&path, text).unwrap();
        let other = Arc::new(DeviceKeys::generate().unwrap());
        assert!(FileHeads::open(path.clone(), member, other).is_err());
        assert!(FileHeads::open(path, MemberId::new(), keys).is_err());
    }

    #[test]
    fn memory_heads_keep_the_newest() {
        let m = MemoryHeads::default();
        let c = CaseId::new();
        m.put(c, head(5)).unwrap();
        m.put(c, head(4)).unwrap();
        assert_eq!(m.get(c), Some(head(5)));
    }
}
