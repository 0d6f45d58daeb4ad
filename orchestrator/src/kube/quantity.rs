//! Resource quantities ("250m", "1.5", "128Mi", "2G", "1e3") as numbers: CPU in millicores,
//! everything else in base units.

/// The value of a quantity in base units, or `None` when it is not a quantity.
pub fn parse(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse().ok()?),
        _ => return None,
    };
    Some(n * factor)
}

/// Thousandths of the quantity, rounded up (Kubernetes' MilliValue).
pub fn milli(s: &str) -> Option<i64> {
    parse(s).map(|v| (v * 1000.0).ceil() as i64)
}

/// The quantity in base units, rounded up (Kubernetes' Value).
pub fn value(s: &str) -> Option<i64> {
    parse(s).map(|v| v.ceil() as i64)
}

/// A quantity given in thousandths as Kubernetes would print it: "500m", "2", "3k", or with
/// binary suffixes ("256Mi") for sizes in bytes that are whole multiples of them.
pub fn format_milli(milli: i64, bytes: bool) -> String {
    if milli % 1000 != 0 {
        return format!("{milli}m");
    }
    let v = milli / 1000;
    if v == 0 {
        return "0".into();
    }
    let suffixes: &[(&str, i64)] = if bytes {
        &[
            ("Ei", 1 << 60),
            ("Pi", 1 << 50),
            ("Ti", 1 << 40),
            ("Gi", 1 << 30),
            ("Mi", 1 << 20),
            ("Ki", 1 << 10),
        ]
    } else {
        &[
            ("E", 1_000_000_000_000_000_000),
            ("P", 1_000_000_000_000_000),
            ("T", 1_000_000_000_000),
            ("G", 1_000_000_000),
            ("M", 1_000_000),
            ("k", 1000),
        ]
    };
    for (suffix, unit) in suffixes {
        if v % unit == 0 {
            return format!("{}{suffix}", v / unit);
        }
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_quantities() {
        assert_eq!(milli("250m"), Some(250));
        assert_eq!(milli("1.5"), Some(1500));
        assert_eq!(milli("2"), Some(2000));
        assert_eq!(value("128Mi"), Some(128 << 20));
        assert_eq!(value("1G"), Some(1_000_000_000));
        assert_eq!(value("1e3"), Some(1000));
        assert_eq!(value("100k"), Some(100_000));
        assert_eq!(milli("100n"), Some(1));
        assert_eq!(value("12x"), None);
        assert_eq!(value(""), None);
        assert_eq!(format_milli(500, false), "500m");
        assert_eq!(format_milli(2000, false), "2");
        assert_eq!(format_milli(3_000_000, false), "3k");
        assert_eq!(format_milli(1_500_000, false), "1500");
        assert_eq!(format_milli((256i64 << 20) * 1000, true), "256Mi");
        assert_eq!(format_milli(0, true), "0");
    }
}
