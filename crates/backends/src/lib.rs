//! # runner-backends — where data, messages and workers live
//!
//! Three traits, each with a local and an AWS implementation, so the same job runs on a laptop
//! and on a spot fleet:
//!
//! | trait | local | AWS |
//! |---|---|---|
//! | [`storage::Storage`] (inputs, outputs, manifests, run state) | a directory | S3 |
//! | [`queue::Queue`] (work items, callbacks) | a SQLite file | SQS |
//! | [`fleet::Fleet`] (workers) | child processes | an EC2 spot fleet |
//!
//! It also owns the AWS clients ([`aws`], from the standard credential and endpoint chains), the
//! registration of output tables in the Glue Data Catalog ([`catalog`]),
//! the resolution of a job's declared item environment from Secrets Manager and Parameter
//! Store ([`secrets`]), spot notices from the instance metadata service ([`imds`]), and how local processes die with
//! their parent on every platform ([`process`]). With the `conformance`
//! feature, each trait's module has a `conformance` suite: one function per behaviour that
//! every implementation must pass. Tests enable it; the release build leaves it out.
//!
//! It knows nothing of job specs, Polars, work items or Dagster: messages are strings, the
//! worker configuration a fleet carries is opaque JSON.
//!
//! ```no_run
//! use runner_backends::storage::{LocalStorage, Storage};
//!
//! # async fn demo() -> Result<(), runner_backends::storage::StorageError> {
//! let lake = LocalStorage::new("/tmp/lake".into())?;
//! lake.put_bytes("raw/hello.txt", b"hi".to_vec()).await?;
//! assert_eq!(lake.list("raw/").await?.len(), 1);
//! # Ok(()) }
//! ```

pub mod aws;
pub mod catalog;
pub mod fleet;
pub mod imds;
pub mod lease;
pub mod prices;
pub mod process;
pub mod queue;
pub mod secrets;
pub mod storage;
