//! Leases in a local state directory: `leases/{name}.lock`, held with `flock`. The kernel
//! releases the lock when its process ends however it ends, so a dead holder never blocks
//! anyone. The holder is written into the file for the error a second run gets, and cleared
//! when it releases the lease.

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

/// How long a run refused a lock waits for its holder's name to be written: the holder writes
/// it just after it locks, and a run that lost the race to it by microseconds finds the file
/// empty (or, after a holder that was killed, naming that dead one).
const HOLDER_WRITTEN_WITHIN: Duration = Duration::from_secs(1);

/// The holder named in a locked lease file, once the one who locked it has written it.
async fn read_holder(file: &mut File) -> Option<Holder> {
    let deadline = std::time::Instant::now() + HOLDER_WRITTEN_WITHIN;
    loop {
        let mut text = String::new();
        let read = file.rewind().and_then(|()| file.read_to_string(&mut text));
        let holder = read.ok().and_then(|_| serde_json::from_str::<Holder>(&text).ok());
        match holder {
            Some(h) if alive(h.pid) => return Some(h),
            _ if std::time::Instant::now() >= deadline => return None,
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Whether a process of this machine is running (a lock file's holder is one).
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: signal 0 only asks whether the process exists.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
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
            let holder = read_holder(&mut file).await.unwrap_or_else(|| Holder {
                run_id: "(unknown: the lock file holds no holder)".into(),
                dagster_run_id: None,
                host: String::new(),
                pid: 0,
                started_at: String::new(),
                expires_at: 0.0,
                ttl_secs: None,
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
        // different files of one name. It is emptied first, while still locked, so a run that
        // finds it locked later never reads this holder's name for the next one's.
        let file = self.held.lock().unwrap_or_else(|p| p.into_inner()).remove(&lease.name);
        if let Some(file) = file {
            file.set_len(0).map_err(|e| backend("release", &lease.name, e))?;
        }
        Ok(())
    }

    fn renew_every(&self) -> Duration {
        Duration::from_secs(3600)
    }
}
