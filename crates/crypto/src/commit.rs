//! Signed case commits (format 3): every write to a case is one commit, and a case is the chain of
//! its commits. The head commit lists the case's complete current state, so a client that verifies
//! the head's signature and checks the records it is served against it sees exactly what the author
//! sealed: nothing hidden, added, swapped, rolled back, re-dated or re-attributed.
//!
//! Layout (all integers big-endian), [`COMMIT_LEN`] = 255 bytes:
//!
//! ```text
//! off  len  field
//!   0    4  magic "RFLC"
//!   4    1  format_version (= 3)
//!   5    1  op: 1 create, 2 records, 3 status, 4 grant, 5 re-key, 6 transfer
//!   6   16  case_id
//!  22    8  seq u64: 1 for the creating commit, then strictly +1
//!  30   32  parent: commit hash of commit seq-1 (32 zero bytes for seq 1)
//!  62    4  key_epoch u32
//!  66   32  key_commitment = HMAC-SHA-256(data key, "rfl-key-commitment-v2" || case_id || key_epoch)
//!  98    1  status code (the case's status after this commit)
//!  99   16  author member id
//! 115    8  created_at i64: the author's clock, Unix milliseconds
//! 123    4  record_count u32: how many records the case holds after this commit
//! 127   32  state digest (see [`state_digest`])
//! 159   32  holders digest (see [`holders_digest`]): whose keys the epoch's data key is wrapped to
//! 191   64  Ed25519 signature by the author's device key over "rfl-commit-sig-v3" || bytes 0..191
//! ```
//!
//! The commit hash (its id, and the next commit's `parent`) is SHA-256 of all its bytes.
//!
//! **Format 4** is the merge commit's ([`CommitOp::Merge`], and only it): the layout above with
//! `format_version` 4 and one more field before the signature, [`MERGE_LEN`] = 287 bytes:
//!
//! ```text
//! 191   32  second_parent: hash of the other version's head (never zero, never `parent`)
//! 223   64  Ed25519 signature by the author's device key over "rfl-commit-sig-v4" || bytes 0..223
//! ```
//!
//! A merge is the next commit on `parent` (seq = parent's + 1) and states the case after both
//! versions are brought together: its records, status, key epoch and holders. Every other commit
//! stays format 3, so commits stored before merges existed, and their test vectors, are unchanged.
//!
//! State digest: SHA-256 of `"rfl-state-v2" || count u32 || entry*`, entries sorted by record id
//! (bytewise), each `record_id 16 || kind u8 || version u64 || SHA-256(envelope) 32`.
//!
//! Holders digest: SHA-256 of `"rfl-holders-v3" || count u32 || entry*`, entries sorted by member id
//! then keys digest (bytewise), each `member_id 16 || keys_digest 32` (the member's
//! `subject_keys_digest`). The society escrow key, which holds every epoch's key, is not listed.

use ring::digest::{self, SHA256};
use ring::hmac;
use subtle::ConstantTimeEq;

use crate::envelope::{parse_envelope_header, EnvelopeHeader};
use crate::error::{CryptoError, Result};
use crate::keys::{DataKey, DevicePublicKey, DeviceSigningKey, DeviceVerifier};
use crate::RecordKind;

/// Commit magic bytes.
pub const COMMIT_MAGIC: [u8; 4] = *b"RFLC";
/// Format version of commits.
pub const COMMIT_VERSION: u8 = 3;
/// Length of every commit but a merge.
pub const COMMIT_LEN: usize = BODY_LEN + 64;
/// Format version of merge commits.
pub const MERGE_VERSION: u8 = 4;
/// Length of a merge commit.
pub const MERGE_LEN: usize = MERGE_BODY_LEN + 64;
const BODY_LEN: usize = 191;
const MERGE_BODY_LEN: usize = BODY_LEN + 32;
const SIG_DOMAIN: &[u8] = b"rfl-commit-sig-v3";
const MERGE_SIG_DOMAIN: &[u8] = b"rfl-commit-sig-v4";
const HOLDERS_DOMAIN: &[u8] = b"rfl-holders-v3";
const KEY_COMMIT_DOMAIN: &[u8] = b"rfl-key-commitment-v2";
const STATE_DOMAIN: &[u8] = b"rfl-state-v2";

