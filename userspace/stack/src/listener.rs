//! The listener registry: which handler serves the flows accepted on which port.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::session::{Session, SessionFactory};
use crate::Flow;

/// TCP keepalive, as the seed's `Keepalive.t`: after `after` of silence, send a probe
/// every `interval`; after `probes` unanswered probes the connection is lost (`read`
/// returns `Ok(None)`, `write` returns `Err(Closed)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe.
    pub after: Duration,
    /// Time between probes.
    pub interval: Duration,
    /// Unanswered probes before the connection is declared lost.
    pub probes: u32,
}

/// A handler's future: it runs on the worker that owns the flow, so it need not be Send.
pub type LocalFuture = Pin<Box<dyn Future<Output = ()> + 'static>>;

/// Processes one accepted flow (the seed's `process`). Shared by every worker.
pub type Handler = Arc<dyn Fn(Flow) -> LocalFuture + Send + Sync>;

/// A listener on a port: the seed's `{ process; keepalive }`.
#[derive(Clone)]
pub struct Listener {
    /// Processes each accepted flow.
    pub handler: Handler,
    /// Applied to each accepted connection before the handler runs.
    pub keepalive: Option<Keepalive>,
    /// The synchronous form of the handler, when the listener was made with
    /// [`Listener::session`]: the AF_XDP worker calls it from its loop instead of
    /// running `handler` as a task. `handler` runs the same sessions on a flow.
    pub session: Option<SessionFactory>,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("keepalive", &self.keepalive)
            .field("session", &self.session.is_some())
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// A listener running `handler` on every accepted flow, without keepalive.
    ///
    /// ```
    /// use stack::{Flow, Listener};
    /// let echo = Listener::new(|mut flow: Flow| async move {
    ///     while let Ok(Some(data)) = flow.read().await {
    ///         if flow.write(data).await.is_err() {
    ///             break;
    ///         }
    ///     }
    ///     flow.close().await;
    /// });
    /// assert!(echo.keepalive.is_none());
    /// ```
    pub fn new<F, Fut>(handler: F) -> Listener
    where
        F: Fn(Flow) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        Listener {
            handler: Arc::new(move |flow| Box::pin(handler(flow))),
            keepalive: None,
            session: None,
        }
    }

    /// A listener whose connections are each served by a [`Session`] that `factory`
    /// makes from the peer's address and the session's [`crate::Wake`] (`None` refuses
    /// the connection): the cheaper form for handlers that answer from what arrives
    /// (see [`crate::session`]).
    ///
    /// ```
    /// use std::time::Instant;
    /// use stack::{Listener, Next, Session};
    ///
    /// /// Echoes every read, and closes after a second of silence.
    /// struct Echo;
    /// impl Session for Echo {
    ///     fn on_data(&mut self, data: &[u8], reply: &mut Vec<u8>, now: Instant) -> Next {
    ///         reply.extend_from_slice(data);
    ///         Next::Wait(Some(now + std::time::Duration::from_secs(1)))
    ///     }
    ///     fn on_deadline(&mut self, _now: Instant) -> Next {
    ///         Next::Close
    ///     }
    /// }
    /// let echo = Listener::session(|_peer, _wake| Some(Box::new(Echo) as Box<dyn Session>));
    /// assert!(echo.session.is_some());
    /// ```
    pub fn session<F>(factory: F) -> Listener
    where
        F: Fn(std::net::SocketAddrV4, crate::Wake) -> Option<Box<dyn Session>>
            + Send
            + Sync
            + 'static,
    {
        let factory: SessionFactory = Arc::new(factory);
        let on_flow = factory.clone();
        Listener {
            handler: Arc::new(move |flow: Flow| {
                Box::pin(crate::session::drive_on_flow(flow, on_flow.clone()))
            }),
            keepalive: None,
            session: Some(factory),
        }
    }

    /// The same listener with keepalive applied to its connections.
    pub fn with_keepalive(mut self, keepalive: Keepalive) -> Listener {
        self.keepalive = Some(keepalive);
        self
    }
}

/// Ports and their listeners. A SYN to a port that is not here is answered with a RST.
#[derive(Clone, Debug, Default)]
pub struct Listeners {
    // Looked up for every SYN and every established connection: aHash, not SipHash
    // (the keys are our own port numbers, nothing a peer chooses).
    ports: HashMap<u16, Listener, ahash::RandomState>,
}

impl Listeners {
    /// An empty registry.
    pub fn new() -> Listeners {
        Listeners::default()
    }

    /// Serves `port` with `listener` (the seed's `listen`), replacing any previous one.
    pub fn listen(&mut self, port: u16, listener: Listener) -> &mut Listeners {
        self.ports.insert(port, listener);
        self
    }

    /// The listener of `port`, if any.
    pub fn get(&self, port: u16) -> Option<&Listener> {
        self.ports.get(&port)
    }

    /// Every port listened on.
    pub fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.ports.keys().copied()
    }

    /// Whether no port is listened on.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }
}
