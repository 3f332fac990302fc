//! ARCHITECTURE.md stays true: every source path it names in backticks exists, and every
//! function named in the stage table is defined in the file of its row.

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
