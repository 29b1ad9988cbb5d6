"""The part of the TFLite flatbuffer schema (``schema.fbs``, file identifier ``TFL3``) that irc reads and writes.

Everything here is data: enums as name -> code maps, tables as ordered field lists. A field's position in its
table's declaration is its flatbuffer slot, so declarations must list every field of the real schema in order,
deprecated ones included. A union field takes two slots: ``<name>_type`` (a ubyte) then ``<name>`` itself.

Adding the options of a new builtin op is one ``table(...)`` line appended to ``BUILTIN_OPTIONS`` (or
``BUILTIN_OPTIONS_2``): its position in the list is its union code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3

# Metadata names a TFLite file may carry. The runtime version is 16 bytes, zero padded (`runtime_version`).
MIN_RUNTIME_VERSION = "min_runtime_version"
PRODUCER = "irc_producer"


def runtime_version(text: str) -> bytes:
    """The bytes of a ``min_runtime_version`` entry, laid out as TF's converter writes them."""
    return text.encode().ljust(16, b"\0")


# Scalar schema types -> struct format characters (numpy understands the same codes).
SCALARS = {
    "bool": "?", "byte": "b", "ubyte": "B", "short": "h", "ushort": "H",
    "int": "i", "uint": "I", "long": "q", "ulong": "Q", "float": "f", "double": "d",
}


@dataclass(frozen=True)
class Enum:
    name: str
    base: str  # a key of SCALARS
    codes: dict[str, int]

    def __post_init__(self):
        object.__setattr__(self, "names", {code: name for name, code in self.codes.items()})

    def name_of(self, code: int) -> str | int:
        """The member name of ``code``, or ``code`` itself when this schema does not know it (a newer file)."""
        return self.names.get(code, code)

    def code_of(self, value: str | int) -> int:
        return value if isinstance(value, int) else self.codes[value]


def enum(name: str, base: str, members: str) -> Enum:
    """Members are numbered from 0 in order; ``NAME=7`` restarts the count at 7."""
    codes, code = {}, 0
    for word in members.split():
        word, _, explicit = word.partition("=")
        code = int(explicit) if explicit else code
        codes[word] = code
        code += 1
    return Enum(name, base, codes)


TENSOR_TYPE = enum("TensorType", "byte", """
    FLOAT32 FLOAT16 INT32 UINT8 INT64 STRING BOOL INT16 COMPLEX64 INT8 FLOAT64 COMPLEX128 UINT64
    RESOURCE VARIANT UINT32 UINT16 INT4 BFLOAT16 INT2 UINT4""")

# Bytes per element of each tensor type; None where the size is not fixed (strings, handles).
# The sub-byte types count one byte per element here; the validator also accepts packed buffers.
TYPE_SIZES = {
    "FLOAT32": 4, "FLOAT16": 2, "INT32": 4, "UINT8": 1, "INT64": 8, "STRING": None, "BOOL": 1, "INT16": 2,
    "COMPLEX64": 8, "INT8": 1, "FLOAT64": 8, "COMPLEX128": 16, "UINT64": 8, "RESOURCE": None,
    "VARIANT": None, "UINT32": 4, "UINT16": 2, "INT4": 1, "BFLOAT16": 2, "INT2": 1, "UINT4": 1,
}

# numpy dtype strings of the types numpy has (little endian, as TFLite stores data).
NUMPY_DTYPES = {
    "FLOAT32": "<f4", "FLOAT16": "<f2", "INT32": "<i4", "UINT8": "u1", "INT64": "<i8", "BOOL": "?",
    "INT16": "<i2", "COMPLEX64": "<c8", "INT8": "i1", "FLOAT64": "<f8", "COMPLEX128": "<c16",
    "UINT64": "<u8", "UINT32": "<u4", "UINT16": "<u2",
}

