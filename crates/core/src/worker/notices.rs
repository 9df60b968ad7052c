//! What tells a worker to stop: SIGTERM or SIGINT to its process, and the spot notices the
//! metadata service gives (polled in `runner_backends::imds`), read as one [`Notice`].

use runner_backends::imds::Notice;
use tokio::sync::watch;

/// A notice that turns to `Terminate` when the process gets SIGTERM or SIGINT.
pub(super) fn signals() -> watch::Receiver<Notice> {
    let (tx, rx) = watch::channel(Notice::None);
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut int)) = (
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()),
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()),
        ) else {
            return;
        };
        let which = tokio::select! { _ = term.recv() => "SIGTERM", _ = int.recv() => "SIGINT" };
        let _ = tx.send(Notice::Terminate(format!("worker received {which}")));
    });
    rx
}

/// The notice in force: a signal's, else the metadata service's.
pub(super) fn current_notice(spot: &Option<watch::Receiver<Notice>>, sig: &watch::Receiver<Notice>) -> Notice {
    let s = sig.borrow().clone();
    if s != Notice::None {
        return s;
    }
    spot.as_ref().map(|r| r.borrow().clone()).unwrap_or(Notice::None)
}

/// Resolves when a termination notice (spot or signal) arrives.
pub(super) async fn wait_terminate(
    spot: &mut Option<watch::Receiver<Notice>>,
    sig: &mut watch::Receiver<Notice>,
) -> String {
    loop {
        let notice = current_notice(spot, sig);
        if let Notice::Terminate(reason) = notice {
            return reason;
        }
        tokio::select! {
            r = sig.changed() => if r.is_err() { std::future::pending::<()>().await },
            r = async { match spot { Some(s) => s.changed().await, None => std::future::pending().await } } => {
                if r.is_err() { *spot = None; }
            }
        }
    }
}
