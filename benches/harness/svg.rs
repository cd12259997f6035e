//! A curve as a standalone SVG: log-log axes with a tick and a grid line per power of ten, one
//! polyline with point markers per series, axis labels, a title and a legend. Written by hand
//! (no plotting crate): the figures are simple and the file stays diffable.

use std::fmt::Write as _;

use super::Curve;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 400.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
const COLOURS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// Powers of ten covering `[lo, hi]` (at least one decade).
fn decades(lo: f64, hi: f64) -> (i32, i32) {
    let lo = lo.log10().floor() as i32;
    let mut hi = hi.log10().ceil() as i32;
    if hi <= lo {
        hi = lo + 1;
    }
    (lo, hi)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A power of ten as a short label: 1k, 10k, 100k, 1M, 0.01.
fn label(exponent: i32) -> String {
    match exponent {
        e if e >= 6 => format!("{}M", 10f64.powi(e - 6)),
        e if e >= 3 => format!("{}k", 10f64.powi(e - 3)),
        e if e >= 0 => format!("{}", 10f64.powi(e)),
        e => format!("{}", 10f64.powi(e)),
    }
}

/// The SVG document for `curve`. Points that are not positive cannot sit on a log axis and are
/// left out.
pub fn plot(curve: &Curve) -> String {
    let points: Vec<(f64, f64)> = curve
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|(x, y)| *x > 0.0 && *y > 0.0 && x.is_finite() && y.is_finite())
        .collect();
    let (x_lo, x_hi) = points.iter().fold((f64::INFINITY, 0f64), |(lo, hi), p| {
        (lo.min(p.0), hi.max(p.0))
    });
    let (y_lo, y_hi) = points.iter().fold((f64::INFINITY, 0f64), |(lo, hi), p| {
        (lo.min(p.1), hi.max(p.1))
    });
    let (x_lo, x_hi) = if points.is_empty() {
        (0, 1)
    } else {
        decades(x_lo, x_hi)
    };
    let (y_lo, y_hi) = if points.is_empty() {
        (0, 1)
    } else {
        decades(y_lo, y_hi)
    };
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let sx = |x: f64| LEFT + (x.log10() - f64::from(x_lo)) / f64::from(x_hi - x_lo) * plot_w;
    let sy =
        |y: f64| TOP + plot_h - (y.log10() - f64::from(y_lo)) / f64::from(y_hi - y_lo) * plot_h;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"#,
        LEFT + plot_w / 2.0,
        escape(&curve.title)
    );
    // Grid and ticks, one per power of ten.
    for e in x_lo..=x_hi {
        let x = sx(10f64.powi(e));
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/>"##,
            TOP + plot_h
        );
        let _ = writeln!(
            svg,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            TOP + plot_h + 18.0,
            label(e)
        );
    }
    for e in y_lo..=y_hi {
        let y = sy(10f64.powi(e));
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
            LEFT + plot_w
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y + 4.0,
            label(e)
        );
    }
    // Axes.
    let _ = writeln!(
        svg,
        r#"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}" stroke="black"/>"#,
        TOP + plot_h
    );
    let _ = writeln!(
        svg,
        r#"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/>"#,
        TOP + plot_h,
        LEFT + plot_w,
        TOP + plot_h
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{} (log)</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 18.0,
        escape(&curve.x_label)
    );
    let _ = writeln!(
        svg,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">{} (log)</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        escape(&curve.y_label)
    );
    // Series and legend.
    for (i, series) in curve.series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let drawn: Vec<(f64, f64)> = series
            .points
            .iter()
            .copied()
            .filter(|(x, y)| *x > 0.0 && *y > 0.0 && x.is_finite() && y.is_finite())
            .map(|(x, y)| (sx(x), sy(y)))
            .collect();
        let line: Vec<String> = drawn
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            line.join(" ")
        );
        for (x, y) in &drawn {
            let _ = writeln!(
                svg,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{colour}"/>"#
            );
        }
        let ly = TOP + 10.0 + 20.0 * i as f64;
        let lx = LEFT + plot_w + 16.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="2"/>"#,
            lx + 20.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 26.0,
            ly + 4.0,
            escape(&series.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}
