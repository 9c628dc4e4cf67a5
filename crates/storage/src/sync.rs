//! What a sync reader needs to know of this database before it reads changes (`docs/sync.md`):
//! which instance it is, and how far a society's change sequence has got.

use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use rfl_domain::SocietyId;
use uuid::Uuid;

use crate::schema::*;
use crate::{id_bytes, Pools, Result, StorageError, Store};

impl Store {
    /// This database's instance id, made once when it was created (migration `000018_instance`).
    pub fn instance_id(&self) -> Result<Uuid> {
        let id: Vec<u8> = read!(self, conn => {
            instance::table.select(instance::id).get_result(conn)?
        });
        Uuid::from_slice(&id)
            .map_err(|_| StorageError::Invalid("the stored instance id is not 16 bytes".into()))
    }

    /// The last sequence number handed out for `society`'s changes (0 before its first change).
    pub fn society_seq(&self, society: SocietyId) -> Result<i64> {
        let soc = id_bytes(society.as_uuid());
        Ok(read!(self, conn => {
            society_seq::table
                .filter(society_seq::society_id.eq(&soc))
                .select(society_seq::value)
                .get_result(conn)
                .optional()?
                .ok_or(StorageError::NotFound)?
        }))
    }
}
