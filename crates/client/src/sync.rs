//! What a society's sync agent does between two instances of the society (its own server and the
//! hub; `docs/sync.md`): carry the society's trust material across, then one pass of its changes,
//! each page pulled from one side pushed to the other. The agent holds no key that opens a case:
//! it moves ciphertext and signed commits, and the receiving server verifies every commit.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rfl_crypto::{sha256, CaseWrapKey};
use rfl_domain::api::{
    wire, SyncCaseDto, SyncOutcome, SyncOutcomeDto, SyncPageDto, SyncPushDto, SyncTrustOutcome,
};
use rfl_domain::{CaseId, MemberId, SocietyId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::http::{Api, ReceiverCheckpoint};
use crate::keystore::write_private;
use crate::{ClientError, Result, Session};

/// How far a reader has got in one instance's change sequence of a society: it holds every
/// change numbered up to `seq` there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The instance the number was read from: a number means nothing on another database.
    pub instance: Uuid,
    pub seq: u64,
    /// The instance the changes up to it were sent to: another receiver (a new hub, or one
    /// restored from a backup) holds none of them, and gets a pass from the start.
    pub receiver: Uuid,
}

/// What one pass carried.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PassReport {
    /// Pages pulled.
    pub pages: u64,
    /// Cases pushed (a case changed on both sides of a page boundary counts once per page).
    pub cases: u64,
    /// Commits the receiver held already.
    pub known: u64,
    /// Commits the receiver stored.
    pub applied: u64,
    /// Cases changed on both sides while apart: nothing of them was overwritten, and the receiver
    /// keeps the sender's version beside its own until a caseworker merges them.
    pub conflicts: Vec<SyncOutcomeDto>,
    /// Cases the receiver refused (their commits fail verification or leave a gap).
    pub refused: Vec<SyncOutcomeDto>,
    /// Where the next pass starts: the sender holds nothing after it that this pass did not carry.
    /// A pass with a refused case keeps the checkpoint it started from, so that
    /// the next pass sends that case again, checked afresh (its author's certificate may have
    /// arrived meanwhile), instead of leaving it behind for good.
    pub checkpoint: Option<Checkpoint>,
    /// Whether the pass started again from the start because the sender refused the checkpoint
    /// (another instance's, or one beyond its last change, as after a restore from a backup).
    pub restarted: bool,
    /// How long the pass took, seconds.
    pub secs: f64,
    /// Of which the sender was reading pages, seconds (while the receiver stored the last).
    pub sender_secs: f64,
    /// Of which the receiver was storing pages, seconds: with `sender_secs`, which side bounds
    /// the pass.
    pub receiver_secs: f64,
}

impl PassReport {
    /// Counts a push's outcomes; returns the cases the receiver asked to be sent whole (counted as
    /// refused if they were sent whole already).
    fn count(&mut self, outcomes: Vec<SyncOutcomeDto>, sent_whole: bool) -> Vec<CaseId> {
        let mut whole = Vec::new();
        for o in outcomes {
            self.known += o.known;
            self.applied += o.applied;
            match o.outcome {
                SyncOutcome::Known | SyncOutcome::Applied => {}
                SyncOutcome::Conflict => self.conflicts.push(o),
                SyncOutcome::NeedsWhole if !sent_whole => whole.push(o.case_id),
                SyncOutcome::NeedsWhole | SyncOutcome::Refused => self.refused.push(o),
            }
        }
        whole
    }

    /// Adds what one page carried.
    fn add(&mut self, page: PassReport) {
        self.receiver_secs += page.receiver_secs;
        self.cases += page.cases;
        self.known += page.known;
        self.applied += page.applied;
        self.conflicts.extend(page.conflicts);
        self.refused.extend(page.refused);
    }
}

