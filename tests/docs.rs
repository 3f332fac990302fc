//! The documentation stays a front door and a set of pages that hold together: README.md
//! is at most 300 lines, every relative link in README.md and docs/*.md names a file that
//! exists (and a heading of it, when it names one), every repository path they name in
//! backticks exists, the operator guide lists every key of heplink.example.toml at its
//! default, and the Debian package ships the pages.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// README.md and every docs/*.md.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    for e in std::fs::read_dir(root().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            pages.push(p);
        }
    }
    pages.sort();
    pages
}

/// The text outside fenced code blocks, line by line.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push(line);
        }
    }
    out
}

/// The targets of the Markdown links `[text](target)` in a page, code left out.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose(text) {
        // Inline code spans are not links.
        let plain: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = plain.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let end = after.find(')').expect("a link's closing parenthesis");
            out.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    out
}

/// The anchors GitHub gives a page's headings: lowercased, punctuation left out (letters,
/// digits, spaces, `-` and `_` kept), spaces as `-`, a repeat numbered `-1`, `-2`, ….
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for line in prose(text) {
        let Some(title) = line.strip_prefix('#') else {
            continue;
        };
        let title = title.trim_start_matches('#');
        if !title.starts_with(' ') {
            continue;
        }
        let slug: String = title
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut name = slug.clone();
        let mut n = 0;
        while seen.contains(&name) {
            n += 1;
            name = format!("{slug}-{n}");
        }
        seen.insert(name);
    }
    seen
}

#[test]
fn readme_is_a_front_door_of_at_most_300_lines() {
    let n = read(&root().join("README.md")).lines().count();
    assert!(n <= 300, "README.md has {n} lines; move detail into docs/");
}

#[test]
fn every_relative_link_points_to_a_file_and_heading_that_exist() {
    let pages = pages();
    assert!(pages.len() >= 7, "README.md and the docs/ pages: {pages:?}");
    let mut checked = 0;
    for page in &pages {
        let text = read(page);
        let dir = page.parent().unwrap();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = match link.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (link.as_str(), None),
            };
            assert!(
                !file.starts_with('/'),
                "{}: link {link} is absolute; links must be relative",
                page.display()
            );
            let target = if file.is_empty() {
                page.clone()
            } else {
                dir.join(file)
            };
            assert!(
                target.exists(),
                "{}: link {link} names {}, which does not exist",
                page.display(),
                target.display()
            );
            if let Some(a) = anchor {
                assert!(
                    target.extension().is_some_and(|x| x == "md"),
                    "{}: link {link} has an anchor into a file that is no page",
                    page.display()
                );
                let names = anchors(&read(&target));
                assert!(
                    names.contains(a),
                    "{}: link {link}: {} has no heading #{a}",
                    page.display(),
                    target.display()
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked > 50,
        "the pages link to each other ({checked} links)"
    );
}

/// Every repository path the pages name in backticks (`core/src/janus/scan.rs`,
/// `tests/delivery.rs`, `dist/check-deb`, …) exists: code moves, and the pages follow.
#[test]
fn every_repository_path_named_exists() {
    const DIRS: [&str; 9] = [
        "src/",
        "core/",
        "proto/",
        "tests/",
        "benches/",
        "fuzz/",
        "fixtures/",
        "dist/",
        ".ci/",
    ];
    let mut named = 0;
    for page in pages() {
        let text = read(&page);
        for t in text.split('`').skip(1).step_by(2) {
            let placeholder = t.contains('*') || t.contains('<') || t.contains("TARGET");
            if t.contains(' ') || placeholder || !DIRS.iter().any(|d| t.starts_with(d)) {
                continue;
            }
            assert!(
                root().join(t).exists(),
                "{} names {t}, which does not exist",
                page.display()
            );
            named += 1;
        }
    }
    assert!(named > 30, "the pages name their files ({named})");
}

#[test]
fn the_readme_links_every_docs_page() {
    let readme = read(&root().join("README.md"));
    for page in pages().iter().skip(1) {
        let name = page.file_name().unwrap().to_string_lossy();
        if name == "performance-figures.md" {
            // Linked from docs/performance.md.
            continue;
        }
        assert!(
            readme.contains(&format!("](docs/{name})")),
            "README.md does not link docs/{name}"
        );
    }
}

/// Every key of heplink.example.toml, with its default, in the operator guide's table.
#[test]
fn the_operator_guide_lists_every_setting_at_its_default() {
    fn walk(prefix: &str, t: &toml::Table, out: &mut Vec<(String, toml::Value)>) {
        for (k, v) in t {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(t) => walk(&key, t, out),
                // [[output]]: the keys of its (first) table, as `output.<key>`.
                toml::Value::Array(a) if a.iter().all(|x| x.is_table()) && !a.is_empty() => {
                    walk(&key, a[0].as_table().unwrap(), out)
                }
                v => out.push((key, v.clone())),
            }
        }
    }
    let example: toml::Table = read(&root().join("heplink.example.toml")).parse().unwrap();
    let mut keys = Vec::new();
    walk("", &example, &mut keys);
    assert!(keys.len() > 60, "{keys:?}");
    let guide = read(&root().join("docs/operator.md"));
    for (key, value) in keys {
        let row = guide
            .lines()
            .find(|l| l.starts_with("| ") && l.contains(&format!("`{key}`")))
            .unwrap_or_else(|| panic!("docs/operator.md has no row for `{key}`"));
        let default = format!("`{value}`");
        assert!(
            row.contains(&default),
            "docs/operator.md: `{key}` defaults to {default} in heplink.example.toml: {row}"
        );
    }
}

#[test]
fn the_debian_package_ships_the_docs() {
    let manifest = read(&root().join("Cargo.toml"));
    assert!(
        manifest.contains(r#"["README.md", "usr/share/doc/heplink/README.md", "644"]"#),
        "README.md in the package"
    );
    assert!(
        manifest.contains(r#"["docs/*.md", "usr/share/doc/heplink/docs/", "644"]"#),
        "docs/*.md in the package, beside README.md so that its links hold"
    );
}
