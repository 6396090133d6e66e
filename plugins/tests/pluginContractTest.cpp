/*
 * Contract harness of libfrpt_plugins.so, runnable without libnvinfer.
 *
 *   pluginContractTest <path/to/libfrpt_plugins.so> [--require-gpu]
 *
 * Registration: dlopen alone registers nothing (no static registration); frptPluginTensorRTVersion is the headers'
 * version; frptLoadIntoRegistry drives a recording registry's loadLibrary (recordingRegistry.h: dlopen,
 * setLoggerFinder, getCreators, register), is idempotent and refuses when another copy's creator holds the plugin's
 * identity. It then checks the creator
 * (name / version / namespace, field schema, createPlugin validation), the capability interfaces, output count and
 * types, format combinations, output shapes through a test IExprBuilder that evaluates constant expressions,
 * workspace, configure / shape-change validation, field serialisation round trip, clone and attachToContext.
 * With a CUDA device it enqueues float and half problems (outputs poisoned with NaN) and compares with the host
 * build of the kernel math (libfrpt_sampler_host.so). Without one it says so, and fails only with --require-gpu.
 * Exit status: number of failed checks (0 = pass).
 */
#include "inhomogeneousSampleMath.h"
#include "inhomogeneousSamplePlugin.h"
#include "recordingRegistry.h"
#include "sampleTestInputs.h"

#include <NvInferRuntime.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <vector>

using namespace nvinfer1;

extern "C" int32_t frptHostCoarseGrid(frpt::SampleParams params, float const* saliency, float* grid);
extern "C" int32_t frptHostSampleImage(frpt::SampleParams params, float const* image, float const* grid, float* output);

namespace
{

int32_t gFailures{0};

void check(bool ok, std::string const& what)
{
    std::printf("%s %s\n", ok ? "PASS" : "FAIL", what.c_str());
    gFailures += ok ? 0 : 1;
}

// ------------------------------------------------------------------------------------ logger, registry

using frptTest::asV3One;

frptTest::RecordingLoggerFinder gLoggerFinder;
frptTest::RecordingRegistry gRegistry(&gLoggerFinder);

//! A creator with the plugin's identity from somewhere else (what a second copy of the library would register).
class ImpostorCreator final : public IPluginCreatorV3One
{
public:
    char const* getPluginName() const noexcept override
    {
        return "InhomogeneousSample";
    }
    char const* getPluginVersion() const noexcept override
    {
        return "1";
    }
    char const* getPluginNamespace() const noexcept override
    {
        return "frpt";
    }
    PluginFieldCollection const* getFieldNames() noexcept override
    {
        return &mFields;
    }
    IPluginV3* createPlugin(char const*, PluginFieldCollection const*, TensorRTPhase) noexcept override
    {
        return nullptr;
    }

private:
    PluginFieldCollection mFields{};
};

} // namespace

