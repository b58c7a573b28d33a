//! Charts drawn on the server as SVG (no script, no library): bars or a line over labelled
//! points, one or more series, scaled to the largest value. The SVG carries a title and a
//! description for screen readers, and every chart sits beside a table of the same numbers.

use maud::{Markup, html};

/// Series colours, dark enough to read against white.
const COLOURS: [&str; 4] = ["#1f5fbf", "#1d6b3a", "#a3231b", "#7a4ea3"];

/// How the values are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A bar per label and series.
    Bars,
    /// A line per series.
    Line,
}

/// A chart of `series` (name, one value per label) over `labels`.
pub(crate) fn chart(
    title: &str,
    shape: Shape,
    labels: &[String],
    series: &[(String, Vec<f64>)],
) -> Markup {
    const W: f64 = 640.0;
    const H: f64 = 240.0;
    const LEFT: f64 = 48.0;
    const BOTTOM: f64 = 40.0;
    const TOP: f64 = 12.0;
    let plot_w = W - LEFT - 8.0;
    let plot_h = H - BOTTOM - TOP;
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0_f64, f64::max);
    let top = nice_ceiling(max);
    let n = labels.len().max(1);
    let step = plot_w / n as f64;
    let y = |v: f64| TOP + plot_h - (v / top) * plot_h;
    // Every label when they fit, otherwise about eight of them.
    let every = n.div_ceil(8).max(1);
    let desc = series
        .iter()
        .map(|(name, values)| {
            let points: Vec<String> = labels
                .iter()
                .zip(values)
                .map(|(l, v)| format!("{l}: {}", fmt_number(*v)))
                .collect();
            format!("{name}: {}", points.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ");
    // Ids from the title, so two charts on a page keep their own.
    let key: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {W} {H}")) role="img" aria-labelledby=(format!("chart-{key}-t chart-{key}-d")) preserveAspectRatio="xMidYMid meet" {
                title id=(format!("chart-{key}-t")) { (title) }
                desc id=(format!("chart-{key}-d")) { (desc) }
                @for i in 0..=4 {
                    @let v = top * f64::from(i) / 4.0;
                    line x1=(LEFT) x2=(W - 8.0) y1=(y(v)) y2=(y(v)) stroke="#d5d9e0" stroke-width="1" {}
                    text x=(LEFT - 6.0) y=(y(v) + 4.0) text-anchor="end" font-size="11" fill="#4d5566" { (fmt_number(v)) }
                }
                @for (i, label) in labels.iter().enumerate() {
                    @if i % every == 0 {
                        text x=(LEFT + step * (i as f64 + 0.5)) y=(H - BOTTOM + 16.0) text-anchor="middle" font-size="11" fill="#4d5566" { (label) }
                    }
                }
                @match shape {
                    Shape::Bars => {
                        @let width = step * 0.8 / series.len().max(1) as f64;
                        @for (s, (name, values)) in series.iter().enumerate() {
                            @for (i, v) in values.iter().enumerate() {
                                rect x=(LEFT + step * i as f64 + step * 0.1 + width * s as f64) y=(y(*v)) width=(width) height=((y(0.0) - y(*v)).max(0.0)) fill=(COLOURS[s % COLOURS.len()]) {
                                    title { (name) " · " (labels.get(i).map_or("", String::as_str)) ": " (fmt_number(*v)) }
                                }
                            }
                        }
                    }
                    Shape::Line => {
                        @for (s, (_, values)) in series.iter().enumerate() {
                            @let points = values.iter().enumerate()
                                .map(|(i, v)| format!("{:.1},{:.1}", LEFT + step * (i as f64 + 0.5), y(*v)))
                                .collect::<Vec<_>>().join(" ");
                            polyline points=(points) fill="none" stroke=(COLOURS[s % COLOURS.len()]) stroke-width="2.5" {}
                            @for (i, v) in values.iter().enumerate() {
                                circle cx=(LEFT + step * (i as f64 + 0.5)) cy=(y(*v)) r="3" fill=(COLOURS[s % COLOURS.len()]) {
                                    title { (labels.get(i).map_or("", String::as_str)) ": " (fmt_number(*v)) }
                                }
                            }
                        }
                    }
                }
                line x1=(LEFT) x2=(W - 8.0) y1=(y(0.0)) y2=(y(0.0)) stroke="#4d5566" stroke-width="1" {}
            }
            @if series.len() > 1 {
                figcaption.legend {
                    @for (s, (name, _)) in series.iter().enumerate() {
                        span.key { svg.swatch viewBox="0 0 10 10" aria-hidden="true" { rect width="10" height="10" fill=(COLOURS[s % COLOURS.len()]) {} } " " (name) }
                    }
                }
            }
        }
    }
}

/// The smallest of 1, 2, 2.5 or 5 times a power of ten at or above `v` (an axis top that
/// gives round gridlines).
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * magnitude)
}

/// A number for an axis or a tooltip: whole when it is, else two decimals; thousands as k.
pub(crate) fn fmt_number(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_are_round() {
        assert!((nice_ceiling(0.0) - 1.0).abs() < f64::EPSILON);
        assert!((nice_ceiling(7.0) - 10.0).abs() < f64::EPSILON);
        assert!((nice_ceiling(120.0) - 200.0).abs() < f64::EPSILON);
        assert!((nice_ceiling(2_300.0) - 2_500.0).abs() < f64::EPSILON);
    }

    #[test]
    fn a_chart_describes_its_numbers_in_text() {
        let svg = chart(
            "New contacts",
            Shape::Line,
            &["W1".to_owned(), "W2".to_owned()],
            &[("contacts".to_owned(), vec![3.0, 5.0])],
        )
        .into_string();
        assert!(
            svg.contains("<title id=\"chart-new-contacts-t\">New contacts</title>"),
            "{svg}"
        );
        assert!(svg.contains("contacts: W1: 3, W2: 5"), "{svg}");
        assert!(svg.contains("<polyline"), "{svg}");
    }
}