/// What a commit does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CommitOp {
    /// Creates the case (seq 1): its first records, key epoch 1, status open.
    Create = 1,
    /// Adds records or new versions of records.
    Records = 2,
    /// Changes the status; the records are unchanged.
    Status = 3,
    /// Wraps the current key epoch's data key to one more member; records, status and epoch are
    /// unchanged, the holders gain that member.
    Grant = 4,
    /// Starts the next key epoch: a new data key (its commitment in `key_commitment`), wrapped only
    /// to the holders the commit names (`holders`, a subset of the parent's); the epoch is the
    /// parent's + 1, records and status are unchanged. Records keep the epoch they were sealed
    /// under; everything written afterwards is sealed under the new key.
    Rekey = 5,
    /// The receiving society accepts a case another society transferred to it, signed by the
    /// receiving admin: either the holders gain the member it is assigned to at the same key epoch
    /// (the sender kept access), or the next epoch starts, its data key wrapped only to that member
    /// (the sender gave access up). Records and status are unchanged.
    Transfer = 6,
    /// Brings together two versions of a case changed on two instances while they were apart
    /// (format 4): `parent` is this side's head, `second_parent` the other version's. Records not
    /// in `parent`'s state are new versions sealed under the commit's key epoch, which is
    /// `parent`'s, as are its holders.
    Merge = 7,
}

impl CommitOp {
    /// From the wire byte.
    pub fn from_u8(v: u8) -> Option<CommitOp> {
        match v {
            1 => Some(CommitOp::Create),
            2 => Some(CommitOp::Records),
            3 => Some(CommitOp::Status),
            4 => Some(CommitOp::Grant),
            5 => Some(CommitOp::Rekey),
            6 => Some(CommitOp::Transfer),
            7 => Some(CommitOp::Merge),
            _ => None,
        }
    }
}

/// A commit's id: SHA-256 of its bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CommitHash(pub [u8; 32]);

impl CommitHash {
    /// The parent of a case's first commit.
    pub const ZERO: CommitHash = CommitHash([0; 32]);

    /// From stored bytes.
    pub fn from_slice(b: &[u8]) -> Result<CommitHash> {
        Ok(CommitHash(b.try_into().map_err(|_| {
            CryptoError::Malformed("commit hash length")
        })?))
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// From lower- or upper-case hex.
    pub fn from_hex(s: &str) -> Result<CommitHash> {
        let bad = CryptoError::Malformed("commit hash hex");
        if s.len() != 64 || !s.is_ascii() {
            return Err(bad);
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad_hex())?;
        }
        Ok(CommitHash(out))
    }
}

fn bad_hex() -> CryptoError {
    CryptoError::Malformed("commit hash hex")
}

impl std::fmt::Debug for CommitHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CommitHash({})", &self.to_hex()[..16])
    }
}

/// SHA-256 of an envelope's exact bytes.
pub fn envelope_hash(envelope: &[u8]) -> [u8; 32] {
    sha256(envelope)
}

/// SHA-256.
pub fn sha256(b: &[u8]) -> [u8; 32] {
    let d = digest::digest(&SHA256, b);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// One record of a case's current state, as a commit lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateEntry {
    /// The record's id.
    pub record_id: uuid::Uuid,
    /// Its kind.
    pub kind: RecordKind,
    /// Its current version.
    pub version: u64,
    /// SHA-256 of its current envelope.
    pub envelope_hash: [u8; 32],
}

impl StateEntry {
    /// The entry for an envelope, taken from its (keyless) header and its bytes.
    pub fn of_envelope(envelope: &[u8]) -> Result<StateEntry> {
        let h = parse_envelope_header(envelope)?;
        Ok(StateEntry {
            record_id: h.aad.record_id,
            kind: h.aad.kind,
            version: h.aad.version,
            envelope_hash: envelope_hash(envelope),
        })
    }
}

