//! Societies and their escrow key.

use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use rfl_domain::SocietyId;

use crate::models::*;
use crate::schema::*;
use crate::{id_bytes, Millis, NewEnrolmentCode, Pools, Result, StorageError, Store};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Society {
    pub id: SocietyId,
    pub name: String,
    /// The society escrow key's age recipient and its identity wrapped to the offline recovery key.
    pub escrow: Option<SocietyEscrow>,
    /// The escrow key's generation: 1 for the first, one more at each completed rotation.
    pub escrow_gen: i32,
    pub created_at: Millis,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocietyEscrow {
    pub recipient: String,
    pub wrapped_identity: Vec<u8>,
}

impl Store {
    // --- societies --------------------------------------------------------------------------------

    /// Creates a society with the one-time enrolment code of its first admin.
    pub fn create_society(
        &self,
        id: SocietyId,
        name: &str,
        first_admin: NewEnrolmentCode,
        now: Millis,
    ) -> Result<Society> {
        let row = SocietyDb {
            id: id_bytes(id.as_uuid()),
            name: name.to_owned(),
            escrow_recipient: None,
            escrow_wrapped: None,
            created_at: now,
            escrow_gen: 1,
        };
        let code = EnrolmentCodeDb::from_new(&first_admin);
        write_tx!(self, conn => {
            // An id given by another instance may already be here (the id of a new one never is).
            let taken: i64 = societies::table.find(&row.id).count().get_result(conn)?;
            if taken > 0 {
                return Err(StorageError::Conflict("a society with this id exists"));
            }
            diesel::insert_into(societies::table)
                .values(&row)
                .execute(conn)
                .map_err(|e| StorageError::from_insert(e, "a society with this name exists"))?;
            diesel::insert_into(society_seq::table)
                .values((
                    society_seq::society_id.eq(&row.id),
                    society_seq::value.eq(0_i64),
                ))
                .execute(conn)?;
            diesel::insert_into(enrolment_codes::table).values(&code).execute(conn)?;
            Ok(())
        })?;
        row.into_society()
    }

    pub fn society(&self, id: SocietyId) -> Result<Option<Society>> {
        let row: Option<SocietyDb> = read!(self, conn => {
            societies::table
                .filter(societies::id.eq(id_bytes(id.as_uuid())))
                .select(SocietyDb::as_select())
                .get_result(conn)
                .optional()?
        });
        row.map(SocietyDb::into_society).transpose()
    }

    pub fn society_by_name(&self, name: &str) -> Result<Option<Society>> {
        let row: Option<SocietyDb> = read!(self, conn => {
            societies::table
                .filter(societies::name.eq(name))
                .select(SocietyDb::as_select())
                .get_result(conn)
                .optional()?
        });
        row.map(SocietyDb::into_society).transpose()
    }

    /// Replaces the wrapping of the society escrow identity (a recovery-key rotation): only if the
    /// escrow recipient is `recipient` and the stored wrapping is still `previous` (compare-and-swap:
    /// two admins rotating at once, one wins); else a conflict and nothing changes.
    pub fn replace_escrow_wrapping(
        &self,
        id: SocietyId,
        recipient: &str,
        previous: &[u8],
        wrapped_identity: &[u8],
    ) -> Result<()> {
        let updated = write_tx!(self, conn => {
            Ok(diesel::update(
                societies::table
                    .filter(societies::id.eq(id_bytes(id.as_uuid())))
                    .filter(societies::escrow_recipient.eq(recipient))
                    .filter(societies::escrow_wrapped.eq(previous)),
            )
            .set(societies::escrow_wrapped.eq(Some(wrapped_identity)))
            .execute(conn)?)
        })?;
        one_row(
            updated,
            "the society escrow key or its wrapping changed meanwhile: reload and run again",
        )
    }

    /// Sets the society escrow key once; a second attempt is a conflict (rotation is its own operation).
    pub fn set_society_escrow(&self, id: SocietyId, escrow: &SocietyEscrow) -> Result<()> {
        let updated = write_tx!(self, conn => {
            Ok(diesel::update(
                societies::table
                    .filter(societies::id.eq(id_bytes(id.as_uuid())))
                    .filter(societies::escrow_recipient.is_null()),
            )
            .set((
                societies::escrow_recipient.eq(Some(escrow.recipient.clone())),
                societies::escrow_wrapped.eq(Some(escrow.wrapped_identity.clone())),
            ))
            .execute(conn)?)
        })?;
        one_row(updated, "the society escrow key is already set")
    }
}

/// A conditional update that must have changed exactly one row; none means its condition no longer
/// held (a conflict, said by `conflict`).
fn one_row(updated: usize, conflict: &'static str) -> Result<()> {
    if updated == 1 {
        Ok(())
    } else {
        Err(StorageError::Conflict(conflict))
    }
}
