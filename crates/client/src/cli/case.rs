//! `rfl case create|import|list|show|update|status`: tracing cases.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use rfl_client::merge::CaseBase;
use rfl_client::session::{rfc3339_utc, today, MergePlan, Side};
use rfl_client::ClientError;
use rfl_domain::records::{
    CaseHeader, PersonRecord, ProcessingConsent, Relationship, Separation, SeparationEvent,
};
use rfl_domain::{
    CaseFile, CaseId, CaseStatus, Entry, MemberId, NameKind, Person, PersonName, RecordId,
    SocietyId,
};

use super::{parse_enum, progress_bar, Context};

#[derive(Subcommand)]
pub enum CaseCmd {
    /// Create a case from a JSON case file (--file) or from flags.
    Create(CreateArgs),
    /// Import many cases from a JSON Lines file (one case file per line), encrypted in parallel and stored
    /// in batches of one transaction each.
    Import {
        #[arg(long)]
        file: PathBuf,
        #[arg(long, default_value_t = 500)]
        batch_size: usize,
    },
    /// List the cases you hold a key for.
    List {
        #[arg(long)]
        after: Option<CaseId>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Follow every page.
        #[arg(long)]
        all: bool,
    },
    /// Decrypt and show a case. A case in conflict (changed on two instances while they were
    /// apart) is shown with the other version's differences, field by field, both verified.
    Show { case: CaseId },
    /// List the cases you hold that are in conflict: changed on two instances while they were
    /// apart, both versions kept.
    Conflicts,
    /// Resolve a case in conflict with a merge commit that names both versions. Where they
    /// differ, each field is taken from the side --take names, unless a --field says otherwise;
    /// a record in one version only is always kept. `rfl case show CASE` lists the differences.
    Resolve {
        case: CaseId,
        /// Where to take the fields that differ from: `here` (this server's version) or `there`
        /// (the other side's).
        #[arg(long, value_parser = parse_side)]
        take: Side,
        /// The side of one field, as RECORD:FIELD=here|there (repeatable).
        #[arg(long = "field", value_parser = parse_field_choice)]
        fields: Vec<(RecordId, String, Side)>,
        /// The status's side (default: --take's).
        #[arg(long, value_parser = parse_side)]
        status: Option<Side>,
    },
    /// Replace a case's content with a JSON case file (as printed by `case show --json`); changed records
    /// are written as new versions, records without an id are added.
    Update {
        case: CaseId,
        #[arg(long)]
        file: PathBuf,
    },
    /// Move a case along the workflow: tracing, located, family_informed, reunited, closed,
    /// closed_unsuccessful, closed_at_enquirer_request.
    Status { case: CaseId, status: String },
    /// Give another member of your society the case: its key is wrapped to their certified keys
    /// (refused if they are not certified or were revoked) and a signed grant commit records it.
    Grant { case: CaseId, member: MemberId },
    /// Take the case from a member who holds it: a new key epoch starts, its data key wrapped only to
    /// the other holders and the escrow key. The member keeps what they already read; nothing
    /// written from now on opens with any key they had.
    Ungrant { case: CaseId, member: MemberId },
    /// Seal the case's records that are still under an earlier key epoch (after an ungrant or a
    /// revocation) again under the current one. Attachments stay under their epoch's key.
    Reencrypt { case: CaseId },
    /// Who holds the case: members with their roles and since when, and the society escrow key,
    /// checked against the case's signed head commit.
    Holders { case: CaseId },
    /// Offer the case to another national society: its keys are wrapped to that society's escrow
    /// key, refused unless the Movement root you pinned certifies its root. Its admins accept
    /// (`rfl transfer accept`) or reject it. Without --keep-access, your society's holders lose
    /// the case when it is accepted (a new key epoch starts without them).
    Transfer {
        case: CaseId,
        /// The receiving society's id.
        #[arg(long)]
        to: SocietyId,
        /// Your society's holders keep their keys once the case is accepted.
        #[arg(long)]
        keep_access: bool,
    },
}

