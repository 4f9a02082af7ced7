//! The controller against the embedded server and a real etcd: the seed's flow, deletion, malformed input, and
//! several controllers at once.

use std::time::Duration;

use sdp_config::{Config, Deployment, ProcessingBlock};
use sdp_proccontrol::{builtin_scripts, ActionKind, Controller, ControllerSettings, Metrics, ScriptRunner};
use serde_json::json;

fn controller(config: &Config) -> Controller {
    Controller {
        config: config.clone(),
        builtin_scripts: builtin_scripts(),
        settings: ControllerSettings {
            config_host: "127.0.0.1".into(),
            config_port: 2379,
            helm_namespace: "sdp".into(),
            runner: ScriptRunner::Helm { tls_secret: None },
        },
        lease_ttl: 3,
        metrics: Default::default(),
    }
}

async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    sdp_testkit::eventually(what, Duration::from_secs(15), check).await
}

async fn deployments(config: &Config) -> Vec<String> {
    config.txn(|t| async move { t.list_deployments().await }).await.unwrap()
}

/// A new processing block of `workflow`, once the controller has deployed its script: its ID and the
/// deployment's.
async fn new_block_deployed(config: &Config, workflow: &'static str) -> (String, String) {
    let pb_id =
        config.txn(|t| async move { t.create_new_processing_block(workflow.parse()?, json!({})).await }).await.unwrap();
    let deploy_id = format!("{pb_id}-workflow");
    eventually("the script deployment", || async { deployments(config).await.contains(&deploy_id) }).await;
    (pb_id, deploy_id)
}

async fn seed_flow(config: Config) {
    let running = tokio::spawn(sdp_proccontrol::run(controller(&config)));
    let (pb_id, deploy_id) = new_block_deployed(&config, "realtime:testdask:0.1.0").await;
    let d = config
        .txn(|t| {
            let id = deploy_id.clone();
            async move { t.get_deployment(&id).await }
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.args["values"]["pb_id"], json!(pb_id));
    assert_eq!(d.args["values"]["wf_image"], json!(sdp_proccontrol::default_script_image()));
    assert_eq!(d.args["values"]["args"], json!(["script", "testdask"]));
    // The controller wrote the platform's script definitions into /script, where a user adds their own.
    let defined = config.txn(|t| async move { t.list_scripts().await }).await.unwrap();
    let ids: Vec<&str> = defined.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "batch-test_batch-0-1-0",
            "batch-testdask-0-1-0",
            "realtime-testdask-0-1-0",
            "realtime-testdeploy-0-1-0",
            "realtime-teststate-0-1-0",
            "realtime-vis_receive-0-1-0"
        ]
    );
    assert!(defined.iter().all(|(_, d)| d.is_ok()), "{defined:?}");
    let state = config
        .txn(|t| {
            let id = pb_id.clone();
            async move { t.get_processing_block_state(&id).await }
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state["state"], "executing");
    // The script deploys its execution engine, as the seed's testdask does.
    let dask =
        Deployment { deploy_id: format!("{pb_id}-dask"), kind: "helm".into(), args: json!({"chart": "stable/dask"}) };
    config
        .txn(|t| {
            let d = dask.clone();
            async move { t.create_deployment(&d).await }
        })
        .await
        .unwrap();
    // Malformed input is reported in the state and does not stop the controller.
    config.txn(|t| async move { t.create("/pb/broken", "{oops", None).await }).await.unwrap();
    eventually("the malformed block's state", || async {
        let s = config.txn(|t| async move { t.get_processing_block_state("broken").await }).await.unwrap();
        s.is_some_and(|s| s["state"] == "failed")
    })
    .await;
    assert_eq!(config.txn(|t| async move { t.get("/pb/broken").await }).await.unwrap().as_deref(), Some("{oops"));
    // Deleting the processing block alone (as `sdpcfg delete /pb/<id>` does) undoes its deployments and
    // leaves nothing of it below /pb.
    let pb_path = format!("/pb/{pb_id}");
    config
        .txn(|t| {
            let p = pb_path.clone();
            async move { t.delete(&p, true, false).await }
        })
        .await
        .unwrap();
    eventually("deployments removed", || async { deployments(&config).await.is_empty() }).await;
    eventually("the state removed", || async {
        let below = config
            .txn(|t| {
                let p = format!("{pb_path}/");
                async move { t.list_keys(&p, 1).await }
            })
            .await
            .unwrap();
        below.is_empty()
    })
    .await;
    sdp_testkit::stop_task(running).await;
}

