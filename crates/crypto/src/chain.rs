//! Where a run of a case's commits sent by another server lands on the receiver's chain of that
//! case (`docs/sync.md`, "Push"): parsed and linked here, without keys. Whether each commit's author
//! may sign it, and whether the signature verifies, is the caller's to check ([`Commit::verify`]):
//! a run that lands well is not yet a run that may be stored.

use crate::commit::{parse_commit, Commit, CommitHash};
use crate::error::CryptoError;

/// Consecutive commits of one case, each the child of the one before: what a peer sends of a case.
#[derive(Debug)]
pub struct CommitRun {
    commits: Vec<Commit>,
}

/// Why a run was refused, and at which of its commits (0-based); the commits before it are sound.
#[derive(Debug, thiserror::Error)]
#[error("commit {index} of the run: {fault}")]
pub struct RunError {
    pub index: usize,
    pub fault: RunFault,
}

/// What is wrong with a commit of a run.
#[derive(Debug, thiserror::Error)]
pub enum RunFault {
    #[error("the run has no commit")]
    Empty,
    #[error("it does not parse: {0}")]
    Malformed(CryptoError),
    #[error("it belongs to another case")]
    OtherCase,
    #[error("its number is not the next after the commit before it")]
    NotNext,
    #[error("its parent is not the commit before it")]
    NotChild,
}

/// How a run meets the receiver's chain of the case ([`CommitRun::land`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landing {
    /// The receiver holds every commit of the run: nothing to write.
    Known,
    /// The receiver holds the first `known` commits; the rest continue its head (or, from the
    /// first commit, make a case it does not have).
    Extends { known: usize },
    /// The receiver holds the first `known` commits; the next, number `at`, is built on a commit
    /// the receiver holds that is not its head, and the receiver holds another commit `at`: both
    /// sides wrote on the same head, a conflict.
    Forks { known: usize, at: u64 },
    /// The receiver holds the first `known` commits; the parent of the next, number `seq`, is one
    /// it does not hold: a gap, which the sender fills by sending from further back.
    MissingParent { known: usize, seq: u64 },
}

impl CommitRun {
    /// Parses `commits` (oldest first) as a run of case `case_id`: each parses, is of the case, and
    /// is numbered next after, and the child of, the one before it.
    pub fn parse(case_id: uuid::Uuid, commits: &[&[u8]]) -> Result<CommitRun, RunError> {
        if commits.is_empty() {
            return Err(RunError {
                index: 0,
                fault: RunFault::Empty,
            });
        }
        let mut run: Vec<Commit> = Vec::with_capacity(commits.len());
        for (index, bytes) in commits.iter().enumerate() {
            let fail = |fault| RunError { index, fault };
            let c = parse_commit(bytes).map_err(|e| fail(RunFault::Malformed(e)))?;
            if c.body().case_id != case_id {
                return Err(fail(RunFault::OtherCase));
            }
            if let Some(before) = run.last() {
                if before.body().seq.checked_add(1) != Some(c.body().seq) {
                    return Err(fail(RunFault::NotNext));
                }
                if c.body().parent != before.hash() {
                    return Err(fail(RunFault::NotChild));
                }
            }
            run.push(c);
        }
        Ok(CommitRun { commits: run })
    }

    /// The commits, oldest first.
    pub fn commits(&self) -> &[Commit] {
        &self.commits
    }

    /// The run's last commit: the sender's head of the case.
    pub fn last(&self) -> &Commit {
        // A run is never empty (`parse` refuses that).
        &self.commits[self.commits.len() - 1]
    }

