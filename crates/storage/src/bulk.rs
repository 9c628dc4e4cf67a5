//! Bulk inserts of many rows of one table, in one transaction's worth of work: on PostgreSQL a
//! binary `COPY` (one round trip, nothing to plan, no 65,535-parameter limit); on SQLite, which
//! has no round trips to save, multi-row `INSERT`s in fixed-size chunks (`insert_fixed!`, whose
//! statements are cached).

use crate::Result;

/// Inserts rows of one table. A row whose key is taken fails them all, with a conflict that says
/// `what` (as an `INSERT` does), and the caller's transaction with it.
pub(crate) trait Bulk<Row> {
    fn bulk_insert(&mut self, rows: &[Row], what: &'static str) -> Result<()>;
}

/// Implements [`Bulk`] for a row type (an `Insertable` with `treat_none_as_default_value =
/// false`, which `COPY` needs) and its table, on both connections.
macro_rules! impl_bulk {
    ($row:ty, $table:expr) => {
        impl $crate::bulk::Bulk<$row> for diesel::SqliteConnection {
            fn bulk_insert(&mut self, rows: &[$row], what: &'static str) -> $crate::Result<()> {
                let conn = self;
                insert_fixed!(conn, $table, rows, what);
                Ok(())
            }
        }
        impl $crate::bulk::Bulk<$row> for diesel::PgConnection {
            fn bulk_insert(&mut self, rows: &[$row], what: &'static str) -> $crate::Result<()> {
                if rows.is_empty() {
                    return Ok(());
                }
                diesel::copy_from($table)
                    .from_insertable(rows)
                    .execute(self)
                    .map_err(|e| $crate::StorageError::from_insert(e, what))?;
                Ok(())
            }
        }
    };
}
