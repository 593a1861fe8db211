// Fused optimizer updates (src/ops/optim.rs), in place, one pass per parameter: Adam/AdamW,
// SGD, momentum/Nesterov, and the EMA of the weights. The arithmetic is the CPU op's, in the same
// order and with the same roundings: every product and sum is an explicit round-to-nearest
// intrinsic, so nvcc fuses nothing into an FMA, and `+ 0.0f` is kept where candle's affine adds
// it (it turns −0 into +0). The CPU op is itself bitwise equal to the engine's composed update,
// so the GPU update is expected to be bitwise equal to both.
#include "common.cuh"

#define MUL __fmul_rn
#define ADD __fadd_rn
#define SUB __fsub_rn

// flags: bit 0 l2 (Adam's decay added to g), bit 1 decoupled (AdamW), bit 2 first step (no
// moments yet: m = (1 − β1)·g).
extern "C" __global__ void adamw_f32(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ m,
                                     float* __restrict__ v, size_t n, float wd, float b1, float c1, float b2,
                                     float c2, float bc1, float bc2, float eps, float lr, float lr_wd, int flags) {
    const bool l2 = flags & 1, decoupled = flags & 2, first = flags & 4;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float wi = w[i];
        float gi = g[i];
        if (l2) gi = ADD(gi, ADD(MUL(wi, wd), 0.0f));
        const float mg = ADD(MUL(gi, c1), 0.0f);
        const float mi = first ? mg : ADD(ADD(MUL(m[i], b1), 0.0f), mg);
        const float vg = ADD(MUL(MUL(gi, gi), c2), 0.0f);
        const float vi = first ? vg : ADD(ADD(MUL(v[i], b2), 0.0f), vg);
        m[i] = mi;
        v[i] = vi;
        const float mhat = ADD(MUL(mi, bc1), 0.0f);
        const float vhat = ADD(MUL(vi, bc2), 0.0f);
        const float u = __fdiv_rn(mhat, ADD(__fsqrt_rn(vhat), eps));
        float next = SUB(wi, ADD(MUL(u, lr), 0.0f));
        if (decoupled) next = SUB(next, ADD(MUL(wi, lr_wd), 0.0f));
        w[i] = next;
    }
}

// Plain SGD (buf null) or PyTorch momentum (b ← μ·b + g, first b = g), Nesterov's form with
// bit 1. flags: bit 0 l2, bit 1 nesterov, bit 2 first.
extern "C" __global__ void sgd_f32(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ buf,
                                   size_t n, float wd, float mu, float lr, int flags) {
    const bool l2 = flags & 1, nesterov = flags & 2, first = flags & 4;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float wi = w[i];
        const float gi = l2 ? ADD(g[i], ADD(MUL(wi, wd), 0.0f)) : g[i];
        if (!buf) {
            w[i] = SUB(wi, ADD(MUL(gi, lr), 0.0f));
            continue;
        }
        const float bi = first ? gi : ADD(ADD(MUL(buf[i], mu), 0.0f), gi);
        buf[i] = bi;
        const float u = nesterov ? ADD(gi, ADD(MUL(bi, mu), 0.0f)) : bi;
        w[i] = SUB(wi, ADD(MUL(u, lr), 0.0f));
    }
}

// e ← d·e + c·w with c = 1 − d (rounded to f32 on the host, as on the CPU).
extern "C" __global__ void ema_f32(float* __restrict__ e, const float* __restrict__ w, size_t n, float d, float c) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        e[i] = ADD(MUL(d, e[i]), MUL(c, w[i]));
}
