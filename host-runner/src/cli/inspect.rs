//! `imagegate inspect`: prints the metadata embedded in an annotated module.

use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::packaging::metadata::Metadata;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Annotated policy module.
    pub policy: std::path::PathBuf,
    /// Print only the value of this annotation (fails when it is absent).
    #[arg(long, value_name = "KEY")]
    pub annotation: Option<String>,
}

/// Prints the embedded metadata as JSON, or one annotation's value.
pub fn run(args: &Args) -> Result<ExitCode> {
    let module = std::fs::read(&args.policy)
        .with_context(|| format!("cannot read policy {}", args.policy.display()))?;
    let metadata = Metadata::from_module(&module)?
        .with_context(|| format!("{} is not annotated", args.policy.display()))?;
    match &args.annotation {
        Some(key) => println!("{}", metadata.required_annotation(key)?),
        None => println!("{}", serde_json::to_string_pretty(&metadata)?),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packaging::annotate::embed;
    use std::path::Path;

    #[test]
    fn inspect_needs_an_annotated_module_and_a_present_annotation() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain.wasm");
        std::fs::write(&plain, wat::parse_str("(module)").unwrap()).unwrap();
        let args = |policy: &Path, annotation: Option<&str>| Args {
            policy: policy.to_path_buf(),
            annotation: annotation.map(str::to_string),
        };
        let err = run(&args(&plain, None)).unwrap_err().to_string();
        assert!(err.contains("not annotated"), "{err}");
        let annotated = dir.path().join("annotated.wasm");
        let json =
            br#"{"protocolVersion":"v1","rules":[],"mutating":false,"annotations":{"a":"b"}}"#;
        std::fs::write(
            &annotated,
            embed(&wat::parse_str("(module)").unwrap(), json).unwrap(),
        )
        .unwrap();
        run(&args(&annotated, Some("a"))).unwrap();
        run(&args(&annotated, None)).unwrap();
        let err = run(&args(&annotated, Some("missing")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing"), "{err}");
    }
}
