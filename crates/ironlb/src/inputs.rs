//! Reads configuration files and directories into `Resources`.

use anyhow::{Context, Result};
use config::documents::{self, ReadOptions};
use config::{Problem, Resources};
use std::path::{Path, PathBuf};

/// Every YAML/JSON file under the given paths, in a stable order.
fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading directory {}", path.display()))?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()?;
            entries.sort();
            let nested: Vec<PathBuf> = entries
                .into_iter()
                .filter(|p| p.is_dir() || is_manifest(p))
                .collect();
            out.extend(files(&nested)?);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Reads all inputs. Unreadable files are errors of the command; bad content is reported
/// as problems so that every one of them is listed.
pub fn read(paths: &[PathBuf], options: &ReadOptions) -> Result<(Resources, Vec<Problem>)> {
    let mut resources = Resources::default();
    let mut problems = Vec::new();
    for file in files(paths)? {
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let name = file.display().to_string();
        match String::from_utf8(bytes) {
            Ok(text) => documents::read(&text, &name, options, &mut resources, &mut problems),
            Err(_) => problems.push(Problem {
                severity: config::Severity::Error,
                object: config::ObjectRef::new("File", &name),
                field: String::new(),
                message: "the file is not UTF-8 text".to_string(),
                fix: "save the file as UTF-8 YAML".to_string(),
                transient: false,
                source: None,
            }),
        }
    }
    Ok((resources, problems))
}
