//! Plots as SVG, drawn on the server: metric series overlaid, ROC curves, best-so-far and
//! parallel coordinates for tuning, and the confusion matrix as a shaded table. Each plot has
//! a text alternative (its title, and the numbers in a table beside it on the page).

use crate::format;
use maud::{html, Markup, PreEscaped};
use std::collections::BTreeMap;

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 36.0;
/// Distinguishable in colour-blind palettes (Okabe–Ito).
pub const COLOURS: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
];

pub type Series = Vec<(f64, f64)>;

/// Reports grouped by name; a report without a step is placed at its position.
pub fn series_by_name(
    reports: impl Iterator<Item = (String, Option<u64>, f64)>,
) -> BTreeMap<String, Series> {
    let mut out: BTreeMap<String, Series> = BTreeMap::new();
    for (name, step, value) in reports {
        let s = out.entry(name).or_default();
        let x = step.map_or(s.len() as f64, |st| st as f64);
        s.push((x, value));
    }
    out
}

/// The range of the finite values, widened when flat.
fn range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return None;
    }
    Some(if lo == hi {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    })
}

/// Maps data to the plot area.
struct Frame {
    x: (f64, f64),
    y: (f64, f64),
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        LEFT + (x - self.x.0) / (self.x.1 - self.x.0) * (WIDTH - LEFT - RIGHT)
    }
    fn py(&self, y: f64) -> f64 {
        HEIGHT - BOTTOM - (y - self.y.0) / (self.y.1 - self.y.0) * (HEIGHT - TOP - BOTTOM)
    }

    fn axes(&self, xlabel: &str) -> String {
        let mut s = format!(
            "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\"/><line class=\"axis\" x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{b}\"/>",
            b = HEIGHT - BOTTOM,
            r = WIDTH - RIGHT
        );
        for i in 0..=4 {
            let f = i as f64 / 4.0;
            let (xv, yv) = (
                self.x.0 + f * (self.x.1 - self.x.0),
                self.y.0 + f * (self.y.1 - self.y.0),
            );
            s.push_str(&format!(
                "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text><text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                self.px(xv), HEIGHT - BOTTOM + 14.0, escape(&format::number(xv)),
                LEFT - 4.0, self.py(yv) + 4.0, escape(&format::number(yv)),
            ));
        }
        s.push_str(&format!(
            "<text class=\"label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            (LEFT + WIDTH - RIGHT) / 2.0,
            HEIGHT - 4.0,
            escape(xlabel)
        ));
        s
    }

    fn polyline(&self, points: &[(f64, f64)], colour: &str, class: &str) -> String {
        let pts: Vec<String> = points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|(x, y)| format!("{:.1},{:.1}", self.px(*x), self.py(*y)))
            .collect();
        format!(
            "<polyline class=\"{class}\" fill=\"none\" stroke=\"{colour}\" points=\"{}\"/>",
            pts.join(" ")
        )
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn frame_of(series: &[(String, Series)]) -> Option<Frame> {
    let all = || series.iter().flat_map(|(_, s)| s.iter());
    Some(Frame {
        x: range(all().map(|p| p.0))?,
        y: range(all().map(|p| p.1))?,
    })
}

fn svg_open(title: &str) -> String {
    format!(
        "<svg class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\" aria-label=\"{t}\"><title>{t}</title>",
        t = escape(title)
    )
}

/// Several series on one set of axes, with a legend.
pub fn lines(series: &[(String, Series)], xlabel: &str, title: &str) -> Markup {
    let Some(frame) = frame_of(series) else {
        return html! { p.empty { "Nothing finite to plot." } };
    };
    let mut svg = svg_open(title);
    svg.push_str(&frame.axes(xlabel));
    for (i, (_, s)) in series.iter().enumerate() {
        svg.push_str(&frame.polyline(s, COLOURS[i % COLOURS.len()], "series"));
    }
    svg.push_str("</svg>");
    html! { (PreEscaped(svg)) (legend(series.iter().map(|(n, _)| n.as_str()))) }
}

fn legend<'a>(names: impl Iterator<Item = &'a str>) -> Markup {
    html! { ul.legend { @for (i, n) in names.enumerate() {
        li { span.swatch style=(format!("background:{}", COLOURS[i % COLOURS.len()])) {} (n) }
    } } }
}

/// ROC curves (false positive rate against true positive rate) with the chance diagonal.
pub fn roc(curves: &[(String, Series)]) -> Markup {
    let frame = Frame {
        x: (0.0, 1.0),
        y: (0.0, 1.0),
    };
    let mut svg = svg_open("ROC curve");
    svg.push_str(&frame.axes("false positive rate"));
    svg.push_str(&frame.polyline(&[(0.0, 0.0), (1.0, 1.0)], "#999", "chance"));
    for (i, (_, s)) in curves.iter().enumerate() {
        svg.push_str(&frame.polyline(s, COLOURS[i % COLOURS.len()], "series"));
    }
    svg.push_str("</svg>");
    html! { (PreEscaped(svg)) (legend(curves.iter().map(|(n, _)| n.as_str()))) }
}

/// A confusion matrix as a table shaded by each cell's share of its row.
pub fn confusion(classes: &[String], matrix: &[Vec<u64>]) -> Markup {
    html! {
        table.confusion {
            caption { "Confusion matrix (rows: true class, columns: predicted)" }
            thead { tr { th scope="col" { "true \\ predicted" } @for c in classes { th scope="col" { (c) } } } }
            tbody { @for (i, row) in matrix.iter().enumerate() {
                @let total = row.iter().sum::<u64>().max(1) as f64;
                tr { th scope="row" { (classes.get(i).map(String::as_str).unwrap_or("?")) }
                    @for n in row {
                        td.num style=(format!("background: rgba(0,114,178,{:.2})", *n as f64 / total * 0.8)) { (n) }
                    }
                }
            } }
        }
    }
}

