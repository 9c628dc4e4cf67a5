//! age plugin identities and recipients (feature `plugin`): the key is on a token (e.g. a YubiKey
//! through age-plugin-yubikey) and its plugin binary `age-plugin-<name>`, found on `PATH`, does the
//! wrapping and unwrapping over the age plugin protocol.
//!
//! This is the only place where `rfl-crypto` does IO: when a plugin key is *used* (not when it is
//! parsed), age runs the plugin binary. The callbacks given to the plugin never prompt: they pass
//! the plugin's messages to an optional hook, answer a PIN request with the PIN set beforehand
//! ([`crate::AgeIdentity::set_plugin_pin`]), and refuse everything else (confirmations, other
//! input, a PIN when none was set), which then fails with [`CryptoError::PluginInteraction`].

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use age::plugin::{IdentityPluginV1, RecipientPluginV1, ResolveError};
use age::{DecryptError, EncryptError};
use age_core::format::{FileKey, Stanza};
use secrecy::SecretString;

use crate::error::CryptoError;
use crate::keys::AgeRecipient;

/// Receives the messages an age plugin shows the person ("touch your YubiKey", or why it failed).
/// Show them; do not log them.
pub type PluginMessageHook = Arc<dyn Fn(&str) + Send + Sync>;

/// What a plugin asked for and did not get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refused {
    Pin,
    Confirmation,
    Input,
}

impl Refused {
    fn describe(self) -> &'static str {
        match self {
            Refused::Pin => "a PIN, and none was provided",
            Refused::Confirmation => "a confirmation, which rfl does not give",
            Refused::Input => "input, which rfl does not give",
        }
    }
}

/// How a plugin run failed, carried back through age inside an `io::Error` (age's own plugin
/// error type cannot be named outside age) and turned into a [`CryptoError`] by
/// [`decrypt_error`] / [`encrypt_error`].
#[derive(Debug, thiserror::Error)]
enum PluginFailure {
    #[error("the age plugin asked for {}", .0.describe())]
    Refused(Refused),
    #[error("{0} failed")]
    Failed(String),
}

impl PluginFailure {
    fn into_io(self) -> std::io::Error {
        std::io::Error::other(self)
    }

    fn to_crypto(&self) -> CryptoError {
        match self {
            PluginFailure::Refused(r) => CryptoError::PluginInteraction(r.describe()),
            PluginFailure::Failed(binary) => CryptoError::PluginFailed(binary.clone()),
        }
    }
}

/// What the callbacks may give a plugin.
#[derive(Clone, Default)]
struct PluginOptions {
    pin: Option<SecretString>,
    on_message: Option<PluginMessageHook>,
}

/// age callbacks that never prompt (see the module documentation). One per plugin run: it records
/// what it refused, so the failure can say why.
#[derive(Clone)]
struct NoPrompt {
    options: PluginOptions,
    refused: Arc<Mutex<Option<Refused>>>,
}

impl NoPrompt {
    fn new(options: PluginOptions) -> NoPrompt {
        NoPrompt {
            options,
            refused: Arc::default(),
        }
    }

    fn refuse(&self, what: Refused) {
        let mut r = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        r.get_or_insert(what);
    }

    fn refused(&self) -> Option<Refused> {
        *self.refused.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn show(&self, message: &str) {
        if let Some(hook) = &self.options.on_message {
            hook(message);
        }
    }

    /// The failure to report for a plugin run that did not succeed: what was refused, if anything,
    /// else that the plugin failed. The plugin's own messages go to the hook.
    fn failure(
        &self,
        binary: String,
        plugin_messages: impl Iterator<Item = String>,
    ) -> PluginFailure {
        for m in plugin_messages {
            self.show(&m);
        }
        match self.refused() {
            Some(what) => PluginFailure::Refused(what),
            None => PluginFailure::Failed(binary),
        }
    }
}

impl age::Callbacks for NoPrompt {
    fn display_message(&self, message: &str) {
        self.show(message);
    }

    fn confirm(&self, _message: &str, _yes: &str, _no: Option<&str>) -> Option<bool> {
        self.refuse(Refused::Confirmation);
        None
    }

    fn request_public_string(&self, _description: &str) -> Option<String> {
        self.refuse(Refused::Input);
        None
    }

    fn request_passphrase(&self, _description: &str) -> Option<SecretString> {
        match &self.options.pin {
            Some(pin) => Some(pin.clone()),
            None => {
                self.refuse(Refused::Pin);
                None
            }
        }
    }
}

fn binary_name(plugin: &str) -> String {
    format!("age-plugin-{plugin}")
}

fn resolve_error(e: &ResolveError) -> CryptoError {
    match e {
        ResolveError::MissingPlugin { binary_name } => {
            CryptoError::PluginMissing(binary_name.clone())
        }
        _ => CryptoError::KeyFormat("age plugin name"),
    }
}

fn io_failure(e: &std::io::Error) -> Option<CryptoError> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<PluginFailure>())
        .map(PluginFailure::to_crypto)
}

