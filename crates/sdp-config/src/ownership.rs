//! Ownership of an entry: one process at a time holds an owner entry (its command, host and PID), attached to
//! its lease. The daemons' leadership ([`crate::run_while_leading`]) and the processing scripts' claim on a block
//! (`/pb/<id>/owner`) are both this: take (waiting while a live owner holds it), notice when it is lost, resign.
//!
//! An owner entry on no live lease (written without one, or on one that ended) names nobody who is alive: it
//! does not count, and a taker replaces it ([`Txn::take_owner_entry`]). Nobody can stall an owner's successor by
//! writing the entry.

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::Error;
use crate::lease::Lease;
use crate::txn::Txn;

/// `/pb/<pb_id>/owner`: who is working on a processing block. Attached to the owner's lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub command: Vec<String>,
    pub hostname: String,
    pub pid: u32,
}

impl Owner {
    /// This process, as the original identifies an owner: its command line, host name and PID.
    pub fn this_process() -> Owner {
        // Made once: it does not change, and leaders compare it on every pass (a file read for the host name).
        static THIS: std::sync::OnceLock<Owner> = std::sync::OnceLock::new();
        THIS.get_or_init(|| Owner {
            command: std::env::args().collect(),
            hostname: hostname(),
            pid: std::process::id(),
        })
        .clone()
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string()))
        .unwrap_or_else(|| "localhost".into())
}

/// How taking an owner entry went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taken {
    /// There was none: it is ours.
    Free,
    /// It was on no live lease (`lease`, 0 for none): it is ours now.
    Stale { lease: i64 },
    /// A live owner holds it.
    Held,
}

impl Taken {
    /// Why a stale entry did not count, for the log.
    pub fn reason(self) -> Option<String> {
        match self {
            Taken::Stale { lease: 0 } => Some("the owner entry had no lease".into()),
            Taken::Stale { lease } => Some(format!("the owner entry's lease {lease:x} no longer exists")),
            Taken::Free | Taken::Held => None,
        }
    }
}

impl Txn {
    /// Makes this process the owner at `path`, on `lease`, unless a live owner holds it. An entry on no live
    /// lease is replaced; the commit requires it still as read, so two takers cannot both win.
    pub async fn take_owner_entry(&self, path: &str, lease: &Lease) -> Result<Taken, Error> {
        let owner = Owner::this_process();
        match self.lease_of(path).await? {
            None => {
                self.create_json(path, &owner, Some(lease)).await?;
                Ok(Taken::Free)
            }
            Some(held) if held != 0 && self.lease_alive(held).await? => Ok(Taken::Held),
            Some(held) => {
                self.replace_json_on_lease(path, &owner, lease).await?;
                Ok(Taken::Stale { lease: held })
            }
        }
    }
}

/// An owner entry this process holds, on a lease renewed in the background, while this value lives.
pub struct Ownership {
    config: Config,
    path: String,
    lease: Lease,
}

impl Ownership {
    /// Takes the owner entry at `path` with a lease of `ttl` seconds, waiting while a live owner holds it. With
    /// `requires`, the key of what is owned: `None` when it does not exist (checked in the same transaction as
    /// the take, and again while waiting). `what` names it in the log.
    pub async fn take(
        config: &Config,
        path: &str,
        ttl: i64,
        requires: Option<&str>,
        what: &str,
    ) -> Result<Option<Ownership>, Error> {
        let lease = config.lease(ttl).await?;
        let mut watcher = config.watcher();
        let mut said_held = false;
        loop {
            let taken = watcher
                .txn(|t| {
                    let lease = &lease;
                    async move {
                        if let Some(required) = requires {
                            if t.get(required).await?.is_none() {
                                return Ok(None);
                            }
                        }
                        t.take_owner_entry(path, lease).await.map(Some)
                    }
                })
                .await?;
            match taken {
                None => {
                    // Nothing will be owned: the lease goes now rather than when it expires.
                    let _ = lease.revoke().await;
                    return Ok(None);
                }
                Some(Taken::Held) => {
                    if !std::mem::replace(&mut said_held, true) {
                        tracing::info!(
                            owner_entry = path,
                            "{what} is held by another live owner; waiting for it to let go"
                        );
                    }
                }
                Some(taken) => {
                    match taken.reason() {
                        Some(reason) => tracing::warn!(owner_entry = path, reason, "took over {what}: {reason}"),
                        None => tracing::info!(owner_entry = path, "took {what}"),
                    }
                    return Ok(Some(Ownership { config: config.clone(), path: path.to_string(), lease }));
                }
            }
        }
    }

    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Resolves when the ownership is lost: the lease expired or was revoked, or the entry was deleted or
    /// written over.
    pub async fn lost(&self) {
        let entry_gone = async {
            let mut watcher = self.config.watcher();
            loop {
                let path = &self.path;
                match watcher.txn(|t| async move { t.lease_of(path).await }).await {
                    Ok(Some(lease)) if lease == self.lease.id() => {}
                    Ok(_) => return,
                    // The database is unreachable: the lease tells whether the ownership survives it.
                    Err(_) => std::future::pending::<()>().await,
                }
            }
        };
        tokio::select! {
            _ = self.lease.lost() => {}
            _ = entry_gone => {}
        }
    }

    /// Gives the ownership up now (the lease is revoked and the entry goes with it), so that the next taker does
    /// not wait for the lease to expire.
    pub async fn resign(self) -> Result<(), Error> {
        self.lease.revoke().await
    }
}
