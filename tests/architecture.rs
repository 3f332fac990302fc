//! ARCHITECTURE.md stays true: every source path it names in backticks exists, every
//! function named in the stage table is defined in the file of its row, and each stage
//! imports only what comes before it on the data path.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn doc() -> String {
    std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap()
}

/// The words between backticks.
fn ticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

#[test]
fn every_path_named_exists() {
    let doc = doc();
    let paths: Vec<&str> = ticked(&doc)
        .into_iter()
        .filter(|t| t.ends_with(".rs") || t.ends_with('/'))
        .collect();
    assert!(paths.len() > 20, "the page names its files: {paths:?}");
    for p in paths {
        assert!(
            root().join(p).exists(),
            "ARCHITECTURE.md names {p}, which does not exist"
        );
    }
}

#[test]
fn every_stage_function_is_defined_where_the_table_says() {
    let doc = doc();
    let rows: Vec<&str> = doc
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains(".rs`"))
        .collect();
    assert!(rows.len() >= 10, "the stage table has its rows");
    for row in rows {
        let t = ticked(row);
        let file = t.iter().find(|x| x.ends_with(".rs")).unwrap();
        let func = t.last().unwrap();
        let src = std::fs::read_to_string(root().join(file)).unwrap();
        assert!(
            src.contains(&format!("fn {func}(")) || src.contains(&format!("fn {func}<")),
            "ARCHITECTURE.md says {file} defines {func}"
        );
    }
}

#[test]
fn every_module_folder_of_src_is_described() {
    let doc = doc();
    for e in std::fs::read_dir(root().join("src")).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            let name = format!("src/{}/", e.file_name().to_string_lossy());
            assert!(
                doc.contains(&format!("`{name}")),
                "ARCHITECTURE.md does not describe {name}"
            );
        }
    }
}

/// Every source file over 500 lines says why, in its module documentation, under "Why
/// this file is over 500 lines".
#[test]
fn every_file_over_500_lines_says_why() {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join("src"), &mut files);
    walk(&root().join("core/src"), &mut files);
    walk(&root().join("proto/src"), &mut files);
    assert!(files.len() > 40, "{files:?}");
    let mut silent = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let lines = text.lines().count();
        if lines > 500 && !text.contains("Why this file is over 500 lines") {
            silent.push(format!("{} ({lines} lines)", f.display()));
        }
    }
    assert!(
        silent.is_empty(),
        "over 500 lines without saying why: {silent:?}"
    );
}