BUILTIN_OPERATOR = enum("BuiltinOperator", "int", """
    ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE EMBEDDING_LOOKUP
    FLOOR FULLY_CONNECTED HASHTABLE_LOOKUP L2_NORMALIZATION L2_POOL_2D LOCAL_RESPONSE_NORMALIZATION
    LOGISTIC LSH_PROJECTION LSTM MAX_POOL_2D MUL RELU RELU_N1_TO_1 RELU6 RESHAPE RESIZE_BILINEAR RNN
    SOFTMAX SPACE_TO_DEPTH SVDF TANH CONCAT_EMBEDDINGS SKIP_GRAM CALL CUSTOM EMBEDDING_LOOKUP_SPARSE PAD
    UNIDIRECTIONAL_SEQUENCE_RNN GATHER BATCH_TO_SPACE_ND SPACE_TO_BATCH_ND TRANSPOSE MEAN SUB DIV SQUEEZE
    UNIDIRECTIONAL_SEQUENCE_LSTM STRIDED_SLICE BIDIRECTIONAL_SEQUENCE_RNN EXP TOPK_V2 SPLIT LOG_SOFTMAX
    DELEGATE BIDIRECTIONAL_SEQUENCE_LSTM CAST PRELU MAXIMUM ARG_MAX MINIMUM LESS NEG PADV2 GREATER
    GREATER_EQUAL LESS_EQUAL SELECT SLICE SIN TRANSPOSE_CONV SPARSE_TO_DENSE TILE EXPAND_DIMS EQUAL
    NOT_EQUAL LOG SUM SQRT RSQRT SHAPE POW ARG_MIN FAKE_QUANT REDUCE_PROD REDUCE_MAX PACK LOGICAL_OR
    ONE_HOT LOGICAL_AND LOGICAL_NOT UNPACK REDUCE_MIN FLOOR_DIV REDUCE_ANY SQUARE ZEROS_LIKE FILL
    FLOOR_MOD RANGE RESIZE_NEAREST_NEIGHBOR LEAKY_RELU SQUARED_DIFFERENCE MIRROR_PAD ABS SPLIT_V UNIQUE
    CEIL REVERSE_V2 ADD_N GATHER_ND COS WHERE RANK ELU REVERSE_SEQUENCE MATRIX_DIAG QUANTIZE
    MATRIX_SET_DIAG ROUND HARD_SWISH IF WHILE NON_MAX_SUPPRESSION_V4 NON_MAX_SUPPRESSION_V5 SCATTER_ND
    SELECT_V2 DENSIFY SEGMENT_SUM BATCH_MATMUL PLACEHOLDER_FOR_GREATER_OP_CODES CUMSUM CALL_ONCE
    BROADCAST_TO RFFT2D CONV_3D IMAG REAL COMPLEX_ABS HASHTABLE HASHTABLE_FIND HASHTABLE_IMPORT
    HASHTABLE_SIZE REDUCE_ALL CONV_3D_TRANSPOSE VAR_HANDLE READ_VARIABLE ASSIGN_VARIABLE BROADCAST_ARGS
    RANDOM_STANDARD_NORMAL BUCKETIZE RANDOM_UNIFORM MULTINOMIAL GELU DYNAMIC_UPDATE_SLICE RELU_0_TO_1
    UNSORTED_SEGMENT_PROD UNSORTED_SEGMENT_MAX UNSORTED_SEGMENT_SUM ATAN2 UNSORTED_SEGMENT_MIN SIGN
    BITCAST BITWISE_XOR RIGHT_SHIFT
    STABLEHLO_LOGISTIC=162 STABLEHLO_ADD STABLEHLO_DIVIDE STABLEHLO_MULTIPLY STABLEHLO_MAXIMUM
    STABLEHLO_RESHAPE STABLEHLO_CLAMP STABLEHLO_CONCATENATE STABLEHLO_BROADCAST_IN_DIM
    STABLEHLO_CONVOLUTION STABLEHLO_SLICE STABLEHLO_CUSTOM_CALL STABLEHLO_REDUCE STABLEHLO_ABS
    STABLEHLO_AND STABLEHLO_COSINE STABLEHLO_EXPONENTIAL STABLEHLO_FLOOR STABLEHLO_LOG STABLEHLO_MINIMUM
    STABLEHLO_NEGATE STABLEHLO_OR STABLEHLO_POWER STABLEHLO_REMAINDER STABLEHLO_RSQRT STABLEHLO_SELECT
    STABLEHLO_SUBTRACT STABLEHLO_TANH STABLEHLO_SCATTER STABLEHLO_COMPARE STABLEHLO_CONVERT
    STABLEHLO_DYNAMIC_SLICE STABLEHLO_DYNAMIC_UPDATE_SLICE STABLEHLO_PAD STABLEHLO_IOTA
    STABLEHLO_DOT_GENERAL STABLEHLO_REDUCE_WINDOW STABLEHLO_SORT STABLEHLO_WHILE STABLEHLO_GATHER
    STABLEHLO_TRANSPOSE DILATE STABLEHLO_RNG_BIT_GENERATOR REDUCE_WINDOW STABLEHLO_COMPOSITE
    STABLEHLO_SHIFT_LEFT STABLEHLO_CBRT STABLEHLO_CASE""")

