//! One commit that makes a table hold what a step committed: the files the step's items wrote,
//! added; the files they replace, removed; both in one version, or none when nothing changed.
//!
//! The commit is built from the table's newest snapshot, so it is idempotent: a resumed run
//! whose files are all in the table commits nothing. It carries the run and step as an
//! application transaction, for readers of the history. A concurrent commit that conflicts (one that
//! removed a file this snapshot lists, as a rerun of another partition does) sends it back to a
//! fresh snapshot, up to [`ATTEMPTS`] times: the runner's partition leases already keep two runs
//! from writing one partition, so a fresh snapshot always makes a commit that lands.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake_core::kernel::{Action, Add, MetadataExt as _, StructType, Transaction};
use deltalake_core::logstore::{LogStoreRef, ObjectStoreRef, StorageConfig, default_logstore};
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use deltalake_core::{DeltaTable, DeltaTableError, ObjectStore, TableProperty};
use tracing::{info, warn};
use url::Url;

use crate::schema::{self, SchemaChange};

/// Commits tried from a fresh snapshot before the step fails.
pub const ATTEMPTS: u32 = 10;

/// How long application transactions stay in the table's log (`delta.setTransactionRetentionDuration`):
/// one per run and step, so they would otherwise pile up in every checkpoint.
const TRANSACTION_RETENTION: &str = "interval 30 days";

/// A file to be in the table.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFile {
    /// Its key relative to the table's root, as stored (escapes and all).
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// Its partition values.
    pub partition_values: BTreeMap<String, Option<String>>,
    /// Delta's statistics JSON.
    pub stats: String,
    /// When it was written, in Unix milliseconds.
    pub modification_time: i64,
}

/// Which of the table's files this commit answers for: those it removes when they are not among
/// its files. Everything else in the table is left as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    /// Every file (an unpartitioned run owns its table).
    pub whole: bool,
    /// Files whose partition column has one of these values (a partitioned run's partitions).
    pub key: Option<(String, BTreeSet<String>)>,
    /// Files listed by name: what the step's superseded items wrote.
    pub superseded: BTreeSet<String>,
}

impl Scope {
    fn owns(&self, path: &str, values: &HashMap<String, Option<String>>) -> bool {
        self.whole
            || self.superseded.contains(path)
            || self.key.as_ref().is_some_and(|(column, keys)| {
                values.get(column).and_then(|v| v.as_deref()).is_some_and(|v| keys.contains(v))
            })
    }
}

/// What to commit.
#[derive(Debug, Clone)]
pub struct Commit {
    /// The table's name (its log's metadata, and messages).
    pub table_name: String,
    /// The files' schema, partition columns included; `None` when the step wrote nothing (no
    /// item at all): the table's own schema then, and no table is made.
    pub schema: Option<StructType>,
    /// The partition columns, in order.
    pub partition_columns: Vec<String>,
    /// New columns may be added to the table's schema.
    pub may_add_columns: bool,
    /// Every file the scope must hold.
    pub files: Vec<NewFile>,
    /// What the commit answers for.
    pub scope: Scope,
    /// The application transaction (run and step) the commit carries, so the table's history
    /// says which run made each version. (A commit is idempotent by its files, not by this.)
    pub app_id: String,
    /// Written to the commit's `commitInfo` (run, step, partitions).
    pub info: HashMap<String, serde_json::Value>,
    /// The replaced partitions as a predicate, for the commit's operation (readers of the
    /// history see it; nothing evaluates it).
    pub predicate: Option<String>,
}

/// One file of the table after the commit.
#[derive(Debug, Clone, PartialEq)]
pub struct TableFileRow {
    /// Its path relative to the root.
    pub path: String,
    /// Its partition values.
    pub partition_values: HashMap<String, Option<String>>,
    /// Its rows, from its statistics.
    pub rows: Option<u64>,
}

