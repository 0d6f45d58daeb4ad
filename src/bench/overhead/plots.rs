//! The report's SVG plots: a bar chart per workload across runtimes (medians, min-max
//! whiskers, log scale when the values span more than 20x), the start-to-exit CDF, memory per
//! idle sandbox, and the heat map of every ratio to native.

use super::Report;
use super::model::{METRICS, Metric, Outcome, RuntimeId};
use super::svg::{Axis, Svg, num};

pub struct Plot {
    pub file: String,
    pub title: String,
    pub svg: String,
}

const COLOURS: [&str; 5] = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"];

fn colour(rt: RuntimeId) -> &'static str {
    COLOURS[RuntimeId::ALL.iter().position(|r| *r == rt).unwrap_or(0)]
}

pub fn all(r: &Report) -> Vec<Plot> {
    let mut plots: Vec<Plot> =
        METRICS.iter().filter(|m| r.jobs.contains(&m.job)).map(|m| bars(r, m)).collect();
    if r.cells.iter().any(|c| c.metric.id == "start_exit_ms") {
        plots.push(startup_cdf(r));
    }
    if r.cells.iter().any(|c| c.metric.id == "idle_pss_mib") {
        plots.push(memory(r));
    }
    plots.push(heat_map(r));
    plots
}

const W: f64 = 640.0;
const LEFT: f64 = 170.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 40.0;
const ROW: f64 = 34.0;

/// Vertical grid lines with their values, for a horizontal value axis at the bottom.
fn grid(svg: &mut Svg, axis: &Axis, top: f64, bottom: f64) {
    for t in axis.ticks() {
        let x = LEFT + axis.frac(t) * (W - LEFT - RIGHT);
        svg.line(x, top, x, bottom, "#ddd");
        svg.text(x, bottom + 14.0, 10.0, "middle", &num(t));
    }
}

/// One bar per runtime: the median, a whisker from min to max, the value; a skipped or failed
/// runtime says so in place of its bar.
fn bars(r: &Report, m: &Metric) -> Plot {
    let rts: Vec<RuntimeId> = r.runtimes.iter().map(|s| s.id).collect();
    let mut values = Vec::new();
    for rt in &rts {
        if let Some(s) = r.summary(m.id, *rt) {
            values.extend([s.min, s.max, s.median]);
        }
    }
    let axis = Axis::fit(&values, true);
    let height = TOP + ROW * rts.len() as f64 + 40.0;
    let mut svg = Svg::new(W, height);
    let better = match m.better {
        super::model::Better::Lower => "lower is better",
        super::model::Better::Higher => "higher is better",
    };
    let scale = if axis.log { ", log scale" } else { "" };
    let title = format!("{} ({}; {better}{scale})", r.title(m), m.unit.label());
    svg.text(W / 2.0, 22.0, 13.0, "middle", &title);
    let bottom = TOP + ROW * rts.len() as f64;
    grid(&mut svg, &axis, TOP, bottom);
    let span = W - LEFT - RIGHT;
    for (i, rt) in rts.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        svg.text(LEFT - 6.0, y + ROW / 2.0 + 4.0, 11.0, "end", r.label(*rt));
        match (r.summary(m.id, *rt), r.cell(m.id, *rt).map(|c| &c.outcome)) {
            (Some(s), _) => {
                let x0 = LEFT + axis.frac(if axis.log { axis.lo } else { 0.0 }) * span;
                let xm = LEFT + axis.frac(s.median) * span;
                svg.rect(x0, y + 6.0, xm - x0, ROW - 12.0, colour(*rt));
                let (a, b) = (LEFT + axis.frac(s.min) * span, LEFT + axis.frac(s.max) * span);
                svg.line(a, y + ROW / 2.0, b, y + ROW / 2.0, "#222");
                svg.line(a, y + 10.0, a, y + ROW - 10.0, "#222");
                svg.line(b, y + 10.0, b, y + ROW - 10.0, "#222");
                let ratio =
                    r.ratio(m.id, *rt).map(|x| format!(" ({}x)", num(x))).unwrap_or_default();
                let label = format!("{}{ratio}", num(s.median));
                svg.text(
                    (xm.max(b) + 4.0).min(W - 90.0),
                    y + ROW / 2.0 - 6.0,
                    10.0,
                    "start",
                    &label,
                );
            }
            (None, Some(Outcome::Skipped { .. })) => {
                svg.text(LEFT + 4.0, y + ROW / 2.0 + 4.0, 10.0, "start", "skipped (see report)")
            }
            _ => svg.text(LEFT + 4.0, y + ROW / 2.0 + 4.0, 10.0, "start", "failed (see report)"),
        }
    }
    Plot { file: format!("{}.svg", m.id), title, svg: svg.finish() }
}