/// The `crate::` modules a source file names (in `use` lines and paths alike), and
/// whether it names tokio or axum; `#[cfg(test)]` modules are not looked at.
fn imports(path: &Path) -> (std::collections::BTreeSet<String>, bool) {
    let text = std::fs::read_to_string(path).unwrap();
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut mods = std::collections::BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        // `crate::` inside a longer identifier is not a path into this crate.
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = code[i + 7..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        if !name.is_empty() {
            mods.insert(name);
        }
    }
    let io = code.contains("tokio::") || code.contains("axum::");
    (mods, io)
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    if dir.is_file() {
        out.push(dir.to_path_buf());
        return;
    }
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The boundaries ARCHITECTURE.md draws, checked on the imports. Cargo holds the core's
/// (`core/`, the crate `heplink-core`: see [`the_core_depends_on_no_runtime`]); inside it,
/// each stage (janus → correlate → map → diagnose → pipeline) names nothing of a stage after
/// it; in the agent, outputs never reach back into inputs or the stages, inputs never into
/// the wiring or the commands; inputs, outputs, acknowledgement and the alias keeper count
/// through the telemetry seam, never naming the metrics registry.
#[test]
fn each_stage_imports_only_what_comes_before_it() {
    let core = ["janus", "reject", "json", "time", "choice"];
    let rules: [(&str, Vec<&str>, bool); 12] = [
        ("core/src/janus", core.to_vec(), false),
        (
            "core/src/correlate",
            [&core[..], &["correlate"]].concat(),
            false,
        ),
        (
            "core/src/map",
            [&core[..], &["correlate", "map"]].concat(),
            false,
        ),
        (
            "core/src/diagnose",
            [&core[..], &["correlate", "map", "diagnose"]].concat(),
            false,
        ),
        (
            "core/src/pipeline.rs",
            [&core[..], &["correlate", "map", "diagnose"]].concat(),
            false,
        ),
        (
            "src/output",
            vec![
                "output",
                "telemetry",
                "internal_events",
                "tls",
                "observe",
                "time",
            ],
            true,
        ),
        // The alias keeper and the telemetry seam count through `telemetry`, never the
        // registry (`metrics`), which the agent installs behind it.
        (
            "src/homer",
            vec![
                "homer",
                "diagnose",
                "internal_events",
                "telemetry",
                "observe",
                "tls",
            ],
            true,
        ),
        (
            "src/internal_events.rs",
            vec!["homer", "telemetry", "observe", "reject"],
            false,
        ),
        // The broker's counting handle carries its status for `/health` (control state).
        ("src/telemetry.rs", vec!["reject", "status"], false),
        // What inputs say of themselves: names nothing.
        ("src/status.rs", vec![], false),
        // Acknowledgement: what the pipeline said of a body and what the outputs'
        // progress handles say of its packets; no socket, no input, no counter.
        (
            "src/ack",
            vec!["ack", "output", "telemetry", "observe", "pipeline", "time"],
            true,
        ),
        (
            "src/input",
            vec![
                "input",
                "ack",
                "config",
                "status",
                "telemetry",
                "internal_events",
                "observe",
                "pipeline",
                "correlate",
                "janus",
                "json",
                "reject",
                "time",
                "tls",
            ],
            true,
        ),
    ];
    let mut wrong = Vec::new();
    for (dir, allowed, io_ok) in &rules {
        let mut files = Vec::new();
        rust_files(&root().join(dir), &mut files);
        assert!(!files.is_empty(), "{dir}");
        for f in files {
            let (mods, io) = imports(&f);
            for m in mods.iter().filter(|m| !allowed.contains(&m.as_str())) {
                wrong.push(format!("{} uses crate::{m}", f.display()));
            }
            if io && !io_ok {
                wrong.push(format!("{} names tokio or axum", f.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "arrows against the data path: {wrong:#?}");
}

/// The core (`heplink-core`) builds without the agent's runtime: none of the crates that do
/// I/O or parse a command line is in its dependency tree (its dev-dependencies aside:
/// criterion brings clap to the benches only). Cargo resolves the tree, so this cannot be
/// fooled by a re-export or a path the text scans above do not see.
#[test]
fn the_core_depends_on_no_runtime() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-p",
            "heplink-core",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    let names: std::collections::BTreeSet<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        names.contains("heplink-proto"),
        "the tree is read: {names:?}"
    );
    let forbidden = [
        "tokio",
        "axum",
        "hyper",
        "lapin",
        "rumqttc",
        "clap",
        "tracing-subscriber",
        "mimalloc",
    ];
    let found: Vec<&&str> = forbidden.iter().filter(|f| names.contains(**f)).collect();
    assert!(found.is_empty(), "the core depends on {found:?}");
}

/// The source of a file without its whole-line comments (doc links name modules without
/// depending on them) and its `#[cfg(test)]` items, wherever they sit in the file.
fn code_of(path: &Path) -> String {
    without_tests(&std::fs::read_to_string(path).unwrap())
}

/// `text` without its whole-line comments and its `#[cfg(test)]` items.
fn without_tests(text: &str) -> String {
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .flat_map(|l| [l, "\n"])
        .collect();
    let mut out = String::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        // The item ends at the `;` or the brace that closes its first `{`.
        let b = rest.as_bytes();
        let (mut depth, mut j) = (0usize, 0usize);
        while j < b.len() {
            match b[j] {
                b'"' => {
                    // A string: to its closing quote.
                    j += 1;
                    while j < b.len() && b[j] != b'"' {
                        j += if b[j] == b'\\' { 2 } else { 1 };
                    }
                }
                // A character literal such as '{' (a lifetime has no closing quote).
                b'\'' if b.get(j + 2) == Some(&b'\'') => j += 2,
                b'\'' if b.get(j + 1) == Some(&b'\\') => {
                    j += rest[j + 2..].find('\'').map_or(0, |k| k + 2)
                }
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                b';' if depth == 0 => break,
                _ => {}
            }
            j += 1;
        }
        rest = &rest[(j + 1).min(rest.len())..];
    }
    out.push_str(rest);
    out
}

/// The `crate::` paths named in `code`, each as its segments, with `use crate::a::{b,
/// c::d}` groups expanded (`crate::a::b`, `crate::a::c::d`).
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    fn ident(s: &str) -> (&str, &str) {
        let end = s
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        s.split_at(end)
    }
    /// Reads a path (or a `{...}` group) at the start of `s` after `prefix`.
    fn path(s: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
        let s = s.trim_start();
        if let Some(group) = s.strip_prefix('{') {
            // Split the group at its top-level commas.
            let (mut depth, mut start) = (0usize, 0usize);
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        path(&group[start..i], prefix.clone(), out);
                        return;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        path(&group[start..i], prefix.clone(), out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            return;
        }
        let (name, rest) = ident(s);
        let mut segs = prefix;
        if name.is_empty() || name == "self" {
            out.push(segs);
            return;
        }
        segs.push(name.to_string());
        match rest.strip_prefix("::") {
            Some(rest) => path(rest, segs, out),
            None => out.push(segs),
        }
    }
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        path(&code[i + 7..], Vec::new(), &mut out);
    }
    out
}

/// No import circle anywhere: the graph of `crate::` paths between the files of `src/`
/// (each path leads to the deepest file it names: `crate::output::spool::Spool` to
/// `src/output/spool.rs`, `crate::ack::Job` to `src/ack/mod.rs`) has no cycle. A
/// circle makes two files one unit that can only be understood, tested and moved
/// together; two were removed (metrics ↔ homer/aliases, output/tcp ↔ output/conn).
/// `super::` paths between a folder's `mod.rs` and its children are not looked at.
#[test]
fn no_import_circle_between_the_files_of_src() {
    use std::collections::{BTreeMap, BTreeSet};
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    // Each file's module path: src/a/b.rs is a::b, src/a/mod.rs is a; lib.rs the root.
    let mut module: BTreeMap<Vec<String>, String> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap().with_extension("");
        let mut segs: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if segs.last().is_some_and(|s| s == "mod" || s == "lib") {
            segs.pop();
        }
        if segs == ["main"] {
            continue; // the binary: its `crate::` is not the library's
        }
        module.insert(
            segs,
            format!("src/{}", f.strip_prefix(&src).unwrap().display()),
        );
    }
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (segs, file) in &module {
        let code = code_of(&root().join(file));
        let to = edges.entry(file.clone()).or_default();
        for p in crate_paths(&code) {
            // The deepest file the path names (none: a re-export from another crate).
            let target = (1..=p.len()).rev().find_map(|n| module.get(&p[..n]));
            if let Some(t) = target.filter(|t| *t != file && !segs.is_empty()) {
                to.insert(t.clone());
            }
        }
    }
    let n_edges: usize = edges.values().map(BTreeSet::len).sum();
    assert!(n_edges > 50, "the graph has its edges: {edges:#?}");
    // Depth-first, with the path walked: an edge back into it closes a circle.
    fn walk(
        at: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        circles: &mut Vec<String>,
    ) {
        if let Some(i) = path.iter().position(|p| p == at) {
            let mut c = path[i..].to_vec();
            c.push(at.to_string());
            circles.push(c.join(" -> "));
            return;
        }
        if !done.insert(at.to_string()) {
            return;
        }
        path.push(at.to_string());
        for next in edges.get(at).into_iter().flatten() {
            walk(next, edges, path, done, circles);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    let mut circles = Vec::new();
    for f in edges.keys() {
        walk(f, &edges, &mut Vec::new(), &mut done, &mut circles);
    }
    assert!(circles.is_empty(), "import circles: {circles:#?}");
}

#[test]
fn test_items_are_left_out_wherever_they_are() {
    let text = "use crate::a::B;\n#[cfg(test)]\nmod tests {\n    fn f() { let c = '{'; crate::t::x(\"}\"); }\n}\n/// crate::doc\nfn g() { crate::c::d(); }\n#[cfg(test)]\nuse crate::u::V;\n";
    let code = without_tests(text);
    let p: Vec<String> = crate_paths(&code).iter().map(|s| s.join("::")).collect();
    assert_eq!(p, ["a::B", "c::d"], "{code}");
}

#[test]
fn crate_paths_expand_groups() {
    let p = crate_paths("use crate::a::{b, c::{d, e}, self};\nx = crate::f::g(1);");
    let p: Vec<String> = p.iter().map(|s| s.join("::")).collect();
    assert_eq!(p, ["a::b", "a::c::d", "a::c::e", "a", "f::g"]);
}
