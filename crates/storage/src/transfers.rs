//! The Movement root and transfers of cases between societies (migration
//! `000014_movement_transfers`). The store keeps what it cannot check: the Movement root's public
//! key, the society certificates it signed, and the data keys a sender wrapped to the receiving
//! society's escrow key. Clients verify all of it.

use diesel::prelude::*;
use rfl_domain::{CaseId, MemberId, SocietyId};
use uuid::Uuid;

use crate::cases::{recipients_unchanged, CaseRow, CommitWrite, HolderRow, RecordRow};
use crate::models::*;
use crate::schema::*;
use diesel::{PgConnection, SqliteConnection};

use crate::{epoch_i32, id_bytes, uuid_from, Millis, Pools, Result, StorageError, Store};

/// Where a transfer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferState {
    /// Offered, waiting for the receiving society.
    Pending,
    /// The receiving society took the case over.
    Accepted,
    /// The receiving society declined it.
    Rejected,
    /// The sending society withdrew the offer.
    Cancelled,
}

impl TransferState {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferState::Pending => "pending",
            TransferState::Accepted => "accepted",
            TransferState::Rejected => "rejected",
            TransferState::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Result<TransferState> {
        Ok(match s {
            "pending" => TransferState::Pending,
            "accepted" => TransferState::Accepted,
            "rejected" => TransferState::Rejected,
            "cancelled" => TransferState::Cancelled,
            _ => {
                return Err(StorageError::Invalid(
                    "stored transfer state unknown".into(),
                ))
            }
        })
    }
}

/// A case offered to another society ([`Store::offer_transfer`]).
#[derive(Clone, Debug)]
pub struct TransferOffer {
    pub id: Uuid,
    pub case: CaseId,
    pub from: SocietyId,
    pub to: SocietyId,
    pub by: MemberId,
    /// The case's version (head commit number) and key epoch the offer was made at.
    pub case_version: u64,
    pub key_epoch: u32,
    pub keep_access: bool,
    /// The receiving society's escrow key the keys are wrapped to.
    pub escrow_recipient: String,
    /// The data key of every epoch 1 to `key_epoch`, wrapped to that escrow key.
    pub keys: Vec<(u32, Vec<u8>)>,
}

/// A transfer as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferRow {
    pub id: Uuid,
    pub case_id: CaseId,
    pub from_society: SocietyId,
    pub to_society: SocietyId,
    pub offered_by: MemberId,
    pub offered_at: Millis,
    pub case_version: u64,
    pub key_epoch: u32,
    pub keep_access: bool,
    pub escrow_recipient: String,
    pub state: TransferState,
    pub decided_by: Option<MemberId>,
    pub decided_at: Option<Millis>,
    pub assigned_to: Option<MemberId>,
}

/// A pending transfer with what the receiving admin needs to check and accept it, read in one
/// snapshot: the offered keys, the case row, its records, its head commit and its current holders.
#[derive(Clone, Debug)]
pub struct TransferCase {
    pub transfer: TransferRow,
    pub keys: Vec<(u32, Vec<u8>)>,
    pub case: CaseRow,
    pub records: Vec<RecordRow>,
    pub head_commit: Vec<u8>,
    pub holders: Vec<HolderRow>,
}

/// The receiving admin's acceptance ([`Store::accept_transfer`]).
#[derive(Clone, Debug)]
pub struct TransferAcceptance {
    pub transfer: Uuid,
    /// The receiving society and its admin, the commit's author.
    pub society: SocietyId,
    pub by: MemberId,
    pub parent: Vec<u8>,
    pub commit: CommitWrite,
    /// The key epoch after the commit: the offer's (the sender keeps access) or the next one.
    pub key_epoch: u32,
    pub assignee: MemberId,
    /// The data key of every epoch 1 to `key_epoch` for the assignee, and for the receiving
    /// society's escrow key (`escrow_recipient`).
    pub member_keys: Vec<(u32, Vec<u8>)>,
    pub escrow_keys: Vec<(u32, Vec<u8>)>,
    pub escrow_recipient: String,
    pub wrapped_for: Vec<crate::RecipientKeys>,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = transfers)]
#[diesel(treat_none_as_default_value = false)]
struct TransferDb {
    id: Vec<u8>,
    case_id: Vec<u8>,
    from_society: Vec<u8>,
    to_society: Vec<u8>,
    offered_by: Vec<u8>,
    offered_at: i64,
    case_version: i64,
    key_epoch: i32,
    keep_access: bool,
    escrow_recipient: String,
    state: String,
    decided_by: Option<Vec<u8>>,
    decided_at: Option<i64>,
    assigned_to: Option<Vec<u8>>,
}

