//! The local queue: one SQLite file holds every queue of a run. Worker processes open the same
//! file, and a restarted orchestrator finds its messages where they were. Each receive runs in
//! an immediate transaction, so two processes never get the same delivery.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{Depth, Queue, QueueBackend, QueueError, QueueOptions, Received, Result, check_size};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    visibility_ms INTEGER NOT NULL,
    dead_letter TEXT,
    max_receives INTEGER
);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    visible_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages(queue, visible_at, seq);
";

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn nonce() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{:x}{:x}", nanos, std::process::id())
}

/// How long a connection waits for another one's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a receive watches the file for other processes' writes, and how often it asks.
const WATCH_FOR: Duration = Duration::from_millis(100);
const WATCH_EVERY: Duration = Duration::from_millis(1);

/// A number that changes when another connection commits to the file (not this one's own).
fn data_version(conn: &mut Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
}

fn open_db(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    wal(&conn)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// Switches the file to WAL. That needs it alone for a moment, and SQLite answers two runs
/// opening a new queue file at once with "database is locked" without waiting in its busy
/// handler (a race of two local runs failed so); so the switch is asked again, within the same
/// bound as any other lock.
fn wal(conn: &Connection) -> rusqlite::Result<()> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            done => return done,
        }
    }
}

/// Queues in one SQLite file.
#[derive(Debug, Clone)]
pub struct LocalQueues {
    path: PathBuf,
}

impl LocalQueues {
    /// Queues stored in `path` (created if missing).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    fn backend_err(&self, queue: &str, operation: &'static str, e: impl std::fmt::Display) -> QueueError {
        QueueError::Backend { queue: format!("{}#{queue}", self.path.display()), operation, detail: e.to_string() }
    }

    fn connect(&self, queue: &str) -> Result<Connection> {
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| self.backend_err(queue, "open", e))?;
        }
        open_db(&self.path).map_err(|e| self.backend_err(queue, "open", e))
    }

    fn handle(&self, name: &str, conn: Connection) -> Arc<dyn Queue> {
        Arc::new(LocalQueue { name: name.to_string(), path: self.path.clone(), conn: Arc::new(Mutex::new(conn)) })
    }
}

#[async_trait]
impl QueueBackend for LocalQueues {
    async fn create(&self, name: &str, options: &QueueOptions) -> Result<Arc<dyn Queue>> {
        let conn = self.connect(name)?;
        let (dlq, max) = match &options.dead_letter {
            Some((q, n)) => (Some(q.clone()), Some(*n as i64)),
            None => (None, None),
        };
        // A queue of this name left by an earlier attempt of the run starts again empty.
        conn.execute("DELETE FROM messages WHERE queue = ?1", [name])
            .map_err(|e| self.backend_err(name, "create", e))?;
        conn.execute(
            "INSERT INTO queues (name, visibility_ms, dead_letter, max_receives) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(name) DO UPDATE SET visibility_ms = ?2, dead_letter = ?3, max_receives = ?4",
            params![name, options.visibility.as_millis() as i64, dlq, max],
        )
        .map_err(|e| self.backend_err(name, "create", e))?;
        Ok(self.handle(name, conn))
    }

    async fn open(&self, address: &str) -> Result<Arc<dyn Queue>> {
        let (path, name) = address
            .strip_prefix("sqlite://")
            .and_then(|rest| rest.rsplit_once('#'))
            .ok_or_else(|| QueueError::NoSuchQueue(address.to_string()))?;
        let backend = LocalQueues::new(path);
        let conn = backend.connect(name)?;
        let exists: Option<String> = conn
            .query_row("SELECT name FROM queues WHERE name = ?1", [name], |r| r.get(0))
            .optional()
            .map_err(|e| backend.backend_err(name, "open", e))?;
        if exists.is_none() {
            return Err(QueueError::NoSuchQueue(address.to_string()));
        }
        Ok(backend.handle(name, conn))
    }

