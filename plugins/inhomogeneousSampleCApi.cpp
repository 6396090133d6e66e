/*
 * C ABI of libfrpt_sampler_kernels.so (declared in inhomogeneousSampleKernel.h) for ctypes: tests, benchmarks and the
 * CPU emulation harness. Only this library links this file, so the plugin library exports none of these symbols; the
 * kernels themselves are built with hidden visibility and reach the outside only through these four functions.
 */
#include "inhomogeneousSampleKernel.h"

extern "C"
{
    __attribute__((visibility("default"))) size_t frptSampleWorkspaceSize(int32_t n, int32_t g)
    {
        return frpt::inhomogeneousSampleWorkspaceSize(n, g);
    }

    __attribute__((visibility("default"))) int32_t frptLaunchCoarseGrid(
        frpt::SampleParams params, float const* saliency, float* grid, cudaStream_t stream)
    {
        return frpt::launchCoarseGrid(params, saliency, grid, stream);
    }

    __attribute__((visibility("default"))) int32_t frptLaunchSampleImage(frpt::SampleParams params, int32_t isHalf,
        void const* image, float const* grid, void* output, cudaStream_t stream)
    {
        return isHalf != 0 ? frpt::launchSampleImage(
                                 params, static_cast<__half const*>(image), grid, static_cast<__half*>(output), stream)
                           : frpt::launchSampleImage(
                                 params, static_cast<float const*>(image), grid, static_cast<float*>(output), stream);
    }

    __attribute__((visibility("default"))) int32_t frptLaunchInhomogeneousSample(frpt::SampleParams params,
        int32_t isHalf, void const* image, float const* saliency, void* workspace, void* output, cudaStream_t stream)
    {
        return isHalf != 0 ? frpt::launchInhomogeneousSample(params, static_cast<__half const*>(image), saliency,
                                 workspace, static_cast<__half*>(output), stream)
                           : frpt::launchInhomogeneousSample(params, static_cast<float const*>(image), saliency,
                                 workspace, static_cast<float*>(output), stream);
    }
}
