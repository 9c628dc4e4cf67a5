//! Members (people and machines), their security stamps, and key-login challenges.

use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use rfl_domain::{MemberId, Role, SocietyId};
use uuid::Uuid;

use crate::models::*;
use crate::schema::*;
use crate::{id_bytes, uuid_from, Millis, Pools, Result, StorageError, Store};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: MemberId,
    pub society_id: SocietyId,
    pub role: Role,
    pub signing_key: Vec<u8>,
    pub age_recipient: String,
    pub suspended: bool,
    pub created_at: Millis,
    /// Changes whenever the member's tokens must stop working (suspension, reinstatement, revocation).
    pub security_stamp: i64,
    /// The keys the member registered to rotate to, until an admin certifies them.
    pub next_keys: Option<NextKeys>,
}

/// Public keys a member registered to rotate to ([`Store::set_next_keys`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NextKeys {
    pub signing_key: Vec<u8>,
    pub age_recipient: String,
}

/// What decides whether a member's access tokens still work: read on every authenticated request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Standing {
    pub suspended: bool,
    /// See [`Member::security_stamp`].
    pub security_stamp: i64,
}

/// The [`Standing`] of member `$id` on connection `$conn`, `None` if there is no such member.
macro_rules! standing_of {
    ($conn:ident, $id:expr) => {
        members::table
            .filter(members::id.eq(id_bytes($id.as_uuid())))
            .select((members::suspended, members::security_stamp))
            .get_result::<(bool, i64)>($conn)
            .optional()?
            .map(|(suspended, security_stamp)| Standing {
                suspended,
                security_stamp,
            })
    };
}
pub(crate) use standing_of;

#[derive(Clone, Debug)]
pub struct Challenge {
    pub id: Uuid,
    pub member_id: MemberId,
    pub challenge: Vec<u8>,
    pub expires_at: Millis,
}

impl Store {
    // --- members -----------------------------------------------------------------------------------

    pub fn member(&self, id: MemberId) -> Result<Option<Member>> {
        let row: Option<MemberDb> = read!(self, conn => {
            members::table
                .filter(members::id.eq(id_bytes(id.as_uuid())))
                .select(MemberDb::as_select())
                .get_result(conn)
                .optional()?
        });
        row.map(MemberDb::into_member).transpose()
    }

    /// The member's [`Standing`] alone (two columns), for authenticating a request.
    pub fn standing(&self, id: MemberId) -> Result<Option<Standing>> {
        Ok(read!(self, conn => { standing_of!(conn, id) }))
    }

    /// Suspends or reinstates a member of `society` and changes their security stamp, so every access
    /// token already issued to them stops working. Returns the member as it now is.
    pub fn set_suspended(
        &self,
        society: SocietyId,
        member: MemberId,
        suspended: bool,
    ) -> Result<Member> {
        let row: MemberDb = write_tx!(self, conn => {
            let updated = diesel::update(
                members::table
                    .filter(members::id.eq(id_bytes(member.as_uuid())))
                    .filter(members::society_id.eq(id_bytes(society.as_uuid()))),
            )
            .set((members::suspended.eq(suspended), members::security_stamp.eq(members::security_stamp + 1)))
            .returning(MemberDb::as_returning())
            .get_result(conn)
            .optional()?;
            updated.ok_or(StorageError::NotFound)
        })?;
        row.into_member()
    }

    /// Changes the member's security stamp: every access token issued so far stops working.
    pub fn revoke_tokens(&self, member: MemberId) -> Result<()> {
        let n = write_tx!(self, conn => {
            Ok(diesel::update(members::table.filter(members::id.eq(id_bytes(member.as_uuid()))))
                .set(members::security_stamp.eq(members::security_stamp + 1))
                .execute(conn)?)
        })?;
        if n == 1 {
            Ok(())
        } else {
            Err(StorageError::NotFound)
        }
    }

    /// The members of one society (the key directory clients wrap to and verify signatures against).
    /// The members among `ids` (of any society), in one query.
    pub fn members_by_ids(&self, ids: &[Uuid]) -> Result<Vec<Member>> {
        let ids: Vec<Vec<u8>> = ids.iter().map(id_bytes).collect();
        let rows: Vec<MemberDb> = read!(self, conn => {
            members::table
                .filter(members::id.eq_any(&ids))
                .order(members::id)
                .select(MemberDb::as_select())
                .load(conn)?
        });
        rows.into_iter().map(MemberDb::into_member).collect()
    }

    pub fn society_members(&self, society: SocietyId) -> Result<Vec<Member>> {
        let rows: Vec<MemberDb> = read!(self, conn => {
            members::table
                .filter(members::society_id.eq(id_bytes(society.as_uuid())))
                .order(members::id)
                .select(MemberDb::as_select())
                .load(conn)?
        });
        rows.into_iter().map(MemberDb::into_member).collect()
    }

    // --- key login challenges ----------------------------------------------------------------------

    pub fn insert_challenge(&self, c: &Challenge) -> Result<()> {
        let row = ChallengeDb {
            id: id_bytes(&c.id),
            member_id: id_bytes(c.member_id.as_uuid()),
            challenge: c.challenge.clone(),
            expires_at: c.expires_at,
        };
        write_tx!(self, conn => {
            // Expired challenges are useless; drop them here rather than in a sweeper.
            diesel::delete(auth_challenges::table.filter(auth_challenges::expires_at.lt(c.expires_at - 3_600_000)))
                .execute(conn)?;
            diesel::insert_into(auth_challenges::table).values(&row).execute(conn)?;
            Ok(())
        })
    }

    /// Removes and returns a challenge: each can be answered once.
    pub fn take_challenge(&self, id: Uuid) -> Result<Option<Challenge>> {
        let key = id_bytes(&id);
        let row: Option<ChallengeDb> = write_tx!(self, conn => {
            let row = auth_challenges::table
                .filter(auth_challenges::id.eq(&key))
                .select(ChallengeDb::as_select())
                .get_result(conn)
                .optional()?;
            if row.is_some() {
                diesel::delete(auth_challenges::table.filter(auth_challenges::id.eq(&key))).execute(conn)?;
            }
            Ok(row)
        })?;
        row.map(|r| {
            Ok(Challenge {
                id: uuid_from(&r.id)?,
                member_id: MemberId::from_uuid(uuid_from(&r.member_id)?),
                challenge: r.challenge,
                expires_at: r.expires_at,
            })
        })
        .transpose()
    }
}
