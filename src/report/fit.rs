//! Least-squares fits for the studies' analyses: a power law y = a·x^(−α), fitted as a straight
//! line in log–log coordinates (as Kaplan et al. 2020 fit loss against model size).

/// y = a·x^(−alpha), with the coefficient of determination of the line in log–log coordinates.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct PowerLaw {
    pub a: f64,
    /// the exponent: y falls by a factor 2^alpha when x doubles
    pub alpha: f64,
    /// R² of ln y against ln x (1 = every point on the line)
    pub r2: f64,
}

impl PowerLaw {
    pub fn at(&self, x: f64) -> f64 {
        self.a * x.powf(-self.alpha)
    }

    /// "a·X^(−α)" with `x` for X: the exponent's sign as fitted, so a loss that rises with X
    /// reads X^(+0.0123), not X^(−-0.0123).
    pub fn formula(&self, x: &str) -> String {
        let sign = if self.alpha >= 0.0 { '−' } else { '+' };
        format!("{:.3}·{x}^({sign}{:.4})", self.a, self.alpha.abs())
    }
}

/// The least-squares power law through `points` (x, y); None unless there are at least two
/// distinct x and every x and y is positive and finite.
pub fn power_law(points: &[(f64, f64)]) -> Option<PowerLaw> {
    if points.iter().any(|&(x, y)| !(x > 0.0 && y > 0.0 && x.is_finite() && y.is_finite())) {
        return None;
    }
    let n = points.len() as f64;
    let (lx, ly): (Vec<f64>, Vec<f64>) = points.iter().map(|&(x, y)| (x.ln(), y.ln())).unzip();
    let (mx, my) = (lx.iter().sum::<f64>() / n, ly.iter().sum::<f64>() / n);
    let sxx: f64 = lx.iter().map(|x| (x - mx).powi(2)).sum();
    let sxy: f64 = lx.iter().zip(&ly).map(|(x, y)| (x - mx) * (y - my)).sum();
    let syy: f64 = ly.iter().map(|y| (y - my).powi(2)).sum();
    if sxx <= 1e-12 {
        return None;
    }
    let slope = sxy / sxx;
    let r2 = if syy > 0.0 { (sxy * sxy / (sxx * syy)).min(1.0) } else { 1.0 };
    Some(PowerLaw { a: (my - slope * mx).exp(), alpha: -slope, r2 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_an_exact_power_law_and_scores_scatter_below_one() {
        let pts: Vec<(f64, f64)> = [1e3, 1e4, 1e5, 1e6].iter().map(|&x| (x, 7.0 * f64::powf(x, -0.076))).collect();
        let f = power_law(&pts).unwrap();
        assert!((f.alpha - 0.076).abs() < 1e-9 && (f.a - 7.0).abs() < 1e-7 && (f.r2 - 1.0).abs() < 1e-12, "{f:?}");
        assert!((f.at(1e5) - pts[2].1).abs() < 1e-9);
        // a hand example: ln y = 1, 0, 2 at ln x = 0, 1, 2: slope 0.5, R² = 0.25
        let e = std::f64::consts::E;
        let f = power_law(&[(1.0, e), (e, 1.0), (e * e, e * e)]).unwrap();
        assert!((f.alpha + 0.5).abs() < 1e-12 && (f.r2 - 0.25).abs() < 1e-12, "{f:?}");
        // rising data has a negative exponent, and the formula says so with one sign
        let rising = power_law(&[(1.0, 1.0), (2.0, 2.0)]).unwrap();
        assert!(rising.alpha < 0.0);
        assert_eq!(rising.formula("N"), "1.000·N^(+1.0000)");
        assert_eq!(PowerLaw { a: 4.419, alpha: 0.0641, r2: 1.0 }.formula("C"), "4.419·C^(−0.0641)");
    }

    #[test]
    fn needs_two_sizes_and_positive_values() {
        assert!(power_law(&[(5.0, 1.0), (5.0, 2.0)]).is_none());
        assert!(power_law(&[(5.0, 1.0)]).is_none());
        assert!(power_law(&[(1.0, 1.0), (2.0, 0.0)]).is_none());
        assert!(power_law(&[(1.0, 1.0), (2.0, f64::NAN)]).is_none());
    }
}
