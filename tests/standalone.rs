//! The repository stands alone: nothing in it reads or points to a path outside it (a
//! reference folder beside the checkout, design notes kept elsewhere). A fresh clone with
//! nothing beside it must build, test and read completely.

use std::path::{Path, PathBuf};

/// Text files of the repository (source, tests, scripts, docs, configuration), skipping build
/// output, git's own folder and binary test data.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            if !matches!(name.as_str(), "target" | ".git" | "corpus" | "artifacts") {
                files(&p, out);
            }
        } else if !name.ends_with(".sip") && !name.ends_with(".lock") {
            out.push(p);
        }
    }
}

#[test]
fn nothing_points_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = Vec::new();
    files(root, &mut all);
    assert!(all.len() > 100, "walked only {} files", all.len());
    // Built from pieces so that this file does not match itself.
    let outside = [
        format!("../{}", "shared"),
        format!("{}/testdata", "shared"),
        format!("{}.md", "DESIGN"),
        format!("{}.md", "ROUTING"),
    ];
    let mut found = Vec::new();
    for f in &all {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            for o in &outside {
                if line.contains(o.as_str()) {
                    found.push(format!("{}:{}: {o}", f.display(), n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "references outside the repository:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_test_data_is_in_the_repository() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    for (dir, n) in [("rfc4475", 49), ("rfc5118", 12)] {
        let index = std::fs::read_to_string(data.join(dir).join("INDEX.tsv")).expect("INDEX.tsv");
        assert_eq!(index.lines().skip(1).count(), n, "{dir}/INDEX.tsv");
        for line in index.lines().skip(1) {
            let file = line.split('\t').next().unwrap_or("");
            assert!(data.join(dir).join(file).is_file(), "{dir}/{file} missing");
        }
    }
    for f in ["uac-rr.xml", "uas-rr.xml"] {
        assert!(data.join("sipp").join(f).is_file(), "sipp/{f} missing");
    }
}
