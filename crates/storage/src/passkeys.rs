//! WebAuthn passkeys and the state of ceremonies in progress.
//!
//! The store treats both as opaque: a passkey is the JSON text webauthn-rs serialises (credential id,
//! public key, counter, flags), a ceremony's state the JSON of its registration or authentication state.
//! Ceremony state lives here rather than in process memory so that any API node can finish a ceremony
//! another began; reading a ceremony deletes it in the same transaction, so each is used at most once.

use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use rfl_domain::{MemberId, SocietyId};
use uuid::Uuid;

use super::{id_bytes, uuid_from, Millis, Pools, Result, StorageError, Store};
use crate::schema::{members, passkeys, webauthn_ceremonies};

/// What a ceremony is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CeremonyKind {
    /// Adding a passkey to a member.
    Register,
    /// Signing in with a passkey.
    Authenticate,
    /// A person enrolling with a one-time code and their first passkey.
    Enrol,
}

impl CeremonyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CeremonyKind::Register => "register",
            CeremonyKind::Authenticate => "authenticate",
            CeremonyKind::Enrol => "enrol",
        }
    }

    fn parse(s: &str) -> Result<CeremonyKind> {
        match s {
            "register" => Ok(CeremonyKind::Register),
            "authenticate" => Ok(CeremonyKind::Authenticate),
            "enrol" => Ok(CeremonyKind::Enrol),
            _ => Err(StorageError::Invalid(
                "stored ceremony kind is unknown".into(),
            )),
        }
    }
}

/// A WebAuthn ceremony in progress.
#[derive(Clone, Debug)]
pub struct Ceremony {
    pub id: Uuid,
    pub kind: CeremonyKind,
    /// The member registering or signing in (none for an enrolment by code, which has no member yet).
    pub member_id: Option<MemberId>,
    /// SHA-256 of the enrolment code an enrolment ceremony spends.
    pub code_hash: Option<[u8; 32]>,
    /// webauthn-rs's serialised ceremony state.
    pub state: String,
    pub expires_at: Millis,
}

/// A registered passkey.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasskeyRow {
    /// The credential id (chosen by the authenticator).
    pub id: Vec<u8>,
    pub member_id: MemberId,
    /// webauthn-rs's serialised `Passkey`.
    pub passkey: String,
    pub created_at: Millis,
    pub last_used_at: Option<Millis>,
    /// The client's wrapping of the member's private keys for this authenticator (opaque here).
    pub key_wrap: Option<Vec<u8>>,
}

/// A passkey to register, with the client's wrapping of the member's keys for it (if the authenticator
/// has the PRF extension).
#[derive(Clone, Debug)]
pub struct NewPasskey {
    pub id: Vec<u8>,
    /// webauthn-rs's serialised `Passkey`.
    pub passkey: String,
    pub key_wrap: Option<Vec<u8>>,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = webauthn_ceremonies)]
struct CeremonyDb {
    id: Vec<u8>,
    kind: String,
    member_id: Option<Vec<u8>>,
    code_hash: Option<Vec<u8>>,
    state: String,
    expires_at: i64,
}

impl CeremonyDb {
    fn into_ceremony(self) -> Result<Ceremony> {
        let code_hash = match self.code_hash {
            None => None,
            Some(h) => Some(<[u8; 32]>::try_from(h.as_slice()).map_err(|_| {
                StorageError::Invalid("stored enrolment code hash is not 32 bytes".into())
            })?),
        };
        Ok(Ceremony {
            id: uuid_from(&self.id)?,
            kind: CeremonyKind::parse(&self.kind)?,
            member_id: self
                .member_id
                .map(|m| uuid_from(&m).map(MemberId::from_uuid))
                .transpose()?,
            code_hash,
            state: self.state,
            expires_at: self.expires_at,
        })
    }
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = passkeys)]
pub(crate) struct PasskeyDb {
    id: Vec<u8>,
    member_id: Vec<u8>,
    passkey: String,
    created_at: i64,
    last_used_at: Option<i64>,
    key_wrap: Option<Vec<u8>>,
}

