//! The default notebook profile: what a Notebook may leave out, filled in by the controller.
//!
//! Kubeflow keeps these defaults in its spawner web app (`spawner_ui_config.yaml`: image,
//! CPU and memory, a workspace volume), so a Notebook written by hand gets none of them; here
//! the controller applies them, so `kubectl apply` of a Notebook that names only a container
//! gets the same pod as one made by a form. The chart installs the profile as a ConfigMap
//! (`notebooks.profile` in values.yaml) and points `weft-operator --notebook-profile` at it.

use super::HOME;
use k8s_openapi::api::core::v1::{EnvVar, PodSpec, ResourceRequirements, Toleration};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use weft_crd::Notebook;

/// The claim size when neither the Notebook nor the profile gives one.
pub const DEFAULT_WORKSPACE_SIZE: &str = "10Gi";

/// `--notebook-profile FILE`, YAML.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    /// The notebook server's image when its container names none.
    #[serde(default)]
    pub image: Option<String>,
    /// `Always`, `IfNotPresent` or `Never`, when the container says nothing.
    #[serde(default)]
    pub image_pull_policy: Option<String>,
    /// The server container's requests and limits when it has none.
    #[serde(default)]
    pub resources: Option<ResourceRequirements>,
    /// Added to the server container's environment, unless it sets the same name.
    #[serde(default)]
    pub env: Vec<EnvVar>,
    /// The workspace every Notebook without `spec.workspace` gets; sizes and places the
    /// ones that leave that out.
    #[serde(default)]
    pub workspace: Option<ProfileWorkspace>,
    /// The pod's when it has none.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// The pod's when it has none.
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileWorkspace {
    #[serde(default)]
    pub size: Option<String>,
    #[serde(default)]
    pub mount_path: Option<String>,
    #[serde(default)]
    pub storage_class_name: Option<String>,
}

/// A notebook's workspace once the profile's defaults are in.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedWorkspace {
    pub size: String,
    pub mount_path: String,
    pub storage_class_name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("notebook profile {file}: {message}")]
pub struct ProfileError {
    file: String,
    message: String,
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.clone().filter(|s| !s.is_empty())
}

impl Profile {
    /// Reads and checks a profile file; errors name the file and the field.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let error = |message: String| ProfileError {
            file: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        Profile::parse(&text).map_err(error)
    }

    /// Parses and checks a profile's YAML (an empty document is the empty profile).
    pub fn parse(text: &str) -> Result<Profile, String> {
        let profile: Profile = if text.trim().is_empty() {
            Profile::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| e.to_string())?
        };
        profile.check()?;
        Ok(profile)
    }

    fn check(&self) -> Result<(), String> {
        if let Some(p) = &self.image_pull_policy {
            if !["Always", "IfNotPresent", "Never"].contains(&p.as_str()) {
                return Err(format!(
                    "imagePullPolicy: `{p}` is not Always, IfNotPresent or Never"
                ));
            }
        }
        if let Some(r) = &self.resources {
            for (part, map) in [("requests", &r.requests), ("limits", &r.limits)] {
                for (name, q) in map.iter().flatten() {
                    if !is_quantity(&q.0) {
                        return Err(format!(
                            "resources.{part}.{name}: `{}` is not a quantity (such as 500m, 2 or 4Gi)",
                            q.0
                        ));
                    }
                }
            }
        }
        if let Some(size) = self.workspace.as_ref().and_then(|w| w.size.as_ref()) {
            if !is_quantity(size) {
                return Err(format!(
                    "workspace.size: `{size}` is not a quantity such as 10Gi"
                ));
            }
        }
        if let Some(i) = self.env.iter().position(|e| e.name.is_empty()) {
            return Err(format!("env[{i}].name is empty"));
        }
        Ok(())
    }

    /// The workspace `nb` gets: its own, with the profile's size, path and class where it
    /// leaves them out; the profile's when it has none; none when it says `disabled`.
    pub fn workspace(&self, nb: &Notebook) -> Option<ResolvedWorkspace> {
        let default = self.workspace.clone().unwrap_or_default();
        let own = match &nb.spec.workspace {
            Some(w) if w.disabled => return None,
            Some(w) => w.clone(),
            None if self.workspace.is_some() => Default::default(),
            None => return None,
        };
        Some(ResolvedWorkspace {
            size: nonempty(&own.size)
                .or_else(|| nonempty(&default.size))
                .unwrap_or_else(|| DEFAULT_WORKSPACE_SIZE.into()),
            mount_path: nonempty(&own.mount_path)
                .or_else(|| nonempty(&default.mount_path))
                .unwrap_or_else(|| HOME.into()),
            storage_class_name: nonempty(&own.storage_class_name)
                .or_else(|| nonempty(&default.storage_class_name)),
        })
    }

    /// Fills in what the pod leaves out: the server container's image, pull policy,
    /// resources and environment; the pod's node selector and tolerations.
    pub fn apply(&self, pod: &mut PodSpec) {
        if pod.node_selector.as_ref().is_none_or(|m| m.is_empty()) && !self.node_selector.is_empty()
        {
            pod.node_selector = Some(self.node_selector.clone());
        }
        if pod.tolerations.as_ref().is_none_or(|t| t.is_empty()) && !self.tolerations.is_empty() {
            pod.tolerations = Some(self.tolerations.clone());
        }
        let Some(c) = pod.containers.first_mut() else {
            return;
        };
        if nonempty(&c.image).is_none() {
            c.image = nonempty(&self.image);
        }
        if c.image_pull_policy.is_none() {
            c.image_pull_policy = self.image_pull_policy.clone();
        }
        let no_resources = c.resources.as_ref().is_none_or(|r| {
            r.requests.as_ref().is_none_or(|m| m.is_empty())
                && r.limits.as_ref().is_none_or(|m| m.is_empty())
        });
        if no_resources && self.resources.is_some() {
            c.resources = self.resources.clone();
        }
        if !self.env.is_empty() {
            let env = c.env.get_or_insert_with(Vec::new);
            for e in &self.env {
                if !env.iter().any(|have| have.name == e.name) {
                    env.push(e.clone());
                }
            }
        }
    }
}