namespace
{

// ------------------------------------------------------------------------------------ test IExprBuilder

class ConstantExpr final : public IDimensionExpr, private apiv::VDimensionExpr
{
public:
    explicit ConstantExpr(int64_t value)
        : mValue(value)
    {
        mImpl = this;
    }
    bool isConstant() const override
    {
        return true;
    }
    int64_t getConstantValue() const override
    {
        return mValue;
    }
    bool isSizeTensor() const override
    {
        return false;
    }

private:
    int64_t mValue;
};

class TestExprBuilder final : public IExprBuilder, private apiv::VExprBuilder
{
public:
    TestExprBuilder()
    {
        mImpl = this;
    }
    IDimensionExpr const* constant(int64_t value) override
    {
        return &mExprs.emplace_back(value);
    }
    IDimensionExpr const* operation(DimensionOperation op, IDimensionExpr const& a, IDimensionExpr const& b) override
    {
        if (!a.isConstant() || !b.isConstant())
        {
            return nullptr;
        }
        int64_t const x = a.getConstantValue();
        int64_t const y = b.getConstantValue();
        switch (op)
        {
        case DimensionOperation::kSUM: return constant(x + y);
        case DimensionOperation::kPROD: return constant(x * y);
        case DimensionOperation::kMAX: return constant(std::max(x, y));
        case DimensionOperation::kMIN: return constant(std::min(x, y));
        case DimensionOperation::kSUB: return constant(x - y);
        case DimensionOperation::kEQUAL: return constant(x == y ? 1 : 0);
        case DimensionOperation::kLESS: return constant(x < y ? 1 : 0);
        case DimensionOperation::kFLOOR_DIV: return constant(x / y - ((x % y != 0) && ((x < 0) != (y < 0)) ? 1 : 0));
        case DimensionOperation::kCEIL_DIV: return constant((x + y - 1) / y);
        }
        return nullptr;
    }
    IDimensionExpr const* declareSizeTensor(int32_t, IDimensionExpr const&, IDimensionExpr const&) override
    {
        return nullptr;
    }

private:
    std::deque<ConstantExpr> mExprs;
};

// ------------------------------------------------------------------------------------ helpers

Dims dims4(int64_t a, int64_t b, int64_t c, int64_t d)
{
    Dims r{};
    r.nbDims = 4;
    r.d[0] = a;
    r.d[1] = b;
    r.d[2] = c;
    r.d[3] = d;
    return r;
}

PluginTensorDesc desc(Dims const& dims, DataType type, TensorFormat format = TensorFormat::kLINEAR)
{
    return PluginTensorDesc{dims, type, format, -1.F};
}

DynamicPluginTensorDesc dynDesc(Dims const& dims, DataType type, TensorFormat format = TensorFormat::kLINEAR)
{
    return DynamicPluginTensorDesc{desc(dims, type, format), dims, dims, dims};
}

struct Fields
{
    int32_t outH;
    int32_t outW;
    int32_t pad;
    float fwhm;
    int32_t alignCorners;
};

//! A field collection like the ONNX parser builds from the node's attributes.
struct FieldSet
{
    explicit FieldSet(Fields const& f)
        : values(f)
    {
        add("out_h", &values.outH, PluginFieldType::kINT32);
        add("out_w", &values.outW, PluginFieldType::kINT32);
        add("pad", &values.pad, PluginFieldType::kINT32);
        add("fwhm", &values.fwhm, PluginFieldType::kFLOAT32);
        add("align_corners", &values.alignCorners, PluginFieldType::kINT32);
    }
    void add(char const* name, void const* data, PluginFieldType type, int32_t length = 1)
    {
        fields.emplace_back(name, data, type, length);
    }
    PluginFieldCollection const* collection()
    {
        fc = PluginFieldCollection{static_cast<int32_t>(fields.size()), fields.data()};
        return &fc;
    }
    void drop(char const* name)
    {
        fields.erase(std::remove_if(fields.begin(), fields.end(),
                         [name](PluginField const& f) { return std::strcmp(f.name, name) == 0; }),
            fields.end());
    }
    Fields values;
    std::vector<PluginField> fields;
    PluginFieldCollection fc{};
};

//! Field name -> 4 value bytes of a serialised collection.
std::vector<std::pair<std::string, int32_t>> fieldBytes(PluginFieldCollection const* fc)
{
    std::vector<std::pair<std::string, int32_t>> out;
    for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i)
    {
        int32_t bits = 0;
        if (fc->fields[i].data != nullptr && fc->fields[i].length == 1)
        {
            std::memcpy(&bits, fc->fields[i].data, sizeof(bits));
        }
        out.emplace_back(fc->fields[i].name, bits);
    }
    return out;
}

template <typename T>
T* capability(IPluginV3* plugin, PluginCapabilityType type)
{
    return plugin == nullptr ? nullptr : static_cast<T*>(plugin->getCapabilityInterface(type));
}

