//! The README and the pages of `docs/` link only to what exists: files and folders of the repository,
//! headings of the pages, and the repository paths they name in inline code. The README stays short.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Inline-code paths that start with one of these are repository paths and must exist.
const REPOSITORY_PATHS: &[&str] = &["crates/", "charts/", "scripts/", "tests/", "docs/", "images/"];
const README_MAX_BYTES: usize = 12_000;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn pages(root: &Path) -> Vec<PathBuf> {
    let mut pages = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .expect("docs/ is readable")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The lines of a page outside code blocks (fenced, or indented by four spaces after a blank line).
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut lines = Vec::new();
    let mut fenced = false;
    let mut indented = false;
    let mut previous_blank = true;
    for (index, line) in text.lines().enumerate() {
        let blank = line.trim().is_empty();
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            if line.starts_with("    ") && (previous_blank || indented) && !blank {
                indented = true;
            } else if !blank {
                indented = false;
                lines.push((index + 1, line));
            }
        }
        previous_blank = blank;
    }
    lines
}

/// GitHub's anchor of a heading: lower case, spaces to '-', punctuation but '-' and '_' removed.
fn anchor(heading: &str) -> String {
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

/// The anchors of a page's headings, a repeated one numbered as GitHub does (`-1`, `-2`, ...).
fn anchors(text: &str) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut anchors = Vec::new();
    for (_, line) in prose_lines(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            let base = anchor(&line[hashes..]);
            let count = seen.entry(base.clone()).or_insert(0);
            anchors.push(if *count == 0 { base.clone() } else { format!("{base}-{count}") });
            *count += 1;
        }
    }
    anchors
}

/// The paragraphs of a page outside code blocks, each with the number of its first line: a code span may
/// go on over a line's end.
fn paragraphs(text: &str) -> Vec<(usize, String)> {
    let mut paragraphs: Vec<(usize, String)> = Vec::new();
    let mut last = 0;
    for (number, line) in prose_lines(text) {
        match paragraphs.last_mut() {
            Some((_, paragraph)) if number == last + 1 => {
                paragraph.push('\n');
                paragraph.push_str(line);
            }
            _ => paragraphs.push((number, line.to_string())),
        }
        last = number;
    }
    paragraphs
}

