//! Part of [`super::Session`]: a case in conflict (`docs/sync.md`, "Conflicts and merges"), both
//! versions verified as a whole and opened, for a caseworker to compare side by side.

use super::*;
use open::check_descends;

/// The other version of a case changed on two instances while they were apart, verified as a
/// whole: it descends from a commit this server's version (the head this client keeps as
/// verified) descends from too.
pub struct CaseConflict {
    /// The number of the last commit both versions share.
    pub fork_seq: u64,
    /// The other side's version, kept by this server beside its own; none when the other side did
    /// not wrap its data key to this member (a caseworker who holds the case there can compare
    /// the versions, and merge them).
    pub theirs: Option<OpenedCase>,
    /// When this server first kept the other version (Unix milliseconds).
    pub kept_at: i64,
}

/// Which version a merge takes a field (or the status) from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// This server's version.
    Here,
    /// The other side's version.
    There,
}

/// What a caseworker chose for a merge: a side for every field where the two versions differ
/// (`fields`, by record and field name), else `default`, and the status's side. A record in one
/// version only is always kept: a merge loses nothing.
#[derive(Clone, Debug)]
pub struct MergePlan {
    pub default: Side,
    pub fields: HashMap<(RecordId, String), Side>,
    pub status: Side,
}

impl MergePlan {
    /// The side chosen for a field.
    fn side(&self, record: RecordId, field: &str) -> Side {
        self.fields
            .get(&(record, field.to_owned()))
            .copied()
            .unwrap_or(self.default)
    }
}

/// A merge commit signed, with the records it writes and the status it states.
#[derive(Clone, Debug)]
pub struct SignedMerge {
    pub commit: Commit,
    pub records: Vec<RecordWriteDto>,
    pub status: CaseStatus,
    /// Fields taken from the other version.
    pub fields_from_there: usize,
}

/// What a merge wrote.
#[derive(Clone, Debug, Serialize)]
pub struct MergeReport {
    pub case: CaseSummaryDto,
    /// Records written: the other version's that this one lacks, and every record the two
    /// versions differ on (brought together field by field).
    pub records_written: usize,
    /// Fields taken from the other version.
    pub fields_from_there: usize,
}

/// Why a member cannot see or merge the other version of a case in conflict.
const NOT_SHARED: &str = "the other version of this case was not shared with you on the other \
                          side: a caseworker who holds it there can compare and merge them";

/// One field where the two versions of a case in conflict differ.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Difference {
    /// The record (`header`, `person`, `message`, `note` or `attachment`) and its id.
    pub kind: &'static str,
    pub record: RecordId,
    /// The field's name; none when the record is in one version only.
    pub field: Option<String>,
    /// The field (or the record) in this server's version, and in the other; none where absent.
    pub ours: Option<serde_json::Value>,
    pub theirs: Option<serde_json::Value>,
}

/// Every record of a case file by id, as JSON objects, with its kind.
fn records_of(c: &OpenedCase) -> Result<HashMap<RecordId, (&'static str, serde_json::Value)>> {
    let f = &c.file;
    let mut out = HashMap::new();
    out.insert(c.header_id, ("header", serde_json::to_value(&f.header)?));
    for p in &f.persons {
        out.insert(p.id, ("person", serde_json::to_value(&p.record)?));
    }
    for m in &f.messages {
        out.insert(m.id, ("message", serde_json::to_value(&m.record)?));
    }
    for n in &f.notes {
        out.insert(n.id, ("note", serde_json::to_value(&n.record)?));
    }
    for a in &f.attachments {
        out.insert(a.id, ("attachment", serde_json::to_value(&a.record)?));
    }
    Ok(out)
}

/// Where `ours` and `theirs` differ, field by field (the top-level fields of each record), in
/// record-id order: records in one version only, and fields of a record whose values differ.
pub fn differences(ours: &OpenedCase, theirs: &OpenedCase) -> Result<Vec<Difference>> {
    let a = records_of(ours)?;
    let b = records_of(theirs)?;
    let mut ids: Vec<RecordId> = a.keys().chain(b.keys()).copied().collect();
    ids.sort_by(|x, y| x.as_uuid().as_bytes().cmp(y.as_uuid().as_bytes()));
    ids.dedup();
    let mut out = Vec::new();
    for id in ids {
        match (a.get(&id), b.get(&id)) {
            (Some((kind, x)), Some((_, y))) if x != y => {
                let (xo, yo) = (x.as_object(), y.as_object());
                let mut fields: Vec<&String> = xo
                    .iter()
                    .flat_map(|o| o.keys())
                    .chain(yo.iter().flat_map(|o| o.keys()))
                    .collect();
                fields.sort();
                fields.dedup();
                for f in fields {
                    let (xv, yv) = (xo.and_then(|o| o.get(f)), yo.and_then(|o| o.get(f)));
                    if xv != yv {
                        out.push(Difference {
                            kind,
                            record: id,
                            field: Some(f.clone()),
                            ours: xv.cloned(),
                            theirs: yv.cloned(),
                        });
                    }
                }
            }
            (Some(_), Some(_)) => {}
            (x, y) => out.push(Difference {
                kind: x.or(y).map_or("record", |(k, _)| *k),
                record: id,
                field: None,
                ours: x.map(|(_, v)| v.clone()),
                theirs: y.map(|(_, v)| v.clone()),
            }),
        }
    }
    Ok(out)
}

