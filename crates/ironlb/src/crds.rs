//! `ironlb crds`: the CRD manifests, generated from the Rust types.

use anyhow::{Context, Result};
use std::path::Path;
use std::process::ExitCode;

/// One YAML document per CRD, each with the file name MetalLB uses for it.
pub fn manifests() -> Result<Vec<(String, String)>> {
    api::crds()
        .into_iter()
        .map(|crd| {
            let file = format!("{}_{}.yaml", api::GROUP, crd.spec.names.plural);
            let yaml = serde_saphyr::to_string(&crd).context("rendering a CRD as YAML")?;
            Ok((file, yaml))
        })
        .collect()
}

pub fn run(out_dir: Option<&Path>) -> Result<ExitCode> {
    let manifests = manifests()?;
    match out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for (file, yaml) in manifests {
                let path = dir.join(file);
                std::fs::write(&path, yaml)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        None => {
            for (_, yaml) in manifests {
                print!("---\n{yaml}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
