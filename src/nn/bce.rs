//! Binary cross-entropy on logits, for multi-label outputs (each output an independent yes/no,
//! e.g. "may this symbol come next"). Composed of candle ops that all have a backward.

use candle_core::{Result, Tensor};

/// Mean binary cross-entropy of logits z against targets y in {0, 1}, elementwise:
/// softplus(z) − y·z, with softplus(z) = max(z, 0) + ln(1 + e^(−|z|)) (stable for any z).
pub fn bce_with_logits(z: &Tensor, y: &Tensor) -> Result<Tensor> {
    let softplus = (z.relu()? + ((z.abs()?.neg()?.exp()? + 1.0)?.log()?))?;
    (softplus - (y * z)?)?.mean_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn bce_matches_its_definition_and_is_stable_for_large_logits() -> Result<()> {
        let dev = Device::Cpu;
        let zs = [0.0f32, 2.0, -3.0, 80.0, -80.0];
        let ys = [1.0f32, 0.0, 0.0, 1.0, 1.0];
        let z = candle_core::Var::new(&zs, &dev)?;
        let y = Tensor::new(&ys, &dev)?;
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        // −[y ln σ(z) + (1 − y) ln(1 − σ(z))] per element, by hand; σ(−80) underflows in a naive
        // formula, the loss there is 80
        let want = ((2f64).ln() - (1.0 - sig(2.0)).ln() - (1.0 - sig(-3.0)).ln() + 0.0 + 80.0) / 5.0;
        let loss = bce_with_logits(z.as_tensor(), &y)?;
        let got = loss.to_scalar::<f32>()? as f64;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        // d/dz = (σ(z) − y) / N, the textbook gradient
        let g = loss.backward()?.get(z.as_tensor()).unwrap().to_vec1::<f32>()?;
        for ((&zi, &yi), gi) in zs.iter().zip(&ys).zip(g) {
            let want = (sig(zi as f64) - yi as f64) / 5.0;
            assert!((gi as f64 - want).abs() < 1e-6, "z {zi}: {gi} vs {want}");
        }
        Ok(())
    }
}
