//! An in-memory Kubernetes API for controller tests and the reconcile benchmark: a tower service that keeps
//! objects by path and answers get, list (with equality label selectors), create, replace, server-side apply
//! (the applied object replaces the stored one, status kept), merge patch (also of `/status`) and delete. No
//! watches: tests call the reconcilers directly.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{json, Value};

/// (API base like `/apis/apps/v1`, plural, namespace, name).
type Key = (String, String, String, String);

#[derive(Clone, Default)]
pub struct FakeApi {
    objects: Arc<Mutex<BTreeMap<Key, Value>>>,
    revision: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
}

/// A parsed request path.
struct Target {
    base: String,
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

fn parse(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (base, rest) = match segments.first() {
        Some(&"api") if segments.len() >= 2 => (format!("/api/{}", segments[1]), &segments[2..]),
        Some(&"apis") if segments.len() >= 3 => (format!("/apis/{}/{}", segments[1], segments[2]), &segments[3..]),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        rest => (None, rest),
    };
    let (plural, name, status) = match rest {
        [plural] => (plural, None, false),
        [plural, name] => (plural, Some(name.to_string()), false),
        [plural, name, "status"] => (plural, Some(name.to_string()), true),
        _ => return None,
    };
    Some(Target { base, plural: plural.to_string(), namespace, name, status })
}

fn status_response(code: StatusCode, reason: &str, message: String) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": message, "reason": reason, "code": code.as_u16()});
    Response::builder().status(code).body(Body::from(body.to_string().into_bytes())).expect("response")
}

fn ok(code: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string().into_bytes()))
        .expect("response")
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

fn labels_match(object: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (key, value) = term.split_once('=').unwrap_or((term, ""));
        object["metadata"]["labels"][key].as_str() == Some(value)
    })
}

fn query_param(query: &str, wanted: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == wanted).then(|| value.replace("%3D", "=").replace("%2C", ",").replace("%2F", "/"))
    })
}

impl FakeApi {
    pub fn new() -> FakeApi {
        FakeApi::default()
    }