// ------------------------------------------------------------------------------------ checks

void checkCreator(IPluginCreatorV3One* creator)
{
    check(std::strcmp(creator->getPluginName(), "InhomogeneousSample") == 0, "creator name InhomogeneousSample");
    check(std::strcmp(creator->getPluginVersion(), "1") == 0, "creator version 1");
    check(std::strcmp(creator->getPluginNamespace(), "frpt") == 0, "creator namespace frpt");
    PluginFieldCollection const* names = creator->getFieldNames();
    std::vector<std::pair<std::string, PluginFieldType>> expected{{"out_h", PluginFieldType::kINT32},
        {"out_w", PluginFieldType::kINT32}, {"pad", PluginFieldType::kINT32}, {"fwhm", PluginFieldType::kFLOAT32},
        {"align_corners", PluginFieldType::kINT32}};
    bool same = names != nullptr && names->nbFields == static_cast<int32_t>(expected.size());
    for (int32_t i = 0; same && i < names->nbFields; ++i)
    {
        auto const& want = expected[static_cast<size_t>(i)];
        same = want.first == names->fields[i].name && want.second == names->fields[i].type
            && names->fields[i].length == 1 && names->fields[i].data == nullptr;
    }
    check(same, "field schema out_h, out_w, pad (INT32), fwhm (FLOAT32), align_corners (INT32)");
}

void checkCreateValidation(IPluginCreatorV3One* creator)
{
    Fields const good{224, 200, 30, 13.F, 1};
    struct Case
    {
        char const* what;
        void (*edit)(FieldSet&);
        char const* errorMentions;
    };
    Case const cases[] = {
        {"missing out_h", [](FieldSet& f) { f.drop("out_h"); }, "out_h"},
        {"fwhm as INT32", [](FieldSet& f) { f.fields[3].type = PluginFieldType::kINT32; }, "fwhm"},
        {"out_w with 2 values", [](FieldSet& f) { f.fields[1].length = 2; }, "out_w"},
        {"align_corners 0", [](FieldSet& f) { f.values.alignCorners = 0; }, "align_corners"},
        {"negative pad", [](FieldSet& f) { f.values.pad = -1; }, "pad"},
        {"fwhm 0", [](FieldSet& f) { f.values.fwhm = 0.F; }, "fwhm"},
        {"unknown field", [](FieldSet& f) { f.add("scale", &f.values.pad, PluginFieldType::kINT32); }, "scale"},
    };
    for (Case const& c : cases)
    {
        FieldSet fields(good);
        c.edit(fields);
        gLoggerFinder.logger.lastError.clear();
        IPluginV3* plugin = creator->createPlugin("bad", fields.collection(), TensorRTPhase::kBUILD);
        check(plugin == nullptr && gLoggerFinder.logger.lastError.find(c.errorMentions) != std::string::npos,
            std::string("createPlugin rejects ") + c.what + " and logs it (" + gLoggerFinder.logger.lastError + ")");
        delete plugin;
    }
    FieldSet selectors(good);
    char const version[] = "1";
    selectors.add("plugin_version", version, PluginFieldType::kCHAR, 2);
    IPluginV3* plugin = creator->createPlugin("ok", selectors.collection(), TensorRTPhase::kBUILD);
    check(plugin != nullptr, "createPlugin ignores the plugin_version / plugin_namespace selector attributes");
    delete plugin;
}

