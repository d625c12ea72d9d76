//! A task's view of the worker it runs on: which worker, and how it opens
//! connections. Each backend supplies its own way to connect behind [`Connector`].

use std::future::Future;
use std::net::SocketAddrV4;
use std::pin::Pin;
use std::rc::Rc;

use crate::error::Error;
use crate::listener::Keepalive;
use crate::Flow;

/// An active open in progress, as a backend returns it.
pub(crate) type Connecting<'a> = Pin<Box<dyn Future<Output = Result<Flow, Error>> + 'a>>;

/// How a backend's worker opens a connection (the seed's create_connection).
pub(crate) trait Connector {
    /// Opens a connection to `dst`, with keepalive if given.
    fn connect(&self, dst: SocketAddrV4, keepalive: Option<Keepalive>) -> Connecting<'_>;
}

/// A task's view of the worker it runs on: how it opens connections.
#[derive(Clone)]
pub struct WorkerContext {
    index: usize,
    connector: Rc<dyn Connector>,
}

impl std::fmt::Debug for WorkerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerContext")
            .field("index", &self.index)
            .finish()
    }
}

impl WorkerContext {
    pub(crate) fn new(index: usize, connector: Rc<dyn Connector>) -> WorkerContext {
        WorkerContext { index, connector }
    }

    /// Which worker this is.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Opens a TCP connection to `dst` from this worker (the seed's create_connection),
    /// with keepalive if given. `Err(Refused)` if the peer resets, `Err(Timeout)` if it
    /// does not answer in the configured connect timeout. Dropping the future before it
    /// completes (a `select!`, a timeout of the caller's own) abandons the attempt: the
    /// half-open connection is aborted and its port freed.
    pub async fn connect(
        &self,
        dst: SocketAddrV4,
        keepalive: Option<Keepalive>,
    ) -> Result<Flow, Error> {
        self.connector.connect(dst, keepalive).await
    }
}
