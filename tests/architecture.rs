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
/// the wiring or the commands.
#[test]
fn each_stage_imports_only_what_comes_before_it() {
    let core = ["janus", "reject", "json", "time", "choice"];
    let rules: [(&str, Vec<&str>, bool); 7] = [
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
                "metrics",
                "internal_events",
                "tls",
                "observe",
                "time",
            ],
            true,
        ),
        (
            "src/input",
            vec![
                "input",
                "config",
                "metrics",
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
