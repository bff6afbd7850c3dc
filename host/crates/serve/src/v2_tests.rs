//! The V2 codec: what the output limit counts, and property tests (proptest) that arbitrary
//! bytes and JSON never make the decoder or encoder panic, and that what the encoder writes
//! the decoder reads back unchanged.

use super::*;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::json;
use weft_runtime::predictor::Datatype;

fn tensor(name: &str, dt: Datatype, shape: Vec<i64>, data: Vec<u8>) -> Tensor {
    Tensor {
        name: name.into(),
        datatype: dt,
        shape,
        data,
    }
}

fn plain() -> Decoded {
    decode(None, br#"{"inputs": []}"#).unwrap()
}

fn encode_with(
    decoded: &Decoded,
    response: &InferResponse,
    limit: u64,
) -> Result<Encoded, EncodeError> {
    let answer = Answer {
        model: "m",
        version: "1",
        decoded,
        response,
    };
    encode(&answer, limit)
}

/// The exact limit passes and one byte less fails, whatever part of the response is large.
fn assert_limit_is_exact(decoded: &Decoded, response: &InferResponse) {
    let body = encode_with(decoded, response, u64::MAX).unwrap().body;
    let n = body.len() as u64;
    assert_eq!(encode_with(decoded, response, n).unwrap().body, body);
    let e = encode_with(decoded, response, n - 1).unwrap_err();
    assert!(
        matches!(e, EncodeError::TooLarge { limit } if limit == n - 1),
        "{e}"
    );
}

#[test]
fn the_output_limit_counts_the_whole_response() {
    let small = tensor("x", Datatype::Uint8, vec![1], vec![7]);
    // Parameters, a name, a shape, an id: each can make the response large on its own.
    let big_parameters = InferResponse {
        outputs: vec![small.clone()],
        parameters: json!({"p": "x".repeat(10_000)}).to_string(),
    };
    let big_name = InferResponse {
        outputs: vec![tensor(
            &"n".repeat(10_000),
            Datatype::Uint8,
            vec![1],
            vec![7],
        )],
        parameters: "{}".into(),
    };
    let big_shape = InferResponse {
        outputs: vec![tensor("x", Datatype::Uint8, vec![0; 5_000], vec![])],
        parameters: "{}".into(),
    };
    for response in [&big_parameters, &big_name, &big_shape] {
        assert_limit_is_exact(&plain(), response);
        let e = encode_with(&plain(), response, 1024).unwrap_err();
        assert!(
            e.to_string().contains("over the limit of 1024 bytes"),
            "{e}"
        );
    }
    let with_id = decode(
        None,
        format!(r#"{{"id": "{}", "inputs": []}}"#, "i".repeat(5000)).as_bytes(),
    )
    .unwrap();
    let response = InferResponse {
        outputs: vec![small.clone()],
        parameters: "{}".into(),
    };
    assert_limit_is_exact(&with_id, &response);
    // With the binary extension, the JSON part and the raw data together.
    let binary = decode(
        None,
        br#"{"inputs": [], "parameters": {"binary_data_output": true}}"#,
    )
    .unwrap();
    let raw = InferResponse {
        outputs: vec![tensor("x", Datatype::Uint8, vec![3000], vec![1; 3000])],
        parameters: "{}".into(),
    };
    let encoded = encode_with(&binary, &raw, u64::MAX).unwrap();
    assert!(encoded.json_length.is_some());
    assert_limit_is_exact(&binary, &raw);
}

#[test]
fn model_shapes_that_overflow_are_a_bad_tensor_not_a_panic() {
    for shape in [vec![i64::MAX, i64::MAX], vec![1 << 32, 1 << 32], vec![-1]] {
        let response = InferResponse {
            outputs: vec![tensor("y", Datatype::Fp32, shape.clone(), vec![])],
            parameters: "{}".into(),
        };
        let e = encode_with(&plain(), &response, u64::MAX).unwrap_err();
        assert!(matches!(e, EncodeError::BadTensor(_)), "{shape:?}: {e}");
    }
}

/// The request is decoded as the protocol's typed shape: what is wrong is named by its path.
#[test]
fn a_request_of_the_wrong_shape_names_the_field() {
    for (body, path) in [
        (
            r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1.5], "data": [1]}]}"#,
            "inputs[0].shape[0]",
        ),
        (
            r#"{"inputs": [{"datatype": "FP32", "shape": [1], "data": [1]}]}"#,
            "inputs[0]",
        ),
        (r#"{"inputs": [], "outputs": {"name": "y"}}"#, "outputs"),
        (r#"{"inputs": [], "parameters": [1]}"#, "parameters"),
        (r#"{"outputs": []}"#, "not an inference request"),
    ] {
        let Err(DecodeError::Invalid(e)) = decode(None, body.as_bytes()) else {
            panic!("accepted {body}");
        };
        assert!(e.contains(path), "{body}: {e}");
    }
    let Err(DecodeError::Invalid(e)) = decode(None, b"{not json") else {
        panic!("accepted");
    };
    assert!(e.contains("malformed JSON"), "{e}");
}

#[test]
fn client_shapes_that_overflow_are_refused_with_their_field() {
    let body = r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [4294967296, 4294967296], "data": []}]}"#;
    let Err(DecodeError::Invalid(e)) = decode(None, body.as_bytes()) else {
        panic!("accepted");
    };
    assert!(
        e.contains("input `x`")
            && e.contains("[4294967296, 4294967296]")
            && e.contains("overflows"),
        "{e}"
    );
    let body = r#"{"inputs": [{"name": "x", "datatype": "FP64", "shape": [9223372036854775807], "parameters": {"binary_data_size": 0}}]}"#;
    let Err(DecodeError::Invalid(e)) =
        decode(Some(body.len().to_string().as_bytes()), body.as_bytes())
    else {
        panic!("accepted");
    };
    assert!(e.contains("overflows"), "{e}");
}

