//! A tiny SVG writer (rectangles, lines, text), enough for the report's picture. No
//! dependencies; text is XML-escaped; coordinates are written with one decimal, so the output
//! is byte-for-byte stable.

use core::fmt::Write as _;

/// An SVG document being written.
#[derive(Debug, Clone)]
pub struct Svg {
    width: f64,
    height: f64,
    body: String,
}

/// Text alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// Left.
    Start,
    /// Centre.
    Middle,
    /// Right.
    End,
}

impl Anchor {
    fn as_str(self) -> &'static str {
        match self {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        }
    }
}

/// Escapes text for XML.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    o
}

impl Svg {
    /// An empty `width` × `height` picture with a white background.
    pub fn new(width: f64, height: f64) -> Svg {
        let mut s = Svg {
            width,
            height,
            body: String::new(),
        };
        s.rect(0.0, 0.0, width, height, "#ffffff");
        s
    }

    /// A filled rectangle.
    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str) {
        let _ = writeln!(
            self.body,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"/>"#,
            w.max(0.0),
            h.max(0.0),
            escape(fill)
        );
    }

    /// A line.
    pub fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str, width: f64) {
        let _ = writeln!(
            self.body,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{}" stroke-width="{width:.1}"/>"#,
            escape(stroke)
        );
    }

    /// Text at `(x, y)` (baseline).
    pub fn text(&mut self, x: f64, y: f64, size: f64, anchor: Anchor, fill: &str, text: &str) {
        let _ = writeln!(
            self.body,
            r#"<text x="{x:.1}" y="{y:.1}" font-family="sans-serif" font-size="{size:.1}" text-anchor="{}" fill="{}">{}</text>"#,
            anchor.as_str(),
            escape(fill),
            escape(text)
        );
    }

    /// The finished document.
    pub fn finish(self) -> String {
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\">\n{}</svg>\n",
            self.body,
            w = self.width,
            h = self.height
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_escaped_well_formed_svg() {
        let mut s = Svg::new(100.0, 50.0);
        s.rect(1.0, 2.0, 3.0, -4.0, "#ff0000");
        s.line(0.0, 0.0, 10.0, 10.0, "black", 1.0);
        s.text(5.0, 5.0, 10.0, Anchor::Middle, "black", "a < b & \"c\"");
        let out = s.finish();
        assert!(out.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"100\""));
        assert!(out.ends_with("</svg>\n"));
        assert!(out.contains("a &lt; b &amp; &quot;c&quot;"));
        assert!(out.contains(r#"height="0.0""#), "negative sizes clamp");
        assert_eq!(out.matches('<').count(), out.matches('>').count());
    }
}
