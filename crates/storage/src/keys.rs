//! Rotating a member's keys: the keys they registered to rotate to, and the switch to them once an
//! admin certified them (docs/crypto.md, "Rotating a person's keys").

use diesel::prelude::*;
use rfl_domain::{MemberId, SocietyId};

use crate::certs::insert_next_list;
use crate::members::NextKeys;
use crate::models::*;
use crate::schema::*;
use crate::{id_bytes, Member, Millis, Pools, Result, StorageError, Store};

/// What switching a member to the keys they registered stores ([`Store::switch_member_keys`]).
#[derive(Clone, Debug)]
pub struct KeySwitch {
    /// The keys the certificate is for: the member's registered next keys must still be these.
    pub next: NextKeys,
    /// The certificate of the new keys (checked by the API), which replaces the member's current one.
    pub certificate: Vec<u8>,
    /// The digest of the keys the member rotates away from (`subject_keys_digest`).
    pub old_keys_digest: [u8; 32],
    /// The society's next revocation list, which revokes the old keys, and its number.
    pub list_number: u64,
    pub list: Vec<u8>,
}

/// In a write transaction: keeps member `$who`'s current certificate, if any, as retired under the
/// digest of its keys (their commits signed before still verify); whether there was one.
macro_rules! retire_certificate {
    ($conn:ident, $who:expr, $soc:expr, $digest:expr, $now:expr) => {{
        let old_cert: Option<Vec<u8>> = key_certificates::table
            .filter(key_certificates::subject_id.eq($who))
            .select(key_certificates::certificate)
            .get_result($conn)
            .optional()?;
        if let Some(old) = &old_cert {
            diesel::insert_into(retired_certificates::table)
                .values((
                    retired_certificates::subject_id.eq($who),
                    retired_certificates::keys_digest.eq($digest),
                    retired_certificates::society_id.eq($soc),
                    retired_certificates::certificate.eq(old),
                    retired_certificates::retired_at.eq($now),
                ))
                .on_conflict_do_nothing()
                .execute($conn)?;
        }
        old_cert.is_some()
    }};
}

/// In a write transaction: member `$who`'s key rows under their registered keys are marked as under
/// the keys of digest `$digest` (one statement however many cases); rows already marked (an earlier
/// rotation not yet re-wrapped) keep their digest.
macro_rules! mark_rows_under {
    ($conn:ident, $who:expr, $digest:expr) => {{
        diesel::update(
            case_keys::table
                .filter(case_keys::recipient_id.eq($who))
                .filter(case_keys::keys_digest.is_null()),
        )
        .set(case_keys::keys_digest.eq(Some($digest)))
        .execute($conn)?;
    }};
}

/// What resetting a member who lost every authenticator stores ([`Store::reset_member`]).
#[derive(Clone, Debug)]
pub struct MemberReset {
    /// The digest of the member's current keys (`subject_keys_digest`), which the list revokes.
    pub old_keys_digest: [u8; 32],
    /// The society's next revocation list and its number.
    pub list_number: u64,
    pub list: Vec<u8>,
    /// The one-time code that re-enrols the member (its `for_member` is the member).
    pub code: crate::NewEnrolmentCode,
}

impl Store {
    /// Resets `member` of `society`, who lost every authenticator, in one transaction: the
    /// revocation list (which revokes their keys) is stored, a conflict unless it is the next;
    /// their certificate is kept as retired (their earlier commits still verify) and they have
    /// none current; their passkeys are removed; their key rows are marked as under the old keys
    /// (until an admin re-wraps them); their sessions end; and `reset.code` is stored, which
    /// re-enrols them with new keys and a new passkey (an unused code of an earlier reset of theirs
    /// expires). Their registered keys stay the revoked
    /// ones until then, which no client wraps to.
    pub fn reset_member(
        &self,
        society: SocietyId,
        member: MemberId,
        reset: &MemberReset,
        now: Millis,
    ) -> Result<Member> {
        let soc = id_bytes(society.as_uuid());
        let who = id_bytes(member.as_uuid());
        let number = i64::try_from(reset.list_number)
            .map_err(|_| StorageError::Invalid("revocation list number out of range".into()))?;
        let old_digest = reset.old_keys_digest.to_vec();
        let code = crate::models::EnrolmentCodeDb::from_new(&reset.code);
        if code.for_member.as_deref() != Some(who.as_slice()) || code.society_id != soc {
            return Err(StorageError::Invalid(
                "the code does not re-enrol this member".into(),
            ));
        }
        let row: MemberDb = write_tx!(self, conn => {
            // The member's row lock first, as for a key switch.
            let locked = diesel::update(
                members::table
                    .filter(members::id.eq(&who))
                    .filter(members::society_id.eq(&soc)),
            )
            .set(members::security_stamp.eq(members::security_stamp + 1))
            .execute(conn)?;
            if locked != 1 {
                return Err(StorageError::NotFound);
            }
            insert_next_list!(conn, &soc, number, &reset.list, now);
            if retire_certificate!(conn, &who, &soc, &old_digest, now) {
                diesel::delete(key_certificates::table.filter(key_certificates::subject_id.eq(&who)))
                    .execute(conn)?;
            }
            diesel::delete(crate::schema::passkeys::table.filter(crate::schema::passkeys::member_id.eq(&who)))
                .execute(conn)?;
            mark_rows_under!(conn, &who, &old_digest);
            // A code of an earlier reset of the member, unused, dies: only the newest re-enrols.
            diesel::update(
                enrolment_codes::table
                    .filter(enrolment_codes::for_member.eq(&who))
                    .filter(enrolment_codes::used_at.is_null())
                    .filter(enrolment_codes::expires_at.gt(now)),
            )
            .set(enrolment_codes::expires_at.eq(now))
            .execute(conn)?;
            diesel::insert_into(enrolment_codes::table)
                .values(&code)
                .execute(conn)
                .map_err(|e| StorageError::from_insert(e, "enrolment code exists"))?;
            Ok(diesel::update(members::table.filter(members::id.eq(&who)))
                .set((
                    members::next_signing_key.eq(None::<Vec<u8>>),
                    members::next_age_recipient.eq(None::<String>),
                ))
                .returning(MemberDb::as_returning())
                .get_result(conn)?)
        })?;
        row.into_member()
    }

