//! The cache key of a task execution.
//!
//! It covers everything that determines the outputs: the component digest, every parameter value,
//! every input artifact's digest, the declared outputs, the granted env vars and the hermetic
//! seed. Names of files do not enter it; their content does (through the artifact digests), so a
//! changed input file with the same name is a miss, and a renamed identical one is a hit.
//!
//! The step context (run id, task name, attempt) is left out, as Kubeflow Pipelines leaves it
//! out: a step's outputs are meant to be a function of its parameters and inputs, so two tasks
//! running the same component on the same inputs share one cache entry.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use weft_spec::pipeline::OutputInterface;
use weft_spec::ParamValue;

pub(crate) struct KeyParts<'a> {
    pub component: &'a str,
    pub params: &'a BTreeMap<String, ParamValue>,
    /// Input artifact name → digest.
    pub inputs: &'a BTreeMap<String, String>,
    pub outputs: &'a OutputInterface,
    pub env: &'a BTreeMap<String, String>,
    pub hermetic_seed: Option<u64>,
    /// A gang's workers: their number changes how the floats add up.
    pub workers: Option<u32>,
    /// A gang's engine where it is not threads of one process (MPI adds up in its own order).
    pub engine: Option<&'static str>,
}

pub(crate) fn cache_key(p: &KeyParts) -> String {
    let mut doc = serde_json::json!({
        "version": "weft-cache-v1",
        "component": p.component,
        "params": p.params,
        "inputs": p.inputs,
        "outputs": p.outputs,
        "env": p.env,
        "hermetic_seed": p.hermetic_seed,
    });
    // Only a gang has it, so every other task's key stays what it was.
    if let Some(w) = p.workers {
        doc["gang_workers"] = w.into();
    }
    if let Some(e) = p.engine {
        doc["gang_engine"] = e.into();
    }
    // serde_json maps are sorted (BTreeMap), so the text is canonical.
    tracing::trace!(key_document = %doc, "cache key");
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(doc.to_string().as_bytes()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_changes_the_key() {
        let params = BTreeMap::from([("lr".to_string(), ParamValue::Float(0.1))]);
        let inputs = BTreeMap::from([("data".to_string(), "sha256:aa".to_string())]);
        let outputs = OutputInterface::default();
        let env = BTreeMap::new();
        let base = KeyParts {
            component: "sha256:c1",
            params: &params,
            inputs: &inputs,
            outputs: &outputs,
            env: &env,
            hermetic_seed: None,
            workers: None,
            engine: None,
        };
        let k = cache_key(&base);
        assert_ne!(
            k,
            cache_key(&KeyParts {
                workers: Some(2),
                ..base
            })
        );
        assert_ne!(
            cache_key(&KeyParts {
                workers: Some(2),
                ..base
            }),
            cache_key(&KeyParts {
                workers: Some(2),
                engine: Some("mpi"),
                ..base
            })
        );
        assert_eq!(k, cache_key(&base));
        assert_ne!(
            k,
            cache_key(&KeyParts {
                component: "sha256:c2",
                ..base
            })
        );
        let p2 = BTreeMap::from([("lr".to_string(), ParamValue::Float(0.2))]);
        assert_ne!(
            k,
            cache_key(&KeyParts {
                params: &p2,
                ..base
            })
        );
        let i2 = BTreeMap::from([("data".to_string(), "sha256:ab".to_string())]);
        assert_ne!(
            k,
            cache_key(&KeyParts {
                inputs: &i2,
                ..base
            })
        );
        let mut o2 = OutputInterface::default();
        o2.params
            .insert("acc".into(), weft_spec::pipeline::ParamType::Float);
        assert_ne!(
            k,
            cache_key(&KeyParts {
                outputs: &o2,
                ..base
            })
        );
        assert_ne!(
            k,
            cache_key(&KeyParts {
                hermetic_seed: Some(1),
                ..base
            })
        );
        let e2 = BTreeMap::from([("MODE".to_string(), "fast".to_string())]);
        assert_ne!(k, cache_key(&KeyParts { env: &e2, ..base }));
        let e3 = BTreeMap::from([("MODE".to_string(), "slow".to_string())]);
        assert_ne!(
            cache_key(&KeyParts { env: &e2, ..base }),
            cache_key(&KeyParts { env: &e3, ..base })
        );
    }
}
