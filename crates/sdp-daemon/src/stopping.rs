//! Stopping a daemon's task: told to stop, it ends its work itself (a leader resigns its lead), within a limit.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Waits up to `limit` for `task`, told to stop, to end (`what` names it in the log); aborts it after that.
pub async fn stop_within(task: JoinHandle<()>, limit: Duration, what: &str) {
    let abort = task.abort_handle();
    if tokio::time::timeout(limit, task).await.is_err() {
        tracing::warn!(limit_s = limit.as_secs(), "{what} did not stop in time: dropped");
        abort.abort();
    }
}

/// A task that runs until told to stop: [`Stoppable::stop`] tells it, then waits for it to end.
pub struct Stoppable {
    task: JoinHandle<()>,
    stop: oneshot::Sender<()>,
}

/// What a [`Stoppable`] task is given: resolves once it is told to stop (or its [`Stoppable`] is dropped).
pub struct StopSignal(oneshot::Receiver<()>);

impl Future for StopSignal {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

impl Stoppable {
    /// Spawns `run(stop)`, a task that ends by itself once `stop` resolves.
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(run: impl FnOnce(StopSignal) -> F) -> Stoppable {
        let (stop, signal) = oneshot::channel();
        Stoppable { task: tokio::spawn(run(StopSignal(signal))), stop }
    }

    /// Tells the task to stop and waits up to `limit` for it to end ([`stop_within`]).
    pub async fn stop(self, limit: Duration, what: &str) {
        let _ = self.stop.send(());
        stop_within(self.task, limit, what).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task that ends on its signal is waited for; one that ignores it is dropped after the limit.
    #[tokio::test]
    async fn a_task_ends_on_its_signal_or_is_dropped_after_the_limit() {
        let (ended_tx, ended) = oneshot::channel();
        let obeying = Stoppable::spawn(|stop| async move {
            stop.await;
            let _ = ended_tx.send(());
        });
        obeying.stop(Duration::from_secs(5), "the obeying task").await;
        assert_eq!(ended.await, Ok(()), "the task ran to its end");

        let (dropped_tx, dropped) = oneshot::channel::<()>();
        let ignoring = Stoppable::spawn(|_stop| async move {
            let _kept_until_dropped = dropped_tx;
            std::future::pending::<()>().await
        });
        ignoring.stop(Duration::from_millis(100), "the ignoring task").await;
        assert!(dropped.await.is_err(), "the task was dropped");
    }
}
