//! What a pod asks of a node for a spec's `resources` (a task's, a TrainJob's
//! `resourcesPerNode`): shared by the task pods the runner makes and the operator's runners.

use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;
use weft_spec::pipeline::TaskResources;

/// Sets `resources` on `spec`: its node selector, and the first container's requests and
/// limits (equal: cpu, memory, `nvidia.com/gpu`), added to what the template has.
pub fn request_resources(spec: &mut PodSpec, resources: &TaskResources) {
    if !resources.node_selector.is_empty() {
        spec.node_selector
            .get_or_insert_with(Default::default)
            .extend(resources.node_selector.clone());
    }
    let mut amounts = BTreeMap::new();
    if let Some(cpu) = &resources.cpu {
        amounts.insert("cpu".to_string(), Quantity(cpu.clone()));
    }
    if let Some(memory) = &resources.memory {
        amounts.insert("memory".to_string(), Quantity(memory.clone()));
    }
    if let Some(gpu) = resources.gpu.filter(|g| *g > 0) {
        amounts.insert("nvidia.com/gpu".to_string(), Quantity(gpu.to_string()));
    }
    let Some(container) = spec.containers.first_mut() else {
        return;
    };
    if !amounts.is_empty() {
        let r = container
            .resources
            .get_or_insert_with(ResourceRequirements::default);
        r.requests
            .get_or_insert_with(Default::default)
            .extend(amounts.clone());
        r.limits
            .get_or_insert_with(Default::default)
            .extend(amounts);
    }
}