const DATATYPES: [Datatype; 14] = [
    Datatype::Bool,
    Datatype::Uint8,
    Datatype::Uint16,
    Datatype::Uint32,
    Datatype::Uint64,
    Datatype::Int8,
    Datatype::Int16,
    Datatype::Int32,
    Datatype::Int64,
    Datatype::Fp16,
    Datatype::Bf16,
    Datatype::Fp32,
    Datatype::Fp64,
    Datatype::Bytes,
];

/// `n` valid elements of `dt`, as raw bytes: booleans 0 or 1, finite floats, UTF-8 strings.
fn elements(dt: Datatype, n: usize) -> BoxedStrategy<Vec<u8>> {
    let finite32 = any::<f32>().prop_filter("finite", |f| f.is_finite());
    let finite64 = any::<f64>().prop_filter("finite", |f| f.is_finite());
    match dt {
        Datatype::Bool => vec(any::<bool>(), n)
            .prop_map(|v| v.into_iter().map(u8::from).collect())
            .boxed(),
        Datatype::Fp32 => vec(finite32, n)
            .prop_map(|v| v.iter().flat_map(|f| f.to_le_bytes()).collect())
            .boxed(),
        Datatype::Fp64 => vec(finite64, n)
            .prop_map(|v| v.iter().flat_map(|f| f.to_le_bytes()).collect())
            .boxed(),
        Datatype::Bytes => vec(".{0,6}", n)
            .prop_map(|v| {
                v.iter()
                    .flat_map(|s| (s.len() as u32).to_le_bytes().into_iter().chain(s.bytes()))
                    .collect()
            })
            .boxed(),
        _ => vec(any::<u8>(), n * tensor::width(dt)).boxed(),
    }
}

/// A valid tensor of one of `datatypes`: small shapes, data that matches.
fn valid_tensor(datatypes: Vec<Datatype>) -> impl Strategy<Value = Tensor> {
    (
        proptest::sample::select(datatypes),
        vec(0i64..4, 0..4),
        "[a-z_]{1,6}",
    )
        .prop_flat_map(|(dt, shape, name)| {
            let n = shape.iter().product::<i64>() as usize;
            elements(dt, n).prop_map(move |data| tensor(&name, dt, shape.clone(), data))
        })
}

/// Any tensor at all: any datatype, any shape (huge, negative), any bytes.
fn any_tensor() -> impl Strategy<Value = Tensor> {
    let dim = prop_oneof![0i64..5, any::<i64>(), Just(i64::MAX), Just(1 << 32)];
    (
        proptest::sample::select(DATATYPES.to_vec()),
        vec(dim, 0..4),
        ".{0,6}",
        vec(any::<u8>(), 0..40),
    )
        .prop_map(|(dt, shape, name, data)| tensor(&name, dt, shape, data))
}