#[derive(Args)]
pub struct CreateArgs {
    /// A JSON case file (see `rfl case show --json` for the shape: its `content`). Its records get
    /// fresh ids, so a copy of another case becomes a new case; ids may be left out.
    #[arg(long, conflicts_with_all = ["enquirer", "sought"])]
    file: Option<PathBuf>,
    /// tracing_request, unaccompanied_or_separated_child, detainee, missing_after_disaster, deceased_identification
    #[arg(long, default_value = "tracing_request")]
    category: String,
    /// Enquirer as "GIVEN FAMILY".
    #[arg(long)]
    enquirer: Option<String>,
    /// Sought person as "GIVEN FAMILY" (repeat for several).
    #[arg(long)]
    sought: Vec<String>,
    /// Relationship of the sought person(s) to the enquirer: parent, child, sibling, spouse, ...
    #[arg(long, default_value = "sibling")]
    relationship: String,
    /// armed_conflict, migration, disaster, detention, internal_displacement, other
    #[arg(long, default_value = "other")]
    separation: String,
    /// How the separation happened, in a few words. An `other` event must be described: without this
    /// flag its description is "not recorded".
    #[arg(long, value_name = "TEXT")]
    separation_description: Option<String>,
    /// The society's own reference.
    #[arg(long)]
    reference: Option<String>,
    /// How the enquirer's consent to processing was recorded: written, oral_witnessed, oral, electronic,
    /// by_guardian.
    #[arg(long, default_value = "written")]
    consent: String,
}

impl CaseCmd {
    pub async fn exec(&self, ctx: &Context) -> Result<(), ClientError> {
        match self {
            CaseCmd::Create(args) => args.exec(ctx).await,
            CaseCmd::Import { file, batch_size } => import(ctx, file, *batch_size).await,
            CaseCmd::List { after, limit, all } => list(ctx, *after, *limit, *all).await,
            CaseCmd::Show { case } => show(ctx, *case).await,
            CaseCmd::Conflicts => conflicts(ctx).await,
            CaseCmd::Resolve {
                case,
                take,
                fields,
                status,
            } => {
                let s = ctx.open_session().await?;
                let plan = MergePlan {
                    default: *take,
                    fields: fields
                        .iter()
                        .map(|(r, f, side)| ((*r, f.clone()), *side))
                        .collect(),
                    status: status.unwrap_or(*take),
                };
                let r = s.merge_case(*case, &plan).await?;
                ctx.print(&r, || {
                    format!(
                        "case {case} merged at version {} (status {}): {} written, {} taken from \
                         the other version; the merge reaches the other side with the next sync",
                        r.case.version,
                        r.case.status.as_str(),
                        super::counted(r.records_written, "record"),
                        super::counted(r.fields_from_there, "field")
                    )
                })
            }
            CaseCmd::Update { case, file } => update(ctx, *case, file).await,
            CaseCmd::Status { case, status } => set_status(ctx, *case, status).await,
            CaseCmd::Grant { case, member } => {
                let s = ctx.open_session().await?;
                let c = s.grant_case(*case, *member).await?;
                ctx.print(&c, || format!("member {member} now holds case {}", c.id))
            }
            CaseCmd::Transfer {
                case,
                to,
                keep_access,
            } => {
                let s = ctx.open_session().await?;
                let t = s.offer_transfer(*case, *to, *keep_access).await?;
                ctx.print(&t, || {
                    format!(
                        "case {case} offered to society {to} (transfer {}); it moves when that \
                         society's admin accepts it",
                        t.id
                    )
                })
            }
            CaseCmd::Ungrant { case, member } => {
                let s = ctx.open_session().await?;
                let c = s.ungrant_case(*case, *member).await?;
                ctx.print(&c, || {
                    format!(
                        "member {member} no longer holds case {}: it is at key epoch {}, whose key \
                         they never had",
                        c.id, c.key_epoch
                    )
                })
            }
            CaseCmd::Reencrypt { case } => {
                let s = ctx.open_session().await?;
                let c = s.reencrypt_case(*case).await?;
                ctx.print(&c, || match &c {
                    Some(c) => format!(
                        "case {}: every record is now sealed under key epoch {} (attachments stay \
                         under theirs)",
                        c.id, c.key_epoch
                    ),
                    None => format!("case {case}: no record is sealed under an earlier key epoch"),
                })
            }
            CaseCmd::Holders { case } => holders(ctx, *case).await,
        }
    }
}

impl CreateArgs {
    async fn exec(&self, ctx: &Context) -> Result<(), ClientError> {
        let file = case_from_args(self)?;
        let s = ctx.open_session().await?;
        let c = s.create_case(&file).await?;
        ctx.print(&c, || {
            format!("case {} created ({})", c.id, c.status.as_str())
        })
    }
}

