/*
 * CUDA kernels of FRPT's inhomogeneous sampling; see inhomogeneousSampleKernel.h for the contract and
 * inhomogeneousSampleMath.h for the per-element math they share with the host build.
 *
 * Launches go through cudaLaunchKernelEx (CUDA >= 11.8) rather than `<<<...>>>`: the same launch, written as a
 * plain C++ call, so the CPU emulation harness (plugins/tests/emulation/) can compile these very kernels with a host
 * compiler and run them with emulated threads, barriers and shared memory.
 */
#include "inhomogeneousSampleKernel.h"

#include <cuda_runtime.h>

namespace frpt
{
namespace
{

constexpr int32_t kCOARSE_THREADS{1024};
constexpr int32_t kSAMPLE_THREADS{256};
constexpr size_t kWORKSPACE_ALIGNMENT{256};

//! One block per image (one thread per cell up to g = 32): saliency, both row-pass planes, the taps and the
//! padded-lattice coordinates in shared memory, fp32 throughout.
__global__ void __launch_bounds__(kCOARSE_THREADS) coarseGridKernel(SampleParams p, float const* saliency, float* grid)
{
    extern __shared__ float shared[];
    int32_t const gg = p.g * p.g;
    int32_t const nbTaps = 2 * p.pad + 1;
    float* sal = shared;
    float* h0 = sal + gg;
    float* hx = h0 + gg;
    float* taps = hx + gg;
    float* coords = taps + nbTaps;
    int32_t const first = static_cast<int32_t>(threadIdx.x);
    int32_t const stride = static_cast<int32_t>(blockDim.x);

    float const* src = saliency + static_cast<int64_t>(blockIdx.x) * gg;
    for (int32_t e = first; e < gg; e += stride)
    {
        sal[e] = src[e];
    }
    for (int32_t t = first; t < nbTaps; t += stride)
    {
        taps[t] = gaussianTap(t - p.pad, p.fwhm);
    }
    for (int32_t j = first; j < p.g + 2 * p.pad; j += stride)
    {
        coords[j] = paddedCoordinate(j, p.g, p.pad);
    }
    __syncthreads();

    for (int32_t e = first; e < gg; e += stride)
    {
        blurRowEntry(sal, taps, coords, p.g, p.pad, e / p.g, e % p.g, h0[e], hx[e]);
    }
    __syncthreads();

    float2* dst = reinterpret_cast<float2*>(grid) + static_cast<int64_t>(blockIdx.x) * gg;
    for (int32_t e = first; e < gg; e += stride)
    {
        float2 v;
        blurColumnEntry(h0, hx, taps, coords, p.g, p.pad, e / p.g, e % p.g, v.x, v.y);
        dst[e] = v;
    }
}

//! One thread per output pixel of one image (blockIdx.y): the footprint is computed once and applied to all
//! channels; consecutive threads write consecutive pixels of each channel plane.
template <typename T>
__global__ void __launch_bounds__(kSAMPLE_THREADS) sampleImageKernel(
    SampleParams p, T const* __restrict__ image, float const* __restrict__ grid, T* __restrict__ output)
{
    int32_t const outPlane = p.outH * p.outW;
    int64_t const index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (index >= outPlane)
    {
        return;
    }
    int32_t const pixel = static_cast<int32_t>(index);
    int32_t const y = pixel / p.outW;
    int32_t const x = pixel - y * p.outW;
    int64_t const n = blockIdx.y;

    float gx;
    float gy;
    upsampledGrid(grid + n * 2 * p.g * p.g, p.g, p.outH, p.outW, y, x, gx, gy);
    SamplePoint const footprint = samplePoint(gx, gy, p.h, p.w);

    int64_t const inPlane = static_cast<int64_t>(p.h) * p.w;
    T const* src = image + n * p.c * inPlane;
    T* dst = output + n * p.c * outPlane + pixel;
    for (int32_t c = 0; c < p.c; ++c)
    {
        dst[c * static_cast<int64_t>(outPlane)] = static_cast<T>(interpolate(src + c * inPlane, footprint));
    }
}

//! gridDim.x of the sample kernel: one thread per output pixel, in int64 (out_h * out_w may be 2^31 - 1).
uint32_t sampleImageBlocks(int32_t outH, int32_t outW) noexcept
{
    int64_t const outPlane = static_cast<int64_t>(outH) * outW;
    return static_cast<uint32_t>((outPlane + kSAMPLE_THREADS - 1) / kSAMPLE_THREADS);
}

} // namespace

size_t inhomogeneousSampleWorkspaceSize(int32_t n, int32_t g) noexcept
{
    size_t const bytes = static_cast<size_t>(n) * static_cast<size_t>(g) * static_cast<size_t>(g) * 2 * sizeof(float);
    return (bytes + kWORKSPACE_ALIGNMENT - 1) / kWORKSPACE_ALIGNMENT * kWORKSPACE_ALIGNMENT;
}

cudaError_t launchCoarseGrid(
    SampleParams const& params, float const* saliency, float* grid, cudaStream_t stream) noexcept
{
    if (!isValid(params))
    {
        return cudaErrorInvalidValue;
    }
    if (params.n == 0)
    {
        return cudaSuccess;
    }
    cudaLaunchConfig_t config{};
    config.gridDim = dim3(static_cast<uint32_t>(params.n));
    config.blockDim = dim3(static_cast<uint32_t>(kCOARSE_THREADS));
    config.dynamicSmemBytes = static_cast<size_t>(coarseGridSharedBytes(params.g, params.pad));
    config.stream = stream;
    return cudaLaunchKernelEx(&config, coarseGridKernel, params, saliency, grid);
}

template <typename T>
cudaError_t launchSampleImage(
    SampleParams const& params, T const* image, float const* grid, T* output, cudaStream_t stream) noexcept
{
    if (!isValid(params))
    {
        return cudaErrorInvalidValue;
    }
    if (params.n == 0)
    {
        return cudaSuccess;
    }
    cudaLaunchConfig_t config{};
    config.gridDim = dim3(sampleImageBlocks(params.outH, params.outW), static_cast<uint32_t>(params.n));
    config.blockDim = dim3(static_cast<uint32_t>(kSAMPLE_THREADS));
    config.stream = stream;
    return cudaLaunchKernelEx(&config, sampleImageKernel<T>, params, image, grid, output);
}

template <typename T>
cudaError_t launchInhomogeneousSample(SampleParams const& params, T const* image, float const* saliency,
    void* workspace, T* output, cudaStream_t stream) noexcept
{
    float* grid = static_cast<float*>(workspace);
    cudaError_t const status = launchCoarseGrid(params, saliency, grid, stream);
    return status == cudaSuccess ? launchSampleImage(params, image, grid, output, stream) : status;
}

template cudaError_t launchSampleImage<float>(
    SampleParams const&, float const*, float const*, float*, cudaStream_t) noexcept;
template cudaError_t launchSampleImage<__half>(
    SampleParams const&, __half const*, float const*, __half*, cudaStream_t) noexcept;
template cudaError_t launchInhomogeneousSample<float>(
    SampleParams const&, float const*, float const*, void*, float*, cudaStream_t) noexcept;
template cudaError_t launchInhomogeneousSample<__half>(
    SampleParams const&, __half const*, float const*, void*, __half*, cudaStream_t) noexcept;

} // namespace frpt
