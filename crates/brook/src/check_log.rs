//! `brook check-log DIR`: offline verification of segments, CRCs and indexes.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use brook_log::{check_dir, is_partition_dir, CheckReport};

fn partition_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    if is_partition_dir(dir) {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

pub fn run(dir: &Path, verbose: bool) -> Result<()> {
    let dirs = partition_dirs(dir)?;
    let bar = indicatif::ProgressBar::new(dirs.len() as u64);
    if !verbose {
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} partitions")
                .expect("valid template"),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut reports: Vec<CheckReport> = Vec::new();
    for d in &dirs {
        reports.push(check_dir(d).with_context(|| format!("checking {}", d.display()))?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let (mut records, mut bytes, mut bad) = (0u64, 0u64, 0usize);
    for r in &reports {
        records += r.records;
        bytes += r.bytes;
        let name = r.dir.file_name().map_or_else(
            || r.dir.display().to_string(),
            |n| n.to_string_lossy().to_string(),
        );
        if verbose || !r.is_ok() {
            println!(
                "{name}: {} segments, {} batches, {} records, offsets {}..{}{}",
                r.segments,
                r.batches,
                r.records,
                r.log_start_checkpoint.or(r.first_offset).unwrap_or(0),
                r.end_offset.unwrap_or(0),
                if r.is_ok() { "" } else { "  PROBLEMS:" }
            );
        }
        const SHOWN: usize = 10;
        for p in r.problems.iter().take(SHOWN) {
            println!("  - {p}");
        }
        if r.problems.len() > SHOWN {
            println!("  ... and {} more", r.problems.len() - SHOWN);
        }
        bad += usize::from(!r.is_ok());
    }
    println!(
        "Checked {} partitions, {records} records, {:.1} MB: {}",
        reports.len(),
        bytes as f64 / 1e6,
        if bad == 0 {
            "all consistent".to_string()
        } else {
            format!("{bad} with problems")
        }
    );
    if bad > 0 {
        bail!("{bad} partitions failed the check");
    }
    Ok(())
}
