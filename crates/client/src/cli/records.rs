//! Records added to an existing case: `rfl message add`, `rfl note add`, `rfl attach`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use rfl_client::session::today;
use rfl_client::ClientError;
use rfl_domain::records::PersonRef;
use rfl_domain::{CaseId, Note, RedCrossMessage};

use super::{progress_bar, Context};

#[derive(Subcommand)]
pub enum MessageCmd {
    /// Add a Red Cross Message to a case.
    Add {
        case: CaseId,
        /// "enquirer", or the index of a person in the case.
        #[arg(long, default_value = "enquirer")]
        from: String,
        #[arg(long, default_value = "1")]
        to: String,
        #[arg(long)]
        body: String,
        #[arg(long, default_value = "en")]
        language: String,
    },
}

impl MessageCmd {
    pub async fn exec(&self, ctx: &Context) -> Result<(), ClientError> {
        let MessageCmd::Add {
            case,
            from,
            to,
            body,
            language,
        } = self;
        let s = ctx.open_session().await?;
        let msg = RedCrossMessage {
            from: person_ref(from)?,
            to: person_ref(to)?,
            date: today(),
            language: language.clone(),
            body: body.clone(),
            delivery_status: Default::default(),
        };
        let id = s.add_message(*case, msg).await?;
        ctx.print(&serde_json::json!({"message_id": id}), || {
            format!("message {id} added")
        })
    }
}

#[derive(Subcommand)]
pub enum NoteCmd {
    /// Add a note to a case.
    Add {
        case: CaseId,
        #[arg(long)]
        text: String,
        /// Your initials or role (a label, not an account).
        #[arg(long, default_value = "caseworker")]
        author: String,
    },
}

impl NoteCmd {
    pub async fn exec(&self, ctx: &Context) -> Result<(), ClientError> {
        let NoteCmd::Add { case, text, author } = self;
        let s = ctx.open_session().await?;
        let note = Note {
            author: author.clone(),
            text: text.clone(),
            created: today(),
        };
        let id = s.add_note(*case, note).await?;
        ctx.print(&serde_json::json!({"note_id": id}), || {
            format!("note {id} added")
        })
    }
}

#[derive(Args)]
pub struct AttachArgs {
    case: CaseId,
    file: PathBuf,
    #[arg(long, default_value = "application/octet-stream")]
    media_type: String,
    #[arg(long)]
    description: Option<String>,
}

impl AttachArgs {
    pub async fn exec(&self, ctx: &Context) -> Result<(), ClientError> {
        let s = ctx.open_session().await?;
        let file = &self.file;
        let len = std::fs::metadata(file)?.len();
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "attachment".into());
        let pb = progress_bar(len, "bytes");
        let src = std::io::BufReader::new(std::fs::File::open(file)?);
        let id = s
            .attach(
                self.case,
                src,
                &name,
                &self.media_type,
                self.description.clone(),
                |n| pb.set_position(n),
            )
            .await?;
        pb.finish_and_clear();
        ctx.print(&serde_json::json!({"attachment_id": id}), || {
            format!("attached as {id}")
        })
    }
}

/// `--from`/`--to` of a message: "enquirer", or an index into the case's persons.
fn person_ref(s: &str) -> Result<PersonRef, ClientError> {
    if s == "enquirer" {
        return Ok(PersonRef::Enquirer);
    }
    s.parse::<usize>().map(PersonRef::Index).map_err(|_| {
        ClientError::Invalid("a person is \"enquirer\" or an index in the case's persons".into())
    })
}
