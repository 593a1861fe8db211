//! Fused CPU ops with forward AND backward (candle `CustomOp`s). Empty until the speed work
//! lands (see kernels/README.md); the layers in nn/ use composed candle ops meanwhile.
