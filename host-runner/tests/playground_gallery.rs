//! The playground's converted examples are what `imagegate convert` prints.
//!
//! Each `playground/gallery/*/example.yaml` with `convert: {from, files}`
//! has, beside it, `settings.yaml` (convert's stdout) and `limitations.txt`
//! (its stderr), checked in as the gallery's data. This runs the real
//! command on the same files and compares, so a converter change cannot
//! leave the gallery showing settings `convert` no longer writes.
//! `make playground-gallery` (IMAGEGATE_BLESS=1) rewrites them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use imagegate_policy::sources::Dialect;
use serde_json::Value;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn converted_examples_are_what_convert_prints() {
    let gallery = workspace().join("playground/gallery");
    let bless = std::env::var_os("IMAGEGATE_BLESS").is_some_and(|v| v == "1");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&gallery)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut converted = Vec::new();
    let mut stale = Vec::new();
    for dir in &dirs {
        let meta: Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("example.yaml")).unwrap())
                .unwrap();
        let Some(convert) = meta.get("convert") else {
            continue;
        };
        let from = convert["from"].as_str().unwrap();
        let files: Vec<&str> = convert["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        let out = Command::new(env!("CARGO_BIN_EXE_imagegate"))
            .current_dir(workspace())
            .args(["convert", "--from", from])
            .args(&files)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: imagegate convert --from {from} {files:?} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        for (name, printed) in [
            ("settings.yaml", &out.stdout),
            ("limitations.txt", &out.stderr),
        ] {
            let path = dir.join(name);
            if bless {
                std::fs::write(&path, printed).unwrap();
            } else if std::fs::read(&path).ok().as_ref() != Some(printed) {
                stale.push(path.display().to_string());
            }
        }
        converted.push(from.to_string());
    }
    assert!(
        stale.is_empty(),
        "not what `imagegate convert` prints now: {stale:?}; run `make playground-gallery` and review the diff"
    );
    // Every dialect `convert` knows has its example.
    converted.sort();
    let mut dialects: Vec<&str> = Dialect::ALL.iter().map(|d| d.name()).collect();
    dialects.sort();
    assert_eq!(converted, dialects, "{}", gallery.display());
}
