//! `POST /v1/sync/changes` (`docs/sync.md`, "Push"): another server's commits of this society's
//! cases, verified on arrival as a client verifies what it reads, then stored where they continue
//! this server's head. Nothing is overwritten: a run written on a head this server has moved past is
//! reported as a conflict, one with a gap before it as missing its parent, and one that fails
//! verification as refused, and the other cases of the batch go on.

use std::collections::{BTreeMap, HashMap};

use actix_web::{post, web, HttpRequest, HttpResponse};
use rayon::prelude::*;
use rfl_crypto::{
    holders_digest, parse_envelope_header, roots_from_pin, sha256, CommitHash, CommitRun, Holder,
    KeyCertificate, Landing, RevocationList, RootPublicKey, RootSuccession, Trust,
};
use rfl_domain::api::{SyncCaseDto, SyncOutcome, SyncOutcomeDto, SyncPushDto, SyncPushResponse};
use rfl_domain::{CaseId, CaseStatus, MemberId, SocietyId};
use rfl_storage::{
    AdoptedMerge, Branch, CaseKeyRow, CaseState, CommitWrite, IncomingBranch, IncomingRun,
    PushAnswer, RecordRow, SocietyTrust, StorageError, Store,
};

use crate::error::{ApiError, Problem};
use crate::framing::{self, BodyFraming};
use crate::roles::{Authorized, SyncAgents};
use crate::{blocking, State};

/// The header that names a push, so that sending it again gets the same answer.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Another server's commits of this society's cases (sync agents only), with an `Idempotency-Key`
/// header: the same key and body sent again within a day get the same answer, and nothing is
/// written twice in any case (a commit held already is `known`). Each case's run of commits is
/// verified on arrival: one chain of the case, each commit signed by an author whose keys the
/// society's root certifies (and had not revoked at the commit's date), the head listing exactly
/// the records and naming exactly the holders of the case after it. A run that continues this
/// server's head is stored in one transaction per case; one written on a head this server has
/// moved past is a `conflict` and is not stored; one whose parent this server lacks, or that fails
/// verification, is `refused` with the reason. The rest of the batch goes on.
#[utoipa::path(tag = "sync", security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, description = "Names the push (1 to 200 visible ASCII characters)")),
    request_body(description = "The cases, as JSON or in the binary framing of the same type \
        (`application/x-postcard`)", content((SyncPushDto = "application/json"), (Vec<u8> = "application/x-postcard"))),
    responses(
        (status = 200, body = SyncPushResponse), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 413, body = Problem),
        (status = 422, description = "the key was used for another body, or this server holds no \
            root for the society", body = Problem)))]
#[post("/sync/changes")]
pub(super) async fn push_changes(
    state: State,
    req: HttpRequest,
    Authorized(caller, _): Authorized<SyncAgents>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let framing = BodyFraming::of(&req)?;
    let limits = state.config.limits.clone();
    let body = framing::read_body(&req, payload, limits.batch_body_bytes).await?;
    let now = state.now();
    let store = state.store.clone();
    let society = caller.society_id;
    let answer = blocking(move || {
        let digest = sha256(&body).to_vec();
        if let Some(kept) = store.push_answer(society, &key, now)? {
            if kept.request_digest != digest {
                return Err(ApiError::Unprocessable(
                    "this Idempotency-Key names another push: use a new key for a new batch".into(),
                ));
            }
            return Ok(kept.answer);
        }
        let batch: SyncPushDto = framing.decode(&body)?;
        if batch.cases.len() > limits.batch_max_cases {
            return Err(ApiError::PayloadTooLarge(limits.batch_max_cases));
        }
        let result = apply_push(&store, society, batch, now)?;
        // Ids and counts only: what another server sent, and what became of it.
        let count = |o: SyncOutcome| result.cases.iter().filter(|c| c.outcome == o).count();
        tracing::info!(
            society = %society,
            applied = count(SyncOutcome::Applied),
            known = count(SyncOutcome::Known),
            conflict = count(SyncOutcome::Conflict),
            refused = count(SyncOutcome::Refused),
            "sync push"
        );
        let answer = serde_json::to_vec(&result)
            .map_err(|e| ApiError::Internal(format!("could not encode an answer: {e}")))?;
        store.put_push_answer(
            society,
            &key,
            &PushAnswer {
                request_digest: digest,
                answer: answer.clone(),
            },
            now,
        )?;
        Ok(answer)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(answer))
}

/// Stores the other side's merge of a case in conflict (rare: one transaction each).
fn adopt(
    store: &Store,
    merge: &AdoptedMerge,
    known: u64,
    now: i64,
) -> Result<SyncOutcomeDto, ApiError> {
    let at = merge.commits.first().map(|c| c.seq);
    Ok(match store.adopt_merge(merge, now) {
        Ok(_) => outcome(
            merge.case,
            SyncOutcome::Applied,
            known,
            merge.commits.len() as u64,
            None,
            None,
        ),
        Err(StorageError::Conflict(m)) => outcome(
            merge.case,
            SyncOutcome::Refused,
            known,
            0,
            at,
            Some(m.into()),
        ),
        Err(e) => return Err(e.into()),
    })
}

fn idempotency_key(req: &HttpRequest) -> Result<String, ApiError> {
    req.headers()
        .get(IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|k| (1..=200).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "name the push with an {IDEMPOTENCY_KEY} header (1 to 200 visible ASCII characters), \
                 so that sending it again changes nothing"
            ))
        })
}