/// What a commit did.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The table's version after it.
    pub version: u64,
    /// It made that version (otherwise the table held the files already).
    pub new_version: bool,
    /// This commit created the table.
    pub created: bool,
    /// Files added.
    pub added: usize,
    /// Files removed.
    pub removed: usize,
    /// Columns added to the schema.
    pub added_columns: Vec<String>,
    /// Commits that met a conflicting concurrent commit and were made again.
    pub retries: u32,
    /// The table's schema.
    pub schema: StructType,
    /// The table's files.
    pub files: Vec<TableFileRow>,
}

/// Why a commit did not land.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The files can't go in this table as it is (schema, partition columns): no retry changes it.
    #[error("table {table} at {url}: {detail}")]
    Refused {
        /// The table.
        table: String,
        /// Its root.
        url: String,
        /// What is wrong, naming the columns.
        detail: String,
    },
    /// The log or its store failed.
    #[error("table {table} at {url}: {detail}")]
    Failed {
        /// The table.
        table: String,
        /// Its root.
        url: String,
        /// Delta's error.
        detail: String,
    },
}

impl CommitError {
    /// True when committing again can't help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Refused { .. })
    }
}

/// A table's log over a store rooted at the URL's scheme and authority (the bucket, or `/`).
pub fn log_store(root: Arc<dyn ObjectStore>, url: &Url) -> Result<LogStoreRef, DeltaTableError> {
    let config = StorageConfig::default();
    let prefixed: ObjectStoreRef = Arc::from(config.decorate_store(root.clone(), url)?);
    Ok(default_logstore(prefixed, root, url, &config))
}

/// The table at `url`, if there is one.
pub async fn load(log_store: &LogStoreRef) -> Result<Option<DeltaTable>, DeltaTableError> {
    let mut table = DeltaTable::new(log_store.clone());
    match table.load().await {
        Ok(()) => Ok(Some(table)),
        Err(DeltaTableError::NotATable(_)) => Ok(None),
        // A local folder that is not there yet (the kernel says so in words only).
        Err(e) if e.to_string().contains("Path does not exist") => Ok(None),
        Err(e) => Err(e),
    }
}

/// Makes the table at `url` hold `c.files` in the scope of `c`. `None` when there is no table
/// and nothing to make one of.
pub async fn commit(root: Arc<dyn ObjectStore>, url: &Url, c: &Commit) -> Result<Option<Committed>, CommitError> {
    let failed = |e: DeltaTableError| CommitError::Failed {
        table: c.table_name.clone(),
        url: url.to_string(),
        detail: e.to_string(),
    };
    let store = log_store(root, url).map_err(failed)?;
    let mut retries = 0;
    loop {
        let (table, created) = match (load(&store).await.map_err(failed)?, &c.schema) {
            (Some(t), _) => (t, false),
            (None, Some(schema)) => (create(&store, c, schema).await.map_err(failed)?, true),
            (None, None) => return Ok(None),
        };
        match attempt(&store, &table, c).await {
            Ok(mut done) => {
                done.retries = retries;
                done.created = created;
                return Ok(Some(done));
            }
            Err(Attempt::Conflict(why)) if retries + 1 < ATTEMPTS => {
                retries += 1;
                let wait = backoff(retries);
                info!(table = %c.table_name, "a concurrent commit conflicts with this one ({why}); committing again from a fresh snapshot in {wait:?}");
                tokio::time::sleep(wait).await;
            }
            Err(Attempt::Conflict(why)) => {
                return Err(CommitError::Failed {
                    table: c.table_name.clone(),
                    url: url.to_string(),
                    detail: format!("{ATTEMPTS} commits in a row met a conflicting concurrent commit; the last: {why}"),
                });
            }
            Err(Attempt::Refused(detail)) => {
                return Err(CommitError::Refused { table: c.table_name.clone(), url: url.to_string(), detail });
            }
            Err(Attempt::Failed(e)) => return Err(failed(e)),
        }
    }
}

/// Waits of 0.2, 0.4, 0.8… s up to 5 s, spread by the clock's nanoseconds so that racing
/// runners don't retry in step.
fn backoff(retry: u32) -> Duration {
    let base = (200u64 << retry.min(5)).min(5_000);
    let spread = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    Duration::from_millis(base / 2 + u64::from(spread) % (base / 2 + 1))
}

