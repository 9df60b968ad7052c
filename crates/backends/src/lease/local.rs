//! Leases in a local state directory: `leases/{name}.lock`, held with `flock`. The kernel
//! releases the lock when its process ends however it ends, so a dead holder never blocks
//! anyone. The holder is written into the file for the error a second run gets.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::{Holder, Lease, LeaseError, Leases, Result};

/// Leases as locked files under `dir/leases`.
#[derive(Debug)]
pub struct LocalLeases {
    dir: PathBuf,
    /// The open, locked files of the leases this process holds.
    held: Mutex<HashMap<String, File>>,
}

impl LocalLeases {
    /// Leases under `state_dir/leases`.
    pub fn new(state_dir: PathBuf) -> Self {
        Self { dir: state_dir.join("leases"), held: Mutex::default() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.lock"))
    }
}

fn backend(operation: &'static str, name: &str, e: impl std::fmt::Display) -> LeaseError {
    LeaseError::Backend { operation, name: name.to_string(), detail: e.to_string() }
}

#[async_trait]
impl Leases for LocalLeases {
    async fn acquire(&self, name: &str, holder: &Holder) -> Result<Lease> {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| backend("create", name, e))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| backend("open", name, e))?;
        // SAFETY: flock on a descriptor this function owns.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if !locked {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = serde_json::from_str(&text).unwrap_or_else(|_| Holder {
                run_id: "(unknown: the lock file holds no holder yet)".into(),
                dagster_run_id: None,
                host: String::new(),
                pid: 0,
                started_at: String::new(),
                expires_at: 0.0,
            });
            return Err(LeaseError::Held { name: name.to_string(), holder: Box::new(holder) });
        }
        file.set_len(0).map_err(|e| backend("write", name, e))?;
        file.rewind().map_err(|e| backend("write", name, e))?;
        file.write_all(&serde_json::to_vec(holder).unwrap_or_default()).map_err(|e| backend("write", name, e))?;
        file.flush().map_err(|e| backend("write", name, e))?;
        self.held.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), file);
        Ok(Lease { name: name.to_string(), version: String::new() })
    }

    async fn renew(&self, lease: &mut Lease, _holder: &Holder) -> Result<()> {
        // A lock lasts as long as its process: nothing to extend, nothing to lose.
        if self.held.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&lease.name) {
            Ok(())
        } else {
            Err(LeaseError::Lost { name: lease.name.clone(), holder: "nobody (it was released)".into() })
        }
    }

    async fn release(&self, lease: Lease) -> Result<()> {
        // Closing the file unlocks it. The file stays: deleting it could let two runs lock two
        // different files of one name.
        self.held.lock().unwrap_or_else(|p| p.into_inner()).remove(&lease.name);
        Ok(())
    }

    fn renew_every(&self) -> Duration {
        Duration::from_secs(3600)
    }
}
