//! The JSON shapes of the REST API, shared by the server and the client so the two cannot disagree.
//! Everything here is what the server may see: ids, roles, statuses, times, and ciphertext as base64.
//! With the `openapi` feature the types also describe themselves for the OpenAPI document.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// Binary data (ciphertext, public keys, signatures) on the wire: a standard base64 string.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Base64Bytes(pub Vec<u8>);

impl std::fmt::Debug for Base64Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Base64Bytes({} bytes)", self.0.len())
    }
}

impl From<Vec<u8>> for Base64Bytes {
    fn from(v: Vec<u8>) -> Self {
        Base64Bytes(v)
    }
}

/// In JSON (a human-readable format) a base64 string; in the binary framing ([`wire`]) the bytes
/// themselves, length-prefixed.
impl Serialize for Base64Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        if s.is_human_readable() {
            s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Base64Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine;
        if !d.is_human_readable() {
            return d.deserialize_byte_buf(RawBytes).map(Base64Bytes);
        }
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map(Base64Bytes)
            .map_err(|_| serde::de::Error::custom("expected standard base64"))
    }
}

/// Bytes as a binary format gives them.
struct RawBytes;

impl<'de> serde::de::Visitor<'de> for RawBytes {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }
}

/// The binary framing of the bulk and hot bodies: `POST /v1/cases/batch` (request) and
/// `GET /v1/cases/{id}` (answer, when asked for with `Accept`). It is the postcard encoding (its
/// wire format is stable since postcard 1.0) of the very types JSON carries, with the same fields in
/// the same order: ciphertext travels as length-prefixed bytes instead of base64 in a JSON string,
/// ids as their 16 bytes, integers as varints and enums as their variant's index. The JSON of the
/// same request or answer says the same thing; only the spelling differs (docs/crypto.md, "Binary
/// framing").
pub mod wire {
    use serde::de::DeserializeOwned;
    use serde::Serialize;

    /// The media type of the binary framing, in `Content-Type` and `Accept`.
    pub const MEDIA_TYPE: &str = "application/x-postcard";

    /// Why a binary body could not be read or written. Says what went wrong, never what was in it.
    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    pub struct WireError(postcard::Error);

    /// A value in the binary framing, appended to `out` (sized by the caller).
    pub fn encode_into<T: Serialize + ?Sized>(
        value: &T,
        out: Vec<u8>,
    ) -> Result<Vec<u8>, WireError> {
        postcard::to_extend(value, out).map_err(WireError)
    }

    /// A value in the binary framing.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, WireError> {
        encode_into(value, Vec::new())
    }

    /// A value from a whole body in the binary framing: bytes left over are an error, as JSON's
    /// trailing characters are.
    pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
        let (value, rest) = postcard::take_from_bytes(body).map_err(WireError)?;
        if rest.is_empty() {
            Ok(value)
        } else {
            Err(WireError(postcard::Error::DeserializeBadEncoding))
        }
    }

    /// Whether an `Accept` header value asks for the binary framing.
    pub fn accepts(accept: &str) -> bool {
        accept
            .split(',')
            .filter_map(|range| range.split(';').next())
            .any(|m| m.trim().eq_ignore_ascii_case(MEDIA_TYPE))
    }

    /// Whether a `Content-Type` header value is the binary framing.
    pub fn is_media_type(content_type: &str) -> bool {
        content_type
            .split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case(MEDIA_TYPE))
    }
}

pub use crate::records::RecordKind;

mod auth;
pub use auth::*;
mod cases;
pub use cases::*;
mod escrow;
pub use escrow::*;
mod keys;
pub use keys::*;
mod rekey;
pub use rekey::*;
mod society;
pub use society::*;
mod sync;
pub use sync::*;
mod transfers;
pub use transfers::*;

/// Integers in request bodies. JSON has one number type and JSON Schema counts `2.0` as the integer
/// 2, so a client (or generator) that writes a whole number with a fraction part sends a valid
/// integer: these read it as one. A real fraction, a negative number or one out of range is refused.
mod whole {
    use serde::de::{Deserializer, Error, Unexpected, Visitor};

    /// Integers a float spells exactly.
    const EXACT: f64 = 9_007_199_254_740_992.0;

    struct Whole;

    impl<'de> Visitor<'de> for Whole {
        type Value = u64;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a non-negative integer")
        }

        fn visit_u64<E: Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }

        fn visit_i64<E: Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
        }

        fn visit_f64<E: Error>(self, v: f64) -> Result<u64, E> {
            if v.fract() == 0.0 && (0.0..=EXACT).contains(&v) {
                // Whole, non-negative and at most 2^53: the conversion is exact.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Ok(v as u64)
            } else {
                Err(E::invalid_value(Unexpected::Float(v), &self))
            }
        }
    }

    /// A binary format (the [`super::wire`] framing) is not self-describing and has one spelling
    /// of an integer: it is read as one.
    pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        if d.is_human_readable() {
            d.deserialize_any(Whole)
        } else {
            d.deserialize_u64(Whole)
        }
    }

    pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let v = if d.is_human_readable() {
            d.deserialize_any(Whole)?
        } else {
            d.deserialize_u32(Whole)?
        };
        u32::try_from(v)
            .map_err(|_| D::Error::invalid_value(Unexpected::Unsigned(v), &"a 32-bit integer"))
    }
}

