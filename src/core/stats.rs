//! Summary statistics for repeated runs: mean and a 95% confidence interval (Student's t).

use serde::{Deserialize, Serialize};

/// Mean of several runs with the half-width of its 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanInterval {
    pub mean: f64,
    /// `mean ± half_width` covers the true mean with 95% confidence (0 for a single run).
    pub half_width: f64,
    pub runs: usize,
}

impl MeanInterval {
    pub fn upper(&self) -> f64 {
        self.mean + self.half_width
    }
}

/// Two-sided 97.5% quantiles of Student's t for 1..=30 degrees of freedom.
const T_975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// Mean and 95% interval of the finite values; `None` when there are none.
pub fn mean_interval(values: &[f64]) -> Option<MeanInterval> {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let n = finite.len();
    if n == 0 {
        return None;
    }
    let mean = finite.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Some(MeanInterval {
            mean,
            half_width: 0.0,
            runs: 1,
        });
    }
    let variance = finite.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let t = T_975.get(n - 2).copied().unwrap_or(1.96);
    Some(MeanInterval {
        mean,
        half_width: t * (variance / n as f64).sqrt(),
        runs: n,
    })
}

/// The median of the finite values.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return None;
    }
    finite.sort_by(f64::total_cmp);
    let mid = finite.len() / 2;
    Some(if finite.len().is_multiple_of(2) {
        (finite[mid - 1] + finite[mid]) / 2.0
    } else {
        finite[mid]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_of_three_runs_uses_t_with_two_degrees_of_freedom() {
        let interval = mean_interval(&[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(interval.mean, 2.0);
        // sd = 1, se = 1/√3, t(2) = 4.303
        assert!((interval.half_width - 4.303 / 3f64.sqrt()).abs() < 1e-9);
        assert_eq!(interval.runs, 3);
    }

    #[test]
    fn the_t_quantile_follows_the_number_of_runs() {
        // Two runs: 1 degree of freedom, t = 12.706; five runs: 4, t = 2.776; beyond the table
        // the normal quantile.
        let two = mean_interval(&[1.0, 3.0]).unwrap();
        assert!((two.half_width - 12.706).abs() < 1e-9, "sd √2, se 1");
        let five = mean_interval(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        let sd = 2.5f64.sqrt();
        assert!((five.half_width - 2.776 * sd / 5f64.sqrt()).abs() < 1e-9);
        let many: Vec<f64> = (0..40).map(f64::from).collect();
        let interval = mean_interval(&many).unwrap();
        let sd = (many.iter().map(|v| (v - 19.5).powi(2)).sum::<f64>() / 39.0).sqrt();
        assert!((interval.half_width - 1.96 * sd / 40f64.sqrt()).abs() < 1e-9);
        assert!((interval.upper() - (19.5 + interval.half_width)).abs() < 1e-12);
    }

    #[test]
    fn non_finite_values_are_ignored_and_empty_is_none() {
        assert_eq!(mean_interval(&[f64::NAN]), None);
        let single = mean_interval(&[f64::INFINITY, 5.0]).unwrap();
        assert_eq!((single.mean, single.half_width, single.runs), (5.0, 0.0, 1));
        assert_eq!(median(&[3.0, 1.0, 2.0, f64::NAN]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0]), Some(2.5));
    }
}
