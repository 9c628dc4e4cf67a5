//! Fresh databases for tests: a SQLite file in a temporary folder, or a new PostgreSQL database that is
//! dropped again when the handle goes out of scope. PostgreSQL is never optional: when it cannot be
//! reached the test fails, it does not skip.

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

/// The server that test databases are created on; `RFL_TEST_POSTGRES_URL` overrides it.
pub const DEFAULT_POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestBackend {
    Sqlite,
    Postgres,
}

impl TestBackend {
    pub const ALL: [TestBackend; 2] = [TestBackend::Sqlite, TestBackend::Postgres];
}

/// A database that exists for one test.
pub struct TestDatabase {
    pub url: String,
    pub backend: TestBackend,
    /// SQLite: the folder holding the database file (and its WAL).
    pub dir: Option<tempfile::TempDir>,
    pg_drop: Option<(String, String)>,
}

impl TestDatabase {
    /// Panics (fails the test) when the database cannot be created.
    pub fn new(backend: TestBackend) -> TestDatabase {
        match backend {
            TestBackend::Sqlite => {
                #[allow(clippy::expect_used)] // a test helper: failing loudly is the point
                let dir = tempfile::tempdir().expect("create a temporary folder");
                let url = format!("sqlite://{}/rfl.db", dir.path().display());
                TestDatabase {
                    url,
                    backend,
                    dir: Some(dir),
                    pg_drop: None,
                }
            }
            TestBackend::Postgres => {
                let admin = admin_url();
                let name = format!("rfl_test_{}", uuid::Uuid::new_v4().simple());
                #[allow(clippy::panic)]
                let mut conn = PgConnection::establish(&admin).unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL is required for the tests and is not reachable ({e}); \
                         start it or set RFL_TEST_POSTGRES_URL"
                    )
                });
                #[allow(clippy::expect_used)]
                conn.batch_execute(&format!("CREATE DATABASE {name}"))
                    .expect("create a test database");
                let url = replace_db_name(&admin, &name);
                TestDatabase {
                    url,
                    backend,
                    dir: None,
                    pg_drop: Some((admin, name)),
                }
            }
        }
    }

    /// The SQLite database file (with `-wal` and `-shm` beside it).
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        self.dir.as_ref().map(|d| d.path().join("rfl.db"))
    }

    /// PostgreSQL: the database name.
    pub fn pg_name(&self) -> Option<&str> {
        self.pg_drop.as_ref().map(|(_, n)| n.as_str())
    }

    /// Runs SQL directly on the database, behind the server's back: what an attacker who holds the
    /// host can do (the host tampering tests). Returns the rows changed by the last statement.
    /// Panics (fails the test) on error.
    #[allow(clippy::expect_used)] // a test helper: failing loudly is the point
    pub fn tamper(&self, sql: &str) -> usize {
        use diesel::RunQueryDsl;
        let q = diesel::sql_query(sql);
        match self.connect() {
            AnyConnection::Sqlite(mut c) => q.execute(&mut c),
            AnyConnection::Pg(mut c) => q.execute(&mut c),
        }
        .expect("tamper SQL")
    }

    /// Reads one binary column, named `b`, of every row `sql` returns, behind the server's back (what
    /// a host sees; tests of what is stored). Panics (fails the test) on error.
    #[allow(clippy::expect_used)] // a test helper: failing loudly is the point
    pub fn blobs(&self, sql: &str) -> Vec<Vec<u8>> {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Binary)]
            b: Vec<u8>,
        }
        let q = diesel::sql_query(sql);
        let rows: Vec<Row> = match self.connect() {
            AnyConnection::Sqlite(mut c) => q.load(&mut c),
            AnyConnection::Pg(mut c) => q.load(&mut c),
        }
        .expect("read SQL");
        rows.into_iter().map(|r| r.b).collect()
    }

    /// A connection of its own to this database, beside the server's pool.
    #[allow(clippy::expect_used)] // a test helper: failing loudly is the point
    fn connect(&self) -> AnyConnection {
        match self.backend {
            TestBackend::Sqlite => {
                let path = self
                    .sqlite_path()
                    .expect("a SQLite test database has a file");
                let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())
                    .expect("open the SQLite file");
                conn.batch_execute("PRAGMA busy_timeout = 10000;")
                    .expect("set the busy timeout");
                AnyConnection::Sqlite(conn)
            }
            TestBackend::Postgres => AnyConnection::Pg(
                PgConnection::establish(&self.url).expect("connect to PostgreSQL"),
            ),
        }
    }

    /// A literal for `bytes` in this backend's SQL.
    pub fn blob(&self, bytes: &[u8]) -> String {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        match self.backend {
            TestBackend::Sqlite => format!("X'{hex}'"),
            TestBackend::Postgres => format!("'\\x{hex}'::bytea"),
        }
    }
}

enum AnyConnection {
    Sqlite(diesel::SqliteConnection),
    Pg(PgConnection),
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg_drop.take() {
            if let Ok(mut conn) = PgConnection::establish(&admin) {
                let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

pub fn admin_url() -> String {
    std::env::var("RFL_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_ADMIN_URL.to_owned())
}

fn replace_db_name(url: &str, name: &str) -> String {
    // postgres://user@host:port/db?params
    let (base, params) = match url.split_once('?') {
        Some((b, p)) => (b, Some(p)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].rfind('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match params {
        Some(p) => format!("{base}/{name}?{p}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::replace_db_name;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            replace_db_name("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            replace_db_name("postgres://h/db?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
        assert_eq!(replace_db_name("postgres://h", "x"), "postgres://h/x");
    }
}