# Codes above this live only in OperatorCode.builtin_code; the old byte field holds this placeholder.
DEPRECATED_CODE_LIMIT = 127

PADDING = enum("Padding", "byte", "SAME VALID")
ACTIVATION = enum("ActivationFunctionType", "byte", "NONE RELU RELU_N1_TO_1 RELU6 TANH SIGN_BIT")

ENUMS = {e.name: e for e in [
    TENSOR_TYPE, BUILTIN_OPERATOR, PADDING, ACTIVATION,
    enum("CustomOptionsFormat", "byte", "FLEXBUFFERS"),
    enum("LSHProjectionType", "byte", "UNKNOWN SPARSE DENSE"),
    enum("FullyConnectedOptionsWeightsFormat", "byte", "DEFAULT SHUFFLED4x16INT8"),
    enum("LSTMKernelType", "byte", "FULL BASIC"),
    enum("CombinerType", "byte", "SUM MEAN SQRTN"),
    enum("MirrorPadMode", "byte", "REFLECT SYMMETRIC"),
    enum("RngAlgorithm", "byte", "DEFAULT PHILOX THREEFRY"),
    enum("ReduceWindowFunction", "int", "UNSUPPORTED ADD MUL MINIMUM MAXIMUM ALL ANY"),
    enum("StablehloPrecisionConfig", "uint", "DEFAULT HIGH HIGHEST"),
    enum("StablehloComparisonDirection", "uint", """
        STABLEHLO_COMPARISON_DIRECTION_EQ STABLEHLO_COMPARISON_DIRECTION_NE STABLEHLO_COMPARISON_DIRECTION_GE
        STABLEHLO_COMPARISON_DIRECTION_GT STABLEHLO_COMPARISON_DIRECTION_LE STABLEHLO_COMPARISON_DIRECTION_LT"""),
    enum("StablehloComparisonType", "uint", """
        STABLEHLO_COMPARISON_TYPE_NOTYPE STABLEHLO_COMPARISON_TYPE_FLOAT
        STABLEHLO_COMPARISON_TYPE_FLOAT_TOTAL_ORDER STABLEHLO_COMPARISON_TYPE_SIGNED
        STABLEHLO_COMPARISON_TYPE_UNSIGNED"""),
]}

UNIONS = {"BuiltinOptions", "BuiltinOptions2", "QuantizationDetails"}


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # a scalar, enum, table or union name, "string", or "[element]"
    slot: int
    default: object = None

    @property
    def element(self) -> str | None:
        """The element type of a vector field, else None."""
        return self.type[1:-1] if self.type.startswith("[") else None

    @property
    def scalar(self) -> str | None:
        """The struct format of a scalar or enum field (or of a vector's elements), else None."""
        name = self.element or self.type
        if name in ENUMS:
            name = ENUMS[name].base
        return SCALARS.get(name)

    @property
    def enum(self) -> Enum | None:
        return ENUMS.get(self.element or self.type)


@dataclass(frozen=True)
class Table:
    name: str
    fields: tuple[Field, ...]
    slots: dict[str, Field] = field(compare=False, repr=False)

    def __getitem__(self, name: str) -> Field:
        return self.slots[name]

    @property
    def size(self) -> int:
        """The number of vtable slots."""
        return len(self.fields)


