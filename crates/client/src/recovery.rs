//! Rotating the society recovery key (society admins): the escrow identity, which holds every case
//! key of the society through its escrow batches, is kept wrapped to an offline recovery key. A new
//! recovery key needs one unwrap with the old one (the only operation on the old token) and one wrap
//! to the new: no case, batch or wrapped key changes, however many cases the society has.

use rfl_crypto::{sha256, unwrap_escrow_identity, wrap_escrow_identity, AgeIdentity, AgeRecipient};
use rfl_domain::api::RecoveryRotation;

use crate::session::{tampered, Session};
use crate::{ClientError, Result};

impl Session {
    /// Re-wraps the society escrow identity from the recovery key `old` to `new`. Refused before
    /// anything is sent if `old` does not open the wrapping the server holds, or if what it opens is
    /// not the escrow key the pinned root certifies (the server cannot make the admin re-wrap a key of
    /// its own). With `check`, the new recovery identity (when it was just generated), the new
    /// wrapping is opened with it first.
    pub async fn rotate_recovery(
        &self,
        old: &AgeIdentity,
        new: &AgeRecipient,
        check: Option<&AgeIdentity>,
    ) -> Result<()> {
        let rotation = self.prepare_recovery_rotation(old, new, check).await?;
        self.send_recovery_rotation(&rotation).await
    }

    /// The first half of [`Session::rotate_recovery`]: every check, and the new wrapping, with
    /// nothing sent (a caller that generated the new recovery identity stores it before sending).
    pub async fn prepare_recovery_rotation(
        &self,
        old: &AgeIdentity,
        new: &AgeRecipient,
        check: Option<&AgeIdentity>,
    ) -> Result<RecoveryRotation> {
        let society = *self.society_id().as_uuid();
        // The society's certificates as they are now.
        self.reload_members().await?;
        let certified = self.escrow()?;
        let escrow = self.api().society().await?.escrow.ok_or_else(|| {
            ClientError::Invalid("your society has no escrow key yet (rfl society init)".into())
        })?;
        let identity = unwrap_escrow_identity(&escrow.wrapped_identity.0, society, old.as_age())
            .map_err(|_| {
                ClientError::Invalid(
                    "the recovery identity given does not open the society's escrow key".into(),
                )
            })?;
        if identity.recipient() != *certified.age_recipient() {
            return Err(tampered(
                "the escrow key the server keeps wrapped is not the one your society's root certifies",
            ));
        }
        let wrapped = wrap_escrow_identity(&identity, society, new.as_age())?;
        if let Some(check) = check {
            let back = unwrap_escrow_identity(&wrapped, society, check.as_age())?;
            if back.recipient() != identity.recipient() {
                return Err(ClientError::Invalid(
                    "the new recovery identity does not open the new wrapping".into(),
                ));
            }
        }
        let replaces: String = sha256(&escrow.wrapped_identity.0)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(RecoveryRotation {
            recipient: escrow.recipient,
            replaces_sha256: replaces,
            wrapped_identity: wrapped.into(),
        })
    }

    /// The second half of [`Session::rotate_recovery`]: the server swaps the wrapping if it is still
    /// the one the rotation replaces (409 otherwise).
    pub async fn send_recovery_rotation(&self, rotation: &RecoveryRotation) -> Result<()> {
        self.api()
            .put_no_content("/v1/society/escrow/recovery", rotation)
            .await
    }
}
