//! A client of Dask's own protocol, as much of it as asking a scheduler who it is takes: the TCP comm of
//! `distributed` with its MessagePack messages, no Python. Written from, and tested against, distributed
//! 2022.12.1, the version the `ska-sdp-dask` image runs.
//!
//! On the wire (distributed's `comm/tcp.py`, `protocol/core.py`, `protocol/utils.py`):
//! - A message is `u64` N, then N bytes: `u64` frame count F, F `u64` frame lengths, then the frames back to
//!   back. Every integer is little-endian (Python's native `struct` "Q" on the machines Dask runs on).
//! - The first frame is the message itself in MessagePack (strings as `str`, bytes as `bin`); further frames
//!   carry what it refers to out of band (`{"__Serialized__": i}`, `{"__Pickled__": i}`: pickled exceptions,
//!   arrays), which this client leaves alone.
//! - Connecting (`comm/core.py`): the listening side writes its handshake first, a map with at least
//!   `compression` and `pickle-protocol` (and `python`); then the connecting side writes its own, which must
//!   have those two keys (the server takes the lesser pickle protocol and, unless both name the same,
//!   no compression). This client writes `{"compression": nil, "pickle-protocol": 5}`.
//! - Then requests (`core.py` `Server._handle_comm`): a map with `op`, the handler's arguments and `reply`
//!   (true by default), answered by one message; `{"op": "close", "reply": false}` ends the connection. A
//!   handler's exception comes back as `{"status": "uncaught-error", "exception_text": ..., ...}`; an unknown
//!   op as nil.
//! - `identity` (`scheduler.py`): `{"type": "Scheduler", "id", "address", "services", "started", "workers":
//!   {<worker address>: {"nthreads", "memory_limit", "name", ...}}}`.
//!
//! Whatever the peer declares is checked before it is believed: a message longer than
//! [`MAX_MESSAGE_BYTES`] is refused before anything is allocated for it, and frame counts and lengths must
//! add up to the bytes that came.

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use rmpv::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

/// The largest message this client reads. A scheduler's identity with hundreds of workers is well under a
/// megabyte.
pub const MAX_MESSAGE_BYTES: u64 = 64 << 20;

/// The pickle protocol this client names in its handshake. It unpickles nothing; the key is required.
const PICKLE_PROTOCOL: u64 = 5;

const WORD: usize = std::mem::size_of::<u64>();

/// What is wrong with a message's framing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a message of {declared} bytes, larger than the {limit} bytes this client accepts")]
    TooLarge { declared: u64, limit: u64 },
    #[error("the connection ended after {received} of the message's {declared} bytes")]
    Truncated { declared: u64, received: u64 },
    #[error("a message of {len} bytes, too short to hold its frame count")]
    NoFrameCount { len: usize },
    #[error("a message that says it has {count} frames, but whose {len} bytes cannot hold that many lengths")]
    FrameCount { count: u64, len: usize },
    #[error("frame lengths that add up to {sum} bytes, where {left} bytes follow them")]
    FrameLengths { sum: u128, left: usize },
    #[error("a message without frames")]
    NoFrames,
}

/// Why talking to a Dask scheduler failed.
#[derive(Debug, thiserror::Error)]
pub enum DaskError {
    #[error(
        "{0:?} is not a Dask TCP address: give tcp://<host>:<port>, e.g. tcp://<pb_id>-dask-scheduler.<namespace>:8786"
    )]
    Address(String),
    #[error(
        "cannot connect to the Dask scheduler at {address}: {source} (is its pod running, and does its host name \
         resolve from here?)"
    )]
    Connect {
        address: String,
        #[source]
        source: io::Error,
    },
    #[error("{address} did not answer within {seconds} s while {step}: is a Dask scheduler listening there?")]
    Timeout { address: String, step: &'static str, seconds: u64 },
    #[error("the connection to {address} broke while {step}: {source}")]
    Io {
        address: String,
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(
        "a bad message from {address} while {step}: {source}; does it speak Dask's comm protocol (is it a Dask \
         scheduler's comm port, 8786)?"
    )]
    Frame {
        address: String,
        step: &'static str,
        #[source]
        source: FrameError,
    },
    #[error(
        "{address} sent a message that is not MessagePack while {step}: {source} (is it a Dask scheduler's comm \
         port, 8786?)"
    )]
    Msgpack {
        address: String,
        step: &'static str,
        #[source]
        source: rmpv::decode::Error,
    },
    #[error("{address} {what}")]
    Unexpected { address: String, what: String },
    #[error("{address} is a Dask {kind}, not a scheduler: give the scheduler's address (its Service, port 8786)")]
    NotAScheduler { address: String, kind: String },
    #[error("the Dask scheduler at {address} answered {op} with an error: {text}")]
    Remote { address: String, op: &'static str, text: String },
    #[error(
        "the Dask scheduler at {address} did not have {wanted} workers within {seconds} s (it had {had}): see the \
         workers' logs for why they do not register"
    )]
    TooFewWorkers { address: String, wanted: usize, seconds: u64, had: String },
    #[error("no Dask scheduler answered at {address} within {seconds} s; the last try: {last}")]
    NoAnswer { address: String, seconds: u64, last: Box<DaskError> },
}