def table(name: str, fields: str = "") -> Table:
    """Declare a table from ``name:type`` or ``name:type=default`` words, in schema order."""
    out = []
    for word in fields.split():
        fname, _, ftype = word.partition(":")
        ftype, _, text = ftype.partition("=")
        if ftype in UNIONS:  # the hidden type tag comes first
            out.append(Field(fname + "_type", "ubyte", len(out), 0))
        out.append(Field(fname, ftype, len(out), _default(ftype, text)))
    fields_ = tuple(out)
    return Table(name, fields_, {f.name: f for f in fields_})


def _default(ftype: str, text: str) -> object:
    if ftype in ENUMS:
        e = ENUMS[ftype]
        return e.name_of(e.code_of(text) if text else 0)
    if ftype == "bool":
        return text == "true"
    if ftype in ("float", "double"):
        return float(text or 0)
    if ftype in SCALARS:
        return int(text or 0)
    return None


# The tables irc models with its own dataclasses (see flatbuffer.py).
MODEL = table("Model", """version:uint operator_codes:[OperatorCode] subgraphs:[SubGraph] description:string
    buffers:[Buffer] metadata_buffer:[int] metadata:[Metadata] signature_defs:[SignatureDef]
    external_buffer_groups:[ExternalBufferGroup] external_buffers:[ExternalBuffer]""")
SUBGRAPH = table("SubGraph", "tensors:[Tensor] inputs:[int] outputs:[int] operators:[Operator] name:string "
                  "debug_metadata_index:int=-1")
TENSOR = table("Tensor", """shape:[int] type:TensorType buffer:uint name:string
    quantization:QuantizationParameters is_variable:bool sparsity:SparsityParameters shape_signature:[int]
    has_rank:bool variant_tensors:[VariantSubType] external_buffer:uint""")
QUANTIZATION = table("QuantizationParameters", """min:[float] max:[float] scale:[float] zero_point:[long]
    details:QuantizationDetails quantized_dimension:int""")
CUSTOM_QUANTIZATION = table("CustomQuantization", "custom:[ubyte]")
# scales and zero_points are tensor indices (zero_points -1: symmetric), as ai-edge-quantizer writes them
BLOCKWISE_QUANTIZATION = table("BlockwiseQuantization", "scales:int zero_points:int block_size:int")
DETAILS_CUSTOM, DETAILS_BLOCKWISE = 1, 2  # QuantizationDetails union members
OPERATOR_CODE = table("OperatorCode", "deprecated_builtin_code:byte custom_code:string version:int=1 "
                      "builtin_code:BuiltinOperator")
OPERATOR = table("Operator", """opcode_index:uint inputs:[int] outputs:[int] builtin_options:BuiltinOptions
    custom_options:[ubyte] custom_options_format:CustomOptionsFormat mutating_variable_inputs:[bool]
    intermediates:[int] large_custom_options_offset:ulong large_custom_options_size:ulong
    builtin_options_2:BuiltinOptions2 debug_metadata_index:int=-1""")
BUFFER = table("Buffer", "data:[ubyte] offset:ulong size:ulong")
METADATA = table("Metadata", "name:string buffer:uint")
TENSOR_MAP = table("TensorMap", "name:string tensor_index:uint")
SIGNATURE_DEF = table("SignatureDef", """inputs:[TensorMap] outputs:[TensorMap] signature_key:string
    deprecated_tag:string subgraph_index:uint""")

# Shorthands for the option tables below.
_ACT = "fused_activation_function:ActivationFunctionType"
_PAD_STRIDE = "padding:Padding stride_w:int stride_h:int"