void checkBuildInterface(IPluginV3* plugin, Fields const& f)
{
    auto* core = capability<IPluginV3OneCore>(plugin, PluginCapabilityType::kCORE);
    auto* build = capability<IPluginV3OneBuild>(plugin, PluginCapabilityType::kBUILD);
    auto* runtime = capability<IPluginV3OneRuntime>(plugin, PluginCapabilityType::kRUNTIME);
    check(core != nullptr && std::strcmp(core->getInterfaceInfo().kind, "PLUGIN_V3ONE_CORE") == 0, "core capability");
    check(
        build != nullptr && std::strcmp(build->getInterfaceInfo().kind, "PLUGIN_V3ONE_BUILD") == 0, "build capability");
    check(runtime != nullptr && std::strcmp(runtime->getInterfaceInfo().kind, "PLUGIN_V3ONE_RUNTIME") == 0,
        "runtime capability");
    if (core == nullptr || build == nullptr || runtime == nullptr)
    {
        return;
    }
    check(std::strcmp(core->getPluginName(), "InhomogeneousSample") == 0
            && std::strcmp(core->getPluginVersion(), "1") == 0 && std::strcmp(core->getPluginNamespace(), "frpt") == 0,
        "plugin name / version / namespace");
    check(build->getNbOutputs() == 1, "one output");

    for (DataType t : {DataType::kFLOAT, DataType::kHALF})
    {
        DataType in[2] = {t, DataType::kFLOAT};
        DataType out[1] = {DataType::kINT32};
        check(build->getOutputDataTypes(out, 1, in, 2) == 0 && out[0] == t, "output type = image type");
    }
    DataType badIn[2] = {DataType::kINT8, DataType::kFLOAT};
    DataType out[1];
    check(build->getOutputDataTypes(out, 1, badIn, 2) != 0, "int8 image rejected by getOutputDataTypes");

    // Format combinations: every (image, saliency, output) type x format triple against the contract.
    DataType const types[] = {DataType::kFLOAT, DataType::kHALF, DataType::kINT8, DataType::kINT32};
    TensorFormat const formats[] = {TensorFormat::kLINEAR, TensorFormat::kCHW32};
    int32_t wrong = 0;
    int32_t accepted = 0;
    for (DataType ti : types)
        for (DataType ts : types)
            for (DataType to : types)
                for (TensorFormat fmt : formats)
                {
                    DynamicPluginTensorDesc io[3] = {dynDesc(dims4(2, 3, 8, 8), ti, fmt),
                        dynDesc(dims4(2, 1, 4, 4), ts, fmt), dynDesc(dims4(2, 3, 5, 5), to, fmt)};
                    bool const linear = fmt == TensorFormat::kLINEAR;
                    bool const expect[3] = {linear && (ti == DataType::kFLOAT || ti == DataType::kHALF),
                        linear && ts == DataType::kFLOAT, linear && to == ti};
                    for (int32_t pos = 0; pos < 3; ++pos)
                    {
                        bool const got = build->supportsFormatCombination(pos, io, 2, 1);
                        wrong += got != expect[pos] ? 1 : 0;
                    }
                    bool const all = expect[0] && expect[1] && expect[2];
                    accepted += all ? 1 : 0;
                }
    check(wrong == 0 && accepted == 2,
        "supportsFormatCombination: LINEAR only, image float|half, saliency float, output = image (wrong: "
            + std::to_string(wrong) + ", accepted combinations: " + std::to_string(accepted) + ")");

    TestExprBuilder exprs;
    DimsExprs in[2];
    in[0].nbDims = 4;
    in[1].nbDims = 4;
    int64_t const shape0[4] = {2, 3, 97, 131};
    int64_t const shape1[4] = {2, 1, 17, 17};
    for (int32_t i = 0; i < 4; ++i)
    {
        in[0].d[i] = exprs.constant(shape0[i]);
        in[1].d[i] = exprs.constant(shape1[i]);
    }
    DimsExprs outShape[1];
    int32_t const status = build->getOutputShapes(in, 2, nullptr, 0, outShape, 1, exprs);
    bool shapeOk
        = status == 0 && outShape[0].nbDims == 4 && outShape[0].d[0] == in[0].d[0] && outShape[0].d[1] == in[0].d[1];
    for (int32_t i = 2; shapeOk && i < 4; ++i)
    {
        shapeOk = outShape[0].d[i] != nullptr && outShape[0].d[i]->isConstant()
            && outShape[0].d[i]->getConstantValue() == (i == 2 ? f.outH : f.outW);
    }
    check(shapeOk, "getOutputShapes = [N, C, out_h, out_w] through IExprBuilder");
    DimsExprs bad[2] = {in[0], in[1]};
    bad[1].nbDims = 3;
    check(build->getOutputShapes(bad, 2, nullptr, 0, outShape, 1, exprs) != 0, "getOutputShapes rejects 3-D saliency");

    DynamicPluginTensorDesc io[3] = {dynDesc(dims4(37, 3, 224, 224), DataType::kHALF),
        dynDesc(dims4(37, 1, 31, 31), DataType::kFLOAT), dynDesc(dims4(37, 3, f.outH, f.outW), DataType::kHALF)};
    size_t const ws = build->getWorkspaceSize(io, 2, io + 2, 1);
    check(ws >= 37u * 31u * 31u * 2u * sizeof(float) && ws % 256 == 0 && ws < 37u * 31u * 31u * 2u * 4u + 256u,
        "workspace holds the [N, g, g, 2] fp32 coarse grid (" + std::to_string(ws) + " bytes)");
    check(build->configurePlugin(io, 2, io + 2, 1) == 0, "configurePlugin accepts N=37, g=31");
    DynamicPluginTensorDesc tooBig[3] = {io[0], dynDesc(dims4(37, 1, 64, 64), DataType::kFLOAT), io[2]};
    check(build->configurePlugin(tooBig, 2, tooBig + 2, 1) != 0, "configurePlugin rejects g=64 with pad=30");
    DynamicPluginTensorDesc twoChannel[3] = {io[0], dynDesc(dims4(37, 2, 31, 31), DataType::kFLOAT), io[2]};
    check(build->configurePlugin(twoChannel, 2, twoChannel + 2, 1) != 0, "configurePlugin rejects [N, 2, g, g]");

    PluginTensorDesc rt[3] = {io[0].desc, io[1].desc, io[2].desc};
    check(runtime->onShapeChange(rt, 2, rt + 2, 1) == 0, "onShapeChange accepts consistent shapes");
    rt[1].dims.d[0] = 36;
    check(runtime->onShapeChange(rt, 2, rt + 2, 1) != 0, "onShapeChange rejects a saliency batch != image batch");
}

