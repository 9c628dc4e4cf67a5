//! The plaintext baseline: the same cases, the same API path (POST /v1/cases/batch, same batch size, same
//! JSON shapes), with no cryptography.
//!
//! Each record becomes a byte string laid out exactly like a sealed envelope (docs/crypto.md): magic
//! "RFLE", version 2, kind, key epoch, case id, record id, version, a zero 12-byte nonce, ct_len, then
//! the record's PLAINTEXT JSON where the ciphertext would be and 16 zero bytes where the tag would be.
//! Sizes therefore match real envelopes byte for byte. The wrapped data keys are pseudo-random bytes
//! of the same length as real wrapped keys. The server checks envelope headers and verifies each
//! case's commit, so the baseline signs a real commit over its records (with a zero key commitment:
//! there is no data key) — the one piece of cryptography it keeps, because the server path needs it.
//!
//! This lives in the benchmark crate only: production crates never build an unencrypted envelope.

use std::sync::Arc;

use rayon::prelude::*;
use rfl_client::http::Api;
use rfl_client::DeviceKeys;
use rfl_crypto::{state_digest, CommitBody, CommitHash, CommitOp, StateEntry};
use rfl_domain::api::{
    BatchRequest, CaseDto, NewCaseDto, RecordKind, RecordWriteDto, WrappedKeyDto,
};
use rfl_domain::{
    CaseFile, CaseHeader, CaseId, CaseStatus, Date, Entry, Note, PersonRecord, RecordId,
    RedCrossMessage,
};
use serde::Serialize;
use uuid::Uuid;

use crate::{BenchResult, Context, SplitMix64};

/// Bytes before the "ciphertext": magic 4, version 1, kind 1, epoch 4, case 16, record 16, version 8,
/// nonce 12, ct_len 4.
pub const HEADER_LEN: usize = 66;
pub const TAG_LEN: usize = 16;

/// What the baseline builder needs to know about the caller.
#[derive(Clone)]
pub struct BaselineCtx {
    pub member_id: Uuid,
    pub society_id: Uuid,
    /// The caseworker's keys: the server verifies each case's commit under its signing key.
    pub keys: Arc<DeviceKeys>,
    /// Length of a real wrapped data key to the caseworker and to the escrow key.
    pub member_wrapped_len: usize,
    pub escrow_wrapped_len: usize,
    /// The society escrow key (age recipient) the requests name (`Rfl-Escrow-Key`).
    pub escrow_recipient: String,
    /// The holders digest of a case the caseworker alone holds (the server checks it).
    pub holders: [u8; 32],
}

/// An envelope-shaped byte string carrying `plaintext` unencrypted, with zero nonce and tag.
pub fn fake_envelope(
    kind: RecordKind,
    epoch: u32,
    case: &Uuid,
    record: &Uuid,
    version: u64,
    plaintext: &[u8],
) -> BenchResult<Vec<u8>> {
    let ct_len = u32::try_from(plaintext.len() + TAG_LEN).ctx("record too large")?;
    let kind = u8::try_from(kind.code()).ctx("record kind")?;
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(b"RFLE");
    out.push(rfl_crypto::ENVELOPE_VERSION);
    out.push(kind);
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(case.as_bytes());
    out.extend_from_slice(record.as_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&[0u8; 12]);
    out.extend_from_slice(&ct_len.to_be_bytes());
    out.extend_from_slice(plaintext);
    out.extend_from_slice(&[0u8; TAG_LEN]);
    Ok(out)
}

/// The plaintext JSON carried by a fake envelope (checked against its ct_len).
pub fn fake_envelope_plaintext(envelope: &[u8]) -> BenchResult<&[u8]> {
    let len_bytes: [u8; 4] = envelope
        .get(62..66)
        .and_then(|b| b.try_into().ok())
        .ok_or("baseline envelope too short")?;
    let ct_len = u32::from_be_bytes(len_bytes) as usize;
    if ct_len < TAG_LEN || envelope.len() != HEADER_LEN + ct_len {
        return Err("baseline envelope has the wrong length".into());
    }
    envelope
        .get(HEADER_LEN..HEADER_LEN + ct_len - TAG_LEN)
        .ok_or_else(|| "baseline envelope too short".into())
}

