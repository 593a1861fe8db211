//! The tasks of Rumelhart, Hinton & Williams (1986), "Learning representations by
//! back-propagating errors" and its PDP chapter: XOR, the 8-3-8 encoder and symmetry.
//! Each returns every pattern (the papers trained on the full set).

/// (inputs, targets), one row per pattern.
pub struct Task {
    pub name: &'static str,
    pub inputs: Vec<Vec<f32>>,
    pub targets: Vec<Vec<f32>>,
}

impl Task {
    pub fn n_in(&self) -> usize {
        self.inputs[0].len()
    }
    pub fn n_out(&self) -> usize {
        self.targets[0].len()
    }
}

pub fn xor() -> Task {
    let inputs = vec![vec![0., 0.], vec![0., 1.], vec![1., 0.], vec![1., 1.]];
    let targets = vec![vec![0.], vec![1.], vec![1.], vec![0.]];
    Task { name: "xor", inputs, targets }
}

/// 8 one-hot patterns to be reproduced through a 3-unit bottleneck.
pub fn encoder() -> Task {
    let inputs: Vec<Vec<f32>> = (0..8).map(|i| (0..8).map(|j| (i == j) as u8 as f32).collect()).collect();
    Task { name: "encoder", targets: inputs.clone(), inputs }
}

/// All 64 binary vectors of length 6; target 1 when the vector is symmetric about its centre.
pub fn symmetry() -> Task {
    let inputs: Vec<Vec<f32>> = (0..64u32).map(|v| (0..6).map(|b| ((v >> b) & 1) as f32).collect()).collect();
    let targets = inputs.iter().map(|x| vec![(x[0] == x[5] && x[1] == x[4] && x[2] == x[3]) as u8 as f32]).collect();
    Task { name: "symmetry", inputs, targets }
}

pub fn by_name(name: &str) -> Option<Task> {
    match name {
        "xor" => Some(xor()),
        "encoder" => Some(encoder()),
        "symmetry" => Some(symmetry()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn symmetry_has_eight_symmetric_patterns_and_xor_is_balanced() {
        let s = symmetry();
        assert_eq!(s.inputs.len(), 64);
        assert_eq!(s.targets.iter().filter(|t| t[0] == 1.0).count(), 8);
        assert_eq!(xor().targets.iter().filter(|t| t[0] == 1.0).count(), 2);
        assert_eq!(encoder().n_in(), 8);
    }
}
