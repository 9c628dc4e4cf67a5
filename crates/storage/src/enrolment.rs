//! One-time enrolment codes, and redeeming one to create a member.

use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use rfl_domain::{MemberId, Role, SocietyId};

use crate::models::*;
use crate::schema::*;
use crate::{
    id_bytes, is_machine_role, parse_role, uuid_from, Member, Millis, NewPasskey, Pools, Result,
    StorageError, Store,
};

/// An enrolment code as stored: only its SHA-256 hash.
#[derive(Clone, Debug)]
pub struct NewEnrolmentCode {
    pub code_hash: [u8; 32],
    pub society_id: SocietyId,
    pub role: Role,
    pub created_by: Option<MemberId>,
    pub created_at: Millis,
    pub expires_at: Millis,
    /// The existing member the code re-enrols (after an admin reset them: [`Store::reset_member`]),
    /// with new keys and a new passkey; `None` for a code that creates a member.
    pub for_member: Option<MemberId>,
}

/// An enrolment code as an admin sees it (never the code itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrolmentCodeRow {
    pub code_hash: Vec<u8>,
    pub role: Role,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub used_at: Option<Millis>,
}

/// The public keys a member enrols with. People (every role but the sync agent) enrol with their first
/// passkey; machines (sync agents) with their Ed25519 key alone.
#[derive(Clone, Debug)]
pub struct Enrolment {
    pub member_id: MemberId,
    pub signing_key: Vec<u8>,
    pub age_recipient: String,
    pub passkey: Option<NewPasskey>,
}

impl Store {
    // --- enrolment ---------------------------------------------------------------------------------

    pub fn insert_enrolment_code(&self, code: &NewEnrolmentCode) -> Result<()> {
        let row = EnrolmentCodeDb::from_new(code);
        write_tx!(self, conn => {
            diesel::insert_into(enrolment_codes::table)
                .values(&row)
                .execute(conn)
                .map_err(|e| StorageError::from_insert(e, "enrolment code exists"))?;
            Ok(())
        })
    }

    /// The society's enrolment codes issued since `since`, newest first.
    pub fn enrolment_codes(
        &self,
        society: SocietyId,
        since: Millis,
    ) -> Result<Vec<EnrolmentCodeRow>> {
        let rows: Vec<EnrolmentCodeDb> = read!(self, conn => {
            enrolment_codes::table
                .filter(enrolment_codes::society_id.eq(id_bytes(society.as_uuid())))
                .filter(enrolment_codes::created_at.ge(since))
                .order(enrolment_codes::created_at.desc())
                .select(EnrolmentCodeDb::as_select())
                .load(conn)?
        });
        rows.into_iter()
            .map(|r| {
                Ok(EnrolmentCodeRow {
                    role: parse_role(&r.role)?,
                    code_hash: r.code_hash,
                    created_at: r.created_at,
                    expires_at: r.expires_at,
                    used_at: r.used_at,
                })
            })
            .collect()
    }

    /// Revokes an unused enrolment code of the society: it expires now. A used, unknown or foreign code is
    /// not found.
    pub fn revoke_enrolment_code(
        &self,
        society: SocietyId,
        code_hash: &[u8],
        now: Millis,
    ) -> Result<()> {
        let hash = code_hash.to_vec();
        let n = write_tx!(self, conn => {
            Ok(diesel::update(
                enrolment_codes::table
                    .filter(enrolment_codes::code_hash.eq(&hash))
                    .filter(enrolment_codes::society_id.eq(id_bytes(society.as_uuid())))
                    .filter(enrolment_codes::used_at.is_null()),
            )
            .set(enrolment_codes::expires_at.eq(now))
            .execute(conn)?)
        })?;
        if n == 1 {
            Ok(())
        } else {
            Err(StorageError::NotFound)
        }
    }