impl DaskError {
    /// Whether asking again later may succeed: the scheduler or its Service may not be there yet, or a
    /// connection broke. A peer that answered, but not as a Dask scheduler does, will not change.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DaskError::Connect { .. }
                | DaskError::Timeout { .. }
                | DaskError::Io { .. }
                | DaskError::Frame { source: FrameError::Truncated { .. }, .. }
        )
    }
}

/// A scheduler's answer to `identity`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The server's class: `Scheduler`.
    pub kind: String,
    /// E.g. `Scheduler-5a0e...`, new each time a scheduler starts.
    pub id: String,
    /// The address the scheduler gives itself (its pod's address, not the Service's).
    pub address: String,
    /// The registered workers by address.
    pub workers: BTreeMap<String, Worker>,
}

/// A worker as the scheduler knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Worker {
    /// Its threads (tasks it runs at once), when the scheduler said.
    pub nthreads: Option<u64>,
}

impl Identity {
    /// Reads an `identity` reply; `Err` says what is wrong with it.
    fn from_reply(reply: &Value) -> Result<Identity, String> {
        if !reply.is_map() {
            return Err(format!("answered identity with {} instead of a map", brief(reply)));
        }
        let text = |key: &str| match &reply[key] {
            Value::String(s) => s.as_str().map(str::to_string).ok_or_else(|| format!("sent a {key} that is not UTF-8")),
            Value::Nil => Err(format!("answered identity without {key:?}: {}", brief(reply))),
            other => Err(format!("answered identity with {key} {}, not a string", brief(other))),
        };
        let kind = text("type")?;
        let id = text("id")?;
        let address = text("address")?;
        let mut workers = BTreeMap::new();
        match &reply["workers"] {
            Value::Map(entries) => {
                for (key, worker) in entries {
                    let Some(address) = key.as_str() else {
                        return Err(format!("listed a worker under {key}, not an address"));
                    };
                    workers.insert(address.to_string(), Worker { nthreads: worker["nthreads"].as_u64() });
                }
            }
            other => return Err(format!("answered identity with workers {}, not a map", brief(other))),
        }
        Ok(Identity { kind, id, address, workers })
    }
}

/// A value as text for an error message, cut short.
fn brief(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(200) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text,
    }
}

/// Splits `tcp://host:port` (a host name, an IPv4 address or a bracketed IPv6 one).
pub fn parse_address(address: &str) -> Result<(String, u16), DaskError> {
    let bad = || DaskError::Address(address.to_string());
    let rest = address.strip_prefix("tcp://").ok_or_else(bad)?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() || host.contains(['/', '[', ']']) || (host.contains(':') && !rest.starts_with('[')) {
        return Err(bad());
    }
    let port = port.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?;
    Ok((host.to_string(), port))
}

/// One message with the given frames, as distributed writes it: the length of what follows, the frame count,
/// each frame's length, the frames.
pub fn encode_frames(frames: &[&[u8]]) -> Vec<u8> {
    let prelude = WORD * (1 + frames.len());
    let body = prelude + frames.iter().map(|f| f.len()).sum::<usize>();
    let mut out = Vec::with_capacity(WORD + body);
    out.extend_from_slice(&(body as u64).to_le_bytes());
    out.extend_from_slice(&(frames.len() as u64).to_le_bytes());
    for frame in frames {
        out.extend_from_slice(&(frame.len() as u64).to_le_bytes());
    }
    for frame in frames {
        out.extend_from_slice(frame);
    }
    out
}