# The BuiltinOptions union, in union order: the union code of an entry is its index + 1.
BUILTIN_OPTIONS = [
    table("Conv2DOptions", f"{_PAD_STRIDE} {_ACT} dilation_w_factor:int=1 dilation_h_factor:int=1 "
                           "quantized_bias_type:TensorType"),
    table("DepthwiseConv2DOptions", f"{_PAD_STRIDE} depth_multiplier:int {_ACT} dilation_w_factor:int=1 "
                                    "dilation_h_factor:int=1"),
    table("ConcatEmbeddingsOptions", "num_channels:int num_columns_per_channel:[int] embedding_dim_per_channel:[int]"),
    table("LSHProjectionOptions", "type:LSHProjectionType"),
    table("Pool2DOptions", f"{_PAD_STRIDE} filter_width:int filter_height:int {_ACT}"),
    table("SVDFOptions", f"rank:int {_ACT} asymmetric_quantize_inputs:bool"),
    table("RNNOptions", f"{_ACT} asymmetric_quantize_inputs:bool"),
    table("FullyConnectedOptions", f"{_ACT} weights_format:FullyConnectedOptionsWeightsFormat keep_num_dims:bool "
                                   "asymmetric_quantize_inputs:bool quantized_bias_type:TensorType"),
    table("SoftmaxOptions", "beta:float"),
    table("ConcatenationOptions", f"axis:int {_ACT}"),
    table("AddOptions", f"{_ACT} pot_scale_int16:bool=true"),
    table("L2NormOptions", _ACT),
    table("LocalResponseNormalizationOptions", "radius:int bias:float alpha:float beta:float"),
    table("LSTMOptions", f"{_ACT} cell_clip:float proj_clip:float kernel_type:LSTMKernelType "
                         "asymmetric_quantize_inputs:bool"),
    table("ResizeBilinearOptions", "new_height:int new_width:int align_corners:bool half_pixel_centers:bool"),
    table("CallOptions", "subgraph:uint"),
    table("ReshapeOptions", "new_shape:[int]"),
    table("SkipGramOptions", "ngram_size:int max_skip_size:int include_all_ngrams:bool"),
    table("SpaceToDepthOptions", "block_size:int"),
    table("EmbeddingLookupSparseOptions", "combiner:CombinerType"),
    table("MulOptions", _ACT),
    table("PadOptions"),
    table("GatherOptions", "axis:int batch_dims:int"),
    table("BatchToSpaceNDOptions"),
    table("SpaceToBatchNDOptions"),
    table("TransposeOptions"),
    table("ReducerOptions", "keep_dims:bool"),
    table("SubOptions", f"{_ACT} pot_scale_int16:bool=true"),
    table("DivOptions", _ACT),
    table("SqueezeOptions", "squeeze_dims:[int]"),
    table("SequenceRNNOptions", f"time_major:bool {_ACT} asymmetric_quantize_inputs:bool"),
    table("StridedSliceOptions", "begin_mask:int end_mask:int ellipsis_mask:int new_axis_mask:int "
                                 "shrink_axis_mask:int offset:bool"),
    table("ExpOptions"),
    table("TopKV2Options"),
    table("SplitOptions", "num_splits:int"),
    table("LogSoftmaxOptions"),
    table("CastOptions", "in_data_type:TensorType out_data_type:TensorType"),
    table("DequantizeOptions"),
    table("MaximumMinimumOptions"),
    table("ArgMaxOptions", "output_type:TensorType"),
    table("LessOptions"),
    table("NegOptions"),
    table("PadV2Options"),
    table("GreaterOptions"),
    table("GreaterEqualOptions"),
    table("LessEqualOptions"),
    table("SelectOptions"),
    table("SliceOptions"),
    table("TransposeConvOptions", f"{_PAD_STRIDE} {_ACT} quantized_bias_type:TensorType"),
    table("SparseToDenseOptions", "validate_indices:bool"),
    table("TileOptions"),
    table("ExpandDimsOptions"),
    table("EqualOptions"),
    table("NotEqualOptions"),
    table("ShapeOptions", "out_type:TensorType"),
    table("PowOptions"),
    table("ArgMinOptions", "output_type:TensorType"),
    table("FakeQuantOptions", "min:float max:float num_bits:int narrow_range:bool"),
    table("PackOptions", "values_count:int axis:int"),
    table("LogicalOrOptions"),
    table("OneHotOptions", "axis:int"),
    table("LogicalAndOptions"),
    table("LogicalNotOptions"),
    table("UnpackOptions", "num:int axis:int"),
    table("FloorDivOptions"),
    table("SquareOptions"),
    table("ZerosLikeOptions"),
    table("FillOptions"),
    table("BidirectionalSequenceLSTMOptions", f"{_ACT} cell_clip:float proj_clip:float merge_outputs:bool "
                                              "time_major:bool=true asymmetric_quantize_inputs:bool"),
    table("BidirectionalSequenceRNNOptions", f"time_major:bool {_ACT} merge_outputs:bool "
                                             "asymmetric_quantize_inputs:bool"),
    table("UnidirectionalSequenceLSTMOptions", f"{_ACT} cell_clip:float proj_clip:float time_major:bool "
                                               "asymmetric_quantize_inputs:bool diagonal_recurrent_tensors:bool"),
    table("FloorModOptions"),
    table("RangeOptions"),
    table("ResizeNearestNeighborOptions", "align_corners:bool half_pixel_centers:bool"),
    table("LeakyReluOptions", "alpha:float"),
    table("SquaredDifferenceOptions"),
    table("MirrorPadOptions", "mode:MirrorPadMode"),
    table("AbsOptions"),
    table("SplitVOptions", "num_splits:int"),
    table("UniqueOptions", "idx_out_type:TensorType=INT32"),
    table("ReverseV2Options"),
    table("AddNOptions"),
    table("GatherNdOptions"),
    table("CosOptions"),
    table("WhereOptions"),
    table("RankOptions"),
    table("ReverseSequenceOptions", "seq_dim:int batch_dim:int"),
    table("MatrixDiagOptions"),
    table("QuantizeOptions"),
    table("MatrixSetDiagOptions"),
    table("HardSwishOptions"),
    table("IfOptions", "then_subgraph_index:int else_subgraph_index:int"),
    table("WhileOptions", "cond_subgraph_index:int body_subgraph_index:int"),
    table("DepthToSpaceOptions", "block_size:int"),
    table("NonMaxSuppressionV4Options"),
    table("NonMaxSuppressionV5Options"),
    table("ScatterNdOptions"),
    table("SelectV2Options"),
    table("DensifyOptions"),
    table("SegmentSumOptions"),
    table("BatchMatMulOptions", "adj_x:bool adj_y:bool asymmetric_quantize_inputs:bool"),
    table("CumsumOptions", "exclusive:bool reverse:bool"),
    table("CallOnceOptions", "init_subgraph_index:int"),
    table("BroadcastToOptions"),
    table("Rfft2dOptions"),
    table("Conv3DOptions", f"padding:Padding stride_d:int stride_w:int stride_h:int {_ACT} dilation_d_factor:int=1 "
                           "dilation_w_factor:int=1 dilation_h_factor:int=1"),
    table("HashtableOptions", "table_id:int key_dtype:TensorType value_dtype:TensorType"),
    table("HashtableFindOptions"),
    table("HashtableImportOptions"),
    table("HashtableSizeOptions"),
    table("VarHandleOptions", "container:string shared_name:string"),
    table("ReadVariableOptions"),
    table("AssignVariableOptions"),
    table("RandomOptions", "seed:long seed2:long"),
    table("BucketizeOptions", "boundaries:[float]"),
    table("GeluOptions", "approximate:bool"),
    table("DynamicUpdateSliceOptions"),
    table("UnsortedSegmentProdOptions"),
    table("UnsortedSegmentMaxOptions"),
    table("UnsortedSegmentMinOptions"),
    table("UnsortedSegmentSumOptions"),
    table("ATan2Options"),
    table("SignOptions"),
    table("BitcastOptions"),
    table("BitwiseXorOptions"),
    table("RightShiftOptions"),
]

