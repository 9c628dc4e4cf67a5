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

/// What to do with `run` if it carries a merge of this server's head `held` (the case's kept
/// branch, if any, is `branch`); none when it carries no such merge (the usual rules apply).
///
/// The merging side's version after the fork is the run's commits after the last one this server
/// shares with it, preceded by the kept branch's where the run continues that branch; its head is
/// checked against the kept branch's records and keys (or, with no such branch, against what was
/// sent alone, which must then be the case whole), and must list every record of this server's
/// version at a version as late: a merge loses nothing.
pub(super) fn adopt(
    case: &SyncCaseDto,
    held: &CaseState,
    branch: Option<&Branch>,
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
    let whole = |at| {
        if case.whole {
            refuse(
                at,
                "the merge's version does not build on a commit this server holds",
            )
        } else {
            done(
                SyncOutcome::NeedsWhole,
                at,
                "the other side merged the case's conflict: send it whole, so that the merge \
                 can be checked",
            )
        }
    };
    let ours: HashMap<u64, [u8; 32]> = held.commits.iter().map(|(n, b)| (*n, sha256(b))).collect();
    let first = run.commits()[0].body().seq;
    // The kept (unmerged) branch the run continues, if any.
    let kept = branch
        .filter(|b| b.merged_at.is_none())
        .filter(|b| continues(b, run, &ours));
    let (fork, prefix): (u64, Vec<&[u8]>) = match kept {
        Some(b) => (
            b.fork_seq,
            b.commits
                .iter()
                .take(first.saturating_sub(b.fork_seq + 1) as usize)
                .map(Vec::as_slice)
                .collect(),
        ),
        None => {
            // The last commit the run shares with this server's chain.
            let differs = run
                .commits()
                .iter()
                .find(|c| ours.get(&c.body().seq) != Some(&c.hash().0))?;
            let fork = differs.body().seq - 1;
            if differs.body().seq == first && first != 1 {
                // The run starts after the fork: where it branched off is not in it.
                return whole(Some(first));
            }
            (fork, Vec::new())
        }
    };
    let mut chain = prefix;
    chain.extend(
        run.commits()
            .iter()
            .filter(|c| c.body().seq > fork)
            .map(|c| c.as_bytes()),
    );
    let combined = match CommitRun::parse(*id.as_uuid(), &chain) {
        Ok(r) => r,
        Err(e) => return refuse(None, &e.to_string()),
    };
    let start = combined.commits()[0].body();
    let fork_commit = held.commits.iter().find(|(n, _)| *n == fork);
    if start.seq != fork + 1
        || fork_commit.map(|(_, b)| CommitHash(sha256(b))) != Some(start.parent)
    {
        return whole(Some(start.seq));
    }
    let fork_epoch = fork_commit
        .and_then(|(_, b)| rfl_crypto::parse_commit(b).ok())
        .map(|c| c.body().key_epoch)?;
    // Every commit not kept already is verified, as any pushed commit is. (Those of the kept
    // branch were verified when they were kept.)
    let verified_kept = kept.map_or(0, |b| b.commits.len().min(combined.commits().len()));
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
    // each replaced by a later one sent (or against what was sent alone).
    let base = CaseState {
        row: held.row.clone(),
        commits: Vec::new(),
        records: kept.map(|b| b.records.clone()).unwrap_or_default(),
        keys: kept.map(|b| b.keys.clone()).unwrap_or_default(),
    };
    let checked = match run_to_store(case, Some(&base), &combined, 0, trust) {
        Ok(r) => r,
        Err(_) if !case.whole => return whole(Some(first)),
        Err(reason) => return refuse(Some(combined.last().body().seq), &reason),
    };
    let mut records: BTreeMap<[u8; 16], RecordRow> = base
        .records
        .iter()
        .map(|r| (*r.id.as_uuid().as_bytes(), r.clone()))
        .collect();
    for r in checked.records {
        records.insert(*r.id.as_uuid().as_bytes(), r);
    }
    // A merge loses nothing: every record of this server's version is in it, as late.
    if held.records.iter().any(|own| {
        records
            .get(own.id.as_uuid().as_bytes())
            .is_none_or(|r| r.version < own.version)
    }) {
        return refuse(
            Some(combined.last().body().seq),
            "the merge leaves out a record of this server's version, or states an older version \
             of one",
        );
    }
    let mut keys = base.keys;
    keys.retain(|k| {
        !checked
            .keys
            .iter()
            .any(|s| s.recipient_id == k.recipient_id && s.key_epoch == k.key_epoch)
    });
    keys.extend(checked.keys);
    Some(Checked::Adopt(
        AdoptedMerge {
            case: id,
            society: case.case.society_id,
            on: (
                held.row.version,
                held.row.head_hash.clone().unwrap_or_default(),
            ),
            branch_head: branch.map(|b| b.head_hash.clone()),
            fork_seq: fork,
            fork_epoch,
            commits: checked.commits,
            key_epoch: checked.key_epoch,
            records: records.into_values().collect(),
            keys,
        },
        fork,
    ))
}

/// Whether `run` continues the kept branch `b`: its commits up to the fork are this server's, and
/// those after it are the branch's where they overlap, with no gap between the branch and the run.
fn continues(b: &Branch, run: &CommitRun, ours: &HashMap<u64, [u8; 32]>) -> bool {
    let fork = b.fork_seq;
    let first = run.commits()[0].body().seq;
    if first > fork + b.commits.len() as u64 + 1 {
        return false;
    }
    run.commits().iter().all(|c| {
        let seq = c.body().seq;
        if seq <= fork {
            return ours.get(&seq) == Some(&c.hash().0);
        }
        b.commits
            .get((seq - fork - 1) as usize)
            .is_none_or(|k| sha256(k) == c.hash().0)
    })
}