/// How many records a state has, and its digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateDigest {
    /// Number of records.
    pub count: u32,
    /// The digest (module docs).
    pub digest: [u8; 32],
}

/// The digest of a case's complete current state. Entries may come in any order; a record id
/// listed twice is refused.
pub fn state_digest(entries: &[StateEntry]) -> Result<StateDigest> {
    let count =
        u32::try_from(entries.len()).map_err(|_| CryptoError::Commit("too many records"))?;
    let mut sorted: Vec<&StateEntry> = entries.iter().collect();
    sorted.sort_unstable_by(|a, b| a.record_id.as_bytes().cmp(b.record_id.as_bytes()));
    let mut ctx = digest::Context::new(&SHA256);
    ctx.update(STATE_DOMAIN);
    ctx.update(&count.to_be_bytes());
    let mut prev: Option<&uuid::Uuid> = None;
    for e in sorted {
        if prev == Some(&e.record_id) {
            return Err(CryptoError::Commit("a record is listed twice"));
        }
        prev = Some(&e.record_id);
        ctx.update(e.record_id.as_bytes());
        ctx.update(&[e.kind.as_u8()]);
        ctx.update(&e.version.to_be_bytes());
        ctx.update(&e.envelope_hash);
    }
    let mut digest = [0u8; 32];
    digest.copy_from_slice(ctx.finish().as_ref());
    Ok(StateDigest { count, digest })
}

/// A member holding a case's data key: their id and the digest of the public keys it is wrapped to
/// (`subject_keys_digest`, as their certificate certifies them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Holder {
    /// The member.
    pub member_id: uuid::Uuid,
    /// `subject_keys_digest` of their signing key and age recipient.
    pub keys_digest: [u8; 32],
}

/// The digest of the members who hold a key epoch's data key (module docs). Entries may come in
/// any order; a member listed twice is refused.
pub fn holders_digest(holders: &[Holder]) -> Result<[u8; 32]> {
    let count =
        u32::try_from(holders.len()).map_err(|_| CryptoError::Commit("too many holders"))?;
    let mut sorted: Vec<&Holder> = holders.iter().collect();
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[0].member_id == w[1].member_id) {
        return Err(CryptoError::Commit("a holder is listed twice"));
    }
    let mut ctx = digest::Context::new(&SHA256);
    ctx.update(HOLDERS_DOMAIN);
    ctx.update(&count.to_be_bytes());
    for h in sorted {
        ctx.update(h.member_id.as_bytes());
        ctx.update(&h.keys_digest);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Ok(out)
}

/// The key commitment of a case's data key at an epoch: whoever holds a commit can tell whether a
/// data key they unwrapped is the one its author sealed under.
pub fn key_commitment(key: &DataKey, case_id: uuid::Uuid, key_epoch: u32) -> [u8; 32] {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key.expose_bytes());
    let mut ctx = hmac::Context::with_key(&k);
    ctx.update(KEY_COMMIT_DOMAIN);
    ctx.update(case_id.as_bytes());
    ctx.update(&key_epoch.to_be_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// Everything a commit says, before it is signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitBody {
    /// What the commit does.
    pub op: CommitOp,
    /// The case.
    pub case_id: uuid::Uuid,
    /// Its number in the case (1 for the creating commit).
    pub seq: u64,
    /// Hash of commit `seq - 1` ([`CommitHash::ZERO`] for seq 1).
    pub parent: CommitHash,
    /// Key epoch of the data key the case's records are sealed under.
    pub key_epoch: u32,
    /// [`key_commitment`] of that data key.
    pub key_commitment: [u8; 32],
    /// Status code of the case after this commit (`rfl_domain::CaseStatus::code`).
    pub status: u8,
    /// The member who signs it.
    pub author: uuid::Uuid,
    /// The author's clock when signing, Unix milliseconds.
    pub created_at: i64,
    /// The case's records after this commit.
    pub state: StateDigest,
    /// [`holders_digest`] of the members holding the epoch's data key after this commit.
    pub holders: [u8; 32],
}

