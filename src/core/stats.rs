//! Summary statistics for repeated runs: mean and a 95% confidence interval (Student's t), and
//! the paired tests a claim rests on — Student's paired t-test, Wilcoxon's signed-rank test
//! (exact) and Holm's correction over a family of tests.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

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

/// Which direction of a metric is an improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Higher,
    Lower,
}

/// A paired comparison: the differences `program − comparator` over runs that shared a
/// training seed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedTest {
    /// Pairs in which both sides finished.
    pub n: usize,
    /// Mean difference, program − comparator, in the metric's own units.
    pub delta: f64,
    /// The 95% interval of the mean difference (Student's t with n − 1 degrees of freedom).
    pub low: f64,
    pub high: f64,
    /// Cohen's d_z: the mean difference over the differences' standard deviation, signed so
    /// that positive is an improvement; `None` when every difference is the same.
    pub effect_size: Option<f64>,
    /// Whether the mean difference is an improvement.
    pub improves: bool,
    /// Two-sided p of the paired t-test (the 95% interval excludes 0 exactly when p < 0.05).
    pub p: f64,
    /// Two-sided p of Wilcoxon's signed-rank test (exact up to 20 non-zero pairs). With n pairs
    /// it is never below 2¹⁻ⁿ: 0.25 for three seeds.
    pub wilcoxon_p: f64,
}

/// Pairs with a non-finite side are dropped; at least two pairs are needed (one difference has
/// no spread to test against).
pub fn paired(pairs: &[(f64, f64)], better: Better) -> Option<PairedTest> {
    let differences: Vec<f64> = pairs
        .iter()
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .map(|(a, b)| a - b)
        .collect();
    let n = differences.len();
    if n < 2 {
        return None;
    }
    let sign = match better {
        Better::Higher => 1.0,
        Better::Lower => -1.0,
    };
    let delta = differences.iter().sum::<f64>() / n as f64;
    let variance = differences.iter().map(|d| (d - delta).powi(2)).sum::<f64>() / (n - 1) as f64;
    let sd = variance.sqrt();
    let df = (n - 1) as f64;
    let t_dist = StudentsT::new(0.0, 1.0, df).ok()?;
    let half_width = t_dist.inverse_cdf(0.975) * sd / (n as f64).sqrt();
    // Differences equal to rounding are no spread: the test then rests on the sign alone.
    let spread = sd > 1e-12 * delta.abs().max(1e-300);
    let (effect_size, p) = if spread {
        let t = delta / (sd / (n as f64).sqrt());
        (
            Some(sign * delta / sd),
            (2.0 * (1.0 - t_dist.cdf(t.abs()))).min(1.0),
        )
    } else if delta != 0.0 {
        (None, 0.0)
    } else {
        (None, 1.0)
    };
    Some(PairedTest {
        n,
        delta,
        low: delta - half_width,
        high: delta + half_width,
        effect_size,
        improves: sign * delta > 0.0,
        p,
        wilcoxon_p: signed_rank_p(&differences),
    })
}

/// Most non-zero differences whose signed-rank distribution is enumerated exactly.
const EXACT_SIGNED_RANK: usize = 20;

/// Two-sided p of Wilcoxon's signed-rank test: zeros are dropped, tied magnitudes share their
/// mean rank, and the null distribution is the 2ⁿ equally likely sign patterns (a normal
/// approximation with continuity correction beyond [`EXACT_SIGNED_RANK`]).
fn signed_rank_p(differences: &[f64]) -> f64 {
    let nonzero: Vec<f64> = differences.iter().copied().filter(|d| *d != 0.0).collect();
    let n = nonzero.len();
    if n == 0 {
        return 1.0;
    }
    let ranks = mid_ranks(&nonzero.iter().map(|d| d.abs()).collect::<Vec<_>>());
    let observed: f64 = nonzero
        .iter()
        .zip(&ranks)
        .filter(|(d, _)| **d > 0.0)
        .map(|(_, r)| r)
        .sum();
    if n <= EXACT_SIGNED_RANK {
        let (mut at_least, mut at_most) = (0u32, 0u32);
        for pattern in 0u32..1 << n {
            let sum: f64 = (0..n)
                .filter(|i| pattern & (1 << i) != 0)
                .map(|i| ranks[i])
                .sum();
            at_least += u32::from(sum >= observed - 1e-9);
            at_most += u32::from(sum <= observed + 1e-9);
        }
        let tail = f64::from(at_least.min(at_most)) / f64::from(1u32 << n);
        return (2.0 * tail).min(1.0);
    }
    let mean = ranks.iter().sum::<f64>() / 2.0;
    let sd = (ranks.iter().map(|r| r * r).sum::<f64>() / 4.0).sqrt();
    let z = ((observed - mean).abs() - 0.5).max(0.0) / sd;
    (2.0 * (1.0 - Normal::standard().cdf(z))).min(1.0)
}

