//! A caseworker whose age key is on a token, end to end on SQLite and PostgreSQL: the client accepts an
//! age plugin identity (what age-plugin-yubikey gives for a YubiKey), case keys are wrapped to the
//! token's recipient, and opening a case runs the plugin, which unwraps the data key. Without the plugin
//! the case cannot be opened, and the error says why.
//!
//! The token is `age-plugin-rfltest` (`src/bin/age-plugin-rfltest.rs`), a software stand-in built from
//! age's own X25519 code and run as a real plugin process over the age plugin protocol. The client
//! finds it the way age finds every plugin, on PATH: the test puts a directory holding a copy of it
//! first on PATH, and takes the copy away to show what happens without the plugin.
//!
//! PATH is process-wide, so everything that depends on it is in the one test of this file, in order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use rfl_client::{
    enrol_person_with_keys, sign_in_person, ClientError, DeviceKeys, SoftAuthenticator,
};
use rfl_crypto::{unwrap_data_key, wrap_data_key, AgeIdentity, CryptoError, DataKey};
use rfl_domain::Role;
use rfl_system_tests::{Backend, TestServer};
use secrecy::SecretString;

const PLUGIN: &str = "age-plugin-rfltest";

/// A directory with a copy of the plugin, put first on PATH; the copy can be taken away and put back.
struct PluginOnPath {
    dir: tempfile::TempDir,
}

impl PluginOnPath {
    fn install() -> PluginOnPath {
        let dir = tempfile::tempdir().unwrap();
        let p = PluginOnPath { dir };
        p.put_back();
        let old = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![p.dir.path().to_owned()];
        paths.extend(std::env::split_paths(&old));
        // Safe to call in edition 2021. It runs before any server, database connection or plugin
        // process exists, and no other test in this binary reads the environment.
        std::env::set_var("PATH", std::env::join_paths(paths).unwrap());
        p
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join(PLUGIN)
    }

    fn put_back(&self) {
        std::fs::copy(env!("CARGO_BIN_EXE_age-plugin-rfltest"), self.path()).unwrap();
    }

    fn take_away(&self) {
        std::fs::remove_file(self.path()).unwrap();
    }
}

