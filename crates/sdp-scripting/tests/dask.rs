//! The Dask client against a real Dask: distributed 2022.12.1 (the `ska-sdp-dask` image's version) from the
//! tool cache `scripts/setup` fills, a scheduler and two workers on 127.0.0.1.

use std::time::Duration;

use sdp_scripting::dask::{self, DaskError};
use sdp_testkit::{process_alive, DaskCluster};

const STEP: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread")]
async fn a_real_scheduler_says_who_it_is_and_which_workers_it_has() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = DaskCluster::start(dir.path(), 2);
    let identity = match dask::wait_for_workers(&cluster.address, 2, Duration::from_secs(60)).await {
        Ok(identity) => identity,
        Err(e) => {
            panic!("{e}\nscheduler: {}\nworker-0: {}", cluster.log_tail("scheduler"), cluster.log_tail("worker-0"))
        }
    };
    assert_eq!(identity.kind, "Scheduler");
    assert!(identity.id.starts_with("Scheduler-"), "{identity:?}");
    assert_eq!(identity.address, cluster.address);
    assert_eq!(identity.workers.len(), 2, "{identity:?}");
    for (address, worker) in &identity.workers {
        assert!(address.starts_with("tcp://127.0.0.1:"), "{address}");
        assert_eq!(worker.nthreads, Some(1), "{address}");
    }

    // The comm closed cleanly: the scheduler serves the next one, the same scheduler.
    let again = dask::identity(&cluster.address, STEP).await.unwrap();
    assert_eq!((again.id.as_str(), again.workers.len()), (identity.id.as_str(), 2));
    // More workers than it has: the wait ends, naming those it has.
    let e = dask::wait_for_workers(&cluster.address, 3, Duration::from_secs(2)).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("did not have 3 workers within 2 s (it had 2: tcp://127.0.0.1:"), "{text}");
    // A worker speaks the same protocol, but is not a scheduler.
    let worker = identity.workers.keys().next().unwrap();
    match dask::identity(worker, STEP).await {
        Err(DaskError::NotAScheduler { kind, .. }) => assert_eq!(kind, "Worker"),
        other => panic!("asking the worker {worker}: {other:?}"),
    }

    // Stopped, nothing of the cluster is left.
    let processes = cluster.processes();
    assert!(processes.len() >= 3, "a scheduler and two workers: {processes:?}");
    drop(cluster);
    let left: Vec<u32> = processes.into_iter().filter(|pid| process_alive(*pid)).collect();
    assert!(left.is_empty(), "Dask processes left running: {left:?}");
}
