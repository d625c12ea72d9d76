//! Workers: one thread per queue (AF_XDP) or per core (kernel), each pinned to its core,
//! and the handle through which the rest of the program talks to them.

use std::cell::RefCell;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::{Backend, StackConfig};
use crate::error::Error;
use crate::listener::{Keepalive, Listeners, LocalFuture};
use crate::{kernel, Flow};

/// Why the stack could not start. Each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Another program already serves this address and port.
    #[error("{0} is already in use by another program")]
    PortInUse(SocketAddrV4),
    /// The address is not assigned to this host (in this network namespace).
    #[error("{0} is not an address of this host (add it to an interface first)")]
    AddressNotLocal(Ipv4Addr),
    /// A core in the core list does not exist.
    #[error("core {0} does not exist (this machine has cores 0..{1})")]
    NoSuchCore(usize, usize),
    /// The configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The AF_XDP layer refused (no interface, no privileges, a program already
    /// attached, a busy queue...).
    #[error("AF_XDP: {0}")]
    Xdp(#[from] xsk::Error),
    /// A system call failed.
    #[error("{0}: {1}")]
    Io(&'static str, #[source] io::Error),
}

/// The single-threaded runtime each worker (either backend) runs its tasks on.
pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Runs one of a worker's own loops (the AF_XDP packet loop, the kernel backend's accept
/// loops) so that a panic in it aborts the process at once, the panic hook having
/// printed why.
///
/// tokio catches a task's panic. Left to it, the packet loop's panic would reach the
/// thread only after the LocalSet had run the rest of its tick (flow tasks working on a
/// connection table the panic left half-updated), and the worker would then die alone:
/// its queue's traffic steered into a socket nobody reads while the service looks up;
/// an accept loop's panic would silently stop its port on that worker. Aborting lets
/// the supervisor restart the whole service (`deploy/sluice.service`: Restart=on-failure).
/// A handler's panic is not this: it ends the handler's task, and with it that one
/// flow, which is dropped (FIN, or RST with unread data).
pub(crate) async fn abort_on_panic<F: std::future::Future>(
    what: &'static str,
    worker: usize,
    fut: F,
) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(_) => {
                eprintln!("sluice: worker {worker}: {what} panicked; aborting the process");
                std::process::abort();
            }
        }
    })
    .await
}

/// What a worker is told to do.
pub(crate) enum Command {
    /// Run a task on the worker.
    Spawn(Box<dyn FnOnce(WorkerContext) -> LocalFuture + Send>),
    /// Stop accepting, let flows finish for at most `drain`, then exit.
    Shutdown { drain: Duration },
    /// Send the worker's counters.
    Stats(std::sync::mpsc::Sender<crate::WorkerStats>),
}

/// Everything a worker thread starts from.
pub(crate) struct WorkerSetup {
    pub index: usize,
    pub listeners: Listeners,
    pub addrs: Vec<Ipv4Addr>,
    pub config: Arc<StackConfig>,
    pub ready: std::sync::mpsc::Sender<Result<Option<(u32, std::os::fd::RawFd)>, StartError>>,
}

/// A task's view of the worker it runs on: how it opens connections.
#[derive(Clone)]
pub struct WorkerContext {
    index: usize,
    connect_timeout: Duration,
    xdp: Option<Rc<RefCell<crate::xdp::worker::State>>>,
}

impl std::fmt::Debug for WorkerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerContext")
            .field("index", &self.index)
            .field("xdp", &self.xdp.is_some())
            .finish()
    }
}

impl WorkerContext {
    pub(crate) fn kernel(index: usize, connect_timeout: Duration) -> WorkerContext {
        WorkerContext {
            index,
            connect_timeout,
            xdp: None,
        }
    }

    pub(crate) fn xdp(
        index: usize,
        connect_timeout: Duration,
        state: Rc<RefCell<crate::xdp::worker::State>>,
    ) -> WorkerContext {
        WorkerContext {
            index,
            connect_timeout,
            xdp: Some(state),
        }
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
        match &self.xdp {
            Some(state) => {
                crate::xdp::worker::connect(state, dst, keepalive, self.connect_timeout).await
            }
            None => kernel::connect(dst, keepalive, self.connect_timeout).await,
        }
    }
}

struct WorkerHandle {
    thread: Option<JoinHandle<()>>,
    commands: mpsc::UnboundedSender<Command>,
}