void checkSerialisation(IPluginCreatorV3One* creator, IPluginV3* plugin)
{
    auto* runtime = capability<IPluginV3OneRuntime>(plugin, PluginCapabilityType::kRUNTIME);
    auto const original = fieldBytes(runtime->getFieldsToSerialize());
    PluginFieldCollection const* names = creator->getFieldNames();
    bool typesOk = runtime->getFieldsToSerialize()->nbFields == names->nbFields;
    for (int32_t i = 0; typesOk && i < names->nbFields; ++i)
    {
        PluginField const& f = runtime->getFieldsToSerialize()->fields[i];
        typesOk = f.type == names->fields[i].type && std::strcmp(f.name, names->fields[i].name) == 0;
    }
    check(typesOk, "getFieldsToSerialize uses the creator's schema (INT32 / FLOAT32 only)");

    IPluginV3* restored = creator->createPlugin("restored", runtime->getFieldsToSerialize(), TensorRTPhase::kRUNTIME);
    auto* restoredRuntime = capability<IPluginV3OneRuntime>(restored, PluginCapabilityType::kRUNTIME);
    check(restoredRuntime != nullptr && fieldBytes(restoredRuntime->getFieldsToSerialize()) == original,
        "field round trip: getFieldsToSerialize -> createPlugin -> same fields");

    IPluginV3* copy = plugin->clone();
    auto* copyRuntime = capability<IPluginV3OneRuntime>(copy, PluginCapabilityType::kRUNTIME);
    check(copy != nullptr && copy != plugin && fieldBytes(copyRuntime->getFieldsToSerialize()) == original,
        "clone keeps the fields");
    IPluginV3* attached = runtime->attachToContext(nullptr);
    auto* attachedRuntime = capability<IPluginV3OneRuntime>(attached, PluginCapabilityType::kRUNTIME);
    check(attached != nullptr && attached != plugin && fieldBytes(attachedRuntime->getFieldsToSerialize()) == original,
        "attachToContext returns an independent copy");
    delete restored;
    delete copy;
    delete attached;
}