/// The [`CryptoError`] for a plugin failure age reported while decrypting, if it is one.
pub(crate) fn decrypt_error(e: &DecryptError) -> Option<CryptoError> {
    match e {
        DecryptError::PluginResolve(r) => Some(resolve_error(r)),
        DecryptError::Io(io) => io_failure(io),
        _ => None,
    }
}

/// The [`CryptoError`] for a plugin failure age reported while encrypting, if it is one.
pub(crate) fn encrypt_error(e: &EncryptError) -> Option<CryptoError> {
    match e {
        EncryptError::PluginResolve(r) => Some(resolve_error(r)),
        EncryptError::Io(io) => io_failure(io),
        _ => None,
    }
}

/// An age plugin recipient in canonical (lowercase) form.
#[derive(Clone)]
pub(crate) struct PluginRecipient {
    inner: age::plugin::Recipient,
    text: String,
}

impl PluginRecipient {
    /// Parses `age1<name>1…`. age accepts only lower case here, which is therefore the canonical form.
    pub(crate) fn parse(s: &str) -> Option<PluginRecipient> {
        let inner = age::plugin::Recipient::from_str(s).ok()?;
        Some(PluginRecipient {
            inner,
            text: s.to_owned(),
        })
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    pub(crate) fn plugin_name(&self) -> &str {
        self.inner.plugin()
    }

    /// Runs the plugin's recipient-v1 state machine. Never prompts.
    pub(crate) fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> Result<(Vec<Stanza>, HashSet<String>), EncryptError> {
        let callbacks = NoPrompt::new(PluginOptions::default());
        let plugin = RecipientPluginV1::new(
            self.inner.plugin(),
            std::slice::from_ref(&self.inner),
            &[],
            callbacks.clone(),
        )
        .map_err(EncryptError::PluginResolve)?;
        age::Recipient::wrap_file_key(&plugin, file_key).map_err(|e| {
            let messages: Vec<String> = match &e {
                EncryptError::Plugin(errors) => errors.iter().map(|e| e.to_string()).collect(),
                other => vec![other.to_string()],
            };
            let binary = binary_name(self.inner.plugin());
            EncryptError::Io(callbacks.failure(binary, messages.into_iter()).into_io())
        })
    }
}

/// An age plugin identity: the identity string (a handle to the token) and its recipient.
pub(crate) struct PluginIdentity {
    identity: age::plugin::Identity,
    text: String,
    recipient: AgeRecipient,
    options: Mutex<PluginOptions>,
}

impl PluginIdentity {
    pub(crate) fn new(identity: &str, recipient: &AgeRecipient) -> crate::Result<PluginIdentity> {
        // age accepts only upper case here (as plugins print identities).
        let parsed = age::plugin::Identity::from_str(identity)
            .map_err(|_| CryptoError::KeyFormat("age plugin identity"))?;
        let text = identity.to_owned();
        if recipient.plugin_name() != Some(parsed.plugin()) {
            return Err(CryptoError::KeyFormat(
                "age plugin identity and recipient are for different plugins",
            ));
        }
        Ok(PluginIdentity {
            identity: parsed,
            text,
            recipient: recipient.clone(),
            options: Mutex::default(),
        })
    }

    pub(crate) fn identity_string(&self) -> SecretString {
        SecretString::from(self.text.clone())
    }

    pub(crate) fn recipient(&self) -> &AgeRecipient {
        &self.recipient
    }

    fn options(&self) -> PluginOptions {
        self.options
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_pin(&self, pin: SecretString) {
        self.options
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pin = Some(pin);
    }

    pub(crate) fn set_message_hook(&self, hook: PluginMessageHook) {
        self.options
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .on_message = Some(hook);
    }

    /// Runs the plugin's identity-v1 state machine over the file's stanzas. Never prompts.
    pub(crate) fn unwrap_stanzas(
        &self,
        stanzas: &[Stanza],
    ) -> Option<Result<FileKey, DecryptError>> {
        let callbacks = NoPrompt::new(self.options());
        let plugin = match IdentityPluginV1::new(
            self.identity.plugin(),
            std::slice::from_ref(&self.identity),
            callbacks.clone(),
        ) {
            Ok(p) => p,
            Err(e) => return Some(Err(DecryptError::PluginResolve(e))),
        };
        match age::Identity::unwrap_stanzas(&plugin, stanzas) {
            Some(Ok(key)) => Some(Ok(key)),
            // No stanza for this identity and nothing refused: not ours.
            None if callbacks.refused().is_none() => None,
            other => {
                let messages: Vec<String> = match other {
                    Some(Err(DecryptError::Plugin(errors))) => {
                        errors.iter().map(|e| e.to_string()).collect()
                    }
                    Some(Err(e)) => vec![e.to_string()],
                    _ => Vec::new(),
                };
                let binary = binary_name(self.identity.plugin());
                Some(Err(DecryptError::Io(
                    callbacks.failure(binary, messages.into_iter()).into_io(),
                )))
            }
        }
    }
}