impl RecordKind {
    /// The envelope's kind byte, and the number stored beside the ciphertext.
    pub fn code(self) -> i16 {
        match self {
            RecordKind::CaseHeader => 1,
            RecordKind::Person => 2,
            RecordKind::Message => 3,
            RecordKind::Note => 4,
            RecordKind::Attachment => 5,
        }
    }

    pub fn from_code(code: i16) -> Option<RecordKind> {
        RecordKind::ALL.into_iter().find(|k| k.code() == code)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HealthResponse {
    pub status: String,
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::{CaseId, CaseStatus, MemberId, RecordId, SocietyId};

    #[test]
    fn a_batch_body_is_written_into_one_buffer_of_about_its_size() {
        for n in [0, 1, 2, 5] {
            let batch = sample_batch(n);
            let body = batch.to_json().unwrap();
            assert_eq!(body, serde_json::to_vec(&batch).unwrap());
            let bound = batch.json_len_bound();
            assert!(bound >= body.len(), "{bound} < {}", body.len());
            assert!(
                bound <= body.len() + body.len() / 4 + 16,
                "{bound} for {}",
                body.len()
            );
        }
    }

    fn sample_batch(n: u8) -> BatchRequest {
        let case = |n: u8| NewCaseDto {
            id: CaseId::new(),
            key_epoch: u32::MAX,
            keys: (0..2)
                .map(|i| WrappedKeyDto {
                    recipient_id: Uuid::from_u128(u128::MAX - i),
                    wrapped: Base64Bytes(vec![n; 200 + usize::from(n)]),
                })
                .collect(),
            records: (0..5)
                .map(|i| RecordWriteDto {
                    id: RecordId::new(),
                    kind: RecordKind::ALL[usize::from(n) % RecordKind::ALL.len()],
                    version: u64::MAX - i,
                    envelope: Base64Bytes(vec![n; 300 * usize::from(n) + 1]),
                })
                .collect(),
            commit: Base64Bytes(vec![n; 223]),
        };
        BatchRequest {
            cases: (0..n).map(|i| case(i + 1)).collect(),
        }
    }

    #[test]
    fn a_batch_in_the_binary_framing_says_what_its_json_says() {
        for n in [0, 1, 2, 5] {
            let batch = sample_batch(n);
            let bin = batch.to_wire().unwrap();
            assert!(batch.wire_len_bound() >= bin.len());
            let json = batch.to_json().unwrap();
            let from_bin: BatchRequest = wire::decode(&bin).unwrap();
            let from_json: BatchRequest = serde_json::from_slice(&json).unwrap();
            // The same request either way, down to the last byte of every envelope.
            assert_eq!(
                serde_json::to_value(&from_bin).unwrap(),
                serde_json::to_value(&from_json).unwrap()
            );
            assert_eq!(from_bin.to_wire().unwrap(), bin);
            if n > 0 {
                // No base64 and no field names: the bytes carried, and ids and varints (five 10-byte
                // versions here) around them.
                let carried: usize = batch
                    .cases
                    .iter()
                    .map(|c| {
                        c.commit.0.len()
                            + c.keys.iter().map(|k| k.wrapped.0.len()).sum::<usize>()
                            + c.records.iter().map(|r| r.envelope.0.len()).sum::<usize>()
                    })
                    .sum();
                assert!(bin.len() < carried + 256 * usize::from(n), "{}", bin.len());
                assert!(bin.len() * 5 < json.len() * 4);
            }
        }
    }

    /// The test vector of docs/crypto.md, "Binary framing": a case read, byte for byte. A change
    /// here is a change of the wire format.
    #[test]
    fn a_case_in_the_binary_framing_is_the_documented_bytes() {
        let at = 1_796_000_000_000;
        let dto = CaseDto {
            case: CaseSummaryDto {
                id: CaseId::from_uuid(Uuid::from_u128(0x0102)),
                society_id: SocietyId::from_uuid(Uuid::from_u128(0x0304)),
                status: CaseStatus::Tracing,
                key_epoch: 1,
                version: 2,
                seq: 300,
                created_by: MemberId::from_uuid(Uuid::from_u128(0x0506)),
                created_at: at,
                updated_at: at + 1,
                record_count: Some(1),
            },
            wrapped_key: Base64Bytes(vec![0xaa; 3]),
            records: vec![RecordDto {
                id: RecordId::from_uuid(Uuid::from_u128(0x0708)),
                kind: RecordKind::Note,
                version: 1,
                key_epoch: 1,
                author_id: MemberId::from_uuid(Uuid::from_u128(0x0506)),
                envelope: Base64Bytes(b"RFLE".to_vec()),
                seq: -1,
                created_at: at,
                updated_at: at,
            }],
            head_commit: Some(Base64Bytes(vec![0xcc; 2])),
            commits: vec![Base64Bytes(vec![0xdd])],
            older_keys: vec![],
        };
        let bin = wire::encode(&dto).unwrap();
        let hex: String = bin.iter().map(|b| format!("{b:02x}")).collect();
        let expected = concat!(
            // case: id, society_id (length 16, then the bytes), status (index 1: tracing),
            "1000000000000000000000000000000102",
            "1000000000000000000000000000000304",
            "01",
            // key_epoch 1, version 2, seq 300 (zigzag 600), created_by,
            "0102d804",
            "1000000000000000000000000000000506",
            // created_at, updated_at (zigzag varints), record_count Some(1) (zigzag 2),
            "80a0899fc568",
            "82a0899fc568",
            "0102",
            // wrapped_key, one record: id, kind (index 3: note), version, key_epoch, author_id,
            "03aaaaaa",
            "01",
            "1000000000000000000000000000000708",
            "03",
            "0101",
            "1000000000000000000000000000000506",
            // its envelope, seq -1 (zigzag 1), created_at, updated_at,
            "0452464c45",
            "01",
            "80a0899fc568",
            "80a0899fc568",
            // head_commit Some, commits [one of one byte], older_keys [] (key epoch 1).
            "0102cccc",
            "0101dd",
            "00",
        );
        assert_eq!(hex, expected);
        let back: CaseDto = wire::decode(&bin).unwrap();
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&dto).unwrap()
        );
    }

