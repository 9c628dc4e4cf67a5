//! Certified public keys: each society's signing root public key and the current key certificate of
//! each subject (member, or the society for its escrow key). Certificates are opaque bytes here; the
//! API checks their structure and clients verify their signatures against the root they pinned.

use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use rfl_domain::SocietyId;
use uuid::Uuid;

use super::{id_bytes, uuid_from, Millis, Pools, Result, StorageError, Store};
use crate::schema::{
    key_certificates, retired_certificates, revocation_lists, root_successions,
    society_certificates, society_roots,
};

/// A key certificate as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateRow {
    /// The member id, or the society id for the escrow certificate.
    pub subject_id: Uuid,
    pub certificate: Vec<u8>,
    pub issued_at: Millis,
}

#[derive(Queryable, Selectable, Insertable, AsChangeset, Debug, Clone)]
#[diesel(table_name = key_certificates)]
pub(crate) struct CertificateDb {
    pub(crate) subject_id: Vec<u8>,
    pub(crate) society_id: Vec<u8>,
    pub(crate) certificate: Vec<u8>,
    pub(crate) issued_at: i64,
}

impl CertificateDb {
    /// The rows of `certificates` of the society whose id's bytes are `soc`.
    pub(crate) fn rows(soc: &[u8], certificates: &[CertificateRow]) -> Vec<CertificateDb> {
        certificates
            .iter()
            .map(|c| CertificateDb {
                subject_id: id_bytes(&c.subject_id),
                society_id: soc.to_vec(),
                certificate: c.certificate.clone(),
                issued_at: c.issued_at,
            })
            .collect()
    }
}

/// The society's latest revocation list on `$conn` (either backend; in a `read!` body), or `None`.
macro_rules! latest_list {
    ($conn:ident, $soc:expr) => {{
        let latest: Option<i64> = revocation_lists::table
            .filter(revocation_lists::society_id.eq($soc))
            .select(diesel::dsl::max(revocation_lists::number))
            .get_result($conn)?;
        match latest {
            Some(n) => Some(
                revocation_lists::table
                    .find(($soc, n))
                    .select(revocation_lists::list)
                    .get_result::<Vec<u8>>($conn)?,
            ),
            None => None,
        }
    }};
}

/// Inserts `$list` as the society's revocation list number `$number` on `$conn` (in a write
/// transaction): a conflict unless it is one more than the latest stored (the first is 1).
macro_rules! insert_next_list {
    ($conn:ident, $soc:expr, $number:expr, $list:expr, $now:expr) => {{
        let latest: Option<i64> = revocation_lists::table
            .filter(revocation_lists::society_id.eq($soc))
            .select(diesel::dsl::max(revocation_lists::number))
            .get_result($conn)?;
        if latest.unwrap_or(0) + 1 != $number {
            return Err(StorageError::Conflict(
                "the revocation list is not the next one: reload it and sign again",
            ));
        }
        diesel::insert_into(revocation_lists::table)
            .values((
                revocation_lists::society_id.eq($soc),
                revocation_lists::number.eq($number),
                revocation_lists::list.eq($list),
                revocation_lists::created_at.eq($now),
            ))
            .execute($conn)
            .map_err(|e| {
                StorageError::from_insert(
                    e,
                    "the revocation list is not the next one: reload it and sign again",
                )
            })?;
    }};
}
pub(crate) use insert_next_list;

/// Stores the certificates `$rows` (`CertificateDb`s of the society `$soc`) on `$conn`, each
/// replacing its subject's current one, one statement each (SQLite takes no multi-row upsert of a
/// slice); `$foreign` if a subject id is one of another society's (one query for all: the upserts
/// only replace rows of this one).
macro_rules! upsert_certificates {
    ($conn:ident, $soc:expr, $rows:expr, $foreign:expr) => {{
        let subjects: Vec<&Vec<u8>> = $rows.iter().map(|r| &r.subject_id).collect();
        let foreign: i64 = key_certificates::table
            .filter(key_certificates::subject_id.eq_any(&subjects))
            .filter(key_certificates::society_id.ne($soc))
            .count()
            .get_result($conn)?;
        if foreign > 0 {
            return Err($foreign);
        }
        for row in $rows {
            diesel::insert_into(key_certificates::table)
                .values(row)
                .on_conflict(key_certificates::subject_id)
                .do_update()
                .set((
                    key_certificates::certificate
                        .eq(diesel::upsert::excluded(key_certificates::certificate)),
                    key_certificates::issued_at
                        .eq(diesel::upsert::excluded(key_certificates::issued_at)),
                ))
                .execute($conn)?;
        }
    }};
}
pub(crate) use upsert_certificates;