/// Checks and stores each case of a push; one case's refusal is reported and the rest go on.
fn apply_push(
    store: &Store,
    society: SocietyId,
    batch: SyncPushDto,
    now: i64,
) -> Result<SyncPushResponse, ApiError> {
    let trust = society_trust(store.society_certificates(society)?, society, now)?;
    let ids: Vec<_> = batch.cases.iter().map(|c| c.case.id).collect();
    let held = store.case_states(&ids)?;
    // With their records and keys: a merge from the other side is checked against them.
    let held_branches = store.case_branches(&ids, true)?;
    // Every case checked first; then the runs to store, all in one transaction, and the branches
    // of cases in conflict in another.
    let mut out: Vec<Option<SyncOutcomeDto>> = Vec::with_capacity(batch.cases.len());
    let mut places: Vec<(usize, u64)> = Vec::new();
    let mut runs: Vec<IncomingRun> = Vec::new();
    let mut branch_places: Vec<(usize, u64)> = Vec::new();
    let mut branches: Vec<IncomingBranch> = Vec::new();
    // The checks are signature verifications and digests, case by case: on every core.
    let checked: Vec<Checked> = batch
        .cases
        .par_iter()
        .map(|case| {
            let id = case.case.id;
            check_case(case, held.get(&id), held_branches.get(&id), &trust, society)
        })
        .collect();
    for (i, checked) in checked.into_iter().enumerate() {
        match checked {
            Checked::Done(o) => out.push(Some(o)),
            Checked::Apply(run, known) => {
                out.push(None);
                places.push((i, known));
                runs.push(run);
            }
            Checked::Branch(branch, known) => {
                out.push(None);
                branch_places.push((i, known));
                branches.push(branch);
            }
            Checked::Adopt(merge, known) => out.push(Some(adopt(store, &merge, known, now)?)),
        }
    }
    let kept = store.store_branches(&branches, now)?;
    for (((i, known), branch), result) in branch_places.into_iter().zip(branches).zip(kept) {
        let at = branch.fork_seq + 1;
        out[i] = Some(match result {
            Ok(()) => outcome(
                branch.case,
                SyncOutcome::Conflict,
                known,
                branch.commits.len() as u64,
                Some(at),
                Some(KEPT.into()),
            ),
            Err(StorageError::Conflict(m)) => outcome(
                branch.case,
                SyncOutcome::Refused,
                known,
                0,
                Some(at),
                Some(m.into()),
            ),
            Err(e) => return Err(e.into()),
        });
    }
    let stored = store.apply_runs(&runs, now)?;
    for (((i, known), run), result) in places.into_iter().zip(runs).zip(stored) {
        let id = run.case;
        out[i] = Some(match result {
            Ok(_) => outcome(
                id,
                SyncOutcome::Applied,
                known,
                run.commits.len() as u64,
                None,
                None,
            ),
            // The case changed here between the check and the write (or the run does not fit
            // what is stored): it is checked again when it is sent again.
            Err(StorageError::Conflict(m)) => outcome(
                id,
                SyncOutcome::Refused,
                known,
                0,
                run.commits.first().map(|c| c.seq),
                Some(m.to_owned()),
            ),
            Err(StorageError::Invalid(m)) => outcome(
                id,
                SyncOutcome::Refused,
                known,
                0,
                run.commits.first().map(|c| c.seq),
                Some(m),
            ),
            Err(e) => return Err(e.into()),
        });
    }
    let out: Vec<SyncOutcomeDto> = out.into_iter().flatten().collect();
    Ok(SyncPushResponse { cases: out })
}