# The BuiltinOptions2 union (StableHLO ops and later), same numbering rule.
BUILTIN_OPTIONS_2 = [
    table("StablehloConcatenateOptions", "dimension:long"),
    table("StablehloBroadcastInDimOptions", "broadcast_dimensions:[long]"),
    table("StablehloSliceOptions", "start_indices:[long] limit_indices:[long] strides:[long]"),
    table("StablehloConvolutionOptions", """window_strides:[long] padding:[long] lhs_dilation:[long]
        rhs_dilation:[long] window_reversal:[bool] input_batch_dimension:long input_feature_dimension:long
        input_spatial_dimensions:[long] kernel_input_feature_dimension:long kernel_output_feature_dimension:long
        kernel_spatial_dimensions:[long] output_batch_dimension:long output_feature_dimension:long
        output_spatial_dimensions:[long] feature_group_count:long batch_group_count:long
        precision_config:[StablehloPrecisionConfig]"""),
    table("StablehloCustomCallOptions", """call_target_name:string has_side_effect:bool backend_config:string
        api_version:int called_computations:[int] custom_attributes:[ubyte]"""),
    table("StablehloReduceOptions", "dimensions:[long] body_subgraph_index:int"),
    table("StablehloScatterOptions", """indices_are_sorted:bool update_window_dims:[long]
        inserted_window_dims:[long] scatter_dims_to_operand_dims:[long] index_vector_dim:long unique_indices:bool
        update_computation_subgraph_index:int"""),
    table("StablehloCompareOptions", "comparison_direction:StablehloComparisonDirection "
                                     "compare_type:StablehloComparisonType"),
    table("StablehloDynamicSliceOptions", "slice_sizes:[long]"),
    table("StablehloPadOptions", "edge_padding_low:[long] edge_padding_high:[long] interior_padding:[long]"),
    table("StablehloIotaOptions", "iota_dimension:long"),
    table("StablehloDotGeneralOptions", """lhs_batching_dimensions:[long] rhs_batching_dimensions:[long]
        lhs_contracting_dimensions:[long] rhs_contracting_dimensions:[long]
        precision_config:[StablehloPrecisionConfig]"""),
    table("StablehloReduceWindowOptions", """window_dimensions:[long] window_strides:[long] base_dilations:[long]
        window_dilations:[long] padding:[long] body_subgraph_index:int"""),
    table("StablehloSortOptions", "dimension:long is_stable:bool comparator_subgraph_index:int"),
    table("StablehloWhileOptions", "cond_subgraph_index:int body_subgraph_index:int"),
    table("StablehloGatherOptions", """offset_dims:[long] collapsed_slice_dims:[long] start_index_map:[long]
        index_vector_dim:long slice_sizes:[long] indices_are_sorted:bool"""),
    table("StablehloTransposeOptions", "permutation:[long]"),
    table("DilateOptions"),
    table("StablehloRngBitGeneratorOptions", "algorithm:RngAlgorithm"),
    table("ReduceWindowOptions", "reduce_function:ReduceWindowFunction"),
    table("StableHLOCompositeOptions", """name:string decomposition_subgraph_index:int
        composite_attributes:[ubyte] composite_attributes_format:CustomOptionsFormat version:int"""),
    table("StablehloShiftLeftOptions"),
    table("StablehloCaseOptions", "branch_subgraph_indices:[int]"),
]