/// Creates the table with the files' schema. Two runs that create it at once: the loser's create
/// finds version 0 taken and does not retry (it would write a second table id as version 1);
/// it reads the winner's table instead.
async fn create(store: &LogStoreRef, c: &Commit, schema: &StructType) -> Result<DeltaTable, DeltaTableError> {
    let made = DeltaTable::new(store.clone())
        .create()
        .with_columns(schema.fields().cloned())
        .with_partition_columns(c.partition_columns.clone())
        .with_table_name(c.table_name.clone())
        .with_configuration_property(TableProperty::SetTransactionRetentionDuration, Some(TRANSACTION_RETENTION))
        .with_commit_properties(CommitProperties::default().with_max_retries(0))
        .await;
    match made {
        Ok(table) => Ok(table),
        Err(e) => match load(store).await? {
            Some(table) => Ok(table),
            None => Err(e),
        },
    }
}

/// How one attempt ended, when not with a commit.
enum Attempt {
    Conflict(String),
    Refused(String),
    Failed(DeltaTableError),
}

impl From<DeltaTableError> for Attempt {
    fn from(e: DeltaTableError) -> Self {
        match e {
            DeltaTableError::Transaction {
                source: source @ (TransactionError::CommitConflict(_) | TransactionError::MaxCommitAttempts(_)),
            } => Self::Conflict(source.to_string()),
            DeltaTableError::VersionAlreadyExists(v) => Self::Conflict(format!("version {v} was taken")),
            e => Self::Failed(e),
        }
    }
}