impl PasskeyDb {
    pub(crate) fn new(member: MemberId, new: &NewPasskey, now: Millis) -> PasskeyDb {
        PasskeyDb {
            id: new.id.clone(),
            member_id: id_bytes(member.as_uuid()),
            passkey: new.passkey.clone(),
            created_at: now,
            last_used_at: None,
            key_wrap: new.key_wrap.clone(),
        }
    }

    fn into_row(self) -> Result<PasskeyRow> {
        Ok(PasskeyRow {
            id: self.id,
            member_id: MemberId::from_uuid(uuid_from(&self.member_id)?),
            passkey: self.passkey,
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            key_wrap: self.key_wrap,
        })
    }
}

impl Store {
    /// Stores a ceremony's state. Ceremonies that expired before `now` are dropped in the same
    /// transaction (no sweeper needed).
    pub fn insert_ceremony(&self, c: &Ceremony, now: Millis) -> Result<()> {
        let row = CeremonyDb {
            id: id_bytes(&c.id),
            kind: c.kind.as_str().to_owned(),
            member_id: c.member_id.map(|m| id_bytes(m.as_uuid())),
            code_hash: c.code_hash.map(|h| h.to_vec()),
            state: c.state.clone(),
            expires_at: c.expires_at,
        };
        write_tx!(self, conn => {
            diesel::delete(webauthn_ceremonies::table.filter(webauthn_ceremonies::expires_at.lt(now)))
                .execute(conn)?;
            diesel::insert_into(webauthn_ceremonies::table)
                .values(&row)
                .execute(conn)
                .map_err(|e| StorageError::from_insert(e, "a ceremony with this id exists"))?;
            Ok(())
        })
    }

    /// Removes and returns a ceremony of `kind` (read and delete in one transaction: each ceremony can be
    /// finished once). Expiry is the caller's to check: an expired ceremony is still removed.
    pub fn take_ceremony(&self, id: Uuid, kind: CeremonyKind) -> Result<Option<Ceremony>> {
        let key = id_bytes(&id);
        let row: Option<CeremonyDb> = write_tx!(self, conn => {
            let row = webauthn_ceremonies::table
                .filter(webauthn_ceremonies::id.eq(&key))
                .filter(webauthn_ceremonies::kind.eq(kind.as_str()))
                .select(CeremonyDb::as_select())
                .get_result(conn)
                .optional()?;
            if row.is_some() {
                diesel::delete(webauthn_ceremonies::table.filter(webauthn_ceremonies::id.eq(&key)))
                    .execute(conn)?;
            }
            Ok(row)
        })?;
        row.map(CeremonyDb::into_ceremony).transpose()
    }

    /// Registers a passkey for a member. A credential id registered before (to anyone) is a conflict.
    pub fn add_passkey(
        &self,
        member: MemberId,
        new: &NewPasskey,
        now: Millis,
    ) -> Result<PasskeyRow> {
        let row = PasskeyDb::new(member, new, now);
        write_tx!(self, conn => {
            diesel::insert_into(passkeys::table)
                .values(&row)
                .execute(conn)
                .map_err(|e| StorageError::from_insert(e, "this credential is already registered"))?;
            Ok(())
        })?;
        row.into_row()
    }

    /// A member's passkeys, oldest first.
    pub fn member_passkeys(&self, member: MemberId) -> Result<Vec<PasskeyRow>> {
        let rows: Vec<PasskeyDb> = read!(self, conn => {
            passkeys::table
                .filter(passkeys::member_id.eq(id_bytes(member.as_uuid())))
                .order((passkeys::created_at, passkeys::id))
                .select(PasskeyDb::as_select())
                .load(conn)?
        });
        rows.into_iter().map(PasskeyDb::into_row).collect()
    }

    pub fn count_passkeys(&self, member: MemberId) -> Result<i64> {
        read!(self, conn => {
            Ok(passkeys::table
                .filter(passkeys::member_id.eq(id_bytes(member.as_uuid())))
                .select(count_star())
                .get_result::<i64>(conn)?)
        })
    }

