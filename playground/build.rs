//! Reads the example gallery (`gallery/<NN-id>/`, in name order) into one
//! JSON document for the page, `$OUT_DIR/gallery.json` (`src/gallery.rs`).
//!
//! Each example directory holds `example.yaml` (title, about, expect,
//! optional `convert` and `answers`), `settings.yaml` and `workload.yaml`;
//! a converted example (`convert: {from, files}`) also holds
//! `limitations.txt`, what `imagegate convert` printed on stderr, and its
//! `settings.yaml` is what it printed on stdout
//! (`host-runner/tests/playground_gallery.rs` keeps both current).

use std::path::Path;

use serde_json::{json, Value};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let gallery = root.join("gallery");
    println!("cargo:rerun-if-changed={}", gallery.display());
    let mut dirs: Vec<_> = std::fs::read_dir(&gallery)
        .expect("playground/gallery")
        .map(|e| e.expect("playground/gallery entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let examples: Vec<Value> = dirs.iter().map(|dir| example(root, dir)).collect();
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("gallery.json");
    std::fs::write(out, Value::Array(examples).to_string()).expect("write gallery.json");
}

fn read(path: &Path) -> String {
    println!("cargo:rerun-if-changed={}", path.display());
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn example(root: &Path, dir: &Path) -> Value {
    let name = dir.file_name().unwrap().to_string_lossy();
    let id = name.split_once('-').map_or(&*name, |(_, id)| id);
    let meta_path = dir.join("example.yaml");
    let meta: Value = serde_yaml_ng::from_str(&read(&meta_path))
        .unwrap_or_else(|e| panic!("{}: {e}", meta_path.display()));
    let known = ["title", "about", "expect", "convert", "answers"];
    for key in meta.as_object().expect("example.yaml is a map").keys() {
        assert!(
            known.contains(&key.as_str()),
            "{}: unknown key {key:?} (known: {known:?})",
            meta_path.display()
        );
    }
    let text = |key: &str| {
        meta[key]
            .as_str()
            .unwrap_or_else(|| panic!("{}: `{key}` is required", meta_path.display()))
            .trim()
            .to_string()
    };
    let convert = meta.get("convert").map(|c| {
        let from = c["from"].as_str().expect("convert.from");
        let files: Vec<&str> = c["files"]
            .as_array()
            .expect("convert.files")
            .iter()
            .map(|f| f.as_str().expect("convert.files[]"))
            .collect();
        let limitations = read(&dir.join("limitations.txt"));
        json!({
            "command": format!("imagegate convert --from {from} {}", files.join(" ")),
            "sources": files.iter().map(|f| json!({
                "path": f,
                "text": read(&root.join("..").join(f)),
            })).collect::<Vec<_>>(),
            "limitations": limitations.lines().collect::<Vec<_>>(),
        })
    });
    json!({
        "id": id,
        "title": text("title"),
        "about": text("about"),
        "expect": meta["expect"],
        "convert": convert,
        "state": {
            "settings": read(&dir.join("settings.yaml")),
            "workload": read(&dir.join("workload.yaml")),
            "answers": meta.get("answers").cloned().unwrap_or_else(|| json!({})),
        },
    })
}
