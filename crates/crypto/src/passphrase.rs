//! Keystore protection: age scrypt passphrase encryption (binary age file).

use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};
use crate::wrap::{age_encrypt, read_limited};

/// Smallest accepted scrypt work factor (log2 N).
pub(crate) const MIN_LOG_N: u8 = 10;
/// Largest accepted scrypt work factor (log2 N); also the maximum accepted on open.
pub const MAX_LOG_N: u8 = 22;
/// Largest plaintext accepted by [`open_with_passphrase`] (keystores are small).
const MAX_PLAINTEXT: usize = 16 * 1024 * 1024;

/// Encrypt `plaintext` with age's scrypt recipient. `log_n` must be in 10..=22.
pub fn seal_with_passphrase(
    plaintext: &[u8],
    passphrase: &SecretString,
    log_n: u8,
) -> Result<Vec<u8>> {
    if !(MIN_LOG_N..=MAX_LOG_N).contains(&log_n) {
        return Err(CryptoError::InvalidWorkFactor(log_n));
    }
    let mut r = age::scrypt::Recipient::new(passphrase.clone());
    r.set_work_factor(log_n); // cannot panic: 0 < log_n < 64 checked above
    age_encrypt(plaintext, &r).map_err(|_| CryptoError::Passphrase)
}

/// Decrypt a passphrase-sealed file. Accepts work factors up to 22 (anything larger is
/// refused as a denial-of-service guard).
pub fn open_with_passphrase(
    sealed: &[u8],
    passphrase: &SecretString,
) -> Result<Zeroizing<Vec<u8>>> {
    let dec =
        age::Decryptor::new_buffered(sealed).map_err(|_| CryptoError::Malformed("age file"))?;
    if !dec.is_scrypt() {
        return Err(CryptoError::Malformed(
            "not a passphrase-encrypted age file",
        ));
    }
    let mut id = age::scrypt::Identity::new(passphrase.clone());
    id.set_max_work_factor(MAX_LOG_N);
    let reader = dec
        .decrypt(std::iter::once(&id as &dyn age::Identity))
        .map_err(|_| CryptoError::Passphrase)?;
    read_limited(reader, MAX_PLAINTEXT).map_err(|e| match e {
        CryptoError::DecryptionFailed => CryptoError::Passphrase,
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AgeIdentity;

    fn pw(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn roundtrip() {
        let s = seal_with_passphrase(b"keystore", &pw("correct horse"), 10).unwrap();
        let p = open_with_passphrase(&s, &pw("correct horse")).unwrap();
        assert_eq!(&p[..], b"keystore");
        let e = open_with_passphrase(b"", &pw("x")).unwrap_err();
        assert!(matches!(e, CryptoError::Malformed(_)));
    }

    #[test]
    fn wrong_passphrase() {
        let s = seal_with_passphrase(b"keystore", &pw("a"), 10).unwrap();
        assert!(matches!(
            open_with_passphrase(&s, &pw("b")),
            Err(CryptoError::Passphrase)
        ));
    }

    #[test]
    fn work_factor_bounds() {
        for n in [0u8, 9, 23, 64, 255] {
            assert!(matches!(
                seal_with_passphrase(b"x", &pw("a"), n),
                Err(CryptoError::InvalidWorkFactor(v)) if v == n
            ));
        }
    }

    #[test]
    fn tampered() {
        let mut s = seal_with_passphrase(b"keystore", &pw("a"), 10).unwrap();
        let n = s.len();
        s[n - 1] ^= 1;
        assert!(open_with_passphrase(&s, &pw("a")).is_err());
    }

    #[test]
    fn x25519_file_is_not_a_keystore() {
        let id = AgeIdentity::generate();
        let w = crate::wrap::age_encrypt(b"x", id.recipient().as_age()).unwrap();
        assert!(matches!(
            open_with_passphrase(&w, &pw("a")),
            Err(CryptoError::Malformed(_))
        ));
    }
}
