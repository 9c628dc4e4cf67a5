//! `rfl export`: a case decrypted to files the user names (plaintext: the one command that writes it).

use std::path::PathBuf;

use clap::Args;
use rfl_client::keystore::write_private;
use rfl_client::ClientError;
use rfl_domain::CaseId;

use super::Context;

#[derive(Args)]
pub struct ExportArgs {
    case: CaseId,
    /// Where to write the case as JSON.
    #[arg(long)]
    out: PathBuf,
    /// Also decrypt attachments into this folder.
    #[arg(long)]
    attachments_dir: Option<PathBuf>,
}

impl ExportArgs {
    pub async fn exec(&self, ctx: &Context) -> Result<(), ClientError> {
        let out = &self.out;
        let s = ctx.open_session().await?;
        let opened = s.open_case(self.case).await?;
        write_private(out, &serde_json::to_vec_pretty(&opened.file)?)?;
        let mut files = 0;
        if let Some(dir) = &self.attachments_dir {
            std::fs::create_dir_all(dir)?;
            for a in &opened.file.attachments {
                let target = dir.join(format!("{}-{}", a.id, sanitize(&a.record.file_name)));
                let f = std::fs::File::create(&target)?;
                s.download_attachment(&opened, a.id, std::io::BufWriter::new(f))
                    .await?;
                files += 1;
            }
        }
        ctx.print(
            &serde_json::json!({"out": out, "attachments": files}),
            || {
                format!(
                    "case written to {} ({}); it is plaintext: protect or delete it",
                    out.display(),
                    super::counted(files, "attachment")
                )
            },
        )
    }
}

/// An attachment's file name made safe to use in a folder: letters, digits, `.`, `-` and `_` only (no
/// separators; the caller prefixes the record id).
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
