//! `index.html`: the summary table, the heat map, then each workload's table and plot, on one
//! self-contained page (the plots are inlined).

use std::fmt::Write;

use super::Report;
use super::model::{METRICS, RuntimeId};
use super::plots::Plot;
use super::svg::{escape, num};

fn summary_html(r: &Report) -> String {
    let mut s = String::from("<table><tr><th>workload</th><th>unit</th>");
    for rt in &r.runtimes {
        let _ = write!(s, "<th>{}</th>", escape(&rt.label));
    }
    s.push_str("</tr>\n");
    for m in METRICS.iter().filter(|m| r.jobs.contains(&m.job)) {
        let _ = write!(s, "<tr><td>{}</td><td>{}</td>", escape(&r.title(m)), m.unit.label());
        for rt in &r.runtimes {
            let text = match (r.summary(m.id, rt.id), r.ratio(m.id, rt.id)) {
                (Some(sum), Some(x)) if rt.id != RuntimeId::Native => {
                    format!("{} <small>({}x)</small>", num(sum.median), num(x))
                }
                (Some(sum), _) => num(sum.median),
                (None, _) => match r.cell(m.id, rt.id).map(|c| &c.outcome) {
                    Some(super::model::Outcome::Skipped { reason }) => {
                        format!("<span title=\"{}\">skipped</span>", escape(reason))
                    }
                    Some(super::model::Outcome::Failed { reason }) => {
                        format!("<span title=\"{}\">failed</span>", escape(reason))
                    }
                    _ => "-".into(),
                },
            };
            let _ = write!(s, "<td>{text}</td>");
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n");
    s
}

/// The SVG of a plot without its XML declaration, for inlining.
fn inline(p: &Plot) -> &str {
    p.svg.find("<svg").map_or(&p.svg, |i| &p.svg[i..])
}

pub fn page(r: &Report, plots: &[Plot]) -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>ringfence bench overhead</title>\n\
         <style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}\
         td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:left}\
         figure{margin:1em 0}</style></head><body>\n<h1>Isolation overhead</h1>\n",
    );
    for line in super::report::header(r).lines() {
        let _ = writeln!(s, "<p>{}</p>", escape(line));
    }
    s.push_str("<ul>\n");
    for rt in &r.runtimes {
        let status = rt.reason.as_ref().map_or("measured".into(), |x| format!("skipped: {x}"));
        let note = rt.note.as_ref().map(|n| format!(" ({n})")).unwrap_or_default();
        let _ = writeln!(
            s,
            "<li><b>{}</b>: {}{}</li>",
            escape(&rt.label),
            escape(&status),
            escape(&note)
        );
    }
    s.push_str("</ul>\n<h2>Summary</h2>\n<p>Medians; in parentheses how many times worse than native (below 1: better).</p>\n");
    s.push_str(&summary_html(r));
    for p in plots {
        let _ = writeln!(
            s,
            "<figure>{}<figcaption>{}</figcaption></figure>",
            inline(p),
            escape(&p.title)
        );
    }
    s.push_str("<p>Every sample: <a href=\"results.json\">results.json</a> (schema: <a href=\"results.schema.json\">results.schema.json</a>); text report: <a href=\"report.md\">report.md</a>.</p>\n</body></html>\n");
    s
}
