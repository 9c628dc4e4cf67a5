//! The JSON shapes of the REST API, shared by the server and the client so the two cannot disagree.
//! Everything here is what the server may see: ids, roles, statuses, times, and ciphertext as base64.
//! With the `openapi` feature the types also describe themselves for the OpenAPI document.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::{CaseId, CaseStatus, MemberId, RecordId, Role, SocietyId};

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

impl Serialize for Base64Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Base64Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine;
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map(Base64Bytes)
            .map_err(|_| serde::de::Error::custom("expected standard base64"))
    }
}

pub use crate::records::RecordKind;

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

    pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        d.deserialize_any(Whole)
    }

    pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let v = d.deserialize_any(Whole)?;
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
pub struct EnrolRequest {
    /// The one-time enrolment code an admin gave you.
    pub code: String,
    /// Ed25519 device public key (32 bytes).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte, pattern = "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$", min_length = 44, max_length = 44))]
    pub signing_key: Base64Bytes,
    /// age recipient (`age1…`: X25519, or an age plugin's such as `age1yubikey1…`) that case keys
    /// are wrapped to.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^age1[0-9a-z]+$", max_length = 1024)
    )]
    pub age_recipient: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrolResponse {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub member_id: MemberId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub society_id: SocietyId,
    pub role: Role,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub member_id: MemberId,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChallengeResponse {
    pub challenge_id: Uuid,
    /// Random bytes to sign with the device key, bound to `audience`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub challenge: Base64Bytes,
    pub audience: String,
    /// Unix seconds after which the challenge is refused.
    pub expires_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub challenge_id: Uuid,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub signature: Base64Bytes,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenResponse {
    pub token: String,
    pub token_type: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// After a passkey sign-in: the client's wrapping of the person's private keys for the
    /// authenticator used (opaque to the server; only that authenticator's PRF output opens it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Byte))]
    pub key_wrap: Option<Base64Bytes>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MeResponse {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub member_id: MemberId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub society_id: SocietyId,
    pub role: Role,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EscrowDto {
    /// The society escrow key's age recipient: every case key is also wrapped to it.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^age1[0-9a-z]+$", max_length = 1024)
    )]
    pub recipient: String,
    /// The escrow identity, age-encrypted to the society's offline recovery key (1 byte to 16 KiB).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte, min_length = 4, max_length = 21848))]
    pub wrapped_identity: Base64Bytes,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SocietyResponse {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: SocietyId,
    pub name: String,
    pub escrow: Option<EscrowDto>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MemberDto {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: MemberId,
    pub role: Role,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub signing_key: Base64Bytes,
    pub age_recipient: String,
    pub suspended: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MembersResponse {
    pub members: Vec<MemberDto>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrolmentCodeRequest {
    pub role: Role,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrolmentCodeResponse {
    /// Names the code for listing and revoking it: the hex SHA-256 the server keeps (not the code).
    pub id: String,
    /// Shown once; the server keeps only its hash.
    pub code: String,
    pub role: Role,
    /// Unix seconds.
    pub expires_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrolmentCodeInfo {
    /// The hex SHA-256 of the code.
    pub id: String,
    pub role: Role,
    /// Unix seconds.
    pub created_at: i64,
    pub expires_at: i64,
    /// Unix seconds; absent while unused.
    pub used_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrolmentCodesResponse {
    pub codes: Vec<EnrolmentCodeInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WrappedKeyDto {
    /// A member id, or the society id for the society escrow key.
    pub recipient_id: Uuid,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub wrapped: Base64Bytes,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecordWriteDto {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: RecordId,
    pub kind: RecordKind,
    /// 1 creates the record; n+1 replaces version n (refused with 409 if the stored version is not n).
    #[serde(deserialize_with = "whole::u64")]
    #[cfg_attr(feature = "openapi", schema(maximum = 9_223_372_036_854_775_807_u64))]
    pub version: u64,
    /// The sealed record envelope (see docs/crypto.md); the commit that lists it authenticates it.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub envelope: Base64Bytes,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewCaseDto {
    /// Chosen by the client (UUIDv7).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: CaseId,
    /// 1 for a new case.
    #[serde(deserialize_with = "whole::u32")]
    #[cfg_attr(feature = "openapi", schema(maximum = 2_147_483_647_u32))]
    pub key_epoch: u32,
    /// The data key wrapped to the creator, to any other holder, and to the society escrow key.
    pub keys: Vec<WrappedKeyDto>,
    pub records: Vec<RecordWriteDto>,
    /// The creating commit (format 2, seq 1), signed by the caller; it lists every record.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub commit: Base64Bytes,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    pub cases: Vec<NewCaseDto>,
}

impl BatchRequest {
    /// The JSON body, written into one buffer sized from the bytes the cases carry (base64 makes
    /// 4 of 3; field names, ids and punctuation are bounded per record and key): a batch is several
    /// megabytes, and growing a buffer by doubling copied it about twice over.
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.json_len_bound());
        serde_json::to_writer(&mut out, self)?;
        Ok(out)
    }

    /// At least the length of [`BatchRequest::to_json`], and not much more.
    fn json_len_bound(&self) -> usize {
        let b64 = |n: usize| n.div_ceil(3) * 4;
        let cases: usize = self
            .cases
            .iter()
            .map(|c| {
                let records: usize = c
                    .records
                    .iter()
                    .map(|r| b64(r.envelope.0.len()) + 128)
                    .sum();
                let keys: usize = c.keys.iter().map(|k| b64(k.wrapped.0.len()) + 96).sum();
                records + keys + b64(c.commit.0.len()) + 128
            })
            .sum();
        cases + 16
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BatchResponse {
    pub created: usize,
    /// Cases of the batch that were stored already (same id, created by the caller): a re-run of an
    /// interrupted import skips them.
    #[serde(default)]
    pub already_present: usize,
    /// The highest change sequence number the batch was given.
    pub last_seq: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CaseSummaryDto {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: CaseId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub society_id: SocietyId,
    pub status: CaseStatus,
    pub key_epoch: u32,
    /// The number of the case's head commit: every write (records or status) is the next one.
    pub version: u64,
    /// Change sequence number of the case's last change.
    pub seq: i64,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub created_by: MemberId,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
    pub record_count: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CaseListResponse {
    pub cases: Vec<CaseSummaryDto>,
    /// Pass as `after` for the next page; absent on the last page.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub next_after: Option<CaseId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecordDto {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: RecordId,
    pub kind: RecordKind,
    pub version: u64,
    pub key_epoch: u32,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub author_id: MemberId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub envelope: Base64Bytes,
    pub seq: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CaseDto {
    pub case: CaseSummaryDto,
    /// The case data key wrapped to the caller.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub wrapped_key: Base64Bytes,
    /// Every current record, in record-id order (bytewise), as the head commit lists them.
    pub records: Vec<RecordDto>,
    /// The head commit (its number is `case.version`). Absent only for a format-1 case, which
    /// clients refuse.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Byte))]
    pub head_commit: Option<Base64Bytes>,
    /// With `?since=N`: the commits numbered N+1 up to the one before the head, oldest first.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub commits: Vec<Base64Bytes>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WriteRecordsRequest {
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 1000))]
    pub records: Vec<RecordWriteDto>,
    /// The commit (format 2) that makes these writes: the next number after the case's head, its
    /// parent the head's hash, listing the case's whole state after the writes.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub commit: Base64Bytes,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    pub status: CaseStatus,
    /// The signed status commit: the next number after the head, the same records, this status.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Byte))]
    pub commit: Base64Bytes,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateSocietyRequest {
    /// The national society's name, e.g. "Belgian Red Cross-Flanders": 1 to 200 characters, not
    /// all white space (the server trims it).
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 200,
            pattern = "[^\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
        )
    )]
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateSocietyResponse {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub society_id: SocietyId,
    /// One-time enrolment code of the society's first admin; give it over a trusted channel.
    pub admin_enrolment_code: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HealthResponse {
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_body_is_written_into_one_buffer_of_about_its_size() {
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
                    kind: RecordKind::Person,
                    version: u64::MAX - i,
                    envelope: Base64Bytes(vec![n; 300 * usize::from(n) + 1]),
                })
                .collect(),
            commit: Base64Bytes(vec![n; 223]),
        };
        for n in [0, 1, 2, 5] {
            let batch = BatchRequest {
                cases: (0..n).map(|i| case(i + 1)).collect(),
            };
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
