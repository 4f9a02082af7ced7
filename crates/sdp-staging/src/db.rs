//! The record of staging requests, in MySQL/MariaDB or SQLite (sqlx's `Any` driver), with embedded migrations
//! per backend.

use std::borrow::Cow;
use std::path::Path;

use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{AnyPool, Row};

/// A failure of the metadata database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open the metadata database {url}: {source}; check DATABASE_URL (or MYSQL_HOST, MYSQL_USER, ...)")]
    Connect { url: String, source: sqlx::Error },
    #[error("cannot create the SQLite folder {dir}: {source}; set STAGING_DATA_DIR or DATABASE_URL")]
    DataDir { dir: String, source: std::io::Error },
    #[error("unsupported DATABASE_URL scheme in {0}: use mysql://... or sqlite://...")]
    Scheme(String),
    #[error("migrating the metadata database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("metadata database query failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// Which SQL dialect a database URL speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Mysql,
    Sqlite,
}

impl Backend {
    pub fn of_url(url: &str) -> Result<Backend, DbError> {
        if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            Ok(Backend::Mysql)
        } else if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else {
            Err(DbError::Scheme(redact_url(url)))
        }
    }

    fn migrations(self) -> &'static [(i64, &'static str, &'static str)] {
        match self {
            Backend::Mysql => &[
                (1, "staging requests", include_str!("../migrations/mysql/0001_staging_requests.sql")),
                (2, "staging requests status", include_str!("../migrations/mysql/0002_staging_requests_status.sql")),
            ],
            Backend::Sqlite => &[
                (1, "staging requests", include_str!("../migrations/sqlite/0001_staging_requests.sql")),
                (2, "staging requests status", include_str!("../migrations/sqlite/0002_staging_requests_status.sql")),
            ],
        }
    }
}

/// The migrations compiled into the binary, for one backend.
#[derive(Debug)]
struct Embedded(Backend);

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        let migrations = self
            .0
            .migrations()
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(version, Cow::Borrowed(description), MigrationType::Simple, Cow::Borrowed(sql), false)
            })
            .collect();
        Box::pin(async move { Ok(migrations) })
    }
}

/// `url` with any password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Outcome of a staging request, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Done,
    Failed,
    Rejected,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Rejected => "rejected",
        }
    }
}

/// One staging request as recorded (and as `/logs/` shows it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub id: i64,
    pub created_at: String,
    pub updated_at: String,
    pub method: String,
    pub username: String,
    pub source: String,
    pub target: String,
    pub status: String,
    pub message: String,
    pub bytes_total: i64,
    pub bytes_done: i64,
}

/// What a new request records.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    pub method: &'a str,
    pub username: &'a str,
    pub source: &'a str,
    pub target: &'a str,
    pub status: Status,
    pub message: &'a str,
}

/// The metadata database.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

