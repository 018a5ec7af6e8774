//! The comparison report: reads what the harness measured (a directory of JSON files), adds
//! the ratios and the brief's targets, prints a table, writes `compare.json` and an SVG
//! picture (throughput bars, latency CDFs).
//!
//! Input files in the directory:
//! - `throughput.jsonl`: one object per line, `{"system", "profile", "flows", "mpps", ...}`;
//! - `latency-*.json`: `podlane-bench run` outputs (`kind` = "latency");
//! - `check-*.json`: byte-wise checks of podlane's output (`podlane-bench verify`);
//! - `meta.json`: anything about the run (command, load average), copied as is.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::{json, Value};

/// The brief's targets for a profile: (× testpmd, × OVS).
pub fn targets(profile: &str) -> Option<(f64, f64)> {
    match profile {
        "encap" => Some((0.7, 3.0)),
        "decap" => Some((0.7, 6.0)),
        "clusterip" => Some((0.5, 7.0)),
        _ => None,
    }
}

/// Everything read from a results directory.
#[derive(Debug, Default)]
pub struct Inputs {
    /// Throughput rows.
    pub throughput: Vec<Value>,
    /// Latency runs.
    pub latency: Vec<Value>,
    /// Output checks.
    pub checks: Vec<Value>,
    /// Run metadata.
    pub meta: Value,
}

/// Reads a results directory.
pub fn read_dir(dir: &Path) -> Result<Inputs, String> {
    let mut inp = Inputs::default();
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    names.sort();
    for p in names {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let text = || std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()));
        let parse = |t: &str| -> Result<Value, String> {
            serde_json::from_str(t).map_err(|e| format!("{}: {e}", p.display()))
        };
        if name == "throughput.jsonl" {
            for line in text()?.lines().filter(|l| !l.trim().is_empty()) {
                inp.throughput.push(parse(line)?);
            }
        } else if name.starts_with("latency-") && name.ends_with(".json") {
            inp.latency.push(parse(&text()?)?);
        } else if name.starts_with("check-") && name.ends_with(".json") {
            inp.checks.push(parse(&text()?)?);
        } else if name == "meta.json" {
            inp.meta = parse(&text()?)?;
        }
    }
    Ok(inp)
}

fn f(v: &Value, k: &str) -> f64 {
    v.get(k).and_then(Value::as_f64).unwrap_or(0.0)
}

fn s<'v>(v: &'v Value, k: &str) -> &'v str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// The ratios per (profile, flows): podlane against testpmd io forwarding (measured on the
/// same traffic: testpmd forwards the profile's own pcap) and against OVS.
pub fn ratios(inp: &Inputs) -> Vec<Value> {
    let mut by: BTreeMap<(u64, String), BTreeMap<String, f64>> = BTreeMap::new();
    for r in &inp.throughput {
        let flows = r.get("flows").and_then(Value::as_u64).unwrap_or(0);
        by.entry((flows, s(r, "profile").to_string()))
            .or_default()
            .insert(s(r, "system").to_string(), f(r, "mpps"));
    }
    let mut out = Vec::new();
    for ((flows, profile), sys) in by {
        let pod = sys.get("podlane").copied();
        let tp = sys.get("testpmd").copied();
        let ovs = sys.get("ovs").copied();
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let vs_tp = ratio(pod, tp);
        let vs_ovs = ratio(pod, ovs);
        let (t_tp, t_ovs) = targets(&profile).map_or((None, None), |(a, b)| (Some(a), Some(b)));
        out.push(json!({
            "profile": profile,
            "flows": flows,
            "testpmd_mpps": tp,
            "podlane_mpps": pod,
            "ovs_mpps": ovs,
            "podlane_over_testpmd": vs_tp,
            "podlane_over_ovs": vs_ovs,
            "target_over_testpmd": t_tp,
            "target_over_ovs": t_ovs,
            "met_testpmd": vs_tp.zip(t_tp).map(|(r, t)| r >= t),
            "met_ovs": vs_ovs.zip(t_ovs).map(|(r, t)| r >= t),
        }));
    }
    out
}