    /// Where the run lands on the receiver's chain: `head` is the receiver's head of the case
    /// (number and hash; none when it does not have the case), `held(n)` the hash of the
    /// receiver's commit number `n`, if it has one.
    pub fn land(
        &self,
        head: Option<(u64, CommitHash)>,
        held: impl Fn(u64) -> Option<CommitHash>,
    ) -> Landing {
        for (known, c) in self.commits.iter().enumerate() {
            let seq = c.body().seq;
            let parent = c.body().parent;
            match held(seq) {
                Some(h) if h == c.hash() => continue,
                Some(_) => {
                    // Another commit under this number: a fork, if its parent is one the receiver
                    // holds (the commit before it in the run was known, or the receiver has it).
                    let parent_held =
                        known > 0 || seq == 1 || held(seq - 1).is_some_and(|p| p == parent);
                    return if parent_held {
                        Landing::Forks { known, at: seq }
                    } else {
                        Landing::MissingParent { known, seq }
                    };
                }
                None => {
                    let continues = match head {
                        None => seq == 1,
                        Some((n, h)) => n + 1 == seq && h == parent,
                    };
                    return if continues {
                        Landing::Extends { known }
                    } else {
                        Landing::MissingParent { known, seq }
                    };
                }
            }
        }
        Landing::Known
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit::{holders_digest, state_digest, CommitBody, CommitOp, Holder};
    use crate::keys::DeviceSigningKey;
    use uuid::Uuid;

    const CASE: Uuid = Uuid::from_bytes([1; 16]);

    /// Commits 1..=`to` of a chain signed by a new key; those from `branch_at` on carry `branch`
    /// as their time.
    fn chain(to: u64, branch_at: u64, branch: i64) -> Vec<Vec<u8>> {
        let key = DeviceSigningKey::generate().unwrap();
        let mut parent = CommitHash::ZERO;
        let mut out = Vec::new();
        for seq in 1..=to {
            let body = CommitBody {
                op: if seq == 1 {
                    CommitOp::Create
                } else {
                    CommitOp::Records
                },
                case_id: CASE,
                seq,
                parent,
                key_epoch: 1,
                key_commitment: [9; 32],
                status: 0,
                author: Uuid::from_bytes([2; 16]),
                created_at: if seq >= branch_at { branch } else { 0 },
                state: state_digest(&[]).unwrap(),
                holders: holders_digest(&[Holder {
                    member_id: Uuid::from_bytes([2; 16]),
                    keys_digest: [3; 32],
                }])
                .unwrap(),
            };
            let c = body.sign(&key).unwrap();
            parent = c.hash();
            out.push(c.as_bytes().to_vec());
        }
        out
    }

    fn run(commits: &[Vec<u8>]) -> CommitRun {
        let refs: Vec<&[u8]> = commits.iter().map(Vec::as_slice).collect();
        CommitRun::parse(CASE, &refs).unwrap()
    }

    /// The receiver's state: its commits 1..=n of `chain`.
    fn receiver(chain: &[Vec<u8>], n: usize) -> (Option<(u64, CommitHash)>, Vec<CommitHash>) {
        let hashes: Vec<CommitHash> = chain[..n]
            .iter()
            .map(|b| parse_commit(b).unwrap().hash())
            .collect();
        (hashes.last().map(|h| (n as u64, *h)), hashes)
    }

    fn land(run: &CommitRun, at: &(Option<(u64, CommitHash)>, Vec<CommitHash>)) -> Landing {
        let hashes = at.1.clone();
        run.land(at.0, move |n| {
            usize::try_from(n)
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|i| hashes.get(i).copied())
        })
    }

    #[test]
    fn a_run_extends_a_head_it_continues_and_is_known_once_held() {
        let a = chain(5, u64::MAX, 0);
        assert_eq!(
            land(&run(&a), &receiver(&a, 0)),
            Landing::Extends { known: 0 }
        );
        assert_eq!(
            land(&run(&a), &receiver(&a, 3)),
            Landing::Extends { known: 3 }
        );
        assert_eq!(
            land(&run(&a[3..]), &receiver(&a, 3)),
            Landing::Extends { known: 0 }
        );
        assert_eq!(land(&run(&a[2..]), &receiver(&a, 5)), Landing::Known);
        assert_eq!(land(&run(&a), &receiver(&a, 5)), Landing::Known);
    }

