//! Each partition key a job writes, claimed under its case-folded form before the run starts. A
//! key's folder is its escaped form ([`runner_types::PartitionKey::path_segment`]), which keeps
//! case, so `EU` and `eu` are two folders on S3 and Linux but one on a case-insensitive file
//! system (macOS's default). Rather than let a job's data depend on where it runs, the second
//! key of a case-folded pair is refused everywhere, naming both; the first keeps its folder and
//! the encoding stays as it was (reversible, daily keys unchanged).

use runner_backends::storage::{Location, StorageError, Stores};
use runner_types::{Partition, PartitionKey};

/// Why a run's keys can't be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyClaimError {
    /// Two keys differ only in case.
    #[error(
        "partition key {key:?} differs only in case from {claimed:?}, another key of this job: on a \
         case-insensitive file system (macOS) both would share one folder, so {key:?} is refused everywhere; \
         rename one of them"
    )]
    Clash {
        /// The key refused.
        key: String,
        /// The key that has the folder.
        claimed: String,
    },
    /// The state store could not be asked.
    #[error("claiming partition key {key:?} at {location}: {error}")]
    Store {
        /// The key.
        key: String,
        /// Where its claim is kept.
        location: Location,
        /// What went wrong.
        error: StorageError,
    },
}

/// A key's case-folded form: what a case-insensitive file system compares.
fn folded(key: &PartitionKey) -> String {
    key.as_str().to_lowercase()
}

/// Where the claim on a key's case-folded form lives: named by a hash, so the claims of two
/// keys never share a file themselves.
pub fn claim_location(state: &Location, job: &str, key: &PartitionKey) -> Location {
    state.join(&format!("keys/{job}/{}", runner_types::stable_hash(&[&folded(key)])))
}

/// Claims every key of the run for the job (a claim made once holds for good), or refuses the
/// first key whose case-folded form another key holds. Two runs claiming at once: one wins
/// (a conditional create), and the other reads the winner's key.
pub async fn claim(
    stores: &dyn Stores,
    state: &Location,
    job: &str,
    partitions: &[Partition],
) -> Result<(), KeyClaimError> {
    // A pair within the run is refused before anything is claimed, so a refused run leaves no
    // claim behind for either key.
    let mut seen = std::collections::BTreeMap::new();
    for p in partitions {
        if let Some(first) = seen.insert(folded(&p.key), &p.key)
            && *first != p.key
        {
            return Err(KeyClaimError::Clash { key: p.key.to_string(), claimed: first.to_string() });
        }
    }
    for p in partitions {
        let location = claim_location(state, job, &p.key);
        let store_error = |error| KeyClaimError::Store { key: p.key.to_string(), location: location.clone(), error };
        let store = stores.store(&location).await.map_err(store_error)?;
        let claimed = match store.put_if_absent(location.key(), p.key.as_str().as_bytes().to_vec()).await {
            Ok(()) => continue,
            Err(StorageError::AlreadyExists { .. }) => store.get_bytes(location.key()).await.map_err(store_error)?,
            Err(e) => return Err(store_error(e)),
        };
        let claimed = String::from_utf8_lossy(&claimed).into_owned();
        if claimed != p.key.as_str() {
            return Err(KeyClaimError::Clash { key: p.key.to_string(), claimed });
        }
    }
    Ok(())
}
