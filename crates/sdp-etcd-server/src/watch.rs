//! The Watch service: one task per client stream multiplexes its watchers (create, cancel, progress).

use std::collections::HashMap;
use std::pin::Pin;

use etcd_client::proto::*;
use futures::{Stream, StreamExt};
use sdp_kvstore as kv;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::convert::{event_to_pb, key_range};
use crate::shared::Shared;

const FILTER_NO_PUT: i32 = 0;
const FILTER_NO_DELETE: i32 = 1;
/// The watch ID of a progress response that is not about one watcher.
const NO_WATCH_ID: i64 = -1;

pub struct WatchService(pub Shared);

type Out = mpsc::Sender<Result<PbWatchResponse, Status>>;

struct Watcher {
    forwarder: JoinHandle<()>,
    progress_notify: bool,
}

#[tonic::async_trait]
impl PbWatchService for WatchService {
    type WatchStream = Pin<Box<dyn Stream<Item = Result<PbWatchResponse, Status>> + Send>>;

    async fn watch(&self, request: Request<Streaming<PbWatchRequest>>) -> Result<Response<Self::WatchStream>, Status> {
        Ok(Response::new(Box::pin(responses(self.0.clone(), request.into_inner()))))
    }
}

/// The responses to a stream of watch requests (gRPC's, or the JSON gateway's one request).
pub(crate) fn responses(
    shared: Shared,
    inbound: impl Stream<Item = Result<PbWatchRequest, Status>> + Send + Unpin + 'static,
) -> ReceiverStream<Result<PbWatchResponse, Status>> {
    let (out, rx) = mpsc::channel(1024);
    tokio::spawn(serve_stream(shared, inbound, out));
    ReceiverStream::new(rx)
}

async fn serve_stream(
    shared: Shared,
    mut inbound: impl Stream<Item = Result<PbWatchRequest, Status>> + Unpin,
    out: Out,
) {
    let mut watchers: HashMap<i64, Watcher> = HashMap::new();
    let mut next_id: i64 = 0;
    // interval_at rather than interval(): awaiting an interval's immediate first tick still goes through the
    // timer wheel and costs a millisecond on every new watch stream.
    let period = shared.progress_interval;
    let mut progress = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            msg = inbound.next() => match msg.transpose() {
                Ok(Some(req)) => match req.request_union {
                    Some(PbWatchRequestUnion::CreateRequest(c)) => {
                        let id = if c.watch_id != 0 { c.watch_id } else {
                            while watchers.contains_key(&next_id) { next_id += 1; }
                            next_id
                        };
                        if watchers.contains_key(&id) {
                            let _ = out.send(Ok(PbWatchResponse {
                                header: Some(shared.header(shared.store.revision())),
                                watch_id: id, created: true, canceled: true,
                                cancel_reason: "etcdserver: mvcc: duplicate watch ID".into(),
                                ..Default::default()
                            })).await;
                            continue;
                        }
                        let filters = c.filters.clone();
                        let range = key_range(c.key, c.range_end);
                        if let Some(w) = create(&shared, &out, id, range, c.start_revision, c.prev_kv, filters, c.progress_notify).await {
                            watchers.insert(id, w);
                        }
                    }
                    Some(PbWatchRequestUnion::CancelRequest(c)) => {
                        if let Some(w) = watchers.remove(&c.watch_id) {
                            w.forwarder.abort();
                            let _ = out.send(Ok(PbWatchResponse {
                                header: Some(shared.header(shared.store.revision())),
                                watch_id: c.watch_id, canceled: true, ..Default::default()
                            })).await;
                        }
                    }
                    Some(PbWatchRequestUnion::ProgressRequest(_)) => {
                        let _ = out.send(Ok(PbWatchResponse {
                            header: Some(shared.header(shared.store.revision())),
                            watch_id: NO_WATCH_ID, ..Default::default()
                        })).await;
                    }
                    None => {}
                },
                Ok(None) | Err(_) => break,
            },
            _ = progress.tick() => {
                for (id, _) in watchers.iter().filter(|(_, w)| w.progress_notify) {
                    let _ = out.send(Ok(PbWatchResponse {
                        header: Some(shared.header(shared.store.revision())),
                        watch_id: *id, ..Default::default()
                    })).await;
                }
            }
            _ = out.closed() => break,
        }
    }
    for (_, w) in watchers {
        w.forwarder.abort();
    }
}

#[allow(clippy::too_many_arguments)]
async fn create(
    shared: &Shared,
    out: &Out,
    id: i64,
    range: kv::KeyRange,
    start_revision: i64,
    prev_kv: bool,
    filters: Vec<i32>,
    progress_notify: bool,
) -> Option<Watcher> {
    let created = |revision| PbWatchResponse {
        header: Some(shared.header(revision)),
        watch_id: id,
        created: true,
        ..Default::default()
    };
    let mut watch = match shared.store.watch(range, start_revision) {
        Ok(w) => w,
        Err(kv::Error::Compacted { compact_revision }) => {
            let rev = shared.store.revision();
            let _ = out.send(Ok(created(rev))).await;
            let _ = out
                .send(Ok(PbWatchResponse {
                    header: Some(shared.header(rev)),
                    watch_id: id,
                    canceled: true,
                    compact_revision,
                    cancel_reason: "etcdserver: mvcc: required revision has been compacted".into(),
                    ..Default::default()
                }))
                .await;
            return None;
        }
        Err(e) => {
            let _ = out.send(Err(crate::convert::status(e))).await;
            return None;
        }
    };
    let _ = out.send(Ok(created(shared.store.revision()))).await;
    let (out, shared) = (out.clone(), shared.clone());
    let forwarder = tokio::spawn(async move {
        while let Some(batch) = watch.events.recv().await {
            let events: Vec<PbEvent> = batch
                .into_iter()
                .filter(|ev| match ev.kind {
                    kv::EventKind::Put => !filters.contains(&FILTER_NO_PUT),
                    kv::EventKind::Delete => !filters.contains(&FILTER_NO_DELETE),
                })
                .map(|ev| event_to_pb(ev, prev_kv))
                .collect();
            if events.is_empty() {
                continue;
            }
            let revision = events.iter().filter_map(|e| e.kv.as_ref()).map(|kv| kv.mod_revision).max().unwrap_or(0);
            let resp =
                PbWatchResponse { header: Some(shared.header(revision)), watch_id: id, events, ..Default::default() };
            if out.send(Ok(resp)).await.is_err() {
                break;
            }
        }
    });
    Some(Watcher { forwarder, progress_notify })
}
