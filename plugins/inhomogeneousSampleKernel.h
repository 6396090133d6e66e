/*
 * CUDA kernels of FRPT's inhomogeneous sampling (docs/design.md §4) behind a small API with no TensorRT types.
 *
 * Two launches on the caller's stream, no allocation, no synchronisation:
 *   1. coarse grid: saliency [N, 1, g, g] fp32 -> grid [N, g, g, 2] fp32 (one block per image; replication pad,
 *      separable Gaussian in shared memory, normalised + clamped (gx, gy));
 *   2. fused sample: per output pixel, bilinear (align_corners=False) upsampling of the grid and bilinear
 *      grid_sample (align_corners=True, zeros padding) of all C channels of image [N, C, H, W] (float or __half)
 *      into output [N, C, outH, outW] of the same type; fp32 math, each pixel's footprint computed once.
 * The grid lives in a caller-provided workspace of `inhomogeneousSampleWorkspaceSize` bytes.
 */
#ifndef FRPT_INHOMOGENEOUS_SAMPLE_KERNEL_H
#define FRPT_INHOMOGENEOUS_SAMPLE_KERNEL_H

#include "inhomogeneousSampleMath.h"

#include <cstddef>
#include <cstdint>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace frpt
{

//! Bytes of workspace for the coarse grid of `n` images on a g x g lattice ([n, g, g, 2] fp32, 256-byte multiple).
size_t inhomogeneousSampleWorkspaceSize(int32_t n, int32_t g) noexcept;

//! Launch the coarse-grid kernel: saliency [n, 1, g, g] fp32 -> grid [n, g, g, 2] fp32.
//! Returns cudaErrorInvalidValue when `params` is invalid (see isValid), else the launch status.
cudaError_t launchCoarseGrid(
    SampleParams const& params, float const* saliency, float* grid, cudaStream_t stream) noexcept;

//! Launch the fused sample kernel: image [n, c, h, w] + grid [n, g, g, 2] -> output [n, c, outH, outW].
template <typename T>
cudaError_t launchSampleImage(
    SampleParams const& params, T const* image, float const* grid, T* output, cudaStream_t stream) noexcept;

//! Both launches; `workspace` must hold inhomogeneousSampleWorkspaceSize(n, g) bytes.
template <typename T>
cudaError_t launchInhomogeneousSample(SampleParams const& params, T const* image, float const* saliency,
    void* workspace, T* output, cudaStream_t stream) noexcept;

extern template cudaError_t launchSampleImage<float>(
    SampleParams const&, float const*, float const*, float*, cudaStream_t) noexcept;
extern template cudaError_t launchSampleImage<__half>(
    SampleParams const&, __half const*, float const*, __half*, cudaStream_t) noexcept;
extern template cudaError_t launchInhomogeneousSample<float>(
    SampleParams const&, float const*, float const*, void*, float*, cudaStream_t) noexcept;
extern template cudaError_t launchInhomogeneousSample<__half>(
    SampleParams const&, __half const*, float const*, void*, __half*, cudaStream_t) noexcept;

} // namespace frpt

//! C ABI of libfrpt_sampler_kernels.so for ctypes (tests, benchmarks), defined in inhomogeneousSampleCApi.cpp, which
//! only that library links (libfrpt_plugins.so exports none of it). `isHalf` selects __half image/output.
extern "C"
{
    size_t frptSampleWorkspaceSize(int32_t n, int32_t g);
    int32_t frptLaunchCoarseGrid(frpt::SampleParams params, float const* saliency, float* grid, cudaStream_t stream);
    int32_t frptLaunchSampleImage(frpt::SampleParams params, int32_t isHalf, void const* image, float const* grid,
        void* output, cudaStream_t stream);
    int32_t frptLaunchInhomogeneousSample(frpt::SampleParams params, int32_t isHalf, void const* image,
        float const* saliency, void* workspace, void* output, cudaStream_t stream);
}

#endif // FRPT_INHOMOGENEOUS_SAMPLE_KERNEL_H