fn record<T: Serialize>(
    case: CaseId,
    id: RecordId,
    kind: RecordKind,
    value: &T,
) -> BenchResult<RecordWriteDto> {
    let plaintext = serde_json::to_vec(value).ctx("serialise a record")?;
    let envelope = fake_envelope(kind, 1, case.as_uuid(), id.as_uuid(), 1, &plaintext)?;
    Ok(RecordWriteDto {
        id,
        kind,
        version: 1,
        envelope: envelope.into(),
    })
}

/// The baseline counterpart of `Sealer::seal_new_case`: validates the case, then builds the same
/// `NewCaseDto` shape without encrypting, signing or wrapping anything.
pub fn build_new_case(
    ctx: &BaselineCtx,
    file: &CaseFile,
    case: CaseId,
    today: Date,
) -> BenchResult<NewCaseDto> {
    file.validate(today).ctx("validate a case")?;
    // As the sealer does: references by position are pinned to records.
    let file = file.with_pinned_refs();
    let file = &*file;
    let mut rng = SplitMix64(case.as_uuid().as_u64_pair().1);
    let mut member_key = vec![0u8; ctx.member_wrapped_len];
    rng.fill(&mut member_key);
    let mut escrow_key = vec![0u8; ctx.escrow_wrapped_len];
    rng.fill(&mut escrow_key);
    let keys = vec![
        WrappedKeyDto {
            recipient_id: ctx.member_id,
            wrapped: member_key.into(),
        },
        WrappedKeyDto {
            recipient_id: ctx.society_id,
            wrapped: escrow_key.into(),
        },
    ];
    let mut records =
        Vec::with_capacity(1 + file.persons.len() + file.messages.len() + file.notes.len());
    records.push(record(
        case,
        RecordId::new(),
        RecordKind::CaseHeader,
        &file.header,
    )?);
    for e in &file.persons {
        records.push(record(case, e.id, RecordKind::Person, &e.record)?);
    }
    for e in &file.messages {
        records.push(record(case, e.id, RecordKind::Message, &e.record)?);
    }
    for e in &file.notes {
        records.push(record(case, e.id, RecordKind::Note, &e.record)?);
    }
    let entries = records
        .iter()
        .map(|r| {
            StateEntry::of_envelope(&r.envelope.0).map_err(|e| format!("baseline envelope: {e}"))
        })
        .collect::<BenchResult<Vec<_>>>()?;
    let commit = CommitBody {
        op: CommitOp::Create,
        case_id: *case.as_uuid(),
        seq: 1,
        parent: CommitHash::ZERO,
        key_epoch: 1,
        key_commitment: [0; 32],
        status: CaseStatus::Open.code(),
        author: ctx.member_id,
        created_at: 0,
        state: state_digest(&entries).ctx("state digest")?,
        holders: ctx.holders,
    }
    .sign(&ctx.keys.signing)
    .ctx("sign a commit")?;
    Ok(NewCaseDto {
        id: case,
        key_epoch: 1,
        keys,
        records,
        commit: commit.as_bytes().to_vec().into(),
    })
}

