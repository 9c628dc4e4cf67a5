//! `age-plugin-rfltest`: a **software stand-in for a hardware token, for tests only**. It lets the
//! end-to-end tests exercise rfl's age plugin support (the path a YubiKey takes through
//! age-plugin-yubikey) with real cryptography and a real plugin process, on a machine without a
//! token. It protects nothing: its identity string *is* the secret key. Never use it for real data.
//!
//! - Identity `AGE-PLUGIN-RFLTEST-1…`: Bech32 of an X25519 secret key (32 bytes), optionally followed
//!   by a PIN the "token" asks for before it unwraps (as a YubiKey with a PIN policy does).
//! - Recipient `age1rfltest1…`: Bech32 of the X25519 public key.
//! - Wrapping and unwrapping are age's own X25519 code (`age::x25519::Recipient::wrap_file_key`,
//!   `age::x25519::Identity::unwrap_stanza`); the stanzas are re-tagged `rfltest` (from `X25519`)
//!   so that only this plugin claims them. No cryptography is written here.
//!
//! Usage: `age-plugin-rfltest --generate [--pin PIN]` prints a new identity in the layout of
//! age-plugin-yubikey's identity files (`# created: …`, `# recipient: age1rfltest1…`, the identity
//! line). age clients run it as `age-plugin-rfltest --age-plugin=recipient-v1|identity-v1`.
#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::io;
use std::process::ExitCode;

use age_core::format::{FileKey, Stanza};
use age_core::primitives::bech32_encode;
use age_core::secrecy::zeroize::Zeroizing;
use age_core::secrecy::ExposeSecret;
use age_plugin::{identity, recipient, run_state_machine, Callbacks, PluginHandler};
use bech32::primitives::decode::CheckedHrpstring;
use bech32::{Bech32, Hrp};

const PLUGIN_NAME: &str = "rfltest";
/// The tag of this plugin's stanzas; the body and argument are those of an age X25519 stanza.
const STANZA_TAG: &str = "rfltest";
const X25519_TAG: &str = "X25519";

fn bech32_bytes(s: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let parsed = CheckedHrpstring::new::<Bech32>(s).map_err(|_| "invalid Bech32".to_owned())?;
    Ok(Zeroizing::new(parsed.byte_iter().collect()))
}

/// age's X25519 identity for a raw 32-byte secret.
fn x25519_identity(secret: &[u8]) -> Result<age::x25519::Identity, String> {
    if secret.len() != 32 {
        return Err("an rfltest identity holds a 32-byte key".to_owned());
    }
    let hrp = Hrp::parse("age-secret-key-").map_err(|_| "bad HRP".to_owned())?;
    let encoded = Zeroizing::new(bech32_encode(hrp, secret).to_uppercase());
    encoded
        .parse()
        .map_err(|_| "not an X25519 secret key".to_owned())
}

/// age's X25519 recipient for a raw 32-byte public key.
fn x25519_recipient(public: &[u8]) -> Result<age::x25519::Recipient, String> {
    if public.len() != 32 {
        return Err("an rfltest recipient holds a 32-byte key".to_owned());
    }
    let hrp = Hrp::parse("age").map_err(|_| "bad HRP".to_owned())?;
    bech32_encode(hrp, public)
        .parse()
        .map_err(|_| "not an X25519 public key".to_owned())
}

/// The token: its X25519 key and the PIN it asks for, if any.
struct Token {
    key: age::x25519::Identity,
    pin: Option<Zeroizing<Vec<u8>>>,
}

impl Token {
    /// Identity bytes: the 32-byte secret, then the PIN (possibly empty = none).
    fn from_bytes(bytes: &[u8]) -> Result<Token, String> {
        let (secret, pin) = bytes
            .split_at_checked(32)
            .ok_or_else(|| "an rfltest identity holds a 32-byte key".to_owned())?;
        Ok(Token {
            key: x25519_identity(secret)?,
            pin: (!pin.is_empty()).then(|| Zeroizing::new(pin.to_vec())),
        })
    }
}

struct Handler;

impl PluginHandler for Handler {
    type RecipientV1 = Wrapper;
    type IdentityV1 = Unwrapper;

    fn recipient_v1(self) -> io::Result<Wrapper> {
        Ok(Wrapper {
            recipients: Vec::new(),
        })
    }

    fn identity_v1(self) -> io::Result<Unwrapper> {
        Ok(Unwrapper { tokens: Vec::new() })
    }
}

/// recipient-v1: wraps file keys to X25519 public keys.
struct Wrapper {
    recipients: Vec<age::x25519::Recipient>,
}

impl recipient::RecipientPluginV1 for Wrapper {
    fn add_recipient(
        &mut self,
        index: usize,
        plugin_name: &str,
        bytes: &[u8],
    ) -> Result<(), recipient::Error> {
        let r = (plugin_name == PLUGIN_NAME)
            .then_some(bytes)
            .ok_or_else(|| "not an rfltest recipient".to_owned())
            .and_then(x25519_recipient)
            .map_err(|message| recipient::Error::Recipient { index, message })?;
        self.recipients.push(r);
        Ok(())
    }

    fn add_identity(
        &mut self,
        index: usize,
        plugin_name: &str,
        bytes: &[u8],
    ) -> Result<(), recipient::Error> {
        let t = (plugin_name == PLUGIN_NAME)
            .then_some(bytes)
            .ok_or_else(|| "not an rfltest identity".to_owned())
            .and_then(Token::from_bytes)
            .map_err(|message| recipient::Error::Identity { index, message })?;
        self.recipients.push(t.key.to_public());
        Ok(())
    }

