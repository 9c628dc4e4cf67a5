//! Checking the next commit of a case (part of `cases`): what a commit must say (`Expected`),
//! the case as stored (`Current`), and the caller's society (`Directory`: the caller's enrolled
//! key, decompressed once, and the members' registered keys, whose digests holders digests name).

use std::collections::HashMap;

use rfl_crypto::{
    holders_digest, parse_commit, subject_keys_digest, AgeRecipient, CommitHash, CommitOp,
    DevicePublicKey, DeviceVerifier, Holder, StateDigest, StateEntry,
};
use rfl_domain::{CaseId, CaseStatus, MemberId};
use rfl_storage::{CaseBundle, CaseRow, CommitWrite, Member, Store};

use crate::auth::Caller;
use crate::error::ApiError;

/// What a commit must say to be stored.
pub(super) struct Expected {
    pub(super) op: CommitOp,
    pub(super) case: CaseId,
    pub(super) seq: u64,
    pub(super) parent: CommitHash,
    pub(super) key_epoch: u32,
    pub(super) status: CaseStatus,
    pub(super) state: StateDigest,
    /// The holders digest the commit must state.
    pub(super) holders: [u8; 32],
}

/// A commit built on another head than the case's current one is refused with 409 before anything
/// else about the request is checked: what else it gets wrong (an envelope of the old key epoch,
/// the old holders) follows from someone else's commit, and the client's answer is to reload and
/// retry, not to fix its input. A commit that does not parse, or is for another case, is left to
/// `check_commit`.
pub(super) fn check_fresh(
    bytes: &[u8],
    case: CaseId,
    seq: u64,
    parent: CommitHash,
) -> Result<(), ApiError> {
    if let Ok(c) = parse_commit(bytes) {
        let b = c.body();
        if b.case_id == *case.as_uuid() && (b.seq != seq || b.parent != parent) {
            return Err(ApiError::Conflict(format!(
                "case {case} was changed by someone else since you opened it (your commit's parent is not its current head): reload it and retry"
            )));
        }
    }
    Ok(())
}

/// Parses a commit without keys, checks it says what `expected` says, and verifies its signature
/// under the caller's enrolled device key.
pub(super) fn check_commit(
    bytes: &[u8],
    caller: &Caller,
    dir: &Directory,
    expected: &Expected,
) -> Result<CommitWrite, ApiError> {
    let case = expected.case;
    let bad = |what: &str| ApiError::Unprocessable(format!("case {case}: {what}"));
    let c = parse_commit(bytes).map_err(|e| bad(&format!("malformed commit: {e}")))?;
    let b = c.body();
    if b.case_id != *case.as_uuid() {
        return Err(bad("the commit is for another case"));
    }
    if b.op != expected.op {
        return Err(bad("the commit's operation does not match the request"));
    }
    if b.seq != expected.seq || b.parent != expected.parent {
        return Err(ApiError::Conflict(format!(
            "case {case} was changed by someone else since you opened it (your commit's parent is not its current head): reload it and retry"
        )));
    }
    if b.key_epoch != expected.key_epoch {
        return Err(bad("the commit's key epoch is not the case's"));
    }
    if b.author != *caller.member_id.as_uuid() {
        return Err(bad("the commit's author is not you"));
    }
    let status = CaseStatus::from_code(b.status).ok_or_else(|| bad("unknown status code"))?;
    if status != expected.status {
        return Err(bad("the commit's status does not match the request"));
    }
    if !c.lists(&expected.state) {
        return Err(bad(
            "the commit does not list the records the case holds after this write",
        ));
    }
    if b.holders != expected.holders {
        return Err(bad(
            "the commit's holders digest does not name the members the case key is wrapped to",
        ));
    }
    let verified = c
        .verify_by(&dir.signer)
        .map_err(|_| bad("the commit is not signed by your enrolled device key"))?;
    Ok(CommitWrite {
        seq: verified.body().seq,
        hash: verified.hash().0.to_vec(),
        body: verified.as_bytes().to_vec(),
        status,
    })
}

/// The case's state as stored (the head commit and every current record), for checking the next
/// commit against.
pub(super) struct Current {
    pub(super) row: CaseRow,
    pub(super) head: CommitHash,
    /// The head commit's holders digest.
    pub(super) holders: [u8; 32],
    pub(super) entries: Vec<StateEntry>,
}

/// What checking the next commit on a case the caller holds needs: the caller's directory and the
/// case's current state (404 if the caller holds no key for it).
pub(super) fn for_commit(
    store: &Store,
    caller: &Caller,
    id: CaseId,
) -> Result<(Directory, Current), ApiError> {
    let dir = directory(store, caller)?;
    let cur = current_state(
        store
            .get_case(caller.member_id, id, None)?
            .ok_or(ApiError::NotFound)?,
    )?;
    Ok((dir, cur))
}

/// The hash of a case's head commit (409 for a format-1 case, which has none).
pub(super) fn head_hash(row: &CaseRow) -> Result<CommitHash, ApiError> {
    row.head_hash
        .as_deref()
        .map(CommitHash::from_slice)
        .transpose()
        .map_err(|_| ApiError::Internal("stored head hash malformed".into()))?
        .ok_or_else(|| {
            ApiError::Conflict(
                "this case has no commits (format 1): it cannot be changed by this version".into(),
            )
        })
}

