//! What a run prints and writes: the progress line, the final table, JSON, and an SVG
//! plot of latency percentiles.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::load::Counters;

/// The counters at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    pub sent: u64,
    pub answered: u64,
    pub connections: u64,
    pub timeouts: u64,
    pub resets: u64,
    pub refused: u64,
    pub connect_errors: u64,
    pub bad_answers: u64,
    pub rcodes: [u64; 16],
}

impl Snapshot {
    pub fn take(c: &Counters) -> Snapshot {
        let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let mut rcodes = [0; 16];
        for (r, a) in rcodes.iter_mut().zip(&c.rcodes) {
            *r = l(a);
        }
        Snapshot {
            sent: l(&c.sent),
            answered: l(&c.answered),
            connections: l(&c.connections),
            timeouts: l(&c.timeouts),
            resets: l(&c.resets),
            refused: l(&c.refused),
            connect_errors: l(&c.connect_errors),
            bad_answers: l(&c.bad_answers),
            rcodes,
        }
    }

    fn errors(&self) -> u64 {
        self.timeouts + self.resets + self.refused + self.connect_errors + self.bad_answers
    }
}

/// One progress line: rates over the last second and totals since the measurement began.
pub fn progress(
    elapsed: Duration,
    start: &Snapshot,
    last: &Snapshot,
    now: &Snapshot,
    max_latency_us: u64,
) -> String {
    format!(
        "{:>5.1}s  {:>9} answers/s  {:>7} conn/s  max latency {:>8} us  total {:>10} answers  errors {}",
        elapsed.as_secs_f64(),
        now.answered - last.answered,
        now.connections - last.connections,
        max_latency_us,
        now.answered - start.answered,
        now.errors() - start.errors()
    )
}

/// A run's figures.
pub struct Result {
    pub label: String,
    pub mode: String,
    pub connections: usize,
    pub in_flight: usize,
    pub rate: Option<f64>,
    pub seconds: f64,
    pub delta: Snapshot,
    pub qps: f64,
    pub cps: f64,
    pub percentiles_us: Vec<(f64, u64)>,
    pub mean_us: f64,
    pub max_us: u64,
    /// How loaded this generator's AF_XDP workers were during the measurement. None on
    /// kernel sockets, where the OS's CPU figures tell the same.
    pub generator_busy: Option<GeneratorLoad>,
    /// Open loop: queries due by the end of the run and not answered, counted in the
    /// latencies at their age then (see `Counters::unanswered`).
    pub unanswered: u64,
}

/// The generator's own account of its workers' time (a busy-polling worker looks
/// fully busy to the OS whatever it does).
#[derive(Clone, Copy, Debug)]
pub struct GeneratorLoad {
    /// Share of the time spent moving frames and running the load's tasks. Near 1.0
    /// means the generator, not the server, set the pace.
    pub busy: f64,
    /// Share of the time spent polling with nothing to do.
    pub idle_poll: f64,
}

const PERCENTILES: [f64; 7] = [50.0, 90.0, 99.0, 99.9, 99.99, 99.999, 100.0];