    fn labels(&mut self) -> HashSet<String> {
        HashSet::new()
    }

    fn wrap_file_keys(
        &mut self,
        file_keys: Vec<FileKey>,
        _callbacks: impl Callbacks<recipient::Error>,
    ) -> io::Result<Result<Vec<Vec<Stanza>>, Vec<recipient::Error>>> {
        let mut files = Vec::with_capacity(file_keys.len());
        for file_key in &file_keys {
            let mut stanzas = Vec::new();
            for r in &self.recipients {
                match age::Recipient::wrap_file_key(r, file_key) {
                    Ok((wrapped, _labels)) => stanzas.extend(wrapped.into_iter().map(|mut s| {
                        s.tag = STANZA_TAG.to_owned();
                        s
                    })),
                    Err(e) => {
                        return Ok(Err(vec![recipient::Error::Internal {
                            message: format!("wrapping failed: {e}"),
                        }]))
                    }
                }
            }
            files.push(stanzas);
        }
        Ok(Ok(files))
    }
}

/// identity-v1: unwraps this plugin's stanzas with the token's key, after its PIN if it has one.
struct Unwrapper {
    tokens: Vec<Token>,
}

impl identity::IdentityPluginV1 for Unwrapper {
    fn add_identity(
        &mut self,
        index: usize,
        plugin_name: &str,
        bytes: &[u8],
    ) -> Result<(), identity::Error> {
        let t = (plugin_name == PLUGIN_NAME)
            .then_some(bytes)
            .ok_or_else(|| "not an rfltest identity".to_owned())
            .and_then(Token::from_bytes)
            .map_err(|message| identity::Error::Identity { index, message })?;
        self.tokens.push(t);
        Ok(())
    }

    fn unwrap_file_keys(
        &mut self,
        files: Vec<Vec<Stanza>>,
        mut callbacks: impl Callbacks<identity::Error>,
    ) -> io::Result<HashMap<usize, Result<FileKey, Vec<identity::Error>>>> {
        let mut out = HashMap::new();
        for (file_index, stanzas) in files.into_iter().enumerate() {
            let mine: Vec<(usize, Stanza)> = stanzas
                .into_iter()
                .enumerate()
                .filter(|(_, s)| s.tag == STANZA_TAG)
                .map(|(i, mut s)| {
                    s.tag = X25519_TAG.to_owned();
                    (i, s)
                })
                .collect();
            if mine.is_empty() {
                continue;
            }
            let mut errors = Vec::new();
            'tokens: for (index, token) in self.tokens.iter().enumerate() {
                if let Some(pin) = &token.pin {
                    match callbacks.request_secret("Enter the PIN of the rfltest token")? {
                        Ok(given) if given.expose_secret().as_bytes() == pin.as_slice() => {}
                        Ok(_) => {
                            errors.push(identity::Error::Identity {
                                index,
                                message: "wrong PIN".to_owned(),
                            });
                            continue;
                        }
                        Err(_) => {
                            errors.push(identity::Error::Identity {
                                index,
                                message: "a PIN is required and none was given".to_owned(),
                            });
                            continue;
                        }
                    }
                }
                let _ = callbacks.message("rfltest: unwrapping on the (software) token")?;
                for (stanza_index, stanza) in &mine {
                    match age::Identity::unwrap_stanza(&token.key, stanza) {
                        Some(Ok(file_key)) => {
                            out.insert(file_index, Ok(file_key));
                            errors.clear();
                            break 'tokens;
                        }
                        Some(Err(_)) => errors.push(identity::Error::Stanza {
                            file_index,
                            stanza_index: *stanza_index,
                            message: "invalid rfltest stanza".to_owned(),
                        }),
                        None => {}
                    }
                }
            }
            if !errors.is_empty() {
                out.insert(file_index, Err(errors));
            }
        }
        Ok(out)
    }
}

/// Prints a new identity file: `# created`, `# recipient`, the identity line.
fn generate(pin: Option<&str>) -> Result<(), String> {
    let key = age::x25519::Identity::generate();
    let secret = bech32_bytes(key.to_string().expose_secret())?;
    let public = bech32_bytes(&key.to_public().to_string())?;
    let mut identity = Zeroizing::new(secret.to_vec());
    identity.extend_from_slice(pin.unwrap_or_default().as_bytes());
    age_plugin::print_new_identity(PLUGIN_NAME, &identity, &public);
    Ok(())
}

const USAGE: &str = "age-plugin-rfltest (tests only: a software stand-in for a hardware token)\n\
usage: age-plugin-rfltest --generate [--pin PIN]\n       age-plugin-rfltest --age-plugin=STATE_MACHINE";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let state_machine = args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--age-plugin=")
            .map(str::to_owned)
            .or_else(|| {
                (a == "--age-plugin")
                    .then(|| args.get(i + 1).cloned())
                    .flatten()
            })
    });
    if let Some(sm) = state_machine {
        return match run_state_machine(&sm, Handler) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("age-plugin-rfltest: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--generate"] => finish(generate(None)),
        ["--generate", "--pin", pin] if !pin.is_empty() => finish(generate(Some(pin))),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn finish(r: Result<(), String>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("age-plugin-rfltest: {e}");
            ExitCode::FAILURE
        }
    }
}
