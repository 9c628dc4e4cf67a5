//! Identifier newtypes over [`uuid::Uuid`].

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// A string could not be parsed as an identifier.
///
/// The message deliberately does not repeat the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid identifier: expected a UUID")]
pub struct InvalidId;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered identifier (UUIDv7).
            #[allow(clippy::new_without_default)]
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID.
            #[must_use]
            pub const fn from_uuid(u: Uuid) -> Self {
                Self(u)
            }

            /// The underlying UUID.
            #[must_use]
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                Uuid::parse_str(s).map(Self).map_err(|_| InvalidId)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    };
}

id_type!(
    /// Identifies a case (one enquiry, its persons and records).
    CaseId
);
id_type!(
    /// Identifies one encrypted record inside a case.
    RecordId
);
id_type!(
    /// Identifies a member (a user) of a National Society.
    MemberId
);
id_type!(
    /// Identifies a National Red Cross or Red Crescent Society.
    SocietyId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_is_v7_and_unique() {
        let a = CaseId::new();
        let b = CaseId::new();
        assert_ne!(a, b);
        assert_eq!(a.as_uuid().get_version_num(), 7);
    }

    #[test]
    fn display_parse_round_trip() {
        let id = RecordId::new();
        let s = id.to_string();
        assert_eq!(s.len(), 36);
        assert_eq!(s.matches('-').count(), 4);
        assert_eq!(s.parse::<RecordId>().unwrap(), id);
    }

    #[test]
    fn parse_rejects_garbage_without_echoing_it() {
        let err = "not-a-uuid-secret".parse::<MemberId>().unwrap_err();
        assert_eq!(err, InvalidId);
        assert!(!err.to_string().contains("secret"));
    }

    #[test]
    fn serde_is_transparent() {
        let u = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        let id = SocietyId::from_uuid(u);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"01234567-89ab-cdef-0123-456789abcdef\"");
        let back: SocietyId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);
        assert_eq!(back.as_uuid(), &u);
        assert_eq!(Uuid::from(back), u);
    }

    #[test]
    fn ordering_follows_uuid() {
        let a = CaseId::from_uuid(Uuid::from_u128(1));
        let b = CaseId::from_uuid(Uuid::from_u128(2));
        assert!(a < b);
    }
}