/// Latency summary rows: label, profile, load, rate, p50/p90/p99/p99.9/max (µs), loss.
pub fn latency_rows(inp: &Inputs) -> Vec<Value> {
    let mut rows = Vec::new();
    for l in &inp.latency {
        let zl = l.get("zero_loss_pps").and_then(Value::as_f64);
        for ld in l
            .get("loads")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let t = &ld["trial"];
            let lat = &t["latency_ns"];
            rows.push(json!({
                "label": s(l, "label"),
                "profile": s(l, "profile"),
                "flows": l.get("flows"),
                "zero_loss_mpps": zl.map(|z| z / 1e6),
                "load_pct": ld.get("load_pct"),
                "rate_mpps": f(ld, "rate_pps") / 1e6,
                "offered_mpps": t.get("offered_mpps"),
                "p50_us": f(lat, "p50") / 1e3,
                "p90_us": f(lat, "p90") / 1e3,
                "p99_us": f(lat, "p99") / 1e3,
                "p999_us": f(lat, "p999") / 1e3,
                "max_us": f(lat, "max") / 1e3,
                "loss_ratio": f(t, "loss_ratio"),
                "reordered": t.get("reordered"),
                "duplicates": t.get("duplicates"),
            }));
        }
    }
    rows
}

/// p99 of podlane against testpmd at the same profile and load.
pub fn latency_ratios(rows: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for r in rows.iter().filter(|r| s(r, "label") == "podlane") {
        let other = rows.iter().find(|o| {
            s(o, "label") == "testpmd"
                && s(o, "profile") == s(r, "profile")
                && o.get("load_pct") == r.get("load_pct")
        });
        if let Some(o) = other {
            let ratio = f(r, "p99_us") / f(o, "p99_us").max(1e-9);
            out.push(json!({
                "profile": s(r, "profile"),
                "load_pct": r.get("load_pct"),
                "podlane_p99_us": f(r, "p99_us"),
                "testpmd_p99_us": f(o, "p99_us"),
                "p99_ratio": ratio,
                "target": 2.0,
                "met": ratio <= 2.0,
            }));
        }
    }
    out
}

fn opt(v: &Value, k: &str, prec: usize) -> String {
    v.get(k)
        .and_then(Value::as_f64)
        .map_or("—".into(), |x| format!("{x:.prec$}"))
}

/// The whole report: compare.json's content and the text table.
pub fn build(inp: &Inputs) -> (Value, String) {
    let ratios = ratios(inp);
    let lat = latency_rows(inp);
    let lat_ratios = latency_ratios(&lat);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<12} {:>6} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>7}",
        "profile", "flows", "testpmd", "podlane", "ovs", "pl/tpmd", "target", "pl/ovs", "target"
    );
    for r in &ratios {
        let _ = writeln!(
            t,
            "{:<12} {:>6} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>7}",
            s(r, "profile"),
            r["flows"],
            opt(r, "testpmd_mpps", 2),
            opt(r, "podlane_mpps", 2),
            opt(r, "ovs_mpps", 2),
            opt(r, "podlane_over_testpmd", 2),
            opt(r, "target_over_testpmd", 1),
            opt(r, "podlane_over_ovs", 2),
            opt(r, "target_over_ovs", 0),
        );
    }
    if !lat.is_empty() {
        let _ = writeln!(
            t,
            "\n{:<8} {:<10} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
            "system",
            "profile",
            "load",
            "Mpps",
            "p50 µs",
            "p90 µs",
            "p99 µs",
            "p99.9",
            "max µs",
            "loss"
        );
        for r in &lat {
            let _ = writeln!(
                t,
                "{:<8} {:<10} {:>4}% {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
                s(r, "label"),
                s(r, "profile"),
                r["load_pct"],
                opt(r, "rate_mpps", 3),
                opt(r, "p50_us", 1),
                opt(r, "p90_us", 1),
                opt(r, "p99_us", 1),
                opt(r, "p999_us", 1),
                opt(r, "max_us", 1),
                format!("{:.2e}", f(r, "loss_ratio")),
            );
        }
        for r in &lat_ratios {
            let _ = writeln!(
                t,
                "p99 {} at {}% load: podlane/testpmd = {:.2} (target ≤ 2)",
                s(r, "profile"),
                r["load_pct"],
                f(r, "p99_ratio")
            );
        }
    }
    for c in &inp.checks {
        let _ = writeln!(
            t,
            "check {}: {} frames compared byte-wise, {}",
            s(c, "profile"),
            c["checked"],
            if c["ok"].as_bool() == Some(true) {
                "all correct".to_string()
            } else {
                format!("FAILED: {}", s(c, "error"))
            }
        );
    }
    let v = json!({
        "meta": inp.meta,
        "throughput": inp.throughput,
        "ratios": ratios,
        "latency": lat,
        "latency_ratios": lat_ratios,
        "latency_runs": inp.latency.iter().map(|l| json!({
            "label": l["label"], "profile": l["profile"], "zero_loss_pps": l["zero_loss_pps"],
            "loss_tolerance": l["loss_tolerance"], "trial_secs": l["trial_secs"],
            "search": l["search"].as_array().map(|a| a.iter().map(|t| json!({
                "offered_pps": t["offered_pps"], "attempted": t["attempted"],
                "loss_ratio": t["loss_ratio"]})).collect::<Vec<_>>()),
        })).collect::<Vec<_>>(),
        "checks": inp.checks,
    });
    (v, t)
}

