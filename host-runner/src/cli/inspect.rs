//! `imagegate inspect`: prints the metadata embedded in an annotated module,
//! the embedded README (`io.kubewarden.policy.usage`) summarized to one line
//! (`--usage` prints it whole).

use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::packaging::metadata::{keys, Metadata};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Annotated policy module.
    pub policy: std::path::PathBuf,
    /// Print only the value of this annotation (fails when it is absent).
    #[arg(long, value_name = "KEY", conflicts_with = "usage")]
    pub annotation: Option<String>,
    /// Print the embedded README (the usage annotation).
    #[arg(long)]
    pub usage: bool,
}

/// Prints the embedded metadata as JSON, the README, or one annotation's value.
pub fn run(args: &Args) -> Result<ExitCode> {
    let module = std::fs::read(&args.policy)
        .with_context(|| format!("cannot read policy {}", args.policy.display()))?;
    let metadata = Metadata::from_module(&module)?
        .with_context(|| format!("{} is not annotated", args.policy.display()))?;
    println!("{}", render(metadata, args)?);
    Ok(ExitCode::SUCCESS)
}

fn render(mut metadata: Metadata, args: &Args) -> Result<String> {
    if args.usage {
        return Ok(metadata.required_annotation(keys::USAGE)?.to_string());
    }
    if let Some(key) = &args.annotation {
        return Ok(metadata.required_annotation(key)?.to_string());
    }
    if let Some(usage) = metadata
        .annotations
        .as_mut()
        .and_then(|a| a.get_mut(keys::USAGE))
    {
        let title = usage
            .lines()
            .map(|l| l.trim_start_matches('#').trim())
            .find(|l| !l.is_empty())
            .unwrap_or_default();
        *usage = format!(
            "{title} ({} lines: `imagegate inspect --usage` prints them)",
            usage.lines().count()
        );
    }
    Ok(serde_json::to_string_pretty(&metadata)?)
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
            usage: false,
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

    #[test]
    fn inspect_summarizes_the_readme_and_prints_it_with_usage() {
        let readme = "# imagegate\n\nAdmits images by rule.\n\n## Settings\n...\n";
        let metadata = || {
            let mut m: Metadata = serde_json::from_str(
                r#"{"protocolVersion":"v1","rules":[],"mutating":false,"annotations":{"a":"b"}}"#,
            )
            .unwrap();
            m.annotations
                .as_mut()
                .unwrap()
                .insert(keys::USAGE.into(), readme.into());
            m
        };
        let args = |usage| Args {
            policy: "p.wasm".into(),
            annotation: None,
            usage,
        };
        let summary = render(metadata(), &args(false)).unwrap();
        let json: serde_json::Value = serde_json::from_str(&summary).unwrap();
        assert_eq!(
            json["annotations"][keys::USAGE],
            "imagegate (6 lines: `imagegate inspect --usage` prints them)"
        );
        assert_eq!(json["annotations"]["a"], "b");
        assert_eq!(render(metadata(), &args(true)).unwrap(), readme);
    }
}