/// Three controllers share one set of metrics: the deployments they created, counted when their transaction
/// commits, are exactly the blocks' deployments, and none was deleted (a duplicate would count twice).
async fn racing_controllers_never_duplicate(config: Config) {
    let metrics = Metrics::default();
    let actions = |action: &str| metrics.actions.get_or_create(&ActionKind { action: action.into() }).get();
    let mut controllers: Vec<_> = (0..3)
        .map(|_| tokio::spawn(sdp_proccontrol::run(Controller { metrics: metrics.clone(), ..controller(&config) })))
        .collect();
    let new_block = |i: usize| {
        let workflow = if i.is_multiple_of(2) { "realtime:testdask:0.1.0" } else { "batch:testdask:0.1.0" };
        config.txn(move |t| async move {
            let id = t.new_processing_block_id(workflow.split(':').next().unwrap()).await?;
            t.create_processing_block(&ProcessingBlock::new(&id, workflow.parse()?)).await
        })
    };
    for i in 0..20 {
        new_block(i).await.unwrap();
        if i == 10 {
            // A controller dies midway; the others carry on.
            sdp_testkit::stop_task(controllers.remove(0)).await;
        }
    }
    eventually("20 deployments created", || async { actions("create_deployment") >= 20 }).await;
    // One block more: the pass that deploys it plans against all the others, so a duplicate would exist by then.
    new_block(20).await.unwrap();
    eventually("the last deployment created", || async { actions("create_deployment") >= 21 }).await;
    assert_eq!((actions("create_deployment"), actions("delete_deployment")), (21, 0), "each created once");
    let ids = deployments(&config).await;
    assert_eq!(ids.len(), 21, "{ids:?}");
    assert!(ids.iter().all(|d| d.ends_with("-workflow")));
    for c in controllers {
        sdp_testkit::stop_task(c).await;
    }
}

/// More blocks at once than one transaction may change (etcd allows 128 operations): the controller works
/// through them in several.
async fn a_hundred_blocks_at_once(config: Config) {
    config
        .txn(|t| async move {
            for i in 0..100 {
                t.create_processing_block(&ProcessingBlock::new(
                    &format!("many-{i:03}"),
                    "batch:testdask:0.1.0".parse()?,
                ))
                .await?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let running = tokio::spawn(sdp_proccontrol::run(controller(&config)));
    eventually("100 script deployments", || async { deployments(&config).await.len() == 100 }).await;
    sdp_testkit::stop_task(running).await;
}

macro_rules! on_both {
    ($($case:ident),*) => {
        mod embedded {
            $(#[tokio::test(flavor = "multi_thread")] async fn $case() {
                let server = sdp_testkit::Embedded::start().await;
                super::$case(server.config().await).await;
                server.stop().await;
            })*
        }
        mod etcd {
            $(#[tokio::test(flavor = "multi_thread")] async fn $case() {
                let etcd = sdp_testkit::Etcd::start();
                super::$case(etcd.config().await).await;
            })*
        }
    };
}

on_both!(seed_flow, racing_controllers_never_duplicate, a_hundred_blocks_at_once);

/// Blocks whose ID cannot name a key (written by another client, with entries below them and a deployment
/// named after them) neither stop the controller nor fill its log: each is logged once, however many passes
/// see it, and the other blocks get their scripts.
#[tokio::test]
async fn entries_with_ids_that_name_no_key_are_logged_once_and_stop_nothing() {
    let logs = sdp_testkit::Logs::capture();
    let server = sdp_testkit::Embedded::start().await;
    let config = server.config().await;
    let port = server.server.addr.port();
    let block = |id: &str| json!({"pb_id": id, "workflow": {"type": "batch", "id": "testdask", "version": "0.1.0"}});
    for id in ["..", "é"] {
        sdp_testkit::put_unchecked(port, &format!("/pb/{id}"), &block(id).to_string()).await;
    }
    sdp_testkit::put_unchecked(port, "/pb/../state", r#"{"state": "executing"}"#).await;
    sdp_testkit::put_unchecked(port, "/deploy/é-workflow", "{}").await;
    let metrics = Metrics::default();
    let running = tokio::spawn(sdp_proccontrol::run(Controller { metrics: metrics.clone(), ..controller(&config) }));
    for i in 0..10 {
        let id = format!("good-{i}");
        config
            .txn(|t| {
                let id = id.clone();
                async move { t.create_processing_block(&ProcessingBlock::new(&id, "batch:testdask:0.1.0".parse()?)).await }
            })
            .await
            .unwrap();
        let deploy_id = format!("{id}-workflow");
        eventually("the good block's script deployment", || async { deployments(&config).await.contains(&deploy_id) })
            .await;
    }
    assert!(metrics.reconciles.get() >= 10);
    for id in ["\"..\"", "\"é\""] {
        assert_eq!(logs.lines_with(&["WARN", id]).len(), 1, "{:#?}", logs.lines_with(&["WARN"]));
    }
    sdp_testkit::stop_task(running).await;
    server.stop().await;
}

/// [`sdp_proccontrol::start`], as the platform runs the controller: the built-in scripts, the settings given,
/// its metrics in the platform's registry; stopped, it resigns its lead.
#[tokio::test]
async fn started_as_the_platform_runs_it() {
    let config = Config::memory();
    let mut registry = prometheus_client::registry::Registry::default();
    let running = sdp_proccontrol::start(controller(&config).settings, config.clone(), &mut registry);
    new_block_deployed(&config, "batch:testdask:0.1.0").await;
    let mut metrics = String::new();
    prometheus_client::encoding::text::encode(&mut metrics, &registry).unwrap();
    assert!(metrics.contains("sdp_processing_reconciles_total"), "{metrics}");
    let lead =
        || config.txn(|t| async move { t.lease_of(&sdp_config::keys::paths::leader(sdp_proccontrol::LEADER)).await });
    assert!(lead().await.unwrap().is_some());
    running.stop().await;
    assert_eq!(lead().await.unwrap(), None, "the lead is resigned");
}
