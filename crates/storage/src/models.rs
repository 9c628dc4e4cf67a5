//! Row types as diesel sees them, and their conversion to the public types.
//!
//! Every `Insertable` here says `treat_none_as_default_value = false`: without it, diesel's derive
//! makes *every* field (not only `Option` ones) "may be the column's default", and a multi-row insert
//! on SQLite then runs as one statement per row inside a savepoint. That was most of a bulk import's
//! insert time (the records, key and commit rows of each batch, ~8 statements per case). Each
//! `None` is stored as NULL, which is every nullable column's default anyway.

use diesel::prelude::*;
use rfl_domain::{CaseId, MemberId, RecordId, SocietyId};

use crate::schema::*;
use crate::{
    parse_role, parse_status, uuid_from, CaseRow, Member, NewEnrolmentCode, RecordRow, Result,
    Society, SocietyEscrow, StorageError,
};

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = societies)]
#[diesel(treat_none_as_default_value = false)]
pub(crate) struct SocietyDb {
    pub id: Vec<u8>,
    pub name: String,
    pub escrow_recipient: Option<String>,
    pub escrow_wrapped: Option<Vec<u8>>,
    pub created_at: i64,
    pub escrow_gen: i32,
}

impl SocietyDb {
    pub fn into_society(self) -> Result<Society> {
        let escrow = match (self.escrow_recipient, self.escrow_wrapped) {
            (Some(recipient), Some(wrapped_identity)) => Some(SocietyEscrow {
                recipient,
                wrapped_identity,
            }),
            _ => None,
        };
        Ok(Society {
            id: SocietyId::from_uuid(uuid_from(&self.id)?),
            name: self.name,
            escrow,
            escrow_gen: self.escrow_gen,
            created_at: self.created_at,
        })
    }
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = members)]
#[diesel(treat_none_as_default_value = false)]
pub(crate) struct MemberDb {
    pub id: Vec<u8>,
    pub society_id: Vec<u8>,
    pub role: String,
    pub signing_key: Vec<u8>,
    pub age_recipient: String,
    pub suspended: bool,
    pub created_at: i64,
    pub security_stamp: i64,
    pub next_signing_key: Option<Vec<u8>>,
    pub next_age_recipient: Option<String>,
}

impl MemberDb {
    pub fn into_member(self) -> Result<Member> {
        Ok(Member {
            id: MemberId::from_uuid(uuid_from(&self.id)?),
            society_id: SocietyId::from_uuid(uuid_from(&self.society_id)?),
            role: parse_role(&self.role)?,
            signing_key: self.signing_key,
            age_recipient: self.age_recipient,
            suspended: self.suspended,
            created_at: self.created_at,
            security_stamp: self.security_stamp,
            next_keys: match (self.next_signing_key, self.next_age_recipient) {
                (Some(signing_key), Some(age_recipient)) => Some(crate::NextKeys {
                    signing_key,
                    age_recipient,
                }),
                _ => None,
            },
        })
    }
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = enrolment_codes)]
#[diesel(treat_none_as_default_value = false)]
pub(crate) struct EnrolmentCodeDb {
    pub code_hash: Vec<u8>,
    pub society_id: Vec<u8>,
    pub role: String,
    pub created_by: Option<Vec<u8>>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub used_by: Option<Vec<u8>>,
    pub for_member: Option<Vec<u8>>,
}

impl EnrolmentCodeDb {
    pub fn from_new(c: &NewEnrolmentCode) -> Self {
        EnrolmentCodeDb {
            code_hash: c.code_hash.to_vec(),
            society_id: c.society_id.as_uuid().as_bytes().to_vec(),
            role: c.role.as_str().to_owned(),
            created_by: c.created_by.map(|m| m.as_uuid().as_bytes().to_vec()),
            created_at: c.created_at,
            expires_at: c.expires_at,
            used_at: None,
            used_by: None,
            for_member: c.for_member.map(|m| m.as_uuid().as_bytes().to_vec()),
        }
    }
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = auth_challenges)]
#[diesel(treat_none_as_default_value = false)]
pub(crate) struct ChallengeDb {
    pub id: Vec<u8>,
    pub member_id: Vec<u8>,
    pub challenge: Vec<u8>,
    pub expires_at: i64,
}

#[derive(Queryable, QueryableByName, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = cases)]
#[diesel(treat_none_as_default_value = false)]
pub(crate) struct CaseDb {
    pub id: Vec<u8>,
    pub society_id: Vec<u8>,
    pub status: String,
    pub key_epoch: i32,
    pub version: i64,
    pub seq: i64,
    pub created_by: Vec<u8>,
    pub created_at: i64,
    pub updated_at: i64,
    pub head_hash: Option<Vec<u8>>,
}

impl CaseDb {
    pub fn into_case(self) -> Result<CaseRow> {
        Ok(CaseRow {
            id: CaseId::from_uuid(uuid_from(&self.id)?),
            society_id: SocietyId::from_uuid(uuid_from(&self.society_id)?),
            status: parse_status(&self.status)?,
            key_epoch: u32::try_from(self.key_epoch)
                .map_err(|_| StorageError::Invalid("stored key epoch is negative".into()))?,
            version: u64::try_from(self.version)
                .map_err(|_| StorageError::Invalid("stored version is negative".into()))?,
            seq: self.seq,
            created_by: MemberId::from_uuid(uuid_from(&self.created_by)?),
            created_at: self.created_at,
            updated_at: self.updated_at,
            head_hash: self.head_hash,
        })
    }
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = case_commits)]
#[diesel(treat_none_as_default_value = false)]
pub(crate) struct CommitDb {
    pub case_id: Vec<u8>,
    /// The commit's number in its case's chain.
    pub seq: i64,
    pub body: Vec<u8>,
    pub created_at: i64,
    /// The society whose change sequence numbered the write that made it (the case's society then).
    pub society_id: Vec<u8>,
    /// The number of the write that made it in that sequence (the case row's `seq` after that
    /// write).
    pub change_seq: i64,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = case_keys)]
#[diesel(treat_none_as_default_value = false)]
pub(crate) struct CaseKeyDb {
    pub case_id: Vec<u8>,
    pub recipient_id: Vec<u8>,
    pub key_epoch: i32,
    pub wrapped: Vec<u8>,
    pub created_at: i64,
    /// The escrow key generation of an escrow wrapping; 0 on a member's row.
    pub escrow_gen: i32,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = records)]
#[diesel(treat_none_as_default_value = false)]
pub(crate) struct RecordDb {
    pub id: Vec<u8>,
    pub case_id: Vec<u8>,
    pub kind: i16,
    pub version: i64,
    pub key_epoch: i32,
    pub author_id: Vec<u8>,
    pub envelope: Vec<u8>,
    pub seq: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl RecordDb {
    pub fn into_record(self) -> Result<RecordRow> {
        Ok(RecordRow {
            id: RecordId::from_uuid(uuid_from(&self.id)?),
            kind: self.kind,
            version: u64::try_from(self.version)
                .map_err(|_| StorageError::Invalid("stored version is negative".into()))?,
            key_epoch: u32::try_from(self.key_epoch)
                .map_err(|_| StorageError::Invalid("stored key epoch is negative".into()))?,
            author_id: MemberId::from_uuid(uuid_from(&self.author_id)?),
            envelope: self.envelope,
            seq: self.seq,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = attachment_chunks)]
#[diesel(treat_none_as_default_value = false)]
pub(crate) struct AttachmentChunkDb {
    pub attachment_id: Vec<u8>,
    pub idx: i32,
    pub case_id: Vec<u8>,
    pub data: Vec<u8>,
    pub created_at: i64,
}