async fn holders(ctx: &Context, case: CaseId) -> Result<(), ClientError> {
    let s = ctx.open_session().await?;
    let opened = s.open_case(case).await?;
    let h = s.case_holders(&opened).await?;
    let society = *s.society_id().as_uuid();
    ctx.print(&h, || {
        let mut out = format!(
            "case {} (key epoch {}) is held by:\n{:<38}  {:<14}  {:<22}  {}",
            h.case, h.key_epoch, "holder", "role", "since (UTC)", "keys"
        );
        for x in &h.holders {
            let role = match (x.recipient_id == society, x.role) {
                (true, _) => "escrow key",
                (false, Some(r)) => r.as_str(),
                (false, None) => "-",
            };
            let keys = match (x.revoked, x.certified) {
                (true, _) => "REVOKED",
                (false, true) => "certified",
                (false, false) => "not certified",
            };
            out.push_str(&format!(
                "\n{:<38}  {:<14}  {:<22}  {keys}",
                x.recipient_id.to_string(),
                role,
                rfc3339_utc(x.since.div_euclid(1000)),
            ));
        }
        out
    })
}

async fn import(ctx: &Context, file: &Path, batch_size: usize) -> Result<(), ClientError> {
    let text = std::fs::read_to_string(file)?;
    let mut files = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let f: CaseFile = serde_json::from_str(line)
            .map_err(|e| ClientError::Invalid(format!("line {}: not a case file: {e}", n + 1)))?;
        files.push(f);
    }
    let s = ctx.open_session().await?;
    let pb = progress_bar(files.len() as u64, "cases");
    let r = s
        .import(files, batch_size, |done| pb.set_position(done as u64))
        .await?;
    pb.finish_and_clear();
    ctx.print(
        &serde_json::json!({"imported": r.created, "already_present": r.already_present}),
        || {
            if r.already_present == 0 {
                format!("{} cases imported", r.created)
            } else {
                format!(
                    "{} cases imported; {} were there already (stored by an earlier run)",
                    r.created, r.already_present
                )
            }
        },
    )
}

async fn list(
    ctx: &Context,
    after: Option<CaseId>,
    limit: i64,
    all: bool,
) -> Result<(), ClientError> {
    let s = ctx.open_session().await?;
    let cases = if all {
        s.list_all_cases().await?
    } else {
        s.list_cases(after, limit).await?.cases
    };
    ctx.print(&cases, || {
        let mut out = format!(
            "{:<36}  {:<26}  {:>7}  {:>7}",
            "case", "status", "records", "version"
        );
        for c in &cases {
            out.push_str(&format!(
                "\n{:<36}  {:<26}  {:>7}  {:>7}",
                c.id.to_string(),
                c.status.as_str(),
                c.record_count.unwrap_or(0),
                c.version
            ));
        }
        out
    })
}

fn parse_side(s: &str) -> Result<Side, String> {
    match s {
        "here" => Ok(Side::Here),
        "there" => Ok(Side::There),
        _ => Err("say here (this server's version) or there (the other side's)".into()),
    }
}

fn parse_field_choice(s: &str) -> Result<(RecordId, String, Side), String> {
    let bad = || "write RECORD:FIELD=here|there (as rfl case show lists them)".to_owned();
    let (what, side) = s.rsplit_once('=').ok_or_else(bad)?;
    let (record, field) = what.split_once(':').ok_or_else(bad)?;
    let record: RecordId = record.parse().map_err(|_| bad())?;
    if field.is_empty() {
        return Err(bad());
    }
    Ok((record, field.to_owned(), parse_side(side)?))
}

async fn conflicts(ctx: &Context) -> Result<(), ClientError> {
    let s = ctx.open_session().await?;
    let list = s.conflicts().await?;
    ctx.print(&list, || {
        if list.is_empty() {
            return "no case you hold is in conflict".to_owned();
        }
        let mut out = vec![format!(
            "{} in conflict (both versions kept; `rfl case show CASE` compares them):",
            super::counted(list.len(), "case")
        )];
        for c in &list {
            out.push(format!(
                "  {}  changed on both sides after commit {}: here commit {} ({}), there commit {}",
                c.case.id,
                c.fork_seq,
                c.case.version,
                c.case.status.as_str(),
                c.their_version
            ));
        }
        out.join("\n")
    })
}