pub(super) fn outcome(
    case_id: CaseId,
    outcome: SyncOutcome,
    known: u64,
    applied: u64,
    at: Option<u64>,
    reason: Option<String>,
) -> SyncOutcomeDto {
    SyncOutcomeDto {
        case_id,
        outcome,
        known,
        applied,
        at,
        reason,
    }
}

/// The keys the society's roots certify, as this server holds its trust material: the root it was
/// given, the successions from it to the current one, every certificate and the revocation list.
fn society_trust(t: SocietyTrust, society: SocietyId, now_ms: i64) -> Result<Trust, ApiError> {
    let root = t.root.ok_or_else(|| {
        ApiError::Unprocessable(
            "this server holds no root for the society, so no commit of it can be verified".into(),
        )
    })?;
    let current = RootPublicKey::from_bytes(root);
    let stored = |what: &str| ApiError::Internal(format!("a stored {what} does not parse"));
    let successions = t
        .successions
        .iter()
        .map(|b| RootSuccession::from_bytes(b))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| stored("root succession"))?;
    // The first root this server was given, and the successions each root signed from it.
    let first = successions.first().map_or(current, |s| s.old_root());
    let roots = roots_from_pin(
        &first.fingerprint(),
        *society.as_uuid(),
        &current,
        &successions,
    )
    .map_err(|_| stored("chain of root successions"))?;
    let certs = t
        .certificates
        .iter()
        .map(|r| r.certificate.as_slice())
        .chain(t.retired.iter().map(Vec::as_slice))
        .filter_map(|b| KeyCertificate::from_bytes(b).ok())
        .collect();
    let list = t
        .revocations
        .as_deref()
        .map(RevocationList::from_bytes)
        .transpose()
        .map_err(|_| stored("revocation list"))?;
    Trust::verify(
        &roots,
        *society.as_uuid(),
        certs,
        list,
        None,
        now_ms.div_euclid(1000),
    )
    .map_err(|e| ApiError::Internal(format!("the society's stored trust material: {e}")))
}

/// What a conflict's outcome says when the sender's branch is kept.
pub(super) const KEPT: &str =
    "the case was changed on both sides since they last met: both versions are kept \
                    and the case is marked as in conflict until a caseworker merges them";

/// What checking one case of a push decided.
pub(super) enum Checked {
    /// Nothing to store: known, a conflict held already, or refused.
    Done(SyncOutcomeDto),
    /// Store this run; the sender's first `known` commits were held already.
    Apply(IncomingRun, u64),
    /// Keep this branch beside this server's chain of the case: a conflict.
    Branch(IncomingBranch, u64),
    /// The other side merged the conflict: its version becomes this server's chain.
    Adopt(AdoptedMerge, u64),
}

