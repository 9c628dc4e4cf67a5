//! `rfl society rotate-root`: replace the society's signing root (docs/crypto.md, "Rotating the
//! society root").

use std::path::PathBuf;

use clap::Args;
use rfl_client::keystore::{write_private, Keystore};
use rfl_client::ClientError;

use super::society::open_root_key;
use super::{passphrase, Context, MIN_WORK_FACTOR};

#[derive(Args)]
pub struct RotateRootArgs {
    /// The current society root key file (written by `rfl society init` or an earlier rotation,
    /// sealed with this keystore's passphrase).
    #[arg(long, value_name = "FILE")]
    root_key: PathBuf,
    /// Where to write the new root key (sealed with this keystore's passphrase). Must not exist.
    #[arg(long, value_name = "FILE")]
    new_root_key_out: PathBuf,
}

impl RotateRootArgs {
    pub async fn exec(&self, ctx: &Context) -> Result<(), ClientError> {
        if self.new_root_key_out.exists() {
            return Err(ClientError::Invalid(format!(
                "{} exists: name a new file for the new root key",
                self.new_root_key_out.display()
            )));
        }
        let pass = passphrase()?;
        let old = open_root_key(&self.root_key, &pass)?;
        let s = ctx.open_session_with(&pass).await?;
        let ks = Keystore::load(ctx.keystore_path())?;
        let work_factor = ks.work_factor.max(MIN_WORK_FACTOR);
        let out = &self.new_root_key_out;
        let new = s
            .rotate_root(&old, |new| {
                // Written before the server hears of the new root.
                let sealed = rfl_crypto::seal_with_passphrase(new.pkcs8_der(), &pass, work_factor)?;
                write_private(out, &sealed)?;
                Ok(())
            })
            .await
            .inspect_err(|_| {
                if out.exists() {
                    eprintln!(
                        "rfl: the new root key is in {}: if the error above came before the \
                         server took the rotation, delete the file and run the command again; \
                         otherwise keep it, it is the society's root",
                        out.display()
                    );
                }
            })?;
        let fp = new.public().fingerprint();
        ctx.print(
            &serde_json::json!({"root_fingerprint": fp, "previous_root_fingerprint": old.public().fingerprint()}),
            || {
                format!(
                    "society root rotated: the old root signed the new one, which certifies every \
                     admin and the escrow key again.\n\
                     new root key written to {} (passphrase-sealed): keep it offline, and destroy \
                     the old one ({})\n\
                     new root fingerprint (give it to members who enrol from now on; those who \
                     pinned the old one follow the succession): {fp}",
                    self.new_root_key_out.display(),
                    self.root_key.display()
                )
            },
        )
    }
}