impl Store {
    /// Stores certificates of `society`'s subjects, replacing a subject's earlier one, in one
    /// transaction. With `root`, also sets the society's root public key, which is set once: a different
    /// root later is a conflict (and nothing is stored).
    pub fn put_certificates(
        &self,
        society: SocietyId,
        root: Option<&[u8; 32]>,
        certificates: &[CertificateRow],
        now: Millis,
    ) -> Result<()> {
        let soc = id_bytes(society.as_uuid());
        let rows = CertificateDb::rows(&soc, certificates);
        let root = root.map(|r| r.to_vec());
        write_tx!(self, conn => {
            if let Some(root) = &root {
                let existing: Option<Vec<u8>> = society_roots::table
                    .filter(society_roots::society_id.eq(&soc))
                    .select(society_roots::root_public_key)
                    .get_result(conn)
                    .optional()?;
                match existing {
                    Some(e) if &e != root => {
                        return Err(StorageError::Conflict("the society root key is already set"));
                    }
                    Some(_) => {}
                    None => {
                        diesel::insert_into(society_roots::table)
                            .values((
                                society_roots::society_id.eq(&soc),
                                society_roots::root_public_key.eq(root),
                                society_roots::created_at.eq(now),
                            ))
                            .execute(conn)?;
                    }
                }
            }
            upsert_certificates!(conn, &soc, &rows, StorageError::NotFound);
            Ok(())
        })
    }

    /// Replaces the society's signing root, in one transaction: the root must still be
    /// `rotation.old_root` (else a conflict, nothing stored); the succession is kept after the
    /// earlier ones; the new root becomes the society's; the certificates the new root issued
    /// replace the subjects' current ones; the revocation list (signed by the new root) is stored,
    /// a conflict unless it is the next. A conflict too while an escrow-key rotation runs (its
    /// certificate is the old root's). The API checks the succession, the certificates and the
    /// list before.
    pub fn rotate_society_root(
        &self,
        society: SocietyId,
        rotation: &RootRotation,
        now: Millis,
    ) -> Result<()> {
        let soc = id_bytes(society.as_uuid());
        let number = i64::try_from(rotation.list_number)
            .map_err(|_| StorageError::Invalid("revocation list number out of range".into()))?;
        write_tx!(self, conn => {
            let current: Option<Vec<u8>> = society_roots::table
                .filter(society_roots::society_id.eq(&soc))
                .select(society_roots::root_public_key)
                .get_result(conn)
                .optional()?;
            if current.as_deref() != Some(rotation.old_root.as_slice()) {
                return Err(StorageError::Conflict(
                    "the society root is not the one this rotation replaces: reload and try again",
                ));
            }
            // A running escrow-key rotation carries a certificate of the old root: finish it first.
            let running: i64 = crate::schema::escrow_rotations::table
                .filter(crate::schema::escrow_rotations::society_id.eq(&soc))
                .filter(crate::schema::escrow_rotations::completed_at.is_null())
                .count()
                .get_result(conn)?;
            if running > 0 {
                return Err(StorageError::Conflict(
                    "an escrow-key rotation is running: finish it (run it again) before rotating the root",
                ));
            }
            let done: i64 = root_successions::table
                .filter(root_successions::society_id.eq(&soc))
                .count()
                .get_result(conn)?;
            let next = i32::try_from(done + 1)
                .map_err(|_| StorageError::Invalid("too many root successions".into()))?;
            diesel::insert_into(root_successions::table)
                .values((
                    root_successions::society_id.eq(&soc),
                    root_successions::number.eq(next),
                    root_successions::succession.eq(&rotation.succession),
                    root_successions::created_at.eq(now),
                ))
                .execute(conn)?;
            diesel::update(society_roots::table.filter(society_roots::society_id.eq(&soc)))
                .set(society_roots::root_public_key.eq(rotation.new_root.as_slice()))
                .execute(conn)?;
            for c in &rotation.certificates {
                let n = diesel::update(
                    key_certificates::table
                        .filter(key_certificates::subject_id.eq(id_bytes(&c.subject_id)))
                        .filter(key_certificates::society_id.eq(&soc)),
                )
                .set((
                    key_certificates::certificate.eq(&c.certificate),
                    key_certificates::issued_at.eq(c.issued_at),
                ))
                .execute(conn)?;
                if n != 1 {
                    return Err(StorageError::Conflict(
                        "a certificate of the rotation replaces none: reload and try again",
                    ));
                }
            }
            insert_next_list!(conn, &soc, number, &rotation.list, now);
            Ok(())
        })
    }

