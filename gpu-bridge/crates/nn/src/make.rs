//! Small ONNX graphs built in code: what the tests and examples serve through `wasi:nn`,
//! without Python's `onnx` package or a model file from elsewhere.

use prost::Message;
use tract_onnx::pb::{
    tensor_shape_proto::{dimension, Dimension},
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

/// ONNX's code for 32-bit floats.
const FLOAT: i32 = 1;

/// The ONNX bytes of a one-hidden-layer MLP classifier, `softmax(relu(x·W1 + b1)·W2 + b2)`,
/// with input `features` (FP32 `[N, inputs]`, N free) and output `probabilities`
/// (FP32 `[N, classes]`). `w1` is `[inputs][hidden]`, `w2` is `[hidden][classes]`.
pub fn mlp(w1: &[Vec<f32>], b1: &[f32], w2: &[Vec<f32>], b2: &[f32]) -> Vec<u8> {
    let (inputs, hidden, classes) = (w1.len(), b1.len(), b2.len());
    let node =
        |op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>| NodeProto {
            op_type: op.into(),
            name: output.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            attribute,
            ..Default::default()
        };
    let axis = AttributeProto {
        name: "axis".into(),
        i: 1,
        r#type: 2, // INT
        ..Default::default()
    };
    let graph = GraphProto {
        name: "mlp".into(),
        node: vec![
            node("MatMul", &["features", "w1"], "xw1", vec![]),
            node("Add", &["xw1", "b1"], "h", vec![]),
            node("Relu", &["h"], "a", vec![]),
            node("MatMul", &["a", "w2"], "aw2", vec![]),
            node("Add", &["aw2", "b2"], "logits", vec![]),
            node("Softmax", &["logits"], "probabilities", vec![axis]),
        ],
        initializer: vec![
            floats("w1", &[inputs, hidden], w1.concat()),
            floats("b1", &[hidden], b1.to_vec()),
            floats("w2", &[hidden, classes], w2.concat()),
            floats("b2", &[classes], b2.to_vec()),
        ],
        input: vec![value_info("features", inputs)],
        output: vec![value_info("probabilities", classes)],
        ..Default::default()
    };
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        producer_name: "weft-nn".into(),
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

fn floats(name: &str, dims: &[usize], data: Vec<f32>) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.iter().map(|d| *d as i64).collect(),
        data_type: FLOAT,
        float_data: data,
        ..Default::default()
    }
}

/// A `[N, width]` FP32 value, N free.
fn value_info(name: &str, width: usize) -> ValueInfoProto {
    let dim = |value| Dimension {
        value: Some(value),
        ..Default::default()
    };
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: FLOAT,
                shape: Some(TensorShapeProto {
                    dim: vec![
                        dim(dimension::Value::DimParam("N".into())),
                        dim(dimension::Value::DimValue(width as i64)),
                    ],
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}