/// Client text stored as it came, but printable and bounded (columns are 1024 characters at most).
fn stored(text: &str, max: usize) -> String {
    text.chars().map(|c| if c.is_control() { '?' } else { c }).take(max).collect()
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Db {
    /// Connects and applies the migrations. A SQLite URL's folder is created.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        let backend = Backend::of_url(url)?;
        sqlx::any::install_default_drivers();
        let url = match backend {
            Backend::Sqlite => {
                let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
                let path = path.split('?').next().unwrap_or_default();
                if let Some(dir) = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|source| DbError::DataDir { dir: dir.display().to_string(), source })?;
                }
                if url.contains('?') {
                    url.to_string()
                } else {
                    format!("{url}?mode=rwc")
                }
            }
            Backend::Mysql => url.replacen("mariadb://", "mysql://", 1),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .connect(&url)
            .await
            .map_err(|source| DbError::Connect { url: redact_url(&url), source })?;
        Migrator::new(Embedded(backend)).await?.run(&pool).await?;
        Ok(Db { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the metadata database answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Records a new request; returns its ID.
    pub async fn insert(&self, e: &NewEntry<'_>) -> Result<i64, DbError> {
        let t = now();
        let result = sqlx::query(
            "INSERT INTO staging_requests (created_at, updated_at, method, username, source, target, status, message) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&t)
        .bind(&t)
        .bind(stored(e.method, 32))
        .bind(stored(e.username, 80))
        .bind(stored(e.source, 1024))
        .bind(stored(e.target, 1024))
        .bind(e.status.as_str())
        .bind(stored(e.message, 2048))
        .execute(&self.pool)
        .await?;
        match result.last_insert_id() {
            Some(id) => Ok(id),
            None => Ok(sqlx::query("SELECT MAX(id) FROM staging_requests").fetch_one(&self.pool).await?.try_get(0)?),
        }
    }

    /// Records how far a running request got.
    pub async fn progress(&self, id: i64, done: u64, total: u64) -> Result<(), DbError> {
        sqlx::query("UPDATE staging_requests SET bytes_done = ?, bytes_total = ?, updated_at = ? WHERE id = ?")
            .bind(done as i64)
            .bind(total as i64)
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records the outcome of a request.
    pub async fn finish(&self, id: i64, status: Status, message: &str, done: u64, total: u64) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE staging_requests SET status = ?, message = ?, bytes_done = ?, bytes_total = ?, updated_at = ? \
             WHERE id = ?",
        )
        .bind(status.as_str())
        .bind(stored(message, 2048))
        .bind(done as i64)
        .bind(total as i64)
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The most recent requests first, `limit` of them after skipping `offset`; and how many there are in all.
    pub async fn list(&self, offset: i64, limit: i64) -> Result<(Vec<Entry>, i64), DbError> {
        let rows = sqlx::query(
            "SELECT id, created_at, updated_at, method, username, source, target, status, message, bytes_total, \
             bytes_done FROM staging_requests ORDER BY id DESC LIMIT ? OFFSET ?",
        )
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 =
            sqlx::query("SELECT COUNT(*) FROM staging_requests").fetch_one(&self.pool).await?.try_get(0)?;
        let entries = rows.iter().map(entry).collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok((entries, total))
    }

    /// The versions of the applied migrations, in order.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, DbError> {
        let rows = sqlx::query("SELECT version FROM _sqlx_migrations WHERE success = TRUE ORDER BY version")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?)
    }
}

fn entry(r: &AnyRow) -> Result<Entry, sqlx::Error> {
    Ok(Entry {
        id: r.try_get(0)?,
        created_at: r.try_get(1)?,
        updated_at: r.try_get(2)?,
        method: r.try_get(3)?,
        username: r.try_get(4)?,
        source: r.try_get(5)?,
        target: r.try_get(6)?,
        status: r.try_get(7)?,
        message: r.try_get(8)?,
        bytes_total: r.try_get(9)?,
        bytes_done: r.try_get(10)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(redact_url("mysql://u:secret@db:3306/x"), "mysql://u:***@db:3306/x");
        assert_eq!(redact_url("mysql://u@db/x"), "mysql://u@db/x");
        assert_eq!(redact_url("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
        assert_eq!(Backend::of_url("mariadb://h/d").unwrap(), Backend::Mysql);
        assert_eq!(Backend::of_url("sqlite::memory:").unwrap(), Backend::Sqlite);
        assert!(matches!(Backend::of_url("postgres://u:p@h/d"), Err(DbError::Scheme(s)) if s.contains("***")));
    }

    #[tokio::test]
    async fn sqlite_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/sub/s.db", dir.path().display())).await.unwrap();
        assert_eq!(db.applied_migrations().await.unwrap(), vec![1, 2]);
        let e = NewEntry {
            method: "local_copy",
            username: "alice",
            source: "a\0b",
            target: "t",
            status: Status::Running,
            message: "",
        };
        let id = db.insert(&e).await.unwrap();
        let id2 = db.insert(&NewEntry { status: Status::Rejected, message: "no", ..e }).await.unwrap();
        assert!(id2 > id);
        db.progress(id, 5, 10).await.unwrap();
        db.finish(id, Status::Done, "ok", 10, 10).await.unwrap();
        let (list, total) = db.list(0, 10).await.unwrap();
        assert_eq!(total, 2);
        assert_eq!(list[0].id, id2);
        assert_eq!((list[1].status.as_str(), list[1].bytes_done, list[1].source.as_str()), ("done", 10, "a?b"));
        let (page, _) = db.list(1, 1).await.unwrap();
        assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), vec![id]);
        // A second connection applies no migration twice.
        drop(db);
        let again = Db::connect(&format!("sqlite://{}/sub/s.db", dir.path().display())).await.unwrap();
        assert_eq!(again.list(0, 10).await.unwrap().1, 2);
    }
}
