//! Attachment metadata: what the encrypted file is (its bytes travel as chunks).

use super::{Record, RecordKind};
use crate::date::Date;
use crate::error::ValidationError;
use crate::ids::RecordId;
use crate::validate::{line, opt_text, Path, Problems, LINE, ROOT};

/// Metadata of an encrypted attachment (photo, document scan, ...). The
/// content itself is a separately sealed chunked stream.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentMeta {
    /// Original file name (no directories).
    pub file_name: String,
    /// Media type, e.g. `image/jpeg`.
    pub media_type: String,
    /// Plaintext size in bytes.
    pub size_bytes: u64,
    /// Number of sealed chunks (at least 1, even for an empty file).
    pub chunk_count: u32,
    /// SHA-256 of the sealed stream, 64 lower-case hex digits.
    pub sha256: String,
    /// What it shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The person record it depicts, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depicts: Option<RecordId>,
}

impl AttachmentMeta {
    /// Largest attachment accepted (1 GiB).
    pub const MAX_SIZE_BYTES: u64 = 1 << 30;

    /// Validates the metadata (the `depicts` reference is checked by the case).
    pub fn validate(&self) -> Result<(), ValidationError> {
        let mut p = Problems::new();
        self.check(&ROOT, &mut p);
        p.finish()
    }

    pub(crate) fn check(&self, path: &Path<'_>, p: &mut Problems) {
        let fp = path.field("file_name");
        line(p, &fp, &self.file_name, true, 255);
        if self.file_name.contains(['/', '\\']) {
            p.push(fp, "must not contain a directory separator");
        }
        if self.file_name == "." || self.file_name == ".." {
            p.push(fp, "is not a file name");
        }
        if !is_media_type(&self.media_type) {
            p.push(
                path.field("media_type"),
                "is not a media type such as \"image/jpeg\"",
            );
        }
        if self.size_bytes > Self::MAX_SIZE_BYTES {
            p.push(path.field("size_bytes"), "exceeds the 1 GiB limit");
        }
        if self.chunk_count == 0 {
            p.push(path.field("chunk_count"), "must be at least 1");
        } else if u64::from(self.chunk_count) > self.size_bytes.max(1) {
            p.push(
                path.field("chunk_count"),
                "is larger than the file size allows",
            );
        }
        if !(self.sha256.len() == 64
            && self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        {
            p.push(
                path.field("sha256"),
                "must be 64 lower-case hexadecimal digits",
            );
        }
        opt_text(
            p,
            &path.field("description"),
            self.description.as_deref(),
            LINE,
        );
    }
}

/// `type/subtype` with RFC 6838 restricted-name characters, optional
/// parameters after `;` are not allowed.
pub(super) fn is_media_type(s: &str) -> bool {
    let ok = |part: &str| {
        !part.is_empty()
            && part.len() <= 127
            && part.bytes().enumerate().all(|(i, b)| {
                b.is_ascii_alphanumeric()
                    || (i > 0
                        && matches!(
                            b,
                            b'!' | b'#' | b'$' | b'&' | b'-' | b'^' | b'_' | b'.' | b'+'
                        ))
            })
    };
    match s.split_once('/') {
        Some((t, st)) => ok(t) && ok(st),
        None => false,
    }
}

impl Record for AttachmentMeta {
    const KIND: RecordKind = RecordKind::Attachment;
    fn validate_record(&self, _today: Date) -> Result<(), ValidationError> {
        self.validate()
    }
}