async fn show(ctx: &Context, case: CaseId) -> Result<(), ClientError> {
    let s = ctx.open_session().await?;
    let (opened, conflict) = s.open_case_and_conflict(case).await?;
    let differences = match &conflict {
        Some(rfl_client::CaseConflict {
            theirs: Some(theirs),
            ..
        }) => rfl_client::session::differences(&opened, theirs)?,
        Some(_) => Vec::new(),
        None => Vec::new(),
    };
    // `base` names the commit shown: `rfl case update --file` merges against it.
    let mut value =
        serde_json::json!({"case": opened.summary, "content": opened.file, "base": opened.base()?});
    if let Some(c) = &conflict {
        value["conflict"] = serde_json::json!({
            "fork_seq": c.fork_seq,
            "kept_at": c.kept_at,
            "theirs": c.theirs.as_ref().map(|t| serde_json::json!({"case": t.summary, "content": t.file})),
            "differences": differences,
        });
    }
    ctx.print(&value, || {
        let f = &opened.file;
        let mut out = format!(
            "case {}  status {}  version {}\ncategory: {}",
            opened.summary.id,
            opened.summary.status.as_str(),
            opened.summary.version,
            serde_json::to_value(f.header.category)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        );
        for (i, p) in f.persons.iter().enumerate() {
            let names: Vec<String> = p
                .record
                .person
                .names
                .iter()
                .map(|n| format!("{} {}", n.given, n.family).trim().to_owned())
                .collect();
            let role = if p.record.is_enquirer() {
                "enquirer"
            } else {
                "sought"
            };
            out.push_str(&format!("\n  [{i}] {role}: {}", names.join(" / ")));
        }
        out.push_str(&format!(
            "\n{}, {}, {}",
            super::counted(f.messages.len(), "message"),
            super::counted(f.notes.len(), "note"),
            super::counted(f.attachments.len(), "attachment")
        ));
        if let Some(c) = &conflict {
            out.push_str(&conflict_lines(&opened, c, &differences));
        }
        out
    })
}

