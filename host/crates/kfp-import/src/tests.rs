//! The importer on IR compiled by the real KFP SDK (tests/fixtures/make.py).

use super::*;
use serde_json::json;
use weft_spec::pipeline::*;

const DEMO: &str = include_str!("../tests/fixtures/demo.yaml");
const REFUSED: &str = include_str!("../tests/fixtures/refused.yaml");

fn demo() -> Conversion {
    import("demo.yaml", DEMO).unwrap_or_else(|e| panic!("{e}"))
}

fn param(src: &ParamSource) -> serde_json::Value {
    serde_json::to_value(src).unwrap()
}

#[test]
fn the_demo_pipeline_converts() {
    let c = demo();
    let spec = &c.pipeline.spec;
    assert_eq!(c.pipeline.metadata.name, "fixture-demo");
    assert_eq!(spec.params["n"].ty, ParamType::Int);
    assert_eq!(
        spec.params["n"].default,
        Some(json!(5)),
        "5.0 in the IR is an int"
    );
    assert_eq!(spec.params["scale"].default, Some(json!(1.5)));
    assert_eq!(spec.params["points"].ty, ParamType::Json);
    assert_eq!(
        spec.params["points"].default,
        Some(json!([{"x": 1}, {"x": 2}]))
    );
    let names: Vec<&str> = spec.tasks.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "add-up",
            "make-rows",
            "say",
            "say-2",
            "say-3",
            "square",
            "square-2",
            "total"
        ]
    );
}

#[test]
fn data_flows_between_tasks_as_in_kfp() {
    let c = demo();
    let t = &c.pipeline.spec.tasks;
    assert_eq!(param(&t["make-rows"].params["n"]), json!({"param": "n"}));
    assert_eq!(
        serde_json::to_value(&t["total"].artifacts["rows"]).unwrap(),
        json!({"task": "make-rows", "output": "rows"})
    );
    // A dependency the data already implies is not repeated.
    assert!(t["total"].after.is_empty(), "{:?}", t["total"].after);
    // `.after(r)` without data.
    assert_eq!(t["say"].after, ["make-rows"]);
    assert_eq!(param(&t["say"].params["label"]), json!({"value": "done"}));
    // Through the condition group's inputs, back to the producer.
    let say2 = t
        .values()
        .find(|x| x.params.get("value").is_some_and(|v| v.task.is_some()))
        .unwrap();
    assert_eq!(
        param(&say2.params["value"]),
        json!({"task": "total", "output": "sum"})
    );
}

#[test]
fn conditions_become_when() {
    let c = demo();
    let t = &c.pipeline.spec.tasks;
    let big = t
        .values()
        .find(|x| x.params.get("value").is_some_and(|v| v.task.is_some()))
        .unwrap();
    assert_eq!(
        serde_json::to_value(big.when.as_ref().unwrap()).unwrap(),
        json!({"input": {"task": "total", "output": "sum"}, "op": ">", "value": 10.0})
    );
    // Elif (not the If, and its own test) and a nested If inside it: all of them.
    let tiny = t
        .values()
        .find(|x| {
            x.params
                .get("label")
                .is_some_and(|v| v.value == Some(json!("tiny")))
        })
        .unwrap();
    assert_eq!(
        serde_json::to_value(tiny.when.as_ref().unwrap()).unwrap(),
        json!({"all": [
            {"all": [
                {"not": {"input": {"task": "total", "output": "sum"}, "op": ">", "value": 10.0}},
                {"input": {"task": "total", "output": "label"}, "op": "==", "value": "small"},
            ]},
            {"input": {"param": "n"}, "op": "<", "value": 3},
        ]})
    );
}

#[test]
fn loops_become_parallel_for() {
    let c = demo();
    let t = &c.pipeline.spec.tasks;
    let sq = &t["square"];
    let pf = sq.parallel_for.as_ref().unwrap();
    assert_eq!(pf.items.value, Some(json!([1, 2, 3])));
    assert_eq!(pf.parallelism, Some(2));
    assert_eq!(param(&sq.params["x"]), json!({"loopItem": "."}));
    // dsl.Collected: the parallelFor's outputs, a list.
    assert_eq!(
        param(&t["add-up"].params["xs"]),
        json!({"task": "square", "output": "Output"})
    );
    // A field of a dict item, over a pipeline parameter.
    let sq2 = &t["square-2"];
    assert_eq!(
        sq2.parallel_for.as_ref().unwrap().items.param.as_deref(),
        Some("points")
    );
    assert_eq!(param(&sq2.params["x"]), json!({"loopItem": "x"}));
}