pub(super) fn current_state(bundle: CaseBundle) -> Result<Current, ApiError> {
    let head = head_hash(&bundle.case)?;
    let entries = bundle
        .records
        .iter()
        .map(|r| StateEntry::of_envelope(&r.envelope))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ApiError::Internal("stored envelope malformed".into()))?;
    let holders = bundle
        .head_commit
        .as_deref()
        .and_then(|c| parse_commit(c).ok())
        .map(|c| c.body().holders)
        .ok_or_else(|| ApiError::Internal("stored head commit malformed".into()))?;
    Ok(Current {
        row: bundle.case,
        head,
        holders,
        entries,
    })
}

/// The caller's enrolled device key (decompressed once for all the commits of a request), and the
/// members of its society with their registered keys.
pub(super) struct Directory {
    pub(super) signer: DeviceVerifier,
    pub(super) members: HashMap<MemberId, Member>,
    /// The holders digest of a case only the caller holds (computed once: an import creates many).
    pub(super) own_holders: [u8; 32],
}

impl Directory {
    /// Whether `member` may be given a case key now: an active caseworker or admin of the society.
    pub(super) fn may_receive(&self, member: MemberId) -> bool {
        self.members
            .get(&member)
            .is_some_and(|m| !m.suspended && m.role.reads_case_content())
    }

    /// `member`, who is to be given a case key, as a holder: refused unless they may receive one.
    pub(super) fn new_holder(&self, member: MemberId) -> Result<Holder, ApiError> {
        if !self.may_receive(member) {
            return Err(ApiError::Unprocessable(format!(
                "member {member} is not an active caseworker or admin of your society"
            )));
        }
        self.holder(member)
    }

    /// `member` as a holder: their registered keys' digest (what a certificate of theirs certifies,
    /// since the server stores only certificates that match them). A suspended member who holds a
    /// key still counts.
    fn holder(&self, member: MemberId) -> Result<Holder, ApiError> {
        let m = self.members.get(&member).ok_or_else(|| {
            ApiError::Unprocessable(format!("member {member} is not a member of your society"))
        })?;
        holder_of(m)
    }

    /// The keys the members among `recipients` have in this directory, each once (the society's
    /// own id, the escrow key, and unknown ids left out): what a write wrapping to them checks is
    /// still theirs when it stores the rows ([`rfl_storage::RecipientKeys`]).
    pub(crate) fn recipient_keys(
        &self,
        recipients: impl Iterator<Item = uuid::Uuid>,
    ) -> Vec<rfl_storage::RecipientKeys> {
        let mut seen = std::collections::HashSet::new();
        recipients
            .filter(|r| seen.insert(*r))
            .filter_map(|r| self.members.get(&MemberId::from_uuid(r)))
            .map(|m| rfl_storage::RecipientKeys {
                member: m.id,
                signing_key: m.signing_key.clone(),
                age_recipient: m.age_recipient.clone(),
            })
            .collect()
    }

    /// The holders digest of the members in `recipients` (the society's own id, the escrow key,
    /// is not a holder and is left out), each with their registered keys.
    pub(super) fn holders_digest(
        &self,
        caller: &Caller,
        recipients: impl Iterator<Item = uuid::Uuid>,
    ) -> Result<[u8; 32], ApiError> {
        self.rows_digest(caller, recipients.map(|r| (r, None)))
    }

    /// The holders digest of key rows: each recipient (the society's own id left out) with the
    /// digest of the keys its row is wrapped to, `None` for their registered keys.
    pub(super) fn rows_digest<'a>(
        &self,
        caller: &Caller,
        rows: impl Iterator<Item = (uuid::Uuid, Option<&'a [u8]>)>,
    ) -> Result<[u8; 32], ApiError> {
        let society = *caller.society_id.as_uuid();
        let rows: Vec<(MemberId, Option<&[u8]>)> = rows
            .filter(|(r, _)| *r != society)
            .map(|(r, d)| (MemberId::from_uuid(r), d))
            .collect();
        if let [(only, None)] = rows.as_slice() {
            if *only == caller.member_id {
                return Ok(self.own_holders);
            }
        }
        let holders = rows
            .into_iter()
            .map(|(m, digest)| match digest {
                None => self.holder(m),
                Some(d) => Ok(Holder {
                    member_id: *m.as_uuid(),
                    keys_digest: d
                        .try_into()
                        .map_err(|_| ApiError::Internal("stored keys digest malformed".into()))?,
                }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        holders_digest(&holders).map_err(|e| ApiError::Unprocessable(e.to_string()))
    }
}

pub(super) fn holder_of(m: &Member) -> Result<Holder, ApiError> {
    let signing = DevicePublicKey::from_slice(&m.signing_key)
        .map_err(|_| ApiError::Internal("stored key malformed".into()))?;
    let recipient = AgeRecipient::parse(&m.age_recipient)
        .map_err(|_| ApiError::Internal("stored age recipient malformed".into()))?;
    Ok(Holder {
        member_id: *m.id.as_uuid(),
        keys_digest: subject_keys_digest(Some(&signing), &recipient),
    })
}

pub(super) fn directory(store: &Store, caller: &Caller) -> Result<Directory, ApiError> {
    let members = store.society_members(caller.society_id)?;
    let me: Option<&Member> = members.iter().find(|m| m.id == caller.member_id);
    let me = me.ok_or(ApiError::Unauthorized("your account no longer exists"))?;
    if me.suspended {
        return Err(ApiError::Unauthorized("your account is suspended"));
    }
    let signer = DevicePublicKey::from_slice(&me.signing_key)
        .and_then(|k| k.verifier())
        .map_err(|_| ApiError::Internal("stored key malformed".into()))?;
    let own_holders = holders_digest(&[holder_of(me)?])
        .map_err(|_| ApiError::Internal("holders digest".into()))?;
    Ok(Directory {
        signer,
        members: members.into_iter().map(|m| (m.id, m)).collect(),
        own_holders,
    })
}