/// The running stack: its workers and the way to reach them.
pub struct Stack {
    workers: Vec<WorkerHandle>,
    backend: Backend,
    // Dropped after the workers have stopped (see Drop): detaches the program.
    xdp: Option<crate::xdp::XdpShared>,
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
        let config = Arc::new(config);
        let mut stack = Stack {
            workers: Vec::new(),
            backend: config.backend,
            xdp: None,
        };
        match config.backend {
            Backend::Kernel => {
                let addrs = if config.addrs.is_empty() {
                    vec![Ipv4Addr::UNSPECIFIED]
                } else {
                    config.addrs.clone()
                };
                let workers = config.workers.unwrap_or(config.cores.len().max(1));
                if workers == 0 {
                    return Err(StartError::Config("at least one worker is needed".into()));
                }
                for port in listeners.ports() {
                    for addr in &addrs {
                        kernel::check_port_free(SocketAddrV4::new(*addr, port))?;
                    }
                }
                for index in 0..workers {
                    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
                    let setup = WorkerSetup {
                        index,
                        listeners: listeners.clone(),
                        addrs: addrs.clone(),
                        config: config.clone(),
                        ready: ready_tx,
                    };
                    stack.launch(index, &config, ready_rx, move |rx| {
                        kernel::run_worker(setup, rx)
                    })?;
                }
            }
            Backend::Xdp => {
                let (shared, templates) = crate::xdp::prepare(&config, &listeners)?;
                stack.xdp = Some(shared);
                let (peers, inboxes) = crate::xdp::worker::peers(templates.len());
                for (t, inbox) in templates.into_iter().zip(inboxes) {
                    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
                    let setup = crate::xdp::XdpWorkerSetup {
                        index: t.index,
                        workers: t.workers,
                        queue: t.queue,
                        iface: t.iface,
                        mac: t.mac,
                        addrs: config.addrs.clone(),
                        listeners: listeners.clone(),
                        config: config.clone(),
                        tcp: crate::xdp::conn::TcbFactory::new(&config.tcp),
                        ports: config.client_ports,
                        peers: peers.clone(),
                        inbox,
                        ready: ready_tx,
                    };
                    stack.launch(t.index, &config, ready_rx, move |rx| {
                        crate::xdp::worker::run_worker(setup, rx)
                    })?;
                }
            }
        }
        Ok(stack)
    }

    /// Starts worker `index` on its core and waits until it serves (or fails).
    fn launch(
        &mut self,
        index: usize,
        config: &StackConfig,
        ready: std::sync::mpsc::Receiver<Result<Option<(u32, std::os::fd::RawFd)>, StartError>>,
        run: impl FnOnce(mpsc::UnboundedReceiver<Command>) + Send + 'static,
    ) -> Result<(), StartError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let core = (!config.cores.is_empty()).then(|| config.cores[index % config.cores.len()]);
        let thread = std::thread::Builder::new()
            .name(format!("sluice-w{index}"))
            .spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core_affinity::CoreId { id: core });
                }
                run(rx)
            })
            .map_err(|e| StartError::Io("spawning a worker thread", e))?;
        self.workers.push(WorkerHandle {
            thread: Some(thread),
            commands: tx,
        });
        let outcome = match ready.recv() {
            Ok(Ok(Some((queue, fd)))) => match &mut self.xdp {
                Some(shared) => shared
                    .program
                    .register_fd(queue, fd)
                    .map_err(StartError::Xdp),
                None => Ok(()),
            },
            Ok(Ok(None)) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StartError::Io(
                "starting a worker",
                io::Error::other("the worker thread died"),
            )),
        };
        if let Err(e) = outcome {
            self.shutdown(Duration::ZERO);
            return Err(e);
        }
        Ok(())
    }

    /// How many workers run.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
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
        let w = &self.workers[worker % self.workers.len()];
        w.commands
            .send(Command::Spawn(Box::new(move |ctx| Box::pin(task(ctx)))))
            .map_err(|_| Error::ShuttingDown)
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
        let replies: Vec<_> = self
            .workers
            .iter()
            .filter_map(|w| {
                let (tx, rx) = std::sync::mpsc::channel();
                w.commands.send(Command::Stats(tx)).ok().map(|_| rx)
            })
            .collect();
        replies
            .into_iter()
            .filter_map(|rx| rx.recv_timeout(Duration::from_secs(1)).ok())
            .collect()
    }

    /// Stops accepting, lets flows in progress finish for at most `drain`, and waits for
    /// every worker to exit.
    pub fn shutdown(&mut self, drain: Duration) {
        for w in &self.workers {
            let _ = w.commands.send(Command::Shutdown { drain });
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown(Duration::ZERO);
        self.xdp = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHILD: &str = "SLUICE_TEST_ABORT_ON_PANIC_CHILD";

    /// The panicking loop kills the process before the task queued behind it runs. The
    /// abort happens in a child: this test runs its own binary again with CHILD set.
    #[test]
    fn a_panicking_loop_aborts_before_the_next_task_runs() {
        if std::env::var_os(CHILD).is_some() {
            let rt = runtime().unwrap();
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, async {
                // The LocalSet polls its tasks in the order they were queued.
                let looping = tokio::task::spawn_local(abort_on_panic("the test loop", 7, async {
                    panic!("the loop's bug");
                }));
                let next = tokio::task::spawn_local(async {
                    println!("the next task ran");
                });
                let _ = looping.await;
                let _ = next.await;
            });
            println!("the child survived");
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "worker::tests::a_panicking_loop_aborts_before_the_next_task_runs",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGABRT),
            "{}\n{stdout}\n{stderr}",
            out.status
        );
        assert!(
            !stdout.contains("ran") && !stdout.contains("survived"),
            "{stdout}"
        );
        assert!(stderr.contains("the loop's bug"), "{stderr}");
        assert!(
            stderr.contains("sluice: worker 7: the test loop panicked; aborting"),
            "{stderr}"
        );
    }
}