#[test]
fn task_settings_carry_over() {
    let c = demo();
    let t = &c.pipeline.spec.tasks;
    let retry = t["total"].retry.as_ref().unwrap();
    assert_eq!(
        (retry.limit, retry.backoff.as_deref(), retry.factor),
        (2, Some("2s"), Some(3.0))
    );
    assert_eq!(t["total"].cache, Some(false));
    assert_eq!(t["make-rows"].cache, None);
    assert_eq!(t["make-rows"].env["MODE"], "test");
    assert_eq!(
        t["make-rows"].resources.as_ref().unwrap().cpu.as_deref(),
        Some("1")
    );
}

#[test]
fn components_keep_kfp_source_and_packages() {
    let c = demo();
    let spec = &c.pipeline.spec;
    // say, say-2 and say-3 run one executor source: one component.
    let says: std::collections::BTreeSet<&str> = ["say", "say-2", "say-3"]
        .iter()
        .map(|n| spec.tasks[*n].component.as_str())
        .collect();
    assert_eq!(says.len(), 1, "{says:?}");
    assert_eq!(
        c.components.len(),
        5,
        "{:?}",
        c.components.iter().map(|p| &p.name).collect::<Vec<_>>()
    );
    let total = c
        .components
        .iter()
        .find(|p| p.function.function == "total")
        .unwrap();
    assert_eq!(total.function.packages, ["six==1.16.0"]);
    assert!(total
        .function
        .source
        .contains("def total(rows: Input[Dataset], scale: float, metrics: Output[Metrics])"));
    let decl = &spec.components[&total.name];
    assert_eq!(
        decl.source,
        format!("components/{0}/target/weft/{0}.wasm", total.name)
    );
    assert_eq!(decl.inputs.artifacts["rows"], ArtifactType::Dataset);
    assert_eq!(decl.inputs.params["scale"].ty, ParamType::Float);
    // Metrics are reported, not an artifact.
    assert!(decl.outputs.artifacts.is_empty(), "{:?}", decl.outputs);
    assert_eq!(decl.outputs.params["sum"], ParamType::Float);
    assert_eq!(decl.outputs.params["label"], ParamType::String);
    let say = &spec.components[&spec.tasks["say"].component];
    assert_eq!(say.inputs.params["value"].default, Some(json!(0.0)));
    // The YAML is what Weft reads back.
    let text = c.pipeline_yaml();
    let back = Document::<Pipeline>::parse("p.yaml", &text).unwrap();
    assert_eq!(back.value, c.pipeline);
}