impl CommitBody {
    fn encode(&self) -> [u8; BODY_LEN] {
        let mut b = [0u8; BODY_LEN];
        b[0..4].copy_from_slice(&COMMIT_MAGIC);
        b[4] = COMMIT_VERSION;
        b[5] = self.op as u8;
        b[6..22].copy_from_slice(self.case_id.as_bytes());
        b[22..30].copy_from_slice(&self.seq.to_be_bytes());
        b[30..62].copy_from_slice(&self.parent.0);
        b[62..66].copy_from_slice(&self.key_epoch.to_be_bytes());
        b[66..98].copy_from_slice(&self.key_commitment);
        b[98] = self.status;
        b[99..115].copy_from_slice(self.author.as_bytes());
        b[115..123].copy_from_slice(&self.created_at.to_be_bytes());
        b[123..127].copy_from_slice(&self.state.count.to_be_bytes());
        b[127..159].copy_from_slice(&self.state.digest);
        b[159..191].copy_from_slice(&self.holders);
        b
    }

    fn check_shape(&self) -> Result<()> {
        if self.seq == 0 {
            return Err(CryptoError::Commit("commit numbers start at 1"));
        }
        if (self.seq == 1) != (self.op == CommitOp::Create) {
            return Err(CryptoError::Commit(
                "only the first commit creates the case, and it must",
            ));
        }
        if (self.seq == 1) != (self.parent == CommitHash::ZERO) {
            return Err(CryptoError::Commit(
                "only the first commit has no parent, and it must not have one",
            ));
        }
        Ok(())
    }

    /// Signs the commit with the author's device key (format 3; a merge is signed with
    /// [`CommitBody::sign_merge`]).
    pub fn sign(&self, key: &DeviceSigningKey) -> Result<Commit> {
        self.check_shape()?;
        if self.op == CommitOp::Merge {
            return Err(CryptoError::Commit(
                "a merge commit names the other version's head: sign it with sign_merge",
            ));
        }
        let body = self.encode();
        Ok(Commit::signed(body.to_vec(), *self, None, key))
    }

    /// Signs a merge commit (format 4) of this side's head (`parent`) and the other version's
    /// head `second_parent`.
    pub fn sign_merge(&self, second_parent: CommitHash, key: &DeviceSigningKey) -> Result<Commit> {
        self.check_shape()?;
        if self.op != CommitOp::Merge {
            return Err(CryptoError::Commit(
                "only a merge commit has a second parent",
            ));
        }
        check_second_parent(self, &second_parent)?;
        let mut body = self.encode().to_vec();
        body[4] = MERGE_VERSION;
        body.extend_from_slice(&second_parent.0);
        Ok(Commit::signed(body, *self, Some(second_parent), key))
    }
}

fn check_second_parent(body: &CommitBody, second: &CommitHash) -> Result<()> {
    if *second == CommitHash::ZERO || *second == body.parent {
        return Err(CryptoError::Commit(
            "a merge's second parent is another commit than its first",
        ));
    }
    Ok(())
}

fn signed_message(body: &[u8]) -> Vec<u8> {
    let domain = if body.len() == MERGE_BODY_LEN {
        MERGE_SIG_DOMAIN
    } else {
        SIG_DOMAIN
    };
    let mut m = Vec::with_capacity(domain.len() + body.len());
    m.extend_from_slice(domain);
    m.extend_from_slice(body);
    m
}

/// A parsed commit whose signature has **not** been checked (the server parses commits without
/// trusting them; a client trusts only a [`VerifiedCommit`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Commit {
    bytes: Vec<u8>,
    body: CommitBody,
    hash: CommitHash,
    /// A merge's other parent (format 4); none for every other commit.
    second_parent: Option<CommitHash>,
}

