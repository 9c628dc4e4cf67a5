//! `rfl enrol`, `rfl login`, `rfl whoami`: creating this keystore, signing in with it, and who it
//! belongs to.

use std::path::{Path, PathBuf};

use clap::Args;
use rfl_client::keystore::{DeviceKeys, Keystore, Owner};
use rfl_client::{session, ClientError, Site, SoftAuthenticator};
use rfl_crypto::{AgeIdentity, AgeRecipient};

use super::{new_passphrase, owner_of, prepare_age_identity, work_factor_parser, Context};

#[derive(Args)]
pub struct EnrolArgs {
    #[arg(long)]
    server: String,
    #[arg(long)]
    code: String,
    /// The WebAuthn origin the server's relying party expects [default: the server address].
    #[arg(long)]
    origin: Option<String>,
    /// Enrol a machine (a sync agent's code) with an Ed25519 key instead of a passkey.
    #[arg(long)]
    machine: bool,
    /// Your society's root key fingerprint, given to you with the code (not needed by the first
    /// admin, who creates the root with `rfl society init`).
    #[arg(long)]
    root_fingerprint: Option<String>,
    /// The Movement root's fingerprint, given to you with the code: other societies' keys are
    /// trusted only if it certifies their root (also `rfl movement pin` later).
    #[arg(long)]
    movement_fingerprint: Option<String>,
    /// scrypt work factor (N of 2^N, from 14 to 22) protecting the keystore; it also seals the society
    /// root key if you create it (`rfl society init`).
    #[arg(long, default_value_t = 18, value_parser = work_factor_parser())]
    work_factor: u8,
    /// Use an age plugin identity as your age key instead of a generated one, e.g. a YubiKey's
    /// identity file from `age-plugin-yubikey --identity` (with its `# recipient:` line): case keys
    /// are then wrapped to the token and unwrapped on it, by the plugin `age-plugin-<name>`, which
    /// must be on PATH. rfl does not prompt for the plugin: a PIN is taken from
    /// $RFL_AGE_PLUGIN_PIN, and the plugin's messages are shown on stderr.
    #[arg(long, value_name = "FILE")]
    age_identity: Option<PathBuf>,
}

impl EnrolArgs {
    pub async fn exec(&self, ctx: &Context) -> Result<(), ClientError> {
        let path = ctx.keystore_path();
        if path.exists() {
            return Err(ClientError::Keystore(format!(
                "{} exists already",
                path.display()
            )));
        }
        let keys = match &self.age_identity {
            Some(file) => DeviceKeys::generate_with_age(read_age_identity(file)?)?,
            None => DeviceKeys::generate()?,
        };
        let pass = new_passphrase()?;
        let server = &self.server;
        let origin = self
            .origin
            .clone()
            .unwrap_or_else(|| server.trim_end_matches('/').to_owned());
        let (ks, member_id, society_id, role) = if self.machine {
            if keys.age.is_plugin() {
                keys.check_age_identity()?;
            }
            let r = session::enrol(server, &self.code, &keys).await?;
            let owner = Owner {
                server: server.clone(),
                origin,
                member_id: r.member_id,
                society_id: r.society_id,
                role: r.role,
                signing_public_key: keys.signing.public_key(),
                age_recipient: keys.age.recipient().to_string(),
                root_fingerprint: self.root_fingerprint.clone(),
            };
            (
                Keystore::seal(&owner, &keys, &pass, self.work_factor)?,
                r.member_id,
                r.society_id,
                r.role,
            )
        } else {
            let mut authenticator = SoftAuthenticator::new();
            let site = Site::new(server, &origin);
            let s = rfl_client::enrol_person_with_keys(&site, &self.code, &mut authenticator, keys)
                .await?;
            let owner = Owner {
                server: server.clone(),
                origin,
                member_id: s.member_id(),
                society_id: s.society_id(),
                role: s.role(),
                signing_public_key: s.keys().signing.public_key(),
                age_recipient: s.keys().age.recipient().to_string(),
                root_fingerprint: self.root_fingerprint.clone(),
            };
            let state = authenticator
                .to_secret_bytes()
                .map_err(|e| ClientError::Keystore(format!("the authenticator state: {e}")))?;
            (
                Keystore::seal_authenticator(&owner, &state, &pass, self.work_factor)?,
                s.member_id(),
                s.society_id(),
                s.role(),
            )
        };
        let mut ks = ks;
        ks.movement_fingerprint = self.movement_fingerprint.clone();
        ks.save_new(path)?;
        ctx.print(
            &serde_json::json!({"member_id": member_id, "society_id": society_id, "role": role}),
            || {
                format!(
                    "enrolled as {} of society {} (member {})\nkeystore: {}",
                    role.as_str(),
                    society_id,
                    member_id,
                    path.display()
                )
            },
        )
    }
}

/// `rfl login`: signs in and says as whom.
pub async fn login(ctx: &Context) -> Result<(), ClientError> {
    let s = ctx.open_session().await?;
    ctx.print(
        &serde_json::json!({"member_id": s.member_id(), "role": s.role()}),
        || format!("signed in as {} ({})", s.member_id(), s.role().as_str()),
    )
}

/// `rfl whoami`: reads the keystore's public part only (no passphrase, no server).
pub fn whoami(ctx: &Context) -> Result<(), ClientError> {
    let ks = Keystore::load(ctx.keystore_path())?;
    let owner = owner_of(&ks)?;
    let fp = rfl_client::trust::keys_fingerprint(
        &owner.signing_public_key,
        &AgeRecipient::parse(&owner.age_recipient)?,
    );
    ctx.print(
        &serde_json::json!({"server": ks.server, "member_id": ks.member_id, "society_id": ks.society_id,
            "role": ks.role, "keys_fingerprint": fp, "root_fingerprint": ks.root_fingerprint}),
        || {
            format!(
                "member {} ({}) of society {} at {}\nyour keys' fingerprint (read it out to your admin): {fp}",
                ks.member_id,
                ks.role.as_str(),
                ks.society_id,
                ks.server
            )
        },
    )
}

/// Reads an age plugin identity file for `rfl enrol --age-identity`.
fn read_age_identity(path: &Path) -> Result<AgeIdentity, ClientError> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        ClientError::Invalid(format!(
            "cannot read the age identity file {}: {e}",
            path.display()
        ))
    })?);
    let id = AgeIdentity::from_identity_file(&text).map_err(|e| {
        ClientError::Invalid(format!("the age identity file {}: {e}", path.display()))
    })?;
    if !id.is_plugin() {
        return Err(ClientError::Invalid(
            "--age-identity takes an age plugin identity (AGE-PLUGIN-…, a key on a token); rfl \
             generates X25519 keys itself"
                .into(),
        ));
    }
    prepare_age_identity(&id);
    Ok(id)
}