    /// Stores the society's next revocation list: `number` must be one more than the latest stored
    /// (the first is 1), else a conflict and nothing is stored (two admins publishing at once: one
    /// wins, the other reloads and signs again). The API checks the list itself before.
    pub fn add_revocation_list(
        &self,
        society: SocietyId,
        number: u64,
        list: &[u8],
        now: Millis,
    ) -> Result<()> {
        let soc = id_bytes(society.as_uuid());
        let number = i64::try_from(number)
            .map_err(|_| StorageError::Invalid("revocation list number out of range".into()))?;
        let list = list.to_vec();
        write_tx!(self, conn => {
            insert_next_list!(conn, &soc, number, &list, now);
            Ok(())
        })
    }

    /// The society's latest revocation list, if it has one.
    pub fn latest_revocation_list(&self, society: SocietyId) -> Result<Option<Vec<u8>>> {
        let soc = id_bytes(society.as_uuid());
        Ok(read!(self, conn => { latest_list!(conn, &soc) }))
    }

    /// The society's root public key (if set), every current certificate of its subjects and its
    /// latest revocation list, in one read transaction.
    pub fn society_certificates(&self, society: SocietyId) -> Result<SocietyTrust> {
        let soc = id_bytes(society.as_uuid());
        type Read = (
            Option<Vec<u8>>,
            Vec<CertificateDb>,
            Vec<Vec<u8>>,
            Option<Vec<u8>>,
            Vec<Vec<u8>>,
            Vec<Vec<u8>>,
        );
        let (root, rows, retired, revocations, successions, movement_certificates): Read = read!(self, conn => {
            conn.transaction::<_, diesel::result::Error, _>(|conn| {
                let root = society_roots::table
                    .filter(society_roots::society_id.eq(&soc))
                    .select(society_roots::root_public_key)
                    .get_result(conn)
                    .optional()?;
                let rows = key_certificates::table
                    .filter(key_certificates::society_id.eq(&soc))
                    .order(key_certificates::subject_id)
                    .select(CertificateDb::as_select())
                    .load(conn)?;
                let retired = retired_certificates::table
                    .filter(retired_certificates::society_id.eq(&soc))
                    .order((retired_certificates::subject_id, retired_certificates::retired_at))
                    .select(retired_certificates::certificate)
                    .load(conn)?;
                let revocations = latest_list!(conn, &soc);
                let successions = root_successions::table
                    .filter(root_successions::society_id.eq(&soc))
                    .order(root_successions::number)
                    .select(root_successions::succession)
                    .load(conn)?;
                let movement = society_certificates::table
                    .filter(society_certificates::society_id.eq(&soc))
                    .order(society_certificates::created_at)
                    .select(society_certificates::certificate)
                    .load(conn)?;
                Ok((root, rows, retired, revocations, successions, movement))
            })?
        });
        let root = root
            .map(|r| {
                <[u8; 32]>::try_from(r.as_slice())
                    .map_err(|_| StorageError::Invalid("stored root key is not 32 bytes".into()))
            })
            .transpose()?;
        let rows = rows
            .into_iter()
            .map(|r| {
                Ok(CertificateRow {
                    subject_id: uuid_from(&r.subject_id)?,
                    certificate: r.certificate,
                    issued_at: r.issued_at,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(SocietyTrust {
            root,
            certificates: rows,
            retired,
            revocations,
            successions,
            movement_certificates,
        })
    }
}

/// A society root rotation as stored ([`Store::rotate_society_root`]).
#[derive(Clone, Debug)]
pub struct RootRotation {
    pub old_root: [u8; 32],
    pub new_root: [u8; 32],
    /// The succession both roots signed.
    pub succession: Vec<u8>,
    /// The certificates the new root issued, each replacing its subject's current one.
    pub certificates: Vec<CertificateRow>,
    /// The society's next revocation list, signed by the new root, and its number.
    pub list_number: u64,
    pub list: Vec<u8>,
}

/// What a society's members verify its keys with: [`Store::society_certificates`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocietyTrust {
    /// The society's signing root public key, once set.
    pub root: Option<[u8; 32]>,
    /// Every subject's current certificate.
    pub certificates: Vec<CertificateRow>,
    /// The certificates of keys members rotated away from (each on the revocation list): their
    /// commits signed before the rotation still verify.
    pub retired: Vec<Vec<u8>>,
    /// The latest revocation list, if any.
    pub revocations: Option<Vec<u8>>,
    /// The root successions, oldest first (each signed by the root it replaces and its successor).
    pub successions: Vec<Vec<u8>>,
    /// The Movement root's certificates of the society's roots (crates/crypto/src/movement.rs).
    pub movement_certificates: Vec<Vec<u8>>,
}
