//! Local processes dying with their parent: a local worker must not outlive its orchestrator,
//! nor an item process its worker (it would go on writing the item's outputs). On Linux the parent asks the kernel
//! (`PR_SET_PDEATHSIG`, set by [`die_with_parent`] before exec); elsewhere (macOS) the child
//! watches its parent id and signals itself when it changes ([`watch_parent`]).

use std::process::Command;
use std::time::Duration;

/// Makes a child spawned by `cmd` receive `signal` when this process dies (Linux); elsewhere
/// the child must call [`watch_parent`] itself.
pub fn die_with_parent(cmd: &mut Command, signal: libc::c_int) {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe, as a pre_exec hook requires.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, signal);
            Ok(())
        });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (cmd, signal);
}

/// In a child: where the kernel does not (not Linux), sends `signal` to this process once its
/// parent is gone. On Linux it does nothing: [`die_with_parent`] already arranged it.
pub fn watch_parent(signal: libc::c_int) {
    #[cfg(not(target_os = "linux"))]
    spawn_parent_watch(
        Duration::from_millis(500),
        // SAFETY: getppid cannot fail.
        || unsafe { libc::getppid() },
        // SAFETY: signalling this very process.
        move || unsafe {
            libc::kill(libc::getpid(), signal);
        },
    );
    #[cfg(target_os = "linux")]
    let _ = signal;
}

/// The portable watch: a thread that polls `parent` and calls `orphaned` once it changes.
/// Compiled everywhere so that it is built and tested on Linux too.
#[cfg_attr(target_os = "linux", allow(dead_code))]
fn spawn_parent_watch(
    every: Duration,
    parent: impl Fn() -> libc::pid_t + Send + 'static,
    orphaned: impl FnOnce() + Send + 'static,
) {
    let first = parent();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(every);
            if parent() != first {
                orphaned();
                return;
            }
        }
    });
}

/// Whether a process exists, by POSIX signal 0 (a zombie counts).
pub fn exists(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI32, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn the_watch_fires_once_the_parent_changes_and_not_before() {
        let parent = Arc::new(AtomicI32::new(4242));
        let (tx, rx) = mpsc::channel();
        let source = parent.clone();
        super::spawn_parent_watch(
            Duration::from_millis(10),
            move || source.load(Ordering::SeqCst),
            move || tx.send(()).unwrap(),
        );
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err(), "the parent is still there");
        parent.store(1, Ordering::SeqCst);
        assert!(rx.recv_timeout(Duration::from_secs(5)).is_ok(), "re-parented: the watch fires");
    }

    #[test]
    fn a_reaped_process_no_longer_exists() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        assert!(super::exists(child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!super::exists(child.id()));
    }
}