    async fn delete(&self, name: &str) -> Result<()> {
        let conn = self.connect(name)?;
        conn.execute("DELETE FROM messages WHERE queue = ?1", [name])
            .map_err(|e| self.backend_err(name, "delete", e))?;
        conn.execute("DELETE FROM queues WHERE name = ?1", [name]).map_err(|e| self.backend_err(name, "delete", e))?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let conn = self.connect(prefix)?;
        let mut stmt = conn
            .prepare("SELECT name FROM queues WHERE substr(name, 1, length(?1)) = ?1 ORDER BY name")
            .map_err(|e| self.backend_err(prefix, "list", e))?;
        let names = stmt
            .query_map([prefix], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| self.backend_err(prefix, "list", e))?;
        Ok(names)
    }
}

/// One queue in the SQLite file.
#[derive(Debug, Clone)]
pub struct LocalQueue {
    name: String,
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl LocalQueue {
    fn err(&self, operation: &'static str, e: impl std::fmt::Display) -> QueueError {
        QueueError::Backend { queue: self.address(), operation, detail: e.to_string() }
    }

    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> rusqlite::Result<T> {
        let conn = self.conn.clone();
        match tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    fn parse_receipt(receipt: &str) -> Option<i64> {
        receipt.split_once(':').and_then(|(seq, _)| seq.parse().ok())
    }
}

#[async_trait]
impl Queue for LocalQueue {
    fn name(&self) -> &str {
        &self.name
    }

    fn address(&self) -> String {
        format!("sqlite://{}#{}", self.path.display(), self.name)
    }

    async fn send(&self, bodies: &[String]) -> Result<Vec<String>> {
        for b in bodies {
            check_size(&self.name, b)?;
        }
        let name = self.name.clone();
        let bodies = bodies.to_vec();
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut ids = Vec::with_capacity(bodies.len());
            {
                let mut stmt =
                    tx.prepare_cached("INSERT INTO messages (queue, id, body, visible_at) VALUES (?1, ?2, ?3, ?4)")?;
                let now = now_ms();
                let base = nonce();
                for (i, body) in bodies.iter().enumerate() {
                    let id = format!("{base}-{i}");
                    stmt.execute(params![name, id, body, now])?;
                    ids.push(id);
                }
            }
            tx.commit()?;
            Ok(ids)
        })
        .await
        .map_err(|e| self.err("send", e))
    }