    /// Spends a one-time enrolment code and creates the member it was issued for, in one transaction.
    pub fn redeem_enrolment_code(
        &self,
        code_hash: &[u8; 32],
        enrolment: &Enrolment,
        now: Millis,
    ) -> Result<Member> {
        let hash = code_hash.to_vec();
        let member_id = id_bytes(enrolment.member_id.as_uuid());
        let row = write_tx!(self, conn => {
            let code: Option<EnrolmentCodeDb> = enrolment_codes::table
                .filter(enrolment_codes::code_hash.eq(&hash))
                .select(EnrolmentCodeDb::as_select())
                .get_result(conn)
                .optional()?;
            let code = code.ok_or(StorageError::NotFound)?;
            if code.used_at.is_some() {
                return Err(StorageError::Conflict("this enrolment code was already used"));
            }
            if code.expires_at <= now {
                return Err(StorageError::Expired("this enrolment code has expired"));
            }
            let machine = is_machine_role(parse_role(&code.role)?);
            match (&enrolment.passkey, machine) {
                (None, false) => return Err(StorageError::Refused("people enrol with a passkey: this code is for a person")),
                (Some(_), true) => return Err(StorageError::Refused("this code is for a sync agent, which enrols with its device key")),
                _ => {}
            }
            diesel::update(enrolment_codes::table.filter(enrolment_codes::code_hash.eq(&hash)))
                .set((enrolment_codes::used_at.eq(Some(now)), enrolment_codes::used_by.eq(Some(member_id.clone()))))
                .execute(conn)?;
            if let Some(existing) = &code.for_member {
                // Re-enrolment of a member an admin reset: the same member, new keys, a new
                // passkey (their old ones were removed by the reset).
                if *existing != member_id || machine {
                    return Err(StorageError::Refused("this code re-enrols another member"));
                }
                let row: MemberDb = diesel::update(
                    members::table
                        .filter(members::id.eq(&member_id))
                        .filter(members::society_id.eq(&code.society_id))
                        .filter(members::signing_key.ne(&enrolment.signing_key))
                        .filter(members::age_recipient.ne(&enrolment.age_recipient)),
                )
                .set((
                    members::signing_key.eq(&enrolment.signing_key),
                    members::age_recipient.eq(&enrolment.age_recipient),
                    members::next_signing_key.eq(None::<Vec<u8>>),
                    members::next_age_recipient.eq(None::<String>),
                    members::security_stamp.eq(members::security_stamp + 1),
                ))
                .returning(MemberDb::as_returning())
                .get_result(conn)
                .optional()?
                .ok_or(StorageError::Refused("re-enrol with new keys, both of them"))?;
                if let Some(p) = &enrolment.passkey {
                    diesel::insert_into(crate::schema::passkeys::table)
                        .values(&crate::passkeys::PasskeyDb::new(enrolment.member_id, p, now))
                        .execute(conn)
                        .map_err(|e| StorageError::from_insert(e, "this credential is already registered"))?;
                }
                return Ok(row);
            }
            let row = MemberDb {
                id: member_id.clone(),
                society_id: code.society_id,
                role: code.role,
                signing_key: enrolment.signing_key.clone(),
                age_recipient: enrolment.age_recipient.clone(),
                suspended: false,
                created_at: now,
                security_stamp: 0,
                next_signing_key: None,
                next_age_recipient: None,
            };
            diesel::insert_into(members::table)
                .values(&row)
                .execute(conn)
                .map_err(|e| StorageError::from_insert(e, "this device key is already enrolled"))?;
            if let Some(p) = &enrolment.passkey {
                diesel::insert_into(crate::schema::passkeys::table)
                    .values(&crate::passkeys::PasskeyDb::new(enrolment.member_id, p, now))
                    .execute(conn)
                    .map_err(|e| StorageError::from_insert(e, "this credential is already registered"))?;
            }
            Ok(row)
        })?;
        row.into_member()
    }

    /// The society and role of an enrolment code that can still be spent (unused, unrevoked, unexpired),
    /// and the member it re-enrols if it does; nothing is changed. Used before an enrolment ceremony
    /// begins, so a dead code does not cost one.
    pub fn usable_enrolment_code(
        &self,
        code_hash: &[u8; 32],
        now: Millis,
    ) -> Result<(SocietyId, Role, Option<MemberId>)> {
        let hash = code_hash.to_vec();
        let code: Option<EnrolmentCodeDb> = read!(self, conn => {
            enrolment_codes::table
                .filter(enrolment_codes::code_hash.eq(&hash))
                .select(EnrolmentCodeDb::as_select())
                .get_result(conn)
                .optional()?
        });
        let code = code.ok_or(StorageError::NotFound)?;
        if code.used_at.is_some() {
            return Err(StorageError::Conflict(
                "this enrolment code was already used",
            ));
        }
        if code.expires_at <= now {
            return Err(StorageError::Expired("this enrolment code has expired"));
        }
        Ok((
            SocietyId::from_uuid(uuid_from(&code.society_id)?),
            parse_role(&code.role)?,
            code.for_member
                .as_deref()
                .map(uuid_from)
                .transpose()?
                .map(MemberId::from_uuid),
        ))
    }
}
