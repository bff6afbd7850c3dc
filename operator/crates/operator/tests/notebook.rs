//! The Notebook controller against a scripted API server: the StatefulSet, Service, workspace
//! claim, RoleBinding and status; stop and start by annotation; a failing pod reported.

use serde_json::{json, Value};
use std::sync::Arc;
use weft_crd::Notebook;
use weft_kube_mock::{client, expect, within, Expect, Reply, Seen};
use weft_operator::notebook::{self, NotebookConfig, NotebookContext};
use weft_operator::Context;

const SA: &str = "/api/v1/namespaces/team-a/serviceaccounts/weft-notebook";
const RB: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings/lab-notebook";
const PVC: &str = "/api/v1/namespaces/team-a/persistentvolumeclaims/lab-workspace";
const STS: &str = "/apis/apps/v1/namespaces/team-a/statefulsets/lab";
const SVC: &str = "/api/v1/namespaces/team-a/services/lab";
const PODS: &str = "/api/v1/namespaces/team-a/pods";
const NB: &str = "/apis/weft.dev/v1alpha1/namespaces/team-a/notebooks/lab";

fn notebook() -> Value {
    json!({
        "apiVersion": "weft.dev/v1alpha1",
        "kind": "Notebook",
        "metadata": {"name": "lab", "namespace": "team-a", "uid": "uid-7", "generation": 2,
                     "finalizers": [notebook::FINALIZER]},
        "spec": {
            "template": {
                "metadata": {"labels": {"team": "a"}},
                "spec": {"containers": [
                    {"name": "lab", "image": "ghcr.io/weft-dev/notebook:latest",
                     "env": [{"name": "NB_PREFIX", "value": "/wrong"}]}
                ]}
            },
            "workspace": {"size": "10Gi"}
        }
    })
}

fn stopped(mut nb: Value) -> Value {
    nb["metadata"]["annotations"] = json!({
        "kubeflow-resource-stopped": "2026-01-01T00:00:00Z",
        "notebooks.kubeflow.org/last-activity": "2025-12-31T00:00:00Z",
    });
    nb
}

fn pods(items: Vec<Value>) -> Reply {
    Reply::Json(json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}))
}

fn sts_ready(ready: i32) -> Reply {
    Reply::Json(json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                       "metadata": {"name": "lab"}, "status": {"readyReplicas": ready, "replicas": 1}}))
}

fn waiting_pod(reason: &str, message: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "lab-0"},
           "status": {"phase": "Pending", "containerStatuses": [
               {"name": "lab", "image": "x", "imageID": "", "ready": false, "restartCount": 3,
                "state": {"waiting": {"reason": reason, "message": message}}}]}})
}

/// The requests of one reconcile of `nb` (the default account, the workspace claim), the
/// StatefulSet answered with `sts` and the pod list with `pod_list`.
fn script(nb: &Value, sts: Reply, pod_list: Reply, status: bool) -> Vec<Expect> {
    let mut s = vec![
        expect("PATCH", SA, Reply::Echo),
        expect("PATCH", RB, Reply::Echo),
        expect("PATCH", PVC, Reply::Echo),
        expect("PATCH", STS, sts),
        expect("PATCH", SVC, Reply::Echo),
        expect("GET", PODS, pod_list),
    ];
    if status {
        s.push(expect(
            "PATCH",
            format!("{NB}/status"),
            Reply::MergeInto(nb.clone()),
        ));
    }
    s
}

async fn reconcile(nb: &Value, script: Vec<Expect>) -> Vec<Seen> {
    reconcile_with(
        nb,
        script,
        NotebookConfig {
            cluster_role: "weft-operator-notebook".into(),
            ..Default::default()
        },
    )
    .await
}

async fn reconcile_with(nb: &Value, script: Vec<Expect>, config: NotebookConfig) -> Vec<Seen> {
    let (c, server) = client(script);
    let ctx = Context::new(c, Default::default(), Default::default());
    let nctx = NotebookContext::new(ctx, config);
    let typed: Notebook = serde_json::from_value(nb.clone()).unwrap();
    within(notebook::reconcile(Arc::new(typed), nctx))
        .await
        .unwrap();
    server.finish().await
}

