//! A minimal SVG writer: the few shapes the plots use, text escaped.

use std::fmt::Write;

pub struct Svg {
    body: String,
    width: f64,
    height: f64,
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

impl Svg {
    pub fn new(width: f64, height: f64) -> Svg {
        Svg { body: String::new(), width, height }
    }

    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str) {
        let _ = writeln!(
            self.body,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{fill}"/>"#,
            w.max(0.0),
            h.max(0.0)
        );
    }

    pub fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str) {
        let _ = writeln!(
            self.body,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{stroke}" stroke-width="1"/>"#
        );
    }

    pub fn polyline(&mut self, points: &[(f64, f64)], stroke: &str) {
        let pts: Vec<String> = points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = writeln!(
            self.body,
            r#"<polyline points="{}" fill="none" stroke="{stroke}" stroke-width="2"/>"#,
            pts.join(" ")
        );
    }

    /// Text at (x, y); `anchor` is start, middle or end.
    pub fn text(&mut self, x: f64, y: f64, size: f64, anchor: &str, s: &str) {
        let _ = writeln!(
            self.body,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}" text-anchor="{anchor}" font-family="sans-serif">{}</text>"#,
            escape(s)
        );
    }

    pub fn finish(self) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
             width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\n<rect width=\"100%\" \
             height=\"100%\" fill=\"white\"/>\n{}</svg>\n",
            self.body,
            w = self.width,
            h = self.height
        )
    }
}

/// A value axis, linear or logarithmic, mapping values to a pixel span.
pub struct Axis {
    pub lo: f64,
    pub hi: f64,
    pub log: bool,
}

impl Axis {
    /// Fits `values` (positive for a log axis); log when they span more than 20x.
    pub fn fit(values: &[f64], zero_based: bool) -> Axis {
        let pos: Vec<f64> = values.iter().copied().filter(|v| *v > 0.0 && v.is_finite()).collect();
        let hi = pos.iter().copied().fold(0.0, f64::max);
        let lo = pos.iter().copied().fold(f64::INFINITY, f64::min);
        if pos.is_empty() {
            return Axis { lo: 0.0, hi: 1.0, log: false };
        }
        if hi / lo > 20.0 {
            let lo = 10f64.powf(lo.log10().floor());
            let hi = 10f64.powf(hi.log10().ceil());
            return Axis { lo, hi, log: true };
        }
        let lo = if zero_based { 0.0 } else { lo * 0.9 };
        Axis { lo, hi: hi * 1.1, log: false }
    }

    /// Where `v` falls between 0 and 1.
    pub fn frac(&self, v: f64) -> f64 {
        let f = if self.log {
            (v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        };
        f.clamp(0.0, 1.0)
    }

    /// Tick values: decades on a log axis, five steps on a linear one.
    pub fn ticks(&self) -> Vec<f64> {
        if self.log {
            let (a, b) = (self.lo.log10().round() as i32, self.hi.log10().round() as i32);
            (a..=b).map(|e| 10f64.powi(e)).collect()
        } else {
            (0..=5).map(|i| self.lo + (self.hi - self.lo) * i as f64 / 5.0).collect()
        }
    }
}

/// A number in three significant digits or so.
///
/// ```text
/// 1234.4 -> 1234, 12.34 -> 12.3, 1.234 -> 1.23, 0.1234 -> 0.123, 0.001234 -> 0.00123
/// ```
pub fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a == 0.0 || !a.is_finite() {
        format!("{v}")
    } else {
        // Three significant digits below 1 too (0.0481, 0.000123).
        let decimals = (2 - a.log10().floor() as i32).clamp(3, 12) as usize;
        format!("{v:.decimals$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_three_digits() {
        assert_eq!(num(1234.5), "1234");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(0.1234), "0.123");
        assert_eq!(num(0.001234), "0.00123");
        assert_eq!(num(0.0), "0");
    }

    #[test]
    fn wide_ranges_get_a_log_axis() {
        let a = Axis::fit(&[0.05, 30.0], true);
        assert!(a.log && a.lo <= 0.05 && a.hi >= 30.0);
        assert!((a.frac(a.lo) - 0.0).abs() < 1e-9 && (a.frac(a.hi) - 1.0).abs() < 1e-9);
        assert!(!Axis::fit(&[5.0, 20.0], true).log);
    }
}