/// Carries the agent's society's trust material and escrow key from `from` to `to`, which keeps
/// what verifies against the Movement root and the roots it holds.
///
/// A side that holds no root of the society yet (a new server of the society, filled from the
/// hub) has nothing to carry: nothing is sent, and nothing is added.
pub async fn carry_trust(from: &Api, to: &Api) -> Result<SyncTrustOutcome> {
    let bundle = from.sync_trust_bundle().await?;
    if bundle.trust.root_public_key.is_none() {
        return Ok(SyncTrustOutcome {
            root_changed: false,
            successions: 0,
            movement_certificates: 0,
            certificates: 0,
            retired: 0,
            unverified: 0,
            revocation_list: None,
            escrow: false,
        });
    }
    to.sync_trust(&bundle).await
}

/// Where a pass has got, for a progress display: reported after each page is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PassProgress {
    /// Pages pushed so far.
    pub pages: u64,
    /// Cases pushed so far.
    pub cases: u64,
    /// Changes of the sender's sequence carried so far (a case changed twice counts twice).
    pub done: u64,
    /// Changes the sender held when the pass began: the estimate of the pass's length (changes
    /// made meanwhile come on top).
    pub total: u64,
}

/// One pass of the caller's society's changes from `from` to `to`, starting after `since` (none:
/// from the start, every case whole), `limit` cases a page. Each page is pushed as it comes,
/// under an idempotency key made from the pass and the page's content, so a page sent again
/// within the pass (a retry) gets the same answer, and the next pass has it checked afresh; a
/// pass cut short and run again stores nothing twice (`known`). A checkpoint the sender refuses,
/// or one of changes sent to another receiver, starts the pass again from the start, which is
/// always correct.
pub async fn pass(
    from: &Api,
    to: &Api,
    since: Option<Checkpoint>,
    limit: Option<u32>,
) -> Result<PassReport> {
    pass_observed(from, to, since, limit, &mut |_| {}).await
}

/// [`pass`], telling `observe` where it has got after each page. While the receiver stores one
/// page the next is read from the sender, so an initial sync takes about as long as the slower
/// of the two databases, not their sum; at most two pages are held at once, whatever the size
/// of the pass.
pub async fn pass_observed(
    from: &Api,
    to: &Api,
    since: Option<Checkpoint>,
    limit: Option<u32>,
    observe: &mut (dyn FnMut(PassProgress) + Send),
) -> Result<PassReport> {
    let began = Instant::now();
    let mut report = PassReport::default();
    let receiver = to.sync_info().await?.instance_id;
    let sender = from.sync_info().await?;
    let held = to.sync_checkpoint(sender.instance_id).await?;
    let keeps = held != ReceiverCheckpoint::Unsupported;
    let start = start_from(
        since.filter(|c| c.receiver == receiver),
        held,
        sender.instance_id,
        receiver,
    );
    let (instance, mut since) = match start {
        Some(c) => (Some(c.instance), c.seq),
        None => (None, 0),
    };
    let last = sender.seq;
    let nonce = Uuid::new_v4();
    let (mut page, restarted) = timed(
        &mut report.sender_secs,
        pull(from, (since, since), instance, limit, true),
    )
    .await?;
    if restarted {
        restart(to, keeps, sender.instance_id, &mut report, &mut since).await?;
    }
    loop {
        report.pages += 1;
        let cases = std::mem::take(&mut page.cases);
        if !page.more {
            report.add(push_page(from, to, nonce, cases).await?);
            observe(progress(&report, since, page.next, last));
            // A conflict is kept on the receiver: sending it again would change nothing.
            let held_back = !report.refused.is_empty();
            report.checkpoint = if held_back {
                // From where this pass started (none if it restarted or began from the start).
                start.filter(|_| !report.restarted)
            } else {
                Some(Checkpoint {
                    instance: page.instance_id,
                    seq: page.next,
                    receiver,
                })
            };
            // The receiver keeps it too: it holds every change up to there (held back: the
            // receiver's is set back to where this pass started, never left ahead of it).
            if keeps {
                let seq = report.checkpoint.map_or(0, |c| c.seq);
                to.put_sync_checkpoint(page.instance_id, seq).await?;
            }
            report.secs = began.elapsed().as_secs_f64();
            return Ok(report);
        }
        // The receiver stores this page while the sender reads the next.
        let may_restart = !report.restarted;
        let cursor = (since, page.next);
        let mut sender_secs = 0.0;
        let (pushed, pulled) = tokio::join!(
            push_page(from, to, nonce, cases),
            timed(
                &mut sender_secs,
                pull(from, cursor, Some(page.instance_id), limit, may_restart)
            )
        );
        report.sender_secs += sender_secs;
        report.add(pushed?);
        observe(progress(&report, since, page.next, last));
        let (next, restarted) = pulled?;
        if restarted {
            restart(to, keeps, sender.instance_id, &mut report, &mut since).await?;
        }
        page = next;
    }
}

