//! Latency-percentile plots as SVG, HdrHistogram style: x is 1/(1-p) on a log axis
//! (0 %, 90 %, 99 %, ... 99.999 %), y the latency on a log axis; one line per run.
//! `sluice-bench --plot` draws one run; `sluice demo` draws every run it made.

use std::fmt::Write as _;

/// How many nines the x axis reaches (99.999 %).
const NINES: f64 = 5.0;
/// Points per curve.
const STEPS: usize = 200;

/// One run's curve.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// Its name in the legend.
    pub label: String,
    /// Its throughput, shown beside the name.
    pub qps: f64,
    /// (quantile in 0..1, latency in microseconds), by rising quantile.
    pub points: Vec<(f64, f64)>,
}

/// The quantiles a curve is sampled at: evenly spaced in nines, 0 to 99.999 %.
pub fn quantiles() -> impl Iterator<Item = f64> {
    (0..=STEPS).map(|k| 1.0 - 10f64.powf(-(k as f64 / STEPS as f64 * NINES)))
}

/// The plot of `lines`.
pub fn svg(lines: &[Line]) -> String {
    // The legend's column as wide as its longest entry ("label (12345/s)"), about 7
    // pixels a character at 12 px.
    let legend = lines
        .iter()
        .map(|l| l.label.chars().count() + format!(" ({:.0}/s)", l.qps).len())
        .max()
        .unwrap_or(0);
    let right = (20.0 + 7.0 * legend as f64).max(170.0);
    let (w, h, left, bottom, top) = (520.0 + right, 420.0, 70.0, 50.0, 30.0);
    let max_us = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|&(_, us)| us))
        .fold(10.0, f64::max);
    let y_decades = max_us.log10().ceil().max(1.0);
    let x = |p: f64| left + (w - left - right) * ((1.0 / (1.0 - p.min(0.99999))).log10() / NINES);
    let y = |us: f64| h - bottom - (h - bottom - top) * (us.max(1.0).log10() / y_decades);
    let mut s = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n"
    );
    for i in 0..=NINES as usize {
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
    for (i, line) in lines.iter().enumerate() {
        let mut points = String::new();
        for &(p, us) in &line.points {
            let _ = write!(points, "{:.1},{:.1} ", x(p), y(us));
        }
        let c = colours[i % colours.len()];
        let _ = writeln!(
            s,
            "<polyline fill='none' stroke='{c}' stroke-width='2' points='{points}'/>"
        );
        let _ = writeln!(
            s,
            "<text x='{}' y='{}' fill='{c}'>{} ({:.0}/s)</text>",
            w - right + 10.0,
            top + 16.0 * (i as f64 + 1.0),
            xml_escape(&line.label),
            line.qps
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plot_has_a_curve_and_a_legend_per_line() {
        let line = |label: &str, us: f64| Line {
            label: label.into(),
            qps: 1000.0,
            points: quantiles().map(|p| (p, us * (1.0 + p))).collect(),
        };
        let s = svg(&[line("a <b>", 50.0), line("c", 5000.0)]);
        assert_eq!(s.matches("<polyline").count(), 2);
        assert!(s.contains("a &lt;b&gt; (1000/s)"));
        assert!(s.contains("10 ms"), "the y axis reaches the slowest point");
        assert!(s.starts_with("<svg") && s.ends_with("</svg>\n"));
        // A long legend entry widens the plot rather than running off it.
        let wide = svg(&[line(&"x".repeat(60), 1.0)]);
        let width: f64 = wide
            .split("width='")
            .nth(1)
            .and_then(|t| t.split('\'').next())
            .and_then(|t| t.parse().ok())
            .unwrap();
        assert!(width >= 520.0 + 20.0 + 7.0 * 69.0, "{width}");
    }
}