/// The baseline counterpart of `Session::import`: the same pipeline (cases built in parallel on all
/// cores with rayon while the previous batch uploads; one POST /v1/cases/batch per batch), over the
/// same [`rfl_client::session::import_plan`].
pub async fn import(
    api: &Api,
    ctx: BaselineCtx,
    plan: Vec<(CaseId, CaseFile)>,
    batch_size: usize,
    progress: impl Fn(usize),
) -> BenchResult<usize> {
    let batch_size = batch_size.max(1);
    let escrow = ctx.escrow_recipient.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<rfl_client::Result<(usize, Vec<u8>)>>(2);
    let producer = tokio::task::spawn_blocking(move || {
        let today = rfl_client::session::today();
        // As `Session::import`: each file is dropped on the core that built it.
        let mut rest = plan.into_iter();
        loop {
            let chunk: Vec<(CaseId, CaseFile)> = rest.by_ref().take(batch_size).collect();
            if chunk.is_empty() {
                return;
            }
            let built: BenchResult<Vec<NewCaseDto>> = chunk
                .into_par_iter()
                .map(|(id, f)| build_new_case(&ctx, &f, id, today))
                .collect();
            let body = built
                .and_then(|cases| {
                    let n = cases.len();
                    BatchRequest { cases }
                        .to_wire()
                        .map(|b| (n, b))
                        .ctx("serialise a batch")
                })
                .map_err(rfl_client::ClientError::Invalid);
            let failed = body.is_err();
            if tx.blocking_send(body).is_err() || failed {
                return;
            }
        }
    });
    // The same upload as the encrypted import (two requests in flight).
    let report = rfl_client::session::upload_batches(api, &escrow, rx, progress)
        .await
        .ctx("POST /v1/cases/batch (baseline)")?;
    producer.await.ctx("baseline builder task")?;
    Ok(report.created + report.already_present)
}

fn decode<T: serde::de::DeserializeOwned>(envelope: &[u8]) -> BenchResult<T> {
    serde_json::from_slice(fake_envelope_plaintext(envelope)?).ctx("parse a baseline record")
}

/// The baseline counterpart of `Session::decrypt_case`: the same typed parsing into a `CaseFile`, no
/// key unwrapping, no signature checks, no decryption.
pub fn parse_case(id: CaseId, dto: CaseDto) -> BenchResult<CaseFile> {
    if dto.case.id != id {
        return Err("the server answered with another case".into());
    }
    let mut header: Option<CaseHeader> = None;
    let mut file_persons = Vec::new();
    let mut messages = Vec::new();
    let mut notes = Vec::new();
    for r in dto.records {
        let env = &r.envelope.0;
        match r.kind {
            RecordKind::CaseHeader => {
                if header.replace(decode(env)?).is_some() {
                    return Err("the case has two headers".into());
                }
            }
            RecordKind::Person => file_persons.push(Entry::new(r.id, decode::<PersonRecord>(env)?)),
            RecordKind::Message => messages.push(Entry::new(r.id, decode::<RedCrossMessage>(env)?)),
            RecordKind::Note => notes.push(Entry::new(r.id, decode::<Note>(env)?)),
            RecordKind::Attachment => return Err("unexpected attachment record".into()),
        }
    }
    Ok(CaseFile {
        header: header.ok_or("the case has no header")?,
        persons: file_persons,
        messages,
        notes,
        attachments: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_envelopes_have_the_real_layout_and_size() {
        let case = Uuid::now_v7();
        let rec = Uuid::now_v7();
        let pt = br#"{"a":1}"#;
        let env = fake_envelope(RecordKind::Note, 1, &case, &rec, 1, pt).unwrap();
        assert_eq!(env.len(), rfl_crypto::ENVELOPE_OVERHEAD + pt.len());
        let h = rfl_crypto::parse_envelope_header(&env).unwrap();
        assert_eq!(h.aad.case_id, case);
        assert_eq!(h.aad.record_id, rec);
        assert_eq!(h.aad.kind, rfl_crypto::RecordKind::Note);
        assert_eq!(h.aad.version, 1);
        assert_eq!(h.aad.key_epoch, 1);
        assert_eq!(fake_envelope_plaintext(&env).unwrap(), pt);
        // A real sealed envelope of the same plaintext has the same length.
        let key = rfl_crypto::DataKey::generate().unwrap();
        let aad = rfl_crypto::RecordAad {
            case_id: case,
            record_id: rec,
            kind: rfl_crypto::RecordKind::Note,
            version: 1,
            key_epoch: 1,
        };
        let real = rfl_crypto::seal_record(&key, &aad, pt).unwrap();
        assert_eq!(real.len(), env.len());
    }
}