/// The sender refused the pass's cursor (a sender restored from a backup, which numbers on from
/// an earlier change): the pass starts again from the start, and the receiver's checkpoint of the
/// sender goes back to the start at once, so a pass that then fails or is held back does not
/// leave it ahead of what the receiver holds of the sender's new numbering.
async fn restart(
    to: &Api,
    keeps: bool,
    sender: Uuid,
    report: &mut PassReport,
    since: &mut u64,
) -> Result<()> {
    report.restarted = true;
    *since = 0;
    if keeps {
        to.put_sync_checkpoint(sender, 0).await?;
    }
    Ok(())
}

/// Where a pass starts: after the agent's checkpoint (`agent`, already known to be of changes sent
/// to this receiver) and the one the receiver keeps of the sender's changes (`held`), whichever is
/// earlier. A receiver restored from a backup holds less than the agent was told, and one that
/// keeps none (never told, or restored from before it was) gets everything; a receiver's
/// checkpoint alone (the agent's state lost, or another agent's passes) is where that receiver
/// says it is. Starting earlier is always safe: what the receiver holds comes back as `known`.
/// A checkpoint of another instance gives way to the receiver's; with none, it is left for the
/// sender to refuse (the pass then starts again from the start). A receiver from before
/// checkpoints were kept leaves the agent's alone, as then.
fn start_from(
    agent: Option<Checkpoint>,
    held: ReceiverCheckpoint,
    sender: Uuid,
    receiver: Uuid,
) -> Option<Checkpoint> {
    let own = agent.filter(|c| c.instance == sender);
    match held {
        // A receiver from before checkpoints were kept: the agent's alone, as then.
        ReceiverCheckpoint::Unsupported => agent,
        ReceiverCheckpoint::At(h) => Some(match own {
            Some(c) => Checkpoint {
                seq: c.seq.min(h),
                ..c
            },
            None => Checkpoint {
                instance: sender,
                seq: h,
                receiver,
            },
        }),
        ReceiverCheckpoint::None if own.is_some() => None,
        ReceiverCheckpoint::None => agent,
    }
}

fn progress(report: &PassReport, since: u64, next: u64, last: u64) -> PassProgress {
    PassProgress {
        pages: report.pages,
        cases: report.cases,
        done: next.saturating_sub(since),
        total: last.saturating_sub(since),
    }
}

/// One page of changes after `cursor` (since, after) read from `from`; if the sender refuses the
/// cursor and `may_restart`, the first page from the start instead, and `true`.
async fn pull(
    from: &Api,
    cursor: (u64, u64),
    instance: Option<Uuid>,
    limit: Option<u32>,
    may_restart: bool,
) -> Result<(SyncPageDto, bool)> {
    match from.sync_changes(cursor, instance, limit).await {
        Ok(p) => Ok((p, false)),
        Err(ClientError::SyncCursor { .. }) if may_restart => {
            Ok((from.sync_changes((0, 0), None, limit).await?, true))
        }
        Err(e) => Err(e),
    }
}

