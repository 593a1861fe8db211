// The epilogue of linear + bias + activation (src/ops/linear.rs): the product z = x·wᵀ is one
// cuBLAS sgemm (launched from src/ops/cuda.rs); these kernels add the bias and apply the
// activation in one pass, and in the backward compute dz = dy ⊙ act'(·) in one pass (the bias
// gradient is then colsum of dz, and dx, dw two more sgemms).
// act: 0 identity, 1 ReLU, 2 GELU (tanh form, z·σ(2u)), 3 GELU (erf form), 4 LeakyReLU with
// `slope` in [0, 1] (checked on the host). ReLU, LeakyReLU and identity work in place on z and
// keep nothing; the GELUs keep z (+ b) for the backward.
#include "common.cuh"

#define SQRT_2_OVER_PI 0.7978846f
#define GELU_C 0.044715f
#define FRAC_1_SQRT_2PI 0.3989423f
#define FRAC_1_SQRT_2 0.70710678f

// (σ(2u), 1 − σ(2u)) with 2u clamped to ±80, as the CPU op.
__device__ __forceinline__ void sigmoid_2u(float u, float* s, float* one_minus_s) {
    const float e = expf(-fminf(fmaxf(2.0f * u, -80.0f), 80.0f));
    *s = 1.0f / (1.0f + e);
    *one_minus_s = e * *s;
}

__device__ __forceinline__ float gelu_tanh(float z) {
    float s, oms;
    sigmoid_2u(SQRT_2_OVER_PI * (z + GELU_C * z * z * z), &s, &oms);
    return z * s;
}

__device__ __forceinline__ float gelu_tanh_grad(float z) {
    const float z2 = z * z;
    float s, oms;
    sigmoid_2u(SQRT_2_OVER_PI * (z + GELU_C * z * z2), &s, &oms);
    const float du = SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_C * z2);
    return s + z * s * oms * 2.0f * du;
}

__device__ __forceinline__ float gelu_erf(float z) { return 0.5f * z * (1.0f + erff(z * FRAC_1_SQRT_2)); }

__device__ __forceinline__ float gelu_erf_grad(float z) {
    return 0.5f * (1.0f + erff(z * FRAC_1_SQRT_2)) + z * expf(-0.5f * z * z) * FRAC_1_SQRT_2PI;
}

// z (N, M) ← z + b (b may be null); y = act(z). For act 0, 1 and 4, y may be z (in place).
extern "C" __global__ void bias_act_f32(float* z, const float* __restrict__ b, float* y, int n, int m, int act,
                                        float slope) {
    const size_t total = (size_t)n * m;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        float v = z[i];
        if (b) v += b[i % m];
        switch (act) {
            case 1: y[i] = v < 0.0f ? 0.0f : v; break;  // NaN stays NaN
            case 2: z[i] = v; y[i] = gelu_tanh(v); break;
            case 3: z[i] = v; y[i] = gelu_erf(v); break;
            case 4: y[i] = v < 0.0f ? v * slope : v; break;
            default: y[i] = v;
        }
    }
}

// dz = dy ⊙ act'(·): aux is y for (Leaky)ReLU (y > 0 ⇔ z > 0, the negative side's slope at 0),
// z for the GELUs.
extern "C" __global__ void act_grad_f32(const float* __restrict__ dy, const float* __restrict__ aux,
                                        float* __restrict__ dz, int n, int m, int act, float slope) {
    const size_t total = (size_t)n * m;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const float d = dy[i];
        switch (act) {
            case 1: dz[i] = aux[i] > 0.0f ? d : 0.0f; break;
            case 2: dz[i] = d * gelu_tanh_grad(aux[i]); break;
            case 3: dz[i] = d * gelu_erf_grad(aux[i]); break;
            case 4: dz[i] = aux[i] > 0.0f ? d : slope * d; break;
            default: dz[i] = d;
        }
    }
}
