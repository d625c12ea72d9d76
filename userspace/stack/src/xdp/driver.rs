//! The packet loop's driver: runs rounds of a worker's shard over its device while
//! there is work, polls for `busy_poll` when there is none, then sleeps until the
//! device is readable, a timer is due, a flow has something to send, or a command
//! arrives; hands accepted connections to their handlers and carries out the Stack's
//! commands.
//!
//! The loop (a task on the worker's single-threaded runtime) does, in turn: transmit
//! what the connections have to send straight into device buffers and kick once;
//! receive a batch and feed each segment to its connection; fire due timers; then yield
//! so the flow tasks woken by all that run. Transmitting first means the ACK a segment
//! calls for leaves after the flow tasks it woke have run: an answer, or the FIN of a
//! flow closed on end-of-stream, carries it instead of following a bare ACK (a server
//! sends three segments for a one-query DNS connection, not four). The ACK that
//! completes an active open's handshake is the exception: it leaves at once
//! (`Shard::transmit_handshake_acks`).

use std::cell::RefCell;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use xsk::{XskConfig, XskSocket};

use super::admission::{Admission, Controller, Sample};
use super::device::Device;
use super::shard::{Shard, ShardSetup, RX_BATCH};
use super::table::Handle;
use super::XdpWorkerSetup;
use crate::context::WorkerContext;
use crate::error::StartError;
use crate::listener::Listeners;
use crate::runtime::Tasks;
use crate::workers::{Command, Commands};
use crate::Flow;

/// What a worker reports once it serves: the queue and socket to enter in the
/// steering program's socket map, when its device is an AF_XDP socket.
pub(crate) type Ready = Result<Option<(u32, RawFd)>, StartError>;

/// Binds the worker's AF_XDP socket to its queue, then runs the loop on it until a
/// shutdown command.
pub(crate) fn run_worker(setup: XdpWorkerSetup, ready: Sender<Ready>, commands: Commands) {
    let XdpWorkerSetup {
        queue,
        iface,
        shard,
        xdp,
        connect_timeout,
        admission,
        ring_level,
    } = setup;
    let mut sock = match XskSocket::bind(
        &iface,
        queue,
        &XskConfig {
            bind_mode: xdp.bind_mode,
            ..XskConfig::default()
        },
    ) {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(StartError::Xdp(e)));
            return;
        }
    };
    if xdp.napi_busy_poll_us > 0 {
        if let Err(e) = sock.set_busy_poll(xdp.napi_busy_poll_us, RX_BATCH as u16) {
            let _ = ready.send(Err(StartError::Xdp(e)));
            return;
        }
    }
    // SYNs dropped in the program while this queue's ring fills (with admission on).
    let limit = super::admission::ring_limit(sock.rx_ring_size(), xdp.admission);
    ring_level.set_limit(limit);
    if limit > 0 {
        sock.set_ring_level(ring_level);
    }
    let registered = Some((queue, sock.as_raw_fd()));
    let admission = WorkerAdmission {
        queue,
        control: BudgetSink::Program(admission),
        mode: xdp.admission,
    };
    run_on(
        sock,
        shard,
        xdp.busy_poll,
        connect_timeout,
        ready,
        registered,
        Some(admission),
        commands,
    );
}

/// A worker's part in admission: its queue's budget in the steering program.
pub(crate) struct WorkerAdmission {
    pub(crate) queue: u32,
    pub(crate) control: BudgetSink,
    pub(crate) mode: Admission,
}

/// Where a worker's admission budget goes.
pub(crate) enum BudgetSink {
    /// The steering program's map, for an AF_XDP socket.
    Program(xsk::AdmissionControl),
    /// A lossy in-memory link, which plays the program.
    Memory(std::sync::Arc<super::memory::Steering>),
}

impl BudgetSink {
    fn set(&mut self, queue: u32, budget: Option<xsk::SynBudget>) -> Result<(), xsk::Error> {
        match self {
            BudgetSink::Program(p) => p.set(queue, budget),
            BudgetSink::Memory(s) => {
                s.set_budget(budget);
                Ok(())
            }
        }
    }
}

