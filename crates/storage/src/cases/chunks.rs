//! Attachment chunks: write-once, each of a case the member holds a key for.

use super::*;

impl Store {
    /// Stores one sealed chunk of an attachment of a case the member holds a key for. Chunks are
    /// write-once: re-sending an existing chunk is a conflict.
    pub fn put_chunk(
        &self,
        member: MemberId,
        case: CaseId,
        attachment: RecordId,
        idx: u32,
        data: &[u8],
        now: Millis,
    ) -> Result<()> {
        let idx = i32::try_from(idx)
            .map_err(|_| StorageError::Invalid("chunk index out of range".into()))?;
        let row = AttachmentChunkDb {
            attachment_id: id_bytes(attachment.as_uuid()),
            idx,
            case_id: id_bytes(case.as_uuid()),
            data: data.to_vec(),
            created_at: now,
        };
        write_tx!(self, conn => {
            case_for_member!(conn, member, case).ok_or(StorageError::NotFound)?;
            diesel::insert_into(attachment_chunks::table)
                .values(&row)
                .execute(conn)
                .map_err(|e| StorageError::from_insert(e, "this chunk was already uploaded"))?;
            Ok(())
        })
    }

    pub fn get_chunk(
        &self,
        member: MemberId,
        case: CaseId,
        attachment: RecordId,
        idx: u32,
    ) -> Result<Option<Vec<u8>>> {
        let idx = i32::try_from(idx)
            .map_err(|_| StorageError::Invalid("chunk index out of range".into()))?;
        read!(self, conn => {
            if case_for_member!(conn, member, case).is_none() {
                return Ok(None);
            }
            Ok(attachment_chunks::table
                .filter(attachment_chunks::attachment_id.eq(id_bytes(attachment.as_uuid())))
                .filter(attachment_chunks::case_id.eq(id_bytes(case.as_uuid())))
                .filter(attachment_chunks::idx.eq(idx))
                .select(attachment_chunks::data)
                .get_result::<Vec<u8>>(conn)
                .optional()?)
        })
    }
}