impl std::fmt::Debug for Commit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commit")
            .field("case_id", &self.body.case_id)
            .field("seq", &self.body.seq)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

fn arr<const N: usize>(b: &[u8]) -> Result<[u8; N]> {
    b.try_into().map_err(|_| CryptoError::Malformed("length"))
}

/// Parses a commit without any key: magic, version, length, op and the chain shape (seq 1 ⇔
/// create ⇔ no parent). Does not verify the signature.
pub fn parse_commit(bytes: &[u8]) -> Result<Commit> {
    let merge = bytes.len() >= 5 && bytes[0..4] == COMMIT_MAGIC && bytes[4] == MERGE_VERSION;
    if bytes.len() >= 5
        && bytes[0..4] == COMMIT_MAGIC
        && bytes[4] != COMMIT_VERSION
        && bytes[4] != MERGE_VERSION
    {
        return Err(CryptoError::UnsupportedVersion(bytes[4]));
    }
    if bytes.len() != if merge { MERGE_LEN } else { COMMIT_LEN } {
        return Err(CryptoError::Malformed("commit length"));
    }
    if bytes[0..4] != COMMIT_MAGIC {
        return Err(CryptoError::Malformed("bad commit magic"));
    }
    let op = CommitOp::from_u8(bytes[5]).ok_or(CryptoError::Commit("unknown operation"))?;
    if merge != (op == CommitOp::Merge) {
        return Err(CryptoError::Commit(
            "a merge commit is format 4, and only a merge commit is",
        ));
    }
    let body = CommitBody {
        op,
        case_id: uuid::Uuid::from_bytes(arr(&bytes[6..22])?),
        seq: u64::from_be_bytes(arr(&bytes[22..30])?),
        parent: CommitHash(arr(&bytes[30..62])?),
        key_epoch: u32::from_be_bytes(arr(&bytes[62..66])?),
        key_commitment: arr(&bytes[66..98])?,
        status: bytes[98],
        author: uuid::Uuid::from_bytes(arr(&bytes[99..115])?),
        created_at: i64::from_be_bytes(arr(&bytes[115..123])?),
        state: StateDigest {
            count: u32::from_be_bytes(arr(&bytes[123..127])?),
            digest: arr(&bytes[127..159])?,
        },
        holders: arr(&bytes[159..191])?,
    };
    body.check_shape()?;
    let second_parent = if merge {
        let second = CommitHash(arr(&bytes[BODY_LEN..MERGE_BODY_LEN])?);
        check_second_parent(&body, &second)?;
        Some(second)
    } else {
        None
    };
    Ok(Commit {
        bytes: bytes.to_vec(),
        body,
        hash: CommitHash(sha256(bytes)),
        second_parent,
    })
}

impl Commit {
    fn signed(
        body: Vec<u8>,
        parsed: CommitBody,
        second_parent: Option<CommitHash>,
        key: &DeviceSigningKey,
    ) -> Commit {
        let sig = key.sign(&signed_message(&body));
        let mut bytes = body;
        bytes.extend_from_slice(&sig);
        let hash = CommitHash(sha256(&bytes));
        Commit {
            bytes,
            body: parsed,
            hash,
            second_parent,
        }
    }

    /// What the commit says (not yet trusted).
    pub fn body(&self) -> &CommitBody {
        &self.body
    }

    /// A merge's other parent: the head of the other version it brings together with `parent`.
    pub fn second_parent(&self) -> Option<CommitHash> {
        self.second_parent
    }

    /// Its hash.
    pub fn hash(&self) -> CommitHash {
        self.hash
    }

    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Verifies the signature with the author's device key (which the caller must have looked up
    /// for `body().author` and trust).
    pub fn verify(self, author_key: &DevicePublicKey) -> Result<VerifiedCommit> {
        self.verify_by(&author_key.verifier()?)
    }

