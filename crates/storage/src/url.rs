//! What a `database.url` names: the one place that tells the backends apart, and a description of it
//! for messages that never carries a password (or a user name, or any other connection parameter).

use std::path::Path;

/// The database a `database.url` names.
pub(crate) enum Target<'a> {
    /// `postgres://…` or `postgresql://…`, passed to libpq as it is.
    Postgres(&'a str),
    /// `sqlite://PATH` or a plain path.
    Sqlite(&'a str),
}

impl<'a> Target<'a> {
    pub(crate) fn of(url: &'a str) -> Self {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Target::Postgres(url)
        } else {
            Target::Sqlite(url.strip_prefix("sqlite://").unwrap_or(url))
        }
    }
}

/// Which database `url` names, to tell the operator: the SQLite file as an absolute path (a relative
/// one is relative to the working directory), or the PostgreSQL database and host, without the user,
/// password or any other parameter of the URL.
pub fn describe_database(url: &str) -> String {
    match Target::of(url) {
        Target::Sqlite(path) => {
            let path = Path::new(path);
            let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
            format!("SQLite database {}", shown.display())
        }
        Target::Postgres(url) => {
            let rest = url.split_once("://").map_or(url, |(_, r)| r);
            let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
            let (authority, path) = main.split_once('/').unwrap_or((main, ""));
            // user:password@host:port — keep what follows the last '@' only.
            let mut host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let mut db = path;
            for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
                match k {
                    "host" if host.is_empty() => host = v,
                    "dbname" if db.is_empty() => db = v,
                    _ => {}
                }
            }
            let db = if db.is_empty() { "(default)" } else { db };
            let host = if host.is_empty() {
                "the default host"
            } else {
                host
            };
            format!("PostgreSQL database {db} on {host}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_are_shown_absolute() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            describe_database("sqlite://data/rfl.db"),
            format!("SQLite database {}", cwd.join("data/rfl.db").display())
        );
        assert_eq!(
            describe_database("/var/lib/rfl/rfl.db"),
            "SQLite database /var/lib/rfl/rfl.db"
        );
    }

    #[test]
    fn postgres_urls_are_shown_without_credentials() {
        for (url, shown) in [
            (
                "postgres://rfl:s3cret@db.example.org:5432/rfl?sslmode=require&password=other",
                "PostgreSQL database rfl on db.example.org:5432",
            ),
            (
                "postgresql://postgres@127.0.0.1:5432/rfl_ci",
                "PostgreSQL database rfl_ci on 127.0.0.1:5432",
            ),
            ("postgres://a:b@c@[::1]/x", "PostgreSQL database x on [::1]"),
            (
                "postgres:///rfl?host=/run/postgresql&password=p",
                "PostgreSQL database rfl on /run/postgresql",
            ),
            (
                "postgres://",
                "PostgreSQL database (default) on the default host",
            ),
        ] {
            let d = describe_database(url);
            assert_eq!(d, shown, "{url}");
            assert!(!d.contains("s3cret") && !d.contains("password"));
        }
    }
}