/// Each trial's objective as a dot and the best so far as a step line.
pub fn best_so_far(points: &[(f64, f64)], minimize: bool, metric: &str) -> Markup {
    let series = [(metric.to_string(), points.to_vec())];
    let Some(frame) = frame_of(&series) else {
        return html! { p.empty { "No objective values yet." } };
    };
    let mut best: Series = Vec::new();
    let mut so_far: Option<f64> = None;
    for &(x, y) in points.iter().filter(|p| p.1.is_finite()) {
        let better = so_far.is_none_or(|b| if minimize { y < b } else { y > b });
        if better {
            so_far = Some(y);
        }
        if let (Some(&(_, prev)), Some(b)) = (best.last(), so_far) {
            best.push((x, prev));
            best.push((x, b));
        } else if let Some(b) = so_far {
            best.push((x, b));
        }
    }
    let mut svg = svg_open(&format!("{metric}: each trial and the best so far"));
    svg.push_str(&frame.axes("trial"));
    for &(x, y) in points.iter().filter(|p| p.1.is_finite()) {
        svg.push_str(&format!(
            "<circle class=\"trial\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"/>",
            frame.px(x),
            frame.py(y)
        ));
    }
    svg.push_str(&frame.polyline(&best, COLOURS[3], "best"));
    svg.push_str("</svg>");
    html! { (PreEscaped(svg)) }
}

/// One axis of a parallel-coordinates plot: its name and each line's value on it, as text
/// (shown at the ends) and as a position in 0..=1.
pub struct Axis {
    pub name: String,
    pub low: String,
    pub high: String,
    pub positions: Vec<Option<f64>>,
}

/// Parallel coordinates: one vertical axis per parameter and the objective, one line per
/// trial; the `best` line drawn last and thick.
pub fn parallel(axes: &[Axis], best: Option<usize>) -> Markup {
    let n = axes.first().map_or(0, |a| a.positions.len());
    if axes.len() < 2 || n == 0 {
        return html! { p.empty { "Not enough trials to draw." } };
    }
    let x = |i: usize| LEFT + i as f64 * (WIDTH - LEFT - RIGHT - 40.0) / (axes.len() - 1) as f64;
    let y = |p: f64| HEIGHT - BOTTOM - p * (HEIGHT - TOP - BOTTOM - 10.0);
    let mut svg = svg_open("Parallel coordinates of the trials");
    let line = |t: usize, class: &str| {
        let pts: Vec<String> = axes
            .iter()
            .enumerate()
            .filter_map(|(i, a)| a.positions[t].map(|p| format!("{:.1},{:.1}", x(i), y(p))))
            .collect();
        format!(
            "<polyline class=\"{class}\" fill=\"none\" points=\"{}\"/>",
            pts.join(" ")
        )
    };
    for t in (0..n).filter(|t| Some(*t) != best) {
        svg.push_str(&line(t, "pc"));
    }
    if let Some(b) = best {
        svg.push_str(&line(b, "pc best"));
    }
    for (i, a) in axes.iter().enumerate() {
        svg.push_str(&format!(
            "<line class=\"axis\" x1=\"{0:.1}\" y1=\"{1:.1}\" x2=\"{0:.1}\" y2=\"{2:.1}\"/><text class=\"label\" x=\"{0:.1}\" y=\"{3:.1}\" text-anchor=\"middle\">{4}</text><text class=\"tick\" x=\"{0:.1}\" y=\"{5:.1}\" text-anchor=\"middle\">{6}</text><text class=\"tick\" x=\"{0:.1}\" y=\"{7:.1}\" text-anchor=\"middle\">{8}</text>",
            x(i), y(1.0), y(0.0), HEIGHT - 4.0, escape(&a.name),
            y(1.0) - 3.0, escape(&a.high), y(0.0) + 12.0, escape(&a.low),
        ));
    }
    svg.push_str("</svg>");
    html! { (PreEscaped(svg)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_so_far_never_gets_worse() {
        let pts = [
            (0.0, 5.0),
            (1.0, 3.0),
            (2.0, 4.0),
            (3.0, f64::NAN),
            (4.0, 1.0),
        ];
        let svg = best_so_far(&pts, true, "loss").into_string();
        assert_eq!(
            svg.matches("<circle").count(),
            4,
            "the NaN trial is not drawn"
        );
        assert!(svg.contains("class=\"best\""));
    }

    #[test]
    fn series_keep_their_steps_and_names_are_escaped() {
        let s = series_by_name(
            [
                ("t/loss".to_string(), Some(10), 1.0),
                ("t/loss".to_string(), Some(20), 0.5),
                ("t/acc".to_string(), None, 0.9),
            ]
            .into_iter(),
        );
        assert_eq!(s["t/loss"], vec![(10.0, 1.0), (20.0, 0.5)]);
        let svg = lines(&[("<b>".to_string(), s["t/loss"].clone())], "step", "a<b").into_string();
        assert!(!svg.contains("<b>"), "{svg}");
    }

    #[test]
    fn nothing_finite_is_said_not_drawn() {
        let svg = lines(&[("x".to_string(), vec![(0.0, f64::NAN)])], "step", "x").into_string();
        assert!(svg.contains("Nothing finite"));
    }
}