/// The cumulative distribution of start-to-exit times, one line per runtime.
fn startup_cdf(r: &Report) -> Plot {
    let series: Vec<(RuntimeId, Vec<f64>)> = r
        .runtimes
        .iter()
        .filter_map(|s| match &r.cell("start_exit_ms", s.id)?.outcome {
            Outcome::Ok { samples } => {
                let mut v = samples.clone();
                v.sort_by(f64::total_cmp);
                Some((s.id, v))
            }
            _ => None,
        })
        .collect();
    let all: Vec<f64> = series.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    let axis = Axis::fit(&all, false);
    let (top, bottom, h) = (TOP, 300.0, 360.0);
    let mut svg = Svg::new(W, h);
    let scale = if axis.log { ", log scale" } else { "" };
    let title = format!("start-to-exit /bin/true: cumulative distribution (ms{scale})");
    svg.text(W / 2.0, 22.0, 13.0, "middle", &title);
    grid(&mut svg, &axis, top, bottom);
    for q in [0.0, 0.5, 1.0] {
        let y = bottom - q * (bottom - top);
        svg.line(LEFT, y, W - RIGHT, y, "#ddd");
        svg.text(LEFT - 6.0, y + 4.0, 10.0, "end", &format!("{:.0}%", q * 100.0));
    }
    let span = W - LEFT - RIGHT;
    for (i, (rt, v)) in series.iter().enumerate() {
        let n = v.len() as f64;
        let mut pts = vec![(LEFT + axis.frac(v[0]) * span, bottom)];
        for (k, x) in v.iter().enumerate() {
            let px = LEFT + axis.frac(*x) * span;
            let py = |c: f64| bottom - c * (bottom - top);
            pts.push((px, py(k as f64 / n)));
            pts.push((px, py((k + 1) as f64 / n)));
        }
        svg.polyline(&pts, colour(*rt));
        let ly = top + 4.0 + 14.0 * i as f64;
        svg.rect(8.0, ly - 8.0, 10.0, 10.0, colour(*rt));
        svg.text(22.0, ly, 10.0, "start", r.label(*rt));
    }
    svg.text(W / 2.0, h - 16.0, 11.0, "middle", "ms from start to exit");
    Plot { file: "startup_cdf.svg".into(), title, svg: svg.finish() }
}

