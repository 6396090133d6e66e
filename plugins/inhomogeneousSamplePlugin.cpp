/*
 * TensorRT IPluginV3 `InhomogeneousSample`; see inhomogeneousSamplePlugin.h for the op and plugins/README.md for
 * building and loading.
 *
 * Registration has one route, TensorRT's documented one for plugin libraries: IPluginRegistry::loadLibrary (Python
 * `trt.get_plugin_registry().load_library`, `trtexec --dynamicPlugins`) loads the library and calls the exported
 * setLoggerFinder and getCreators. There is no static registration on dlopen: it would need getPluginRegistry from
 * libnvinfer, which NVIDIA's Python wheels load with local scope and which `--as-needed` linkers drop from NEEDED,
 * so it silently registered nothing on Ubuntu / JetPack. This library references no libnvinfer symbol at all.
 */
#include "inhomogeneousSamplePlugin.h"

#include "inhomogeneousSampleKernel.h"

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>

using namespace nvinfer1;

namespace frpt
{
namespace
{

constexpr int32_t kNB_INPUTS{2};
constexpr int32_t kNB_OUTPUTS{1};
constexpr int32_t kIMAGE{0};
constexpr int32_t kSALIENCY{1};

//! Throws std::invalid_argument with `what` unless `condition` holds (the plugin's one validation helper).
void require(bool condition, std::string const& what)
{
    if (!condition)
    {
        throw std::invalid_argument(what);
    }
}

class LoggerFinder
{
public:
    void set(ILoggerFinder* finder) noexcept
    {
        std::lock_guard<std::mutex> lock(mMutex);
        if (mFinder == nullptr)
        {
            mFinder = finder;
        }
    }

