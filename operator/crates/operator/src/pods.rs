//! What every pod the operator makes has in common: `wasm-run` with the operator's store
//! settings, the spec ConfigMap at `/etc/weft`, a Weft home, a scratch `/tmp` (the root
//! filesystem is read-only), non-root with no privileges, no service-account token.

use crate::Config;
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, EnvFromSource, PodSecurityContext, PodSpec,
    SecretEnvSource, SecurityContext, Volume, VolumeMount,
};

/// Where pods find their spec files (the ConfigMap).
pub const SPEC_DIR: &str = "/etc/weft";
/// Weft's home in pods: metadata, local artifacts, compiled-component cache.
pub const HOME_DIR: &str = "/var/lib/weft";

/// `wasm-run`'s global flags, then `command`.
pub fn wasm_run_args(config: &Config, command: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec!["--home".into(), HOME_DIR.into()];
    if let Some(store) = &config.artifact_store {
        args.extend(["--artifact-store".into(), store.clone()]);
    }
    args.extend(command.iter().map(|s| s.to_string()));
    args
}

/// A `wasm-run` container: the image, the store Secret as environment, the mounts, locked down.
pub fn container(config: &Config, name: &str, args: Vec<String>) -> Container {
    Container {
        name: name.into(),
        image: Some(config.image.clone()),
        args: Some(args),
        env_from: config.store_secret.as_ref().map(|s| {
            vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: s.clone(),
                    optional: Some(false),
                }),
                ..Default::default()
            }]
        }),
        volume_mounts: Some(vec![
            mount("spec", SPEC_DIR, true),
            mount("tmp", "/tmp", false),
            mount("home", HOME_DIR, false),
        ]),
        security_context: Some(restricted()),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

/// An emptyDir volume.
pub fn scratch(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(Default::default()),
        ..Default::default()
    }
}

/// A pod of `container` with the spec ConfigMap `cm`, a scratch `/tmp` and `home` (a volume
/// named `home`).
pub fn pod(container: Container, cm: &str, home: Volume) -> PodSpec {
    PodSpec {
        automount_service_account_token: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            fs_group: Some(65532),
            ..Default::default()
        }),
        containers: vec![container],
        volumes: Some(vec![
            Volume {
                name: "spec".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: cm.into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            scratch("tmp"),
            home,
        ]),
        ..Default::default()
    }
}

/// The container security context of every pod the operator makes.
pub fn restricted() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(65532),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
