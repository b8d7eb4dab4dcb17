//! `imagegate artifacthub`: writes (or, with `--check`, checks)
//! artifacthub-pkg.yml and questions-ui.yml ([`crate::packaging::artifacthub`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::packaging::artifacthub::{check_file, created_at, generate};
use crate::packaging::metadata::Metadata;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Policy metadata to generate from.
    #[arg(short, long, default_value = "metadata.yml")]
    pub metadata: PathBuf,
    /// Where to write the Artifact Hub package file.
    #[arg(short, long, default_value = "artifacthub-pkg.yml")]
    pub output: PathBuf,
    /// Where to write the Rancher settings form.
    #[arg(short, long, default_value = "questions-ui.yml")]
    pub questions: PathBuf,
    /// RFC 3339 creation time; default: kept from the existing output while
    /// the version is unchanged, else now.
    #[arg(long)]
    pub created_at: Option<String>,
    /// Write nothing; fail if the files on disk differ from what would be
    /// generated (createdAt aside).
    #[arg(long)]
    pub check: bool,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let metadata = Metadata::from_yaml_file(&args.metadata)?;
    let existing = std::fs::read_to_string(&args.output).ok();
    let created_at = created_at(args.created_at.as_deref(), existing.as_deref(), &metadata)?;
    let generated = generate(&metadata, &created_at)?;
    if args.check {
        check_file(&args.output, &generated.package)?;
        check_file(&args.questions, &generated.questions)?;
    } else {
        write(&args.output, &generated.package)?;
        write(&args.questions, &generated.questions)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_file(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
    }

    #[test]
    fn staleness_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = std::fs::read_to_string(repo_file("metadata.yml")).unwrap();
        std::fs::write(dir.path().join("metadata.yml"), &text).unwrap();
        let args = |check| Args {
            metadata: dir.path().join("metadata.yml"),
            output: dir.path().join("artifacthub-pkg.yml"),
            questions: dir.path().join("questions-ui.yml"),
            created_at: None,
            check,
        };
        assert!(run(&args(true)).is_err(), "missing files must be stale");
        run(&args(false)).unwrap();
        run(&args(true)).unwrap();
        text = text
            .replace("severity: high", "severity: critical")
            .replace("mutating: true", "mutating: false");
        std::fs::write(dir.path().join("metadata.yml"), &text).unwrap();
        let err = run(&args(true)).unwrap_err().to_string();
        assert!(err.contains("artifacthub-pkg.yml is stale"), "{err}");
    }
}