    /// Registers the keys `member` will rotate to (replacing keys registered before and not yet
    /// certified). They change nothing until an admin certifies them.
    pub fn set_next_keys(&self, member: MemberId, next: &NextKeys) -> Result<Member> {
        let row: MemberDb = write_tx!(self, conn => {
            diesel::update(members::table.filter(members::id.eq(id_bytes(member.as_uuid()))))
                .set((
                    members::next_signing_key.eq(Some(&next.signing_key)),
                    members::next_age_recipient.eq(Some(&next.age_recipient)),
                ))
                .returning(MemberDb::as_returning())
                .get_result(conn)
                .optional()?
                .ok_or(StorageError::NotFound)
        })?;
        row.into_member()
    }

    /// Switches `member` of `society` to the next keys they registered, in one transaction: the
    /// registered keys become those keys; the member's key rows still wrapped to the old keys are
    /// marked with the old keys' digest (until the member re-wraps them); the old certificate is
    /// kept as retired and the new one becomes current; the revocation list is stored (a conflict
    /// unless it is the next); the security stamp changes, so the member's sessions (still holding
    /// the old keys) end. A conflict if the member has no next keys, or others than `switch.next`.
    pub fn switch_member_keys(
        &self,
        society: SocietyId,
        member: MemberId,
        switch: &KeySwitch,
        now: Millis,
    ) -> Result<Member> {
        let soc = id_bytes(society.as_uuid());
        let who = id_bytes(member.as_uuid());
        let number = i64::try_from(switch.list_number)
            .map_err(|_| StorageError::Invalid("revocation list number out of range".into()))?;
        let old_digest = switch.old_keys_digest.to_vec();
        let row: MemberDb = write_tx!(self, conn => {
            // The member's row lock first: a write wrapping to the old keys that is under way
            // commits before the rows are marked below (and is marked with them), or fails.
            diesel::update(members::table.filter(members::id.eq(&who)))
                .set(members::security_stamp.eq(members::security_stamp))
                .execute(conn)?;
            let m: MemberDb = members::table
                .filter(members::id.eq(&who))
                .filter(members::society_id.eq(&soc))
                .select(MemberDb::as_select())
                .get_result(conn)
                .optional()?
                .ok_or(StorageError::NotFound)?;
            if m.next_signing_key.as_ref() != Some(&switch.next.signing_key)
                || m.next_age_recipient.as_ref() != Some(&switch.next.age_recipient)
            {
                return Err(StorageError::Conflict(
                    "the member's new keys are not the ones certified: they registered others meanwhile",
                ));
            }
            insert_next_list!(conn, &soc, number, &switch.list, now);
            // The new certificate replaces the current one below.
            let _had_one = retire_certificate!(conn, &who, &soc, &old_digest, now);
            diesel::insert_into(key_certificates::table)
                .values((
                    key_certificates::subject_id.eq(&who),
                    key_certificates::society_id.eq(&soc),
                    key_certificates::certificate.eq(&switch.certificate),
                    key_certificates::issued_at.eq(now),
                ))
                .on_conflict(key_certificates::subject_id)
                .do_update()
                .set((
                    key_certificates::certificate.eq(&switch.certificate),
                    key_certificates::issued_at.eq(now),
                ))
                .execute(conn)?;
            mark_rows_under!(conn, &who, &old_digest);
            Ok(diesel::update(members::table.filter(members::id.eq(&who)))
                .set((
                    members::signing_key.eq(&switch.next.signing_key),
                    members::age_recipient.eq(&switch.next.age_recipient),
                    members::next_signing_key.eq(None::<Vec<u8>>),
                    members::next_age_recipient.eq(None::<String>),
                    members::security_stamp.eq(members::security_stamp + 1),
                ))
                .returning(MemberDb::as_returning())
                .get_result(conn)?)
        })?;
        row.into_member()
    }
}