impl Session {
    /// Resolves case `id`'s conflict with a merge commit: both versions are opened and verified,
    /// every field where they differ is taken from the side `plan` names, every record of the
    /// other version that this server's lacks is kept, and the records that change are sealed
    /// again under this server's key epoch, each at a version later than both versions' (so
    /// neither side mistakes it for its own). The merge commit names both heads; the server
    /// checks it as the next commit on its head and marks the conflict resolved.
    pub async fn merge_case(&self, id: CaseId, plan: &MergePlan) -> Result<MergeReport> {
        let (ours, conflict) = self.open_case_and_conflict(id).await?;
        let theirs = conflict
            .ok_or_else(|| ClientError::Invalid(format!("case {id} is not in conflict")))?
            .theirs
            .ok_or_else(|| ClientError::Invalid(NOT_SHARED.into()))?;
        let merge = self.sign_merge(&ours, &theirs, plan)?;
        let records_written = merge.records.len();
        let case = self
            .api
            .merge_case(
                id,
                &MergeRequest {
                    records: merge.records,
                    status: merge.status,
                    commit: merge.commit.as_bytes().to_vec().into(),
                },
            )
            .await?;
        self.record_own_commit(id, &merge.commit)?;
        Ok(MergeReport {
            case,
            records_written,
            fields_from_there: merge.fields_from_there,
        })
    }

    /// The merge commit of `ours` and `theirs` (two verified versions of one case) on `ours`'s
    /// head, as [`Session::merge_case`] makes it, and the records it writes; sent nowhere (a
    /// client of `ours`'s server sends it with [`Session::merge_case`]).
    pub fn sign_merge(
        &self,
        ours: &OpenedCase,
        theirs: &OpenedCase,
        plan: &MergePlan,
    ) -> Result<SignedMerge> {
        let a = records_of(ours)?;
        let b = records_of(theirs)?;
        let mut writes = Vec::new();
        let mut fields_from_there = 0;
        let mut ids: Vec<&RecordId> = b.keys().collect();
        ids.sort_by(|x, y| x.as_uuid().as_bytes().cmp(y.as_uuid().as_bytes()));
        for rid in ids {
            let (kind, there) = &b[rid];
            let merged = match a.get(rid) {
                // Only there: kept as the other side wrote it.
                None => there.clone(),
                // The same content at the same version: nothing to write. (At different
                // versions it is written again, later than both.)
                Some((_, here))
                    if here == there && ours.versions.get(rid) == theirs.versions.get(rid) =>
                {
                    continue
                }
                Some((_, here)) => {
                    let (Some(h), Some(t)) = (here.as_object(), there.as_object()) else {
                        return Err(ClientError::Invalid(format!(
                            "record {rid} is not an object in both versions"
                        )));
                    };
                    let mut m = h.clone();
                    for (field, value) in t {
                        if h.get(field) == Some(value) {
                            continue;
                        }
                        if plan.side(*rid, field) == Side::There {
                            m.insert(field.clone(), value.clone());
                            fields_from_there += 1;
                        }
                    }
                    for field in h.keys().filter(|f| !t.contains_key(*f)) {
                        if plan.side(*rid, field) == Side::There {
                            m.remove(field);
                            fields_from_there += 1;
                        }
                    }
                    // Written even when it is this side's content: at a version later than
                    // both, so no side holds a later version of it than the merge states.
                    serde_json::Value::Object(m)
                }
            };
            let later = ours
                .versions
                .get(rid)
                .map_or(0, |(_, v)| *v)
                .max(theirs.versions.get(rid).map_or(0, |(_, v)| *v));
            let kind = record_kind(kind)?;
            typed(kind, &merged)?;
            writes.push(self.seal_record(ours, *rid, kind, later + 1, &merged)?);
        }
        let status = match plan.status {
            Side::Here => ours.status,
            Side::There => theirs.status,
        };
        let entries = ours.entries_after(&writes)?;
        let commit = self.sealer_for_writes().sign_merge(
            ours.next(),
            theirs.head.hash,
            &ours.data_key,
            status,
            &entries,
        )?;
        Ok(SignedMerge {
            commit,
            records: writes,
            status,
            fields_from_there,
        })
    }