    #[test]
    fn a_run_with_a_gap_before_it_is_missing_its_parent() {
        let a = chain(5, u64::MAX, 0);
        assert_eq!(
            land(&run(&a[2..]), &receiver(&a, 0)),
            Landing::MissingParent { known: 0, seq: 3 }
        );
        assert_eq!(
            land(&run(&a[3..]), &receiver(&a, 2)),
            Landing::MissingParent { known: 0, seq: 4 }
        );
    }

    #[test]
    fn a_run_written_on_a_head_the_receiver_moved_past_forks() {
        // Both sides hold 1..3; each wrote its own 4 and 5 on 3.
        let ours = chain(5, 4, 1);
        let theirs: Vec<Vec<u8>> = {
            // The same first three commits, then commits of their own.
            let mut t = ours[..3].to_vec();
            let mut parent = parse_commit(&t[2]).unwrap().hash();
            let key = DeviceSigningKey::generate().unwrap();
            for seq in 4..=5u64 {
                let mut body = *parse_commit(&ours[usize::try_from(seq).unwrap() - 1])
                    .unwrap()
                    .body();
                body.parent = parent;
                body.created_at = 2;
                let c = body.sign(&key).unwrap();
                parent = c.hash();
                t.push(c.as_bytes().to_vec());
            }
            t
        };
        let at = receiver(&ours, 5);
        assert_eq!(
            land(&run(&theirs[3..]), &at),
            Landing::Forks { known: 0, at: 4 }
        );
        assert_eq!(land(&run(&theirs), &at), Landing::Forks { known: 3, at: 4 });
        // Their 5 alone: its parent (their 4) is not held, so a gap, not a fork.
        assert_eq!(
            land(&run(&theirs[4..]), &at),
            Landing::MissingParent { known: 0, seq: 5 }
        );
        // A receiver still at 3 takes their branch as a continuation.
        assert_eq!(
            land(&run(&theirs[3..]), &receiver(&ours, 3)),
            Landing::Extends { known: 0 }
        );
        // Two creating commits under one case id fork at 1.
        let other = chain(1, 1, 7);
        assert_eq!(
            land(&run(&other), &receiver(&ours, 5)),
            Landing::Forks { known: 0, at: 1 }
        );
    }

    #[test]
    fn a_run_that_is_not_one_chain_of_one_case_is_refused_at_its_first_bad_commit() {
        let a = chain(4, u64::MAX, 0);
        let b = chain(4, 1, 5);
        let parse = |commits: &[&Vec<u8>]| {
            let refs: Vec<&[u8]> = commits.iter().map(|c| c.as_slice()).collect();
            CommitRun::parse(CASE, &refs).unwrap_err()
        };
        let e = parse(&[&a[0], &a[2]]);
        assert!(matches!((e.index, &e.fault), (1, RunFault::NotNext)), "{e}");
        let e = parse(&[&a[0], &a[1], &b[2]]);
        assert!(
            matches!((e.index, &e.fault), (2, RunFault::NotChild)),
            "{e}"
        );
        let mut flipped = a[1].clone();
        flipped[40] ^= 1;
        let e = parse(&[&a[0], &flipped]);
        assert!(
            matches!((e.index, &e.fault), (1, RunFault::NotChild)),
            "{e}"
        );
        let short = a[1][..100].to_vec();
        let e = parse(&[&a[0], &short]);
        assert!(
            matches!((e.index, &e.fault), (1, RunFault::Malformed(_))),
            "{e}"
        );
        let e = CommitRun::parse(Uuid::from_bytes([3; 16]), &[a[0].as_slice()]).unwrap_err();
        assert!(
            matches!((e.index, &e.fault), (0, RunFault::OtherCase)),
            "{e}"
        );
        let e = CommitRun::parse(CASE, &[]).unwrap_err();
        assert!(matches!(e.fault, RunFault::Empty), "{e}");
    }
}