    /// Replaces the key wrappings of several of a member's passkeys in one transaction (the member's keys
    /// were rotated and re-wrapped to every authenticator). Every credential must be the member's; if one
    /// is not, nothing changes.
    pub fn set_key_wraps(&self, member: MemberId, wraps: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        let owner = id_bytes(member.as_uuid());
        write_tx!(self, conn => {
            for (id, wrap) in wraps {
                let n = diesel::update(
                    passkeys::table
                        .filter(passkeys::id.eq(id))
                        .filter(passkeys::member_id.eq(&owner)),
                )
                .set(passkeys::key_wrap.eq(Some(wrap)))
                .execute(conn)?;
                if n != 1 {
                    return Err(StorageError::NotFound);
                }
            }
            Ok(())
        })
    }

    /// Records a successful sign-in with a passkey: its new state (counter, backup flags) if it
    /// changed, and the time. Returns the key wrapping stored with this passkey, for the client.
    pub fn passkey_used(
        &self,
        member: MemberId,
        credential_id: &[u8],
        updated_json: Option<&str>,
        now: Millis,
    ) -> Result<Option<Vec<u8>>> {
        let id = credential_id.to_vec();
        let owner = id_bytes(member.as_uuid());
        write_tx!(self, conn => {
            let target = passkeys::table
                .filter(passkeys::id.eq(&id))
                .filter(passkeys::member_id.eq(&owner));
            let n = match updated_json {
                Some(json) => diesel::update(target)
                    .set((passkeys::passkey.eq(json), passkeys::last_used_at.eq(Some(now))))
                    .execute(conn)?,
                None => diesel::update(target)
                    .set(passkeys::last_used_at.eq(Some(now)))
                    .execute(conn)?,
            };
            if n != 1 {
                return Err(StorageError::NotFound);
            }
            Ok(target.select(passkeys::key_wrap).get_result::<Option<Vec<u8>>>(conn)?)
        })
    }

    /// A society admin revokes one authenticator of a member of their society (a lost or stolen one). Unlike
    /// [`Store::remove_passkey`] this may remove the last one: the member then signs in by no passkey
    /// until they register a new one. The member's security stamp changes, so every access token issued
    /// to them so far stops working.
    pub fn revoke_passkey(
        &self,
        society: SocietyId,
        member: MemberId,
        credential_id: &[u8],
    ) -> Result<()> {
        let id = credential_id.to_vec();
        let owner = id_bytes(member.as_uuid());
        write_tx!(self, conn => {
            let locked = diesel::update(
                members::table
                    .filter(members::id.eq(&owner))
                    .filter(members::society_id.eq(id_bytes(society.as_uuid()))),
            )
            .set(members::security_stamp.eq(members::security_stamp + 1))
            .execute(conn)?;
            if locked != 1 {
                return Err(StorageError::NotFound);
            }
            let n = diesel::delete(
                passkeys::table
                    .filter(passkeys::id.eq(&id))
                    .filter(passkeys::member_id.eq(&owner)),
            )
            .execute(conn)?;
            if n == 1 {
                Ok(())
            } else {
                Err(StorageError::NotFound)
            }
        })
    }

    /// Removes one of a member's passkeys, never the last (conflict), and changes the member's security
    /// stamp so every access token issued so far stops working (the removed authenticator may be lost
    /// or stolen, and tokens do not say which passkey bought them).
    pub fn remove_passkey(&self, member: MemberId, credential_id: &[u8]) -> Result<()> {
        let id = credential_id.to_vec();
        let owner = id_bytes(member.as_uuid());
        write_tx!(self, conn => {
            // Updating the member row first locks it (PostgreSQL row lock; SQLite's write transaction is
            // exclusive anyway), so two concurrent removals cannot each leave the other's passkey last.
            let locked = diesel::update(members::table.filter(members::id.eq(&owner)))
                .set(members::security_stamp.eq(members::security_stamp + 1))
                .execute(conn)?;
            if locked != 1 {
                return Err(StorageError::NotFound);
            }
            let owned: Vec<Vec<u8>> = passkeys::table
                .filter(passkeys::member_id.eq(&owner))
                .select(passkeys::id)
                .load(conn)?;
            if !owned.contains(&id) {
                return Err(StorageError::NotFound);
            }
            if owned.len() <= 1 {
                return Err(StorageError::Conflict(
                    "this is your last passkey: register another before removing it",
                ));
            }
            diesel::delete(
                passkeys::table
                    .filter(passkeys::id.eq(&id))
                    .filter(passkeys::member_id.eq(&owner)),
            )
            .execute(conn)?;
            Ok(())
        })
    }
}