    #[test]
    fn a_binary_body_that_is_cut_short_or_runs_on_is_refused() {
        let bin = sample_batch(2).to_wire().unwrap();
        for cut in [0, 1, bin.len() / 2, bin.len() - 1] {
            assert!(wire::decode::<BatchRequest>(&bin[..cut]).is_err(), "{cut}");
        }
        let mut longer = bin.clone();
        longer.push(0);
        assert!(wire::decode::<BatchRequest>(&longer).is_err());
        // A record kind past the last variant.
        let one = sample_batch(1);
        let mut bad = one.to_wire().unwrap();
        // cases: 1 | id: 1 + 16 | key_epoch: 5 | keys: 1, 2 × (id 1 + 16, wrapped 2 + 201) |
        // records: 1 | the first record's id: 1 + 16 | its kind.
        let kind_at = 1 + 17 + 5 + 1 + 2 * (17 + 2 + 201) + 1 + 17;
        assert_eq!(bad[kind_at], 1, "the first record's kind (person)");
        bad[kind_at] = 9;
        assert!(wire::decode::<BatchRequest>(&bad).is_err());
    }

    #[test]
    fn accept_and_content_type_name_the_binary_framing() {
        assert!(wire::accepts("application/x-postcard"));
        assert!(wire::accepts(
            "application/json;q=0.5, Application/X-Postcard; q=1"
        ));
        assert!(!wire::accepts("application/json"));
        assert!(!wire::accepts("*/*"));
        assert!(!wire::accepts("application/x-postcardx"));
        assert!(wire::is_media_type("application/x-postcard"));
        assert!(wire::is_media_type(
            "application/x-postcard; charset=binary"
        ));
        assert!(!wire::is_media_type("application/json"));
    }

    #[test]
    fn base64_bytes_round_trip_and_reject_garbage() {
        let b = Base64Bytes(vec![0, 1, 2, 255]);
        let j = serde_json::to_string(&b).unwrap();
        assert_eq!(j, "\"AAEC/w==\"");
        assert_eq!(serde_json::from_str::<Base64Bytes>(&j).unwrap(), b);
        assert!(serde_json::from_str::<Base64Bytes>("\"not base64!\"").is_err());
        assert_eq!(format!("{b:?}"), "Base64Bytes(4 bytes)");
    }

    #[test]
    fn record_kind_codes() {
        for k in RecordKind::ALL {
            assert_eq!(RecordKind::from_code(k.code()), Some(k));
        }
        assert_eq!(RecordKind::from_code(0), None);
        assert_eq!(RecordKind::from_code(6), None);
    }

    #[test]
    fn whole_numbers_with_a_fraction_part_are_integers() {
        let w = |v: &str| {
            serde_json::from_str::<RecordWriteDto>(&format!(
                r#"{{"id":"01a20fa2-6d7b-76ae-8c51-a8a90959dcec","kind":"note","version":{v},"envelope":""}}"#
            ))
            .map(|r| r.version)
        };
        assert_eq!(w("7").unwrap(), 7);
        assert_eq!(w("7.0").unwrap(), 7);
        assert_eq!(w("2251799813685247.0").unwrap(), 2_251_799_813_685_247);
        assert!(w("7.5").is_err());
        assert!(w("-1").is_err());
        assert!(w("-1.0").is_err());
        assert!(w("1e300").is_err());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let r = serde_json::from_str::<StatusRequest>(r#"{"status":"tracing","commit":"","x":1}"#);
        assert!(r.is_err());
    }
}