    async fn receive(&self, max: usize, wait: Duration, visibility: Duration) -> Result<Vec<Received>> {
        let max = max.clamp(1, 10) as i64;
        let started = Instant::now();
        let deadline = started + wait.min(Duration::from_secs(20));
        // A long poll looks again soon at first, then every 25 ms: a message sent just after a
        // look (an item's "done", which a run waits for) is seen within milliseconds. In its
        // first WATCH_FOR it also asks every millisecond whether another process has written
        // the file (SQLite's data_version, which reads no table and takes no lock), and looks
        // at once when one has: a one-item local run waited ~10 ms here for its "done".
        let mut pause = Duration::from_millis(2);
        loop {
            let name = self.name.clone();
            let got = self
                .with_conn(move |conn| {
                    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    let (dlq, max_receives): (Option<String>, Option<i64>) = tx
                        .query_row("SELECT dead_letter, max_receives FROM queues WHERE name = ?1", [&name], |r| {
                            Ok((r.get(0)?, r.get(1)?))
                        })
                        .optional()?
                        .unwrap_or((None, None));
                    let now = now_ms();
                    let candidates: Vec<(i64, String, String, i64)> = {
                        let mut stmt = tx.prepare_cached(
                            "SELECT seq, id, body, receive_count FROM messages
                             WHERE queue = ?1 AND visible_at <= ?2 ORDER BY visible_at, seq LIMIT ?3",
                        )?;
                        stmt.query_map(params![name, now, max * 2], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                            .collect::<rusqlite::Result<_>>()?
                    };
                    let mut out = Vec::new();
                    for (seq, id, body, count) in candidates {
                        if let (Some(dlq), Some(limit)) = (&dlq, max_receives)
                            && count >= limit
                        {
                            // Received too often: it moves to the dead-letter queue, as SQS's
                            // redrive policy does on the next receive.
                            tx.execute(
                                "UPDATE messages SET queue = ?1, receive_count = 0, visible_at = ?2, receipt = NULL WHERE seq = ?3",
                                params![dlq, now, seq],
                            )?;
                            continue;
                        }
                        if out.len() as i64 >= max {
                            break;
                        }
                        let receipt = format!("{seq}:{}", nonce());
                        tx.execute(
                            "UPDATE messages SET visible_at = ?1, receive_count = receive_count + 1, receipt = ?2 WHERE seq = ?3",
                            params![now + visibility.as_millis() as i64, receipt, seq],
                        )?;
                        out.push(Received { id, receipt, body, receive_count: (count + 1) as u32 });
                    }
                    tx.commit()?;
                    Ok((out, data_version(conn)?))
                })
                .await
                .map_err(|e| self.err("receive", e))?;
            let (got, version) = got;
            if !got.is_empty() || Instant::now() >= deadline {
                return Ok(got);
            }
            let until = (Instant::now() + pause).min(deadline);
            let watch_until = (started + WATCH_FOR).min(until);
            let mut written = false;
            while !written && Instant::now() < watch_until {
                tokio::time::sleep(WATCH_EVERY).await;
                written = self.with_conn(data_version).await.map_err(|e| self.err("receive", e))? != version;
            }
            if !written {
                tokio::time::sleep(until.saturating_duration_since(Instant::now())).await;
                pause = (pause * 2).min(Duration::from_millis(25));
            }
        }
    }

    async fn set_visibility(&self, receipt: &str, visibility: Duration) -> Result<()> {
        let seq = Self::parse_receipt(receipt).ok_or_else(|| QueueError::StaleReceipt(receipt.to_string()))?;
        let r = receipt.to_string();
        let changed = self
            .with_conn(move |conn| {
                conn.execute(
                    "UPDATE messages SET visible_at = ?1 WHERE seq = ?2 AND receipt = ?3",
                    params![now_ms() + visibility.as_millis() as i64, seq, r],
                )
            })
            .await
            .map_err(|e| self.err("set_visibility", e))?;
        if changed == 0 {
            return Err(QueueError::StaleReceipt(receipt.to_string()));
        }
        Ok(())
    }

    async fn delete(&self, receipt: &str) -> Result<()> {
        let seq = Self::parse_receipt(receipt).ok_or_else(|| QueueError::StaleReceipt(receipt.to_string()))?;
        let r = receipt.to_string();
        let (deleted, exists) = self
            .with_conn(move |conn| {
                let deleted = conn.execute("DELETE FROM messages WHERE seq = ?1 AND receipt = ?2", params![seq, r])?;
                let exists: Option<i64> =
                    conn.query_row("SELECT seq FROM messages WHERE seq = ?1", [seq], |row| row.get(0)).optional()?;
                Ok((deleted, exists.is_some()))
            })
            .await
            .map_err(|e| self.err("delete", e))?;
        if deleted == 0 && exists {
            return Err(QueueError::StaleReceipt(receipt.to_string()));
        }
        Ok(())
    }

    async fn depth(&self) -> Result<Depth> {
        let name = self.name.clone();
        self.with_conn(move |conn| {
            let now = now_ms();
            conn.query_row(
                "SELECT COALESCE(SUM(visible_at <= ?2), 0), COALESCE(SUM(visible_at > ?2), 0) FROM messages WHERE queue = ?1",
                params![name, now],
                |r| Ok(Depth { visible: r.get::<_, i64>(0)? as u64, in_flight: r.get::<_, i64>(1)? as u64 }),
            )
        })
        .await
        .map_err(|e| self.err("depth", e))
    }
}