/// Each value's rank (1 for the smallest), tied values sharing their mean rank.
fn mid_ranks(values: &[f64]) -> Vec<f64> {
    let n = values.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|a, b| values[*a].total_cmp(&values[*b]));
    let mut ranks = vec![0.0; n];
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let mean_rank = (start + end + 1) as f64 / 2.0;
        for &index in &order[start..end] {
            ranks[index] = mean_rank;
        }
        start = end;
    }
    ranks
}

/// Most pairs whose Spearman p is computed exactly, over every ordering (8! = 40,320).
const EXACT_SPEARMAN: usize = 8;

/// Spearman's rank correlation of paired values, and its two-sided p (exact over every
/// ordering up to [`EXACT_SPEARMAN`] pairs, beyond that the t approximation with n − 2
/// degrees of freedom).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RankCorrelation {
    pub n: usize,
    pub rho: f64,
    pub p: f64,
}

/// Spearman's ρ: Pearson's correlation of the mid-ranks. Pairs with a non-finite side are
/// dropped; `None` below three pairs or when either side has no spread.
pub fn spearman(pairs: &[(f64, f64)]) -> Option<RankCorrelation> {
    let finite: Vec<(f64, f64)> = pairs
        .iter()
        .copied()
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .collect();
    let n = finite.len();
    if n < 3 {
        return None;
    }
    let x = mid_ranks(&finite.iter().map(|p| p.0).collect::<Vec<_>>());
    let y = mid_ranks(&finite.iter().map(|p| p.1).collect::<Vec<_>>());
    let mean = (n as f64 + 1.0) / 2.0;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(&y) {
        sxy += (a - mean) * (b - mean);
        sxx += (a - mean).powi(2);
        syy += (b - mean).powi(2);
    }
    if sxx == 0.0 || syy == 0.0 {
        return None;
    }
    let rho = (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0);
    let p = if n <= EXACT_SPEARMAN {
        // Every ordering of one side is equally likely under no association: count those at
        // least as correlated (Heap's algorithm over the y ranks).
        let (mut y, mut counter) = (y.clone(), vec![0usize; n]);
        let rho_of = |y: &[f64]| {
            let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mean) * (b - mean)).sum();
            sxy / (sxx * syy).sqrt()
        };
        let (mut extreme, mut total) = (u32::from(rho_of(&y).abs() >= rho.abs() - 1e-9), 1u32);
        let mut i = 0;
        while i < n {
            if counter[i] < i {
                y.swap(if i % 2 == 0 { 0 } else { counter[i] }, i);
                extreme += u32::from(rho_of(&y).abs() >= rho.abs() - 1e-9);
                total += 1;
                counter[i] += 1;
                i = 0;
            } else {
                counter[i] = 0;
                i += 1;
            }
        }
        f64::from(extreme) / f64::from(total)
    } else {
        let df = (n - 2) as f64;
        let t = rho * (df / (1.0 - rho * rho).max(1e-300)).sqrt();
        let dist = StudentsT::new(0.0, 1.0, df).ok()?;
        (2.0 * (1.0 - dist.cdf(t.abs()))).min(1.0)
    };
    Some(RankCorrelation { n, rho, p })
}

/// Holm's step-down adjustment of a family of p-values, in the order given: the k-th smallest
/// is multiplied by (m − k + 1), and adjusted values never decrease along that order.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|a, b| p[*a].total_cmp(&p[*b]).then(a.cmp(b)));
    let mut adjusted = vec![1.0; m];
    let mut running: f64 = 0.0;
    for (k, index) in order.into_iter().enumerate() {
        running = running.max(((m - k) as f64 * p[index]).min(1.0));
        adjusted[index] = running;
    }
    adjusted
}

