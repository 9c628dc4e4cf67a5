//! `rfl movement …` (the Movement root) and `rfl transfer …` (cases moving between societies).

use std::path::PathBuf;

use clap::Subcommand;
use rfl_client::keystore::{write_private, Keystore};
use rfl_client::session::rfc3339_utc;
use rfl_client::ClientError;
use rfl_crypto::AgeIdentity;
use rfl_domain::api::TransferDto;
use rfl_domain::{MemberId, SocietyId};
use uuid::Uuid;

use super::society::open_root_key;
use super::{check_new_passphrase, passphrase, Context, MIN_WORK_FACTOR};

#[derive(Subcommand)]
pub enum MovementCmd {
    /// Pin the Movement root's fingerprint (given to you out of band, as your society's root's):
    /// another society's keys are trusted only if the Movement root certifies its root.
    Pin { fingerprint: String },
    /// Create the Movement root (a Movement admin, once): the key is sealed with your keystore's
    /// passphrase into --root-key-out (keep it offline) and its public key set on the server.
    Init {
        #[arg(long, value_name = "FILE")]
        root_key_out: PathBuf,
    },
    /// Set the Movement root made with `movement init` on another server (a Movement admin of
    /// this one, e.g. the hub): its public key is set here and pinned in this keystore. The key
    /// file opens with this keystore's passphrase.
    SetRoot {
        /// The Movement root key file (`rfl movement init --root-key-out`).
        #[arg(long, value_name = "FILE")]
        root_key: PathBuf,
    },
    /// Certify a society's root with the Movement root (Movement admins), after comparing the
    /// fingerprint its admins read out to you.
    CertifySociety {
        society: SocietyId,
        /// The society root's fingerprint, as its admins read it out to you.
        #[arg(long)]
        fingerprint: String,
        /// The Movement root key file (`rfl movement init --root-key-out`).
        #[arg(long, value_name = "FILE")]
        root_key: PathBuf,
    },
}

impl MovementCmd {
    pub async fn exec(&self, ctx: &Context) -> Result<(), ClientError> {
        match self {
            MovementCmd::Pin { fingerprint } => {
                let path = ctx.keystore_path();
                let mut ks = Keystore::load(path)?;
                let fp = fingerprint.trim().to_ascii_lowercase();
                if fp.len() != 32 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(ClientError::Invalid(
                        "a fingerprint is 32 hexadecimal digits".into(),
                    ));
                }
                ks.movement_fingerprint = Some(fp.clone());
                ks.save(path)?;
                ctx.print(&serde_json::json!({"movement_fingerprint": fp}), || {
                    format!("Movement root pinned: {fp}")
                })
            }
            MovementCmd::Init { root_key_out } => {
                if root_key_out.exists() {
                    return Err(ClientError::Invalid(format!(
                        "{} exists already",
                        root_key_out.display()
                    )));
                }
                let pass = passphrase()?;
                check_new_passphrase(&pass)?;
                let mut s = ctx.open_session_with(&pass).await?;
                let path = ctx.keystore_path();
                let mut ks = Keystore::load(path)?;
                let root = rfl_crypto::SocietyRootKey::generate()?;
                // Sealed to disk before the server hears of it: a root whose key is lost is
                // worthless, and it is set once.
                let sealed = rfl_crypto::seal_with_passphrase(
                    root.pkcs8_der(),
                    &pass,
                    ks.work_factor.max(MIN_WORK_FACTOR),
                )?;
                write_private(root_key_out, &sealed)?;
                if let Err(e) = s.set_movement_root(&root).await {
                    let _ = std::fs::remove_file(root_key_out);
                    return Err(e);
                }
                let fp = root.public().fingerprint();
                s.pin_movement(&fp);
                ks.movement_fingerprint = Some(fp.clone());
                ks.save(path)?;
                ctx.print(&serde_json::json!({"movement_fingerprint": fp}), || {
                    format!(
                        "Movement root key written to {} (passphrase-sealed): keep it offline\n\
                         Movement root fingerprint (give it to every member, as their society's): {fp}",
                        root_key_out.display()
                    )
                })
            }
            MovementCmd::SetRoot { root_key } => {
                let pass = passphrase()?;
                let root = open_root_key(root_key, &pass)?;
                let mut s = ctx.open_session_with(&pass).await?;
                s.set_movement_root(&root).await?;
                let fp = root.public().fingerprint();
                s.pin_movement(&fp);
                let path = ctx.keystore_path();
                let mut ks = Keystore::load(path)?;
                ks.movement_fingerprint = Some(fp.clone());
                ks.save(path)?;
                ctx.print(&serde_json::json!({"movement_fingerprint": fp}), || {
                    format!("Movement root set on this server and pinned: {fp}")
                })
            }
            MovementCmd::CertifySociety {
                society,
                fingerprint,
                root_key,
            } => {
                let pass = passphrase()?;
                let root = open_root_key(root_key, &pass)?;
                let s = ctx.open_session_with(&pass).await?;
                let cert = s.certify_society(&root, *society, fingerprint).await?;
                let until = rfc3339_utc(cert.validity().not_after);
                ctx.print(
                    &serde_json::json!({"society": society, "certified_root": cert.society_root().fingerprint(), "valid_until": until}),
                    || format!("the root of society {society} is certified by the Movement root until {until}"),
                )
            }
        }
    }
}

#[derive(Subcommand)]
pub enum TransferCmd {
    /// Transfers from or to your society, newest first.
    List {
        /// Only those still pending.
        #[arg(long)]
        pending: bool,
    },
    /// Accept a case offered to your society and assign it to one of its caseworkers or admins:
    /// the offered keys open with the society's recovery identity, and the case is verified as a
    /// whole before the signed transfer commit moves it.
    Accept {
        id: Uuid,
        #[arg(long)]
        assign: MemberId,
        /// The society's offline recovery identity (`rfl society init --recovery-identity-out`).
        #[arg(long, value_name = "FILE")]
        recovery_identity: PathBuf,
    },
    /// Reject a case offered to your society, or cancel one your society offered.
    Reject { id: Uuid },
}

fn line(t: &TransferDto) -> String {
    format!(
        "{}  case {}  {} -> {}  {}{}{}",
        t.id,
        t.case_id,
        t.from_society,
        t.to_society,
        t.state,
        if t.keep_access {
            "  (sender keeps access)"
        } else {
            ""
        },
        t.assigned_to
            .map(|m| format!("  assigned to {m}"))
            .unwrap_or_default()
    )
}

impl TransferCmd {
    pub async fn exec(&self, ctx: &Context) -> Result<(), ClientError> {
        let s = ctx.open_session().await?;
        match self {
            TransferCmd::List { pending } => {
                let list = s.transfers(*pending).await?;
                ctx.print(&list, || {
                    if list.is_empty() {
                        "no transfers".to_owned()
                    } else {
                        list.iter().map(line).collect::<Vec<_>>().join("\n")
                    }
                })
            }
            TransferCmd::Accept {
                id,
                assign,
                recovery_identity,
            } => {
                let recovery =
                    AgeIdentity::from_identity_file(&std::fs::read_to_string(recovery_identity)?)?;
                let c = s.accept_transfer(*id, *assign, &recovery).await?;
                ctx.print(&c, || {
                    format!(
                        "case {} is now your society's, held by member {assign} (key epoch {})",
                        c.id, c.key_epoch
                    )
                })
            }
            TransferCmd::Reject { id } => {
                let t = s.reject_transfer(*id).await?;
                ctx.print(&t, || format!("transfer {id} {}", t.state))
            }
        }
    }
}
