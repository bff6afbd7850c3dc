//! The run's graph as SVG: tasks in layers by their longest path from a source (as KFP draws
//! a run top to bottom), ordered within a layer by where their upstreams sit, so edges cross
//! little. A `parallelFor`'s iterations are one node with counts per state, which is what
//! keeps a 1000-iteration run drawable (KFP's UI gives up at a few hundred nodes).

use crate::layout::{path_part, state_class};
use maud::{html, Markup, PreEscaped};
use std::collections::{BTreeMap, BTreeSet};

const W: f64 = 188.0;
const H: f64 = 46.0;
const GAP_X: f64 = 28.0;
const GAP_Y: f64 = 54.0;
const MARGIN: f64 = 12.0;

/// What one node shows.
#[derive(Clone, Debug, Default)]
pub struct Node {
    pub state: String,
    /// Duration, `cached`, or the iterations' counts.
    pub detail: String,
    /// A folded `parallelFor`: how many iterations.
    pub iterations: Option<usize>,
}

/// Each task's (layer, position in layer).
pub fn layout(upstream: &BTreeMap<String, BTreeSet<String>>) -> BTreeMap<String, (usize, usize)> {
    let layer = layers(upstream);
    let depth = layer.values().copied().max().map_or(0, |d| d + 1);
    let mut rows: Vec<Vec<&str>> = vec![Vec::new(); depth];
    for (name, l) in &layer {
        rows[*l].push(name);
    }
    let mut place: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (l, row) in rows.iter_mut().enumerate() {
        // Barycentre of the upstreams already placed; sources keep their name order.
        let key = |n: &str| -> f64 {
            let xs: Vec<f64> = upstream
                .get(n)
                .into_iter()
                .flatten()
                .filter_map(|u| place.get(u).map(|p| p.1 as f64))
                .collect();
            if xs.is_empty() {
                f64::MAX
            } else {
                xs.iter().sum::<f64>() / xs.len() as f64
            }
        };
        let mut keyed: Vec<(f64, &str)> = row.iter().map(|n| (key(n), *n)).collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
        for (i, (_, n)) in keyed.into_iter().enumerate() {
            place.insert(n.to_string(), (l, i));
        }
    }
    place
}

/// Longest path from a source, for every task; a cycle (which validation refuses) cannot
/// hang it: what is left when no task is ready goes one layer below the rest.
fn layers(upstream: &BTreeMap<String, BTreeSet<String>>) -> BTreeMap<String, usize> {
    let mut layer: BTreeMap<String, usize> = BTreeMap::new();
    let mut left: BTreeSet<&String> = upstream.keys().collect();
    while !left.is_empty() {
        let ready: Vec<&String> = left
            .iter()
            .copied()
            .filter(|n| upstream[*n].iter().all(|u| !left.contains(u)))
            .collect();
        if ready.is_empty() {
            let below = layer.values().copied().max().map_or(0, |d| d + 1);
            for n in left {
                layer.insert(n.clone(), below);
            }
            break;
        }
        for n in ready {
            let l = upstream[n]
                .iter()
                .filter_map(|u| layer.get(u))
                .max()
                .map_or(0, |d| d + 1);
            layer.insert(n.clone(), l);
            left.remove(n);
        }
    }
    layer
}

fn center(p: (usize, usize)) -> (f64, f64) {
    (
        MARGIN + p.1 as f64 * (W + GAP_X) + W / 2.0,
        MARGIN + p.0 as f64 * (H + GAP_Y) + H / 2.0,
    )
}