// ------------------------------------------------------------------------------------ GPU enqueue

template <typename T>
void checkEnqueue(IPluginCreatorV3One* creator, frpt::SampleParams const& p, float tolerance)
{
    bool const half = sizeof(T) == 2;
    std::string const what = std::string(half ? "half" : "float") + " enqueue N=" + std::to_string(p.n) + " C="
        + std::to_string(p.c) + " " + std::to_string(p.h) + "x" + std::to_string(p.w) + " -> " + std::to_string(p.outH)
        + "x" + std::to_string(p.outW) + " g=" + std::to_string(p.g) + " pad=" + std::to_string(p.pad);
    std::mt19937 rng(static_cast<uint32_t>(p.n * 131 + p.g * 7 + (half ? 1 : 0)));
    std::vector<float> image = frptTest::smoothImage(p.n, p.c, p.h, p.w, rng);
    std::vector<float> const sal = frptTest::peakedSaliency(p.n, p.g, rng);
    std::vector<T> imageT(image.size());
    for (size_t i = 0; i < image.size(); ++i)
    {
        imageT[i] = static_cast<T>(image[i]);
        image[i] = static_cast<float>(imageT[i]); // the reference sees the values the device sees
    }
    std::vector<float> grid(static_cast<size_t>(p.n) * static_cast<size_t>(p.g * p.g * 2));
    size_t const outCount = static_cast<size_t>(p.n) * static_cast<size_t>(p.c) * static_cast<size_t>(p.outH)
        * static_cast<size_t>(p.outW);
    std::vector<float> expected(outCount);
    frptHostCoarseGrid(p, sal.data(), grid.data());
    frptHostSampleImage(p, image.data(), grid.data(), expected.data());

    FieldSet fields(Fields{p.outH, p.outW, p.pad, p.fwhm, 1});
    IPluginV3* plugin = creator->createPlugin("gpu", fields.collection(), TensorRTPhase::kRUNTIME);
    auto* build = capability<IPluginV3OneBuild>(plugin, PluginCapabilityType::kBUILD);
    auto* runtime = capability<IPluginV3OneRuntime>(plugin, PluginCapabilityType::kRUNTIME);
    DataType const type = half ? DataType::kHALF : DataType::kFLOAT;
    DynamicPluginTensorDesc io[3] = {dynDesc(dims4(p.n, p.c, p.h, p.w), type),
        dynDesc(dims4(p.n, 1, p.g, p.g), DataType::kFLOAT), dynDesc(dims4(p.n, p.c, p.outH, p.outW), type)};
    PluginTensorDesc rt[3] = {io[0].desc, io[1].desc, io[2].desc};
    size_t const ws = build->getWorkspaceSize(io, 2, io + 2, 1);

    void* dImage = nullptr;
    void* dSal = nullptr;
    void* dOut = nullptr;
    void* dWs = nullptr;
    cudaStream_t stream = nullptr;
    bool ok = cudaMalloc(&dImage, imageT.size() * sizeof(T)) == cudaSuccess
        && cudaMalloc(&dSal, sal.size() * sizeof(float)) == cudaSuccess
        && cudaMalloc(&dOut, outCount * sizeof(T)) == cudaSuccess && cudaMalloc(&dWs, ws) == cudaSuccess
        && cudaStreamCreate(&stream) == cudaSuccess
        && cudaMemcpy(dImage, imageT.data(), imageT.size() * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess
        && cudaMemcpy(dSal, sal.data(), sal.size() * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess
        && cudaMemset(dOut, 0xFF, outCount * sizeof(T)) == cudaSuccess; // all-ones bits: NaN in float and half
    ok = ok && build->configurePlugin(io, 2, io + 2, 1) == 0 && runtime->onShapeChange(rt, 2, rt + 2, 1) == 0;
    void const* inputs[2] = {dImage, dSal};
    void* outputs[1] = {dOut};
    ok = ok && runtime->enqueue(rt, rt + 2, inputs, outputs, dWs, stream) == 0
        && cudaStreamSynchronize(stream) == cudaSuccess;
    std::vector<T> got(outCount);
    ok = ok && cudaMemcpy(got.data(), dOut, outCount * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess;
    double maxDiff = ok ? 0.0 : INFINITY;
    for (size_t i = 0; ok && i < outCount; ++i)
    {
        double const d = std::fabs(static_cast<double>(static_cast<float>(got[i])) - expected[i]);
        maxDiff = std::isnan(d) ? INFINITY : std::max(maxDiff, d);
    }
    check(ok && maxDiff <= tolerance,
        what + ": max |diff| vs host math " + std::to_string(maxDiff) + " <= " + std::to_string(tolerance));
    cudaFree(dImage);
    cudaFree(dSal);
    cudaFree(dOut);
    cudaFree(dWs);
    if (stream != nullptr)
    {
        cudaStreamDestroy(stream);
    }
    delete plugin;
}

} // namespace

int main(int argc, char** argv)
{
    if (argc < 2)
    {
        std::fprintf(stderr, "usage: %s <libfrpt_plugins.so> [--require-gpu]\n", argv[0]);
        return 2;
    }
    bool const requireGpu = argc > 2 && std::strcmp(argv[2], "--require-gpu") == 0;
    std::printf("TensorRT headers %d.%d\n", NV_TENSORRT_MAJOR, NV_TENSORRT_MINOR);

    // Loading the library registers nothing by itself: TensorRT's registry does, through loadLibrary.
    void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr)
    {
        std::fprintf(stderr, "FAIL dlopen: %s\n", dlerror());
        return 1;
    }
    auto pluginRegistered = reinterpret_cast<int32_t (*)()>(dlsym(lib, "frptPluginRegistered"));
    auto trtVersion = reinterpret_cast<int32_t (*)()>(dlsym(lib, "frptPluginTensorRTVersion"));
    auto loadInto = reinterpret_cast<int32_t (*)(IPluginRegistry*, char const*)>(dlsym(lib, "frptLoadIntoRegistry"));
    if (pluginRegistered == nullptr || trtVersion == nullptr || loadInto == nullptr)
    {
        std::fprintf(stderr, "FAIL no frptPluginRegistered / frptPluginTensorRTVersion / frptLoadIntoRegistry\n");
        return 1;
    }
    int32_t nbRegistered = 0;
    gRegistry.getAllCreators(&nbRegistered);
    check(nbRegistered == 0 && pluginRegistered() == 0, "dlopen alone registers nothing (no static registration)");
    check(trtVersion() == NV_TENSORRT_MAJOR * 10000 + NV_TENSORRT_MINOR * 100 + NV_TENSORRT_PATCH,
        "frptPluginTensorRTVersion() = " + std::to_string(trtVersion()) + ", the headers' version");

    check(loadInto(nullptr, argv[1]) == frpt::kLOAD_BAD_ARGUMENT
            && loadInto(&gRegistry, nullptr) == frpt::kLOAD_BAD_ARGUMENT,
        "frptLoadIntoRegistry refuses a null registry or path");
    frptTest::RecordingLoggerFinder otherFinder;
    frptTest::RecordingRegistry holdsAnotherCopy(&otherFinder);
    ImpostorCreator impostor;
    holdsAnotherCopy.registerCreator(impostor, "frpt");
    check(loadInto(&holdsAnotherCopy, argv[1]) == frpt::kLOAD_OTHER_COPY && holdsAnotherCopy.loadedPaths.empty()
            && pluginRegistered() == 0,
        "frptLoadIntoRegistry reports another copy's creator and does not call loadLibrary");

    check(loadInto(&gRegistry, argv[1]) == frpt::kLOAD_OK, "frptLoadIntoRegistry -> loadLibrary succeeds");
    gRegistry.getAllCreators(&nbRegistered);
    check(nbRegistered == 1 && pluginRegistered() == 1
            && gRegistry.getCreator("InhomogeneousSample", "1", "frpt") != nullptr
            && gRegistry.loadedPaths == std::vector<std::string>{argv[1]},
        "the registry loaded the library and registered InhomogeneousSample/1/frpt (setLoggerFinder + getCreators)");
    check(loadInto(&gRegistry, argv[1]) == frpt::kLOAD_OK && gRegistry.loadedPaths.size() == 1,
        "frptLoadIntoRegistry again is a no-op");
    gRegistry.getAllCreators(&nbRegistered);
    check(nbRegistered == 1, "exactly one creator registered");

    using GetCreators = IPluginCreatorInterface* const* (*)(int32_t&);
    auto getCreators = reinterpret_cast<GetCreators>(dlsym(lib, "getCreators"));
    int32_t nbCreators = 0;
    IPluginCreatorInterface* const* creators = getCreators != nullptr ? getCreators(nbCreators) : nullptr;
    IPluginCreatorV3One* creator = nbCreators == 1 ? asV3One(creators[0]) : nullptr;
    check(creator != nullptr, "getCreators returns one IPluginCreatorV3One");
    if (creator == nullptr)
    {
        return gFailures;
    }
    gRegistry.getAllCreators(&nbRegistered);
    check(nbRegistered == 1 && creator == asV3One(gRegistry.getCreator("InhomogeneousSample", "1", "frpt")),
        "getCreators hands out the registered creator; calling it again changes nothing");
    checkCreator(creator);
    checkCreateValidation(creator);

    Fields const f{224, 200, 30, 13.F, 1};
    FieldSet fields(f);
    IPluginV3* plugin = creator->createPlugin("sample", fields.collection(), TensorRTPhase::kBUILD);
    check(plugin != nullptr, "createPlugin from the node's fields");
    if (plugin != nullptr)
    {
        check(std::strcmp(plugin->getInterfaceInfo().kind, "PLUGIN") == 0, "IPluginV3 interface kind");
        checkBuildInterface(plugin, f);
        checkSerialisation(creator, plugin);
        delete plugin;
    }

    int32_t devices = 0;
    cudaError_t const status = cudaGetDeviceCount(&devices);
    if (status != cudaSuccess || devices == 0)
    {
        std::printf("SKIP GPU enqueue: no CUDA device (%s)\n", cudaGetErrorString(status));
        if (requireGpu)
        {
            check(false, "--require-gpu given but no CUDA device");
        }
    }
    else
    {
        float const fp32Tol = 1e-5F;
        float const fp16Tol = 2e-3F;
        frpt::SampleParams const model{2, 3, 224, 224, 31, 224, 224, 30, 13.F};
        frpt::SampleParams const odd{37, 1, 97, 131, 17, 64, 48, 8, 13.F};
        frpt::SampleParams const oddRgb{1, 3, 97, 131, 17, 64, 48, 8, 13.F};
        for (frpt::SampleParams const& p : {model, odd, oddRgb})
        {
            checkEnqueue<float>(creator, p, fp32Tol);
            checkEnqueue<__half>(creator, p, fp16Tol);
        }
    }
    std::printf("%s: %d failed check(s)\n", gFailures == 0 ? "PASSED" : "FAILED", gFailures);
    return gFailures;
}
