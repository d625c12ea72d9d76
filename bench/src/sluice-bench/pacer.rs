//! Microsecond wake-ups for the open loop.
//!
//! tokio's timers tick in whole milliseconds: an open loop paced by them sends each
//! millisecond's queries in one burst, up to a millisecond after they fell due, and
//! charges that lateness to the server (latencies are measured from the due time). At
//! 100 k queries/s that put the median near 1 ms whatever the server did. The pacer
//! keeps one slot per connection task of its worker and wakes each task at its due time
//! from a `timerfd` (a high-resolution kernel timer the worker's epoll waits on), so
//! the generator sleeps between queries instead of spinning: on veth a spinning
//! generator would also hold off the NAPI thread that delivers its answers.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Closer than this, the pacer spins rather than arms the timer: a timer's wake-up costs
/// a few microseconds of its own.
const SPIN: Duration = Duration::from_micros(20);

/// The wake-ups of one worker's tasks; each task owns the slot it was given.
pub struct Pacer {
    slots: RefCell<Vec<Option<(Instant, Waker)>>>,
    /// Wakes the pacing task when a slot is filled with a time earlier than `armed_for`.
    armed: Notify,
    /// The time the pacing task will next look at the slots (None: not until a slot is
    /// filled). A wait due no sooner needs no notification, nor the timer re-armed.
    armed_for: Cell<Option<Instant>>,
}

impl Pacer {
    /// A pacer for `slots` tasks, with its pacing task spawned on the current worker
    /// (it lives as long as the worker's task set).
    pub fn start(slots: usize) -> io::Result<Rc<Pacer>> {
        let timer = Timer::new()?;
        let pacer = Rc::new(Pacer {
            slots: RefCell::new(vec![None; slots]),
            armed: Notify::new(),
            armed_for: Cell::new(None),
        });
        tokio::task::spawn_local(pacer.clone().run(timer));
        Ok(pacer)
    }

    /// Completes at `due`, to within the timer's resolution (microseconds) rather than
    /// tokio's millisecond. `slot` is the caller's own; dropping the wait frees it.
    pub fn until(&self, slot: usize, due: Instant) -> Wait<'_> {
        Wait {
            pacer: self,
            slot,
            due,
        }
    }

    /// Takes the due slots' wakers, earliest first (so tasks found due together still
    /// run in their order); returns the earliest due time still waiting.
    fn take_due(&self, woken: &mut Vec<(Instant, Waker)>) -> Option<Instant> {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for slot in self.slots.borrow_mut().iter_mut() {
            match slot {
                Some((t, _)) if *t <= now => woken.extend(slot.take()),
                Some((t, _)) => next = Some(next.map_or(*t, |n| n.min(*t))),
                None => {}
            }
        }
        woken.sort_unstable_by_key(|(t, _)| *t);
        next
    }

    async fn run(self: Rc<Self>, mut timer: Timer) {
        let mut woken = Vec::new();
        loop {
            let next = self.take_due(&mut woken);
            for (_, w) in woken.drain(..) {
                w.wake();
            }
            self.armed_for.set(next);
            match next {
                None => self.armed.notified().await,
                Some(t) if t.saturating_duration_since(Instant::now()) < SPIN => {
                    tokio::task::yield_now().await
                }
                Some(t) => {
                    // A slot filled meanwhile may be due sooner: either wakes the loop.
                    tokio::select! {
                        _ = timer.wait_until(t) => {}
                        _ = self.armed.notified() => {}
                    }
                }
            }
        }
    }
}

/// A wait for one due time (see [`Pacer::until`]).
pub struct Wait<'a> {
    pacer: &'a Pacer,
    slot: usize,
    due: Instant,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut slots = self.pacer.slots.borrow_mut();
        if Instant::now() >= self.due {
            slots[self.slot] = None;
            return Poll::Ready(());
        }
        slots[self.slot] = Some((self.due, cx.waker().clone()));
        drop(slots);
        if self.pacer.armed_for.get().is_none_or(|t| self.due < t) {
            self.pacer.armed_for.set(Some(self.due));
            self.pacer.armed.notify_one();
        }
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        // A wait given up (the answer came first) leaves no wake-up behind.
        self.pacer.slots.borrow_mut()[self.slot] = None;
    }
}

