//! The running stack: the top of the crate, and the only module that names both
//! backends. It starts the one the configuration names and talks to its workers
//! through the commands every backend answers.

use std::time::Duration;

use crate::config::{Backend, BackendConfig, StackConfig};
use crate::context::WorkerContext;
use crate::error::{Error, StartError};
use crate::listener::Listeners;
use crate::workers::{Command, Workers};
use crate::{kernel, xdp};

/// The running stack: its workers and the way to reach them.
pub struct Stack {
    workers: Workers,
    backend: Backend,
    // Dropped after the workers have stopped (see Drop): detaches the program.
    xdp: Option<xdp::XdpShared>,
    /// The in-memory backend's links, until the caller takes them.
    memory_links: Vec<crate::MemoryLink>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("workers", &self.workers.len())
            .field("backend", &self.backend)
            .finish()
    }
}

impl Stack {
    /// Starts the workers and their listeners; returns once every worker is serving, or
    /// the first error (after stopping the workers that did start).
    pub fn start(config: StackConfig, listeners: Listeners) -> Result<Stack, StartError> {
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        for &c in &config.cores {
            if !cores.iter().any(|id| id.id == c) {
                return Err(StartError::NoSuchCore(c, cores.len()));
            }
        }
        let mut stack = Stack {
            workers: Workers::default(),
            backend: config.backend.kind(),
            xdp: None,
            memory_links: Vec::new(),
        };
        let started = match &config.backend {
            BackendConfig::Kernel(k) => kernel::start(&config, k, &listeners, &mut stack.workers),
            BackendConfig::Xdp(x) => xdp::start(&config, x, &listeners, &mut stack.workers)
                .map(|shared| stack.xdp = Some(shared)),
            BackendConfig::Memory(m) => {
                xdp::start_memory(&config, m, &listeners, &mut stack.workers)
                    .map(|links| stack.memory_links = links)
            }
        };
        if let Err(e) = started {
            stack.shutdown(Duration::ZERO);
            return Err(e);
        }
        Ok(stack)
    }

    /// How many workers run.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The in-memory backend's links, one per worker in worker order: the far side of
    /// each worker's device, for the caller to play the network on. Empty for the
    /// other backends, and after the first call.
    pub fn take_memory_links(&mut self) -> Vec<crate::MemoryLink> {
        std::mem::take(&mut self.memory_links)
    }

    /// Runs `task` on worker `worker` (modulo the number of workers); the closure is sent
    /// there and the future it returns stays there, so it need not be Send.
    ///
    /// ```no_run
    /// # fn f(stack: &stack::Stack) {
    /// use std::net::SocketAddrV4;
    /// stack.spawn(0, |ctx| async move {
    ///     let dst: SocketAddrV4 = "198.18.0.2:7".parse().unwrap();
    ///     if let Ok(mut flow) = ctx.connect(dst, None).await {
    ///         let _ = flow.write(bytes::Bytes::from_static(b"ping")).await;
    ///         flow.close().await;
    ///     }
    /// });
    /// # }
    /// ```
    pub fn spawn<F, Fut>(&self, worker: usize, task: F) -> Result<(), Error>
    where
        F: FnOnce(WorkerContext) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let cmd = Command::Spawn(Box::new(move |ctx| Box::pin(task(ctx))));
        if self.workers.send(worker, cmd) {
            Ok(())
        } else {
            Err(Error::ShuttingDown)
        }
    }

    /// Every worker's counters, in worker order (a worker that does not answer within a
    /// second is left out).
    ///
    /// ```no_run
    /// # fn f(stack: &stack::Stack) {
    /// for (i, w) in stack.stats().iter().enumerate() {
    ///     println!("worker {i}: {} frames in, {} accepted", w.rx_frames, w.accepted);
    /// }
    /// # }
    /// ```
    pub fn stats(&self) -> Vec<crate::WorkerStats> {
        self.workers.stats()
    }

    /// The steering program's counters (AF_XDP backend only): what it redirected,
    /// passed to the kernel, found malformed, had no socket for, and shed under its
    /// admission budgets.
    pub fn steering_counters(&self) -> Option<Result<crate::SteeringCounters, xsk::Error>> {
        self.xdp.as_ref().map(|x| x.program.counters())
    }

    /// Stops accepting and lets flows in progress finish for at most `drain`, without
    /// waiting: the caller can go on answering (health checks that say it is
    /// draining, stats) until [`Stack::stopped`], then call [`Stack::shutdown`].
    pub fn begin_shutdown(&self, drain: Duration) {
        self.workers.begin_shutdown(drain);
    }

    /// Whether a worker has exited on its own, before any shutdown: its queue is no
    /// longer served.
    pub fn lost_a_worker(&self) -> bool {
        self.workers.any_exited()
    }

    /// Whether every worker has exited (after [`Stack::begin_shutdown`]).
    pub fn stopped(&self) -> bool {
        self.workers.exited()
    }

    /// Stops accepting, lets flows in progress finish for at most `drain`, and waits for
    /// every worker to exit.
    pub fn shutdown(&mut self, drain: Duration) {
        self.workers.shutdown(drain);
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown(Duration::ZERO);
        self.xdp = None;
    }
}
