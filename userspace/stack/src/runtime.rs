//! What every worker runs on, whichever the backend: its single-threaded runtime, the
//! guard that turns a panic of the worker's own loop into an abort, and the count of
//! its tasks that shutdown waits for.

use std::cell::Cell;
use std::rc::Rc;

/// The single-threaded runtime each worker runs its tasks on.
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

/// The tasks a worker runs for the application (handlers, spawned tasks): shutdown
/// lets them finish before the worker exits.
#[derive(Clone, Default)]
pub(crate) struct Tasks(Rc<Cell<usize>>);

impl Tasks {
    /// Counts one task until the returned token is dropped, however the task ends (a
    /// panic included).
    pub(crate) fn enter(&self) -> TaskToken {
        self.0.set(self.0.get() + 1);
        TaskToken(self.0.clone())
    }

    /// How many tasks are running.
    pub(crate) fn running(&self) -> usize {
        self.0.get()
    }

    /// Runs `task` on the worker's LocalSet, counted while it runs.
    pub(crate) fn spawn<F: std::future::Future<Output = ()> + 'static>(&self, task: F) {
        let token = self.enter();
        tokio::task::spawn_local(async move {
            task.await;
            drop(token);
        });
    }
}

/// One running task of [`Tasks`].
pub(crate) struct TaskToken(Rc<Cell<usize>>);

impl Drop for TaskToken {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
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
                "runtime::tests::a_panicking_loop_aborts_before_the_next_task_runs",
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

    #[test]
    fn a_task_counts_until_its_token_drops_even_in_a_panic() {
        let tasks = Tasks::default();
        let a = tasks.enter();
        let b = tasks.enter();
        assert_eq!(tasks.running(), 2);
        drop(a);
        assert_eq!(tasks.running(), 1);
        let moved = tasks.clone();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _t = moved.enter();
            panic!("a task's bug");
        }));
        assert!(r.is_err());
        assert_eq!(tasks.running(), 1);
        drop(b);
        assert_eq!(tasks.running(), 0);
    }
}
