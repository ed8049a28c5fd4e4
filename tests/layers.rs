//! The crate's modules form layers: a module may use only the modules
//! below it (ARCHITECTURE.md). This reads every `crate::` path in `src/`
//! outside comments and test modules, and fails on one that points up (or
//! sideways to a later module), or at a module the order does not know.

use std::collections::HashMap;
use std::path::Path;

/// The modules, lowest first; each layer may use the ones before it.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "leaves",
        &["sync", "error", "id", "options", "metrics", "trace"],
    ),
    (
        "primitives",
        &[
            "runtime",
            "cancel",
            "deadlines",
            "watch",
            "queue",
            "scheduler",
            "rate",
        ],
    ),
    ("the job's state", &["state", "core", "header", "view"]),
    (
        "the job",
        &["context", "body", "job", "attempt", "task", "cell"],
    ),
    ("the workers", &["shared", "worker"]),
    (
        "the face",
        &["handle", "set", "group", "pause", "stop", "pool", "lib"],
    ),
];

/// Files that are tests as a whole (compiled only under `cfg(test)`).
const TEST_ONLY: &[&str] = &["loom_tests", "testing"];

/// The code of `src` outside comments and the test module at its end.
fn code_of(src: &str) -> String {
    let mut out = String::new();
    let mut lines = src.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        let test_attr = t.starts_with("#[cfg(test)]") || t.starts_with("#[cfg(all(test");
        if test_attr
            && lines
                .peek()
                .is_some_and(|l| l.trim_start().starts_with("mod "))
        {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push_str(line.split("//").next().unwrap_or(""));
        out.push('\n');
    }
    out
}

/// The modules `code` names through `crate::`.
fn uses(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let after = &rest[name.len()..];
        // `crate::Pool` (a re-export at the root) names no module.
        if after.starts_with("::") && name.chars().next().is_some_and(|c| c.is_lowercase()) {
            found.push(name);
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn every_module_uses_only_the_modules_below_it() {
    let mut rank = HashMap::new();
    let order: Vec<&str> = LAYERS
        .iter()
        .flat_map(|(_, ms)| ms.iter().copied())
        .collect();
    for (i, m) in order.iter().enumerate() {
        rank.insert(*m, i);
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    let mut seen = 0;
    for entry in std::fs::read_dir(&src).expect("src/") {
        let path = entry.expect("a file").path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let module = path.file_stem().unwrap().to_str().unwrap().to_string();
        if TEST_ONLY.contains(&module.as_str()) {
            continue;
        }
        seen += 1;
        let Some(&me) = rank.get(module.as_str()) else {
            wrong.push(format!("src/{module}.rs is in no layer"));
            continue;
        };
        let code = code_of(&std::fs::read_to_string(&path).expect("readable"));
        for used in uses(&code) {
            match rank.get(used.as_str()) {
                None => wrong.push(format!("{module} uses {used}, which is in no layer")),
                Some(&r) if r >= me && used != module => {
                    wrong.push(format!("{module} uses {used}, which is not below it"))
                }
                _ => {}
            }
        }
    }
    assert!(seen >= order.len() - 1, "only {seen} modules read");
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

/// The check can fail: a use of a higher module, from plain code, is found.
#[test]
fn an_upward_use_is_found() {
    let code = code_of(
        "use crate::sync::Arc;\n// use crate::pool::Pool;\nuse crate::pool::Pool;\n\
         #[cfg(test)]\nmod tests {\n    use crate::worker;\n}\n",
    );
    assert_eq!(uses(&code), vec!["pool".to_string(), "sync".to_string()]);
}

/// The functions of `src/` whose bodies run over this many lines: each
/// must say why in a comment on the line before it (`// Long: ...`).
const LONG_FN: usize = 80;

/// The functions of `src` longer than [`LONG_FN`] lines without a
/// `// Long:` comment above them: `(name, lines)`.
fn long_functions(src: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = src.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let Some(rest) = [
            "fn ",
            "pub fn ",
            "pub(crate) fn ",
            "async fn ",
            "pub(crate) async fn ",
            "unsafe fn ",
            "pub(crate) unsafe fn ",
        ]
        .iter()
        .find_map(|p| t.strip_prefix(p)) else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let indent = &line[..line.len() - t.len()];
        // The signature runs to its `{` (a body) or its `;` (a trait's
        // declaration, which has none).
        let Some(open) = lines[i..]
            .iter()
            .position(|l| l.contains('{') || l.ends_with(';'))
        else {
            continue;
        };
        let first = lines[i + open].trim_end();
        if !first.contains('{') || first.ends_with('}') {
            // A declaration, or a body on one line.
            continue;
        }
        let closing = format!("{indent}}}");
        let Some(end) = lines[i..].iter().position(|l| *l == closing) else {
            continue;
        };
        let len = end + 1;
        let explained = i > 0 && lines[i - 1].trim_start().starts_with("// Long:");
        if len > LONG_FN && !explained {
            found.push((name, len));
        }
    }
    found
}

#[test]
fn no_function_runs_over_eighty_lines_unless_it_says_why() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut long = Vec::new();
    for entry in std::fs::read_dir(&src).expect("src/") {
        let path = entry.expect("a file").path();
        let module = path.file_stem().unwrap().to_str().unwrap().to_string();
        if path.extension().and_then(|e| e.to_str()) != Some("rs")
            || TEST_ONLY.contains(&module.as_str())
        {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        for (name, len) in long_functions(&code_of_with_lines(&text)) {
            long.push(format!("src/{module}.rs: `{name}` has {len} lines"));
        }
    }
    assert!(
        long.is_empty(),
        "functions over {LONG_FN} lines:\n{}",
        long.join("\n")
    );
}

/// `src` up to its test module at the end (tests may run long).
fn code_of_with_lines(src: &str) -> String {
    let mut out = String::new();
    let mut lines = src.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        let test_attr = t.starts_with("#[cfg(test)]") || t.starts_with("#[cfg(all(test");
        if test_attr
            && lines
                .peek()
                .is_some_and(|l| l.trim_start().starts_with("mod "))
        {
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The check can fail: a long function is found, a short one or one that
/// says why is not, and a trait's declaration ends at its `;`.
#[test]
fn a_long_function_is_found() {
    let body = "    x();\n".repeat(LONG_FN);
    let src = format!(
        "trait T {{\n    fn decl(&self);\n}}\nfn one() -> u8 {{ 1 }}\nfn long() {{\n{body}}}\nfn short() {{\n    y();\n}}\n// Long: one match.\nfn said() {{\n{body}}}\n"
    );
    assert_eq!(
        long_functions(&src),
        vec![("long".to_string(), LONG_FN + 2)]
    );
}
