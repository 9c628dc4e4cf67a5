//! The other side's merge of a case in conflict (`docs/sync.md`, "Conflicts and merges"): a run
//! that carries a merge commit whose second parent is this server's head. The other version, from
//! the commit after the fork to the run's head (the kept branch's commits where the run starts
//! later, then the run's), is checked as a whole, as a case new here would be from the kept
//! branch's records and keys, and becomes this server's chain; this server's version becomes the
//! kept branch, merged.

use std::collections::{BTreeMap, HashMap};

use rfl_crypto::{sha256, CommitHash, CommitRun, Trust};
use rfl_domain::api::{SyncCaseDto, SyncOutcome};
use rfl_storage::{AdoptedMerge, Branch, CaseState, RecordRow};

use super::push::{outcome, run_to_store, Checked};

/// What to do with `run` if it carries a merge of this server's head `held` of a case whose kept
/// branch is `branch`; none when it carries no such merge (the usual rules apply).
pub(super) fn adopt(
    case: &SyncCaseDto,
    held: &CaseState,
    branch: &Branch,
    run: &CommitRun,
    trust: &Trust,
) -> Option<Checked> {
    let id = case.case.id;
    let head = CommitHash::from_slice(held.row.head_hash.as_deref()?).ok()?;
    if !run
        .commits()
        .iter()
        .any(|c| c.second_parent() == Some(head))
    {
        return None;
    }
    let done = |o, at: Option<u64>, reason: &str| {
        Some(Checked::Done(outcome(
            id,
            o,
            0,
            0,
            at,
            Some(reason.to_owned()),
        )))
    };
    let refuse = |at, reason: &str| done(SyncOutcome::Refused, at, reason);
    let fork = branch.fork_seq;
    let ours: HashMap<u64, [u8; 32]> = held.commits.iter().map(|(n, b)| (*n, sha256(b))).collect();
    // The other version after the fork: the kept branch's commits before the run's first, then
    // the run's; where they overlap they must be the same commits.
    let first = run.commits()[0].body().seq;
    let kept = branch.commits.len() as u64;
    if first > fork + kept + 1 {
        return refuse(
            Some(first),
            "missing parent: this server does not hold the commit the merge's version builds on; \
             send the case from an earlier commit",
        );
    }
    let mut chain: Vec<&[u8]> = branch
        .commits
        .iter()
        .take(first.saturating_sub(fork + 1) as usize)
        .map(Vec::as_slice)
        .collect();
    for c in run.commits() {
        let seq = c.body().seq;
        if seq <= fork {
            if ours.get(&seq) != Some(&c.hash().0) {
                return refuse(
                    Some(seq),
                    "the merge's version does not share this server's commits before the fork",
                );
            }
            continue;
        }
        let at = (seq - fork - 1) as usize;
        if let Some(b) = branch.commits.get(at) {
            if sha256(b) != c.hash().0 {
                // Not the version kept here: a third one, under the usual rules.
                return None;
            }
        }
        chain.push(c.as_bytes());
    }
    let combined = match CommitRun::parse(*id.as_uuid(), &chain) {
        Ok(r) => r,
        Err(e) => return refuse(None, &e.to_string()),
    };
    let start = combined.commits()[0].body();
    if start.seq != fork + 1 || ours.get(&fork).map(|h| CommitHash(*h)) != Some(start.parent) {
        return refuse(
            Some(start.seq),
            "the merge's version does not build on the commit both versions share",
        );
    }
    // Every commit not kept here already is verified, as any pushed commit is.
    // (Those of the kept branch were verified when they were kept.)
    let verified_kept = branch.commits.len().min(combined.commits().len());
    for c in &combined.commits()[verified_kept..] {
        let b = c.body();
        let keys = trust.author_keys(b.author, b.created_at);
        if !keys.iter().any(|k| c.clone().verify_by(k).is_ok()) {
            return refuse(
                Some(b.seq),
                "its author's keys are not certified by the society's root, or its signature \
                 does not verify under them",
            );
        }
    }
    // The head states the case after it: checked against the kept branch's records and keys,
    // each replaced by a later one sent.
    let base = CaseState {
        row: held.row.clone(),
        commits: Vec::new(),
        records: branch.records.clone(),
        keys: branch.keys.clone(),
    };
    let checked = match run_to_store(case, Some(&base), &combined, 0, trust) {
        Ok(r) => r,
        Err(_) if !case.whole => {
            return done(
                SyncOutcome::NeedsWhole,
                Some(first),
                "the other side merged the case's conflict: send it whole, so that the merge \
                 can be checked",
            )
        }
        Err(reason) => return refuse(Some(combined.last().body().seq), &reason),
    };
    let mut records: BTreeMap<[u8; 16], RecordRow> = branch
        .records
        .iter()
        .map(|r| (*r.id.as_uuid().as_bytes(), r.clone()))
        .collect();
    for r in checked.records {
        records.insert(*r.id.as_uuid().as_bytes(), r);
    }
    let mut keys = branch.keys.clone();
    keys.retain(|k| {
        !checked
            .keys
            .iter()
            .any(|s| s.recipient_id == k.recipient_id && s.key_epoch == k.key_epoch)
    });
    keys.extend(checked.keys);
    let known = held.commits.len().min(fork as usize) as u64;
    Some(Checked::Adopt(
        AdoptedMerge {
            case: id,
            society: case.case.society_id,
            on: (
                held.row.version,
                held.row.head_hash.clone().unwrap_or_default(),
            ),
            branch_head: branch.head_hash.clone(),
            fork_seq: fork,
            commits: checked.commits,
            key_epoch: checked.key_epoch,
            records: records.into_values().collect(),
            keys,
        },
        known,
    ))
}
