//! Status conditions as Kubernetes conventions have them: one per type, whose
//! `lastTransitionTime` changes only when its status does.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Sets condition `type_` in `conditions` to `status`, keeping its transition time when the
/// status is unchanged.
pub fn set(
    conditions: &mut Vec<Condition>,
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) {
    let status = if status { "True" } else { "False" }.to_string();
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(k8s_openapi::jiff::Timestamp::now()));
    conditions.retain(|c| c.type_ != type_);
    conditions.push(Condition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message: message.into(),
        last_transition_time: since,
        observed_generation: generation,
    });
}

/// Whether two condition lists say the same, ignoring transition times.
pub fn same(a: &[Condition], b: &[Condition]) -> bool {
    let key = |c: &Condition| {
        (
            c.type_.clone(),
            c.status.clone(),
            c.reason.clone(),
            c.message.clone(),
        )
    };
    let mut a: Vec<_> = a.iter().map(key).collect();
    let mut b: Vec<_> = b.iter().map(key).collect();
    a.sort();
    b.sort();
    a == b
}

/// A status whose conditions carry transition times.
pub trait Conditioned: Clone + PartialEq {
    fn conditions(&self) -> &[Condition];
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;
}

/// Every status here keeps its conditions in `conditions`.
macro_rules! conditioned {
    ($($status:ty),* $(,)?) => {$(
        impl Conditioned for $status {
            fn conditions(&self) -> &[Condition] {
                &self.conditions
            }
            fn conditions_mut(&mut self) -> &mut Vec<Condition> {
                &mut self.conditions
            }
        }
    )*};
}

conditioned!(
    weft_crd::PipelineRunStatus,
    weft_crd::ExperimentStatus,
    weft_crd::InferenceServiceStatus,
    weft_crd::NotebookStatus,
    weft_crd::TrainJobStatus,
);

/// Whether `next` says anything `current` does not (transition times aside): the test that
/// keeps a reconcile of an unchanged world from writing.
pub fn changed<S: Conditioned>(current: &S, next: &S) -> bool {
    let bare = |s: &S| {
        let mut s = s.clone();
        s.conditions_mut().clear();
        s
    };
    bare(current) != bare(next) || !same(current.conditions(), next.conditions())
}
