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
    pub fn json(&self) -> String {
        let d = &self.delta;
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
            "{{\n  \"label\": {:?},\n  \"mode\": {:?},\n  \"connections\": {},\n  \"in_flight\": {},\n  \"rate\": {},\n  \"seconds\": {:.3},\n  \"answers\": {},\n  \"sent\": {},\n  \"qps\": {:.1},\n  \"new_connections\": {},\n  \"cps\": {:.1},\n  \"latency_us\": {{ {} }},\n  \"latency_mean_us\": {:.1},\n  \"unanswered\": {},\n  \"rcodes\": {{ {} }},\n  \"errors\": {{ \"timeouts\": {}, \"resets\": {}, \"refused\": {}, \"connect\": {}, \"bad_answers\": {} }},\n  \"generator_busy\": {},\n  \"generator_idle_poll\": {}\n}}\n",
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
                .unwrap_or_else(|| "null".into())
        )
    }
}

/// A latency-percentile plot (HdrHistogram style: x is 1/(1-p) on a log axis, y is the
/// latency on a log axis), one line per run.
pub fn svg(runs: &[(&Result, &Histogram<u64>)]) -> String {
    let (w, h, left, bottom, top, right) = (760.0, 420.0, 70.0, 50.0, 30.0, 170.0);
    let nines = 5.0; // up to 99.999 %
    let max_us = runs
        .iter()
        .map(|(_, hist)| hist.max())
        .max()
        .unwrap_or(1)
        .max(10) as f64;
    let y_decades = max_us.log10().ceil().max(1.0);
    let x = |p: f64| left + (w - left - right) * ((1.0 / (1.0 - p.min(0.99999))).log10() / nines);
    let y = |us: f64| h - bottom - (h - bottom - top) * (us.max(1.0).log10() / y_decades);
    let mut s = format!("<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n");
    for i in 0..=nines as usize {
        let p = 1.0 - 10f64.powi(-(i as i32));
        let label = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"][i];
        let _ = writeln!(s, "<line x1='{0:.1}' y1='{1}' x2='{0:.1}' y2='{2}' stroke='#ddd'/><text x='{0:.1}' y='{3}' text-anchor='middle'>{label}</text>", x(p), top, h - bottom, h - bottom + 16.0);
    }
    for d in 0..=y_decades as i32 {
        let us = 10f64.powi(d);
        let label = if us >= 1000.0 {
            format!("{} ms", us / 1000.0)
        } else {
            format!("{us} µs")
        };
        let _ = writeln!(s, "<line x1='{left}' y1='{0:.1}' x2='{1}' y2='{0:.1}' stroke='#ddd'/><text x='{2}' y='{3:.1}' text-anchor='end'>{label}</text>", y(us), w - right, left - 6.0, y(us) + 4.0);
    }
    let colours = [
        "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
    ];
    for (i, (r, hist)) in runs.iter().enumerate() {
        let mut points = String::new();
        let steps = 200;
        for k in 0..=steps {
            let frac = k as f64 / steps as f64 * nines;
            let p = 1.0 - 10f64.powf(-frac);
            let v = hist.value_at_quantile(p) as f64;
            let _ = write!(points, "{:.1},{:.1} ", x(p), y(v));
        }
        let c = colours[i % colours.len()];
        let name = if r.label.is_empty() {
            r.mode.clone()
        } else {
            r.label.clone()
        };
        let _ = writeln!(
            s,
            "<polyline fill='none' stroke='{c}' stroke-width='2' points='{points}'/>"
        );
        let _ = writeln!(
            s,
            "<text x='{}' y='{}' fill='{c}'>{} ({:.0}/s)</text>",
            w - right + 10.0,
            top + 16.0 * (i as f64 + 1.0),
            xml_escape(&name),
            r.qps
        );
    }
    let _ = writeln!(
        s,
        "<text x='{}' y='{}' text-anchor='middle'>percentile</text>",
        (left + w - right) / 2.0,
        h - 12.0
    );
    let _ = writeln!(
        s,
        "<text x='14' y='{}' transform='rotate(-90 14 {})' text-anchor='middle'>latency</text>",
        h / 2.0,
        h / 2.0
    );
    s.push_str("</svg>\n");
    s
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
}