/// The frames of a message's body (what follows its length). Counts and lengths must account for every
/// byte: no frame reaches past the end, none is left over.
pub fn decode_frames(body: &[u8]) -> Result<Vec<&[u8]>, FrameError> {
    let word = |at: usize| u64::from_le_bytes(body[at..at + WORD].try_into().expect("a word"));
    if body.len() < WORD {
        return Err(FrameError::NoFrameCount { len: body.len() });
    }
    let count = word(0);
    let room = (body.len() - WORD) / WORD;
    if count > room as u64 {
        return Err(FrameError::FrameCount { count, len: body.len() });
    }
    let count = count as usize;
    if count == 0 {
        return Err(FrameError::NoFrames);
    }
    let lengths: Vec<u64> = (0..count).map(|i| word(WORD * (1 + i))).collect();
    let mut at = WORD * (1 + count);
    let left = body.len() - at;
    let sum: u128 = lengths.iter().map(|&l| l as u128).sum();
    if sum != left as u128 {
        return Err(FrameError::FrameLengths { sum, left });
    }
    let mut frames = Vec::with_capacity(count);
    for length in lengths {
        // Each length is at most `left` (their sum is), so this neither overflows nor reaches past the end.
        let end = at + length as usize;
        frames.push(&body[at..end]);
        at = end;
    }
    Ok(frames)
}

/// Why reading a message failed, before the address is known to say so.
#[derive(Debug)]
enum ReadError {
    Io(io::Error),
    Frame(FrameError),
    Msgpack(rmpv::decode::Error),
}

/// Reads one message's body (what follows its length), refusing one longer than `limit` before allocating.
async fn read_body<R: AsyncRead + Unpin>(reader: &mut R, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut length = [0u8; WORD];
    reader.read_exact(&mut length).await.map_err(ReadError::Io)?;
    let declared = u64::from_le_bytes(length);
    if declared > limit {
        return Err(ReadError::Frame(FrameError::TooLarge { declared, limit }));
    }
    // Grown as bytes arrive beyond the first MiB: a length alone does not reserve the whole limit.
    let mut body = Vec::with_capacity(declared.min(1 << 20) as usize);
    reader.take(declared).read_to_end(&mut body).await.map_err(ReadError::Io)?;
    if (body.len() as u64) < declared {
        return Err(ReadError::Frame(FrameError::Truncated { declared, received: body.len() as u64 }));
    }
    Ok(body)
}

/// Reads one message and decodes its first frame; the other frames are not looked at.
async fn read_message<R: AsyncRead + Unpin>(reader: &mut R, limit: u64) -> Result<Value, ReadError> {
    let body = read_body(reader, limit).await?;
    let frames = decode_frames(&body).map_err(ReadError::Frame)?;
    rmpv::decode::read_value(&mut &frames[0][..]).map_err(ReadError::Msgpack)
}

/// A message as one frame of MessagePack.
fn encode_message(message: &Value) -> Vec<u8> {
    let mut frame = Vec::new();
    rmpv::encode::write_value(&mut frame, message).expect("writing to a Vec does not fail");
    encode_frames(&[&frame])
}

/// A map with string keys.
fn map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (Value::from(k), v)).collect())
}

/// An open comm to a Dask server, after the handshake.
pub struct Comm {
    stream: TcpStream,
    address: String,
    /// How long each step (connecting, a write, a read) may take.
    step_limit: Duration,
    /// What the server said of itself when the connection opened.
    pub peer_handshake: Value,
}