/// Runs a worker's loop on `dev` until a shutdown command; `registered` is what the
/// readiness report carries; `admission`, the queue's budget to keep (a device behind
/// a steering program).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_on<D: Device + 'static>(
    dev: D,
    shard: ShardSetup,
    busy_poll: Duration,
    connect_timeout: Duration,
    ready: Sender<Ready>,
    registered: Option<(u32, RawFd)>,
    admission: Option<WorkerAdmission>,
    mut commands: Commands,
) {
    let runtime = match crate::runtime::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(StartError::Io("building the worker runtime", e)));
            return;
        }
    };
    let index = shard.index;
    let local = tokio::task::LocalSet::new();
    // The packet loop runs as a task of the LocalSet, like the flows it wakes, and
    // yields with `yield_to_flows`: the LocalSet then runs the woken flows and the
    // loop again, up to its budget per tick, before it returns to the runtime, which
    // polls epoll and tokio's timers. Yielding as the root future (or with tokio's
    // yield_now, which defers the wake-up to the runtime) cost an epoll_wait per round.
    local.block_on(&runtime, async move {
        let packet_loop = async move {
            let mut dev = dev;
            let state = Rc::new(RefCell::new(Shard::new(shard)));
            // SAFETY: the descriptor is `dev`'s, which outlives `afd`: `afd` is declared
            // after it, so it is dropped (and deregistered) first.
            let afd = match dev
                .readiness_fd()
                .map(|fd| unsafe { AsyncFd::register(fd) })
                .transpose()
            {
                Ok(a) => a,
                Err(e) => {
                    let _ = ready.send(Err(StartError::Io(
                        "registering the device's descriptor with epoll",
                        std::io::Error::other(e.to_string()),
                    )));
                    return;
                }
            };
            // For an AF_XDP socket, the map entry for its queue points at it from now on.
            let _ = ready.send(Ok(registered));
            let connector = Rc::new(super::connect::XdpConnector::new(
                state.clone(),
                connect_timeout,
            ));
            let ctx = WorkerContext::new(index, connector);
            let mut idle_since: Option<tcp::Instant> = None;
            let tasks = Tasks::default();
            let mut draining: Option<Instant> = None;
            // When the last round started and whether it did something: the time from there
            // to the next round (that round and the flow tasks it woke) counts as busy, or
            // as idle polling; time asleep counts as neither.
            let mut last_round: Option<(tcp::Instant, bool)> = None;
            let mut admission = admission.map(|a| {
                let now = state.borrow().now();
                (Controller::new(a.mode, now), a)
            });
            loop {
                let (worked, accepted, now) = {
                    let mut s = state.borrow_mut();
                    let now = s.now();
                    if let Some((since, worked)) = last_round.take() {
                        let spent = now.saturating_duration_since(since).as_micros() as u64;
                        if worked {
                            s.stats.busy_us += spent;
                        } else {
                            s.stats.idle_poll_us += spent;
                        }
                    }
                    s.stats.elapsed_us = now.as_micros();
                    let worked = s.step(&mut dev, now);
                    last_round = Some((now, worked));
                    if let Some((ctl, a)) = admission.as_mut().filter(|(c, _)| c.due(now)) {
                        // Once a period: the drop counters cost a system call.
                        let drops = dev.counters().drops.map_or(0, |d| d.rx_ring_full + d.fill_empty);
                        let sample = Sample {
                            elapsed_us: s.stats.elapsed_us,
                            syns: s.stats.syns_received,
                            opened: s.stats.handshakes,
                            ring_drops: drops,
                            polls: s.stats.rx_polls,
                            polls_full: s.stats.rx_polls_full,
                        };
                        if let Some(budget) = ctl.tick(now, sample) {
                            match a.control.set(a.queue, budget) {
                                Ok(()) => {
                                    s.stats.syn_budget =
                                        budget.map_or(0, |b| b.per_second as u64);
                                    s.stats.syn_budget_changes += 1;
                                }
                                Err(e) => {
                                    // A budget left in the map would go on dropping SYNs
                                    // that nothing adjusts any more: lift it if it can be.
                                    let lifted = a.control.set(a.queue, None).is_ok();
                                    if lifted {
                                        s.stats.syn_budget = 0;
                                    }
                                    tracing::warn!(queue = a.queue, error = %e, lifted, "cannot set the admission budget: adaptive admission stops for this queue");
                                    admission = None;
                                }
                            }
                        }
                    }
                    (worked, std::mem::take(&mut s.accepted), now)
                };
                for (h, port) in accepted {
                    start_handler(&state, h, port, &tasks);
                }
                while let Ok(cmd) = commands.try_recv() {
                    command(cmd, &state, &dev, &ctx, &tasks, &mut draining);
                }
                if let Some(deadline) = draining {
                    if tasks.running() == 0 || Instant::now() >= deadline {
                        break;
                    }
                }
                if worked {
                    idle_since = None;
                    yield_to_flows().await;
                    continue;
                }
                let idle = *idle_since.get_or_insert(now);
                if now.saturating_duration_since(idle) < busy_poll {
                    yield_to_flows().await;
                    continue;
                }
                if !dev.prepare_to_sleep() {
                    yield_to_flows().await;
                    continue;
                }
                // Sleep until something can happen.
                let (notify, timer) = {
                    let mut s = state.borrow_mut();
                    s.loop_asleep = true;
                    (s.loop_wake.clone(), s.next_timer())
                };
                let wait = timer
                    .unwrap_or(Duration::from_millis(100))
                    .min(Duration::from_millis(100));
                let mut timed_out = false;
                tokio::select! {
                    _ = readable(&afd) => {}
                    _ = notify.notified() => {}
                    cmd = commands.recv() => {
                        match cmd {
                            Some(cmd) => command(cmd, &state, &dev, &ctx, &tasks, &mut draining),
                            None => break,
                        }
                    }
                    _ = tokio::time::sleep(wait) => timed_out = true,
                }
                state.borrow_mut().loop_asleep = false;
                dev.woke();
                // A wake-up by the loop's own timer (a TCP deadline, a TX retry) polls
                // again only if its round finds work, not for a whole busy-poll window.
                if !timed_out {
                    idle_since = None;
                }
                last_round = None;
            }
            drop(afd);
        };
        let _ = tokio::task::spawn_local(crate::runtime::abort_on_panic(
            "the packet loop",
            index,
            packet_loop,
        ))
        .await;
    });
}

