//! A pushed run written on a head this server has moved past (`docs/sync.md`, "Push" and
//! "Conflicts and merges"): the other side's version, kept beside this server's as the case's
//! branch once its head checks against what was sent.

use rfl_crypto::{sha256, CommitRun, Trust};
use rfl_domain::api::{SyncCaseDto, SyncOutcome};
use rfl_storage::{Branch, IncomingBranch};

use super::push::{outcome, run_to_store, Checked, KEPT};

/// A run that forks from this server's chain of the case after commit `at - 1`: its commits after
/// the fork (each verified already) are the other side's branch, kept whole if its head's records
/// and holders check against what was sent. A branch held already is answered as such, one that
/// extends it replaces it, and a third version is refused until the conflict is resolved.
pub(super) fn fork(
    case: &SyncCaseDto,
    branch: Option<&Branch>,
    run: &CommitRun,
    known: usize,
    at: u64,
    trust: &Trust,
) -> Checked {
    let id = case.case.id;
    let fork_seq = at - 1;
    let sent = &run.commits()[known..];
    let done = |o, applied, reason: &str| {
        Checked::Done(outcome(
            id,
            o,
            known as u64,
            applied,
            Some(at),
            Some(reason.to_owned()),
        ))
    };
    let replaces = match branch {
        None => None,
        Some(b) => {
            let held: Vec<[u8; 32]> = b.commits.iter().map(|c| sha256(c)).collect();
            let sent: Vec<[u8; 32]> = sent.iter().map(|c| c.hash().0).collect();
            let same_fork = b.fork_seq == fork_seq;
            if same_fork && held.starts_with(&sent) {
                if b.merged_at.is_some() {
                    // Kept, and merged here since: nothing to do.
                    return Checked::Done(outcome(
                        id,
                        SyncOutcome::Known,
                        run.commits().len() as u64,
                        0,
                        None,
                        None,
                    ));
                }
                return done(SyncOutcome::Conflict, 0, KEPT);
            }
            if b.merged_at.is_some() {
                // A version this server has not merged (the other side wrote on after the merged
                // one, or merged it too): a new conflict, which replaces the merged branch.
                Some(b.head_hash.clone())
            } else if !(same_fork && sent.starts_with(&held)) {
                return done(
                    SyncOutcome::Refused,
                    0,
                    "another version of the case is kept here already as a conflict: it is sent \
                     again once a caseworker has merged that one",
                );
            } else {
                Some(b.head_hash.clone())
            }
        }
    };
    // The branch's head states the case after it: every record it lists and every holder it names
    // must be among what was sent, since this server's own records and keys are of its own branch.
    match run_to_store(case, None, run, known, trust) {
        Ok(r) => Checked::Branch(
            IncomingBranch {
                case: id,
                society: case.case.society_id,
                replaces,
                fork_seq,
                commits: sent
                    .iter()
                    .map(|c| (c.body().seq, c.as_bytes().to_vec()))
                    .collect(),
                head_hash: run.last().hash().0.to_vec(),
                records: r.records,
                keys: r.keys,
            },
            known as u64,
        ),
        Err(_) if !case.whole => done(
            SyncOutcome::NeedsWhole,
            0,
            "the case was changed on both sides since they last met: send it whole, so that \
             both versions can be kept",
        ),
        Err(reason) => done(SyncOutcome::Refused, 0, &reason),
    }
}
