//! The three-way update of a case file (`rfl case update --file`): what the file changed since the
//! commit it was shown at is written, what others changed since is kept, and a record changed on both
//! sides is refused with both versions, nothing written.

use std::collections::HashMap;

use rfl_crypto::CommitHash;
use rfl_domain::api::{CaseSummaryDto, RecordKind};
use rfl_domain::records::Record;
use rfl_domain::{CaseFile, CaseId, Entry, RecordId};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::session::{hex_lower, tampered, today, OpenedCase, Session};
use crate::{ClientError, Result};

/// The base a case file was taken from (`rfl case show --json` prints it beside the content): the
/// head commit shown, and each record's version and a digest of its content as shown, so that an
/// update can tell what the file changed from what others changed since.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseBase {
    /// The head commit's number.
    pub commit: u64,
    /// The head commit's hash (hex).
    pub commit_hash: String,
    /// Each record shown: its version and the SHA-256 (hex) of its content's JSON.
    pub records: std::collections::BTreeMap<RecordId, BaseRecord>,
}

/// One record of a [`CaseBase`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseRecord {
    pub version: u64,
    pub sha256: String,
}

/// A record both the file and someone else changed since the file's base, differently.
#[derive(Clone, Debug, Serialize)]
pub struct MergeConflict {
    pub record: RecordId,
    pub kind: RecordKind,
    /// The record as the file has it.
    pub yours: serde_json::Value,
    /// The record as it is now on the server.
    pub theirs: serde_json::Value,
}

/// What a three-way update did.
#[derive(Debug, Serialize)]
pub struct MergeReport {
    /// The case after the update.
    pub case: CaseSummaryDto,
    /// Records written from the file.
    pub written: usize,
    /// Records someone else changed since the base, which the file left alone: kept as they are.
    pub kept_theirs: usize,
}

fn content_digest<T: Serialize>(value: &T) -> Result<String> {
    let json = Zeroizing::new(serde_json::to_vec(value)?);
    Ok(hex_lower(&rfl_crypto::sha256(&json)))
}

impl OpenedCase {
    /// The base to print beside this case's content.
    pub fn base(&self) -> Result<CaseBase> {
        let mut records = std::collections::BTreeMap::new();
        let mut add = |id: RecordId, digest: String| {
            let version = self.versions.get(&id).map(|(_, v)| *v).unwrap_or(0);
            records.insert(
                id,
                BaseRecord {
                    version,
                    sha256: digest,
                },
            );
        };
        add(self.header_id, content_digest(&self.file.header)?);
        for e in &self.file.persons {
            add(e.id, content_digest(&e.record)?);
        }
        for e in &self.file.messages {
            add(e.id, content_digest(&e.record)?);
        }
        for e in &self.file.notes {
            add(e.id, content_digest(&e.record)?);
        }
        for e in &self.file.attachments {
            add(e.id, content_digest(&e.record)?);
        }
        Ok(CaseBase {
            commit: self.head.seq,
            commit_hash: self.head.hash.to_hex(),
            records,
        })
    }
}

/// How one record of the file merges with the server's current case.
enum Merge {
    /// Leave the server's record (the file did not change it, or changed it the same way).
    Keep,
    /// Write the file's record.
    Take,
    Conflict,
}

fn merge_one<T: Serialize>(
    id: RecordId,
    mine: &T,
    theirs: Option<&T>,
    base: &CaseBase,
    versions: &HashMap<RecordId, (RecordKind, u64)>,
) -> Result<Merge> {
    let mine_json = serde_json::to_vec(mine)?;
    let theirs_json = theirs.map(serde_json::to_vec).transpose()?;
    if theirs_json.as_deref() == Some(mine_json.as_slice()) {
        return Ok(Merge::Keep);
    }
    let Some(b) = base.records.get(&id) else {
        // Not in the base: new in the file (or an id someone else used meanwhile).
        return Ok(if theirs.is_none() {
            Merge::Take
        } else {
            Merge::Conflict
        });
    };
    let current = versions.get(&id).map(|(_, v)| *v);
    let mine_changed = hex_lower(&rfl_crypto::sha256(&mine_json)) != b.sha256;
    let theirs_changed = current != Some(b.version);
    Ok(match (mine_changed, theirs_changed) {
        (false, _) => Merge::Keep,
        (true, false) => Merge::Take,
        (true, true) => Merge::Conflict,
    })
}