/// Checks one case's run against what this server holds of it (`held`) and the society's trust.
fn check_case(
    case: &SyncCaseDto,
    held: Option<&CaseState>,
    branch: Option<&Branch>,
    trust: &Trust,
    society: SocietyId,
) -> Checked {
    let id = case.case.id;
    let refuse = |known: u64, at: Option<u64>, reason: String| {
        Checked::Done(outcome(
            id,
            SyncOutcome::Refused,
            known,
            0,
            at,
            Some(reason),
        ))
    };
    if case.case.society_id != society || held.is_some_and(|h| h.row.society_id != society) {
        return refuse(
            0,
            None,
            "the case is not of your society on this server".into(),
        );
    }
    let bytes: Vec<&[u8]> = case.commits.iter().map(|c| c.0.as_slice()).collect();
    let run = match CommitRun::parse(*id.as_uuid(), &bytes) {
        Ok(run) => run,
        Err(e) => return refuse(0, None, e.to_string()),
    };
    // A merge of this server's head, made on the other side: its version becomes this one's.
    if let Some(h) = held {
        if let Some(checked) = super::merge::adopt(case, h, branch, &run, trust) {
            return checked;
        }
    }
    // This server's chain of the case, by number.
    let hashes: HashMap<u64, [u8; 32]> = held
        .map(|h| h.commits.iter().map(|(n, b)| (*n, sha256(b))).collect())
        .unwrap_or_default();
    let head = held.and_then(|h| {
        let v = h.row.version;
        hashes.get(&v).map(|hash| (v, CommitHash(*hash)))
    });
    let landing = run.land(head, |n| hashes.get(&n).map(|h| CommitHash(*h)));
    let (known, fresh) = match landing {
        Landing::Known => {
            let n = run.commits().len() as u64;
            return Checked::Done(outcome(id, SyncOutcome::Known, n, 0, None, None));
        }
        // The other side's version, kept here (or merged here), went on: it is checked again
        // whole, to extend the kept version or to start a new conflict.
        Landing::MissingParent { known, seq } if !case.whole && branch.is_some() => {
            return Checked::Done(outcome(
                id,
                SyncOutcome::NeedsWhole,
                known as u64,
                0,
                Some(seq),
                Some(
                    "the case's other version went on since this server kept it: send it whole"
                        .into(),
                ),
            ));
        }
        Landing::MissingParent { known, seq } => {
            return refuse(
                known as u64,
                Some(seq),
                "missing parent: this server does not hold the commit it builds on; send the \
                 case from an earlier commit"
                    .into(),
            )
        }
        Landing::Forks { known, at } => (known, Some(at)),
        Landing::Extends { known } => (known, None),
    };
    // Every commit this server does not hold is verified, a conflicting one too: a forged
    // commit is refused, not reported as a conflict.
    for c in &run.commits()[known..] {
        let b = c.body();
        let keys = trust.author_keys(b.author, b.created_at);
        if keys.is_empty() {
            return refuse(
                known as u64,
                Some(b.seq),
                "its author's keys are not certified by the society's root, or were revoked \
                 before it was signed"
                    .into(),
            );
        }
        if !keys.iter().any(|k| c.clone().verify_by(k).is_ok()) {
            return refuse(
                known as u64,
                Some(b.seq),
                "its signature does not verify under its author's certified keys".into(),
            );
        }
    }
    if let Some(at) = fresh {
        return super::fork::fork(case, branch, &run, known, at, trust);
    }
    match run_to_store(case, held, &run, known, trust) {
        Ok(mut r) => {
            // A merge (made on a client of the other side's version, elsewhere) naming the kept
            // branch's head resolves this server's conflict too.
            r.resolves = branch
                .filter(|b| b.merged_at.is_none())
                .map(|b| b.head_hash.clone())
                .filter(|h| {
                    run.commits()[known..].iter().any(|c| {
                        c.second_parent()
                            .is_some_and(|p| p.0.as_slice() == h.as_slice())
                    })
                });
            Checked::Apply(r, known as u64)
        }
        Err(reason) => refuse(known as u64, Some(run.last().body().seq), reason),
    }
}