    ILogger* logger() noexcept
    {
        std::lock_guard<std::mutex> lock(mMutex);
        try
        {
            return mFinder != nullptr ? mFinder->findLogger() : nullptr;
        }
        catch (std::exception const&)
        {
            return nullptr;
        }
    }

private:
    std::mutex mMutex;
    ILoggerFinder* mFinder{nullptr};
};

LoggerFinder gLoggerFinder;

//! Report an error from a noexcept entry point to TensorRT's logger (or stderr before one is known).
//! Formats into a stack buffer: safe on enqueue's failure path, never allocates or throws.
void reportError(char const* where, char const* what) noexcept
{
    char message[512];
    std::snprintf(message, sizeof(message), "%s::%s::%s: %s", kPLUGIN_NAMESPACE, kPLUGIN_NAME, where, what);
    ILogger* logger = gLoggerFinder.logger();
    if (logger != nullptr)
    {
        logger->log(ILogger::Severity::kERROR, message);
    }
    else
    {
        std::fprintf(stderr, "[E] %s\n", message);
    }
}

char const* typeName(PluginFieldType type) noexcept
{
    return type == PluginFieldType::kINT32 ? "INT32" : (type == PluginFieldType::kFLOAT32 ? "FLOAT32" : "other");
}

bool fitsInt32(int64_t v) noexcept
{
    return v >= 0 && v <= std::numeric_limits<int32_t>::max();
}

//! Kernel parameters for concrete input shapes; throws std::invalid_argument when they break the contract.
SampleParams toParams(SampleAttributes const& attrs, Dims const& image, Dims const& saliency)
{
    require(image.nbDims == 4, "image must be 4-D [N, C, H, W], got " + std::to_string(image.nbDims) + "-D");
    require(saliency.nbDims == 4, "saliency must be 4-D [N, 1, g, g], got " + std::to_string(saliency.nbDims) + "-D");
    for (int32_t i = 0; i < 4; ++i)
    {
        require(fitsInt32(image.d[i]) && fitsInt32(saliency.d[i]), "dimensions must be in [0, 2^31)");
    }
    require(saliency.d[0] == image.d[0], "saliency batch must equal image batch");
    require(saliency.d[1] == 1 && saliency.d[2] == saliency.d[3], "saliency must be [N, 1, g, g]");
    SampleParams const p{static_cast<int32_t>(image.d[0]), static_cast<int32_t>(image.d[1]),
        static_cast<int32_t>(image.d[2]), static_cast<int32_t>(image.d[3]), static_cast<int32_t>(saliency.d[2]),
        attrs.outH, attrs.outW, attrs.pad, attrs.fwhm};
    require(isValid(p),
        "unsupported shape: need C, H, W >= 1, g >= 2, N <= " + std::to_string(kMAX_BATCH)
            + " and (3 g^2 + g + 4 pad + 1) * 4 <= " + std::to_string(kMAX_COARSE_SHARED_BYTES)
            + " bytes (g = " + std::to_string(p.g) + ", pad = " + std::to_string(p.pad) + ")");
    return p;
}

//! Kernel parameters in enqueue: no validation beyond the launcher's (onShapeChange validated the shapes).
SampleParams toParamsUnchecked(SampleAttributes const& attrs, Dims const& image, Dims const& saliency) noexcept
{
    return SampleParams{static_cast<int32_t>(image.d[0]), static_cast<int32_t>(image.d[1]),
        static_cast<int32_t>(image.d[2]), static_cast<int32_t>(image.d[3]), static_cast<int32_t>(saliency.d[2]),
        attrs.outH, attrs.outW, attrs.pad, attrs.fwhm};
}

void bindFields(std::array<FieldSlot, kNB_FIELDS> const& slots, std::array<PluginField, kNB_FIELDS>& fields,
    PluginFieldCollection& collection, bool withData) noexcept
{
    for (size_t i = 0; i < fields.size(); ++i)
    {
        fields[i] = PluginField(slots[i].name, withData ? slots[i].data : nullptr, slots[i].type, 1);
    }
    collection.nbFields = kNB_FIELDS;
    collection.fields = fields.data();
}

} // namespace

void SampleAttributes::validate() const
{
    require(outH >= 1 && outW >= 1 && static_cast<int64_t>(outH) * outW <= std::numeric_limits<int32_t>::max(),
        "out_h and out_w must be given and >= 1, got " + std::to_string(outH) + " x " + std::to_string(outW));
    require(pad >= 0, "pad must be >= 0, got " + std::to_string(pad));
    require(std::isfinite(fwhm) && fwhm > 0.F, "fwhm must be finite and > 0, got " + std::to_string(fwhm));
    require(alignCorners == 1,
        "align_corners must be 1 (grid_sample with align_corners=True), got " + std::to_string(alignCorners));
}

std::array<FieldSlot, kNB_FIELDS> fieldSlots(SampleAttributes& attrs) noexcept
{
    return {{
        {"out_h", PluginFieldType::kINT32, &attrs.outH},
        {"out_w", PluginFieldType::kINT32, &attrs.outW},
        {"pad", PluginFieldType::kINT32, &attrs.pad},
        {"fwhm", PluginFieldType::kFLOAT32, &attrs.fwhm},
        {"align_corners", PluginFieldType::kINT32, &attrs.alignCorners},
    }};
}

// ---------------------------------------------------------------------------------------------------- plugin

InhomogeneousSamplePlugin::InhomogeneousSamplePlugin(SampleAttributes const& attrs)
    : mAttrs(attrs)
    , mFields()
    , mFieldCollection()
{
    mAttrs.validate();
}

// IPluginV3

IPluginCapability* InhomogeneousSamplePlugin::getCapabilityInterface(PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
    case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
    case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

IPluginV3* InhomogeneousSamplePlugin::clone() noexcept
{
    try
    {
        return new InhomogeneousSamplePlugin(*this);
    }
    catch (std::exception const& e)
    {
        reportError("clone", e.what());
    }
    return nullptr;
}

// IPluginV3OneCore

char const* InhomogeneousSamplePlugin::getPluginName() const noexcept
{
    return kPLUGIN_NAME;
}

char const* InhomogeneousSamplePlugin::getPluginVersion() const noexcept
{
    return kPLUGIN_VERSION;
}

char const* InhomogeneousSamplePlugin::getPluginNamespace() const noexcept
{
    return kPLUGIN_NAMESPACE;
}

// IPluginV3OneBuild

int32_t InhomogeneousSamplePlugin::getNbOutputs() const noexcept
{
    return kNB_OUTPUTS;
}

int32_t InhomogeneousSamplePlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    try
    {
        require(nbInputs == kNB_INPUTS && nbOutputs == kNB_OUTPUTS, "expects 2 inputs and 1 output");
        require(inputTypes[kIMAGE] == DataType::kFLOAT || inputTypes[kIMAGE] == DataType::kHALF,
            "image must be float or half");
        outputTypes[0] = inputTypes[kIMAGE];
        return 0;
    }
    catch (std::exception const& e)
    {
        reportError("getOutputDataTypes", e.what());
    }
    return -1;
}

int32_t InhomogeneousSamplePlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs,
    DimsExprs const* /* shapeInputs */, int32_t /* nbShapeInputs */, DimsExprs* outputs, int32_t nbOutputs,
    IExprBuilder& exprBuilder) noexcept
{
    try
    {
        require(nbInputs == kNB_INPUTS && nbOutputs == kNB_OUTPUTS, "expects 2 inputs and 1 output");
        require(inputs[kIMAGE].nbDims == 4 && inputs[kSALIENCY].nbDims == 4,
            "image must be [N, C, H, W] and saliency [N, 1, g, g]");
        outputs[0].nbDims = 4;
        outputs[0].d[0] = inputs[kIMAGE].d[0];
        outputs[0].d[1] = inputs[kIMAGE].d[1];
        outputs[0].d[2] = exprBuilder.constant(mAttrs.outH);
        outputs[0].d[3] = exprBuilder.constant(mAttrs.outW);
        require(outputs[0].d[2] != nullptr && outputs[0].d[3] != nullptr, "IExprBuilder::constant failed");
        return 0;
    }
    catch (std::exception const& e)
    {
        reportError("getOutputShapes", e.what());
    }
    return -1;
}