fn merge_entries<T: Record + Clone>(
    mine: &[Entry<T>],
    theirs: &mut Vec<Entry<T>>,
    base: &CaseBase,
    versions: &HashMap<RecordId, (RecordKind, u64)>,
    conflicts: &mut Vec<MergeConflict>,
) -> Result<()> {
    for e in mine {
        let pos = theirs.iter().position(|t| t.id == e.id);
        let current = pos.map(|p| &theirs[p].record);
        match merge_one(e.id, &e.record, current, base, versions)? {
            Merge::Keep => {}
            Merge::Take => match pos {
                Some(p) => theirs[p].record = e.record.clone(),
                None => theirs.push(e.clone()),
            },
            Merge::Conflict => conflicts.push(MergeConflict {
                record: e.id,
                kind: T::KIND,
                yours: serde_json::to_value(&e.record)?,
                theirs: current
                    .map(serde_json::to_value)
                    .transpose()?
                    .unwrap_or(serde_json::Value::Null),
            }),
        }
    }
    Ok(())
}

impl Session {
    /// Writes a case file edited from `base` (what `rfl case show --json` printed) as a three-way
    /// merge with the case as it is now: records changed only in the file are written, records
    /// changed only by others since the base are kept, and a record changed on both sides (to
    /// different content) is refused with [`ClientError::Conflict`], naming both versions, with
    /// nothing written. A record of the base missing from the file is refused (records cannot be
    /// deleted). A commit that lands in between is merged again (up to three times).
    pub async fn update_from_base(
        &self,
        id: CaseId,
        base: &CaseBase,
        file: &CaseFile,
    ) -> Result<MergeReport> {
        let base_hash = CommitHash::from_hex(&base.commit_hash)
            .map_err(|_| ClientError::Invalid("the file's base commit hash is malformed".into()))?;
        // References by position are read against the file's own order, as validation reads them.
        let mut file = file.clone();
        file.pin_person_refs();
        let file = &file;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let opened = self.open_case(id).await?;
            if opened.head.seq < base.commit
                || (opened.head.seq == base.commit && opened.head.hash != base_hash)
            {
                return Err(tampered(
                    "the case's history does not contain the commit this file was taken from",
                ));
            }
            let mut listed: std::collections::HashSet<RecordId> =
                std::iter::once(opened.header_id).collect();
            listed.extend(file.persons.iter().map(|e| e.id));
            listed.extend(file.messages.iter().map(|e| e.id));
            listed.extend(file.notes.iter().map(|e| e.id));
            listed.extend(file.attachments.iter().map(|e| e.id));
            if base.records.keys().any(|r| !listed.contains(r)) {
                return Err(ClientError::Invalid(
                    "the file leaves out records of the case: records cannot be deleted".into(),
                ));
            }
            let mut merged = opened.file.clone();
            let mut conflicts = Vec::new();
            match merge_one(
                opened.header_id,
                &file.header,
                Some(&opened.file.header),
                base,
                &opened.versions,
            )? {
                Merge::Keep => {}
                Merge::Take => merged.header = file.header.clone(),
                Merge::Conflict => conflicts.push(MergeConflict {
                    record: opened.header_id,
                    kind: RecordKind::CaseHeader,
                    yours: serde_json::to_value(&file.header)?,
                    theirs: serde_json::to_value(&opened.file.header)?,
                }),
            }
            let v = &opened.versions;
            merge_entries(&file.persons, &mut merged.persons, base, v, &mut conflicts)?;
            merge_entries(
                &file.messages,
                &mut merged.messages,
                base,
                v,
                &mut conflicts,
            )?;
            merge_entries(&file.notes, &mut merged.notes, base, v, &mut conflicts)?;
            merge_entries(
                &file.attachments,
                &mut merged.attachments,
                base,
                v,
                &mut conflicts,
            )?;
            if !conflicts.is_empty() {
                return Err(ClientError::Conflict(conflicts));
            }
            merged.validate(today())?;
            merged.pin_person_refs();
            let writes = self.changed_records(&opened, &merged)?;
            let kept_theirs = base
                .records
                .iter()
                .filter(|(r, b)| v.get(r).is_some_and(|(_, cur)| *cur != b.version))
                .count();
            if writes.is_empty() {
                return Ok(MergeReport {
                    case: opened.summary,
                    written: 0,
                    kept_theirs,
                });
            }
            let written = writes.len();
            match self.commit_writes(&opened, writes).await {
                Ok(case) => {
                    return Ok(MergeReport {
                        case,
                        written,
                        kept_theirs,
                    })
                }
                // Someone committed in between: merge again against the new head.
                Err(e) if e.status() == Some(409) && attempts < 3 => continue,
                Err(e) => return Err(e),
            }
        }
    }
}
