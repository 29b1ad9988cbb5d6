"""Protobuf messages for reading TF files, declared here so no TensorFlow module is needed.

Only the fields irc reads are declared, with TF's field numbers; protobuf skips the others (and keeps
them as unknown fields, so a NodeDef serialises back whole). Enums (DataType...) are declared int32,
which reads the same on the wire. Maps are repeated (key, value) entries; ``entries()`` turns them
into dicts.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

# message name -> [(field name, number, type)]; "T*" is repeated T; a capitalised type is a message.
_MESSAGES: dict[str, list[tuple[str, int, str]]] = {
    "Dim": [("size", 1, "int64"), ("name", 2, "string")],
    "TensorShapeProto": [("dim", 2, "Dim*"), ("unknown_rank", 3, "bool")],
    "TensorProto": [
        ("dtype", 1, "int32"), ("tensor_shape", 2, "TensorShapeProto"), ("tensor_content", 4, "bytes"),
        ("half_val", 13, "int32*"), ("float_val", 5, "float*"), ("double_val", 6, "double*"),
        ("int_val", 7, "int32*"), ("string_val", 8, "bytes*"), ("scomplex_val", 9, "float*"),
        ("int64_val", 10, "int64*"), ("bool_val", 11, "bool*"), ("dcomplex_val", 12, "double*"),
        ("uint32_val", 16, "uint32*"), ("uint64_val", 17, "uint64*"), ("float8_val", 18, "bytes"),
    ],
    "ListValue": [
        ("s", 2, "bytes*"), ("i", 3, "int64*"), ("f", 4, "float*"), ("b", 5, "bool*"), ("type", 6, "int32*"),
        ("shape", 7, "TensorShapeProto*"), ("tensor", 8, "TensorProto*"), ("func", 9, "NameAttrList*"),
    ],
    "AttrValue": [
        ("list", 1, "ListValue"), ("s", 2, "bytes"), ("i", 3, "int64"), ("f", 4, "float"), ("b", 5, "bool"),
        ("type", 6, "int32"), ("shape", 7, "TensorShapeProto"), ("tensor", 8, "TensorProto"),
        ("placeholder", 9, "string"), ("func", 10, "NameAttrList"),
    ],
    "AttrEntry": [("key", 1, "string"), ("value", 2, "AttrValue")],
    "NameAttrList": [("name", 1, "string"), ("attr", 2, "AttrEntry*")],
    "NodeDef": [("name", 1, "string"), ("op", 2, "string"), ("input", 3, "string*"), ("device", 4, "string"),
                ("attr", 5, "AttrEntry*")],
    "ArgDef": [("name", 1, "string"), ("type", 3, "int32"), ("type_attr", 4, "string"),
               ("number_attr", 5, "string"), ("type_list_attr", 6, "string")],
    "OpDef": [("name", 1, "string"), ("input_arg", 2, "ArgDef*"), ("output_arg", 3, "ArgDef*")],
    "StringEntry": [("key", 1, "string"), ("value", 2, "string")],
    "FunctionDef": [("signature", 1, "OpDef"), ("node_def", 3, "NodeDef*"), ("ret", 4, "StringEntry*"),
                    ("attr", 5, "AttrEntry*")],
    "FunctionDefLibrary": [("function", 1, "FunctionDef*")],
    "GraphDef": [("node", 1, "NodeDef*"), ("library", 2, "FunctionDefLibrary")],
    "TensorInfo": [("name", 1, "string"), ("dtype", 2, "int32"), ("tensor_shape", 3, "TensorShapeProto")],
    "TensorInfoEntry": [("key", 1, "string"), ("value", 2, "TensorInfo")],
    "SignatureDef": [("inputs", 1, "TensorInfoEntry*"), ("outputs", 2, "TensorInfoEntry*"),
                     ("method_name", 3, "string")],
    "SignatureEntry": [("key", 1, "string"), ("value", 2, "SignatureDef")],
    "MetaInfoDef": [("tags", 4, "string*"), ("tensorflow_version", 5, "string")],
    # saved_object_graph.proto
    "ObjectReference": [("node_id", 1, "int32"), ("local_name", 2, "string")],
    "SavedFunction": [("concrete_functions", 1, "string*")],
    "SavedBareConcreteFunction": [("concrete_function_name", 1, "string")],
    "SavedVariable": [("dtype", 1, "int32"), ("shape", 2, "TensorShapeProto"), ("name", 6, "string")],
    "SavedConstant": [("operation", 1, "string")],
    "SavedUserObject": [("identifier", 1, "string")],
    "SavedObject": [
        ("children", 1, "ObjectReference*"), ("user_object", 4, "SavedUserObject"), ("asset", 5, "Empty"),
        ("function", 6, "SavedFunction"), ("variable", 7, "SavedVariable"),
        ("bare_concrete_function", 8, "SavedBareConcreteFunction"), ("constant", 9, "SavedConstant"),
        ("resource", 10, "Empty"), ("captured_tensor", 12, "Empty"),
    ],
    "Empty": [],
    "SavedConcreteFunction": [("bound_inputs", 2, "int32*")],
    "ConcreteFunctionEntry": [("key", 1, "string"), ("value", 2, "SavedConcreteFunction")],
    "SavedObjectGraph": [("nodes", 1, "SavedObject*"), ("concrete_functions", 2, "ConcreteFunctionEntry*")],
    "MetaGraphDef": [("meta_info_def", 1, "MetaInfoDef"), ("graph_def", 2, "GraphDef"),
                     ("collection_def", 4, "CollectionEntry*"), ("signature_def", 5, "SignatureEntry*"),
                     ("asset_file_def", 6, "AssetFileDef*"), ("object_graph_def", 7, "SavedObjectGraph")],
    "AssetFileDef": [("tensor_info", 1, "TensorInfo"), ("filename", 2, "string")],
    "Any": [("type_url", 1, "string"), ("value", 2, "bytes")],
    "AnyList": [("value", 1, "Any*")],
    "CollectionDef": [("any_list", 5, "AnyList")],  # TF1 keeps asset paths in collection saved_model_assets
    "CollectionEntry": [("key", 1, "string"), ("value", 2, "CollectionDef")],
    "SavedModel": [("saved_model_schema_version", 1, "int64"), ("meta_graphs", 2, "MetaGraphDef*")],
    # trackable_object_graph.proto (the checkpoint's object graph)
    "SerializedTensor": [("name", 1, "string"), ("full_name", 2, "string"), ("checkpoint_key", 3, "string")],
    "TrackableObject": [("children", 1, "ObjectReference*"), ("attributes", 2, "SerializedTensor*")],
    "TrackableObjectGraph": [("nodes", 1, "TrackableObject*")],
    # tensor_bundle.proto
    "BundleHeaderProto": [("num_shards", 1, "int32"), ("endianness", 2, "int32")],
    "TensorSliceProto": [],
    "BundleEntryProto": [("dtype", 1, "int32"), ("shape", 2, "TensorShapeProto"), ("shard_id", 3, "int32"),
                         ("offset", 4, "int64"), ("size", 5, "int64"), ("crc32c", 6, "fixed32"),
                         ("slices", 7, "TensorSliceProto*")],
}

# message -> (oneof name, its fields): WhichOneof() tells which one a message holds.
_ONEOFS = {
    "AttrValue": ("value", {"list", "s", "i", "f", "b", "type", "shape", "tensor", "placeholder", "func"}),
    "SavedObject": ("kind", {"user_object", "asset", "function", "variable", "bare_concrete_function",
                             "constant", "resource", "captured_tensor"}),
}

_PACKAGE = "irc_tf"
_F = descriptor_pb2.FieldDescriptorProto


def _build() -> dict[str, type]:
    fdp = descriptor_pb2.FileDescriptorProto(name="irc_tf.proto", package=_PACKAGE, syntax="proto3")
    for name, fields in _MESSAGES.items():
        msg = fdp.message_type.add(name=name)
        oneof, members = _ONEOFS.get(name, ("", set()))
        if oneof:
            msg.oneof_decl.add(name=oneof)
        for fname, number, ftype in fields:
            repeated = ftype.endswith("*")
            ftype = ftype.rstrip("*")
            field = msg.field.add(name=fname, number=number)
            field.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
            if fname in members:
                field.oneof_index = 0
            if ftype[0].isupper():
                field.type = _F.TYPE_MESSAGE
                field.type_name = f".{_PACKAGE}.{ftype}"
            else:
                field.type = getattr(_F, "TYPE_" + ftype.upper())
    # A private pool: no clash with TensorFlow's own descriptors when both are loaded.
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
            for name in _MESSAGES}


MESSAGES = _build()


def parse(message: str, data: bytes):
    """Parse ``data`` as ``message``; raises ValueError on bytes that are not that message."""
    msg = MESSAGES[message]()
    try:
        msg.ParseFromString(data)
    except DecodeError as e:
        raise ValueError(f"not a valid {message}: {e}") from None
    return msg


_WIRE_TYPES = {0: "varint", 1: "fixed64", 2: "length-delimited", 3: "group", 5: "fixed32"}


def check_layout(msg, what: str) -> None:
    """Raises ValueError if a field irc declares arrived with another wire type. Protobuf keeps such a field
    as an unknown field and reads the default in its place, so a damaged file (or a layout irc does not
    know) would otherwise become a wrong model. Fields irc does not declare are skipped as usual."""
    from google.protobuf import unknown_fields

    stack = [(msg, what)]
    while stack:
        msg, what = stack.pop()
        fields = msg.DESCRIPTOR.fields_by_number
        for unknown in unknown_fields.UnknownFieldSet(msg):
            if unknown.field_number in fields:
                name = fields[unknown.field_number].name
                wire = _WIRE_TYPES.get(unknown.wire_type, unknown.wire_type)
                raise ValueError(f"{what}: field '{name}' of {msg.DESCRIPTOR.name} is stored as {wire}, "
                                 "which is not its declared type")
        for field, value in msg.ListFields():
            if field.message_type is not None:
                stack += [(v, what) for v in value] if field.is_repeated else [(value, what)]


def entries(repeated_entries) -> dict:
    """A map field declared as repeated (key, value) entries -> dict (last one wins, as in protobuf)."""
    return {e.key: e.value for e in repeated_entries}
