//! Part of [`super::Session`]: attachments, encrypted and uploaded chunk by chunk, and downloaded and verified the same way.

use super::*;

impl Session {
    /// Encrypts `source` chunk by chunk (never whole in memory), uploads each sealed chunk, then adds the
    /// signed attachment record that commits to the exact chunk stream.
    pub async fn attach(
        &self,
        id: CaseId,
        mut source: impl Read,
        file_name: &str,
        media_type: &str,
        description: Option<String>,
        progress: impl Fn(u64),
    ) -> Result<RecordId> {
        let opened = self.open_case(id).await?;
        let rid = RecordId::new();
        let aad = RecordAad {
            case_id: *id.as_uuid(),
            record_id: *rid.as_uuid(),
            kind: rfl_crypto::RecordKind::Attachment,
            version: 1,
            key_epoch: opened.summary.key_epoch,
        };
        let mut sealer = AttachmentSealer::new(&opened.data_key, &aad)?;
        let mut buf = Zeroizing::new(vec![0u8; ATTACHMENT_CHUNK_SIZE]);
        let mut next = Zeroizing::new(vec![0u8; ATTACHMENT_CHUNK_SIZE]);
        let mut have = read_full(&mut source, &mut buf)?;
        let mut index: u32 = 0;
        let mut size: u64 = 0;
        loop {
            // Look one chunk ahead to know whether this one is the last.
            let next_len = if have == ATTACHMENT_CHUNK_SIZE {
                read_full(&mut source, &mut next)?
            } else {
                0
            };
            let last = next_len == 0;
            let sealed = sealer.seal_chunk(&buf[..have], last)?;
            self.api.put_chunk(id, rid, index, sealed).await?;
            size += have as u64;
            progress(size);
            index += 1;
            if last {
                break;
            }
            std::mem::swap(&mut buf, &mut next);
            have = next_len;
        }
        let digest = sealer.finish()?;
        let meta = AttachmentMeta {
            file_name: file_name.to_owned(),
            media_type: media_type.to_owned(),
            size_bytes: size,
            chunk_count: index,
            sha256: hex_lower(&digest),
            description,
            depicts: None,
        };
        meta.validate()?;
        let write = self.sealer_for_writes().seal_value(
            &opened.data_key,
            id,
            rid,
            RecordKind::Attachment,
            1,
            opened.summary.key_epoch,
            &meta,
        )?;
        self.commit_writes(&opened, vec![write]).await?;
        Ok(rid)
    }

    /// Downloads, verifies and decrypts an attachment into `out`, chunk by chunk. Returns the byte count.
    pub async fn download_attachment(
        &self,
        opened: &OpenedCase,
        attachment: RecordId,
        mut out: impl Write,
    ) -> Result<u64> {
        let entry = opened
            .file
            .attachments
            .iter()
            .find(|e| e.id == attachment)
            .ok_or_else(|| ClientError::Invalid("the case has no such attachment".into()))?;
        let meta = &entry.record;
        let version = opened
            .versions
            .get(&attachment)
            .map(|(_, v)| *v)
            .unwrap_or(1);
        // The chunks are sealed under the key epoch of the attachment's record (a re-key leaves
        // both where they were).
        let epoch = opened
            .record_epochs
            .get(&attachment)
            .copied()
            .unwrap_or(opened.summary.key_epoch);
        let aad = RecordAad {
            case_id: *opened.summary.id.as_uuid(),
            record_id: *attachment.as_uuid(),
            kind: rfl_crypto::RecordKind::Attachment,
            version,
            key_epoch: epoch,
        };
        let digest = parse_hex32(&meta.sha256)
            .ok_or_else(|| ClientError::Tampered("attachment digest malformed".into()))?;
        let mut opener = AttachmentOpener::new(opened.key_of(epoch)?, &aad)?;
        let mut written = 0u64;
        for index in 0..meta.chunk_count {
            let sealed = self
                .api
                .get_chunk(opened.summary.id, attachment, index)
                .await?;
            let plain = opener
                .open_chunk(&sealed, index + 1 == meta.chunk_count)
                .map_err(|e| {
                    tampered(format!(
                        "attachment chunk {index} does not open ({e}): it was altered, moved or replaced"
                    ))
                })?;
            out.write_all(&plain)?;
            written += plain.len() as u64;
        }
        opener.finish(&digest).map_err(|e| {
            tampered(format!(
                "the attachment's chunks are not the ones its record commits to ({e})"
            ))
        })?;
        if written != meta.size_bytes {
            return Err(ClientError::Tampered(
                "attachment size differs from its signed record".into(),
            ));
        }
        Ok(written)
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

pub(super) fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let b = [0xabu8; 32];
        assert_eq!(parse_hex32(&hex_lower(&b)), Some(b));
        assert_eq!(parse_hex32("zz"), None);
    }
}