impl Result {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        label: String,
        mode: String,
        connections: usize,
        in_flight: usize,
        rate: Option<f64>,
        elapsed: Duration,
        before: &Snapshot,
        after: &Snapshot,
        h: &Histogram<u64>,
        generator_busy: Option<GeneratorLoad>,
    ) -> Result {
        let mut delta = *after;
        delta.sent -= before.sent;
        delta.answered -= before.answered;
        delta.connections -= before.connections;
        delta.timeouts -= before.timeouts;
        delta.resets -= before.resets;
        delta.refused -= before.refused;
        delta.connect_errors -= before.connect_errors;
        delta.bad_answers -= before.bad_answers;
        for (d, b) in delta.rcodes.iter_mut().zip(before.rcodes) {
            *d -= b;
        }
        let seconds = elapsed.as_secs_f64();
        Result {
            label,
            mode,
            connections,
            in_flight,
            rate,
            seconds,
            qps: delta.answered as f64 / seconds,
            cps: delta.connections as f64 / seconds,
            percentiles_us: PERCENTILES
                .iter()
                .map(|&p| (p, h.value_at_quantile(p / 100.0)))
                .collect(),
            mean_us: h.mean(),
            max_us: h.max(),
            delta,
            generator_busy,
            unanswered: 0,
        }
    }

    pub fn errors(&self) -> u64 {
        self.delta.errors()
    }

    fn pct(&self, p: f64) -> u64 {
        self.percentiles_us
            .iter()
            .find(|(q, _)| *q == p)
            .map(|(_, v)| *v)
            .unwrap_or(0)
    }

    /// The table printed at the end.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let d = &self.delta;
        let _ = writeln!(
            s,
            "{} mode={} connections={} in-flight={} {} {:.1}s",
            if self.label.is_empty() {
                "run"
            } else {
                &self.label
            },
            self.mode,
            self.connections,
            self.in_flight,
            self.rate
                .map(|r| format!("open loop {r:.0}/s"))
                .unwrap_or_else(|| "closed loop".into()),
            self.seconds
        );
        let _ = writeln!(
            s,
            "  answers      {:>12}   {:>10.0} /s",
            d.answered, self.qps
        );
        let _ = writeln!(
            s,
            "  connections  {:>12}   {:>10.0} /s",
            d.connections, self.cps
        );
        let _ = writeln!(
            s,
            "  latency us   p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {:.0}",
            self.pct(50.0),
            self.pct(90.0),
            self.pct(99.0),
            self.pct(99.9),
            self.max_us,
            self.mean_us
        );
        if self.rate.is_some() {
            let _ = writeln!(
                s,
                "  unanswered   {:>12}   due by the end, in the latencies at their age then",
                self.unanswered
            );
        }
        let names = [
            "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
        ];
        let rc: Vec<String> = d
            .rcodes
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| format!("{}={n}", names.get(i).copied().unwrap_or("RCODE")))
            .collect();
        let _ = writeln!(
            s,
            "  rcodes       {}",
            if rc.is_empty() {
                "-".to_string()
            } else {
                rc.join(" ")
            }
        );
        let _ = write!(
            s,
            "  errors       timeouts={} resets={} refused={} connect={} bad-answers={}",
            d.timeouts, d.resets, d.refused, d.connect_errors, d.bad_answers
        );
        if let Some(g) = self.generator_busy {
            let _ = write!(
                s,
                "\n  generator    busy {:.0} %, polling idle {:.0} % of its workers' time{}",
                g.busy * 100.0,
                g.idle_poll * 100.0,
                if g.busy > 0.9 {
                    " (the generator may be the limit)"
                } else {
                    ""
                }
            );
        }
        s
    }

    /// The same figures as a JSON object.
    pub fn json(&self, hist: &Histogram<u64>) -> String {
        let d = &self.delta;
        let curve: Vec<String> = curve(hist)
            .iter()
            .map(|(p, us)| format!("[{p:.7}, {us}]"))
            .collect();
        let pcts: Vec<String> = self
            .percentiles_us
            .iter()
            .map(|(p, v)| format!("\"{p}\": {v}"))
            .collect();
        let rcodes: Vec<String> = d
            .rcodes
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| format!("\"{i}\": {n}"))
            .collect();
        format!(
            "{{\n  \"label\": {:?},\n  \"mode\": {:?},\n  \"connections\": {},\n  \"in_flight\": {},\n  \"rate\": {},\n  \"seconds\": {:.3},\n  \"answers\": {},\n  \"sent\": {},\n  \"qps\": {:.1},\n  \"new_connections\": {},\n  \"cps\": {:.1},\n  \"latency_us\": {{ {} }},\n  \"latency_mean_us\": {:.1},\n  \"unanswered\": {},\n  \"rcodes\": {{ {} }},\n  \"errors\": {{ \"timeouts\": {}, \"resets\": {}, \"refused\": {}, \"connect\": {}, \"bad_answers\": {} }},\n  \"generator_busy\": {},\n  \"generator_idle_poll\": {},\n  \"curve_us\": [{}]\n}}\n",
            self.label,
            self.mode,
            self.connections,
            self.in_flight,
            self.rate.map(|r| format!("{r}")).unwrap_or_else(|| "null".into()),
            self.seconds,
            d.answered,
            d.sent,
            self.qps,
            d.connections,
            self.cps,
            pcts.join(", "),
            self.mean_us,
            self.unanswered,
            rcodes.join(", "),
            d.timeouts,
            d.resets,
            d.refused,
            d.connect_errors,
            d.bad_answers,
            self.generator_busy
                .map(|g| format!("{:.3}", g.busy))
                .unwrap_or_else(|| "null".into()),
            self.generator_busy
                .map(|g| format!("{:.3}", g.idle_poll))
                .unwrap_or_else(|| "null".into()),
            curve.join(", ")
        )
    }
}

/// The latency curve of a run for plots: (quantile, microseconds) at the quantiles
/// `sluice::plot` samples (0 to 99.999 %, evenly spaced in nines).
pub fn curve(hist: &Histogram<u64>) -> Vec<(f64, f64)> {
    sluice::plot::quantiles()
        .map(|p| (p, hist.value_at_quantile(p) as f64))
        .collect()
}

/// A latency-percentile plot of `runs` (see `sluice::plot`).
pub fn svg(runs: &[(&Result, &Histogram<u64>)]) -> String {
    let lines: Vec<sluice::plot::Line> = runs
        .iter()
        .map(|(r, hist)| sluice::plot::Line {
            label: if r.label.is_empty() {
                r.mode.clone()
            } else {
                r.label.clone()
            },
            qps: r.qps,
            points: curve(hist),
        })
        .collect();
    sluice::plot::svg(&lines)
}