    /// The cases this member holds that are in conflict.
    pub async fn conflicts(&self) -> Result<Vec<ConflictSummaryDto>> {
        Ok(self.api.conflicts().await?.conflicts)
    }

    /// Case `id` as [`Session::open_case`] opens it and, if it is in conflict, the other version,
    /// verified as a whole the same way: its head is signed by a certified author, descends from
    /// the commit both versions share (which this server's chain links to the head just
    /// verified), and lists exactly the records served.
    pub async fn open_case_and_conflict(
        &self,
        id: CaseId,
    ) -> Result<(OpenedCase, Option<CaseConflict>)> {
        let ours = self.open_case(id).await?;
        let Some(dto) = self.api.case_conflict(id).await? else {
            return Ok((ours, None));
        };
        // This server's commits from the shared one to the head this client just verified.
        let fork = dto
            .ours
            .first()
            .and_then(|c| parse_commit(&c.0).ok())
            .filter(|c| c.body().seq == dto.fork_seq && c.body().case_id == *id.as_uuid())
            .ok_or_else(|| tampered("the server did not send the commit both versions share"))?;
        let shared = KnownHead {
            seq: dto.fork_seq,
            hash: fork.hash(),
        };
        let last = dto
            .ours
            .last()
            .and_then(|c| parse_commit(&c.0).ok())
            .filter(|c| c.hash() == ours.head.hash)
            .ok_or_else(|| {
                tampered("the commits served from the shared one do not end at this case's head")
            })?;
        if dto.ours.len() < 2 {
            return Err(tampered(
                "a case in conflict must have moved on from the commit both versions share",
            ));
        }
        check_descends(id, Some(shared), &last, &dto.ours[1..dto.ours.len() - 1])?;
        // The other version, verified as a whole against its own signed head, from the shared
        // commit. Its data keys are the ones its side wrapped to this member.
        if dto.theirs.wrapped_key.0.is_empty() {
            let conflict = CaseConflict {
                fork_seq: dto.fork_seq,
                theirs: None,
                kept_at: dto.kept_at,
            };
            return Ok((ours, Some(conflict)));
        }
        let their_head = dto
            .theirs
            .head_commit
            .as_ref()
            .and_then(|c| parse_commit(&c.0).ok())
            .ok_or_else(|| tampered("the other version has no head commit"))?;
        if their_head.body().seq <= dto.fork_seq {
            return Err(tampered(
                "the other version does not go past the shared commit",
            ));
        }
        check_descends(id, Some(shared), &their_head, &dto.theirs.commits)?;
        // A real fork: the other version's first commit after the shared one is not this
        // server's (a host cannot pass an older state of this version off as the other one).
        let their_first = dto
            .theirs
            .commits
            .first()
            .and_then(|c| parse_commit(&c.0).ok())
            .unwrap_or_else(|| their_head.clone());
        let our_first = dto.ours.get(1).and_then(|c| parse_commit(&c.0).ok());
        if our_first.is_some_and(|c| c.hash() == their_first.hash()) {
            return Err(tampered(
                "the other version served is this server's own: the versions do not fork there",
            ));
        }
        let theirs = self.verify_version(id, dto.theirs, None, &|epoch, wrapped| {
            self.unwrap_case_key(id, epoch, wrapped)
        })?;
        let conflict = CaseConflict {
            fork_seq: dto.fork_seq,
            theirs: Some(theirs),
            kept_at: dto.kept_at,
        };
        Ok((ours, Some(conflict)))
    }
}

/// The record kind of a [`records_of`] name.
fn record_kind(name: &str) -> Result<RecordKind> {
    Ok(match name {
        "header" => RecordKind::CaseHeader,
        "person" => RecordKind::Person,
        "message" => RecordKind::Message,
        "note" => RecordKind::Note,
        "attachment" => RecordKind::Attachment,
        other => return Err(ClientError::Invalid(format!("unknown record kind {other}"))),
    })
}

/// Checks that a merged record is still a record of its kind (taking fields from two versions
/// can make one that is not), before it is sealed.
fn typed(kind: RecordKind, value: &serde_json::Value) -> Result<()> {
    let bad = |e: serde_json::Error| {
        ClientError::Invalid(format!(
            "the fields chosen do not make a valid record ({e}): choose the same side for the \
             fields that belong together"
        ))
    };
    let v = value.clone();
    match kind {
        RecordKind::CaseHeader => serde_json::from_value::<CaseHeader>(v).map(drop),
        RecordKind::Person => serde_json::from_value::<PersonRecord>(v).map(drop),
        RecordKind::Message => serde_json::from_value::<RedCrossMessage>(v).map(drop),
        RecordKind::Note => serde_json::from_value::<Note>(v).map(drop),
        RecordKind::Attachment => serde_json::from_value::<AttachmentMeta>(v).map(drop),
    }
    .map_err(bad)
}