# Every options table by name, with the union field it goes in and its code there.
OPTIONS = {t.name: t for t in BUILTIN_OPTIONS + BUILTIN_OPTIONS_2}
UNION_OF = {t.name: ("builtin_options", i + 1) for i, t in enumerate(BUILTIN_OPTIONS)}
UNION_OF |= {t.name: ("builtin_options_2", i + 1) for i, t in enumerate(BUILTIN_OPTIONS_2)}

# Ops whose options table is not named after the op (see `options_table`).
_SHARED_OPTIONS = {
    "AVERAGE_POOL_2D": "Pool2DOptions", "MAX_POOL_2D": "Pool2DOptions", "L2_POOL_2D": "Pool2DOptions",
    "MEAN": "ReducerOptions", "SUM": "ReducerOptions", "REDUCE_PROD": "ReducerOptions",
    "REDUCE_MAX": "ReducerOptions", "REDUCE_MIN": "ReducerOptions", "REDUCE_ANY": "ReducerOptions",
    "REDUCE_ALL": "ReducerOptions", "MAXIMUM": "MaximumMinimumOptions", "MINIMUM": "MaximumMinimumOptions",
    "L2_NORMALIZATION": "L2NormOptions", "UNIDIRECTIONAL_SEQUENCE_RNN": "SequenceRNNOptions",
    "CONV_3D_TRANSPOSE": "Conv3DOptions", "RANDOM_STANDARD_NORMAL": "RandomOptions",
    "RANDOM_UNIFORM": "RandomOptions", "MULTINOMIAL": "RandomOptions",
}
_BY_KEY = {t.name.removesuffix("Options").lower(): t.name for t in OPTIONS.values()}


def options_table(op: str) -> str | None:
    """The options table a builtin op takes (``CONV_2D`` -> ``Conv2DOptions``), or None for ops without one."""
    return _SHARED_OPTIONS.get(op) or _BY_KEY.get(op.replace("_", "").lower())