#[derive(Insertable, Debug, Clone)]
#[diesel(table_name = transfer_keys)]
#[diesel(treat_none_as_default_value = false)]
struct TransferKeyDb {
    transfer_id: Vec<u8>,
    key_epoch: i32,
    wrapped: Vec<u8>,
}

impl TransferDb {
    fn into_row(self) -> Result<TransferRow> {
        let member = |b: &[u8]| uuid_from(b).map(MemberId::from_uuid);
        Ok(TransferRow {
            id: uuid_from(&self.id)?,
            case_id: CaseId::from_uuid(uuid_from(&self.case_id)?),
            from_society: SocietyId::from_uuid(uuid_from(&self.from_society)?),
            to_society: SocietyId::from_uuid(uuid_from(&self.to_society)?),
            offered_by: member(&self.offered_by)?,
            offered_at: self.offered_at,
            case_version: u64::try_from(self.case_version)
                .map_err(|_| StorageError::Invalid("stored version is negative".into()))?,
            key_epoch: u32::try_from(self.key_epoch)
                .map_err(|_| StorageError::Invalid("stored key epoch is negative".into()))?,
            keep_access: self.keep_access,
            escrow_recipient: self.escrow_recipient,
            state: TransferState::parse(&self.state)?,
            decided_by: self.decided_by.as_deref().map(member).transpose()?,
            decided_at: self.decided_at,
            assigned_to: self.assigned_to.as_deref().map(member).transpose()?,
        })
    }
}

/// At most this many transfers in one listing.
pub const TRANSFER_PAGE: i64 = 500;

/// Stores `$cert`, the Movement root's certificate of the society `$soc`'s root `$root`, on `$conn`
/// (in a write transaction), replacing the one held for that root.
macro_rules! replace_movement_certificate {
    ($conn:ident, $soc:expr, $root:expr, $cert:expr, $now:expr) => {{
        diesel::delete(
            society_certificates::table
                .filter(society_certificates::society_id.eq($soc))
                .filter(society_certificates::society_root.eq($root)),
        )
        .execute($conn)?;
        diesel::insert_into(society_certificates::table)
            .values((
                society_certificates::society_id.eq($soc),
                society_certificates::society_root.eq($root),
                society_certificates::certificate.eq($cert),
                society_certificates::created_at.eq($now),
            ))
            .execute($conn)
            .map_err(|e| StorageError::from_insert(e, "society certificate"))?;
    }};
}
pub(crate) use replace_movement_certificate;

impl Store {
    // --- the Movement root -------------------------------------------------------------------------

    /// Sets the Movement root's public key, once: setting the same key again is accepted, another
    /// one is a conflict.
    pub fn set_movement_root(&self, key: &[u8; 32], by: MemberId, now: Millis) -> Result<()> {
        write_tx!(self, conn => {
            let current: Option<Vec<u8>> = movement_root::table
                .select(movement_root::public_key)
                .get_result(conn)
                .optional()?;
            match current {
                Some(k) if k == key.as_slice() => Ok(()),
                Some(_) => Err(StorageError::Conflict(
                    "another Movement root is set: it is set once",
                )),
                None => {
                    diesel::insert_into(movement_root::table)
                        .values((
                            movement_root::id.eq(1),
                            movement_root::public_key.eq(key.to_vec()),
                            movement_root::set_by.eq(id_bytes(by.as_uuid())),
                            movement_root::created_at.eq(now),
                        ))
                        .execute(conn)?;
                    Ok(())
                }
            }
        })
    }

    /// The Movement root's public key, once set.
    pub fn movement_root(&self) -> Result<Option<[u8; 32]>> {
        let key: Option<Vec<u8>> = read!(self, conn => {
            movement_root::table
                .select(movement_root::public_key)
                .get_result(conn)
                .optional()?
        });
        key.map(|k| {
            <[u8; 32]>::try_from(k.as_slice())
                .map_err(|_| StorageError::Invalid("stored Movement root is not 32 bytes".into()))
        })
        .transpose()
    }

    /// Stores a certificate of the Movement root for `society`'s root `root` (a newer one for the
    /// same root replaces it).
    pub fn put_society_certificate(
        &self,
        society: SocietyId,
        root: &[u8; 32],
        certificate: &[u8],
        now: Millis,
    ) -> Result<()> {
        let soc = id_bytes(society.as_uuid());
        write_tx!(self, conn => {
            replace_movement_certificate!(conn, &soc, root.as_slice(), certificate, now);
            Ok(())
        })
    }