#[test]
fn every_refusal_is_named_with_its_path_and_reason() {
    let err = import("refused.yaml", REFUSED).unwrap_err();
    let ImportError::Refused {
        refusals, pipeline, ..
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!(pipeline, "fixture-refused");
    let text = err.to_string();
    let find = |path: &str| {
        refusals
            .iter()
            .find(|r| r.path.starts_with(path))
            .unwrap_or_else(|| panic!("no refusal at {path}:\n{text}"))
    };
    assert!(matches!(
        &find("deploymentSpec.executors.exec-shout").reason,
        Reason::ContainerImage { image, .. } if image == "alpine:3.20"
    ));
    assert!(matches!(
        &find("deploymentSpec.executors.exec-with-numpy").reason,
        Reason::NativePackage { package, .. } if package == "numpy==2.1.0"
    ));
    assert!(matches!(
        &find("deploymentSpec.executors.exec-uses-torch").reason,
        Reason::NativeImport { module, .. } if module == "torch"
    ));
    assert!(find("components.comp-scores.outputDefinitions.artifacts.m")
        .to_string()
        .contains("ClassificationMetrics"));
    assert!(text.contains("`dsl.OneOf`"), "{text}");
    assert!(
        text.contains("a ParallelFor inside a ParallelFor"),
        "{text}"
    );
    // numpy is named once, not again for its import.
    assert!(
        !refusals
            .iter()
            .any(|r| matches!(&r.reason, Reason::NativeImport { module, .. } if module == "numpy")),
        "{text}"
    );
    assert!(
        text.starts_with(
            "refused.yaml: 6 parts of KFP pipeline `fixture-refused` cannot be converted:\n  - "
        ),
        "{text}"
    );
}

#[test]
fn an_exit_handler_around_the_pipeline_converts() {
    let ir = r#"
pipelineInfo: {name: e}
root:
  dag:
    tasks:
      exit-handler-1:
        componentRef: {name: comp-exit-handler-1}
        inputs:
          parameters:
            pipelinechannel--n: {componentInputParameter: n}
        taskInfo: {name: exit-handler-1}
      say:
        componentRef: {name: comp-say}
        dependentTasks: [exit-handler-1]
        inputs:
          parameters:
            msg: {runtimeValue: {constant: bye}}
        taskInfo: {name: say}
        triggerPolicy: {strategy: ALL_UPSTREAM_TASKS_COMPLETED}
  inputDefinitions:
    parameters:
      n: {parameterType: NUMBER_INTEGER, defaultValue: 1.0, isOptional: true}
components:
  comp-exit-handler-1:
    dag:
      tasks:
        work:
          componentRef: {name: comp-say}
          inputs:
            parameters:
              msg: {componentInputParameter: pipelinechannel--n}
          taskInfo: {name: work}
    inputDefinitions:
      parameters:
        pipelinechannel--n: {parameterType: NUMBER_INTEGER}
  comp-say:
    executorLabel: exec-say
    inputDefinitions:
      parameters:
        msg: {parameterType: STRING}
deploymentSpec:
  executors:
    exec-say:
      container:
        image: python:3.11
        command: [sh, -c, "python3 -m pip install 'kfp==2.0' && \"$0\" \"$@\"", sh, -ec, "printf \"%s\" \"$0\" > \"$program_path/ephemeral_component.py\"; python3 -m kfp.dsl.executor_main", "def say(msg: str):\n    print(msg)\n"]
        args: [--executor_input, '{{$}}', --function_to_execute, say]
"#;
    // `msg` is a string fed an int: Weft's validation says so, and the importer reports it.
    let err = import("e.yaml", ir).unwrap_err();
    assert!(matches!(err, ImportError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("type mismatch"), "{err}");
    let ir = ir.replace(
        "msg: {componentInputParameter: pipelinechannel--n}",
        "msg: {runtimeValue: {constant: hi}}",
    );
    let c = import("e.yaml", &ir).unwrap_or_else(|e| panic!("{e}"));
    let exit = c.pipeline.spec.exit_handler.as_ref().unwrap();
    assert_eq!(param(&exit.params["msg"]), json!({"value": "bye"}));
    assert!(exit.after.is_empty());
    assert_eq!(c.pipeline.spec.tasks.keys().collect::<Vec<_>>(), ["work"]);
    assert_eq!(c.components.len(), 1);
    assert!(
        c.components[0].function.packages.is_empty(),
        "kfp itself is not bundled"
    );
}

#[test]
fn unknown_ir_fields_are_refused_by_name() {
    let ir = DEMO.replace(
        "        retryPolicy:\n",
        "        someNewPolicy: {x: 1}\n        retryPolicy:\n",
    );
    let err = import("demo.yaml", &ir).unwrap_err();
    assert!(
        err.to_string().contains(
            "root.dag.tasks.total.someNewPolicy: the IR field `someNewPolicy` is not supported"
        ),
        "{err}"
    );
    let err = import("x.yaml", "pipelineInfo: {name: x}\n").unwrap_err();
    assert!(matches!(err, ImportError::Parse(_)), "{err}");
    assert!(err.to_string().contains("x.yaml:"), "{err}");
}

#[test]
fn a_kfp_kubernetes_platform_document_is_refused() {
    let ir = format!("{DEMO}---\nplatforms:\n  kubernetes:\n    deploymentSpec: {{}}\n");
    let err = import("demo.yaml", &ir).unwrap_err();
    assert!(
        err.to_string()
            .contains("platforms.kubernetes: platform configuration"),
        "{err}"
    );
}