/// Pushes one page's cases to `to`; a case the receiver asks for whole (changed on both sides)
/// is read whole from `from` and pushed again. What it carried, as a report of its own.
async fn push_page(
    from: &Api,
    to: &Api,
    nonce: Uuid,
    cases: Vec<SyncCaseDto>,
) -> Result<PassReport> {
    let began = Instant::now();
    let mut report = PassReport::default();
    if cases.is_empty() {
        return Ok(report);
    }
    report.cases = u64::try_from(cases.len()).unwrap_or(u64::MAX);
    let body = wire::encode_into(&SyncPushDto { cases }, Vec::new())?;
    let key = format!("pass-{nonce}-{}", hex::encode(sha256(&body)));
    let answer = to.sync_push_framed(&key, body).await?;
    let whole = report.count(answer.cases, false);
    // Cases changed on both sides: the receiver keeps the sender's branch once it can check
    // every record of it, so those go again whole, as one more push.
    if !whole.is_empty() {
        let mut cases = Vec::with_capacity(whole.len());
        for id in whole {
            cases.push(from.sync_case_whole(id).await?);
        }
        let body = wire::encode_into(&SyncPushDto { cases }, Vec::new())?;
        let key = format!("pass-{nonce}-{}", hex::encode(sha256(&body)));
        let answer = to.sync_push_framed(&key, body).await?;
        report.count(answer.cases, true);
    }
    report.receiver_secs = began.elapsed().as_secs_f64();
    Ok(report)
}

/// Awaits `f`, adding the seconds it took to `secs`.
async fn timed<T>(secs: &mut f64, f: impl std::future::Future<Output = T>) -> T {
    let began = Instant::now();
    let out = f.await;
    *secs += began.elapsed().as_secs_f64();
    out
}

/// Where an agent's passes between a society's own server and the hub have got: one checkpoint
/// each way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncState {
    /// In the society's own server's sequence: what the hub has been sent.
    pub to_hub: Option<Checkpoint>,
    /// In the hub's sequence: what the society's own server has been sent.
    pub from_hub: Option<Checkpoint>,
}

const STATE_FORMAT: &str = "rfl-sync-state-v1";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedState {
    format: String,
    member_id: MemberId,
    society_id: SocietyId,
    state: SyncState,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    signed: SignedState,
    mac: String,
}

/// A [`SyncState`] kept in a file beside the agent's keystore, authenticated with a key derived
/// from the agent's keys (as the verified-heads file is): a checkpoint moved on by someone else
/// would make the agent skip changes, so an altered file is refused. Written whole and renamed
/// into place, so a crash leaves the old state or the new one, and deleting it is always safe:
/// the next pass starts from the start and sends nothing twice.
pub struct StateFileStore {
    path: PathBuf,
    member: MemberId,
    society: SocietyId,
}

impl StateFileStore {
    /// The state file that belongs to a keystore file.
    pub fn path_for(keystore: &Path) -> PathBuf {
        let mut p = keystore.as_os_str().to_owned();
        p.push(".sync");
        PathBuf::from(p)
    }

    /// The state file at `path` of the agent `session` signs in as.
    pub fn new(path: PathBuf, session: &Session) -> StateFileStore {
        StateFileStore {
            path,
            member: session.member_id(),
            society: session.society_id(),
        }
    }

    /// The state kept, or none yet (no file).
    pub fn load(&self, key: &CaseWrapKey) -> Result<SyncState> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SyncState::default()),
            Err(e) => return Err(e.into()),
        };
        let altered = || {
            ClientError::Tampered(format!(
                "the sync state file {} was altered or belongs to another agent: delete it to \
                 sync from the start (nothing is sent twice)",
                self.path.display()
            ))
        };
        let file: StateFile = serde_json::from_slice(&text).map_err(|_| altered())?;
        let tag = hex::decode(&file.mac).map_err(|_| altered())?;
        if !key.check_local_state_mac(&serde_json::to_vec(&file.signed)?, &tag)
            || file.signed.format != STATE_FORMAT
            || file.signed.member_id != self.member
            || file.signed.society_id != self.society
        {
            return Err(altered());
        }
        Ok(file.signed.state)
    }

    /// Keeps `state`.
    pub fn save(&self, key: &CaseWrapKey, state: &SyncState) -> Result<()> {
        let signed = SignedState {
            format: STATE_FORMAT.to_owned(),
            member_id: self.member,
            society_id: self.society,
            state: *state,
        };
        let mac = key.local_state_mac(&serde_json::to_vec(&signed)?);
        let file = StateFile {
            signed,
            mac: hex::encode(mac),
        };
        write_private(&self.path, &serde_json::to_vec_pretty(&file)?)
    }
}