/// `age-plugin-rfltest --generate [--pin PIN]`: an identity file like age-plugin-yubikey's.
fn generate(plugin: &Path, pin: Option<&str>) -> String {
    let mut cmd = Command::new(plugin);
    cmd.arg("--generate");
    if let Some(pin) = pin {
        cmd.args(["--pin", pin]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

type Messages = Arc<Mutex<Vec<String>>>;

/// The plugin identity from an identity file, its plugin's messages collected.
fn token(identity_file: &str) -> (AgeIdentity, Messages) {
    let id = AgeIdentity::from_identity_file(identity_file).unwrap();
    let messages = Messages::default();
    let m = messages.clone();
    id.set_plugin_message_hook(Arc::new(move |s: &str| {
        m.lock().unwrap().push(s.to_owned())
    }));
    (id, messages)
}

fn taken(m: &Messages) -> Vec<String> {
    std::mem::take(&mut *m.lock().unwrap())
}

const UNWRAP_MESSAGE: &str = "rfltest: unwrapping on the (software) token";

/// The key-level behaviour of a plugin identity: it wraps and unwraps through the plugin, asks for a
/// PIN if the token has one, and never prompts.
fn data_keys_through_the_plugin(plugin: &Path) {
    let case = uuid::Uuid::new_v4();
    let key = DataKey::generate().unwrap();

    let file = generate(plugin, None);
    assert!(
        file.lines()
            .any(|l| l.starts_with("# recipient: age1rfltest1")),
        "{file}"
    );
    assert!(
        file.lines().any(|l| l.starts_with("AGE-PLUGIN-RFLTEST-1")),
        "{file}"
    );
    let (id, messages) = token(&file);
    assert!(id.is_plugin());
    assert_eq!(id.recipient().plugin_name(), Some("rfltest"));
    let wrapped = wrap_data_key(&key, case, 1, id.recipient().as_age()).unwrap();
    let header = String::from_utf8_lossy(&wrapped);
    assert!(
        header.contains("\n-> rfltest "),
        "only the plugin claims the stanza: {header}"
    );
    assert!(!header.contains("X25519"), "{header}");
    let back = unwrap_data_key(&wrapped, case, 1, id.as_age()).unwrap();
    assert_eq!(back.expose_bytes(), key.expose_bytes());
    assert_eq!(taken(&messages), vec![UNWRAP_MESSAGE.to_owned()]);
    // The binding to case and epoch holds as for X25519 keys.
    assert!(matches!(
        unwrap_data_key(&wrapped, case, 2, id.as_age()),
        Err(CryptoError::WrongKeyBinding)
    ));
    // Another token does not open it (nothing for it: a plain unwrap failure).
    let (other, _) = token(&generate(plugin, None));
    assert!(matches!(
        unwrap_data_key(&wrapped, case, 1, other.as_age()),
        Err(CryptoError::Unwrap)
    ));

    // A token with a PIN: without one, the plugin's request is refused and the error says so.
    let (pinned, messages) = token(&generate(plugin, Some("424242")));
    let wrapped = wrap_data_key(&key, case, 1, pinned.recipient().as_age()).unwrap();
    let e = unwrap_data_key(&wrapped, case, 1, pinned.as_age()).unwrap_err();
    assert!(matches!(e, CryptoError::PluginInteraction(_)), "{e:?}");
    assert!(e.to_string().contains("PIN"), "{e}");
    taken(&messages);
    // A wrong PIN: the plugin fails, and says why through the hook (never through the error).
    pinned.set_plugin_pin(SecretString::from("000000"));
    let e = unwrap_data_key(&wrapped, case, 1, pinned.as_age()).unwrap_err();
    assert!(
        matches!(&e, CryptoError::PluginFailed(b) if b == PLUGIN),
        "{e:?}"
    );
    let shown = taken(&messages);
    assert!(shown.iter().any(|m| m.contains("wrong PIN")), "{shown:?}");
    assert!(!shown.iter().any(|m| m.contains("000000")), "{shown:?}");
    // The right PIN.
    pinned.set_plugin_pin(SecretString::from("424242"));
    let back = unwrap_data_key(&wrapped, case, 1, pinned.as_age()).unwrap();
    assert_eq!(back.expose_bytes(), key.expose_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caseworker_whose_age_key_is_on_a_token() {
    let plugin = PluginOnPath::install();
    data_keys_through_the_plugin(&plugin.path());

    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross A").await;

        // An identity file whose recipient line is not the token's is caught before enrolment, and
        // the code is not spent.
        let code = soc
            .admin
            .issue_enrolment_code(Role::Caseworker)
            .await
            .unwrap();
        let good = generate(&plugin.path(), None);
        let other = generate(&plugin.path(), None);
        let mixed = format!(
            "{}\n{}\n",
            other
                .lines()
                .find(|l| l.starts_with("# recipient:"))
                .unwrap(),
            good.lines().find(|l| l.starts_with("AGE-PLUGIN-")).unwrap()
        );
        let mut authenticator = SoftAuthenticator::new();
        let keys = DeviceKeys::generate_with_age(AgeIdentity::from_identity_file(&mixed).unwrap())
            .unwrap();
        let e = enrol_person_with_keys(&t.site(), &code.code, &mut authenticator, keys)
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Invalid(_)), "{e}");

        // The caseworker enrols with the token's identity; the admin certifies the keys, recipient
        // `age1rfltest1…` included, after comparing fingerprints.
        let (id, messages) = token(&good);
        let recipient = id.recipient();
        let keys = DeviceKeys::generate_with_age(id).unwrap();
        let mut cw = enrol_person_with_keys(&t.site(), &code.code, &mut authenticator, keys)
            .await
            .unwrap();
        assert_eq!(
            taken(&messages),
            vec![UNWRAP_MESSAGE.to_owned()],
            "the enrolment check"
        );
        soc.admin
            .certify_member(cw.member_id(), &cw.keys_fingerprint())
            .await
            .unwrap();
        cw.pin_root(&soc.root_fingerprint).await.unwrap();
        let certified = soc.admin.certified_member(cw.member_id()).await.unwrap();
        assert_eq!(certified.age_recipient(), &recipient);
        assert!(certified.age_recipient().is_plugin());

        // A case: its data key is wrapped to the caseworker's own symmetric key-wrapping key, which
        // is itself wrapped to the token; the enrolling session holds it unwrapped already, so the
        // token is not asked again, neither to create nor to open.
        let file = rfl_system_tests::case(11);
        let created = cw.create_case(&file).await.unwrap();
        let stored = t
            .store
            .get_case(cw.member_id(), created.id, None)
            .unwrap()
            .unwrap();
        assert!(stored.wrapped_key.starts_with(b"RFLS"), "self-wrapped");
        let opened = cw.open_case(created.id).await.unwrap();
        assert_eq!(opened.file.header, file.header);
        assert_eq!(opened.file.persons.len(), file.persons.len());
        assert!(taken(&messages).is_empty(), "no token use per case");

        // Signing in afresh: the keys come back from the authenticator's wrapping with the plugin
        // identity (a handle to the token) and its recipient; the token unwraps the key-wrapping key
        // once, for the first case opened, and never again in this session.
        let mut again = sign_in_person(&t.site(), cw.member_id(), &mut authenticator)
            .await
            .unwrap();
        again.pin_root(&soc.root_fingerprint).await.unwrap();
        assert!(again.keys().age.is_plugin());
        assert_eq!(again.keys().age.recipient(), recipient);
        let m = messages.clone();
        again
            .keys()
            .age
            .set_plugin_message_hook(Arc::new(move |s: &str| {
                m.lock().unwrap().push(s.to_owned())
            }));
        let opened = again.open_case(created.id).await.unwrap();
        assert_eq!(opened.file.header, file.header);
        let second = again
            .create_case(&rfl_system_tests::case(13))
            .await
            .unwrap();
        again.open_case(second.id).await.unwrap();
        again.open_case(created.id).await.unwrap();
        assert_eq!(
            taken(&messages),
            vec![UNWRAP_MESSAGE.to_owned()],
            "one token use per session"
        );

        // Without the plugin on PATH, a new session: a clear error, no panic, for opening and for
        // creating a case alike (both need the key-wrapping key the token holds).
        plugin.take_away();
        let mut third = sign_in_person(&t.site(), cw.member_id(), &mut authenticator)
            .await
            .unwrap();
        third.pin_root(&soc.root_fingerprint).await.unwrap();
        let e = third.open_case(created.id).await.unwrap_err();
        assert!(
            matches!(&e, ClientError::Crypto(CryptoError::PluginMissing(b)) if b == PLUGIN),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .contains("age-plugin-rfltest` not found on PATH"),
            "{e}"
        );
        let e = third
            .create_case(&rfl_system_tests::case(12))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ClientError::Crypto(CryptoError::PluginMissing(_))),
            "{e:?}"
        );
        plugin.put_back();
        third.open_case(created.id).await.unwrap();

        t.stop().await;
    }
}