/// Test-only failpoint: with `SPOTLAKE_TEST_TABLE_COMMIT_BARRIER=DIR:N`, each commit, once it has
/// read its snapshot, leaves a file in DIR and waits (up to a minute) until N are there, so that
/// N commits (of one process or several) are made from the same snapshot.
async fn failpoint_barrier() {
    let Some((dir, n)) = std::env::var("SPOTLAKE_TEST_TABLE_COMMIT_BARRIER").ok().and_then(|v| {
        v.rsplit_once(':').and_then(|(d, n)| Some((std::path::PathBuf::from(d), n.parse::<usize>().ok()?)))
    }) else {
        return;
    };
    static ARRIVED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let mine = ARRIVED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(format!("{}-{mine}", std::process::id())), b"");
    for _ in 0..600 {
        if std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn attempt(store: &LogStoreRef, table: &DeltaTable, c: &Commit) -> Result<Committed, Attempt> {
    let snapshot = table.snapshot()?;
    let table_columns = snapshot.metadata().partition_columns().to_vec();
    if table_columns != c.partition_columns {
        return Err(Attempt::Refused(format!(
            "the table is partitioned by {table_columns:?}, and the output by {:?}",
            c.partition_columns
        )));
    }
    let table_schema = snapshot.schema();
    let files_schema = c.schema.as_ref().unwrap_or(&table_schema);
    let change = schema::reconcile(&table_schema, files_schema, c.may_add_columns).map_err(|why| {
        let hint =
            if c.may_add_columns { "" } else { " (`schema = \"add_columns\"` on the table lets new columns in)" };
        Attempt::Refused(format!("the output's columns do not fit the table's: {why}{hint}"))
    })?;
    if let SchemaChange::Added { schema: merged, .. } = &change
        && schema::has_timestamp_ntz(merged)
        && !schema::has_timestamp_ntz(&table_schema)
    {
        // The column would need the table's protocol raised to reader 3 / writer 7 with the
        // `timestampNtz` feature, which older readers then refuse: not done behind a user's back.
        return Err(Attempt::Refused(
            "a new datetime column without a time zone needs Delta's timestamp_ntz, which the table was made \
             without; cast it to a timestamp with a zone (AT TIME ZONE 'UTC'), or make the table anew"
                .into(),
        ));
    }
    // What the table lists: a file's size and rows. A file the step wrote again under its name
    // (a forced rerun) with another size or row count is added again: the newer add wins.
    let present: BTreeMap<String, (i64, Option<usize>)> =
        snapshot.log_data().iter().map(|f| (f.path().into_owned(), (f.size(), f.num_records()))).collect();
    let wanted: BTreeSet<&str> = c.files.iter().map(|f| f.path.as_str()).collect();
    let adds: Vec<&NewFile> = c
        .files
        .iter()
        .filter(|f| match present.get(&f.path) {
            None => true,
            Some((size, rows)) => i64::try_from(f.size).ok() != Some(*size) || *rows != records(&f.stats),
        })
        .collect();
    let removes: Vec<Action> = snapshot
        .log_data()
        .iter()
        .filter(|f| !wanted.contains(f.path().as_ref()) && c.scope.owns(&f.path(), &f.partition_values_map()))
        .map(|f| Action::Remove(f.remove_action(true)))
        .collect();
    let mut actions: Vec<Action> = Vec::new();
    let mut added_columns = Vec::new();
    if let SchemaChange::Added { schema: merged, columns } = change {
        actions
            .push(Action::Metadata(snapshot.metadata().clone().with_schema(&merged).map_err(DeltaTableError::from)?));
        added_columns = columns;
    }
    if adds.is_empty() && removes.is_empty() && actions.is_empty() {
        return Ok(settled(table, false, 0, 0, Vec::new())?);
    }
    let (added, removed) = (adds.len(), removes.len());
    actions.extend(adds.into_iter().map(|f| Action::Add(add(f))));
    actions.extend(removes);
    let now = chrono::Utc::now().timestamp_millis();
    let properties = CommitProperties::default()
        .with_metadata(c.info.clone())
        .with_application_transaction(Transaction::new_with_last_update(&c.app_id, 1, Some(now)));
    let operation = DeltaOperation::Write {
        mode: if removed == 0 { SaveMode::Append } else { SaveMode::Overwrite },
        partition_by: (!c.partition_columns.is_empty()).then(|| c.partition_columns.clone()),
        predicate: c.predicate.clone(),
    };
    failpoint_barrier().await;
    let prepared = CommitBuilder::from(properties)
        .with_actions(actions)
        .build(Some(snapshot), store.clone(), operation)
        .into_prepared_commit_future()
        .await?;
    // From here the version is in the log, whatever the hooks (a checkpoint, old logs' clean-up)
    // do next.
    let posted = prepared.await?;
    let version = posted.version;
    if let Err(e) = posted.await {
        warn!(table = %c.table_name, version, "the commit landed; a checkpoint or log clean-up after it failed: {e}");
    }
    // The table as this commit left it (later commits are not this step's to report).
    let mut after = DeltaTable::new(store.clone());
    after.load_version(version).await?;
    Ok(settled(&after, true, added, removed, added_columns)?)
}

/// The table as it stands, as a commit's result.
fn settled(
    table: &DeltaTable,
    new_version: bool,
    added: usize,
    removed: usize,
    added_columns: Vec<String>,
) -> Result<Committed, DeltaTableError> {
    let snapshot = table.snapshot()?;
    let files = snapshot
        .log_data()
        .iter()
        .map(|f| TableFileRow {
            path: f.path().into_owned(),
            partition_values: f.partition_values_map(),
            rows: f.num_records().map(|n| n as u64),
        })
        .collect();
    Ok(Committed {
        version: snapshot.version(),
        new_version,
        created: false,
        added,
        removed,
        added_columns,
        retries: 0,
        schema: snapshot.schema().as_ref().clone(),
        files,
    })
}

/// `numRecords` of a statistics JSON.
fn records(stats: &str) -> Option<usize> {
    let v: serde_json::Value = serde_json::from_str(stats).ok()?;
    v.get("numRecords")?.as_u64().and_then(|n| usize::try_from(n).ok())
}

fn add(f: &NewFile) -> Add {
    Add {
        path: f.path.clone(),
        partition_values: f.partition_values.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        size: i64::try_from(f.size).unwrap_or(i64::MAX),
        modification_time: f.modification_time,
        data_change: true,
        stats: Some(f.stats.clone()),
        ..Default::default()
    }
}
