//! The seed's itango session, through the HTTP surface, against the embedded server and a real etcd; the
//! configuration database is checked after each step.

use std::time::{Duration, Instant};

use futures::StreamExt;
use sdp_config::Config;
use serde_json::{json, Value};

const SEED_CONFIGURE: &str = r#"{ "configure": { "id": "xyz", "sbiId": "xyz", "workflow": { "type": "realtime", "version": "0.1.0", "id": "vis_receive" }, "parameters": {}, "scanParameters": { "1": {} } } }"#;

struct Surface {
    http: reqwest::Client,
    base: String,
    metrics: sdp_lmc::Metrics,
    server: tokio::task::JoinHandle<()>,
}

impl Surface {
    async fn start(config: Config) -> Surface {
        let metrics = sdp_lmc::Metrics::default();
        let lmc = sdp_lmc::Lmc::start(config, 1, metrics.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, sdp_lmc::http::router(lmc)).await.unwrap() });
        let _ = rustls::crypto::ring::default_provider().install_default();
        Surface { http: reqwest::Client::new(), base, metrics, server }
    }

    /// Stops the server; a panic of it fails the test.
    async fn stop(self) {
        sdp_testkit::stop_task(self.server).await;
    }

    async fn attr(&self, device: &str, name: &str) -> Value {
        let resp = self.http.get(format!("{}/api/devices/{device}/attributes/{name}", self.base)).send().await.unwrap();
        assert!(resp.status().is_success(), "{name}: {}", resp.status());
        resp.json().await.unwrap()
    }

    /// `(value, label)` of an enum attribute, or the value of a state/string attribute.
    async fn value(&self, device: &str, name: &str) -> Value {
        let a = self.attr(device, name).await;
        match a["type"].as_str() {
            Some("enum") => json!([a["value"], a["label"]]),
            _ => a["value"].clone(),
        }
    }

    async fn command(&self, device: &str, name: &str, argin: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/api/devices/{device}/commands/{name}", self.base))
            .body(argin.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    async fn write(&self, device: &str, name: &str, value: Value) -> u16 {
        let url = format!("{}/api/devices/{device}/attributes/{name}", self.base);
        self.http.put(url).body(value.to_string()).send().await.unwrap().status().as_u16()
    }
}

async fn keys(config: &Config) -> Vec<String> {
    config.txn(|t| async move { t.list_keys("/", 8).await }).await.unwrap()
}

async fn seed_transcript(config: Config) {
    let s = Surface::start(config.clone()).await;
    let sub = "subarray_1";
    let devices: Value = s.http.get(format!("{}/api/devices", s.base)).send().await.unwrap().json().await.unwrap();
    let names: Vec<&str> = devices.as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["mid_sdp/elt/master", "mid_sdp/elt/subarray_1"]);
    let mut events = s.http.get(format!("{}/api/events", s.base)).send().await.unwrap().bytes_stream();

    // In [3]: d.obsState -> <obsState.IDLE: 0>; In [4]: d.state() -> OFF
    assert_eq!(s.value(sub, "obsState").await, json!([0, "IDLE"]));
    assert_eq!(s.value(sub, "State").await, json!("OFF"));
    // Refused while OFFLINE: an error with the original's message, nothing changes.
    let (status, err) = s.command(sub, "AssignResources", "").await;
    assert_eq!(status, 409);
    assert!(err["desc"].as_str().unwrap().contains("Current mode: <AdminMode.OFFLINE: 0>"), "{err}");
    assert_eq!(s.value(sub, "State").await, json!("OFF"));
    // In [5]: d.adminMode = 'ONLINE'; In [6]: d.AssignResources('')
    assert_eq!(s.write(sub, "adminMode", json!("ONLINE")).await, 204);
    assert_eq!(s.command(sub, "AssignResources", "").await.0, 204);
    assert_eq!(s.value(sub, "State").await, json!("ON"));
    assert_eq!(s.value(sub, "obsState").await, json!([0, "IDLE"]));
    // Bad arguments: 400 with a message naming the field; nothing written.
    let before = keys(&config).await;
    let (status, err) = s.command(sub, "Configure", r#"{"configure": {"id": "xyz"}}"#).await;
    assert_eq!(status, 400);
    assert_eq!(err["desc"], "configure: 'sbiId' is a required property");
    assert_eq!(s.command(sub, "Configure", "{not json").await.0, 400);
    assert_eq!(keys(&config).await, before);
    assert_eq!(s.value(sub, "obsState").await, json!([0, "IDLE"]));
    // In [9]: d.Configure(...) -> READY: 2
    assert_eq!(s.command(sub, "Configure", SEED_CONFIGURE).await.0, 204);
    assert_eq!(s.value(sub, "obsState").await, json!([2, "READY"]));
    let pb = config.txn(|t| async move { t.get_processing_block("xyz").await }).await.unwrap().unwrap();
    assert_eq!(
        (pb.workflow.kind.as_str(), pb.workflow.id.as_str(), pb.workflow.version.as_str()),
        ("realtime", "vis_receive", "0.1.0")
    );
    assert_eq!(pb.scan_parameters, json!({"1": {}}));
    let entry: Value = config.txn(|t| async move { t.get_json("/subarray/1").await }).await.unwrap().unwrap();
    assert_eq!(entry, json!({"adminState": "ONLINE", "command": "Configure", "currentPb": "xyz"}));
    // In [11]: d.StartScan() -> SCANNING: 3
    assert_eq!(s.command(sub, "StartScan", "").await.0, 204);
    assert_eq!(s.value(sub, "obsState").await, json!([3, "SCANNING"]));
    let pb_state = config.txn(|t| async move { t.get_processing_block_state("xyz").await }).await.unwrap().unwrap();
    assert_eq!(pb_state["obsState"], "SCANNING");
    // The receive workflow publishes its addresses in the processing block state; the attribute follows.
    let addresses = json!({"scanId": 1, "totalChannels": 4, "receiveAddresses": []});
    let published = addresses.clone();
    config
        .txn(|t| {
            let published = published.clone();
            async move {
                let mut state = t.get_processing_block_state("xyz").await?.unwrap();
                state["receiveAddresses"] = published;
                t.put_processing_block_state("xyz", &state).await
            }
        })
        .await
        .unwrap();
    let start = Instant::now();
    while s.value(sub, "receiveAddresses").await != json!(addresses.to_string()) {
        assert!(start.elapsed() < Duration::from_secs(10), "receiveAddresses not published");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // In [13]: d.EndScan() -> READY: 2
    assert_eq!(s.command(sub, "EndScan", "").await.0, 204);
    assert_eq!(s.value(sub, "obsState").await, json!([2, "READY"]));
    let (status, err) = s.command(sub, "EndScan", "").await;
    assert_eq!(
        (status, err["desc"].as_str().unwrap()),
        (409, "Error: the device must be in one of the following obsStates: [<ObsState.SCANNING: 3>]")
    );
    // EndSB removes what Configure made.
    assert_eq!(s.command(sub, "EndSB", "").await.0, 204);
    assert_eq!(s.value(sub, "obsState").await, json!([0, "IDLE"]));
    assert!(
        keys(&config).await.iter().all(|k| !k.starts_with("/pb/xyz") && k != "/subarray/1"),
        "{:?}",
        keys(&config).await
    );
    // The master.
    assert_eq!(s.value("master", "State").await, json!("ON"));
    assert_eq!(s.command("master", "Standby", "").await.0, 204);
    assert_eq!(s.value("master", "OperatingState").await, json!([3, "STANDBY"]));
    let master: Value = config.txn(|t| async move { t.get_json("/master").await }).await.unwrap().unwrap();
    assert_eq!(master, json!({"state": "STANDBY"}));
    // Unknown names.
    assert_eq!(s.command(sub, "Explode", "").await.0, 404);
    assert_eq!(s.command("nope", "On", "").await.0, 404);
    assert_eq!(s.write(sub, "obsState", json!(2)).await, 409);
    assert_eq!(s.write(sub, "adminMode", json!("SIDEWAYS")).await, 400);

    // Change events arrived for what changed, in order.
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains("\"STANDBY\"") {
        let chunk = tokio::time::timeout_at(deadline.into(), events.next()).await.expect("events").unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let order: Vec<usize> = ["\"label\":\"ONLINE\"", "\"label\":\"READY\"", "\"label\":\"SCANNING\"", "\"STANDBY\""]
        .iter()
        .map(|needle| seen.find(needle).unwrap_or_else(|| panic!("no event {needle} in {seen}")))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{seen}");
    // Every obsState transition, as the original device shows them: the refused Configures pass through
    // CONFIGURING and back to IDLE, the good one through CONFIGURING to READY.
    let obs_states: Vec<String> = seen
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
        .filter(|event| event["attribute"] == "obsState")
        .map(|event| event["value"]["label"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        obs_states,
        ["CONFIGURING", "IDLE", "CONFIGURING", "IDLE", "CONFIGURING", "READY", "SCANNING", "READY", "IDLE"],
        "{seen}"
    );

    // The commands counted by device, command and result (names a client made up count as unknown), and the
    // events by attribute.
    let commands = |device: &str, command: &str, result: &str| {
        let labels =
            sdp_lmc::metrics::CommandLabels { device: device.into(), command: command.into(), result: result.into() };
        s.metrics.commands.get_or_create(&labels).get()
    };
    assert_eq!(commands(sub, "AssignResources", "refused"), 1);
    assert_eq!(commands(sub, "AssignResources", "ok"), 1);
    assert_eq!((commands(sub, "Configure", "refused"), commands(sub, "Configure", "ok")), (2, 1));
    assert_eq!((commands(sub, "EndScan", "ok"), commands(sub, "EndScan", "refused")), (1, 1));
    assert_eq!(commands("master", "Standby", "ok"), 1);
    assert_eq!(commands(sub, "unknown", "not_found"), 1);
    assert_eq!(commands("unknown", "unknown", "not_found"), 1);
    let events = |attribute: &str| {
        let labels = sdp_lmc::metrics::EventLabels { device: sub.into(), attribute: attribute.into() };
        s.metrics.events.get_or_create(&labels).get()
    };
    assert_eq!(events("obsState"), obs_states.len() as u64);
    s.stop().await;
}

#[tokio::test]
async fn seed_transcript_on_the_embedded_server() {
    let server = sdp_testkit::Embedded::start().await;
    seed_transcript(server.config().await).await;
    server.stop().await;
}

#[tokio::test]
async fn seed_transcript_on_etcd() {
    let etcd = sdp_testkit::Etcd::start();
    seed_transcript(etcd.config().await).await;
}

/// [`sdp_lmc::start`], as the platform serves the devices: with a token, every device route needs it, in the
/// surface's error format; the probes and metrics beside them stay open.
#[tokio::test]
async fn the_platforms_surface_needs_its_token_and_leaves_the_probes_open() {
    let settings = sdp_lmc::Settings::new("127.0.0.1:0".parse().unwrap(), 2, Some("s3cret".into())).unwrap();
    let ops = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
    let running = sdp_lmc::start(settings, Config::memory(), Default::default(), ops).await.unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let get = |path: &str, token: Option<&str>| {
        let mut request = http.get(format!("http://{}{path}", running.addr()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, body) = get("/api/devices", None).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, &body["reason"]), (401, &json!("API_Unauthorized")), "{body}");
    assert_eq!(get("/api/devices", Some("wrong")).await.0, 401);
    let (status, devices) = get("/api/devices", Some("s3cret")).await;
    assert!(status == 200 && devices.contains("mid_sdp/elt/subarray_2"), "{status} {devices}");
    assert_eq!(get("/healthz", None).await, (200, "ok".to_string()));
    running.stop();
}
