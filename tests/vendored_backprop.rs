//! The vendored candle-core's one change (vendor/candle-core/src/backprop.rs): the backward pass
//! stores a gradient's first contribution as it is instead of adding it to a fresh zero tensor.
//! These tests pin what that must not change: contributions still sum, a stored gradient that
//! two tensors share is never changed through the other, and a contribution that arrives as a
//! strided view is stored contiguous (the fused optimizers read gradients as flat slices).

use candle_core::{Device, Tensor, Var};

fn var(values: &[f32], shape: (usize, usize)) -> Var {
    Var::from_tensor(&Tensor::from_slice(values, shape, &Device::Cpu).unwrap()).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn a_tensor_used_twice_gets_the_sum_of_both_contributions() {
    let x = var(&[1., 2., 3., 4.], (2, 2));
    // d/dx of Σ(2x + 3x) + Σ(x + x) = 5 + 2
    let loss = ((x.affine(2., 0.).unwrap() + x.affine(3., 0.).unwrap()).unwrap().sum_all().unwrap()
        + (x.as_tensor() + x.as_tensor()).unwrap().sum_all().unwrap())
    .unwrap();
    let grads = loss.backward().unwrap();
    assert_eq!(values(grads.get(&x).unwrap()), vec![7.; 4]);
}

#[test]
fn two_tensors_that_share_a_first_gradient_keep_their_own_sums() {
    // x + y hands both the same gradient tensor; x's later contribution must not reach y's
    let x = var(&[1., 2., 3., 4.], (2, 2));
    let y = var(&[5., 6., 7., 8.], (2, 2));
    let loss = ((x.as_tensor() + y.as_tensor()).unwrap().sum_all().unwrap()
        + x.affine(3., 0.).unwrap().sum_all().unwrap())
    .unwrap();
    let grads = loss.backward().unwrap();
    assert_eq!(values(grads.get(&x).unwrap()), vec![4.; 4]);
    assert_eq!(values(grads.get(&y).unwrap()), vec![1.; 4]);
}

#[test]
fn a_gradient_that_arrives_as_a_strided_view_is_stored_contiguous() {
    // the transpose's backward hands x a transposed view of w
    let x = var(&[1., 2., 3., 4., 5., 6.], (2, 3));
    let w = Tensor::from_slice(&[1f32, 2., 3., 4., 5., 6.], (3, 2), &Device::Cpu).unwrap();
    let loss = x.t().unwrap().mul(&w).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let g = grads.get(&x).unwrap();
    assert!(g.is_contiguous(), "the stored gradient has strides {:?}", g.stride());
    assert_eq!(values(g), values(&w.t().unwrap()));
}