/// The inline code spans of a paragraph with their offsets, and the paragraph with them blanked out
/// (offsets kept).
fn split_code(paragraph: &str) -> (Vec<(usize, &str)>, String) {
    let mut spans = Vec::new();
    let mut rest = paragraph.to_string().into_bytes();
    let mut at = 0;
    while let Some(start) = paragraph[at..].find('`').map(|start| at + start) {
        let ticks = paragraph[start..].chars().take_while(|&c| c == '`').count();
        let fence = &paragraph[start..start + ticks];
        let Some(end) = paragraph[start + ticks..].find(fence).map(|end| start + ticks + end) else { break };
        spans.push((start, paragraph[start + ticks..end].trim()));
        for byte in &mut rest[start..end + ticks] {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
        at = end + ticks;
    }
    // Only whole characters were replaced, so the bytes are still UTF-8.
    (spans, String::from_utf8(rest).unwrap())
}

/// The targets of the inline links `[text](target)` of a paragraph without its code, with their offsets.
fn link_targets(paragraph: &str) -> Vec<(usize, &str)> {
    let mut targets = Vec::new();
    let mut at = 0;
    while let Some(open) = paragraph[at..].find("](").map(|open| at + open + 2) {
        let Some(end) = paragraph[open..].find(')').map(|end| open + end) else { break };
        let target = paragraph[open..end].split_whitespace().next().unwrap_or("");
        targets.push((open, target.trim_start_matches('<').trim_end_matches('>')));
        at = end;
    }
    targets
}

fn broken_links(root: &Path) -> Vec<String> {
    let mut broken = Vec::new();
    for page in pages(root) {
        let name = page.strip_prefix(root).unwrap().display().to_string();
        let text = fs::read_to_string(&page).unwrap();
        for (first_line, paragraph) in paragraphs(&text) {
            let line = |offset: usize| first_line + paragraph[..offset].matches('\n').count();
            let (spans, without_code) = split_code(&paragraph);
            for (offset, span) in spans {
                let path = span.split_whitespace().next().unwrap_or("");
                let is_repository_path = REPOSITORY_PATHS.iter().any(|prefix| path.starts_with(prefix));
                let is_pattern = path.contains(['<', '*', '$']);
                if is_repository_path && !is_pattern && !root.join(path).exists() {
                    broken.push(format!("{name}:{}: `{path}` does not exist", line(offset)));
                }
            }
            for (offset, target) in link_targets(&without_code) {
                if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (file, fragment) = match target.split_once('#') {
                    Some((file, fragment)) => (file, Some(fragment)),
                    None => (target, None),
                };
                let linked = if file.is_empty() { page.clone() } else { page.parent().unwrap().join(file) };
                if !linked.exists() {
                    broken.push(format!("{name}:{}: link to {target}: {file} does not exist", line(offset)));
                    continue;
                }
                if let Some(fragment) = fragment {
                    let headings = if linked.extension().is_some_and(|ext| ext == "md") {
                        anchors(&fs::read_to_string(&linked).unwrap())
                    } else {
                        Vec::new()
                    };
                    if !headings.iter().any(|heading| heading == fragment) {
                        let number = line(offset);
                        broken.push(format!("{name}:{number}: link to {target}: no heading #{fragment} there"));
                    }
                }
            }
        }
    }
    broken
}

#[test]
fn readme_and_docs_have_no_broken_links() {
    let broken = broken_links(&root());
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn readme_fits_on_a_few_screens() {
    let size = fs::metadata(root().join("README.md")).unwrap().len() as usize;
    assert!(
        size < README_MAX_BYTES,
        "README.md is {size} bytes; keep it under {README_MAX_BYTES}: move detail to docs/"
    );
}

#[test]
fn readme_links_every_page_of_docs() {
    let root = root();
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    let missing: Vec<String> = pages(&root)[1..]
        .iter()
        .map(|page| format!("docs/{}", page.file_name().unwrap().to_string_lossy()))
        .filter(|page| !readme.contains(&format!("]({page})")))
        .collect();
    assert!(missing.is_empty(), "README.md does not link {missing:?}");
}

#[test]
fn anchors_follow_github() {
    assert_eq!(anchor(" Clients over TLS"), "clients-over-tls");
    assert_eq!(anchor(" etcd's JSON gateway"), "etcds-json-gateway");
    assert_eq!(anchor(" Charts, images and Makefile"), "charts-images-and-makefile");
    assert_eq!(anchor(" `sdp_config` and snake_case"), "sdp_config-and-snake_case");
    assert_eq!(anchors("# A\n## A\n\n    # not a heading\n"), ["a", "a-1"]);
}

#[test]
fn code_spans_may_go_on_over_a_line() {
    let paragraph = "see `crates/a\nb` and [x](y.md#z)";
    let (spans, rest) = split_code(paragraph);
    assert_eq!(spans, [(4, "crates/a\nb")]);
    assert_eq!(link_targets(&rest), [(25, "y.md#z")]);
}

/// The layout table of the README names every crate of the workspace, and only crates that exist, each linked to
/// its code: a newcomer finds any component from it in one step.
#[test]
fn readme_layout_names_every_crate() {
    let root = root();
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    let mut crates: Vec<String> = fs::read_dir(root.join("crates"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| root.join("crates").join(name).join("Cargo.toml").is_file())
        .collect();
    crates.sort();
    let rows: Vec<String> = readme
        .lines()
        .filter_map(|line| line.strip_prefix("| [`crates/"))
        .filter_map(|rest| rest.split_once('`').map(|(name, _)| name.to_string()))
        .collect();
    let missing: Vec<&String> = crates.iter().filter(|name| !rows.contains(name)).collect();
    let unknown: Vec<&String> = rows.iter().filter(|name| !crates.contains(name)).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "README's layout: crates missing {missing:?}, rows of no crate {unknown:?}"
    );
    for name in &crates {
        let link = format!("| [`crates/{name}`](crates/{name}/src/");
        assert!(readme.contains(&link), "README's row of crates/{name} links to its code: {link}...");
    }
}
