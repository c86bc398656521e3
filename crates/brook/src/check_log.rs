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

/// Verifies the metadata log of a data directory, if it has one. Returns whether it is
/// intact.
fn check_metadata(dir: &Path) -> Result<bool> {
    let path = dir.join("__metadata.log");
    if !path.is_file() {
        return Ok(true);
    }
    let report = brook_meta::check_metadata_log(&path)
        .with_context(|| format!("checking {}", path.display()))?;
    if report.problems.is_empty() {
        println!("__metadata.log: {} records, intact", report.records);
        return Ok(true);
    }
    println!("__metadata.log: {} records  PROBLEMS:", report.records);
    for p in &report.problems {
        println!("  - {p}");
    }
    Ok(false)
}

/// Refuses a data directory a running broker holds: its segments change under the check.
fn refuse_live_dir(dir: &Path) -> Result<()> {
    let lock = dir.join(brook_broker::DATA_DIR_LOCK);
    let Ok(file) = std::fs::OpenOptions::new().write(true).open(&lock) else {
        return Ok(()); // no lock file: never served, or a partition directory
    };
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "{} is in use by a running broker (it holds {}); stop the broker first",
            dir.display(),
            lock.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("checking the lock {}", lock.display()))
        }
    }
}

pub fn run(dir: &Path, verbose: bool) -> Result<()> {
    refuse_live_dir(dir)?;
    let metadata_ok = check_metadata(dir)?;
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
    if !metadata_ok {
        bail!("the metadata log is damaged");
    }
    Ok(())
}
