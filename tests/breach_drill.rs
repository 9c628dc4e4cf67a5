//! Breach drill: run a workload full of distinctive personal data through the real server and client,
//! then read everything a thief of the host would get, and search it for each value in plain UTF-8,
//! UTF-16 (LE and BE), base64 and base64url (each at all three byte alignments) and hex (both cases).
//! Zero hits allowed. What is read:
//!
//! - SQLite: every file in the database's folder (the database, its WAL and shared memory file);
//! - PostgreSQL: a `pg_dump` of the database, and every regular file under the server's data
//!   directory (`SHOW data_directory`, after a `CHECKPOINT`), and the server's own log file (below);
//! - every log line this process wrote at debug level, the in-process server's included;
//! - the server's token signing key file.
//!
//! The values carry a random part drawn for each run, so they can be searched for across the whole
//! PostgreSQL data directory, whose other databases and recycled WAL hold other tests' data, without a
//! false hit. The one value that cannot (a date) is searched for in this run's own files only: the
//! SQLite folder, the dump, this database's own directory under the data directory, and the logs.
//!
//! Positive controls show the search finds what it looks for: every form it searches for is found in
//! a real encoder's output of a text holding the value (`every_form_the_drill_searches_for_is_found`),
//! also when a chunk boundary of the streamed search splits it; the workload's values are found in the
//! client's decrypted export; and this run's case ids, as stored, are found in the database files
//! read (so those are the files that hold this run's data, flushed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use rfl_domain::records::{Note, PersonRef, RedCrossMessage};
use rfl_domain::{ApproxDate, CaseId, Date, Phone, Place};
use rfl_system_tests::{case, Backend, TestServer};

/// Files larger than this are not read (PostgreSQL splits relations into 1 GiB segments).
const MAX_FILE_BYTES: u64 = 1 << 30;

/// The streamed search reads files in chunks of this size.
const CHUNK_BYTES: usize = 4 << 20;

/// The personal data the workload writes, drawn afresh for every run.
struct Secrets {
    given: String,
    family: String,
    phone: String,
    sought_given: String,
    sought_family: String,
    locality: String,
    district: String,
    consent_date: Date,
    clan: String,
    message: String,
    note: String,
    caption: String,
}

fn random_bytes(n: usize) -> Vec<u8> {
    use ring::rand::SecureRandom;
    let mut b = vec![0u8; n];
    ring::rand::SystemRandom::new().fill(&mut b).unwrap();
    b
}

/// `n` random lower-case letters (4.7 bits each).
fn letters(n: usize) -> String {
    random_bytes(n)
        .iter()
        .map(|x| char::from(b'a' + x % 26))
        .collect()
}

/// `n` random decimal digits.
fn digits(n: usize) -> String {
    random_bytes(n)
        .iter()
        .map(|x| char::from(b'0' + x % 10))
        .collect()
}

impl Secrets {
    fn draw() -> Secrets {
        let tag = || letters(10);
        Secrets {
            given: format!("Xanthippe{}", tag()),
            family: format!("Vrolijkheidsbrug{}", tag()),
            phone: format!("+99 555 {} {}", digits(5), digits(5)),
            sought_given: format!("Quillonmarsh{}", tag()),
            sought_family: format!("Ardashiravand{}", tag()),
            locality: format!("Qumbutarrah{}", tag()),
            district: format!("Zyvolkastan Ridge {}", tag()),
            consent_date: Date::new(2019, 11, 9).unwrap(),
            clan: format!("Oksanavytsia{}", tag()),
            message: format!("is safe in the camp near the blue water tower {}", tag()),
            note: format!(
                "caseworker met the uncle at the clinic on Tuesday {}",
                tag()
            ),
            caption: format!("PHOTO-CAPTION-Xyloquent{}", tag()),
        }
    }

