/*
 * TensorRT IPluginV3 `InhomogeneousSample` (version "1", namespace "frpt"): FRPT's DPP structure modification,
 * the ONNX node of docs/design.md §5.
 *
 *   inputs   0: image     [N, C, H, W]  float | half, LINEAR
 *            1: saliency  [N, 1, g, g]  float (softmax-normalised), LINEAR
 *   output   0: sampled   [N, C, out_h, out_w], the image's type, LINEAR
 *   fields   out_h, out_w, pad (INT32), fwhm (FLOAT32), align_corners (INT32, must be 1) — the node's attributes.
 *
 * Works against TensorRT 10.3 (JetPack 6) and 11.x headers. Kernels: inhomogeneousSampleKernel.h.
 */
#ifndef FRPT_INHOMOGENEOUS_SAMPLE_PLUGIN_H
#define FRPT_INHOMOGENEOUS_SAMPLE_PLUGIN_H

#include <NvInferRuntime.h>

#include <array>
#include <cstdint>

namespace frpt
{

constexpr char const* kPLUGIN_NAME{"InhomogeneousSample"};
constexpr char const* kPLUGIN_VERSION{"1"};
constexpr char const* kPLUGIN_NAMESPACE{"frpt"};

//! The node's attributes with their ONNX defaults (out_h / out_w have none and must be given).
struct SampleAttributes
{
    int32_t outH{0};
    int32_t outW{0};
    int32_t pad{30};
    float fwhm{13.F};
    int32_t alignCorners{1};

    //! Throws std::invalid_argument naming the bad attribute.
    void validate() const;
};

//! One entry of the field schema: name, type and where the value lives in a SampleAttributes.
struct FieldSlot
{
    char const* name;
    nvinfer1::PluginFieldType type;
    void* data;
};

constexpr int32_t kNB_FIELDS{5};

//! The one field schema (creator's getFieldNames, createPlugin's parsing, getFieldsToSerialize) bound to `attrs`.
std::array<FieldSlot, kNB_FIELDS> fieldSlots(SampleAttributes& attrs) noexcept;

class InhomogeneousSamplePlugin final : public nvinfer1::IPluginV3,
                                        public nvinfer1::IPluginV3OneCore,
                                        public nvinfer1::IPluginV3OneBuild,
                                        public nvinfer1::IPluginV3OneRuntime
{
public:
    //! Throws std::invalid_argument on invalid attributes.
    explicit InhomogeneousSamplePlugin(SampleAttributes const& attrs);
    InhomogeneousSamplePlugin(InhomogeneousSamplePlugin const&) = default;
    InhomogeneousSamplePlugin& operator=(InhomogeneousSamplePlugin const&) = delete;
    ~InhomogeneousSamplePlugin() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs, nvinfer1::DataType const* inputTypes,
        int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    SampleAttributes mAttrs;
    std::array<nvinfer1::PluginField, kNB_FIELDS> mFields;
    nvinfer1::PluginFieldCollection mFieldCollection;
};

class InhomogeneousSampleCreator final : public nvinfer1::IPluginCreatorV3One
{
public:
    InhomogeneousSampleCreator();
    ~InhomogeneousSampleCreator() override = default;

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override;

private:
    std::array<nvinfer1::PluginField, kNB_FIELDS> mFields;
    nvinfer1::PluginFieldCollection mFieldCollection;
};

} // namespace frpt

// The library's only exported symbols (hidden visibility and a linker version script, frptPlugins.map). It has no
// static registration and references no libnvinfer symbol: TensorRT's registry registers the creator when it loads
// the library (IPluginRegistry::loadLibrary, Python `trt.get_plugin_registry().load_library(path)`,
// `trtexec --dynamicPlugins=path`) and calls the two entry points below. TENSORRTAPI is empty outside TensorRT.

//! Entry point of IPluginRegistry::loadLibrary: the library's one creator (InhomogeneousSample / "1" / "frpt").
extern "C" __attribute__((visibility("default"))) nvinfer1::IPluginCreatorInterface* const* getCreators(
    int32_t& nbCreators);

//! Entry point of IPluginRegistry::loadLibrary: where the plugin finds TensorRT's logger.
extern "C" __attribute__((visibility("default"))) void setLoggerFinder(nvinfer1::ILoggerFinder* finder);

//! 1 once a registry took this copy's creator through getCreators, else 0.
extern "C" __attribute__((visibility("default"))) int32_t frptPluginRegistered();

//! TensorRT version of the headers the library was built against: NV_TENSORRT_MAJOR * 10000 + NV_TENSORRT_MINOR * 100
//! + NV_TENSORRT_PATCH (getInferLibVersion's encoding since TensorRT 10). IPluginRegistry's and the plugin interfaces'
//! vtables differ between majors (11 dropped the IPluginCreator V1 methods), so a loader compares this major with the
//! running TensorRT's before handing the library to a registry.
extern "C" __attribute__((visibility("default"))) int32_t frptPluginTensorRTVersion();

namespace frpt
{
//! Results of frptLoadIntoRegistry.
constexpr int32_t kLOAD_OK{0};           //!< registered (by this call, or earlier with this copy)
constexpr int32_t kLOAD_FAILED{1};       //!< loadLibrary returned no handle, or loaded another file than this copy
constexpr int32_t kLOAD_OTHER_COPY{2};   //!< another library already registered InhomogeneousSample / 1 / frpt
constexpr int32_t kLOAD_BAD_ARGUMENT{3}; //!< a null registry or path
} // namespace frpt

//! IPluginRegistry::loadLibrary(libraryPath) on `registry`, for loaders without TensorRT's Python bindings (the ctypes
//! route of frpt_runtime.plugin_library). `libraryPath` must name this library's file. Call it only after checking
//! frptPluginTensorRTVersion against the running TensorRT. Returns one of frpt::kLOAD_*.
extern "C" __attribute__((visibility("default"))) int32_t frptLoadIntoRegistry(
    nvinfer1::IPluginRegistry* registry, char const* libraryPath);

#endif // FRPT_INHOMOGENEOUS_SAMPLE_PLUGIN_H
