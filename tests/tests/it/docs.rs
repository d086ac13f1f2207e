//! The documentation stays true: the configuration reference is what the binaries read,
//! and every relative link and anchor in README.md and docs/ resolves.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn configuration_page() -> String {
    common::config_reference::page(&[
        ("api", registrar_api::config::settings()),
        ("consumer", registrar_consumer::config::settings()),
    ])
}

#[test]
fn the_configuration_reference_is_generated_from_the_binaries() {
    let path = root().join("docs/src/configuration.md");
    let want = configuration_page();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/src/configuration.md is stale: run `make config-reference`"
    );
}

#[test]
fn every_setting_says_what_it_means() {
    for (binary, settings) in [
        ("api", registrar_api::config::settings()),
        ("consumer", registrar_consumer::config::settings()),
    ] {
        for s in settings {
            assert!(
                s.help.len() > 10,
                "{binary}: {} has no meaning in its clap definition",
                s.env
            );
        }
    }
}

/// The Markdown files of the README and the book.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut dirs = vec![root().join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "md") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// The text outside fenced code blocks and inline code.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut in_code = false;
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
            } else if !in_code {
                out.push(c);
            }
        }
        out.push('\n');
    }
    out
}

/// GitHub's and mdBook's anchor of a heading: lower case, punctuation dropped, spaces
/// to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(file: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut fenced = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#').replace('`', "").as_str()));
        }
    }
    out
}

/// `(target)` of every `[text](target)` in the prose.
fn links(text: &str) -> Vec<String> {
    let prose = prose(text);
    let mut out = Vec::new();
    let mut rest = prose.as_str();
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        if let Some(end) = rest.find(')') {
            let target = rest[..end].split_whitespace().next().unwrap_or("");
            out.push(target.to_owned());
            rest = &rest[end..];
        }
    }
    out
}

#[test]
fn every_relative_link_and_anchor_in_the_docs_resolves() {
    let mut broken = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for target in links(&text) {
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let resolved = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            if !resolved.exists() {
                broken.push(format!("{}: {target} (no such file)", file.display()));
                continue;
            }
            if let Some(anchor) = anchor {
                if resolved.extension().is_some_and(|e| e == "md")
                    && !anchors(&resolved).contains(anchor)
                {
                    broken.push(format!("{}: {target} (no such heading)", file.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_alert_links_to_its_runbook() {
    let runbooks = anchors(&root().join("docs/src/runbooks.md"));
    let rules = std::fs::read_to_string(root().join("deploy/prometheus/alerts.yml")).unwrap();
    let mut alerts = 0;
    for line in rules.lines() {
        if let Some(name) = line.trim().strip_prefix("- alert: ") {
            alerts += 1;
            let want = format!("runbooks.html#{}", name.to_lowercase());
            assert!(rules.contains(&want), "{name} has no runbook_url");
            assert!(
                runbooks.contains(&name.to_lowercase()),
                "docs/src/runbooks.md has no section {name}"
            );
        }
    }
    assert!(alerts > 0);
}

#[test]
fn the_readme_stays_short() {
    let lines = std::fs::read_to_string(root().join("README.md"))
        .unwrap()
        .lines()
        .count();
    assert!(
        lines <= 250,
        "README.md has {lines} lines: the manual goes in docs/"
    );
}

/// The module a file under `src` defines: `service/users/mod.rs` is `service::users`,
/// `lib.rs` and `main.rs` are the crate root.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") || parts == ["lib"] || parts == ["main"] {
        parts.pop();
    }
    parts
}

/// The paths a file names through `crate::`, `super::` or one of its own child modules
/// (`child::item`, as a facade's re-exports do), resolved to the module each lands in (a
/// group `crate::a::{b, c::d}` names every member). A module leaning on one of its
/// ancestors is no edge: a parent is the facade of its children, and they may use what
/// it holds.
fn named_modules(
    module: &[String],
    text: &str,
    modules: &BTreeSet<Vec<String>>,
) -> BTreeSet<Vec<String>> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let resolve = |path: Vec<String>| {
        (0..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|p| modules.contains(p))
    };
    let mut found = BTreeSet::new();
    let children: Vec<String> = modules
        .iter()
        .filter(|m| m.len() == module.len() + 1 && m.starts_with(module))
        .map(|m| format!("{}::", m[module.len()]))
        .collect();
    let roots = ["crate::".to_owned(), "super::".to_owned()];
    for (at, root) in roots
        .iter()
        .chain(&children)
        .flat_map(|r| text.match_indices(r.as_str()))
    {
        if text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| ident(c) || c == ':')
        {
            continue;
        }
        let mut base: Vec<String> = match root {
            "crate::" => Vec::new(),
            "super::" => module[..module.len().saturating_sub(1)].to_vec(),
            child => module
                .iter()
                .cloned()
                .chain([child.trim_end_matches(':').to_owned()])
                .collect(),
        };
        let rest = &text[at + root.len()..];
        let path_text: String = rest
            .chars()
            .take_while(|c| ident(*c) || *c == ':')
            .collect();
        base.extend(
            path_text
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
        let after = &rest[path_text.len()..];
        let members: Vec<Vec<String>> = match after.strip_prefix('{') {
            Some(group) => group[..group.find('}').unwrap_or(group.len())]
                .split(',')
                .map(|m| {
                    let head: String = m
                        .trim()
                        .chars()
                        .take_while(|c| ident(*c) || *c == ':')
                        .collect();
                    base.iter()
                        .cloned()
                        .chain(
                            head.split("::")
                                .filter(|s| !s.is_empty())
                                .map(str::to_owned),
                        )
                        .collect()
                })
                .collect(),
            None => vec![base],
        };
        for target in members.into_iter().filter_map(resolve) {
            if !module.starts_with(&target) {
                found.insert(target);
            }
        }
    }
    found
}

/// Which modules (one per file) each module of a crate's `src/` names.
fn module_graph(src: &str) -> std::collections::BTreeMap<String, BTreeSet<String>> {
    let src = root().join(src);
    let mut files = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                files.push(p);
            }
        }
    }
    let modules: BTreeSet<Vec<String>> = files
        .iter()
        .map(|p| module_of(p.strip_prefix(&src).unwrap()))
        .collect();
    let mut graph = std::collections::BTreeMap::new();
    for p in &files {
        let module = module_of(p.strip_prefix(&src).unwrap());
        let text = std::fs::read_to_string(p).unwrap();
        // Test modules may reach anywhere.
        let text = text.split("#[cfg(test)]").next().unwrap_or("");
        // Comments name modules without depending on them.
        let text: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let edges = named_modules(&module, &text, &modules)
            .into_iter()
            .map(|m| m.join("::"))
            .collect();
        graph.insert(module.join("::"), edges);
    }
    graph
}

/// Modules that reach each other (a cycle), if any.
fn cycles(graph: &std::collections::BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let reaches = |from: &str, to: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_owned()];
        while let Some(m) = todo.pop() {
            for next in graph.get(&m).into_iter().flatten() {
                if next == to {
                    return true;
                }
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        false
    };
    let mut found = Vec::new();
    for (m, edges) in graph {
        for e in edges {
            if graph.contains_key(e) && reaches(e, m) && m < e {
                found.push(format!("{m} <-> {e}"));
            }
        }
    }
    found
}

#[test]
fn module_dependencies_run_one_way() {
    for src in ["api/src", "consumer/src", "common/src"] {
        let graph = module_graph(src);
        assert!(graph.len() > 10, "{src}: {graph:?}");
        let found = cycles(&graph);
        assert!(
            found.is_empty(),
            "{src}: modules that depend on each other: {found:?}"
        );
    }
}