/// The other version of a case in conflict, and where it differs from this server's, for a person.
fn conflict_lines(
    ours: &rfl_client::OpenedCase,
    c: &rfl_client::CaseConflict,
    differences: &[rfl_client::session::Difference],
) -> String {
    let show = |v: &Option<serde_json::Value>| match v {
        None => "(absent)".to_owned(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    let Some(theirs) = &c.theirs else {
        return format!(
            "\nCONFLICT: changed on two instances while they were apart, after commit {}. Both \
             versions are kept, but the other one was not shared with you there: a caseworker \
             who holds it on both sides can compare and merge them",
            c.fork_seq
        );
    };
    let mut out = format!(
        "\nCONFLICT: changed on two instances while they were apart, after commit {}. Both \
         versions are kept and verified:\n  here:  version {}, status {}\n  there: version {}, \
         status {}",
        c.fork_seq,
        ours.summary.version,
        ours.summary.status.as_str(),
        theirs.summary.version,
        theirs.summary.status.as_str()
    );
    for d in differences {
        let what = match &d.field {
            Some(f) => format!("{} {}:{f}", d.kind, d.record),
            None => format!(
                "{} {} (in one version only: kept by a merge)",
                d.kind, d.record
            ),
        };
        out.push_str(&format!(
            "\n  {what}\n    here:  {}\n    there: {}",
            show(&d.ours),
            show(&d.theirs)
        ));
    }
    if differences.is_empty() && ours.summary.status == theirs.summary.status {
        out.push_str("\n  the records and status are the same in both");
    }
    out.push_str(&format!(
        "\nresolve it with `rfl case resolve {} --take here|there [--field RECORD:FIELD=here|there]`",
        ours.summary.id
    ));
    out
}

/// What `rfl case show --json` prints; `case update --file` reads it back.
#[derive(serde::Deserialize)]
struct ShownCase {
    content: CaseFile,
    base: Option<CaseBase>,
}

async fn update(ctx: &Context, case: CaseId, file: &Path) -> Result<(), ClientError> {
    let shown: ShownCase = serde_json::from_slice(&std::fs::read(file)?).map_err(|e| {
        ClientError::Invalid(format!(
            "{} is not what `rfl case show --json` prints (with `content` and `base`): {e}",
            file.display()
        ))
    })?;
    let base = shown.base.ok_or_else(|| {
        ClientError::Invalid(
            "the file names no base: take it from `rfl case show CASE --json`, so that the \
             update knows what you changed and keeps what others changed since"
                .into(),
        )
    })?;
    let s = ctx.open_session().await?;
    match s.update_from_base(case, &base, &shown.content).await {
        Ok(r) => ctx.print(&r, || {
            format!(
                "case {} updated: {} record(s) written, {} changed by others since kept",
                r.case.id, r.written, r.kept_theirs
            )
        }),
        Err(ClientError::Conflict(conflicts)) => {
            // Both versions, for the person to reconcile; nothing was written.
            super::emit(&serde_json::to_string_pretty(
                &serde_json::json!({ "conflicts": conflicts }),
            )?)?;
            Err(ClientError::Conflict(conflicts))
        }
        Err(e) => Err(e),
    }
}

async fn set_status(ctx: &Context, case: CaseId, status: &str) -> Result<(), ClientError> {
    let to =
        CaseStatus::parse(status).ok_or_else(|| ClientError::Invalid("unknown status".into()))?;
    let s = ctx.open_session().await?;
    let c = s.set_status(case, to).await?;
    ctx.print(&c, || format!("case {} is now {}", c.id, c.status.as_str()))
}

/// The separation description of a case created with `--separation other` (the default) and no
/// `--separation-description`: the domain requires one for `other`.
const SEPARATION_NOT_RECORDED: &str = "not recorded";

/// The case to create: the `--file` with fresh record ids, or one built from the flags.
fn case_from_args(a: &CreateArgs) -> Result<CaseFile, ClientError> {
    if let Some(f) = &a.file {
        let mut file: CaseFile = serde_json::from_slice(&std::fs::read(f)?)?;
        // A new case has new records, whatever ids the file carries (`case update --file` keeps them).
        file.renew_record_ids();
        return Ok(file);
    }
    let enquirer = a.enquirer.as_deref().ok_or_else(|| {
        ClientError::Invalid("give --file, or --enquirer and at least one --sought".into())
    })?;
    if a.sought.is_empty() {
        return Err(ClientError::Invalid(
            "give at least one --sought person".into(),
        ));
    }
    let relationship: Relationship = parse_enum("relationship", &a.relationship)?;
    let event: SeparationEvent = parse_enum("separation event", &a.separation)?;
    let description = match (&a.separation_description, event) {
        (Some(d), _) => Some(d.clone()),
        // `other` must be described; with no flag to say more, the case says so rather than fail.
        (None, SeparationEvent::Other) => Some(SEPARATION_NOT_RECORDED.to_owned()),
        (None, _) => None,
    };
    let mut persons = vec![Entry::new(
        RecordId::new(),
        PersonRecord::enquirer(person_from(enquirer)),
    )];
    for s in &a.sought {
        persons.push(Entry::new(
            RecordId::new(),
            PersonRecord::sought(person_from(s), relationship.clone()),
        ));
    }
    Ok(CaseFile {
        header: CaseHeader {
            category: parse_enum("category", &a.category)?,
            separation: Separation {
                event,
                place: None,
                date: None,
                description,
            },
            vulnerabilities: Vec::new(),
            consent: ProcessingConsent {
                given: true,
                date: Some(today()),
                recorded_how: Some(parse_enum("consent recording", &a.consent)?),
            },
            reference: a.reference.clone(),
        },
        persons,
        messages: Vec::new(),
        notes: Vec::new(),
        attachments: Vec::new(),
    })
}

/// A person from "GIVEN FAMILY": the last word is the family name; a single word is a given name.
fn person_from(name: &str) -> Person {
    let mut parts = name.trim().rsplitn(2, ' ');
    let family = parts.next().unwrap_or_default().to_owned();
    let given = parts.next().unwrap_or_default().to_owned();
    let (given, family) = if given.is_empty() {
        (family, String::new())
    } else {
        (given, family)
    };
    Person::named(vec![PersonName {
        given,
        family,
        other: None,
        script: None,
        kind: NameKind::default(),
    }])
}

#[cfg(test)]
mod resolve_args {
    use super::*;

    #[test]
    fn a_field_choice_names_a_record_a_field_and_a_side() {
        let r = RecordId::new();
        assert_eq!(
            parse_field_choice(&format!("{r}:given=there")).unwrap(),
            (r, "given".to_owned(), Side::There)
        );
        // A field name may hold ':' or '=' only before the last '='.
        assert_eq!(
            parse_field_choice(&format!("{r}:a:b=here")).unwrap(),
            (r, "a:b".to_owned(), Side::Here)
        );
        for bad in [
            format!("{r}:given"),
            format!("{r}=here"),
            format!("{r}:=here"),
            format!("{r}:given=both"),
            "not-a-record:given=here".to_owned(),
        ] {
            assert!(parse_field_choice(&bad).is_err(), "{bad}");
        }
        assert!(parse_side("there").is_ok() && parse_side("mine").is_err());
    }
}
