//! Taking a society's trust material from another instance (`docs/sync.md`, "Trust across
//! instances"): what a trust bundle adds to what this server holds, stored in one transaction that
//! re-checks what the caller checked it against.

use super::*;
use crate::certs::{upsert_certificates, CertificateDb};
use crate::transfers::replace_movement_certificate;
use crate::{CertificateRow, SocietyEscrow};

/// What a trust bundle adds to a society's trust material on this server. The caller (the API)
/// verified all of it against the Movement root and the roots this server holds, and read `held`
/// to do so: if that changed meanwhile, nothing is stored.
#[derive(Clone, Debug, Default)]
pub struct TrustAdoption {
    /// What the caller read: the root held (none before the first bundle), how many root
    /// successions, and the number of the latest revocation list (0: none).
    pub held: (Option<[u8; 32]>, usize, u64),
    /// The society's current root after the bundle.
    pub root: [u8; 32],
    /// The root successions after the held ones, oldest first.
    pub successions: Vec<Vec<u8>>,
    /// The Movement root's certificates to keep, by the root they certify (each replaces the one
    /// held for that root).
    pub movement_certificates: Vec<([u8; 32], Vec<u8>)>,
    /// Certificates that become their subjects' current ones.
    pub certificates: Vec<CertificateRow>,
    /// Certificates of revoked keys to keep (subject, keys digest, certificate), so that commits
    /// signed before the revocation still verify.
    pub retired: Vec<(Uuid, [u8; 32], Vec<u8>)>,
    /// A revocation list later than the held one: (number, bytes).
    pub list: Option<(u64, Vec<u8>)>,
    /// The society's escrow key, taken if none is held (one held stays, with its wrapping: an
    /// escrow-key or recovery-key rotation is an admin's job, not a bundle's).
    pub escrow: Option<SocietyEscrow>,
}

impl TrustAdoption {
    /// Whether the bundle adds nothing.
    pub fn is_empty(&self) -> bool {
        self.held.0 == Some(self.root)
            && self.successions.is_empty()
            && self.movement_certificates.is_empty()
            && self.certificates.is_empty()
            && self.retired.is_empty()
            && self.list.is_none()
            && self.escrow.is_none()
    }
}

impl Store {
    /// Stores a [`TrustAdoption`] of `society` in one transaction, a conflict (nothing stored) if
    /// the root, the number of successions or the latest revocation list is no longer what the
    /// caller read. A few statements, and one for each certificate that changed.
    pub fn adopt_trust(
        &self,
        society: SocietyId,
        adoption: &TrustAdoption,
        now: Millis,
    ) -> Result<()> {
        let soc = id_bytes(society.as_uuid());
        let (held_root, held_successions, held_list) = adoption.held;
        let held_root = held_root.map(|r| r.to_vec());
        let first_number = i32::try_from(held_successions)
            .map_err(|_| StorageError::Invalid("too many root successions".into()))?;
        let list_number = adoption
            .list
            .as_ref()
            .map(|(n, _)| i64::try_from(*n))
            .transpose()
            .map_err(|_| StorageError::Invalid("revocation list number out of range".into()))?;
        let certs = CertificateDb::rows(&soc, &adoption.certificates);
        let retired: Vec<_> = adoption
            .retired
            .iter()
            .map(|(subject, digest, cert)| {
                (
                    retired_certificates::subject_id.eq(id_bytes(subject)),
                    retired_certificates::keys_digest.eq(digest.to_vec()),
                    retired_certificates::society_id.eq(soc.clone()),
                    retired_certificates::certificate.eq(cert.clone()),
                    retired_certificates::retired_at.eq(now),
                )
            })
            .collect();
        let successions: Vec<_> = adoption
            .successions
            .iter()
            .zip(first_number + 1..)
            .map(|(s, n)| {
                (
                    root_successions::society_id.eq(soc.clone()),
                    root_successions::number.eq(n),
                    root_successions::succession.eq(s.clone()),
                    root_successions::created_at.eq(now),
                )
            })
            .collect();
        let changed =
            "the society's trust material changed while the bundle was checked: send it again";
        write_tx!(self, conn => {
            let root: Option<Vec<u8>> = society_roots::table
                .filter(society_roots::society_id.eq(&soc))
                .select(society_roots::root_public_key)
                .get_result(conn)
                .optional()?;
            let count: i64 = root_successions::table
                .filter(root_successions::society_id.eq(&soc))
                .count()
                .get_result(conn)?;
            let latest: Option<i64> = revocation_lists::table
                .filter(revocation_lists::society_id.eq(&soc))
                .select(diesel::dsl::max(revocation_lists::number))
                .get_result(conn)?;
            if root != held_root
                || usize::try_from(count).ok() != Some(held_successions)
                || u64::try_from(latest.unwrap_or(0)).ok() != Some(held_list)
            {
                return Err(StorageError::Conflict(changed));
            }
            if root.is_none() {
                diesel::insert_into(society_roots::table)
                    .values((
                        society_roots::society_id.eq(&soc),
                        society_roots::root_public_key.eq(adoption.root.as_slice()),
                        society_roots::created_at.eq(now),
                    ))
                    .execute(conn)
                    .map_err(|e| StorageError::from_insert(e, changed))?;
            } else if root.as_deref() != Some(adoption.root.as_slice()) {
                diesel::update(society_roots::table.filter(society_roots::society_id.eq(&soc)))
                    .set(society_roots::root_public_key.eq(adoption.root.as_slice()))
                    .execute(conn)?;
            }
            if !successions.is_empty() {
                diesel::insert_into(root_successions::table)
                    .values(&successions)
                    .execute(conn)
                    .map_err(|e| StorageError::from_insert(e, changed))?;
            }
            for (root, cert) in &adoption.movement_certificates {
                replace_movement_certificate!(conn, &soc, root.as_slice(), cert, now);
            }
            upsert_certificates!(
                conn,
                &soc,
                &certs,
                StorageError::Conflict("a certificate names a subject of another society")
            );
            for row in &retired {
                diesel::insert_into(retired_certificates::table)
                    .values(row.clone())
                    .on_conflict_do_nothing()
                    .execute(conn)?;
            }
            if let Some(e) = &adoption.escrow {
                diesel::update(
                    societies::table
                        .filter(societies::id.eq(&soc))
                        .filter(societies::escrow_recipient.is_null()),
                )
                .set((
                    societies::escrow_recipient.eq(&e.recipient),
                    societies::escrow_wrapped.eq(&e.wrapped_identity),
                ))
                .execute(conn)?;
            }
            if let (Some(number), Some((_, list))) = (list_number, &adoption.list) {
                diesel::insert_into(revocation_lists::table)
                    .values((
                        revocation_lists::society_id.eq(&soc),
                        revocation_lists::number.eq(number),
                        revocation_lists::list.eq(list),
                        revocation_lists::created_at.eq(now),
                    ))
                    .execute(conn)
                    .map_err(|e| StorageError::from_insert(e, changed))?;
            }
            Ok(())
        })
    }
}