bool InhomogeneousSamplePlugin::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (nbInputs != kNB_INPUTS || nbOutputs != kNB_OUTPUTS || pos < 0 || pos >= kNB_INPUTS + kNB_OUTPUTS
        || inOut == nullptr)
    {
        return false;
    }
    PluginTensorDesc const& desc = inOut[pos].desc;
    if (desc.format != TensorFormat::kLINEAR)
    {
        return false;
    }
    switch (pos)
    {
    case kIMAGE: return desc.type == DataType::kFLOAT || desc.type == DataType::kHALF;
    case kSALIENCY: return desc.type == DataType::kFLOAT;
    default: return desc.type == inOut[kIMAGE].desc.type;
    }
}

int32_t InhomogeneousSamplePlugin::configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs,
    DynamicPluginTensorDesc const* /* out */, int32_t nbOutputs) noexcept
{
    try
    {
        require(nbInputs == kNB_INPUTS && nbOutputs == kNB_OUTPUTS, "expects 2 inputs and 1 output");
        // The largest shapes of the profile must be supported (a smaller batch or g never needs more).
        toParams(mAttrs, in[kIMAGE].max, in[kSALIENCY].max);
        return 0;
    }
    catch (std::exception const& e)
    {
        reportError("configurePlugin", e.what());
    }
    return -1;
}

size_t InhomogeneousSamplePlugin::getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t /* nbInputs */,
    DynamicPluginTensorDesc const* /* outputs */, int32_t /* nbOutputs */) const noexcept
{
    Dims const& saliency = inputs[kSALIENCY].max;
    return inhomogeneousSampleWorkspaceSize(static_cast<int32_t>(saliency.d[0]), static_cast<int32_t>(saliency.d[2]));
}

// IPluginV3OneRuntime

int32_t InhomogeneousSamplePlugin::onShapeChange(
    PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    try
    {
        require(nbInputs == kNB_INPUTS && nbOutputs == kNB_OUTPUTS, "expects 2 inputs and 1 output");
        SampleParams const p = toParams(mAttrs, in[kIMAGE].dims, in[kSALIENCY].dims);
        Dims const& o = out[0].dims;
        require(o.nbDims == 4 && o.d[0] == p.n && o.d[1] == p.c && o.d[2] == p.outH && o.d[3] == p.outW,
            "output must be [N, C, out_h, out_w]");
        return 0;
    }
    catch (std::exception const& e)
    {
        reportError("onShapeChange", e.what());
    }
    return -1;
}

int32_t InhomogeneousSamplePlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /* outputDesc */,
    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept
{
    SampleParams const p = toParamsUnchecked(mAttrs, inputDesc[kIMAGE].dims, inputDesc[kSALIENCY].dims);
    float const* saliency = static_cast<float const*>(inputs[kSALIENCY]);
    cudaError_t status = cudaErrorInvalidValue;
    if (inputDesc[kIMAGE].type == DataType::kFLOAT)
    {
        status = launchInhomogeneousSample(
            p, static_cast<float const*>(inputs[kIMAGE]), saliency, workspace, static_cast<float*>(outputs[0]), stream);
    }
    else if (inputDesc[kIMAGE].type == DataType::kHALF)
    {
        status = launchInhomogeneousSample(p, static_cast<__half const*>(inputs[kIMAGE]), saliency, workspace,
            static_cast<__half*>(outputs[0]), stream);
    }
    if (status != cudaSuccess)
    {
        reportError("enqueue", cudaGetErrorString(status));
        return -1;
    }
    return 0;
}