/// Arbitrary JSON, with V2's keys and datatype names common enough to reach deep code.
fn any_json() -> impl Strategy<Value = Value> {
    let names = ["BOOL", "UINT8", "INT64", "FP16", "FP32", "FP64", "BYTES"];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,6}".prop_map(Value::from),
        proptest::sample::select(names.to_vec()).prop_map(Value::from),
    ];
    let keys = prop_oneof![
        proptest::sample::select(vec![
            "name",
            "datatype",
            "shape",
            "data",
            "parameters",
            "binary_data_size",
            "inputs",
            "outputs",
            "id",
            "binary_data",
            "binary_data_output",
        ])
        .prop_map(str::to_string),
        "[a-z]{1,3}",
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(keys.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A request shaped like V2 but with arbitrary fields.
fn v2_like_request() -> impl Strategy<Value = Value> {
    let dim = prop_oneof![
        any::<i64>().prop_map(Value::from),
        Just(json!(1u64 << 32)),
        Just(json!(u64::MAX)),
        any_json()
    ];
    let input = (
        any_json(),
        proptest::sample::select(vec!["BOOL", "UINT32", "FP16", "FP32", "BYTES", "X"]),
        vec(dim, 0..3),
        any_json(),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(name, dt, shape, data, size)| {
            let mut t = json!({"name": name, "datatype": dt, "shape": shape, "data": data});
            if let Some(size) = size {
                t["parameters"] = json!({"binary_data_size": size % 64});
            }
            t
        });
    (vec(input, 0..3), any_json())
        .prop_map(|(inputs, outputs)| json!({"inputs": inputs, "outputs": outputs}))
}

/// A response's encoding read back as a request: its outputs as inputs.
fn read_back(encoded: &Encoded) -> Vec<Tensor> {
    let json_length = encoded.json_length.unwrap_or(encoded.body.len());
    let (json_part, blob) = encoded.body.split_at(json_length);
    let response: Value = serde_json::from_slice(json_part).unwrap();
    let mut request = serde_json::to_vec(&json!({"inputs": response["outputs"]})).unwrap();
    let header = request.len().to_string();
    request.extend_from_slice(blob);
    let header = encoded.json_length.map(|_| header.as_bytes());
    decode(header, &request).unwrap().request.inputs
}

fn assert_same(a: &[Tensor], b: &[Tensor]) {
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(b) {
        assert_eq!(
            (&a.name, a.datatype, &a.shape, &a.data),
            (&b.name, b.datatype, &b.shape, &b.data)
        );
    }
}

proptest! {
    #[test]
    fn decoding_any_bytes_never_panics(body in vec(any::<u8>(), 0..256), header in proptest::option::of(0usize..300)) {
        let header = header.map(|n| n.to_string());
        let _ = decode(header.as_deref().map(str::as_bytes), &body);
    }

    #[test]
    fn decoding_any_json_never_panics(v in any_json(), blob in vec(any::<u8>(), 0..32)) {
        let _ = decode(None, v.to_string().as_bytes());
        let mut body = v.to_string().into_bytes();
        let header = body.len().to_string();
        body.extend_from_slice(&blob);
        let _ = decode(Some(header.as_bytes()), &body);
    }

    #[test]
    fn decoding_v2_like_requests_never_panics(v in v2_like_request(), blob in vec(any::<u8>(), 0..64)) {
        let _ = decode(None, v.to_string().as_bytes());
        let mut body = v.to_string().into_bytes();
        let header = body.len().to_string();
        body.extend_from_slice(&blob);
        let _ = decode(Some(header.as_bytes()), &body);
    }

    #[test]
    fn encoding_any_answer_never_panics(
        outputs in vec(any_tensor(), 0..4),
        parameters in prop_oneof![".{0,12}".boxed(), any_json().prop_map(|v| v.to_string()).boxed()],
        request in prop_oneof![
            Just(r#"{"inputs": []}"#.to_string()),
            Just(r#"{"inputs": [], "parameters": {"binary_data_output": true}}"#.to_string()),
            "[a-z]{1,3}".prop_map(|o| format!(r#"{{"inputs": [], "outputs": [{{"name": "{o}", "parameters": {{"binary_data": true}}}}]}}"#)),
        ],
        limit in prop_oneof![0u64..400, Just(u64::MAX)],
    ) {
        let decoded = decode(None, request.as_bytes()).unwrap();
        let response = InferResponse { outputs, parameters };
        if let Ok(encoded) = encode_with(&decoded, &response, limit) {
            prop_assert!(encoded.body.len() as u64 <= limit);
        }
    }

    #[test]
    fn json_encoding_reads_back_unchanged(
        outputs in vec(valid_tensor(DATATYPES.iter().copied().filter(|d| !matches!(d, Datatype::Fp16 | Datatype::Bf16)).collect()), 0..4),
    ) {
        let response = InferResponse { outputs, parameters: "{}".into() };
        let encoded = encode_with(&plain(), &response, u64::MAX).unwrap();
        prop_assert!(encoded.json_length.is_none());
        assert_same(&read_back(&encoded), &response.outputs);
    }

    #[test]
    fn binary_encoding_reads_back_unchanged(outputs in vec(valid_tensor(DATATYPES.to_vec()), 0..4)) {
        let binary = decode(None, br#"{"inputs": [], "parameters": {"binary_data_output": true}}"#).unwrap();
        let response = InferResponse { outputs, parameters: "{}".into() };
        let encoded = encode_with(&binary, &response, u64::MAX).unwrap();
        assert_same(&read_back(&encoded), &response.outputs);
    }
}