/// The run to store after its first `known` commits, once its head is checked against the records
/// and keys the case has after it.
pub(super) fn run_to_store(
    case: &SyncCaseDto,
    held: Option<&CaseState>,
    run: &CommitRun,
    known: usize,
    trust: &Trust,
) -> Result<IncomingRun, String> {
    let head = run.last();
    let hb = head.body();
    // Each record sent once, in range, and what its envelope says it is.
    let mut ids = std::collections::HashSet::new();
    for r in &case.records {
        if !ids.insert(r.id) {
            return Err(format!("record {} is sent twice", r.id));
        }
        if i64::try_from(r.version).is_err() || i32::try_from(r.key_epoch).is_err() {
            return Err(format!(
                "record {}: its version or key epoch is out of range",
                r.id
            ));
        }
    }
    for r in &case.records {
        let h = parse_envelope_header(&r.envelope.0)
            .map_err(|e| format!("record {}: malformed envelope: {e}", r.id))?;
        if h.aad.case_id != *case.case.id.as_uuid()
            || h.aad.record_id != *r.id.as_uuid()
            || i16::from(h.aad.kind.as_u8()) != r.kind.code()
            || h.aad.version != r.version
            || h.aad.key_epoch != r.key_epoch
        {
            return Err(format!(
                "record {}: its envelope says another case, record, kind, version or key epoch",
                r.id
            ));
        }
    }
    // The records after the run: those held, each replaced by a later version sent.
    let mut records: BTreeMap<[u8; 16], (u64, &[u8])> = held
        .map(|h| {
            h.records
                .iter()
                .map(|r| {
                    (
                        *r.id.as_uuid().as_bytes(),
                        (r.version, r.envelope.as_slice()),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    // Only the records sent that are newer than held are stored: exactly those checked here.
    let mut newer: Vec<&rfl_domain::api::RecordDto> = Vec::new();
    for r in &case.records {
        let e = records
            .entry(*r.id.as_uuid().as_bytes())
            .or_insert((0, &[]));
        if r.version > e.0 {
            *e = (r.version, r.envelope.0.as_slice());
            newer.push(r);
        }
    }
    let envelopes: Vec<&[u8]> = records.values().map(|(_, e)| *e).collect();
    head.check_records(&envelopes)
        .map_err(|e| format!("the records do not match the head commit: {e}"))?;
    // The wrapped keys sent: each (recipient, epoch) once, of an epoch the case has reached, with
    // a keys digest of 32 bytes if any. Those held stay as they are; only the others are stored,
    // and the holders are checked over exactly what will be held.
    let society = *case.case.society_id.as_uuid();
    let held_keys: &[CaseKeyRow] = held.map(|h| h.keys.as_slice()).unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    let mut sent: Vec<CaseKeyRow> = Vec::new();
    for k in case.keys.iter().map(key_row) {
        if !seen.insert((k.recipient_id, k.key_epoch)) {
            return Err("a wrapped key is sent twice for one recipient and epoch".into());
        }
        if k.key_epoch == 0 || k.key_epoch > hb.key_epoch || i32::try_from(k.escrow_gen).is_err() {
            return Err("a wrapped key of an epoch the case has not reached".into());
        }
        if k.keys_digest.as_ref().is_some_and(|d| d.len() != 32) {
            return Err("a wrapped key's keys digest is not 32 bytes".into());
        }
        let is_held = held_keys
            .iter()
            .any(|h| h.recipient_id == k.recipient_id && h.key_epoch == k.key_epoch);
        if !is_held {
            sent.push(k);
        }
    }
    // The holders of the head's key epoch (the society's escrow key is not listed), each by the
    // keys its wrapping names, or else by the member's certified keys.
    let mut holders: HashMap<uuid::Uuid, [u8; 32]> = HashMap::new();
    for k in held_keys
        .iter()
        .chain(&sent)
        .filter(|k| k.key_epoch == hb.key_epoch && k.recipient_id != society)
    {
        let digest = match &k.keys_digest {
            Some(d) => <[u8; 32]>::try_from(d.as_slice()).ok(),
            None => trust.get(k.recipient_id).map(|v| v.keys_digest()),
        }
        .ok_or("a holder's keys are not known: neither the wrapping nor a certificate says")?;
        holders.insert(k.recipient_id, digest);
    }
    let listed: Vec<Holder> = holders
        .into_iter()
        .map(|(member_id, keys_digest)| Holder {
            member_id,
            keys_digest,
        })
        .collect();
    if holders_digest(&listed).map_err(|e| e.to_string())? != hb.holders {
        return Err("the wrapped keys sent do not name the holders the head commit names".into());
    }
    let first = run.commits()[0].body();
    let commits = run.commits()[known..]
        .iter()
        .map(|c| {
            Ok(CommitWrite {
                seq: c.body().seq,
                hash: c.hash().0.to_vec(),
                body: c.as_bytes().to_vec(),
                status: CaseStatus::from_code(c.body().status)
                    .ok_or("a commit states an unknown status")?,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(IncomingRun {
        case: case.case.id,
        society: case.case.society_id,
        on: held.map(|h| (h.row.version, h.row.head_hash.clone().unwrap_or_default())),
        commits,
        key_epoch: hb.key_epoch,
        created_by: held.map_or(MemberId::from_uuid(first.author), |h| h.row.created_by),
        created_at: held.map_or(first.created_at, |h| h.row.created_at),
        records: newer
            .into_iter()
            .map(|r| RecordRow {
                id: r.id,
                kind: r.kind.code(),
                version: r.version,
                key_epoch: r.key_epoch,
                author_id: r.author_id,
                envelope: r.envelope.0.clone(),
                seq: 0,
                created_at: r.created_at,
                updated_at: r.updated_at,
            })
            .collect(),
        keys: sent,
        resolves: None,
    })
}

fn key_row(k: &rfl_domain::api::SyncKeyDto) -> CaseKeyRow {
    CaseKeyRow {
        recipient_id: k.recipient_id,
        key_epoch: k.key_epoch,
        escrow_gen: k.escrow_gen,
        wrapped: k.wrapped.0.clone(),
        keys_digest: k.keys_digest.as_ref().map(|d| d.0.clone()),
        created_at: k.created_at,
    }
}
