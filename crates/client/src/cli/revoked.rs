//! `rfl society revoked-holders`: members another society revoked who still hold cases of this one
//! (shared by a transfer that kept the sender's access), and, with `--rekey`, their cases here
//! re-keyed without them.

use clap::Args;
use rfl_client::session::ForeignHolder;
use rfl_client::ClientError;

use super::member::{fail_on_skipped, left_out_and_skipped};
use super::Context;

#[derive(Args)]
pub struct RevokedHoldersArgs {
    /// Re-key the cases they hold here (those whose revocation verified on their society's
    /// signed list): each gets a new key epoch without them. Without it, only list them.
    #[arg(long)]
    rekey: bool,
}

fn holder_line(h: &ForeignHolder) -> String {
    let state = match &h.unverified {
        None => "revoked by their society (signed list verified)".to_owned(),
        Some(why) => format!("suspended, but NOT taken as revoked: {why}"),
    };
    format!(
        "member {} of society {}: holds {} of yours; {state}",
        h.member,
        h.society,
        super::counted(usize::try_from(h.cases).unwrap_or(usize::MAX), "case"),
    )
}

impl RevokedHoldersArgs {
    pub async fn exec(&self, ctx: &Context) -> Result<(), ClientError> {
        let s = ctx.open_session().await?;
        if !self.rekey {
            let listed = s.suspended_foreign_holders().await?;
            return ctx.print(&listed, || {
                if listed.is_empty() {
                    return "no member of another society who is suspended there holds a case \
                            of yours"
                        .to_owned();
                }
                let mut out: Vec<String> = listed.iter().map(holder_line).collect();
                if listed.iter().any(|h| h.unverified.is_none()) {
                    out.push(
                        "run `rfl society revoked-holders --rekey` to re-key their cases without \
                         them"
                            .to_owned(),
                    );
                }
                out.join("\n")
            });
        }
        let pb = super::counter("cases re-keyed");
        let done = s
            .rekey_revoked_holders(|_, n| pb.set_position(n as u64))
            .await;
        pb.finish_and_clear();
        let done = done.inspect_err(|_| {
            eprintln!("re-keying stopped: run the same command again to finish it");
        })?;
        ctx.print(&done, || {
            let mut out = Vec::new();
            for r in &done.rekeyed {
                let (h, k) = (&r.holder, &r.rekey);
                out.push(format!(
                    "member {} of society {} (revoked there): {} of yours re-keyed without them{}",
                    h.member,
                    h.society,
                    super::counted(k.rekeyed, "case"),
                    left_out_and_skipped(k)
                ));
            }
            for h in &done.unverified {
                out.push(format!("{}: left as they are", holder_line(h)));
            }
            if out.is_empty() {
                out.push(
                    "no member of another society who is suspended there holds a case of yours"
                        .to_owned(),
                );
            }
            out.join("\n")
        })?;
        for r in &done.rekeyed {
            fail_on_skipped(
                &r.rekey,
                "a revoked member of another society holds were not re-keyed",
            )?;
        }
        Ok(())
    }
}
