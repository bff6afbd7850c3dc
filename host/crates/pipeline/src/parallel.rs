//! Blocking jobs (whole steps) run at most `n` at a time.

use rayon::prelude::*;

/// Calls `f` on every item, at most `parallelism` calls at once, and returns the results in
/// the items' order. A rayon pool of that many threads: each call is a whole step (seconds of
/// blocking work), so the pool's size is the bound, and nothing else shares it.
pub(crate) fn bounded<T: Sync, R: Send>(
    items: &[T],
    parallelism: usize,
    f: impl Fn(&T) -> R + Sync + Send,
) -> anyhow::Result<Vec<R>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(parallelism.clamp(1, items.len().max(1)))
        .thread_name(|i| format!("weft-step-{i}"))
        .build()?;
    Ok(pool.install(|| items.par_iter().map(f).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn at_most_n_run_at_once_and_results_keep_their_order() {
        let (now, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let items: Vec<usize> = (0..40).collect();
        let out = bounded(&items, 3, |&i| {
            let running = now.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(running, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(2));
            now.fetch_sub(1, Ordering::SeqCst);
            i * 2
        })
        .unwrap();
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 3, "{peak:?}");
        assert!(bounded(&Vec::<u8>::new(), 0, |_| ()).unwrap().is_empty());
    }
}