impl Comm {
    /// Connects to `address` (`tcp://host:port`) and exchanges handshakes; each step may take `step_limit`.
    pub async fn connect(address: &str, step_limit: Duration) -> Result<Comm, DaskError> {
        let (host, port) = parse_address(address)?;
        let connecting = timeout(step_limit, TcpStream::connect((host.as_str(), port)));
        let stream = match connecting.await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => return Err(DaskError::Connect { address: address.to_string(), source }),
            Err(_) => return Err(timed_out(address, "connecting", step_limit)),
        };
        stream.set_nodelay(true).ok();
        let mut comm = Comm { stream, address: address.to_string(), step_limit, peer_handshake: Value::Nil };
        // The server speaks first.
        let handshake = comm.read("reading its handshake").await?;
        let has = |key: &str| handshake.as_map().is_some_and(|m| m.iter().any(|(k, _)| k.as_str() == Some(key)));
        if !has("compression") || !has("pickle-protocol") {
            return Err(comm.unexpected(format!(
                "opened with {} instead of a Dask handshake (a map with compression and pickle-protocol): is it a \
                 Dask scheduler's comm port, 8786?",
                brief(&handshake)
            )));
        }
        comm.peer_handshake = handshake;
        let ours = map([("compression", Value::Nil), ("pickle-protocol", Value::from(PICKLE_PROTOCOL))]);
        comm.write(&ours, "sending the handshake").await?;
        Ok(comm)
    }

    /// The address this comm was opened to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Sends `{"op": op, "reply": true}` and returns the answer; a handler's exception is [`DaskError::Remote`].
    pub async fn request(&mut self, op: &'static str) -> Result<Value, DaskError> {
        let message = map([("op", Value::from(op)), ("reply", Value::from(true))]);
        self.write(&message, "sending a request").await?;
        let reply = self.read("reading the reply").await?;
        if matches!(reply["status"].as_str(), Some("error" | "uncaught-error")) {
            let text = reply["exception_text"].as_str().unwrap_or("(no exception text)").to_string();
            return Err(DaskError::Remote { address: self.address.clone(), op, text });
        }
        Ok(reply)
    }

    /// Asks the server who it is; it must be a scheduler.
    pub async fn identity(&mut self) -> Result<Identity, DaskError> {
        let reply = self.request("identity").await?;
        if reply.is_nil() {
            return Err(self.unexpected("has no identity handler: it is not a Dask server".into()));
        }
        if let Some(kind) = reply["type"].as_str().filter(|kind| *kind != "Scheduler") {
            return Err(DaskError::NotAScheduler { address: self.address.clone(), kind: kind.to_string() });
        }
        Identity::from_reply(&reply).map_err(|what| self.unexpected(what))
    }

    /// Says goodbye (`{"op": "close", "reply": false}`) and closes the connection.
    pub async fn close(mut self) {
        let close = map([("op", Value::from("close")), ("reply", Value::from(false))]);
        if self.write(&close, "closing").await.is_ok() {
            let _ = timeout(self.step_limit, self.stream.shutdown()).await;
        }
    }

    async fn write(&mut self, message: &Value, step: &'static str) -> Result<(), DaskError> {
        let bytes = encode_message(message);
        match timeout(self.step_limit, self.stream.write_all(&bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(DaskError::Io { address: self.address.clone(), step, source }),
            Err(_) => Err(timed_out(&self.address, step, self.step_limit)),
        }
    }

    async fn read(&mut self, step: &'static str) -> Result<Value, DaskError> {
        let address = self.address.clone();
        match timeout(self.step_limit, read_message(&mut self.stream, MAX_MESSAGE_BYTES)).await {
            Ok(Ok(message)) => Ok(message),
            Ok(Err(ReadError::Io(source))) => Err(DaskError::Io { address, step, source }),
            Ok(Err(ReadError::Frame(source))) => Err(DaskError::Frame { address, step, source }),
            Ok(Err(ReadError::Msgpack(source))) => Err(DaskError::Msgpack { address, step, source }),
            Err(_) => Err(timed_out(&address, step, self.step_limit)),
        }
    }

    fn unexpected(&self, what: String) -> DaskError {
        DaskError::Unexpected { address: self.address.clone(), what }
    }
}

fn timed_out(address: &str, step: &'static str, limit: Duration) -> DaskError {
    DaskError::Timeout { address: address.to_string(), step, seconds: limit.as_secs_f64().ceil() as u64 }
}

/// Connects to the scheduler at `address`, asks its identity and closes; each step may take `step_limit`.
pub async fn identity(address: &str, step_limit: Duration) -> Result<Identity, DaskError> {
    let mut comm = Comm::connect(address, step_limit).await?;
    let identity = comm.identity().await;
    comm.close().await;
    identity
}

