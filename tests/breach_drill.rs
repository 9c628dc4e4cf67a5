//! Breach drill: run a workload full of distinctive personal data through the real server and client,
//! then read everything a thief of the host would get — the SQLite database file with its WAL and shared
//! memory file, a `pg_dump` of the PostgreSQL database, and every log line this process wrote at debug
//! level — and search it for each value in plain UTF-8, UTF-16 (LE and BE), base64 (all three
//! alignments) and hex (both cases). Zero hits allowed. A positive control runs the same search over the
//! client's decrypted export, so the scanner is shown to find what it looks for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine;
use rfl_domain::records::{Note, PersonRef, RedCrossMessage};
use rfl_domain::{ApproxDate, Date, Phone, Place};
use rfl_system_tests::{case, Backend, TestServer};

/// The values that must never reach the host in any readable form.
const SECRETS: &[&str] = &[
    "Xanthippe",
    "Vrolijkheidsbrug",
    "Quillonmarsh",
    "Ardashiravand",
    "+99 555 867 5309",
    "Qumbutarrah",
    "Zyvolkastan Ridge",
    "2019-11-09",
    "Oksanavytsia",
    "is safe in the camp near the blue water tower",
    "caseworker met the uncle at the clinic on Tuesday",
    "PHOTO-CAPTION-Xyloquent",
];

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn forms(value: &str) -> Vec<(String, Vec<u8>)> {
    let b = value.as_bytes();
    let mut out = vec![("plain".to_owned(), b.to_vec())];
    out.push((
        "utf16le".into(),
        value.encode_utf16().flat_map(|u| u.to_le_bytes()).collect(),
    ));
    out.push((
        "utf16be".into(),
        value.encode_utf16().flat_map(|u| u.to_be_bytes()).collect(),
    ));
    out.push(("hex".into(), hex_lower(b).into_bytes()));
    out.push(("HEX".into(), hex_lower(b).to_uppercase().into_bytes()));
    let std = base64::engine::general_purpose::STANDARD_NO_PAD;
    for shift in 0..3usize {
        // The value inside a longer base64 stream, at each of the three byte alignments: drop the
        // characters that depend on neighbouring bytes.
        let mut padded = vec![0u8; shift];
        padded.extend_from_slice(b);
        let enc = std.encode(&padded);
        let skip = if shift == 0 {
            0
        } else {
            (shift * 8).div_ceil(6)
        };
        let total_bits = padded.len() * 8;
        let keep_until = total_bits / 6; // characters fully determined by the value's bytes
        if keep_until > skip + 4 {
            out.push((
                format!("base64+{shift}"),
                enc.as_bytes()[skip..keep_until].to_vec(),
            ));
        }
    }
    out
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Every (value, form) found in `hay`.
fn hits(hay: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for s in SECRETS {
        for (form, needle) in forms(s) {
            if find(hay, &needle) {
                found.push(format!(
                    "value #{} as {form}",
                    SECRETS.iter().position(|x| x == s).unwrap_or(0)
                ));
            }
        }
    }
    found
}

async fn workload(t: &TestServer) -> Vec<u8> {
    let soc = t.society("Drill Red Cross").await;
    let cw = t.caseworker(&soc).await;
    let mut ids = Vec::new();
    for i in 0..20u64 {
        let mut f = case(1000 + i);
        {
            let enquirer = &mut f.persons[0].record.person;
            enquirer.names[0].given = "Xanthippe".into();
            enquirer.names[0].family = "Vrolijkheidsbrug".into();
            enquirer.contact.phones = vec![Phone {
                number: "+99 555 867 5309".into(),
                label: None,
            }];
        }
        {
            let sought = &mut f.persons[1].record.person;
            sought.names[0].given = "Quillonmarsh".into();
            sought.names[0].family = "Ardashiravand".into();
            sought.birth_date = Some(ApproxDate::full(1963, 7, 19));
            sought.place_of_birth = Some(Place {
                locality: Some("Qumbutarrah".into()),
                district: Some("Zyvolkastan Ridge".into()),
                region: None,
                country: Some("SY".into()),
                details: None,
            });
            sought.ethnic_or_clan_origin = Some("Oksanavytsia".into());
        }
        f.header.reference = Some(format!("DRILL-{i}"));
        f.header.consent.date = Some(Date::new(2019, 11, 9).unwrap());
        let id = cw.create_case(&f).await.unwrap().id;
        ids.push(id);
    }
    let id = ids[0];
    cw.add_message(
        id,
        RedCrossMessage {
            from: PersonRef::Enquirer,
            to: PersonRef::Index(1),
            date: Date::new(2026, 1, 2).unwrap(),
            language: "en".into(),
            body: "Xanthippe is safe in the camp near the blue water tower".into(),
            delivery_status: Default::default(),
        },
    )
    .await
    .unwrap();
    cw.add_note(
        id,
        Note {
            author: "KM".into(),
            text: "caseworker met the uncle at the clinic on Tuesday".into(),
            created: Date::new(2026, 1, 3).unwrap(),
        },
    )
    .await
    .unwrap();
    let photo = b"PHOTO-CAPTION-Xyloquent ".repeat(30_000); // 720 KB: three chunks
    cw.attach(
        id,
        &photo[..],
        "Vrolijkheidsbrug.jpg",
        "image/jpeg",
        Some("Xanthippe".into()),
        |_| {},
    )
    .await
    .unwrap();
    cw.update_case(id, |f| {
        f.header.reference = Some("Quillonmarsh".into());
        Ok(())
    })
    .await
    .unwrap();
    // Read everything back through the API, so read paths are exercised (and logged) too.
    for id in &ids {
        cw.open_case(*id).await.unwrap();
    }
    // The positive control: the client's decrypted export holds the values.
    let opened = cw.open_case(id).await.unwrap();
    let mut export = serde_json::to_vec(&opened.file).unwrap();
    let mut att = Vec::new();
    cw.download_attachment(&opened, opened.file.attachments[0].id, &mut att)
        .await
        .unwrap();
    export.extend_from_slice(&att);
    export
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_copy_of_the_server_holds_no_personal_data() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .try_init()
        .expect("the drill owns this process's logging");

    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let export = workload(&t).await;
        let control = hits(&export);
        for i in 0..SECRETS.len() {
            assert!(
                control.contains(&format!("value #{i} as plain")),
                "positive control: the scanner finds value #{i} in the decrypted export ({control:?})"
            );
        }

        let mut copy: Vec<(String, Vec<u8>)> = Vec::new();
        let db_url = t.db.url.clone();
        let sqlite = t.db.sqlite_path();
        let pg = t.db.pg_name().map(str::to_owned);
        let key_file = t.config.auth.signing_key_file.clone();
        t.server.stop().await;
        if let Some(path) = sqlite {
            for suffix in ["", "-wal", "-shm"] {
                let p = format!("{}{suffix}", path.display());
                if let Ok(bytes) = std::fs::read(&p) {
                    copy.push((format!("sqlite{suffix}"), bytes));
                }
            }
            let total: usize = copy.iter().map(|(_, b)| b.len()).sum();
            assert!(total > 100_000, "the database and its WAL hold the data");
        }
        if let Some(name) = pg {
            assert!(db_url.ends_with(&name));
            let out = std::process::Command::new("pg_dump")
                .arg("--no-owner")
                .arg(&db_url)
                .output()
                .expect("pg_dump must be installed (postgresql-client)");
            assert!(
                out.status.success(),
                "pg_dump failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.stdout.len() > 100_000, "the dump holds the data");
            copy.push(("pg_dump".into(), out.stdout));
        }
        copy.push((
            "token key".into(),
            std::fs::read(&key_file).unwrap_or_default(),
        ));
        for (name, bytes) in &copy {
            let found = hits(bytes);
            assert!(found.is_empty(), "{name}: personal data found: {found:?}");
        }
        drop(t.db);
    }
    let log_bytes = logs.0.lock().unwrap().clone();
    assert!(
        String::from_utf8_lossy(&log_bytes).contains("rfl_api::access"),
        "the server's request log was captured"
    );
    let found = hits(&log_bytes);
    assert!(found.is_empty(), "logs: personal data found: {found:?}");
}
