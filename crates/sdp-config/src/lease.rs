//! Leases: keys attached to one vanish when its holder stops renewing it (process death, lost connection).

use tokio::task::JoinHandle;

use crate::backend::Backend;
use crate::error::Error;

/// A lease kept alive by a background task for as long as this value lives. Dropping it stops the renewals
/// (the keys vanish after the TTL); [`Lease::revoke`] removes them at once.
pub struct Lease {
    id: i64,
    ttl: i64,
    backend: Backend,
    keeper: JoinHandle<()>,
    lost: tokio::sync::watch::Receiver<bool>,
}

impl Lease {
    pub(crate) async fn grant(backend: Backend, ttl: i64) -> Result<Lease, Error> {
        let id = backend.lease_grant(ttl).await?;
        let (lost_tx, lost) = tokio::sync::watch::channel(false);
        let keeper_backend = backend.clone();
        let keeper = tokio::spawn(async move {
            let error = keeper_backend.lease_keep_alive(id, ttl).await;
            tracing::error!(%error, "lease lost");
            let _ = lost_tx.send(true);
        });
        Ok(Lease { id, ttl, backend, keeper, lost })
    }

    pub fn id(&self) -> i64 {
        self.id
    }

    pub fn ttl(&self) -> i64 {
        self.ttl
    }

    /// Resolves when the lease has expired or was revoked by someone else: its keys are gone.
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        let _ = lost.wait_for(|l| *l).await;
    }

    /// Ends the lease now, deleting the keys attached to it.
    pub async fn revoke(self) -> Result<(), Error> {
        self.keeper.abort();
        self.backend.lease_revoke(self.id).await
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}
