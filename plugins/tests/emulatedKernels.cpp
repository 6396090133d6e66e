/*
 * The real CUDA kernels of inhomogeneousSampleKernel.cu compiled as host C++ for the CPU emulation harness.
 *
 *   g++ -std=c++20 -pthread -I plugins/tests/emulation -I plugins plugins/tests/emulatedKernels.cpp \
 *       plugins/inhomogeneousSampleCApi.cpp ...
 *
 * With plugins/tests/emulation first on the include path, the kernel source's CUDA includes resolve to
 * cudaEmulation.h (threads, barriers, poisoned shared memory, host __half, an emulated cudaLaunchKernelEx), and
 * inhomogeneousSampleCApi.cpp gives the same C ABI as libfrpt_sampler_kernels.so, on host pointers. This file adds
 * only the storage of the kernels' `extern __shared__` array and a C ABI to steer and inspect the emulation.
 */
#include "inhomogeneousSampleKernel.cu"

namespace frpt
{
namespace
{

// The kernels' `extern __shared__ float shared[]` (declared inside coarseGridKernel, so it names this entity).
alignas(16) float shared[frptEmulation::kMAX_DYNAMIC_SHARED / sizeof(float)];

struct SharedStorage
{
    SharedStorage() noexcept
    {
        frptEmulation::useSharedStorage(shared, sizeof(shared));
    }
};

SharedStorage const gSharedStorage;

} // namespace
} // namespace frpt

extern "C"
{
    //! 1: launches are checked and recorded, not run; 0: they run (the default).
    void frptEmulationSetDryRun(int32_t on)
    {
        frptEmulation::setDryRun(on != 0);
    }

    //! Forget the recorded launches.
    void frptEmulationClearLaunches()
    {
        frptEmulation::gLaunches.clear();
    }

    //! Number of launches recorded since the last clear.
    int32_t frptEmulationLaunchCount()
    {
        return static_cast<int32_t>(frptEmulation::gLaunches.size());
    }

    //! Launch `index`: grid and block (x, y, z) and dynamic shared bytes. Returns 0, or 1 for a bad index.
    int32_t frptEmulationLaunch(int32_t index, uint32_t* grid, uint32_t* block, uint64_t* sharedBytes)
    {
        if (index < 0 || index >= frptEmulationLaunchCount())
        {
            return 1;
        }
        frptEmulation::Launch const& l = frptEmulation::gLaunches[static_cast<size_t>(index)];
        uint32_t const g[3] = {l.grid.x, l.grid.y, l.grid.z};
        uint32_t const b[3] = {l.block.x, l.block.y, l.block.z};
        std::memcpy(grid, g, sizeof(g));
        std::memcpy(block, b, sizeof(b));
        *sharedBytes = l.sharedBytes;
        return 0;
    }
}
