//! The Fréchet distance between two Gaussians fitted to feature vectors (Dowson & Landau 1982;
//! as the FID of Heusel et al. 2017, here with the features of a small classifier instead of
//! Inception's):
//!
//!   FD = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁ Σ₂)^{1/2}.
//!
//! tr (Σ₁Σ₂)^{1/2} is computed as tr (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}: the two matrices are similar
//! (Σ₁Σ₂ = Σ₁^{1/2} · [Σ₁^{1/2}Σ₂Σ₁^{1/2}] · Σ₁^{−1/2}), and the second is symmetric positive
//! semi-definite, so both square roots come from nalgebra's symmetric eigendecomposition
//! (eigenvalues that rounding pushes below 0 are taken as 0), in f64.

use nalgebra::{DMatrix, DVector, SymmetricEigen};

/// A Gaussian fit: the mean and the (unbiased) covariance of `d`-dimensional features.
#[derive(Clone, Debug)]
pub struct Gaussian {
    pub mean: DVector<f64>,
    pub cov: DMatrix<f64>,
}

impl Gaussian {
    /// Fits `rows` (n rows of `d` values, row-major): the mean and Σ = Σᵢ (xᵢ − μ)(xᵢ − μ)ᵀ/(n − 1).
    pub fn fit(rows: &[f32], d: usize) -> Self {
        assert!(d > 0 && rows.len().is_multiple_of(d), "{} values are not rows of {d}", rows.len());
        let n = rows.len() / d;
        assert!(n >= 2, "a covariance needs at least 2 rows, got {n}");
        let x = DMatrix::from_row_iterator(n, d, rows.iter().map(|&v| v as f64));
        let mean = DVector::from_iterator(d, x.column_iter().map(|c| c.mean()));
        let mut centred = x;
        for mut row in centred.row_iter_mut() {
            row -= mean.transpose();
        }
        let cov = centred.transpose() * &centred / (n - 1) as f64;
        Self { mean, cov }
    }

    pub fn dim(&self) -> usize {
        self.mean.len()
    }
}

/// The square root of a symmetric positive semi-definite matrix: V·diag(√max(λ, 0))·Vᵀ.
pub fn sqrtm_psd(m: &DMatrix<f64>) -> DMatrix<f64> {
    let sym = (m + m.transpose()) * 0.5; // exactly symmetric for the eigensolver
    let e = SymmetricEigen::new(sym);
    let roots = e.eigenvalues.map(|l| l.max(0.0).sqrt());
    &e.eigenvectors * DMatrix::from_diagonal(&roots) * e.eigenvectors.transpose()
}

/// tr (Σ₁Σ₂)^{1/2} for covariances Σ₁, Σ₂ (symmetric PSD).
pub fn trace_sqrt_product(s1: &DMatrix<f64>, s2: &DMatrix<f64>) -> f64 {
    let r = sqrtm_psd(s1);
    let inner = &r * s2 * &r;
    let sym = (&inner + inner.transpose()) * 0.5;
    SymmetricEigen::new(sym).eigenvalues.iter().map(|&l| l.max(0.0).sqrt()).sum()
}

/// The Fréchet distance between the Gaussians `a` and `b` (never below 0).
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> f64 {
    assert_eq!(a.dim(), b.dim(), "Gaussians of different dimensions");
    let dmu = (&a.mean - &b.mean).norm_squared();
    let fd = dmu + a.cov.trace() + b.cov.trace() - 2.0 * trace_sqrt_product(&a.cov, &b.cov);
    fd.max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn sample(rng: &mut Rng, n: usize, d: usize, shift: f64, scale: f64) -> Vec<f32> {
        // correlated features: x = A z + shift, with a fixed mixing A
        let mut out = Vec::with_capacity(n * d);
        for _ in 0..n {
            let z: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
            for i in 0..d {
                let v: f64 = (0..=i).map(|j| z[j] / (1.0 + (i - j) as f64)).sum();
                out.push((scale * v + shift) as f32);
            }
        }
        out
    }

    #[test]
    fn a_set_against_itself_is_zero_and_a_shifted_set_is_the_shift_squared() {
        let mut rng = Rng::new(1);
        let d = 6;
        let x = sample(&mut rng, 500, d, 0.0, 1.0);
        let g = Gaussian::fit(&x, d);
        assert!(frechet_distance(&g, &g) < 1e-9, "{}", frechet_distance(&g, &g));
        // the same set moved by 0.5 in every feature: Σ unchanged, ‖Δμ‖² = 6 · 0.25
        let shifted: Vec<f32> = x.iter().map(|v| v + 0.5).collect();
        let fd = frechet_distance(&g, &Gaussian::fit(&shifted, d));
        assert!((fd - 1.5).abs() < 1e-4, "{fd}");
        // another draw of the same distribution is close; a wider one is far
        let y = Gaussian::fit(&sample(&mut rng, 500, d, 0.0, 1.0), d);
        let wide = Gaussian::fit(&sample(&mut rng, 500, d, 0.0, 2.0), d);
        let (near, far) = (frechet_distance(&g, &y), frechet_distance(&g, &wide));
        assert!(near < 0.3 && far > 2.0 && far > 10.0 * near, "{near} {far}");
    }

    /// Known cases: diagonal covariances (FD = ‖Δμ‖² + Σ (σ₁ − σ₂)²), and for 2x2 covariances
    /// that do not commute the closed form tr (Σ₁Σ₂)^{1/2} = √(tr Σ₁Σ₂ + 2√(det Σ₁ det Σ₂)) (the
    /// square root of a 2x2 matrix M with positive eigenvalues is (M + √det M · I)/√(tr M + 2√det M)).
    #[test]
    fn known_cases() {
        let g = |mean: &[f64], cov: &[f64]| Gaussian {
            mean: DVector::from_column_slice(mean),
            cov: DMatrix::from_row_slice(mean.len(), mean.len(), cov),
        };
        let a = g(&[1.0, 2.0, 0.0], &[4.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 9.0]);
        let b = g(&[0.0, 0.0, 0.0], &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 4.0]);
        // ‖Δμ‖² = 5; (2 − 1)² + (1 − 1)² + (3 − 2)² = 2
        assert!((frechet_distance(&a, &b) - 7.0).abs() < 1e-10);
        let (s1, s2) = ([2.0, 0.5, 0.5, 1.0], [1.0, -0.3, -0.3, 3.0]);
        let (m1, m2): (DMatrix<f64>, DMatrix<f64>) =
            (DMatrix::from_row_slice(2, 2, &s1), DMatrix::from_row_slice(2, 2, &s2));
        let p = &m1 * &m2;
        let closed = (p.trace() + 2.0 * (m1.determinant() * m2.determinant()).sqrt()).sqrt();
        assert!((trace_sqrt_product(&m1, &m2) - closed).abs() < 1e-10);
        let r = sqrtm_psd(&m1);
        assert!((&r * &r - &m1).abs().max() < 1e-12);
        let fd = frechet_distance(&g(&[0.0, 1.0], &s1), &g(&[0.0, 0.0], &s2));
        assert!((fd - (1.0 + 3.0 + 4.0 - 2.0 * closed)).abs() < 1e-10, "{fd}");
    }
}
