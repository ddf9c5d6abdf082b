//! Robust summaries of measurements: median and MAD resist the outliers a shared 2-core VM
//! produces; percentiles use the nearest-rank method (p99 of 100 samples is the 99th smallest).

use serde::Serialize;

/// Summary of a set of samples (all in the same unit).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub count: usize,
    pub median: f64,
    /// Median absolute deviation from the median.
    pub mad: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub p50: f64,
    pub p99: f64,
    pub p99_9: f64,
}

/// Nearest-rank percentile of sorted samples; `p` in (0, 100].
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // ceil(p/100 * n) in integers (p to 1/1000 of a percent), so 99.9% of 1000 is exactly 999.
    let p_milli = (p * 1000.0).round().max(0.0) as u128;
    let rank = ((p_milli * sorted.len() as u128).div_ceil(100_000)) as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median_of_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Summarizes `samples` (sorted in place). NaNs are ignored.
pub fn summarize(samples: &mut Vec<f64>) -> Summary {
    samples.retain(|x| !x.is_nan());
    samples.sort_by(f64::total_cmp);
    let median = median_of_sorted(samples);
    let mut deviations: Vec<f64> = samples.iter().map(|x| (x - median).abs()).collect();
    deviations.sort_by(f64::total_cmp);
    let n = samples.len();
    Summary {
        count: n,
        median,
        mad: median_of_sorted(&deviations),
        min: samples.first().copied().unwrap_or(f64::NAN),
        max: samples.last().copied().unwrap_or(f64::NAN),
        mean: if n == 0 {
            f64::NAN
        } else {
            samples.iter().sum::<f64>() / n as f64
        },
        p50: percentile(samples, 50.0),
        p99: percentile(samples, 99.0),
        p99_9: percentile(samples, 99.9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_samples() {
        let mut v = vec![5.0, 1.0, 3.0, 2.0, 4.0, 100.0];
        let s = summarize(&mut v);
        assert_eq!(s.count, 6);
        assert_eq!(s.median, 3.5);
        assert_eq!((s.min, s.max), (1.0, 100.0));
        // |x - 3.5| = 2.5 1.5 0.5 0.5 1.5 96.5 -> sorted 0.5 0.5 1.5 1.5 2.5 96.5 -> 1.5
        assert_eq!(s.mad, 1.5);
        assert_eq!(s.p50, 3.0);
        assert_eq!(s.p99, 100.0);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 500.0);
        assert_eq!(percentile(&v, 99.0), 990.0);
        assert_eq!(percentile(&v, 99.9), 999.0);
        assert_eq!(percentile(&v, 100.0), 1000.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn empty_and_nan_samples() {
        let s = summarize(&mut vec![]);
        assert_eq!(s.count, 0);
        assert!(s.median.is_nan());
        let s = summarize(&mut vec![f64::NAN, 2.0]);
        assert_eq!((s.count, s.median, s.mad), (1, 2.0, 0.0));
    }
}

/// Spread of a benchmark's numbers over `--repeat` runs.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Repeats {
    pub iops: Summary,
    pub mb_per_sec: Summary,
    pub p50_us: Summary,
    pub p99_us: Summary,
}

/// The spread of `runs`, and the index of the run with the median IOPS (the one reported).
pub fn repeats(runs: &[crate::storage::Numbers]) -> (Repeats, usize) {
    let pick = |f: fn(&crate::storage::Numbers) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        summarize(&mut v)
    };
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by(|a, b| runs[*a].iops.total_cmp(&runs[*b].iops));
    let median = order.get(runs.len() / 2).copied().unwrap_or(0);
    (
        Repeats {
            iops: pick(|n| n.iops),
            mb_per_sec: pick(|n| n.mb_per_sec),
            p50_us: pick(|n| n.p50_us),
            p99_us: pick(|n| n.p99_us),
        },
        median,
    )
}