    /// [`Commit::verify`] with the author's key decompressed already: for many commits by
    /// one author.
    pub fn verify_by(self, author: &DeviceVerifier) -> Result<VerifiedCommit> {
        let body = self.bytes.len() - 64;
        author.verify(&signed_message(&self.bytes[..body]), &self.bytes[body..])?;
        Ok(VerifiedCommit(self))
    }

    /// This commit as verified without a second signature verification, if its bytes hash to
    /// `verified`: the hash of a commit the caller verified (or made) before and kept where no one
    /// else can change it (a client's heads file is MAC'd). The same bytes carry the same valid
    /// signature. Any other commit is refused with [`CryptoError::BadSignature`]: verify it.
    pub fn verified_before(self, verified: &CommitHash) -> Result<VerifiedCommit> {
        if self.hash() == *verified {
            Ok(VerifiedCommit(self))
        } else {
            Err(CryptoError::BadSignature)
        }
    }

    /// Whether `state` is exactly the state this commit lists (count and digest). Nothing is
    /// trusted unless the commit was verified.
    pub fn lists(&self, state: &StateDigest) -> bool {
        self.body.state.count == state.count
            && bool::from(self.body.state.digest.ct_eq(&state.digest))
    }

    /// Checks that `envelopes` are exactly the records this commit lists: served in record-id order
    /// (bytewise, each once), each of this case and sealed under this commit's key epoch or an
    /// earlier one (a re-key leaves records under the epoch they were sealed under), none missing,
    /// none added, each at the version and with the bytes listed. Returns their parsed headers, in
    /// the same order.
    pub fn check_records(&self, envelopes: &[&[u8]]) -> Result<Vec<ListedRecord>> {
        let mut headers = Vec::with_capacity(envelopes.len());
        let mut entries = Vec::with_capacity(envelopes.len());
        for e in envelopes {
            let h = parse_envelope_header(e)?;
            if h.aad.case_id != self.body.case_id {
                return Err(CryptoError::Commit(
                    "a record of another case is served with this one",
                ));
            }
            if h.aad.key_epoch == 0 || h.aad.key_epoch > self.body.key_epoch {
                return Err(CryptoError::Commit(
                    "a record is sealed under a key epoch later than the head commit's",
                ));
            }
            if let Some(prev) = headers.last().map(|p: &EnvelopeHeader| p.aad.record_id) {
                if prev.as_bytes() >= h.aad.record_id.as_bytes() {
                    return Err(CryptoError::Commit(
                        "records are served twice or out of order",
                    ));
                }
            }
            entries.push(StateEntry {
                record_id: h.aad.record_id,
                kind: h.aad.kind,
                version: h.aad.version,
                envelope_hash: envelope_hash(e),
            });
            headers.push(h);
        }
        let state = state_digest(&entries)?;
        if state.count < self.body.state.count {
            return Err(CryptoError::Commit(
                "records the head commit lists are missing",
            ));
        }
        if state.count > self.body.state.count {
            return Err(CryptoError::Commit(
                "records the head commit does not list were added",
            ));
        }
        if !self.lists(&state) {
            return Err(CryptoError::Commit(
                "a record was replaced, altered or rolled back: it is not the version the head commit lists",
            ));
        }
        Ok(headers
            .into_iter()
            .zip(entries)
            .map(|(header, entry)| ListedRecord { header, entry })
            .collect())
    }

    /// Whether `key` is the data key this commit was made under.
    pub fn commits_to_key(&self, key: &DataKey) -> bool {
        let kc = key_commitment(key, self.body.case_id, self.body.key_epoch);
        bool::from(kc.ct_eq(&self.body.key_commitment))
    }
}

/// A record served with a case that its head commit lists: its parsed header and its entry in the
/// commit's state (so that a caller need not parse or hash the envelope again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedRecord {
    pub header: EnvelopeHeader,
    pub entry: StateEntry,
}

/// A commit whose signature verified under the key its verifier trusts for the author.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCommit(Commit);

impl std::ops::Deref for VerifiedCommit {
    type Target = Commit;
    fn deref(&self) -> &Commit {
        &self.0
    }
}

#[cfg(test)]
mod tests;