    /// Every value with a name for reports (the name reveals nothing), and whether it is unique to this
    /// run (has a random part of at least 33 bits) and so may be searched for in other tests' data.
    fn values(&self) -> Vec<(&'static str, String, bool)> {
        vec![
            ("enquirer given name", self.given.clone(), true),
            ("enquirer family name", self.family.clone(), true),
            ("enquirer phone", self.phone.clone(), true),
            ("sought given name", self.sought_given.clone(), true),
            ("sought family name", self.sought_family.clone(), true),
            ("sought birth locality", self.locality.clone(), true),
            ("sought birth district", self.district.clone(), true),
            ("consent date", self.consent_date.to_string(), false),
            ("sought clan", self.clan.clone(), true),
            ("message text", self.message.clone(), true),
            ("note text", self.note.clone(), true),
            ("photo caption", self.caption.clone(), true),
        ]
    }
}

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

/// The base64 characters that encode `value` alone when it sits in a longer stream `shift` bytes past
/// a 3-byte boundary: the characters that also depend on neighbouring bytes are dropped. None if too
/// few are left to be a meaningful needle.
fn base64_inner(
    engine: &base64::engine::GeneralPurpose,
    value: &[u8],
    shift: usize,
) -> Option<Vec<u8>> {
    let mut padded = vec![0u8; shift];
    padded.extend_from_slice(value);
    let enc = engine.encode(&padded);
    let skip = (shift * 8).div_ceil(6);
    let keep_until = padded.len() * 8 / 6; // characters fully determined by the value's bytes
    (keep_until > skip + 4).then(|| enc.as_bytes()[skip..keep_until].to_vec())
}

/// Every form of `value` the drill searches for, by name.
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
    for (name, engine) in [
        ("base64", base64::engine::general_purpose::STANDARD_NO_PAD),
        (
            "base64url",
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ),
    ] {
        for shift in 0..3usize {
            if let Some(n) = base64_inner(&engine, b, shift) {
                out.push((format!("{name}+{shift}"), n));
            }
        }
    }
    out
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A search for many needles at once: one pass over the haystack, candidates picked by their first two
/// bytes. Files are searched in chunks, each with the end of the one before it, so that a needle split
/// by a chunk boundary is found.
struct Scanner {
    needles: Vec<(String, Vec<u8>)>,
    /// Which two-byte starts some needle has (a bit per value).
    starts: Vec<u64>,
    by_start: HashMap<usize, Vec<usize>>,
    longest: usize,
}

impl Scanner {
    fn new(needles: Vec<(String, Vec<u8>)>) -> Scanner {
        let mut starts = vec![0u64; 1 << 10];
        let mut by_start: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, (label, n)) in needles.iter().enumerate() {
            assert!(n.len() >= 2, "needle {label} is too short");
            let k = (usize::from(n[0]) << 8) | usize::from(n[1]);
            starts[k >> 6] |= 1 << (k & 63);
            by_start.entry(k).or_default().push(i);
        }
        let longest = needles.iter().map(|(_, n)| n.len()).max().unwrap_or(2);
        Scanner {
            needles,
            starts,
            by_start,
            longest,
        }
    }

    /// A scanner for every form of each `(name, value)`, labelled "name as form".
    fn for_values<'a>(values: impl IntoIterator<Item = (&'a str, &'a str)>) -> Scanner {
        let mut needles = Vec::new();
        for (name, value) in values {
            for (form, n) in forms(value) {
                needles.push((format!("{name} as {form}"), n));
            }
        }
        Scanner::new(needles)
    }

    /// Adds the label of every needle that occurs in `hay` to `found`.
    fn find(&self, hay: &[u8], found: &mut BTreeSet<String>) {
        if hay.len() < 2 {
            return;
        }
        for i in 0..hay.len() - 1 {
            let k = (usize::from(hay[i]) << 8) | usize::from(hay[i + 1]);
            if self.starts[k >> 6] & (1 << (k & 63)) == 0 {
                continue;
            }
            for &n in &self.by_start[&k] {
                let (label, needle) = &self.needles[n];
                if hay[i..].starts_with(needle) {
                    found.insert(label.clone());
                }
            }
        }
    }

    /// [`Scanner::find`] over everything `r` yields, read `chunk` bytes at a time; returns the number of
    /// bytes read.
    fn find_streamed(
        &self,
        mut r: impl Read,
        chunk: usize,
        found: &mut BTreeSet<String>,
    ) -> std::io::Result<u64> {
        let keep = self.longest - 1;
        let mut buf = vec![0u8; keep + chunk.max(1)];
        let mut carried = 0usize;
        let mut total = 0u64;
        loop {
            let n = match r.read(&mut buf[carried..]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            total += n as u64;
            let end = carried + n;
            self.find(&buf[..end], found);
            // Carry the last `keep` bytes: a needle that starts there and ends in the next chunk is
            // searched for whole.
            let tail = end.min(keep);
            buf.copy_within(end - tail..end, 0);
            carried = tail;
        }
        Ok(total)
    }
}

