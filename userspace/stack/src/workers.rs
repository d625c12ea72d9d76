//! Worker threads, whichever the backend: each pinned to its core, reached through a
//! command channel, reporting once it serves (or why it cannot).

use std::io;
use std::sync::mpsc::{Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::context::WorkerContext;
use crate::error::StartError;
use crate::listener::LocalFuture;
use crate::WorkerStats;

/// What a worker is told to do.
pub(crate) enum Command {
    /// Run a task on the worker.
    Spawn(Box<dyn FnOnce(WorkerContext) -> LocalFuture + Send>),
    /// Stop accepting, let flows finish for at most `drain`, then exit.
    Shutdown { drain: Duration },
    /// Send the worker's counters.
    Stats(std::sync::mpsc::Sender<WorkerStats>),
}

/// A worker's command inbox.
pub(crate) type Commands = mpsc::UnboundedReceiver<Command>;

struct WorkerHandle {
    thread: Option<JoinHandle<()>>,
    commands: mpsc::UnboundedSender<Command>,
}

/// The running workers, in index order.
#[derive(Default)]
pub(crate) struct Workers {
    handles: Vec<WorkerHandle>,
}

impl Workers {
    /// Starts worker `index` on its core (the `index`-th of `cores`, round robin; no
    /// pinning when empty) running `run`, and waits for what it reports once it serves
    /// (or fails to). `R` is the backend's report.
    pub(crate) fn launch<R: Send + 'static>(
        &mut self,
        index: usize,
        cores: &[usize],
        run: impl FnOnce(Commands, Sender<R>) + Send + 'static,
    ) -> Result<R, StartError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx): (Sender<R>, Receiver<R>) = std::sync::mpsc::channel();
        let core = (!cores.is_empty()).then(|| cores[index % cores.len()]);
        let thread = std::thread::Builder::new()
            .name(format!("sluice-w{index}"))
            .spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core_affinity::CoreId { id: core });
                }
                run(rx, ready_tx)
            })
            .map_err(|e| StartError::Io("spawning a worker thread", e))?;
        self.handles.push(WorkerHandle {
            thread: Some(thread),
            commands: tx,
        });
        ready_rx.recv().map_err(|_| {
            StartError::Io(
                "starting a worker",
                io::Error::other("the worker thread died"),
            )
        })
    }

    /// How many workers run.
    pub(crate) fn len(&self) -> usize {
        self.handles.len()
    }

    /// Sends `cmd` to worker `worker` (modulo the number of workers); false when it is
    /// gone or there are no workers.
    pub(crate) fn send(&self, worker: usize, cmd: Command) -> bool {
        if self.handles.is_empty() {
            return false;
        }
        self.handles[worker % self.handles.len()]
            .commands
            .send(cmd)
            .is_ok()
    }

    /// Every worker's counters, in worker order (a worker that does not answer within a
    /// second is left out).
    pub(crate) fn stats(&self) -> Vec<WorkerStats> {
        let replies: Vec<_> = self
            .handles
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

    /// Tells every worker to stop accepting and let flows finish for at most `drain`;
    /// does not wait.
    pub(crate) fn begin_shutdown(&self, drain: Duration) {
        for w in &self.handles {
            let _ = w.commands.send(Command::Shutdown { drain });
        }
    }

    /// Whether some worker thread has exited (while none was told to).
    pub(crate) fn any_exited(&self) -> bool {
        self.handles
            .iter()
            .any(|w| w.thread.as_ref().is_some_and(|t| t.is_finished()))
    }

    /// Whether every worker thread has exited.
    pub(crate) fn exited(&self) -> bool {
        self.handles
            .iter()
            .all(|w| w.thread.as_ref().is_none_or(|t| t.is_finished()))
    }

    /// Tells every worker to stop accepting and let flows finish for at most `drain`,
    /// and waits for them to exit.
    pub(crate) fn shutdown(&mut self, drain: Duration) {
        self.begin_shutdown(drain);
        for w in &mut self.handles {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}