/// A Kubernetes quantity: a decimal number with an optional SI or binary suffix or exponent
/// (`500m`, `1.5`, `4Gi`, `1e3`).
pub fn is_quantity(text: &str) -> bool {
    let t = text.strip_prefix('+').unwrap_or(text);
    let digits_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, suffix) = t.split_at(digits_end);
    let number_ok = !number.is_empty()
        && number.matches('.').count() <= 1
        && number.chars().any(|c| c.is_ascii_digit())
        && !number.starts_with('.')
        && !number.ends_with('.');
    let suffix_ok = matches!(
        suffix,
        "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"
    ) || suffix
        .strip_prefix(['e', 'E'])
        .map(|e| e.strip_prefix(['+', '-']).unwrap_or(e))
        .is_some_and(|e| !e.is_empty() && e.chars().all(|c| c.is_ascii_digit()));
    number_ok && suffix_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn notebook(spec: serde_json::Value) -> Notebook {
        serde_json::from_value(json!({
            "apiVersion": "weft.dev/v1alpha1", "kind": "Notebook",
            "metadata": {"name": "lab", "namespace": "a"}, "spec": spec,
        }))
        .unwrap()
    }

    const PROFILE: &str = "
image: ghcr.io/weft-dev/weft-notebook:1.0
imagePullPolicy: IfNotPresent
resources:
  requests: {cpu: 500m, memory: 1Gi}
  limits: {memory: 2Gi}
env: [{name: WEFT_HOME, value: /home/jovyan/.weft}]
workspace: {size: 5Gi, storageClassName: fast}
";

    #[test]
    fn quantities() {
        for good in ["1", "500m", "1.5", "4Gi", "10G", "1e3", "+2", "2E-1"] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in ["", "Gi", "1.2.3", ".5", "5.", "4gb", "lots", "1e", "-1"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn bad_profiles_name_the_field() {
        for (text, wanted) in [
            ("imagePullPolicy: Sometimes", "imagePullPolicy: `Sometimes`"),
            (
                "resources: {requests: {cpu: lots}}",
                "resources.requests.cpu: `lots`",
            ),
            ("workspace: {size: big}", "workspace.size: `big`"),
            ("env: [{name: ''}]", "env[0].name is empty"),
            ("imag: x", "imag"),
        ] {
            let e = Profile::parse(text).unwrap_err();
            assert!(e.contains(wanted), "{text}: {e}");
        }
        let e = Profile::load(Path::new("/nonexistent/profile.yaml")).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("notebook profile /nonexistent/profile.yaml: "));
    }

    #[test]
    fn the_profile_fills_what_the_pod_leaves_out_and_nothing_it_sets() {
        let p = Profile::parse(PROFILE).unwrap();
        let mut bare = notebook(json!({"template": {"spec": {"containers": [{"name": "lab"}]}}}))
            .spec
            .template
            .spec;
        p.apply(&mut bare);
        let c = &bare.containers[0];
        assert_eq!(
            c.image.as_deref(),
            Some("ghcr.io/weft-dev/weft-notebook:1.0")
        );
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(c.resources, p.resources);
        assert_eq!(c.env.as_ref().unwrap()[0].name, "WEFT_HOME");

        let mut own = notebook(json!({"template": {"spec": {"containers": [{
            "name": "lab", "image": "mine:2", "imagePullPolicy": "Always",
            "resources": {"limits": {"memory": "8Gi"}},
            "env": [{"name": "WEFT_HOME", "value": "/data"}]}]}}}))
        .spec
        .template
        .spec;
        let before = own.clone();
        p.apply(&mut own);
        assert_eq!(own, before);
    }

    #[test]
    fn workspaces_come_from_the_notebook_then_the_profile() {
        let p = Profile::parse(PROFILE).unwrap();
        let pod = json!({"spec": {"containers": [{"name": "lab"}]}});
        let none = notebook(json!({"template": pod}));
        assert_eq!(
            p.workspace(&none),
            Some(ResolvedWorkspace {
                size: "5Gi".into(),
                mount_path: HOME.into(),
                storage_class_name: Some("fast".into())
            })
        );
        assert_eq!(Profile::default().workspace(&none), None);
        let own = notebook(json!({"template": pod, "workspace": {"mountPath": "/work"}}));
        let w = p.workspace(&own).unwrap();
        assert_eq!((w.size.as_str(), w.mount_path.as_str()), ("5Gi", "/work"));
        assert_eq!(
            Profile::default().workspace(&own).unwrap().size,
            DEFAULT_WORKSPACE_SIZE
        );
        let off = notebook(json!({"template": pod, "workspace": {"disabled": true}}));
        assert_eq!(p.workspace(&off), None);
    }
}
