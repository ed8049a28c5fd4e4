//! The crate's modules form layers: a module may use only the modules
//! below it (ARCHITECTURE.md). This reads every `crate::` path in `src/`
//! outside comments and test modules, and fails on one that points up (or
//! sideways to a later module), or at a module the order does not know.

use std::collections::HashMap;
use std::path::Path;

/// The modules, lowest first; each layer may use the ones before it.
const LAYERS: &[(&str, &[&str])] = &[
    ("leaves", &["sync", "error", "options", "metrics", "trace"]),
    (
        "primitives",
        &[
            "runtime",
            "cancel",
            "deadlines",
            "watch",
            "queue",
            "scheduler",
        ],
    ),
    ("the job's state", &["state", "core", "header"]),
    (
        "the job",
        &["context", "body", "job", "attempt", "task", "cell"],
    ),
    ("the workers", &["shared", "worker"]),
    ("the face", &["handle", "set", "pause", "pool", "lib"]),
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