/// Waits until the device's descriptor is readable; for ever for a device without one.
async fn readable(afd: &Option<AsyncFd<RawFd>>) {
    match afd {
        Some(afd) => {
            if let Ok(mut guard) = afd.readable().await {
                guard.clear_ready();
            }
        }
        None => std::future::pending().await,
    }
}

/// Lets the flow tasks the last round woke run, then comes back: it re-queues the
/// calling task on the LocalSet at once, behind them, instead of deferring its wake-up
/// to the runtime's next poll of epoll as tokio's `yield_now` does.
async fn yield_to_flows() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

/// Carries out one command from the Stack.
fn command<D: Device>(
    cmd: Command,
    state: &Rc<RefCell<Shard>>,
    dev: &D,
    ctx: &WorkerContext,
    tasks: &Tasks,
    draining: &mut Option<Instant>,
) {
    match cmd {
        Command::Spawn(f) => {
            let ctx = ctx.clone();
            // Called inside the task, so that a panic in it ends only the task.
            tasks.spawn(async move { f(ctx).await });
        }
        Command::Shutdown { drain } => {
            state.borrow_mut().listeners = Listeners::new();
            *draining = Some(Instant::now() + drain);
        }
        Command::Stats(reply) => {
            let s = state.borrow();
            let mut stats = s.stats;
            stats.connections = s.conns.count() as u64;
            for c in s.conns.iter() {
                stats.add_tcb(c.tcb.stats());
                stats.states.count(c.tcb.state());
            }
            let device = dev.counters();
            stats.tx_ring_full = device.tx_ring_full;
            stats.tx_device_full = device.tx_device_full;
            stats.tx_kick_refused = device.tx_kick_refused;
            stats.socket_drops = device.drops;
            let _ = reply.send(stats);
        }
    }
}

/// Hands an accepted connection to its listener's handler.
fn start_handler(state: &Rc<RefCell<Shard>>, h: Handle, port: u16, tasks: &Tasks) {
    let handler = {
        let mut s = state.borrow_mut();
        let Some(l) = s.listeners.get(port).cloned() else {
            // The listener went away (shutdown): refuse the connection.
            if let Some(c) = s.conns.get_mut(h) {
                c.tcb.abort();
            }
            s.after_tcp(h);
            return;
        };
        match s.conns.get_mut(h) {
            Some(c) => c.attached = true,
            None => return,
        }
        l.handler
    };
    let flow = Flow::xdp(super::flow::XdpFlow::new(state.clone(), h));
    // The handler is called inside the task: a panic in it, before or after it returns
    // its future, ends that task and drops its flow, not the packet loop.
    tasks.spawn(async move { handler(flow).await });
}