    // --- transfers ---------------------------------------------------------------------------------

    /// Records an offer in one transaction: the case must still be at the offer's version and key
    /// epoch, in the sending society, held by the sender; the escrow key must be the receiving
    /// society's current one; a case has at most one pending offer (else a conflict).
    pub fn offer_transfer(&self, offer: &TransferOffer, now: Millis) -> Result<TransferRow> {
        let row = TransferDb {
            id: id_bytes(&offer.id),
            case_id: id_bytes(offer.case.as_uuid()),
            from_society: id_bytes(offer.from.as_uuid()),
            to_society: id_bytes(offer.to.as_uuid()),
            offered_by: id_bytes(offer.by.as_uuid()),
            offered_at: now,
            case_version: crate::version_i64(offer.case_version)?,
            key_epoch: epoch_i32(offer.key_epoch)?,
            keep_access: offer.keep_access,
            escrow_recipient: offer.escrow_recipient.clone(),
            state: TransferState::Pending.as_str().to_owned(),
            decided_by: None,
            decided_at: None,
            assigned_to: None,
        };
        let keys = offer
            .keys
            .iter()
            .map(|(e, w)| {
                Ok(TransferKeyDb {
                    transfer_id: row.id.clone(),
                    key_epoch: epoch_i32(*e)?,
                    wrapped: w.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        write_tx!(self, conn => {
            let (case, _) = case_for_member!(conn, offer.by, offer.case).ok_or(StorageError::NotFound)?;
            if case.society_id != row.from_society {
                return Err(StorageError::Conflict("the case belongs to another society"));
            }
            if case.version != row.case_version || case.key_epoch != row.key_epoch {
                return Err(StorageError::Conflict(
                    "the case was changed since you opened it: reload it and offer it again",
                ));
            }
            let escrow: Option<String> = societies::table
                .filter(societies::id.eq(&row.to_society))
                .select(societies::escrow_recipient)
                .get_result(conn)
                .optional()?
                .ok_or(StorageError::NotFound)?;
            if escrow.as_deref() != Some(offer.escrow_recipient.as_str()) {
                return Err(StorageError::Conflict(
                    "the receiving society's escrow key is not the one the keys are wrapped to (it was rotated): reload its keys and offer again",
                ));
            }
            diesel::insert_into(transfers::table)
                .values(&row)
                .execute(conn)
                .map_err(|e| StorageError::from_insert(e, "this case has a pending transfer already"))?;
            diesel::insert_into(transfer_keys::table)
                .values(&keys)
                .execute(conn)?;
            Ok(())
        })?;
        row.into_row()
    }

    /// Transfers from or to `society`, newest first (at most [`TRANSFER_PAGE`]), only the pending
    /// ones with `pending_only`.
    pub fn society_transfers(
        &self,
        society: SocietyId,
        pending_only: bool,
    ) -> Result<Vec<TransferRow>> {
        let soc = id_bytes(society.as_uuid());
        let rows: Vec<TransferDb> = read!(self, conn => {
            let mut q = transfers::table
                .filter(transfers::from_society.eq(&soc).or(transfers::to_society.eq(&soc)))
                .into_boxed();
            if pending_only {
                q = q.filter(transfers::state.eq(TransferState::Pending.as_str()));
            }
            q.order((transfers::offered_at.desc(), transfers::id.desc()))
                .limit(TRANSFER_PAGE)
                .select(TransferDb::as_select())
                .load(conn)?
        });
        rows.into_iter().map(TransferDb::into_row).collect()
    }

    /// A transfer from or to `society`.
    pub fn transfer_of(&self, society: SocietyId, id: Uuid) -> Result<Option<TransferRow>> {
        let soc = id_bytes(society.as_uuid());
        let row: Option<TransferDb> = read!(self, conn => {
            transfers::table
                .filter(transfers::id.eq(id_bytes(&id)))
                .filter(transfers::from_society.eq(&soc).or(transfers::to_society.eq(&soc)))
                .select(TransferDb::as_select())
                .get_result(conn)
                .optional()?
        });
        row.map(TransferDb::into_row).transpose()
    }

    /// A pending transfer to `society` with the case as it stands, in one snapshot.
    pub fn transfer_case(&self, society: SocietyId, id: Uuid) -> Result<Option<TransferCase>> {
        let soc = id_bytes(society.as_uuid());
        type Read = (
            TransferDb,
            Vec<(i32, Vec<u8>)>,
            CaseDb,
            Vec<RecordDb>,
            Vec<u8>,
            Vec<(Vec<u8>, i64, Option<Vec<u8>>)>,
        );
        let found: Option<Read> = read!(self, conn => {
            conn.transaction::<_, StorageError, _>(|conn| {
                let Some(t) = transfers::table
                    .filter(transfers::id.eq(id_bytes(&id)))
                    .filter(transfers::to_society.eq(&soc))
                    .filter(transfers::state.eq(TransferState::Pending.as_str()))
                    .select(TransferDb::as_select())
                    .get_result(conn)
                    .optional()?
                else {
                    return Ok(None);
                };
                let keys = transfer_keys::table
                    .filter(transfer_keys::transfer_id.eq(&t.id))
                    .order(transfer_keys::key_epoch)
                    .select((transfer_keys::key_epoch, transfer_keys::wrapped))
                    .load(conn)?;
                let case: CaseDb = cases::table
                    .filter(cases::id.eq(&t.case_id))
                    .select(CaseDb::as_select())
                    .get_result(conn)?;
                let records = records::table
                    .filter(records::case_id.eq(&t.case_id))
                    .order(records::id)
                    .select(RecordDb::as_select())
                    .load(conn)?;
                let head: Vec<u8> = case_commits::table
                    .filter(case_commits::case_id.eq(&t.case_id))
                    .filter(case_commits::seq.eq(case.version))
                    .select(case_commits::body)
                    .get_result(conn)?;
                let holders = case_keys::table
                    .filter(case_keys::case_id.eq(&t.case_id))
                    .filter(case_keys::key_epoch.eq(case.key_epoch))
                    .order(case_keys::recipient_id)
                    .select((case_keys::recipient_id, case_keys::created_at, case_keys::keys_digest))
                    .load(conn)?;
                Ok(Some((t, keys, case, records, head, holders)))
            })?
        });
        let Some((t, keys, case, records, head_commit, holders)) = found else {
            return Ok(None);
        };
        let keys = keys
            .into_iter()
            .map(|(e, w)| {
                Ok((
                    u32::try_from(e).map_err(|_| {
                        StorageError::Invalid("stored key epoch is negative".into())
                    })?,
                    w,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(TransferCase {
            transfer: t.into_row()?,
            keys,
            case: case.into_case()?,
            records: records
                .into_iter()
                .map(RecordDb::into_record)
                .collect::<Result<_>>()?,
            head_commit,
            holders: holders
                .into_iter()
                .map(HolderRow::from_db)
                .collect::<Result<_>>()?,
        }))
    }

    /// Ends a pending transfer without moving the case: rejected by the receiving `society`, or
    /// cancelled by the sending one. Not found unless it is pending and involves `society`.
    pub fn close_transfer(
        &self,
        society: SocietyId,
        id: Uuid,
        by: MemberId,
        now: Millis,
    ) -> Result<TransferRow> {
        let soc = id_bytes(society.as_uuid());
        let row: TransferDb = write_tx!(self, conn => {
            let t: TransferDb = transfers::table
                .filter(transfers::id.eq(id_bytes(&id)))
                .filter(transfers::from_society.eq(&soc).or(transfers::to_society.eq(&soc)))
                .select(TransferDb::as_select())
                .get_result(conn)
                .optional()?
                .ok_or(StorageError::NotFound)?;
            if t.state != TransferState::Pending.as_str() {
                return Err(StorageError::Conflict("this transfer is no longer pending"));
            }
            let state = if t.to_society == soc {
                TransferState::Rejected
            } else {
                TransferState::Cancelled
            };
            Ok(diesel::update(transfers::table.filter(transfers::id.eq(&t.id)))
                .set((
                    transfers::state.eq(state.as_str()),
                    transfers::decided_by.eq(Some(id_bytes(by.as_uuid()))),
                    transfers::decided_at.eq(Some(now)),
                ))
                .returning(TransferDb::as_returning())
                .get_result(conn)?)
        })?;
        row.into_row()
    }

    /// Moves a case to the society that accepts its transfer, in one transaction: the transfer
    /// commit on the head (compare-and-swap, as for any commit), the case's new society and key
    /// epoch, the assignee's and the receiving escrow key's rows of every epoch, the sending
    /// society's escrow rows removed, and, when the sender gave access up (a new epoch), every
    /// other row of the case removed too; the transfer marked accepted.
    pub fn accept_transfer(&self, a: &TransferAcceptance, now: Millis) -> Result<CaseRow> {
        let soc = id_bytes(a.society.as_uuid());
        let seq_no = crate::version_i64(a.commit.seq)?;
        let new_epoch = epoch_i32(a.key_epoch)?;
        let row: CaseDb = write_tx!(self, conn => {
            recipients_unchanged!(conn, &a.wrapped_for);
            let t: TransferDb = transfers::table
                .filter(transfers::id.eq(id_bytes(&a.transfer)))
                .filter(transfers::to_society.eq(&soc))
                .select(TransferDb::as_select())
                .get_result(conn)
                .optional()?
                .ok_or(StorageError::NotFound)?;
            if t.state != TransferState::Pending.as_str() {
                return Err(StorageError::Conflict("this transfer is no longer pending"));
            }
            let case: CaseDb = cases::table
                .filter(cases::id.eq(&t.case_id))
                .select(CaseDb::as_select())
                .get_result(conn)?;
            if case.key_epoch != t.key_epoch || case.society_id != t.from_society {
                return Err(StorageError::Conflict(
                    "the case was re-keyed or moved since it was offered: the sender must offer it again",
                ));
            }
            if case.version != seq_no - 1 || case.head_hash.as_deref() != Some(a.parent.as_slice()) {
                return Err(StorageError::Conflict(
                    "the case was changed since you opened the transfer: open it again and retry",
                ));
            }
            // The case joins the receiving society, and its change is numbered in that society's
            // sequence. The sequence's lock comes first: it orders the escrow key's check after any
            // rotation of the receiving society's escrow key that completed meanwhile.
            let seq = next_seq!(conn, &soc, 1);
            let escrow_gen: i32 = escrow_gen!(conn, &soc, a.escrow_recipient.as_str());
            if new_epoch != case.key_epoch {
                diesel::delete(case_keys::table.filter(case_keys::case_id.eq(&case.id)))
                    .execute(conn)?;
            } else {
                diesel::delete(
                    case_keys::table
                        .filter(case_keys::case_id.eq(&case.id))
                        .filter(case_keys::recipient_id.eq(&case.society_id)),
                )
                .execute(conn)?;
            }
            let mut rows = Vec::with_capacity(a.member_keys.len() + a.escrow_keys.len());
            for (recipient, keys, gen) in [
                (id_bytes(a.assignee.as_uuid()), &a.member_keys, 0),
                (soc.clone(), &a.escrow_keys, escrow_gen),
            ] {
                for (epoch, wrapped) in keys {
                    rows.push(CaseKeyDb {
                        case_id: case.id.clone(),
                        recipient_id: recipient.clone(),
                        key_epoch: epoch_i32(*epoch)?,
                        wrapped: wrapped.clone(),
                        created_at: now,
                        escrow_gen: gen,
                    });
                }
            }
            diesel::insert_into(case_keys::table)
                .values(&rows)
                .execute(conn)
                .map_err(|e| StorageError::from_insert(e, "the assignee holds this case already"))?;
            diesel::insert_into(case_commits::table)
                .values(&CommitDb {
                    case_id: case.id.clone(),
                    seq: seq_no,
                    body: a.commit.body.clone(),
                    created_at: now,
                    society_id: soc.clone(),
                    change_seq: seq,
                })
                .execute(conn)
                .map_err(|_| StorageError::Conflict("this commit number is taken: open the transfer again and retry"))?;
            diesel::update(transfers::table.filter(transfers::id.eq(&t.id)))
                .set((
                    transfers::state.eq(TransferState::Accepted.as_str()),
                    transfers::decided_by.eq(Some(id_bytes(a.by.as_uuid()))),
                    transfers::decided_at.eq(Some(now)),
                    transfers::assigned_to.eq(Some(id_bytes(a.assignee.as_uuid()))),
                ))
                .execute(conn)?;
            Ok(diesel::update(
                cases::table.filter(cases::id.eq(&case.id)).filter(cases::version.eq(seq_no - 1)),
            )
            .set((
                cases::society_id.eq(&soc),
                cases::key_epoch.eq(new_epoch),
                cases::version.eq(seq_no),
                cases::head_hash.eq(Some(a.commit.hash.clone())),
                cases::seq.eq(seq),
                cases::updated_at.eq(now),
            ))
            .returning(CaseDb::as_returning())
            .get_result(conn)?)
        })?;
        row.into_case()
    }
}