    /// A client that talks to this API.
    pub fn client(&self) -> kube::Client {
        let api = self.clone();
        let service = tower::service_fn(move |request: Request<Body>| {
            let api = api.clone();
            async move { Ok::<_, Infallible>(api.handle(request).await) }
        });
        kube::Client::new(service, "default")
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The stored object at `path` (e.g. `/apis/apps/v1/namespaces/ns/statefulsets/name`).
    pub fn get(&self, path: &str) -> Option<Value> {
        let target = parse(path)?;
        let key = (target.base, target.plural, target.namespace.unwrap_or_default(), target.name?);
        self.objects.lock().unwrap().get(&key).cloned()
    }

    /// Stores `object` at `path` as the API server would (the way a test plays kubelet or another controller).
    pub fn put(&self, path: &str, mut object: Value) {
        let target = parse(path).expect("an API path");
        let key = (target.base, target.plural, target.namespace.unwrap_or_default(), target.name.expect("a name"));
        self.stamp(&mut object, None);
        self.objects.lock().unwrap().insert(key, object);
    }

    /// Merges `patch` into the stored object at `path`.
    pub fn patch(&self, path: &str, patch: Value) {
        let mut object = self.get(path).unwrap_or_else(|| panic!("{path} is stored"));
        merge(&mut object, &patch);
        self.put(path, object);
    }

    /// Paths of the stored objects.
    pub fn paths(&self) -> Vec<String> {
        let objects = self.objects.lock().unwrap();
        objects.keys().map(|(base, plural, ns, name)| format!("{base}/namespaces/{ns}/{plural}/{name}")).collect()
    }

    fn stamp(&self, object: &mut Value, previous: Option<&Value>) {
        let revision = self.revision.fetch_add(1, Ordering::Relaxed) + 1;
        let metadata = &mut object["metadata"];
        metadata["resourceVersion"] = json!(revision.to_string());
        let keep = |field: &str, fresh: Value| {
            previous.map(|p| p["metadata"][field].clone()).filter(|v| !v.is_null()).unwrap_or(fresh)
        };
        if metadata["uid"].is_null() {
            metadata["uid"] = keep("uid", json!(format!("00000000-0000-0000-0000-{revision:012}")));
        }
        if metadata["creationTimestamp"].is_null() {
            metadata["creationTimestamp"] = keep("creationTimestamp", json!("2026-01-01T00:00:00Z"));
        }
    }

    async fn handle(&self, request: Request<Body>) -> Response<Body> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let query = request.uri().query().unwrap_or("").to_owned();
        let content_type = request.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let body = match request.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(error) => return status_response(StatusCode::BAD_REQUEST, "BadRequest", error.to_string()),
        };
        let Some(target) = parse(&path) else {
            return status_response(StatusCode::NOT_FOUND, "NotFound", format!("no route {path}"));
        };
        if query.contains("watch=true") {
            return status_response(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "no watches here".into());
        }
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&body) {
                Ok(value) => value,
                Err(error) => return status_response(StatusCode::BAD_REQUEST, "BadRequest", error.to_string()),
            }
        };
        let namespace = target.namespace.clone().unwrap_or_default();
        let name = target.name.clone().or_else(|| body["metadata"]["name"].as_str().map(str::to_owned));
        let key = |name: String| (target.base.clone(), target.plural.clone(), namespace.clone(), name);
        let mut objects = self.objects.lock().unwrap();
        match (method, name) {
            (Method::GET, None) => {
                let selector = query_param(&query, "labelSelector").unwrap_or_default();
                let items: Vec<&Value> = objects
                    .iter()
                    .filter(|((base, plural, ns, _), _)| {
                        *base == target.base
                            && *plural == target.plural
                            && target.namespace.as_ref().is_none_or(|wanted| wanted == ns)
                    })
                    .map(|(_, object)| object)
                    .filter(|object| labels_match(object, &selector))
                    .collect();
                let revision = self.revision.load(Ordering::Relaxed).to_string();
                ok(
                    StatusCode::OK,
                    &json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": revision}, "items": items}),
                )
            }
            (Method::GET, Some(name)) => match objects.get(&key(name.clone())) {
                Some(object) => ok(StatusCode::OK, object),
                None => {
                    status_response(StatusCode::NOT_FOUND, "NotFound", format!("{} {name:?} not found", target.plural))
                }
            },
            (Method::POST, Some(name)) => {
                if objects.contains_key(&key(name.clone())) {
                    return status_response(StatusCode::CONFLICT, "AlreadyExists", format!("{name:?} already exists"));
                }
                let mut object = body;
                object["metadata"]["namespace"] = json!(namespace);
                self.stamp(&mut object, None);
                objects.insert(key(name), object.clone());
                ok(StatusCode::CREATED, &object)
            }
            (Method::PUT, Some(name)) => {
                let Some(previous) = objects.get(&key(name.clone())) else {
                    return status_response(StatusCode::NOT_FOUND, "NotFound", format!("{name:?} not found"));
                };
                let given = body["metadata"]["resourceVersion"].as_str();
                if given.is_some() && given != previous["metadata"]["resourceVersion"].as_str() {
                    return status_response(StatusCode::CONFLICT, "Conflict", "the object has been modified".into());
                }
                let mut object = body;
                let previous = previous.clone();
                self.stamp(&mut object, Some(&previous));
                objects.insert(key(name), object.clone());
                ok(StatusCode::OK, &object)
            }
            (Method::PATCH, Some(name)) => {
                let previous = objects.get(&key(name.clone())).cloned();
                let object = if content_type.starts_with("application/apply-patch") {
                    let mut object = body;
                    object["metadata"]["namespace"] = json!(namespace);
                    if let Some(status) = previous.as_ref().map(|p| p["status"].clone()).filter(|s| !s.is_null()) {
                        object["status"] = status;
                    }
                    object
                } else {
                    let Some(mut object) = previous.clone() else {
                        return status_response(StatusCode::NOT_FOUND, "NotFound", format!("{name:?} not found"));
                    };
                    let patch = if target.status { json!({"status": body["status"]}) } else { body };
                    merge(&mut object, &patch);
                    object
                };
                let mut object = object;
                self.stamp(&mut object, previous.as_ref());
                objects.insert(key(name), object.clone());
                ok(StatusCode::OK, &object)
            }
            (Method::DELETE, Some(name)) => match objects.remove(&key(name.clone())) {
                Some(object) => ok(StatusCode::OK, &object),
                None => status_response(StatusCode::NOT_FOUND, "NotFound", format!("{name:?} not found")),
            },
            (method, _) => {
                status_response(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", format!("{method} {path}"))
            }
        }
    }
}