fn find<'a>(seen: &'a [Seen], path: &str) -> &'a Value {
    &seen.iter().find(|s| s.path == path).unwrap().body
}

#[tokio::test]
async fn a_notebook_gets_a_statefulset_a_service_its_workspace_and_its_rights() {
    let nb = notebook();
    let seen = reconcile(&nb, script(&nb, Reply::Echo, pods(vec![]), true)).await;

    let sts = find(&seen, STS);
    assert_eq!(sts["spec"]["replicas"], 1);
    assert_eq!(sts["metadata"]["ownerReferences"][0]["kind"], "Notebook");
    assert_eq!(sts["spec"]["serviceName"], "lab");
    let template = &sts["spec"]["template"];
    assert_eq!(template["metadata"]["labels"]["team"], "a");
    assert_eq!(template["metadata"]["labels"]["statefulset"], "lab");
    assert_eq!(
        sts["spec"]["selector"]["matchLabels"],
        json!({"statefulset": "lab"})
    );
    let pod = &template["spec"];
    assert_eq!(pod["securityContext"]["fsGroup"], 100);
    assert_eq!(pod["serviceAccountName"], "weft-notebook");
    let c = &pod["containers"][0];
    assert_eq!(
        c["env"],
        json!([{"name": "NB_PREFIX", "value": "/notebook/team-a/lab"}]),
        "NB_PREFIX is the controller's, once"
    );
    assert_eq!(c["workingDir"], "/home/jovyan");
    assert_eq!(c["ports"][0]["containerPort"], 8888);
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": "workspace", "mountPath": "/home/jovyan"}])
    );
    assert_eq!(
        pod["volumes"],
        json!([{"name": "workspace", "persistentVolumeClaim": {"claimName": "lab-workspace"}}])
    );

    let svc = find(&seen, SVC);
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "http-lab", "port": 80, "targetPort": 8888, "protocol": "TCP"}])
    );
    assert_eq!(svc["spec"]["selector"], json!({"statefulset": "lab"}));

    // The claim is not owned: deleting the notebook does not delete the files.
    let pvc = find(&seen, PVC);
    assert!(pvc["metadata"].get("ownerReferences").is_none(), "{pvc}");
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "10Gi");

    // The account may submit Weft resources in its namespace: a RoleBinding (not a
    // ClusterRoleBinding) of the chart's notebook role.
    let rb = find(&seen, RB);
    assert_eq!(
        rb["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "weft-operator-notebook"})
    );
    assert_eq!(
        rb["subjects"],
        json!([{"kind": "ServiceAccount", "name": "weft-notebook", "namespace": "team-a"}])
    );
    assert_eq!(seen[5].query, "&labelSelector=statefulset%3Dlab");

    let status = &seen[6].body["status"];
    assert_eq!(
        status["url"],
        "http://lab.team-a.svc.cluster.local/notebook/team-a/lab/"
    );
    assert_eq!(status["readyReplicas"], 0);
    let ready = &status["conditions"][0];
    assert_eq!(
        (&ready["type"], &ready["status"], &ready["reason"]),
        (&json!("Ready"), &json!("False"), &json!("Starting"))
    );
}

#[tokio::test]
async fn a_ready_notebook_says_so_and_a_second_reconcile_writes_no_status() {
    let nb = notebook();
    let seen = reconcile(&nb, script(&nb, sts_ready(1), pods(vec![]), true)).await;
    let status = seen[6].body["status"].clone();
    assert_eq!(status["readyReplicas"], 1);
    assert_eq!(status["conditions"][0]["status"], "True");
    assert_eq!(status["conditions"][1]["type"], "Failed");
    assert_eq!(status["conditions"][1]["status"], "False");
    let mut again = nb.clone();
    again["status"] = status;
    reconcile(&again, script(&again, sts_ready(1), pods(vec![]), false)).await;
}

