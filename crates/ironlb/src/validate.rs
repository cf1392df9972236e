//! `ironlb validate`.

use crate::inputs;
use anyhow::Result;
use config::documents::ReadOptions;
use config::{Problem, Severity};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Files or directories of multi-document YAML.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The namespace configuration is read from.
    #[arg(long, default_value = api::legacy::CONFIGMAP_NAMESPACE)]
    namespace: String,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(serde::Serialize)]
struct Report<'a> {
    valid: bool,
    errors: usize,
    warnings: usize,
    problems: &'a [Problem],
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let options = ReadOptions {
        namespace: args.namespace.clone(),
    };
    let (resources, problems) = inputs::read(&args.paths, &options)?;
    // A standalone file's services are checked too, allocation included.
    let problems = if resources.services.is_empty() {
        config::build_read(&resources, problems).problems
    } else {
        crate::standalone::file::build(&resources, problems, &Default::default()).problems
    };
    let errors = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    let report = Report {
        valid: errors == 0,
        errors,
        warnings: problems.len() - errors,
        problems: &problems,
    };
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Text => {
            for problem in &problems {
                println!("{problem}");
            }
            let verdict = if report.valid { "valid" } else { "invalid" };
            println!(
                "{verdict}: {} errors, {} warnings",
                report.errors, report.warnings
            );
        }
    }
    Ok(if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