/// Asks the scheduler at `address` for its identity until it has at least `workers` workers, for at most
/// `limit`: while it cannot be reached (not started, its Service without endpoints yet) or has too few,
/// asks again each second. A peer that answers, but not as a Dask scheduler, fails at once.
pub async fn wait_for_workers(address: &str, workers: usize, limit: Duration) -> Result<Identity, DaskError> {
    let deadline = Instant::now() + limit;
    let step_limit = Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let last = match identity(address, step_limit.min(left).max(Duration::from_millis(100))).await {
            Ok(identity) if identity.workers.len() >= workers => return Ok(identity),
            Ok(identity) => Ok(identity),
            Err(e) if e.is_transient() => Err(e),
            Err(e) => return Err(e),
        };
        if Instant::now() + Duration::from_secs(1) > deadline {
            let (address, seconds) = (address.to_string(), limit.as_secs());
            return Err(match last {
                Ok(identity) => {
                    let had = match identity.workers.len() {
                        0 => "none".to_string(),
                        n => format!("{n}: {}", identity.workers.keys().cloned().collect::<Vec<_>>().join(", ")),
                    };
                    DaskError::TooFewWorkers { address, wanted: workers, seconds, had }
                }
                Err(last) => DaskError::NoAnswer { address, seconds, last: Box::new(last) },
            });
        }
        match &last {
            Ok(identity) => tracing::debug!(address, workers = identity.workers.len(), "waiting for Dask workers"),
            Err(e) => tracing::debug!(address, error = %e, "waiting for the Dask scheduler"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn read<R: AsyncRead + Unpin>(mut bytes: R) -> Result<Value, ReadError> {
        read_message(&mut bytes, MAX_MESSAGE_BYTES).await
    }

    #[test]
    fn frames_round_trip_in_distributeds_layout() {
        let bytes = encode_frames(&[b"ab", b"", b"cde"]);
        // Length of what follows (8 + 3 * 8 + 5 = 37), the count, the lengths, the frames.
        let mut expected = Vec::new();
        for word in [37u64, 3, 2, 0, 3] {
            expected.extend_from_slice(&word.to_le_bytes());
        }
        expected.extend_from_slice(b"abcde");
        assert_eq!(bytes, expected);
        assert_eq!(decode_frames(&bytes[8..]).unwrap(), [&b"ab"[..], b"", b"cde"]);
    }

    #[tokio::test]
    async fn a_message_is_msgpack_in_its_first_frame() {
        let message = map([("op", Value::from("identity")), ("reply", Value::from(true))]);
        let bytes = encode_message(&message);
        // As Python's msgpack.dumps({"op": "identity", "reply": True}, use_bin_type=True) writes it.
        let mut frame = vec![0x82, 0xa2, b'o', b'p', 0xa8];
        frame.extend_from_slice(b"identity");
        frame.extend_from_slice(&[0xa5, b'r', b'e', b'p', b'l', b'y', 0xc3]);
        assert_eq!(bytes, encode_frames(&[&frame]));
        assert_eq!(read(&bytes[..]).await.unwrap(), message);
        // Frames after the first (out-of-band data) are left alone.
        let two = encode_frames(&[&frame, b"\x80\x04pickled"]);
        assert_eq!(read(&two[..]).await.unwrap(), message);
    }

    #[tokio::test]
    async fn a_truncated_message_is_an_error() {
        let bytes = encode_frames(&[b"\x91\x01"]);
        for cut in [3, 8, 20, bytes.len() - 1] {
            match read(&bytes[..cut]).await {
                Err(ReadError::Frame(FrameError::Truncated { declared, received })) => {
                    assert_eq!((declared, received), (bytes.len() as u64 - 8, cut as u64 - 8))
                }
                Err(ReadError::Io(e)) if cut < 8 => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof),
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        // A frame that reaches past the message's end.
        let mut body = Vec::new();
        for word in [1u64, 10] {
            body.extend_from_slice(&word.to_le_bytes());
        }
        body.extend_from_slice(b"short");
        assert_eq!(decode_frames(&body), Err(FrameError::FrameLengths { sum: 10, left: 5 }));
        // Bytes left over after the frames.
        let mut body = decode_body(&encode_frames(&[b"ab"]));
        body.push(0);
        assert_eq!(decode_frames(&body), Err(FrameError::FrameLengths { sum: 2, left: 3 }));
        // A first frame that is cut MessagePack.
        assert!(matches!(read(&encode_frames(&[b"\x92\x01"])[..]).await, Err(ReadError::Msgpack(_))));
    }

    fn decode_body(message: &[u8]) -> Vec<u8> {
        message[8..].to_vec()
    }

    #[test]
    fn a_frame_count_that_lies_is_an_error() {
        // Says a billion frames: refused from the message's size, with nothing allocated for them.
        let mut body = Vec::new();
        for word in [1_000_000_000u64, 2, 2] {
            body.extend_from_slice(&word.to_le_bytes());
        }
        body.extend_from_slice(b"abcd");
        assert_eq!(decode_frames(&body), Err(FrameError::FrameCount { count: 1_000_000_000, len: 28 }));
        body[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(decode_frames(&body), Err(FrameError::FrameCount { .. })));
        // Says one frame where there are two.
        body[..8].copy_from_slice(&1u64.to_le_bytes());
        assert_eq!(decode_frames(&body), Err(FrameError::FrameLengths { sum: 2, left: 12 }));
        assert_eq!(decode_frames(&0u64.to_le_bytes()), Err(FrameError::NoFrames));
        assert_eq!(decode_frames(b"abc"), Err(FrameError::NoFrameCount { len: 3 }));
    }

    #[tokio::test]
    async fn an_oversized_length_is_refused_before_allocating() {
        // A message that says it is 2^63 bytes long (or a frame that does) and then ends.
        let huge = (1u64 << 63).to_le_bytes();
        match read(&huge[..]).await {
            Err(ReadError::Frame(FrameError::TooLarge { declared, limit })) => {
                assert_eq!((declared, limit), (1 << 63, MAX_MESSAGE_BYTES))
            }
            other => panic!("{other:?}"),
        }
        let just_over = (MAX_MESSAGE_BYTES + 1).to_le_bytes();
        assert!(matches!(read(&just_over[..]).await, Err(ReadError::Frame(FrameError::TooLarge { .. }))));
        let mut body = Vec::new();
        for word in [2u64, u64::MAX, 2] {
            body.extend_from_slice(&word.to_le_bytes());
        }
        body.extend_from_slice(b"ab");
        assert!(matches!(decode_frames(&body), Err(FrameError::FrameLengths { .. })));
        // The limit holds for smaller ones too.
        let message = encode_frames(&[&[0xc0; 100]]);
        let mut reader = &message[..];
        assert!(matches!(read_body(&mut reader, 50).await, Err(ReadError::Frame(FrameError::TooLarge { .. }))));
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address("tcp://pb-1-dask-scheduler.sdp:8786").unwrap(),
            ("pb-1-dask-scheduler.sdp".into(), 8786)
        );
        assert_eq!(parse_address("tcp://127.0.0.1:40000").unwrap(), ("127.0.0.1".into(), 40000));
        assert_eq!(parse_address("tcp://[::1]:8786").unwrap(), ("::1".into(), 8786));
        for bad in [
            "127.0.0.1:8786",
            "tls://a:1",
            "tcp://a",
            "tcp://:1",
            "tcp://a:0",
            "tcp://a:x",
            "tcp://::1:8786",
            "tcp://a/b:1",
        ] {
            assert!(matches!(parse_address(bad), Err(DaskError::Address(_))), "{bad}");
        }
    }

    #[test]
    fn identity_replies() {
        let reply = map([
            ("type", Value::from("Scheduler")),
            ("id", Value::from("Scheduler-1")),
            ("address", Value::from("tcp://10.0.0.5:8786")),
            ("services", map([("dashboard", Value::from(8787))])),
            (
                "workers",
                Value::Map(vec![
                    (Value::from("tcp://10.0.0.6:4000"), map([("nthreads", Value::from(2)), ("name", Value::from(0))])),
                    (Value::from("tcp://10.0.0.7:4000"), map([("name", Value::from("w"))])),
                ]),
            ),
        ]);
        let identity = Identity::from_reply(&reply).unwrap();
        assert_eq!((identity.kind.as_str(), identity.id.as_str()), ("Scheduler", "Scheduler-1"));
        assert_eq!(identity.address, "tcp://10.0.0.5:8786");
        assert_eq!(
            identity.workers.into_iter().collect::<Vec<_>>(),
            [
                ("tcp://10.0.0.6:4000".to_string(), Worker { nthreads: Some(2) }),
                ("tcp://10.0.0.7:4000".to_string(), Worker { nthreads: None })
            ]
        );
        assert!(Identity::from_reply(&Value::from("OK")).unwrap_err().contains("instead of a map"));
        let no_id = map([("type", Value::from("Scheduler")), ("address", Value::from("tcp://a:1"))]);
        assert!(Identity::from_reply(&no_id).unwrap_err().contains("without \"id\""));
    }

    /// A server that speaks the comm protocol as distributed's `Server` does, answering each request with
    /// `answer(request)`, until the client says close.
    async fn fake_server(
        answer: impl Fn(&Value) -> Value + Send + 'static,
    ) -> (String, tokio::task::JoinHandle<Vec<Value>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("tcp://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let handshake = map([
                ("compression", Value::from("lz4")),
                ("python", Value::Array(vec![3.into(), 11.into(), 2.into()])),
                ("pickle-protocol", Value::from(5)),
            ]);
            stream.write_all(&encode_message(&handshake)).await.unwrap();
            let mut received = vec![read_message(&mut stream, MAX_MESSAGE_BYTES).await.unwrap()];
            while let Ok(request) = read_message(&mut stream, MAX_MESSAGE_BYTES).await {
                received.push(request.clone());
                if request["op"].as_str() == Some("close") {
                    break;
                }
                if request["reply"].as_bool() != Some(false) {
                    stream.write_all(&encode_message(&answer(&request))).await.unwrap();
                }
            }
            received
        });
        (address, task)
    }

    #[tokio::test]
    async fn the_client_speaks_second_then_asks_and_says_goodbye() {
        let (address, server) = fake_server(|request| {
            assert_eq!(request["op"].as_str(), Some("identity"));
            map([
                ("type", Value::from("Scheduler")),
                ("id", Value::from("Scheduler-x")),
                ("address", Value::from("tcp://127.0.0.1:1")),
                ("workers", Value::Map(vec![])),
            ])
        })
        .await;
        let identity = identity(&address, Duration::from_secs(5)).await.unwrap();
        assert_eq!((identity.id.as_str(), identity.workers.len()), ("Scheduler-x", 0));
        let received = server.await.unwrap();
        assert_eq!(
            received,
            [
                map([("compression", Value::Nil), ("pickle-protocol", Value::from(5))]),
                map([("op", Value::from("identity")), ("reply", Value::from(true))]),
                map([("op", Value::from("close")), ("reply", Value::from(false))]),
            ]
        );
    }

    #[tokio::test]
    async fn answers_that_are_not_a_schedulers_are_errors_that_say_so() {
        let (address, _server) = fake_server(|_| {
            map([("type", Value::from("Worker")), ("id", Value::from("w")), ("address", Value::from("tcp://a:1"))])
        })
        .await;
        let e = identity(&address, Duration::from_secs(5)).await.unwrap_err();
        assert!(e.to_string().contains("is a Dask Worker, not a scheduler"), "{e}");
        assert!(!e.is_transient());

        let (address, _server) = fake_server(|_| {
            map([("status", Value::from("uncaught-error")), ("exception_text", Value::from("KeyError('x')"))])
        })
        .await;
        let e = identity(&address, Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("the Dask scheduler at {address} answered identity with an error: KeyError('x')")
        );

        let (address, _server) = fake_server(|_| Value::Nil).await;
        let e = identity(&address, Duration::from_secs(5)).await.unwrap_err();
        assert!(e.to_string().ends_with("has no identity handler: it is not a Dask server"), "{e}");

        // Something that speaks first, but not Dask (an HTTP-ish banner).
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("tcp://{}", listener.local_addr().unwrap());
        let banner = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            stream.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let e = identity(&address, Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(e, DaskError::Frame { source: FrameError::TooLarge { .. }, .. }), "{e}");
        assert!(e.to_string().contains("does it speak Dask's comm protocol"), "{e}");
        sdp_testkit::stop_task(banner).await;
    }

    #[tokio::test]
    async fn nothing_listening_is_transient_and_waiting_ends_with_the_reason() {
        let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
        let address = format!("tcp://127.0.0.1:{port}");
        let e = identity(&address, Duration::from_secs(5)).await.unwrap_err();
        assert!(e.is_transient() && e.to_string().starts_with("cannot connect to the Dask scheduler at"), "{e}");
        let e = wait_for_workers(&address, 2, Duration::from_secs(2)).await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "no Dask scheduler answered at {address} within 2 s; the last try: cannot connect"
            )),
            "{text}"
        );
    }
}
