//! The page shell every page shares: navigation, the stylesheet, the live-refresh script.

use maud::{html, Markup, DOCTYPE};

/// A whole page titled `title` around `body`.
pub fn shell(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Weft" }
                link rel="stylesheet" href="/static/weft.css";
                script src="/static/weft.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    nav aria-label="Main" {
                        a.brand href="/runs" { "Weft" }
                        a href="/runs" { "Runs" }
                        a href="/compare" { "Compare" }
                        a href="/experiments" { "Experiments" }
                        a href="/models" { "Models" }
                        a href="/serving" { "Serving" }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

/// A state as a coloured badge; the word is always there, so colour is never the only cue.
pub fn badge(state: &str) -> Markup {
    html! { span class={ "badge " (state_class(state)) } { (state) } }
}

/// The CSS class of a state: `succeeded`, `failed`, `running`, ...
pub fn state_class(state: &str) -> String {
    match state.to_ascii_uppercase().as_str() {
        "SUCCEEDED" | "LIVE" | "FINISHED" => "ok",
        "FAILED" | "KILLED" | "METRICSUNAVAILABLE" => "bad",
        "RUNNING" | "PENDING" | "SCHEDULED" => "busy",
        "SKIPPED" | "CACHED" => "cached",
        _ => "idle",
    }
    .to_string()
}

/// `/runs/ID` with the id escaped for a path.
pub fn run_href(id: &str) -> String {
    format!("/runs/{}", path_part(id))
}

/// One path segment, percent-encoded where a URL needs it.
pub fn path_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A query string from pairs, each encoded.
pub fn query(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().filter(|(_, v)| !v.is_empty()))
        .finish()
}
