//! The contract between the pipeline and protocol sessions.
//!
//! A [`Session`] sees one connection (or one UDP 5-tuple): in-order bytes
//! per direction, gaps where bytes were lost, and the end of each
//! direction. It emits [`Call`]s and [`Anomaly`]s through an [`Emitter`].
//! The pipeline decides which session a connection gets ([`Probe`]) and
//! stamps ids, endpoints and the node on every call it receives.

use std::net::SocketAddr;

use trawl_flow::{Direction, Nanos, TransportKind};
use trawl_model::Call;

/// Bounds a session must respect, passed in by whoever runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Requests waiting for their responses on one connection. Past this the
    /// oldest is emitted without a response (`errors: ["too_many_pending"]`).
    pub max_pending: usize,
    /// Longest message head (start line and headers) parsed. nginx refuses
    /// request heads past 32 KiB by default; longer heads are recorded as
    /// `header_too_long` and the session resynchronises.
    pub max_head_bytes: usize,
    /// Body bytes kept per message for display; the rest is counted, not kept.
    pub max_body_bytes: usize,
    /// A request with no response for this long (packet time) is emitted
    /// with `errors: ["no_response"]`. DNS resolvers give up after 5 s by
    /// default (resolv.conf `timeout:5`); HTTP waits for the connection end.
    pub response_timeout: Nanos,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pending: 256,
            max_head_bytes: 32 * 1024,
            max_body_bytes: 64 * 1024,
            response_timeout: 5_000_000_000,
        }
    }
}

/// What a session knows of its connection when it is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionContext {
    pub transport: TransportKind,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub limits: Limits,
}

/// A protocol's answer when shown the first bytes one side sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// These bytes are this protocol; `from_client` says whether their
    /// sender is the client (a request) or the server (a response), when
    /// the content tells. `None` leaves the roles as the flow table chose.
    Match { from_client: Option<bool> },
    /// Too few bytes to tell; ask again with more.
    NeedMore,
    /// Not this protocol.
    NoMatch,
}

/// Something wrong in the traffic that is not a call: counted in stats,
/// attached to the connection. `kind` is a snake_case code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anomaly {
    pub ts: Nanos,
    pub kind: &'static str,
}

/// Where sessions put what they find. The pipeline drains it after every
/// callback and stamps each call with the connection's identity.
#[derive(Debug, Default)]
pub struct Emitter {
    pub(crate) calls: Vec<(Direction, Call)>,
    pub(crate) anomalies: Vec<Anomaly>,
}

impl Emitter {
    pub fn new() -> Emitter {
        Emitter::default()
    }

    /// Emit a call whose request travelled in `request_dir`
    /// (`ToServer` for the usual client request). The pipeline sets `src`
    /// to the request's sender and `dst` to its receiver.
    pub fn call(&mut self, request_dir: Direction, call: Call) {
        self.calls.push((request_dir, call));
    }

    pub fn anomaly(&mut self, ts: Nanos, kind: &'static str) {
        self.anomalies.push(Anomaly { ts, kind });
    }

    /// Take what was emitted (for tests and for the pipeline).
    pub fn drain_calls(&mut self) -> std::vec::Drain<'_, (Direction, Call)> {
        self.calls.drain(..)
    }

    pub fn drain_anomalies(&mut self) -> std::vec::Drain<'_, Anomaly> {
        self.anomalies.drain(..)
    }
}

/// One protocol's state for one connection.
///
/// For TCP, `data` gets each direction's bytes in order, split anywhere;
/// for UDP, one datagram per call. Incomplete input is not an error: keep
/// what is needed and wait. After `gap`, either resynchronise (find the
/// next message head) or give up on the direction and say so with an
/// anomaly. Sessions must not panic on any input.
pub trait Session: Send {
    fn data(&mut self, dir: Direction, ts: Nanos, data: &[u8], out: &mut Emitter);

    fn gap(&mut self, dir: Direction, ts: Nanos, len: u64, out: &mut Emitter);

    /// The direction ended (FIN or RST). Messages delimited by the close
    /// (HTTP bodies without length) complete here.
    fn end(&mut self, dir: Direction, ts: Nanos, out: &mut Emitter);

    /// The connection is gone: emit everything still pending (requests
    /// without responses carry `no_response`).
    fn close(&mut self, ts: Nanos, out: &mut Emitter);
}

/// One entry of the protocol registry.
#[derive(Clone, Copy, Debug)]
pub struct ProtocolEntry {
    pub protocol: trawl_model::Protocol,
    /// Transports this protocol runs over.
    pub transports: &'static [TransportKind],
    /// Ports that hint at this protocol (tried first, and accepted on a
    /// weaker probe); content still decides.
    pub ports: &'static [u16],
    /// Look at the first bytes one side sent (for UDP, its first datagram).
    pub probe: fn(data: &[u8], transport: TransportKind) -> Probe,
    pub new_session: fn(ctx: &SessionContext) -> Box<dyn Session>,
}