const COLORS: [&str; 6] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The picture: throughput bars per profile and flow count (one bar per system), and the
/// latency CDFs (x: latency, log scale; y: fraction of packets).
pub fn svg(inp: &Inputs, title: &str) -> String {
    let (w, h) = (1100.0, 460.0);
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(o, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="10" y="18" font-size="14" font-weight="bold">{}</text>"#,
        esc(title)
    );
    // ---- throughput bars (left: x 50..600, y 40..380) ----
    let systems = ["testpmd", "podlane", "ovs"];
    let mut groups: Vec<(String, u64)> = Vec::new();
    let mut max = 0.0f64;
    for r in &inp.throughput {
        let g = (
            s(r, "profile").to_string(),
            r.get("flows").and_then(Value::as_u64).unwrap_or(0),
        );
        if !groups.contains(&g) {
            groups.push(g);
        }
        max = max.max(f(r, "mpps"));
    }
    let max = if max <= 0.0 { 1.0 } else { max * 1.1 };
    let (x0, x1, y0, y1) = (50.0, 600.0, 40.0, 380.0);
    let _ = writeln!(
        o,
        r#"<text x="{}" y="34" text-anchor="middle">Throughput, one lcore, 64-byte frames (Mpps)</text>"#,
        (x0 + x1) / 2.0
    );
    let _ = writeln!(
        o,
        r#"<line x1="{x0}" y1="{y1}" x2="{x1}" y2="{y1}" stroke="black"/><line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="black"/>"#
    );
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let y = y1 - (y1 - y0) * k as f64 / 4.0;
        let _ = writeln!(
            o,
            r##"<text x="{}" y="{}" text-anchor="end">{v:.0}</text><line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" stroke="#ddd"/>"##,
            x0 - 4.0,
            y + 4.0
        );
    }
    let gw = (x1 - x0) / groups.len().max(1) as f64;
    let bw = gw * 0.8 / systems.len() as f64;
    for (gi, (prof, flows)) in groups.iter().enumerate() {
        let gx = x0 + gw * gi as f64 + gw * 0.1;
        for (si, sys) in systems.iter().enumerate() {
            let Some(r) = inp.throughput.iter().find(|r| {
                s(r, "profile") == prof
                    && r.get("flows").and_then(Value::as_u64) == Some(*flows)
                    && s(r, "system") == *sys
            }) else {
                continue;
            };
            let v = f(r, "mpps");
            let bh = (y1 - y0) * v / max;
            let x = gx + bw * si as f64;
            let _ = writeln!(
                o,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="{}"><title>{sys} {prof} {flows} flows: {v:.2} Mpps</title></rect>"#,
                y1 - bh,
                bw * 0.95,
                COLORS[si]
            );
            let _ = writeln!(
                o,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="8">{v:.1}</text>"#,
                x + bw / 2.0,
                y1 - bh - 2.0
            );
        }
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text><text x="{:.1}" y="{}" text-anchor="middle" font-size="9">{} fl</text>"#,
            gx + gw * 0.4,
            y1 + 14.0,
            esc(prof),
            gx + gw * 0.4,
            y1 + 26.0,
            flows
        );
    }
    for (si, sys) in systems.iter().enumerate() {
        let _ = writeln!(
            o,
            r#"<rect x="{}" y="420" width="10" height="10" fill="{}"/><text x="{}" y="429">{sys}</text>"#,
            x0 + 90.0 * si as f64,
            COLORS[si],
            x0 + 14.0 + 90.0 * si as f64
        );
    }
    // ---- latency (right: x 680..1080, y 40..380): percentile plot, x log10 of µs, y
    // -log10(1 - q) so the tail (90%, 99%, 99.9%, 99.99%) gets equal room ----
    let (lx0, lx1) = (680.0, 1080.0);
    let _ = writeln!(
        o,
        r#"<text x="{}" y="34" text-anchor="middle">Latency over net_memif by percentile (µs, log scale)</text>"#,
        (lx0 + lx1) / 2.0
    );
    let _ = writeln!(
        o,
        r#"<line x1="{lx0}" y1="{y1}" x2="{lx1}" y2="{y1}" stroke="black"/><line x1="{lx0}" y1="{y0}" x2="{lx0}" y2="{y1}" stroke="black"/>"#
    );
    // (name, system, load, points (µs, q))
    type Curve = (String, String, f64, Vec<(f64, f64)>);
    let mut curves: Vec<Curve> = Vec::new();
    for l in &inp.latency {
        for ld in l
            .get("loads")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let pts: Vec<(f64, f64)> = ld["trial"]["cdf"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| Some((p.get(0)?.as_f64()? / 1e3, p.get(1)?.as_f64()?)))
                .collect();
            if !pts.is_empty() {
                let load = ld["load_pct"].as_f64().unwrap_or(0.0);
                curves.push((
                    format!("{} {} {load}%", s(l, "label"), s(l, "profile")),
                    s(l, "label").to_string(),
                    load,
                    pts,
                ));
            }
        }
    }
    let (mut lo, mut hi) = (f64::MAX, 0.0f64);
    for (_, _, _, pts) in &curves {
        for &(x, _) in pts {
            lo = lo.min(x.max(0.01));
            hi = hi.max(x);
        }
    }
    if curves.is_empty() {
        lo = 1.0;
        hi = 100.0;
    }
    let (llo, lhi) = (
        lo.log10().floor(),
        hi.log10().ceil().max(lo.log10().floor() + 1.0),
    );
    let ymax = 4.5; // 99.997%
    let sx = |x: f64| lx0 + (lx1 - lx0) * (x.max(0.01).log10() - llo) / (lhi - llo);
    let sy = |q: f64| {
        let t = if q >= 1.0 {
            ymax
        } else {
            (-(1.0 - q).log10()).min(ymax)
        };
        y1 - (y1 - y0) * t / ymax
    };
    let mut d = llo;
    while d <= lhi {
        let x = sx(10f64.powf(d));
        let _ = writeln!(
            o,
            r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{y1}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
            y1 + 14.0,
            10f64.powf(d)
        );
        d += 1.0;
    }
    for (q, label) in [
        (0.0, "0%"),
        (0.5, "50%"),
        (0.9, "90%"),
        (0.99, "99%"),
        (0.999, "99.9%"),
        (0.9999, "99.99%"),
    ] {
        let _ = writeln!(
            o,
            r##"<line x1="{lx0}" y1="{:.1}" x2="{lx1}" y2="{:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{label}</text>"##,
            sy(q),
            sy(q),
            lx0 - 4.0,
            sy(q) + 4.0
        );
    }
    for (ci, (name, system, load, pts)) in curves.iter().enumerate() {
        let c = COLORS[systems
            .iter()
            .position(|x| x == system)
            .unwrap_or(3 + ci % 3)];
        let dash = if *load < 30.0 {
            r#" stroke-dasharray="1 3""#
        } else if *load > 70.0 {
            r#" stroke-dasharray="6 3""#
        } else {
            ""
        };
        let path: Vec<String> = pts
            .iter()
            .map(|&(x, q)| format!("{:.1},{:.1}", sx(x), sy(q)))
            .collect();
        let _ = writeln!(
            o,
            r#"<polyline fill="none" stroke="{c}" stroke-width="1.5"{dash} points="{}"/>"#,
            path.join(" ")
        );
        let ly = y0 + 8.0 + 13.0 * ci as f64;
        let _ = writeln!(
            o,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{c}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
            lx0 + 10.0,
            lx0 + 30.0,
            lx0 + 34.0,
            ly + 4.0,
            esc(name)
        );
    }
    o.push_str("</svg>\n");
    o
}