/// The graph as an `<svg>`; each node links to its row of the tasks table (or, folded, to
/// its iterations).
pub fn svg(
    run: &str,
    upstream: &BTreeMap<String, BTreeSet<String>>,
    nodes: &BTreeMap<String, Node>,
) -> Markup {
    let place = layout(upstream);
    let cols = place.values().map(|p| p.1 + 1).max().unwrap_or(1);
    let rows = place.values().map(|p| p.0 + 1).max().unwrap_or(1);
    let width = 2.0 * MARGIN + cols as f64 * (W + GAP_X) - GAP_X;
    let height = 2.0 * MARGIN + rows as f64 * (H + GAP_Y) - GAP_Y;
    let mut edges = String::new();
    for (name, ups) in upstream {
        let Some(&to) = place.get(name) else { continue };
        let (x2, y2) = center(to);
        for u in ups.iter().filter_map(|u| place.get(u)) {
            let (x1, y1) = center(*u);
            let (y1, y2) = (y1 + H / 2.0, y2 - H / 2.0 - 4.0);
            let mid = (y1 + y2) / 2.0;
            edges.push_str(&format!(
                "<path class=\"edge\" d=\"M{x1:.1},{y1:.1} C{x1:.1},{mid:.1} {x2:.1},{mid:.1} {x2:.1},{y2:.1}\" marker-end=\"url(#arrow)\"/>"
            ));
        }
    }
    html! {
        svg.dag xmlns="http://www.w3.org/2000/svg" width=(format!("{width:.0}")) height=(format!("{height:.0}"))
            viewBox=(format!("0 0 {width:.0} {height:.0}")) role="group" aria-label="Task graph" {
            defs { marker #arrow viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto" {
                path d="M0,0 L8,4 L0,8 z" {}
            } }
            (PreEscaped(edges))
            @for (name, p) in &place {
                (node(run, name, *p, nodes.get(name).cloned().unwrap_or_else(|| Node { state: "PENDING".into(), ..Default::default() })))
            }
        }
    }
}

fn node(run: &str, name: &str, p: (usize, usize), n: Node) -> Markup {
    let (cx, cy) = center(p);
    let (x, y) = (cx - W / 2.0, cy - H / 2.0);
    let href = match n.iterations {
        Some(_) => format!(
            "/runs/{}/tasks/{}/iterations",
            path_part(run),
            path_part(name)
        ),
        None => format!("#task-{}", path_part(name)),
    };
    let shown: String = if name.chars().count() > 24 {
        name.chars().take(23).chain(['…']).collect()
    } else {
        name.to_string()
    };
    let label = match n.iterations {
        Some(k) => format!("{name} ×{k}"),
        None => shown.clone(),
    };
    html! {
        a href=(href) class={ "node " (state_class(&n.state)) } data-task=(name) data-state=(n.state)
            aria-label=(format!("{name}: {} {}", n.state, n.detail)) {
            title { (name) ": " (n.state) " " (n.detail) }
            @if n.iterations.is_some() {
                rect.stack x=(x + 5.0) y=(y - 5.0) width=(W) height=(H) rx="7" {}
            }
            rect x=(x) y=(y) width=(W) height=(H) rx="7" {}
            text.name x=(x + 10.0) y=(y + 19.0) { (label) }
            text.detail x=(x + 10.0) y=(y + 36.0) { (n.state.to_lowercase()) " · " (n.detail) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        edges
            .iter()
            .map(|(n, ups)| (n.to_string(), ups.iter().map(|u| u.to_string()).collect()))
            .collect()
    }

    #[test]
    fn layers_follow_the_longest_path() {
        // load -> split -> train -> evaluate, and load -> evaluate directly.
        let g = graph(&[
            ("load", &[]),
            ("split", &["load"]),
            ("train", &["split"]),
            ("evaluate", &["train", "load"]),
            ("report", &[]),
        ]);
        let p = layout(&g);
        assert_eq!(p["load"].0, 0);
        assert_eq!(p["split"].0, 1);
        assert_eq!(p["evaluate"].0, 3, "below its deepest upstream");
        assert_eq!(p["report"].0, 0);
        // Every position in a layer is used once.
        let mut seen = BTreeSet::new();
        assert!(p.values().all(|pos| seen.insert(*pos)));
    }

    #[test]
    fn a_cycle_does_not_hang_the_layout() {
        let g = graph(&[("a", &["b"]), ("b", &["a"]), ("c", &[])]);
        let p = layout(&g);
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn children_sit_under_their_parents() {
        let g = graph(&[
            ("b", &[]),
            ("a", &[]),
            ("under-b", &["b"]),
            ("under-a", &["a"]),
        ]);
        let p = layout(&g);
        assert_eq!(p["a"].1, p["under-a"].1);
        assert_eq!(p["b"].1, p["under-b"].1);
    }

    #[test]
    fn a_folded_loop_links_to_its_iterations() {
        let g = graph(&[("fan", &[])]);
        let mut nodes = BTreeMap::new();
        nodes.insert(
            "fan".to_string(),
            Node {
                state: "RUNNING".into(),
                detail: "3 of 1000 done".into(),
                iterations: Some(1000),
            },
        );
        let svg = svg("r 1", &g, &nodes).into_string();
        assert!(
            svg.contains("href=\"/runs/r%201/tasks/fan/iterations\""),
            "{svg}"
        );
        assert!(svg.contains("fan ×1000"));
    }
}
