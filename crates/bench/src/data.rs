//! The benchmark's cases: `rfl_domain::fixtures::synthetic_case`, normalised so that every case has its
//! header, its persons (one enquirer, one or two sought), exactly ONE Red Cross message and exactly ONE
//! note, and no attachment (attachments are added to existing cases, not in a case file).

use rayon::prelude::*;
use rfl_domain::fixtures::synthetic_case;
use rfl_domain::{CaseFile, Date, DeliveryStatus, Entry, PersonRef, RecordId, RedCrossMessage};
use serde::Serialize;

use crate::{BenchResult, Context};

const MESSAGE_BODIES: &[&str] = &[
    "We are all well and staying with your aunt. Please send word through the Red Cross when you can. \
     We think of you every day.",
    "Your brother arrived safely at the reception centre. We are waiting for news of you and the \
     children. Stay strong.",
    "Mother is in hospital but recovering. We have a phone now; the Red Cross office has the number. \
     Please write back.",
];

/// The synthetic case for `seed`, with exactly one message and one note and no attachment.
pub fn bench_case(seed: u64) -> BenchResult<CaseFile> {
    let mut c = synthetic_case(seed);
    c.attachments.clear();
    c.messages.truncate(1);
    if c.messages.is_empty() {
        let date = Date::new(2024, 3, 1 + (seed % 28) as u8).ctx("message date")?;
        let body = MESSAGE_BODIES[(seed % MESSAGE_BODIES.len() as u64) as usize];
        c.messages.push(Entry::new(
            RecordId::new(),
            RedCrossMessage {
                from: PersonRef::Enquirer,
                to: PersonRef::Index(1),
                date,
                language: "en".to_owned(),
                body: body.to_owned(),
                delivery_status: DeliveryStatus::Collected,
            },
        ));
    }
    c.notes.truncate(1);
    if c.notes.len() != 1 {
        return Err(format!(
            "synthetic case {seed} has no note: the fixture changed"
        ));
    }
    Ok(c)
}

/// What the generated data set looks like (plaintext JSON of each record, as both paths store it).
#[derive(Clone, Debug, Default, Serialize)]
pub struct DataShape {
    pub cases: usize,
    pub records: usize,
    pub plaintext_bytes: usize,
}

impl DataShape {
    pub fn records_per_case(&self) -> f64 {
        self.records as f64 / self.cases.max(1) as f64
    }

    pub fn plaintext_bytes_per_case(&self) -> f64 {
        self.plaintext_bytes as f64 / self.cases.max(1) as f64
    }
}

fn json_len<T: Serialize>(v: &T) -> BenchResult<usize> {
    serde_json::to_vec(v).map(|b| b.len()).ctx("serialise")
}

fn case_shape(c: &CaseFile) -> BenchResult<(usize, usize)> {
    let mut bytes = json_len(&c.header)?;
    for e in &c.persons {
        bytes += json_len(&e.record)?;
    }
    for e in &c.messages {
        bytes += json_len(&e.record)?;
    }
    for e in &c.notes {
        bytes += json_len(&e.record)?;
    }
    Ok((
        1 + c.persons.len() + c.messages.len() + c.notes.len(),
        bytes,
    ))
}

/// Generates cases `0..n` in parallel (not timed) and measures their shape.
pub fn generate(n: usize) -> BenchResult<(Vec<CaseFile>, DataShape)> {
    let files: Vec<CaseFile> = (0..n as u64)
        .into_par_iter()
        .map(bench_case)
        .collect::<BenchResult<_>>()?;
    let (records, plaintext_bytes) = files
        .par_iter()
        .map(case_shape)
        .try_reduce(|| (0, 0), |a, b| Ok((a.0 + b.0, a.1 + b.1)))?;
    Ok((
        files,
        DataShape {
            cases: n,
            records,
            plaintext_bytes,
        },
    ))
}

/// A digest of a case's content, independent of the order of its entries and of how its references
/// to persons are written: what a read must give back
/// for the case that was imported (records sorted by id, then SHA-256 of the JSON).
pub fn content_digest(f: &CaseFile) -> BenchResult<[u8; 32]> {
    let mut f = f.clone();
    // References by position are pinned to records when a case is sealed (CaseFile::pin_person_refs).
    f.pin_person_refs();
    f.persons.sort_by_key(|e| e.id);
    f.messages.sort_by_key(|e| e.id);
    f.notes.sort_by_key(|e| e.id);
    f.attachments.sort_by_key(|e| e.id);
    let json = serde_json::to_vec(&f).ctx("serialise a case")?;
    Ok(rfl_crypto::sha256(&json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_has_one_message_one_note_and_validates() {
        let today = rfl_client::session::today();
        for seed in 0..300 {
            let c = bench_case(seed).unwrap();
            assert_eq!(c.messages.len(), 1);
            assert_eq!(c.notes.len(), 1);
            assert!(c.attachments.is_empty());
            c.validate(today).unwrap();
        }
        let (_, shape) = generate(200).unwrap();
        assert!(shape.records_per_case() >= 5.0);
        assert!(shape.plaintext_bytes_per_case() > 1000.0);
    }
}
