//! The numbers a report shows for a cell: median, spread and the overhead against native.

use super::model::{Better, Metric};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    /// Of a non-empty sample set: the median (mean of the middle two for an even count), the
    /// smallest and largest sample.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Some(Summary { median, min: v[0], max: v[n - 1] })
    }

    /// (max - min) / median: how far apart the samples were, relative to the middle.
    pub fn spread(&self) -> f64 {
        if self.median == 0.0 { 0.0 } else { (self.max - self.min) / self.median.abs() }
    }
}

/// How many times worse than native `value` is: >1 is slower (or bigger, or fewer), <1 better;
/// for metrics where higher is better the quotient is turned over, so it reads the same way.
pub fn overhead(metric: &Metric, value: f64, native: f64) -> Option<f64> {
    let r = match metric.better {
        Better::Lower => value / native,
        Better::Higher => native / value,
    };
    r.is_finite().then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::overhead::model::metric;

    #[test]
    fn medians_and_ratios() {
        let s = Summary::of(&[3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert_eq!((s.min, s.max), (1.0, 10.0));
        assert!(Summary::of(&[]).is_none());
        let lower = metric("getpid_us").unwrap();
        let higher = metric("sha256_mibs").unwrap();
        assert_eq!(overhead(lower, 4.0, 2.0), Some(2.0));
        assert_eq!(overhead(higher, 50.0, 100.0), Some(2.0));
        assert_eq!(overhead(higher, 0.0, 100.0), None);
    }
}