IPluginV3* InhomogeneousSamplePlugin::attachToContext(IPluginResourceContext* /* context */) noexcept
{
    return clone();
}

PluginFieldCollection const* InhomogeneousSamplePlugin::getFieldsToSerialize() noexcept
{
    bindFields(fieldSlots(mAttrs), mFields, mFieldCollection, true);
    return &mFieldCollection;
}

// ---------------------------------------------------------------------------------------------------- creator

InhomogeneousSampleCreator::InhomogeneousSampleCreator()
    : mFields()
    , mFieldCollection()
{
    SampleAttributes defaults;
    bindFields(fieldSlots(defaults), mFields, mFieldCollection, false);
}

char const* InhomogeneousSampleCreator::getPluginName() const noexcept
{
    return kPLUGIN_NAME;
}

char const* InhomogeneousSampleCreator::getPluginVersion() const noexcept
{
    return kPLUGIN_VERSION;
}

char const* InhomogeneousSampleCreator::getPluginNamespace() const noexcept
{
    return kPLUGIN_NAMESPACE;
}

PluginFieldCollection const* InhomogeneousSampleCreator::getFieldNames() noexcept
{
    return &mFieldCollection;
}

IPluginV3* InhomogeneousSampleCreator::createPlugin(
    char const* /* name */, PluginFieldCollection const* fc, TensorRTPhase /* phase */) noexcept
{
    try
    {
        require(fc != nullptr, "no field collection");
        SampleAttributes attrs;
        auto const slots = fieldSlots(attrs);
        for (int32_t i = 0; i < fc->nbFields; ++i)
        {
            PluginField const& field = fc->fields[i];
            require(field.name != nullptr, "unnamed field");
            std::string const name{field.name};
            if (name == "plugin_version" || name == "plugin_namespace")
            {
                continue; // ONNX node attributes that select the plugin, not parameters of it
            }
            FieldSlot const* slot = nullptr;
            for (FieldSlot const& s : slots)
            {
                slot = name == s.name ? &s : slot;
            }
            require(slot != nullptr, "unknown field '" + name + "'");
            require(field.type == slot->type && field.length == 1 && field.data != nullptr,
                "field '" + name + "' must hold one " + typeName(slot->type) + " (got " + typeName(field.type) + " x "
                    + std::to_string(field.length) + ")");
            std::memcpy(slot->data, field.data, sizeof(int32_t));
        }
        return new InhomogeneousSamplePlugin(attrs);
    }
    catch (std::exception const& e)
    {
        reportError("createPlugin", e.what());
    }
    return nullptr;
}

namespace
{

InhomogeneousSampleCreator& theCreator() noexcept
{
    static InhomogeneousSampleCreator sCreator;
    return sCreator;
}

std::atomic<bool> gRegistered{false};

} // namespace

} // namespace frpt

extern "C" IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    static IPluginCreatorInterface* const kCREATORS[] = {&frpt::theCreator()};
    nbCreators = 1;
    frpt::gRegistered = true;
    return kCREATORS;
}

extern "C" void setLoggerFinder(ILoggerFinder* finder)
{
    frpt::gLoggerFinder.set(finder);
}

extern "C" int32_t frptPluginRegistered()
{
    return frpt::gRegistered ? 1 : 0;
}

extern "C" int32_t frptPluginTensorRTVersion()
{
    return NV_TENSORRT_MAJOR * 10000 + NV_TENSORRT_MINOR * 100 + NV_TENSORRT_PATCH;
}

extern "C" int32_t frptLoadIntoRegistry(IPluginRegistry* registry, char const* libraryPath)
{
    if (registry == nullptr || libraryPath == nullptr)
    {
        return frpt::kLOAD_BAD_ARGUMENT;
    }
    if (frpt::gRegistered)
    {
        return frpt::kLOAD_OK;
    }
    if (registry->getCreator(frpt::kPLUGIN_NAME, frpt::kPLUGIN_VERSION, frpt::kPLUGIN_NAMESPACE) != nullptr)
    {
        return frpt::kLOAD_OTHER_COPY;
    }
    // The registry dlopens the file (the same object as this copy when the path names it) and calls getCreators.
    bool const loaded = registry->loadLibrary(libraryPath) != nullptr;
    return loaded && frpt::gRegistered ? frpt::kLOAD_OK : frpt::kLOAD_FAILED;
}