/// Stopping scales to 0 and keeps the claim (applied again, never deleted), and forgets the
/// culler's activity; starting again runs the same claim.
#[tokio::test]
async fn stop_scales_to_zero_keeping_the_workspace_and_start_brings_it_back() {
    let nb = stopped(notebook());
    let mut s = script(&nb, Reply::Echo, pods(vec![]), true);
    // (The API server drops the annotations a merge patch sets to null.)
    let mut forgotten = nb.clone();
    forgotten["metadata"]["annotations"] =
        json!({"kubeflow-resource-stopped": "2026-01-01T00:00:00Z"});
    s.push(expect("PATCH", NB, Reply::Json(forgotten)));
    let seen = reconcile(&nb, s).await;
    assert!(seen.iter().all(|s| s.method != "DELETE"));
    assert_eq!(find(&seen, STS)["spec"]["replicas"], 0);
    assert_eq!(
        find(&seen, PVC)["spec"]["resources"]["requests"]["storage"],
        "10Gi"
    );
    let ready = &seen[6].body["status"]["conditions"][0];
    assert_eq!(
        (&ready["status"], &ready["reason"]),
        (&json!("False"), &json!("Stopped"))
    );
    assert!(ready["message"]
        .as_str()
        .unwrap()
        .contains("kubeflow-resource-stopped"));
    assert_eq!(
        seen[7].body,
        json!({"metadata": {"annotations": {
            "notebooks.kubeflow.org/last-activity": null,
            "notebooks.kubeflow.org/last_activity_check_timestamp": null}}})
    );
    assert_eq!(seen[7].query, "");

    let started = notebook();
    let seen = reconcile(&started, script(&started, Reply::Echo, pods(vec![]), true)).await;
    let sts = find(&seen, STS);
    assert_eq!(sts["spec"]["replicas"], 1);
    assert_eq!(
        sts["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "lab-workspace"
    );
}

#[tokio::test]
async fn a_pod_that_cannot_run_is_reported_in_status() {
    for (reason, message) in [
        (
            "ImagePullBackOff",
            "Back-off pulling image \"ghcr.io/weft-dev/notebook:nope\"",
        ),
        (
            "CrashLoopBackOff",
            "back-off 5m0s restarting failed container=lab",
        ),
    ] {
        let nb = notebook();
        let seen = reconcile(
            &nb,
            script(
                &nb,
                Reply::Echo,
                pods(vec![waiting_pod(reason, message)]),
                true,
            ),
        )
        .await;
        let status = &seen[6].body["status"];
        let ready = &status["conditions"][0];
        assert_eq!(
            (&ready["status"], &ready["reason"]),
            (&json!("False"), &json!(reason))
        );
        let failed = &status["conditions"][1];
        assert_eq!(
            (&failed["type"], &failed["status"], &failed["reason"]),
            (&json!("Failed"), &json!("True"), &json!(reason))
        );
        assert!(
            failed["message"].as_str().unwrap().contains(message),
            "{failed}"
        );
        assert_eq!(status["containerState"]["waiting"]["reason"], reason);
    }
}

/// A pod spec naming its own account: that account is bound, and no `weft-notebook` made.
#[tokio::test]
async fn a_notebooks_own_service_account_is_the_one_bound() {
    let mut nb = notebook();
    nb["spec"]["template"]["spec"]["serviceAccountName"] = json!("default-editor");
    nb["spec"].as_object_mut().unwrap().remove("workspace");
    let s = vec![
        expect("PATCH", RB, Reply::Echo),
        expect("PATCH", STS, Reply::Echo),
        expect("PATCH", SVC, Reply::Echo),
        expect("GET", PODS, pods(vec![])),
        expect(
            "PATCH",
            format!("{NB}/status"),
            Reply::MergeInto(nb.clone()),
        ),
    ];
    let seen = reconcile(&nb, s).await;
    assert_eq!(seen[0].body["subjects"][0]["name"], "default-editor");
    let pod = &seen[1].body["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "default-editor");
    assert!(pod.get("volumes").is_none());
}

#[test]
fn the_culler_reads_activity_as_kubeflows_does() {
    use k8s_openapi::jiff::Timestamp;
    use notebook::{kernels_activity, Kernel};
    let now: Timestamp = "2026-01-02T00:00:00Z".parse().unwrap();
    let k = |state: &str, last: &str| Kernel {
        execution_state: Some(state.into()),
        last_activity: Some(last.into()),
    };
    assert_eq!(kernels_activity(&[], now), None);
    assert_eq!(
        kernels_activity(
            &[
                k("idle", "2026-01-01T10:00:00.123456Z"),
                k("idle", "2026-01-01T12:00:00Z")
            ],
            now
        ),
        Some("2026-01-01T12:00:00Z".parse().unwrap())
    );
    assert_eq!(
        kernels_activity(
            &[
                k("idle", "2026-01-01T12:00:00Z"),
                k("busy", "2025-01-01T00:00:00Z")
            ],
            now
        ),
        Some(now)
    );
    let config = NotebookConfig::default();
    assert_eq!(
        notebook::kernels_url(&config, "team-a", "lab"),
        "http://lab.team-a.svc.cluster.local/notebook/team-a/lab/api/kernels"
    );
    // Culling: off unless the operator or the notebook turns it on; a notebook may opt out.
    let mut nb: Notebook = serde_json::from_value(notebook()).unwrap();
    assert_eq!(notebook::idle_time(&nb, &config), None);
    let on = NotebookConfig {
        culling: true,
        ..Default::default()
    };
    assert_eq!(
        notebook::idle_time(&nb, &on),
        Some(std::time::Duration::from_secs(86400))
    );
    nb.spec.culling = Some(weft_crd::Culling {
        disabled: false,
        idle_time: Some("90m".into()),
    });
    assert_eq!(
        notebook::idle_time(&nb, &config),
        Some(std::time::Duration::from_secs(5400))
    );
    nb.spec.culling = Some(weft_crd::Culling {
        disabled: true,
        idle_time: None,
    });
    assert_eq!(notebook::idle_time(&nb, &on), None);
}

/// A bad culling setting stops the operator at its start, saying what it wants.
#[test]
fn the_operator_refuses_a_bad_cull_setting_clearly() {
    for (flag, value) in [
        ("--cull-idle-time", "soon"),
        ("--cull-idle-time", "0"),
        ("--idleness-check-period", "5d"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft-operator"))
            .args(["run", flag, value])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("invalid value '{value}' for '{flag} ")),
            "{err}"
        );
        assert!(
            err.contains("give minutes (1440), or a number with s, m or h")
                || err.contains("the duration must be more than 0"),
            "{err}"
        );
    }
    // Kubeflow's environment names work as they do there.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft-operator"))
        .args(["run"])
        .env("CULL_IDLE_TIME", "-1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("'-1'"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// With culling on, a ready notebook is checked in the reconcile: a server that does not
/// answer (here nothing listens) is recorded as checked, its activity starting from now, and
/// it is not stopped for it.
#[tokio::test]
async fn a_ready_notebook_is_checked_by_the_culler_in_its_reconcile() {
    let nb = notebook();
    let mut s = script(&nb, sts_ready(1), pods(vec![]), true);
    s.push(expect("PATCH", NB, Reply::MergeInto(nb.clone())));
    let before = k8s_openapi::jiff::Timestamp::now();
    let seen = reconcile_with(
        &nb,
        s,
        NotebookConfig {
            culling: true,
            service_url: "http://127.0.0.1:1".into(),
            ..Default::default()
        },
    )
    .await;
    let a = &seen[7].body["metadata"]["annotations"];
    let checked: k8s_openapi::jiff::Timestamp = a
        ["notebooks.kubeflow.org/last_activity_check_timestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(checked >= before);
    assert_eq!(
        a["notebooks.kubeflow.org/last-activity"],
        a["notebooks.kubeflow.org/last_activity_check_timestamp"]
    );
    assert!(a.get("kubeflow-resource-stopped").is_none(), "{a}");
}

/// The chart's kind of profile, from a file as `weft-operator --notebook-profile` reads it.
fn profile() -> notebook::Profile {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("profile.yaml");
    std::fs::write(
        &path,
        "image: ghcr.io/weft-dev/weft-notebook:1.0\n\
         imagePullPolicy: IfNotPresent\n\
         resources: {requests: {cpu: 500m, memory: 1Gi}, limits: {memory: 2Gi}}\n\
         workspace: {size: 5Gi, storageClassName: fast}\n\
         tolerations: [{key: gpu, operator: Exists, effect: NoSchedule}]\n",
    )
    .unwrap();
    notebook::Profile::load(&path).unwrap()
}

fn with_profile(profile: notebook::Profile) -> NotebookConfig {
    NotebookConfig {
        cluster_role: "weft-operator-notebook".into(),
        profile,
        ..Default::default()
    }
}

/// A Notebook naming only its container (as `kubectl apply` of a hand-written one does) gets
/// the profile's image, resources, tolerations and workspace, as Kubeflow's spawner form
/// would have filled in; what it sets itself stays.
#[tokio::test]
async fn a_notebook_naming_only_a_container_gets_the_profiles_defaults() {
    let mut nb = notebook();
    nb["spec"]["template"]["spec"] = json!({"containers": [{"name": "lab"}]});
    nb["spec"].as_object_mut().unwrap().remove("workspace");
    let seen = reconcile_with(
        &nb,
        script(&nb, Reply::Echo, pods(vec![]), true),
        with_profile(profile()),
    )
    .await;
    let pod = &find(&seen, STS)["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "ghcr.io/weft-dev/weft-notebook:1.0");
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}})
    );
    assert_eq!(pod["tolerations"][0]["key"], "gpu");
    assert_eq!(c["volumeMounts"][0]["mountPath"], "/home/jovyan");
    let pvc = find(&seen, PVC);
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "5Gi");
    assert_eq!(pvc["spec"]["storageClassName"], "fast");

    // Its own image and workspace size win; `disabled` has no workspace at all.
    let own = notebook();
    let seen = reconcile_with(
        &own,
        script(&own, Reply::Echo, pods(vec![]), true),
        with_profile(profile()),
    )
    .await;
    let c = &find(&seen, STS)["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "ghcr.io/weft-dev/notebook:latest");
    assert_eq!(
        find(&seen, PVC)["spec"]["resources"]["requests"]["storage"],
        "10Gi"
    );
    let mut off = notebook();
    off["spec"]["workspace"] = json!({"disabled": true});
    let mut s = script(&off, Reply::Echo, pods(vec![]), true);
    s.retain(|e| e.path != PVC);
    let seen = reconcile_with(&off, s, with_profile(profile())).await;
    let pod = &find(&seen, STS)["spec"]["template"]["spec"];
    assert!(pod.get("volumes").is_none(), "{pod}");
}

/// No image anywhere: nothing is applied that the API server would refuse; the status says
/// what to set.
#[tokio::test]
async fn a_notebook_without_an_image_is_failed_in_status_and_not_run() {
    let mut nb = notebook();
    nb["spec"]["template"]["spec"] = json!({"containers": [{"name": "lab"}]});
    let seen = reconcile(
        &nb,
        vec![
            expect("PATCH", SA, Reply::Echo),
            expect("PATCH", RB, Reply::Echo),
            expect(
                "PATCH",
                format!("{NB}/status"),
                Reply::MergeInto(nb.clone()),
            ),
        ],
    )
    .await;
    let conditions = &seen[2].body["status"]["conditions"];
    for (i, (kind, status)) in [("Ready", "False"), ("Failed", "True")].iter().enumerate() {
        let c = &conditions[i];
        assert_eq!(
            (&c["type"], &c["status"], &c["reason"]),
            (&json!(kind), &json!(status), &json!("NoImage"))
        );
        let message = c["message"].as_str().unwrap();
        assert!(
            message.contains("spec.template.spec.containers[0].image"),
            "{message}"
        );
        assert!(message.contains("notebooks.profile.image"), "{message}");
    }
}

/// A profile that does not parse stops the operator at its start, naming the file and field.
#[test]
fn the_operator_refuses_a_bad_profile_clearly() {
    let dir = tempfile::tempdir().unwrap();
    for (text, wanted) in [
        (
            "resources: {requests: {cpu: lots}}",
            "resources.requests.cpu: `lots` is not a quantity",
        ),
        (
            "image: x\nimagePullPolicy: Sometimes",
            "imagePullPolicy: `Sometimes`",
        ),
        ("imagee: x", "imagee"),
    ] {
        let path = dir.path().join("profile.yaml");
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft-operator"))
            .args(["run", "--notebook-profile"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("notebook profile {}: ", path.display())),
            "{err}"
        );
        assert!(err.contains(wanted), "{text}: {err}");
    }
}