/// What one round between a society's own server and the hub did.
#[derive(Clone, Debug, Serialize)]
pub struct RoundReport {
    /// The society's trust material the hub took.
    pub trust_to_hub: SyncTrustOutcome,
    /// What the society's own server took of the hub's (certificates the hub's admins issued).
    pub trust_from_hub: SyncTrustOutcome,
    pub to_hub: PassReport,
    pub from_hub: PassReport,
}

/// Which way a pass of a round goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the society's own server to the hub.
    ToHub,
    /// From the hub to the society's own server.
    FromHub,
}

/// One round of the agent: the society's trust material both ways (the hub first: it takes no
/// commit before it), then one pass of changes each way, each checkpoint kept by `keep` as soon
/// as its pass is done. `own` and `hub` are the agent's sessions on the two instances.
pub async fn round(
    own: &Session,
    hub: &Session,
    state: &mut SyncState,
    limit: Option<u32>,
    keep: impl FnMut(&SyncState) -> Result<()>,
) -> Result<RoundReport> {
    round_observed(own, hub, state, limit, keep, &mut |_, _| {}).await
}

/// [`round`], telling `observe` where each pass has got after each page.
pub async fn round_observed(
    own: &Session,
    hub: &Session,
    state: &mut SyncState,
    limit: Option<u32>,
    mut keep: impl FnMut(&SyncState) -> Result<()>,
    observe: &mut (dyn FnMut(Direction, PassProgress) + Send),
) -> Result<RoundReport> {
    if own.society_id() != hub.society_id() {
        return Err(ClientError::Invalid(
            "the two keystores belong to agents of different societies".into(),
        ));
    }
    let trust_to_hub = carry_trust(own.api(), hub.api()).await?;
    let trust_from_hub = carry_trust(hub.api(), own.api()).await?;
    let mut to = |p| observe(Direction::ToHub, p);
    let to_hub = pass_observed(own.api(), hub.api(), state.to_hub, limit, &mut to).await?;
    state.to_hub = to_hub.checkpoint;
    keep(state)?;
    let mut from = |p| observe(Direction::FromHub, p);
    let from_hub = pass_observed(hub.api(), own.api(), state.from_hub, limit, &mut from).await?;
    state.from_hub = from_hub.checkpoint;
    keep(state)?;
    Ok(RoundReport {
        trust_to_hub,
        trust_from_hub,
        to_hub,
        from_hub,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_starts_after_the_earlier_of_the_agent_s_and_the_receiver_s_checkpoints() {
        use ReceiverCheckpoint::{At, Unsupported};
        let (sender, receiver, other) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let at = |seq| Checkpoint {
            instance: sender,
            seq,
            receiver,
        };
        let start = |agent, held| start_from(agent, held, sender, receiver);
        // Both kept: the earlier (a receiver restored from a backup holds less).
        assert_eq!(start(Some(at(9)), At(4)), Some(at(4)));
        assert_eq!(start(Some(at(4)), At(9)), Some(at(4)));
        // The receiver keeps none: everything, whatever the agent was told.
        assert_eq!(start(Some(at(9)), ReceiverCheckpoint::None), None);
        // The agent's state lost: where the receiver says it is.
        assert_eq!(start(None, At(7)), Some(at(7)));
        assert_eq!(start(None, ReceiverCheckpoint::None), None);
        // Another instance's checkpoint: the receiver's if it keeps one; else it goes to the
        // sender as it is, which refuses it.
        let stray = Checkpoint {
            instance: other,
            ..at(3)
        };
        assert_eq!(start(Some(stray), At(7)), Some(at(7)));
        assert_eq!(start(Some(stray), ReceiverCheckpoint::None), Some(stray));
        // A receiver from before checkpoints were kept: the agent's alone.
        assert_eq!(start(Some(at(9)), Unsupported), Some(at(9)));
        assert_eq!(start(None, Unsupported), None);
    }
}
