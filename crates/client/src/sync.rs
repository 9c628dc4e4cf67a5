//! What a society's sync agent does between two instances of the society (its own server and the
//! hub; `docs/sync.md`): carry the society's trust material across, then one pass of its changes,
//! each page pulled from one side pushed to the other. The agent holds no key that opens a case:
//! it moves ciphertext and signed commits, and the receiving server verifies every commit.

use rfl_crypto::sha256;
use rfl_domain::api::{wire, SyncOutcome, SyncOutcomeDto, SyncPushDto, SyncTrustOutcome};
use rfl_domain::SocietyId;
use uuid::Uuid;

use crate::http::Api;
use crate::{ClientError, Result};

/// How far a reader has got in one instance's change sequence of a society: it holds every
/// change numbered up to `seq` there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The instance the number was read from: a number means nothing on another database.
    pub instance: Uuid,
    pub seq: u64,
}

/// What one pass carried.
#[derive(Clone, Debug, Default)]
pub struct PassReport {
    /// Pages pulled.
    pub pages: u64,
    /// Cases pushed (a case changed on both sides of a page boundary counts once per page).
    pub cases: u64,
    /// Commits the receiver held already.
    pub known: u64,
    /// Commits the receiver stored.
    pub applied: u64,
    /// Cases changed on both sides while apart: nothing of them was overwritten.
    pub conflicts: Vec<SyncOutcomeDto>,
    /// Cases the receiver refused (their commits fail verification or leave a gap).
    pub refused: Vec<SyncOutcomeDto>,
    /// Where the next pass starts: the sender holds nothing after it that this pass did not carry.
    pub checkpoint: Option<Checkpoint>,
    /// Whether the pass started again from the start because the sender refused the checkpoint
    /// (another instance's, or one beyond its last change, as after a restore from a backup).
    pub restarted: bool,
}

/// Carries `society`'s trust material from `from` (where it is served) to `to`, which keeps what
/// verifies against the Movement root and the roots it holds.
pub async fn carry_trust(from: &Api, to: &Api, society: SocietyId) -> Result<SyncTrustOutcome> {
    let bundle = from.trust_bundle(society).await?;
    to.sync_trust(&bundle).await
}

/// One pass of the caller's society's changes from `from` to `to`, starting after `since` (none:
/// from the start, every case whole), `limit` cases a page. Each page is pushed as it comes,
/// under an idempotency key made from its content, so a pass cut short and run again sends
/// nothing twice. A checkpoint the sender refuses starts the pass again from the start, which is
/// always correct (the receiver holds what it holds already: `known`).
pub async fn pass(
    from: &Api,
    to: &Api,
    since: Option<Checkpoint>,
    limit: Option<u32>,
) -> Result<PassReport> {
    let mut report = PassReport::default();
    let (mut instance, mut since) = match since {
        Some(c) => (Some(c.instance), c.seq),
        None => (None, 0),
    };
    let mut after = since;
    loop {
        let page = match from.sync_changes((since, after), instance, limit).await {
            Ok(p) => p,
            Err(ClientError::SyncCursor { .. }) if !report.restarted => {
                report.restarted = true;
                (instance, since, after) = (None, 0, 0);
                continue;
            }
            Err(e) => return Err(e),
        };
        instance = Some(page.instance_id);
        report.pages += 1;
        if !page.cases.is_empty() {
            let batch = SyncPushDto { cases: page.cases };
            let body = wire::encode_into(&batch, Vec::new())?;
            let key = format!("page-{}", hex::encode(sha256(&body)));
            let answer = to.sync_push_framed(&key, body).await?;
            report.cases += u64::try_from(batch.cases.len()).unwrap_or(u64::MAX);
            for o in answer.cases {
                report.known += o.known;
                report.applied += o.applied;
                match o.outcome {
                    SyncOutcome::Known | SyncOutcome::Applied => {}
                    SyncOutcome::Conflict => report.conflicts.push(o),
                    SyncOutcome::Refused => report.refused.push(o),
                }
            }
        }
        after = page.next;
        if !page.more {
            report.checkpoint = Some(Checkpoint {
                instance: page.instance_id,
                seq: page.next,
            });
            return Ok(report);
        }
    }
}
