//! Server configuration: `config/default.toml` (compiled in), an optional file, then `RFL_*` variables.

use std::path::Path;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;

/// The defaults, compiled into the binary so it runs from any folder.
pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub log: LogConfig,
    pub webauthn: WebauthnConfig,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub bind: String,
    pub workers: usize,
    pub keep_alive_secs: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: String,
    pub pool_size: u32,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub issuer: String,
    pub audience: String,
    pub token_ttl_secs: u64,
    pub challenge_ttl_secs: u64,
    pub signing_key_file: String,
    pub signing_key_refresh_secs: u64,
    pub enrolment_code_ttl_hours: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub json_body_bytes: usize,
    pub batch_body_bytes: usize,
    pub batch_max_cases: usize,
    pub record_bytes: usize,
    pub chunk_bytes: usize,
    pub page_max: i64,
    pub auth_per_minute_per_address: u32,
    pub auth_per_minute_per_account: u32,
    pub bulk_share_percent: u8,
}

/// The WebAuthn relying party: passkeys are bound to `rp_id`, and assertions must come from `rp_origin`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebauthnConfig {
    pub rp_id: String,
    pub rp_origin: String,
    pub rp_name: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(Box<figment::Error>),
    #[error("configuration: {0}")]
    Invalid(&'static str),
}

impl Config {
    /// Defaults, overlaid by `file` (if given), overlaid by the process's `RFL_*` variables
    /// (`RFL_DATABASE__URL` sets `database.url`).
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(f) = file {
            fig = fig.merge(Toml::file_exact(f));
        }
        let env = Env::prefixed("RFL_")
            .filter(|k| {
                let k = k.as_str().to_ascii_lowercase();
                !k.starts_with("client_") && !k.starts_with("test_")
            })
            .split("__");
        let config: Config = fig
            .merge(env)
            .extract()
            .map_err(|e| ConfigError::Load(Box::new(e)))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.auth.token_ttl_secs == 0 || self.auth.token_ttl_secs > 900 {
            return Err(ConfigError::Invalid(
                "auth.token_ttl_secs must be between 1 and 900",
            ));
        }
        if self.auth.signing_key_refresh_secs == 0 || self.auth.signing_key_refresh_secs > 300 {
            return Err(ConfigError::Invalid(
                "auth.signing_key_refresh_secs must be between 1 and 300",
            ));
        }
        if self.auth.challenge_ttl_secs == 0 || self.auth.challenge_ttl_secs > 600 {
            return Err(ConfigError::Invalid(
                "auth.challenge_ttl_secs must be between 1 and 600",
            ));
        }
        if self.limits.batch_max_cases == 0
            || self.limits.page_max <= 0
            || self.limits.auth_per_minute_per_address == 0
            || self.limits.auth_per_minute_per_account == 0
        {
            return Err(ConfigError::Invalid("limits must be positive"));
        }
        if !(1..=100).contains(&self.limits.bulk_share_percent) {
            return Err(ConfigError::Invalid(
                "limits.bulk_share_percent must be between 1 and 100",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests here read the process environment and one of them changes it: one at a time.
    static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn defaults_load() {
        let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
        let c = Config::load(None).unwrap();
        assert_eq!(c.auth.token_ttl_secs, 900);
        assert!(c.database.url.starts_with("sqlite://"));
    }

    #[test]
    fn environment_overrides_and_foreign_prefixes() {
        let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
        // One test owns these variable names; no other test sets them.
        std::env::set_var("RFL_CLIENT_SOMETHING", "x");
        std::env::set_var("RFL_TEST_SOMETHING", "x");
        std::env::set_var("RFL_LOG__FORMAT", "json");
        let c = Config::load(None).unwrap();
        assert_eq!(c.log.format, LogFormat::Json);
        std::env::set_var("RFL_LOG__FORMATT", "json");
        let err = Config::load(None).unwrap_err().to_string();
        std::env::remove_var("RFL_LOG__FORMATT");
        std::env::remove_var("RFL_LOG__FORMAT");
        assert!(err.contains("formatt"), "{err}");
    }

    #[test]
    fn unknown_keys_are_an_error() {
        let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
        let dir = std::env::temp_dir().join(format!("rfl-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("bad.toml");
        std::fs::write(&f, "[database]\nurll = \"x\"\n").unwrap();
        let err = Config::load(Some(&f)).unwrap_err().to_string();
        assert!(err.contains("urll"), "{err}");
        std::fs::write(&f, "[auth]\ntoken_ttl_secs = 3600\n").unwrap();
        assert!(
            Config::load(Some(&f)).is_err(),
            "tokens longer than 15 minutes are refused"
        );
        for share in [0, 101] {
            std::fs::write(&f, format!("[limits]\nbulk_share_percent = {share}\n")).unwrap();
            let err = Config::load(Some(&f)).unwrap_err().to_string();
            assert!(err.contains("bulk_share_percent"), "{err}");
        }
    }
}
