//! `ironlb demo`: runs `ironlb-demo`, the lab crate's walkthrough of the seed setup in network
//! namespaces. It is a separate program so that the product binary carries no lab code; a
//! source build (`cargo build --release`) puts it beside `ironlb`.

use anyhow::{Context, Result, bail};
use std::os::unix::process::CommandExt;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Stay up after the walkthrough until Ctrl-C, to explore with `ip netns exec client ...`.
    #[arg(long)]
    keep: bool,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let ironlb = std::env::current_exe().context("finding the ironlb binary")?;
    let demo = ironlb.with_file_name("ironlb-demo");
    if !demo.is_file() {
        bail!(
            "the demo is not part of this build: {} is missing; build it from source with `cargo build --release` (it comes with the ironlb-lab crate)",
            demo.display()
        );
    }
    let mut command = std::process::Command::new(&demo);
    command.arg("--ironlb").arg(&ironlb);
    if args.keep {
        command.arg("--keep");
    }
    // exec only returns on failure.
    let error = command.exec();
    Err(error).with_context(|| format!("starting {}", demo.display()))
}
