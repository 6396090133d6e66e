/*
 * The emulated kernels (emulatedKernels.cpp: the real inhomogeneousSampleKernel.cu on emulated CUDA threads) against
 * the host build of the kernel math (inhomogeneousSampleHost.cpp), as one executable for the sanitizers.
 * tests/test_kernel_emulation.py builds it with ThreadSanitizer and with AddressSanitizer + UndefinedBehaviorSanitizer:
 *
 *   g++ -std=c++20 -g -O1 -pthread -fsanitize=thread -I plugins/tests/emulation -I plugins -I plugins/tests \
 *       plugins/tests/kernelEmulationCheck.cpp plugins/tests/emulatedKernels.cpp \
 *       plugins/inhomogeneousSampleCApi.cpp plugins/inhomogeneousSampleHost.cpp -o kernelEmulationCheck
 *   ./kernelEmulationCheck [--quick]
 *
 * Shapes: odd sizes, C = 1, N = 0, the smallest grid, g = 63 at pad 30 (the shared-memory limit: 3969 cells on 1024
 * threads, so every thread loops). `--quick` (for ThreadSanitizer, which makes each of the 1024 threads costly) runs
 * only g = 63 on a small image: both barriers, every shared-memory access pattern (the strided loops included) and
 * two sample blocks, for fp32 and fp16. Output and workspace are poisoned with NaN before each launch. fp32 must be
 * within 1e-5 of the host math, fp16 within 2e-3 (image range 1) of the host math on the half-rounded image. Exit
 * status: number of failed checks (0 = pass).
 */
#include "inhomogeneousSampleKernel.h"
#include "sampleTestInputs.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

extern "C" int32_t frptHostCoarseGrid(frpt::SampleParams params, float const* saliency, float* grid);
extern "C" int32_t frptHostSampleImage(frpt::SampleParams params, float const* image, float const* grid, float* output);

namespace
{

int32_t gFailures{0};

template <typename T>
void checkShape(frpt::SampleParams const& p, float tolerance)
{
    bool const half = sizeof(T) == 2;
    std::mt19937 rng(static_cast<uint32_t>(p.n * 131 + p.g * 7 + p.c));
    std::vector<float> image = frptTest::smoothImage(p.n, p.c, p.h, p.w, rng);
    std::vector<float> const sal = frptTest::peakedSaliency(p.n, p.g, rng);
    std::vector<T> imageT(image.begin(), image.end());
    for (size_t i = 0; i < image.size(); ++i)
    {
        image[i] = static_cast<float>(imageT[i]); // the host math sees the values the kernel sees
    }
    size_t const outCount = static_cast<size_t>(p.n) * static_cast<size_t>(p.c) * static_cast<size_t>(p.outH)
        * static_cast<size_t>(p.outW);
    float const nan = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> grid(static_cast<size_t>(p.n) * static_cast<size_t>(p.g * p.g * 2));
    std::vector<float> expected(outCount);
    frptHostCoarseGrid(p, sal.data(), grid.data());
    frptHostSampleImage(p, image.data(), grid.data(), expected.data());

    std::vector<T> out(outCount, static_cast<T>(nan));
    std::vector<float> workspace(frpt::inhomogeneousSampleWorkspaceSize(p.n, p.g) / sizeof(float) + 1, nan);
    cudaError_t const status
        = frpt::launchInhomogeneousSample(p, imageT.data(), sal.data(), workspace.data(), out.data(), nullptr);
    double maxDiff = status == cudaSuccess ? 0.0 : INFINITY;
    for (size_t i = 0; i < outCount; ++i)
    {
        double const d = std::fabs(static_cast<double>(static_cast<float>(out[i])) - expected[i]);
        maxDiff = std::isnan(d) ? INFINITY : std::max(maxDiff, d);
    }
    bool const ok = maxDiff <= tolerance;
    gFailures += ok ? 0 : 1;
    std::printf("%s %s N=%d C=%d %dx%d -> %dx%d g=%d pad=%d: status %d, max |diff| vs host math %.3g <= %.3g\n",
        ok ? "PASS" : "FAIL", half ? "half" : "float", p.n, p.c, p.h, p.w, p.outH, p.outW, p.g, p.pad,
        static_cast<int32_t>(status), maxDiff, static_cast<double>(tolerance));
}

void checkEmptyBatch()
{
    frpt::SampleParams const p{0, 3, 8, 8, 4, 8, 8, 1, 2.F};
    float out = std::numeric_limits<float>::quiet_NaN();
    cudaError_t const status = frpt::launchInhomogeneousSample<float>(p, nullptr, nullptr, nullptr, &out, nullptr);
    bool const ok = status == cudaSuccess && std::isnan(out);
    gFailures += ok ? 0 : 1;
    std::printf("%s N=0: status %d, nothing launched or written\n", ok ? "PASS" : "FAIL", static_cast<int32_t>(status));
}

} // namespace

int main(int argc, char** argv)
{
    bool const quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
    std::vector<frpt::SampleParams> const shapes = quick
        ? std::vector<frpt::SampleParams>{{1, 2, 9, 11, 63, 17, 19, 30, 13.F}}
        : std::vector<frpt::SampleParams>{
              {3, 1, 97, 131, 17, 64, 48, 8, 13.F}, // odd sizes, C = 1
              {2, 3, 45, 33, 63, 50, 70, 30, 13.F}, // g at the shared-memory limit
              {1, 2, 5, 7, 2, 3, 9, 0, 1.F},        // smallest grid, no padding
              {1, 1, 16, 16, 32, 17, 15, 0, 3.F},   // one cell per thread (g^2 = 1024)
          };
    for (frpt::SampleParams const& p : shapes)
    {
        checkShape<float>(p, 1e-5F);
        checkShape<__half>(p, 2e-3F);
    }
    checkEmptyBatch();
    std::printf("%s: %d failed check(s)\n", gFailures == 0 ? "PASSED" : "FAILED", gFailures);
    return gFailures;
}