/// The sample standard deviation of the finite values; `None` below two.
pub fn standard_deviation(values: &[f64]) -> Option<f64> {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let n = finite.len();
    if n < 2 {
        return None;
    }
    let mean = finite.iter().sum::<f64>() / n as f64;
    Some((finite.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt())
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

    fn close(got: f64, expected: f64, tolerance: f64) {
        assert!((got - expected).abs() < tolerance, "{got} vs {expected}");
    }

    #[test]
    fn the_paired_t_test_matches_scipy() {
        // scipy.stats.ttest_rel([1.1, 1.3, 1.2, 1.6], [1.0, 1.0, 1.1, 1.2]): t = 3.0,
        // p = 0.057669 (two-sided); the 95% interval of the mean difference
        // 0.225 ± 3.1824 · 0.15 / 2 reaches just below 0.
        let pairs = [(1.1, 1.0), (1.3, 1.0), (1.2, 1.1), (1.6, 1.2)];
        let test = paired(&pairs, Better::Higher).unwrap();
        assert_eq!(test.n, 4);
        close(test.delta, 0.225, 1e-12);
        close(test.p, 0.057_668_9, 1e-6);
        assert!(test.improves && test.low < 0.0 && test.high > 0.0);
        let sd = 0.15;
        close(test.high - test.delta, 3.182_446 * sd / 2.0, 1e-5);
        close(test.effect_size.unwrap(), 0.225 / sd, 1e-9);
        // Lower is better: the same differences are a loss, with the same p.
        let worse = paired(&pairs, Better::Lower).unwrap();
        close(worse.p, test.p, 1e-12);
        assert!(!worse.improves);
        close(worse.effect_size.unwrap(), -0.225 / sd, 1e-9);
    }

    #[test]
    fn the_pairing_is_what_is_tested_not_the_spread_of_either_side() {
        // Seeds move both sides by ±1, the program is 0.01 better on each: unpaired, the
        // intervals overlap entirely; paired, the difference is certain.
        let pairs = [(0.99, 1.0), (1.99, 2.0), (2.99, 3.0)];
        let test = paired(&pairs, Better::Lower).unwrap();
        assert!(test.p < 1e-6, "{test:?}");
        assert!(mean_interval(&[0.99, 1.99, 2.99]).unwrap().upper() > 2.0);
    }

    #[test]
    fn equal_differences_rest_on_their_sign_and_identical_runs_are_no_evidence() {
        let same = paired(&[(1.0, 1.0), (2.0, 2.0), (3.0, 3.0)], Better::Lower).unwrap();
        assert_eq!(
            (same.p, same.wilcoxon_p, same.effect_size),
            (1.0, 1.0, None)
        );
        assert!(!same.improves);
        let shifted = paired(&[(0.9, 1.0), (1.9, 2.0), (2.9, 3.0)], Better::Lower).unwrap();
        assert_eq!(shifted.p, 0.0);
        assert!(shifted.improves);
        let up = paired(&[(1.1, 1.0), (2.1, 2.0)], Better::Lower).unwrap();
        assert_eq!(up.p, 0.0);
        assert!(!up.improves);
        assert_eq!(paired(&[(1.0, 2.0), (f64::NAN, 1.0)], Better::Lower), None);
    }

    #[test]
    fn wilcoxon_with_three_seeds_cannot_go_below_one_quarter() {
        let test = paired(&[(2.0, 1.0), (3.0, 1.0), (4.0, 1.5)], Better::Higher).unwrap();
        assert_eq!(test.wilcoxon_p, 0.25);
        // scipy.stats.wilcoxon([0.5, -0.2, 0.9, 1.4, 0.3], method="exact"): W+ = 14 of 15,
        // p = 2 · 2/32 = 0.125.
        let differences = [0.5, -0.2, 0.9, 1.4, 0.3];
        let pairs: Vec<(f64, f64)> = differences.iter().map(|d| (*d, 0.0)).collect();
        close(
            paired(&pairs, Better::Higher).unwrap().wilcoxon_p,
            0.125,
            1e-12,
        );
        // Ties share ranks: |d| = 1, 1, 2 have ranks 1.5, 1.5, 3; W+ = 4.5 (the −1 is out);
        // patterns with a sum ≥ 4.5: {3, 1.5}×2 and {3, 1.5, 1.5}, 3 of 8; p = 2 · 3/8.
        let tied = [(1.0, 0.0), (-1.0, 0.0), (2.0, 0.0)];
        close(
            paired(&tied, Better::Higher).unwrap().wilcoxon_p,
            0.75,
            1e-12,
        );
    }

    #[test]
    fn wilcoxon_beyond_the_exact_range_uses_the_normal_approximation() {
        // 25 positive differences: W+ = 325, mean 162.5, sd √(25·26·51/24) = 37.165; z =
        // (325 − 0.5 − 162.5) / 37.165 = 4.359; scipy's p (approx, corrected) 1.3071e-5.
        let pairs: Vec<(f64, f64)> = (1..=25).map(|i| (f64::from(i), 0.0)).collect();
        close(
            paired(&pairs, Better::Higher).unwrap().wilcoxon_p,
            1.3071e-5,
            2e-8,
        );
    }

    #[test]
    fn holm_multiplies_the_k_th_smallest_by_m_minus_k_plus_one_and_stays_monotone() {
        // statsmodels multipletests([0.01, 0.04, 0.03, 0.005], method="holm"):
        // [0.03, 0.06, 0.06, 0.02].
        let adjusted = holm(&[0.01, 0.04, 0.03, 0.005]);
        for (got, expected) in adjusted.iter().zip([0.03, 0.06, 0.06, 0.02]) {
            close(*got, expected, 1e-12);
        }
        assert_eq!(holm(&[0.6, 0.9]), vec![1.0, 1.0]);
        assert!(holm(&[]).is_empty());
        // A growing family never lowers an adjusted p.
        let before = holm(&[0.02, 0.01]);
        let after = holm(&[0.02, 0.01, 0.03]);
        assert!(after[0] >= before[0] && after[1] >= before[1]);
    }

    #[test]
    fn standard_deviation_needs_two_finite_values() {
        assert_eq!(standard_deviation(&[1.0, f64::NAN]), None);
        close(standard_deviation(&[1.0, 2.0, 3.0]).unwrap(), 1.0, 1e-12);
    }

    #[test]
    fn spearman_ranks_ties_and_counts_orderings_exactly() {
        // A perfect order of four: ρ 1, and 2 of the 24 orderings are as extreme.
        let perfect = spearman(&[(1.0, 10.0), (2.0, 20.0), (3.0, 25.0), (4.0, 90.0)]).unwrap();
        assert_eq!((perfect.n, perfect.rho), (4, 1.0));
        assert!((perfect.p - 2.0 / 24.0).abs() < 1e-12, "{perfect:?}");
        // Reversed: −1, same p.
        let reversed = spearman(&[(1.0, 4.0), (2.0, 3.0), (3.0, 2.0), (4.0, 1.0)]).unwrap();
        assert_eq!(reversed.rho, -1.0);
        // Σd² = 2 over five: ρ = 1 − 6·2/(5·24) = 0.9.
        let near = spearman(&[(1.0, 2.0), (2.0, 1.0), (3.0, 3.0), (4.0, 4.0), (5.0, 5.0)]).unwrap();
        assert!((near.rho - 0.9).abs() < 1e-12, "{near:?}");
        // |ρ| ≥ 0.9 means Σd² ≤ 2 or ≥ 38: the identity and its 4 adjacent swaps, and their 5
        // reversals, so 10 of the 120 orderings.
        assert!((near.p - 10.0 / 120.0).abs() < 1e-12, "{near:?}");
        // Ties share their mean rank: x = [1, 1, 2] ranks [1.5, 1.5, 3].
        let tied = spearman(&[(1.0, 1.0), (1.0, 2.0), (2.0, 3.0)]).unwrap();
        assert!(
            (tied.rho - 0.866_025_403_784_438_6).abs() < 1e-12,
            "{tied:?}"
        );
        // Too few pairs, or no spread on one side, give nothing.
        assert!(spearman(&[(1.0, 1.0), (2.0, 2.0)]).is_none());
        assert!(spearman(&[(1.0, 5.0), (2.0, 5.0), (3.0, 5.0)]).is_none());
        // Beyond the exact limit the t approximation: a strong positive order is significant.
        let many: Vec<(f64, f64)> = (0..20)
            .map(|i| (i as f64, (i as f64) + if i % 3 == 0 { 2.5 } else { 0.0 }))
            .collect();
        let large = spearman(&many).unwrap();
        assert!(large.rho > 0.9 && large.p < 1e-4, "{large:?}");
    }
}