/// A one-shot CLOCK_MONOTONIC timerfd, readable once its time has come.
struct Timer {
    // Declared before `owned`, so it deregisters before the descriptor closes.
    fd: AsyncFd<RawFd>,
    owned: OwnedFd,
}

impl Timer {
    fn new() -> io::Result<Timer> {
        // SAFETY: plain system call; the descriptor is owned from here on.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // (A timerfd's expiry takes no timer slack, unlike the worker's epoll timeouts.)
        // SAFETY: `fd` stays open as long as the registration (see the field order).
        let registered = unsafe { AsyncFd::register(fd.as_raw_fd()) }?;
        Ok(Timer {
            fd: registered,
            owned: fd,
        })
    }

    /// Completes once `due` has passed.
    async fn wait_until(&mut self, due: Instant) {
        let left = due.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        // Relative arming: tokio's Instant and CLOCK_MONOTONIC share a clock, but not an
        // origin the program can read.
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: left.as_secs() as libc::time_t,
                tv_nsec: left.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: valid descriptor and itimerspec; the old value is not wanted.
        let rc =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            // Cannot happen with a valid descriptor and value; fall back to tokio's timer
            // rather than spin or stop.
            tokio::time::sleep_until(due).await;
            return;
        }
        loop {
            let Ok(mut ready) = self.fd.readable_mut().await else {
                tokio::time::sleep_until(due).await;
                return;
            };
            let mut expirations = [0u8; 8];
            // SAFETY: reads 8 bytes into a buffer of 8.
            let n = unsafe {
                libc::read(
                    self.owned.as_raw_fd(),
                    expirations.as_mut_ptr().cast(),
                    expirations.len(),
                )
            };
            if n == 8 {
                return;
            }
            ready.clear_ready();
            if Instant::now() >= due {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn on_worker<F: Future>(f: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        tokio::task::LocalSet::new().block_on(&rt, f)
    }

    #[test]
    fn wakes_each_slot_at_or_after_its_due_time_in_due_order() {
        on_worker(async {
            let pacer = Pacer::start(4).expect("timerfd");
            let order = Rc::new(RefCell::new(Vec::new()));
            let early = Rc::new(Cell::new(0));
            let start = Instant::now();
            // Two close enough to be found due in the same turn of a busy machine.
            let tasks: Vec<_> = [(0, 3000u64), (1, 1000), (2, 2000), (3, 1005)]
                .into_iter()
                .map(|(slot, us)| {
                    let (pacer, order, early) = (pacer.clone(), order.clone(), early.clone());
                    tokio::task::spawn_local(async move {
                        let due = start + Duration::from_micros(us);
                        pacer.until(slot, due).await;
                        if Instant::now() < due {
                            early.set(early.get() + 1);
                        }
                        order.borrow_mut().push(slot);
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("task");
            }
            assert_eq!(early.get(), 0, "a task woke before its due time");
            assert_eq!(*order.borrow(), vec![1, 3, 2, 0]);
        });
    }

    #[test]
    fn a_due_time_already_past_is_ready_at_once() {
        on_worker(async {
            let pacer = Pacer::start(1).expect("timerfd");
            let due = Instant::now() - Duration::from_millis(3);
            pacer.until(0, due).await;
            assert!(pacer.slots.borrow()[0].is_none(), "nothing left to wake");
        });
    }

    #[test]
    fn a_wait_given_up_frees_its_slot_and_a_sooner_one_still_wakes() {
        on_worker(async {
            let pacer = Pacer::start(1).expect("timerfd");
            let far = Instant::now() + Duration::from_secs(3600);
            // Polled once (the slot taken, the pacer armed for an hour), then dropped.
            let gave_up = tokio::time::timeout(Duration::from_millis(1), pacer.until(0, far))
                .await
                .is_err();
            assert!(gave_up);
            assert!(pacer.slots.borrow()[0].is_none(), "a stale wake-up stayed");
            // The pacer still waits for the hour: a sooner wait must re-arm it.
            let near = Instant::now() + Duration::from_millis(2);
            pacer.until(0, near).await;
            assert!(Instant::now() >= near);
        });
    }
}