/// What reading a set of files came to.
#[derive(Debug, Default)]
struct Reading {
    files: usize,
    bytes: u64,
    /// Files that could not be opened or read (no permission, or removed while the drill ran).
    unreadable: usize,
    too_large: usize,
}

/// Every regular file under `dir`, following symbolic links, each directory once. Directories that
/// cannot be listed are counted in `unreadable`.
fn files_under(dir: &Path, unreadable: &mut usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(canonical) = d.canonicalize() else {
            *unreadable += 1;
            continue;
        };
        if !seen.insert(canonical) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&d) else {
            *unreadable += 1;
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match std::fs::metadata(&p) {
                Ok(m) if m.is_dir() => todo.push(p),
                Ok(m) if m.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// Searches each file with `scanner` (streamed), adding "file: label" to `hits` for what is found.
fn scan_files(
    scanner: &Scanner,
    files: &[PathBuf],
    reading: &mut Reading,
    hits: &mut BTreeSet<String>,
) {
    for path in files {
        let Ok(meta) = std::fs::metadata(path) else {
            reading.unreadable += 1;
            continue;
        };
        if meta.len() > MAX_FILE_BYTES {
            reading.too_large += 1;
            continue;
        }
        let Ok(file) = std::fs::File::open(path) else {
            reading.unreadable += 1;
            continue;
        };
        let mut found = BTreeSet::new();
        match scanner.find_streamed(file, CHUNK_BYTES, &mut found) {
            Ok(n) => {
                reading.files += 1;
                reading.bytes += n;
            }
            Err(_) => reading.unreadable += 1,
        }
        for label in found {
            hits.insert(format!("{}: {label}", path.display()));
        }
    }
}

/// One value from `psql` (as the superuser of the test server), trimmed.
fn psql(admin_url: &str, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            admin_url,
            "-c",
            sql,
        ])
        .output()
        .expect("psql must be installed (postgresql-client)");
    assert!(
        out.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The PostgreSQL server's log files, as far as this process can find them: with `logging_collector`
/// on, every file in `log_directory`; otherwise the file the postmaster's standard error is open on
/// (its pid is the first line of `postmaster.pid`; `/proc/<pid>/fd/2` names the file, for root or the
/// server's own user), when that is a regular file. Otherwise why they cannot be found.
fn pg_server_log(admin_url: &str, data_dir: &Path) -> Result<Vec<PathBuf>, String> {
    if psql(admin_url, "SHOW logging_collector") == "on" {
        let dir = PathBuf::from(psql(admin_url, "SHOW log_directory"));
        let dir = if dir.is_absolute() {
            dir
        } else {
            data_dir.join(dir)
        };
        let mut unreadable = 0;
        let files = files_under(&dir, &mut unreadable);
        return if files.is_empty() {
            Err(format!(
                "logging_collector is on, but {} holds no file this process can read",
                dir.display()
            ))
        } else {
            Ok(files)
        };
    }
    let pid_file = data_dir.join("postmaster.pid");
    let pid =
        std::fs::read_to_string(&pid_file).map_err(|e| format!("{}: {e}", pid_file.display()))?;
    let pid = pid.lines().next().unwrap_or_default().trim().to_owned();
    let stderr = PathBuf::from(format!("/proc/{pid}/fd/2"));
    let target = std::fs::read_link(&stderr).map_err(|e| {
        format!(
            "logging_collector is off and the server's standard error ({}) cannot be resolved: {e}",
            stderr.display()
        )
    })?;
    match std::fs::metadata(&target) {
        Ok(m) if m.is_file() => Ok(vec![target]),
        _ => Err(format!(
            "logging_collector is off and the server's standard error goes to {}, not a file this \
             process can read",
            target.display()
        )),
    }
}

/// A PostgreSQL cluster's files, read after a CHECKPOINT: this database's own directory with every
/// value (`all`), everything else in the data directory and the server's log with the values unique
/// to this run (`unique`). Both scanners also hold the control needles (this run's case ids).
fn scan_postgres_files(
    admin_url: &str,
    database: &str,
    all: &Scanner,
    unique: &Scanner,
    hits: &mut BTreeSet<String>,
) {
    psql(admin_url, "CHECKPOINT");
    let data_dir = PathBuf::from(psql(admin_url, "SHOW data_directory"));
    let oid = psql(
        admin_url,
        &format!("SELECT oid FROM pg_database WHERE datname = '{database}'"),
    );
    assert!(!oid.is_empty(), "the test database is listed");
    let own_dir = data_dir.join("base").join(&oid);
    let mut unreadable = 0;
    let files = files_under(&data_dir, &mut unreadable);
    assert!(
        !files.is_empty(),
        "the breach drill reads PostgreSQL's data directory {}: run it on the database host as root \
         or as the server's user (CI runs as root)",
        data_dir.display()
    );
    let (own, rest): (Vec<PathBuf>, Vec<PathBuf>) =
        files.into_iter().partition(|p| p.starts_with(&own_dir));
    let mut own_reading = Reading::default();
    let mut own_hits = BTreeSet::new();
    scan_files(all, &own, &mut own_reading, &mut own_hits);
    let mut rest_reading = Reading {
        unreadable,
        ..Reading::default()
    };
    let mut rest_hits = BTreeSet::new();
    scan_files(unique, &rest, &mut rest_reading, &mut rest_hits);
    eprintln!(
        "breach drill: PostgreSQL data directory {}: this database {own_reading:?}, the rest \
         {rest_reading:?}",
        data_dir.display()
    );
    assert!(
        own_reading.files > 0 && own_reading.unreadable == 0,
        "this database's files under {} were all read: {own_reading:?}",
        own_dir.display()
    );
    assert!(
        own_hits.iter().any(|h| h.contains("control:")),
        "positive control: this run's case ids are found in this database's files after CHECKPOINT"
    );
    assert!(
        rest_hits
            .iter()
            .any(|h| h.contains("/pg_wal/") && h.contains("control:")),
        "positive control: this run's case ids are found in the WAL"
    );
    hits.extend(own_hits.into_iter().chain(rest_hits));

    match pg_server_log(admin_url, &data_dir) {
        Ok(logs) => {
            let mut reading = Reading::default();
            scan_files(unique, &logs, &mut reading, hits);
            eprintln!("breach drill: PostgreSQL server log {logs:?}: {reading:?}");
            assert!(reading.files > 0, "the server log was read: {reading:?}");
        }
        Err(why) => eprintln!("breach drill: the PostgreSQL server log is not scanned: {why}"),
    }
}

async fn workload(t: &TestServer, s: &Secrets) -> (Vec<u8>, Vec<CaseId>) {
    let soc = t.society("Drill Red Cross").await;
    let cw = t.caseworker(&soc).await;
    let mut ids = Vec::new();
    for i in 0..20u64 {
        let mut f = case(1000 + i);
        {
            let enquirer = &mut f.persons[0].record.person;
            enquirer.names[0].given = s.given.clone();
            enquirer.names[0].family = s.family.clone();
            enquirer.contact.phones = vec![Phone {
                number: s.phone.clone(),
                label: None,
            }];
        }
        {
            let sought = &mut f.persons[1].record.person;
            sought.names[0].given = s.sought_given.clone();
            sought.names[0].family = s.sought_family.clone();
            sought.birth_date = Some(ApproxDate::full(1963, 7, 19));
            sought.place_of_birth = Some(Place {
                locality: Some(s.locality.clone()),
                district: Some(s.district.clone()),
                region: None,
                country: Some("SY".into()),
                details: None,
            });
            sought.ethnic_or_clan_origin = Some(s.clan.clone());
        }
        f.header.reference = Some(format!("DRILL-{i}"));
        f.header.consent.date = Some(s.consent_date);
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
            body: format!("{} {}", s.given, s.message),
            delivery_status: Default::default(),
        },
    )
    .await
    .unwrap();
    cw.add_note(
        id,
        Note {
            author: "KM".into(),
            text: s.note.clone(),
            created: Date::new(2026, 1, 3).unwrap(),
        },
    )
    .await
    .unwrap();
    // About 720 KB: three chunks.
    let photo = format!("{} ", s.caption).repeat(720_000 / (s.caption.len() + 1));
    cw.attach(
        id,
        photo.as_bytes(),
        &format!("{}.jpg", s.family),
        "image/jpeg",
        Some(s.given.clone()),
        |_| {},
    )
    .await
    .unwrap();
    cw.update_case(id, |f| {
        f.header.reference = Some(s.sought_given.clone());
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
    (export, ids)
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

    let secrets = Secrets::draw();
    let values = secrets.values();
    let every = Scanner::for_values(values.iter().map(|(n, v, _)| (*n, v.as_str())));
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let (export, ids) = workload(&t, &secrets).await;
        let mut control = BTreeSet::new();
        every.find(&export, &mut control);
        for (name, _, _) in &values {
            assert!(
                control.contains(&format!("{name} as plain")),
                "positive control: the scanner finds the {name} in the decrypted export ({control:?})"
            );
        }
        // The search of database files also looks for this run's case ids as stored (16 raw bytes):
        // finding them shows the files read are the ones holding this run's data.
        let needles = |unique_only: bool| {
            let mut n: Vec<(String, Vec<u8>)> = values
                .iter()
                .filter(|(_, _, unique)| *unique || !unique_only)
                .flat_map(|(name, v, _)| {
                    forms(v)
                        .into_iter()
                        .map(move |(form, b)| (format!("{name} as {form}"), b))
                })
                .collect();
            n.extend(ids.iter().map(|id| {
                (
                    format!("control: case id {id}"),
                    id.as_uuid().as_bytes().to_vec(),
                )
            }));
            n
        };
        let all = Scanner::new(needles(false));
        let unique = Scanner::new(needles(true));

        let mut hits = BTreeSet::new();
        let sqlite = t.db.sqlite_path();
        let pg = t.db.pg_name().map(str::to_owned);
        let key_file = t.config.auth.signing_key_file.clone();
        t.server.stop().await;
        if let Some(path) = sqlite {
            let mut unreadable = 0;
            let files = files_under(path.parent().unwrap(), &mut unreadable);
            let mut reading = Reading {
                unreadable,
                ..Reading::default()
            };
            scan_files(&all, &files, &mut reading, &mut hits);
            assert!(
                reading.bytes > 100_000 && reading.unreadable == 0,
                "the database and its WAL hold the data: {reading:?}"
            );
            assert!(
                hits.iter().any(|h| h.contains("control:")),
                "positive control: this run's case ids are found in the SQLite files"
            );
        }
        if let Some(name) = pg {
            let out = std::process::Command::new("pg_dump")
                .arg("--no-owner")
                .arg(&t.db.url)
                .output()
                .expect("pg_dump must be installed (postgresql-client)");
            assert!(
                out.status.success(),
                "pg_dump failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.stdout.len() > 100_000, "the dump holds the data");
            let mut found = BTreeSet::new();
            every.find(&out.stdout, &mut found);
            hits.extend(found.into_iter().map(|h| format!("pg_dump: {h}")));
            scan_postgres_files(
                &rfl_storage::testing::admin_url(),
                &name,
                &all,
                &unique,
                &mut hits,
            );
        }
        let mut found = BTreeSet::new();
        every.find(&std::fs::read(&key_file).unwrap(), &mut found);
        hits.extend(found.into_iter().map(|h| format!("token key: {h}")));
        let personal: Vec<&String> = hits.iter().filter(|h| !h.contains("control:")).collect();
        assert!(
            personal.is_empty(),
            "{backend:?}: personal data found: {personal:#?}"
        );
        drop(t.db);
    }
    let log_bytes = logs.0.lock().unwrap().clone();
    let log_text = String::from_utf8_lossy(&log_bytes);
    assert!(
        log_text.contains("rfl_api::access"),
        "the server's request log was captured"
    );
    assert!(
        log_text.contains(" DEBUG "),
        "log lines at debug level were captured"
    );
    let mut found = BTreeSet::new();
    every.find(&log_bytes, &mut found);
    assert!(found.is_empty(), "logs: personal data found: {found:?}");
}

/// The search finds every form it looks for as real encoders write it: each value (ASCII and not) is
/// put inside a longer text at each byte alignment, the whole text is encoded (UTF-16 LE and BE, base64
/// and base64url, hex in both cases), and the form of that name must be found
/// in the result, in memory and streamed in chunks of every size from 1 byte, so that needles are split
/// by chunk boundaries. A form the drill computes wrongly is missed here, and this test fails.
#[test]
fn every_form_the_drill_searches_for_is_found() {
    let secrets = Secrets::draw();
    let mut values: Vec<(String, String)> = secrets
        .values()
        .into_iter()
        .map(|(n, v, _)| (n.to_owned(), v))
        .collect();
    values.push(("a name in Cyrillic".into(), "Ксантиппа Врюлейк".into()));
    values.push(("a name in Arabic".into(), "زانثيبي القمبوطري".into()));
    let std = base64::engine::general_purpose::STANDARD;
    let url = base64::engine::general_purpose::URL_SAFE;
    let hex_upper = |b: &[u8]| -> Vec<u8> {
        b.iter()
            .flat_map(|x| format!("{x:02X}").into_bytes())
            .collect()
    };
    let hex_lower = |b: &[u8]| -> Vec<u8> {
        b.iter()
            .flat_map(|x| format!("{x:02x}").into_bytes())
            .collect()
    };
    let utf16 = |s: &str, le: bool| -> Vec<u8> {
        s.encode_utf16()
            .flat_map(|u| if le { u.to_le_bytes() } else { u.to_be_bytes() })
            .collect()
    };
    for (name, value) in &values {
        let scanner = Scanner::for_values([(name.as_str(), value.as_str())]);
        let mut haystack = Vec::new();
        let mut expected = BTreeSet::new();
        for shift in 0..3usize {
            // The value `shift` bytes past a 3-byte boundary, with text on both sides. Its neighbours
            // are '~' (0x7e), whose bits next to the value are not all zero: a base64 needle that kept
            // a character shared with a neighbouring byte would be missed.
            let text = format!("{}name:~{value}~seen 2019.", "#".repeat(3 + shift));
            let encoded: Vec<(String, Vec<u8>)> = vec![
                ("plain".into(), text.clone().into_bytes()),
                ("utf16le".into(), utf16(&text, true)),
                ("utf16be".into(), utf16(&text, false)),
                ("hex".into(), hex_lower(text.as_bytes())),
                ("HEX".into(), hex_upper(text.as_bytes())),
                (format!("base64+{shift}"), std.encode(&text).into_bytes()),
                (format!("base64url+{shift}"), url.encode(&text).into_bytes()),
            ];
            for (form, bytes) in encoded {
                let label = format!("{name} as {form}");
                let mut found = BTreeSet::new();
                scanner.find(&bytes, &mut found);
                assert!(
                    found.contains(&label),
                    "{label} is found in {}: {found:?}",
                    String::from_utf8_lossy(&bytes)
                );
                expected.insert(label);
                haystack.extend_from_slice(&bytes);
                haystack.extend_from_slice(&random_bytes(5));
            }
        }
        // Every form there is, and nothing else, was checked above.
        let all_forms: BTreeSet<String> = forms(value)
            .into_iter()
            .map(|(form, _)| format!("{name} as {form}"))
            .collect();
        assert_eq!(
            expected, all_forms,
            "every form of the {name} is controlled"
        );
        for chunk in [1, 2, 3, 7, 31, 64, 1000, 1 << 20] {
            let mut found = BTreeSet::new();
            let n = scanner
                .find_streamed(&haystack[..], chunk, &mut found)
                .unwrap();
            assert_eq!(n, haystack.len() as u64);
            assert_eq!(
                found, expected,
                "streamed in chunks of {chunk} bytes, every form of the {name} is found"
            );
        }
    }
    // And a needle is not found where it is not.
    let scanner = Scanner::for_values([("x", "Xanthippe")]);
    let mut found = BTreeSet::new();
    scanner.find(b"Xanthipp Xanthipe xanthippe", &mut found);
    assert!(found.is_empty(), "{found:?}");
}