/// RSS and PSS of an idle sandbox (all its processes), side by side per runtime.
fn memory(r: &Report) -> Plot {
    let rts: Vec<RuntimeId> = r.runtimes.iter().map(|s| s.id).collect();
    let get = |m: &str, rt| r.summary(m, rt).map(|s| s.median);
    let values: Vec<f64> = rts
        .iter()
        .flat_map(|rt| [get("idle_rss_mib", *rt), get("idle_pss_mib", *rt)])
        .flatten()
        .collect();
    let axis = Axis::fit(&values, true);
    let bottom = TOP + ROW * rts.len() as f64;
    let mut svg = Svg::new(W, bottom + 40.0);
    let scale = if axis.log { ", log scale" } else { "" };
    let title = format!("memory per idle sandbox: RSS (light) and PSS (dark), MiB{scale}");
    svg.text(W / 2.0, 22.0, 13.0, "middle", &title);
    grid(&mut svg, &axis, TOP, bottom);
    let span = W - LEFT - RIGHT;
    let x0 = LEFT + axis.frac(if axis.log { axis.lo } else { 0.0 }) * span;
    for (i, rt) in rts.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        svg.text(LEFT - 6.0, y + ROW / 2.0 + 4.0, 11.0, "end", r.label(*rt));
        let (rss, pss) = (get("idle_rss_mib", *rt), get("idle_pss_mib", *rt));
        if let Some(v) = rss {
            svg.rect(x0, y + 5.0, LEFT + axis.frac(v) * span - x0, 11.0, "#a6bddb");
        }
        if let Some(v) = pss {
            svg.rect(x0, y + 17.0, LEFT + axis.frac(v) * span - x0, 11.0, colour(*rt));
        }
        let text = match (rss, pss) {
            (Some(a), Some(b)) => format!("RSS {} / PSS {}", num(a), num(b)),
            _ => "not measured (see report)".into(),
        };
        svg.text(W - RIGHT, y + ROW / 2.0 + 4.0, 10.0, "end", &text);
    }
    Plot { file: "memory.svg".into(), title, svg: svg.finish() }
}

/// The colour of an overhead factor: green below 1, white at 1, red from 100x.
fn heat(ratio: f64) -> String {
    let t = (ratio.max(1e-9).log10() / 2.0).clamp(-1.0, 1.0);
    let (r, g, b) = if t >= 0.0 {
        (255.0, 255.0 * (1.0 - t * 0.8), 255.0 * (1.0 - t * 0.85))
    } else {
        (255.0 * (1.0 + t * 0.7), 255.0, 255.0 * (1.0 + t * 0.7))
    };
    format!("rgb({:.0},{:.0},{:.0})", r, g, b)
}

/// Rows: workloads; columns: runtimes other than native; cells: the overhead factor.
fn heat_map(r: &Report) -> Plot {
    let cols: Vec<RuntimeId> =
        r.runtimes.iter().map(|s| s.id).filter(|id| *id != RuntimeId::Native).collect();
    let rows: Vec<&Metric> = METRICS.iter().filter(|m| r.jobs.contains(&m.job)).collect();
    let (left, top, cw, ch) = (250.0, 60.0, 110.0, 22.0);
    let w = left + cw * cols.len().max(1) as f64 + 20.0;
    let h = top + ch * rows.len() as f64 + 30.0;
    let mut svg = Svg::new(w, h);
    let title = "overhead vs native (x times worse; green: better than native)".to_owned();
    svg.text(w / 2.0, 22.0, 13.0, "middle", &title);
    for (j, rt) in cols.iter().enumerate() {
        svg.text(left + cw * (j as f64 + 0.5), top - 8.0, 11.0, "middle", r.label(*rt));
    }
    for (i, m) in rows.iter().enumerate() {
        let y = top + ch * i as f64;
        svg.text(left - 6.0, y + ch / 2.0 + 4.0, 10.0, "end", &r.title(m));
        for (j, rt) in cols.iter().enumerate() {
            let x = left + cw * j as f64;
            let (fill, text) = match (r.ratio(m.id, *rt), r.cell(m.id, *rt).map(|c| &c.outcome)) {
                (Some(x), _) => (heat(x), format!("{}x", num(x))),
                (None, Some(Outcome::Skipped { .. })) => ("#eee".into(), "skipped".into()),
                (None, Some(Outcome::Ok { .. })) => ("#eee".into(), "no native".into()),
                _ => ("#ccc".into(), "failed".into()),
            };
            svg.rect(x + 1.0, y + 1.0, cw - 2.0, ch - 2.0, &fill);
            svg.text(x + cw / 2.0, y + ch / 2.0 + 4.0, 10.0, "middle", &text);
        }
    }
    Plot { file: "overhead_heatmap.svg".into(), title, svg: svg.finish() }
}
